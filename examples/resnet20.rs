//! The CIFAR ResNet-20 of He et al. (2016, section 4.2) in one
//! `sequential!`: a 3×3 stem, three stages of three basic blocks (16, 32
//! and 64 filters; the first block of the second and third stages halves
//! the map with a strided convolution and a 1×1 projection shortcut),
//! global average pooling and a 10-way softmax. 0.27M parameters.
//!
//! It prints the summary, times prediction at batch 1 and 64 on one
//! thread, and trains a few epochs on the digits that ship inside strata
//! (8×8, upscaled ×4 to 32×32 and repeated over the three channels),
//! printing the loss as it falls.
//!
//! Run with `cargo run --release --example resnet20` (no download).

use std::time::Instant;

use strata::datasets::{digits, train_test_split, DigitsImage};
use strata::prelude::*;
use strata::Context;

include!("models/resnet20.rs");

/// The network's input: a CIFAR-sized colour image.
type Image = Shape3<U32, U32, U3>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let net = ResNet20::new();
    println!("{}", net.summary());
    time_prediction(&net);

    // The digits, at the network's size: 80% to train on, 20% held out.
    let (images, labels) = digits();
    let (x_train, y_train, x_test, y_test) = train_test_split(&images, &labels, 0.2, 7)?;
    let (x_train, x_test) = (upscale(&x_train), upscale(&x_test));
    let mut model = net
        .compile(Loss::sparse_categorical_crossentropy(), Adam::new(0.002))
        .with_threads(strata::default_threads());
    let start = Instant::now();
    let history = model.fit(
        &x_train,
        &y_train,
        FitOptions {
            epochs: EPOCHS,
            batch_size: 16,
            seed: 1,
            ..FitOptions::default()
        },
    )?;
    println!(
        "\ntrained {EPOCHS} epochs on {} digits in {:.1} s ({} threads)",
        x_train.batch_size(),
        start.elapsed().as_secs_f64(),
        strata::default_threads()
    );
    for (epoch, loss) in history.loss.iter().enumerate() {
        println!("  epoch {}: training loss {loss:.4}", epoch + 1);
    }
    // Inference normalises with the moving statistics, which trail the
    // batches' by a few hundred steps (momentum 0.99): after this short
    // run the test accuracy is below the training accuracy.
    let test = model.evaluate(&x_test, &y_test)?;
    println!(
        "test accuracy on {} unseen digits: {:.1}% (loss {:.3})",
        y_test.len(),
        test.accuracy * 100.0,
        test.loss
    );
    Ok(())
}

/// Enough to see the loss fall, in well under a minute in release.
const EPOCHS: usize = 3;

/// Each 8×8 digit as a 32×32 image: every pixel a 4×4 square, the same
/// grey in all three channels.
fn upscale(x: &Batch<DigitsImage>) -> Batch<Image> {
    let mut out = Vec::with_capacity(x.batch_size() * 32 * 32 * 3);
    for i in 0..x.batch_size() {
        let digit = x.sample(i).expect("an image of the batch");
        for row in 0..32 {
            for col in 0..32 {
                out.extend([digit[row / 4 * 8 + col / 4]; 3]);
            }
        }
    }
    Batch::from_vec(x.batch_size(), out).expect("32×32×3 values an image")
}

/// Times `predict_into` (the output and every buffer reused) at batch 1
/// and 64 on one thread: the best of a few rounds, after a warm-up, since
/// a shared machine only ever slows a round down.
fn time_prediction(net: &impl Model<Input = Image>) {
    let mut ctx = Context::inference().with_threads(1);
    for batch in [1, 64] {
        let pixels = (0..batch * 32 * 32 * 3).map(|i| ((i * 7919) % 1000) as f32 / 1000.0);
        let x = Batch::<Image>::from_vec(batch, pixels.collect()).expect("32×32×3 images");
        let mut y = net.predict(&x);
        net.predict_into(&x, &mut y, &mut ctx);
        let runs = if batch == 1 { 50 } else { 4 };
        let best = (0..5)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..runs {
                    net.predict_into(&x, &mut y, &mut ctx);
                }
                start.elapsed().as_secs_f64() / runs as f64
            })
            .fold(f64::INFINITY, f64::min);
        println!(
            "predict at batch {batch:>2} on 1 thread: {:.2} ms ({:.0} images/s)",
            best * 1e3,
            batch as f64 / best
        );
    }
}
