use strata::prelude::*;

fn main() {
    let net = sequential![Input(8, 8, 3) => Conv2D(4, (3, 3)) => Flatten => Dense(2) => softmax];
    let mut trainer = net.compile(Loss::sparse_categorical_crossentropy(), Adam::default());
    let x = Batch::<Shape3<U8, U8, U1>>::zeros(2);
    let _ = trainer.fit(&x, &[0, 1], FitOptions::default());
}
