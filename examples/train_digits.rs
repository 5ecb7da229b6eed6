//! Trains a small seed-style CNN on the UCI handwritten digits (8x8, 1797
//! images; see data/digits/README.md for the source and licence) and
//! reports the test accuracy. One thread, as on a single core.
//!
//! Run with `cargo run --release --example train_digits`.

use std::time::Instant;

use strata::datasets::{digits, train_test_split};
use strata::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (images, labels) = digits();
    // A fixed split: 80% to train on, 20% never seen until the end.
    let (x_train, y_train, x_test, y_test) = train_test_split(&images, &labels, 0.2, 7)?;
    println!(
        "{} training images, {} test images",
        x_train.batch_size(),
        x_test.batch_size()
    );

    let net = sequential![
        Input(8, 8, 1)
        => Conv2D(32, (3, 3), padding = same, activation = relu)
        => Conv2D(32, (3, 3), activation = relu) => MaxPool(2, 2) => Dropout(0.25)
        => Flatten => Dense(64, activation = relu) => Dropout(0.25)
        => Dense(10) => softmax
    ];
    println!("{}", net.summary());

    let mut model = net
        .compile(Loss::sparse_categorical_crossentropy(), Adam::new(0.002))
        .with_threads(1);
    let start = Instant::now();
    let history = model.fit(
        &x_train,
        &y_train,
        FitOptions {
            epochs: 30,
            batch_size: 32,
            validation_split: 0.1,
            seed: 1,
            ..FitOptions::default()
        },
    )?;
    let trained_in = start.elapsed();

    let test = model.evaluate(&x_test, &y_test)?;
    println!(
        "trained {} epochs in {:.1} s on one thread; final training loss {:.4}",
        history.loss.len(),
        trained_in.as_secs_f64(),
        history.loss.last().copied().unwrap_or(f32::NAN)
    );
    println!(
        "test accuracy: {:.2}% (loss {:.4})",
        test.accuracy * 100.0,
        test.loss
    );
    Ok(())
}
