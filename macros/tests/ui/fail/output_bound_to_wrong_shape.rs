use strata::prelude::*;

fn main() {
    let net = sequential![Input(8, 8, 3) => Conv2D(4, (3, 3)) => Flatten => Dense(10) => softmax];
    let x = Batch::<Shape3<U8, U8, U3>>::zeros(1);
    let _y: Batch<Shape1<U5>> = net.predict(&x);
}
