//! The seed network of strata's README: Keras's CIFAR-10 CNN, written as one
//! `sequential!` chain. Prints its summary, predicts a batch and times it.
//!
//! Run with `cargo run --release --example quickstart`.

use std::time::Instant;

use strata::prelude::*;

fn main() {
    let net = sequential![
        Conv2D(32, (3, 3), padding = same, input_shape = (32, 32, 3)) => relu
        => Conv2D(32, (3, 3)) => relu => MaxPool(2, 2) => Dropout(0.25)
        => Conv2D(64, (3, 3), padding = same) => relu
        => Conv2D(64, (3, 3)) => relu => MaxPool(2, 2) => Dropout(0.25)
        => Flatten => Dense(512) => relu => Dropout(0.5)
        => Dense(10) => softmax
    ];
    println!("{}", net.summary());

    // A deterministic batch of 64 "images" with values in [0, 1).
    let batch = 64;
    let pixels: Vec<f32> = (0..batch * 32 * 32 * 3)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let x = Batch::<Shape3<U32, U32, U3>>::from_vec(batch, pixels).expect("64 images of 32x32x3");

    // One warm-up pass, then the timed ones.
    let _ = net.predict(&x);
    let runs = 5;
    let start = Instant::now();
    let mut y = net.predict(&x);
    for _ in 1..runs {
        y = net.predict(&x);
    }
    let secs = start.elapsed().as_secs_f64() / runs as f64;

    let classes = y.argmax();
    let first = y.sample(0).expect("batch of 64");
    println!(
        "predicted a batch of {batch}: {:.2} ms, {:.0} images/s",
        secs * 1e3,
        batch as f64 / secs
    );
    println!(
        "class probabilities of image 0: {first:.3?} (sum {:.4})",
        first.iter().sum::<f32>()
    );
    println!(
        "predicted classes of the first 8 images: {:?}",
        &classes[..8]
    );
}
