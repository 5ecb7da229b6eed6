//! Residuals written inline in the chain, nested, with and without a
//! projection shortcut, in an anonymous model and in a named block without
//! an input shape: keys nest as in PyTorch (`0.main.3.main.0.weight`), and
//! the weights round-trip.
use strata::prelude::*;

sequential! {
    /// A basic block for any input with 8 channels.
    pub struct Basic = Residual({ Conv2D(8, (3, 3), same, use_bias = false) => BatchNormalization => relu }) => relu
}

fn main() {
    let net = sequential![
        Input(8, 8, 4) => Residual({
            Conv2D(8, (3, 3), same, strides = (2, 2)) => BatchNormalization => relu
            => Residual({ Conv2D(8, (3, 3), same) => BatchNormalization }) => BatchNormalization
        }, shortcut = { Conv2D(8, (1, 1), strides = (2, 2), use_bias = false) })
        => relu => Residual({ Dropout(0.5) }) => GlobalAveragePooling2D => Dense(3) => softmax
    ];
    let names: Vec<String> = net.params().into_iter().map(|p| p.name).collect();
    assert!(
        names.contains(&"0.main.3.main.0.weight".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"0.main.3.main.1.running_var".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"0.main.4.num_batches_tracked".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"0.shortcut.0.weight".to_string()),
        "{names:?}"
    );
    assert_eq!(names.last().unwrap(), "4.bias");

    let x = Batch::<Shape3<U8, U8, U4>>::filled(2, 0.25);
    let y: Batch<Shape1<U3>> = net.predict(&x);
    assert_eq!(y.dims(), vec![2, 3]);
    println!("{}", net.summary());

    let bytes = net.to_safetensors().unwrap();
    let mut other = sequential![
        Input(8, 8, 4) => Residual({
            Conv2D(8, (3, 3), same, strides = (2, 2)) => BatchNormalization => relu
            => Residual({ Conv2D(8, (3, 3), same) => BatchNormalization }) => BatchNormalization
        }, shortcut = { Conv2D(8, (1, 1), strides = (2, 2), use_bias = false) })
        => relu => Residual({ Dropout(0.5) }) => GlobalAveragePooling2D => Dense(3) => softmax
    ]
    .with_seed(1);
    other.load_safetensors_bytes(&bytes).unwrap();
    assert_eq!(other.predict(&x).as_slice(), y.as_slice());

    // The named block takes its shapes from where it is used.
    let block = Basic::new().built_for::<Shape3<U4, U4, U8>>();
    let z = block.predict(&Batch::filled(1, 0.5));
    assert_eq!(z.dims(), vec![1, 4, 4, 8]);
    let names: Vec<String> = block.params().into_iter().map(|p| p.name).collect();
    assert_eq!(names[0], "0.main.0.weight");
    let net =
        sequential![Input(4, 4, 8) => { Basic::new() } => { Basic::new() } => Flatten => Dense(2)];
    assert_eq!(net.predict(&Batch::filled(1, 0.5)).dims(), vec![1, 2]);
}
