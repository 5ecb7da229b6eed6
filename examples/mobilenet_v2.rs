//! Keras's MobileNetV2 (alpha 1.0, 224×224×3, 1000 classes) transcribed
//! into `sequential!` (the model is in `models/mobilenet_v2.rs`): its
//! summary, whose parameter count is Keras's (3,538,984 in all, 34,112 of
//! them non-trainable), and its prediction latency at batch 1 on one
//! thread.
//!
//! Run with `cargo run --release --example mobilenet_v2`. The weights are
//! Keras's initial ones (strata draws them as Keras would), with which the
//! network's output is all but uniform (they shrink the signal block after
//! block); load trained ones from a PyTorch-keyed safetensors file with
//! `load_safetensors` before reading its classes.

use std::time::Instant;

use strata::prelude::*;
use strata::Context;

include!("models/mobilenet_v2.rs");

/// ImageNet-sized colour images.
type Image = Shape3<U224, U224, U3>;

fn main() {
    let net = MobileNetV2::new();
    let summary = net.summary();
    println!("{summary}");
    // Keras's `keras.applications.MobileNetV2().summary()`.
    let keras = (3_538_984, 3_504_872);
    let ours = (net.param_count(), net.trainable_param_count());
    println!(
        "Keras counts 3,538,984 params, 3,504,872 trainable: {}\n",
        if ours == keras {
            "the same"
        } else {
            "NOT the same"
        }
    );

    let pixels = (0..224 * 224 * 3).map(|i| ((i * 7919) % 1000) as f32 / 1000.0);
    let x = Batch::<Image>::from_vec(1, pixels.collect()).expect("one 224×224×3 image");
    let mut ctx = Context::inference().with_threads(1);
    let mut y = net.predict(&x);
    net.predict_into(&x, &mut y, &mut ctx);
    // The best of a few rounds: a shared machine only ever slows one down.
    let runs = 5;
    let best = (0..4)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..runs {
                net.predict_into(&x, &mut y, &mut ctx);
            }
            start.elapsed().as_secs_f64() / runs as f64
        })
        .fold(f64::INFINITY, f64::min);
    println!(
        "predict at batch 1 on 1 thread: {:.1} ms ({:.1} images/s)",
        best * 1e3,
        1.0 / best
    );
}
