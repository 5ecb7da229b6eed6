//! A 40-layer VGG-style network, every layer with its own shapes: how long a
//! deep `sequential!` model takes to compile (one struct, one field per
//! layer; no nesting of generic types) and that it runs.
//!
//! Run with `cargo run --release --example deep`.

use std::time::Instant;

use strata::prelude::*;

fn main() {
    let net = sequential![
        Input(32, 32, 3)
        => Conv2D(16, (3, 3), same) => relu => Conv2D(16, (3, 3), same) => relu => MaxPool(2, 2)
        => Conv2D(32, (3, 3), same) => relu => Conv2D(32, (3, 3), same) => relu => MaxPool(2, 2)
        => Conv2D(64, (3, 3), same) => relu => Conv2D(64, (3, 3), same) => relu
        => Conv2D(64, (3, 3)) => relu => Dropout(0.25)
        => Conv2D(96, (3, 3), same) => relu => Conv2D(96, (3, 3)) => relu => Dropout(0.25)
        => Conv2D(128, (3, 3), same) => relu => Conv2D(128, (3, 3)) => relu => AvgPool(2, 2)
        => Flatten => Dense(256) => relu => Dropout(0.5) => Dense(128) => relu => Dropout(0.5)
        => Dense(64) => tanh => Dense(32) => sigmoid => Dense(10) => softmax
    ];
    let summary = net.summary();
    println!("{summary}");
    assert_eq!(summary.rows.len(), 40);

    let x = Batch::<Shape3<U32, U32, U3>>::filled(16, 0.5);
    let start = Instant::now();
    let y = net.predict(&x);
    println!(
        "{} layers, batch of {}: {:.2} ms; first row sums to {:.4}",
        summary.rows.len(),
        y.batch_size(),
        start.elapsed().as_secs_f64() * 1e3,
        y.sample(0).expect("16 rows").iter().sum::<f32>()
    );
}
