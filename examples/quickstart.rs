//! The seed network of strata's README: Keras's CIFAR-10 CNN, written as one
//! `sequential!` chain. Prints its summary, predicts a batch and times it.
//!
//! Run with `cargo run --release --example quickstart`.

use std::time::Instant;

use strata::prelude::*;
use strata::Context;

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

    // Timed after a warm-up pass, reusing the output and every buffer
    // (`predict_into`), on one thread and on all of the machine's cores.
    let runs = 5;
    let mut y = net.predict(&x);
    for threads in [1, strata::default_threads()] {
        let mut workspace = Context::inference().with_threads(threads);
        net.predict_into(&x, &mut y, &mut workspace);
        let start = Instant::now();
        for _ in 0..runs {
            net.predict_into(&x, &mut y, &mut workspace);
        }
        let secs = start.elapsed().as_secs_f64() / runs as f64;
        println!(
            "predicted a batch of {batch} on {threads} thread(s): {:.2} ms, {:.0} images/s",
            secs * 1e3,
            batch as f64 / secs
        );
    }

    let classes = y.argmax();
    let first = y.sample(0).expect("batch of 64");
    println!(
        "class probabilities of image 0: {first:.3?} (sum {:.4})",
        first.iter().sum::<f32>()
    );
    println!(
        "predicted classes of the first 8 images: {:?}",
        &classes[..8]
    );
}
