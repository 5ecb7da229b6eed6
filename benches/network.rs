//! Predict of the seed cifar-style network (Keras's CIFAR-10 CNN:
//! four 3×3 convolutions, two max-pools, two dense layers, softmax on
//! 32×32×3) at batch 1, 8 and 64, on 1 and 2 threads, in images/s.
//!
//! `threadsN` calls `Layer::forward` (a new output batch per call);
//! `threadsN_into` calls `Layer::forward_into` with the output and the
//! context reused, as `predict_into` does.
//!
//! `cargo bench --bench network`; restrict with
//! `STRATA_BENCH_BATCHES=64` and `STRATA_BENCH_THREADS=1`, or to one
//! network with criterion's filter (`cargo bench --bench network --
//! mobilenet_v2`).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata::prelude::*;
use strata::Context;

#[path = "env_list.rs"]
mod env_list;
use env_list::list;

include!("../examples/models/resnet20.rs");
include!("../examples/models/mobilenet_v2.rs");

fn network(c: &mut Criterion) {
    let net = sequential![
        Conv2D(32, (3, 3), padding = same, input_shape = (32, 32, 3)) => relu
        => Conv2D(32, (3, 3)) => relu => MaxPool(2, 2) => Dropout(0.25)
        => Conv2D(64, (3, 3), padding = same) => relu
        => Conv2D(64, (3, 3)) => relu => MaxPool(2, 2) => Dropout(0.25)
        => Flatten => Dense(512) => relu => Dropout(0.5)
        => Dense(10) => softmax
    ];
    let mut group = c.benchmark_group("network/cifar_cnn");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for batch in list("STRATA_BENCH_BATCHES", &[1, 8, 64]) {
        let pixels: Vec<f32> = (0..batch * 32 * 32 * 3)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect();
        let x = Batch::<Shape3<U32, U32, U3>>::from_vec(batch, pixels).expect("32x32x3 images");
        group.throughput(Throughput::Elements(batch as u64));
        for threads in list("STRATA_BENCH_THREADS", &[1, 2]) {
            // One context per setting, reused across calls as a user would.
            let mut ctx = Context::inference().with_threads(threads);
            let id = BenchmarkId::new(format!("threads{threads}"), format!("batch{batch}"));
            group.bench_function(id, |b| {
                b.iter(|| black_box(Layer::forward(&net, black_box(&x), &mut ctx)))
            });
            // The same with the output and every activation buffer reused
            // (`predict_into`'s steady state: no allocation of its own).
            let mut y = Layer::forward(&net, &x, &mut ctx);
            let id = BenchmarkId::new(format!("threads{threads}_into"), format!("batch{batch}"));
            group.bench_function(id, |b| {
                b.iter(|| Layer::forward_into(&net, black_box(&x), black_box(&mut y), &mut ctx))
            });
        }
    }
    group.finish();
}

/// `model`'s `predict_into` (output and context reused) on synthetic
/// images, at the batch sizes and thread counts asked for (`batches` unless
/// `STRATA_BENCH_BATCHES` says otherwise).
fn predict_group<M: Model>(c: &mut Criterion, name: &str, model: &M, batches: &[usize]) {
    let mut group = c.benchmark_group(format!("network/{name}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for batch in list("STRATA_BENCH_BATCHES", batches) {
        let values = batch * M::Input::DIMS.iter().product::<usize>();
        let pixels = (0..values).map(|i| ((i * 7919) % 1000) as f32 / 1000.0);
        let x = Batch::<M::Input>::from_vec(batch, pixels.collect()).expect("whole images");
        group.throughput(Throughput::Elements(batch as u64));
        for threads in list("STRATA_BENCH_THREADS", &[1, 2]) {
            let mut ctx = Context::inference().with_threads(threads);
            let mut y = Layer::forward(model, &x, &mut ctx);
            let id = BenchmarkId::new(format!("threads{threads}_into"), format!("batch{batch}"));
            group.bench_function(id, |b| {
                b.iter(|| model.predict_into(black_box(&x), black_box(&mut y), &mut ctx))
            });
        }
    }
    group.finish();
}

/// The CIFAR ResNet-20 (0.27M parameters, 41 MFLOPs an image).
fn resnet20(c: &mut Criterion) {
    predict_group(c, "resnet20", &ResNet20::new(), &[1, 64]);
}

/// Keras's MobileNetV2 (3.5M parameters, 0.3 GFLOPs an image).
fn mobilenet_v2(c: &mut Criterion) {
    predict_group(c, "mobilenet_v2", &MobileNetV2::new(), &[1, 64]);
}

criterion_group!(benches, network, resnet20, mobilenet_v2);
criterion_main!(benches);
