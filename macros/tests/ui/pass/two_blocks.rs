//! Blocks compose: two `{ block }` layers in a row, and a block as the
//! first layer, with the shapes flowing through them.
use strata::prelude::*;

fn main() {
    let b1 = sequential![Conv2D(8, (3, 3), same) => relu];
    let b2 = sequential![Conv2D(4, (3, 3)) => relu => MaxPool(2, 2)];
    let net = sequential![Input(8, 8, 3) => { b1 } => { b2 } => Flatten => Dense(2)];
    let y: Batch<Shape1<U2>> = net.predict(&Batch::<Shape3<U8, U8, U3>>::filled(2, 0.5));
    assert_eq!(y.dims(), vec![2, 2]);
    let names: Vec<String> = net.params().into_iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        [
            "0.0.weight",
            "0.0.bias",
            "1.0.weight",
            "1.0.bias",
            "3.weight",
            "3.bias"
        ]
    );
    // 8x8x8 -> 6x6x4 -> 3x3x4 = 36 features.
    assert_eq!(net.params()[4].shape, [2, 36]);

    // A block first: the model's input is the block's.
    let stem = sequential![Input(6, 6, 1) => Conv2D(2, (3, 3)) => relu];
    let net = sequential![{ stem } => Flatten => Dense(3) => softmax];
    let y: Batch<Shape1<U3>> = net.predict(&Batch::<Shape3<U6, U6, U1>>::filled(1, 1.0));
    assert!((y.as_slice().iter().sum::<f32>() - 1.0).abs() < 1e-5);

    // A block first whose input shape is not known until it is used.
    let generic = sequential![Conv2D(2, (3, 3)) => relu];
    let net = sequential![{ generic } => { sequential![Flatten] } => Dense(4)];
    let y = net.predict(&Batch::<Shape3<U5, U5, U2>>::zeros(1));
    assert_eq!(y.sample_dims(), &[4]);
}
