//! MNIST-sized images (28x28) given to a model built for the 8x8 digits.
use strata::prelude::*;
use strata::Context;

fn main() {
    let net = sequential![Input(8, 8, 1) => Conv2D(4, (3, 3)) => Flatten => Dense(10)];
    let x = Batch::<Shape3<U28, U28, U1>>::zeros(1);
    let mut y = Batch::zeros(1);
    net.predict_into(&x, &mut y, &mut Context::inference());
}
