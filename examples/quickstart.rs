//! strata's first example: the seed network (two convolutions, pooling,
//! dropout, a dense head) trained on the UCI handwritten digits that ship
//! inside the library, then tested on digits it never saw.
//!
//! Run with `cargo run --release --example quickstart` (no download).

use std::time::Instant;

use strata::datasets::{digits, train_test_split, DigitsImage};
use strata::prelude::*;
use strata::Context;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1797 images of 8x8 pixels in [0, 1], labels 0..=9; 20% held out.
    let (images, labels) = digits();
    let (x_train, y_train, x_test, y_test) = train_test_split(&images, &labels, 0.2, 7)?;

    let net = sequential![
        Input(8, 8, 1)
        => Conv2D(32, (3, 3), padding = same) => relu
        => Conv2D(32, (3, 3)) => relu
        => MaxPooling2D((2, 2)) => Dropout(0.25)
        => Flatten => Dense(64) => relu => Dropout(0.25)
        => Dense(10) => softmax
    ];
    println!("{}", net.summary());

    let mut model = net.compile(Loss::sparse_categorical_crossentropy(), Adam::new(0.002));
    let start = Instant::now();
    let options = FitOptions {
        epochs: 20,
        batch_size: 32,
        validation_split: 0.1,
        ..FitOptions::default()
    };
    model.fit(&x_train, &y_train, options)?;
    println!("trained in {:.1} s", start.elapsed().as_secs_f64());

    let test = model.evaluate(&x_test, &y_test)?;
    println!(
        "test accuracy on {} unseen digits: {:.1}% (loss {:.3})\n",
        y_test.len(),
        test.accuracy * 100.0,
        test.loss
    );

    let net = model.into_model();
    let predicted = net.predict(&x_test).argmax();
    println!("the first test digits, with the class the network gives them:\n");
    show_digits(&x_test, &predicted[..6], &y_test[..6]);
    time_prediction(&net, &x_test);
    Ok(())
}

/// Prints the first digits side by side as 8x8 text pictures, each with
/// its predicted and true class.
fn show_digits(x: &Batch<DigitsImage>, predicted: &[usize], truth: &[usize]) {
    const SHADES: &[u8] = b" .:-=+*#%@";
    for row in 0..8 {
        let mut line = String::new();
        for i in 0..predicted.len() {
            let image = x.sample(i).expect("a test image");
            for &pixel in &image[row * 8..row * 8 + 8] {
                let shade = (pixel.clamp(0.0, 1.0) * (SHADES.len() - 1) as f32).round();
                // Two characters a pixel, so that the digits look square.
                line.extend([SHADES[shade as usize] as char; 2]);
            }
            line.push_str("    ");
        }
        println!("{line}");
    }
    for (p, t) in predicted.iter().zip(truth) {
        let verdict = if p == t { "" } else { " (wrong)" };
        print!("{:<20}", format!("pred {p}, true {t}{verdict}"));
    }
    println!("\n");
}

/// Times `predict_into` (which reuses the output and every buffer) on one
/// thread and on all of the machine's cores, after a warm-up pass.
fn time_prediction(model: &impl Model<Input = DigitsImage>, x: &Batch<DigitsImage>) {
    let runs = 20;
    let mut y = model.predict(x);
    for threads in [1, strata::default_threads()] {
        let mut workspace = Context::inference().with_threads(threads);
        model.predict_into(x, &mut y, &mut workspace);
        let start = Instant::now();
        for _ in 0..runs {
            model.predict_into(x, &mut y, &mut workspace);
        }
        let secs = start.elapsed().as_secs_f64() / runs as f64;
        println!(
            "predicted {} digits on {threads} thread(s) in {:.2} ms: {:.0} images/s",
            x.batch_size(),
            secs * 1e3,
            x.batch_size() as f64 / secs
        );
    }
}
