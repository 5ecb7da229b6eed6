//! One training step (forward, backward, Adam update) of the cifar-style
//! network (the README's seed network) at batch 64, in images/s, on 1 and 2 threads.
//!
//! `cargo bench --bench train`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata::prelude::*;

fn train_step(c: &mut Criterion) {
    let batch = 64;
    let x = Batch::<Shape3<U32, U32, U3>>::from_vec(
        batch,
        (0..batch * 32 * 32 * 3)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect(),
    )
    .unwrap();
    let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();

    let mut group = c.benchmark_group("train_step/cifar_cnn");
    group.throughput(Throughput::Elements(batch as u64));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for threads in [1, 2] {
        let net = sequential![
            Input(32, 32, 3) => Conv2D(32, (3, 3), same) => relu => Conv2D(32, (3, 3)) => relu
            => MaxPool(2, 2) => Dropout(0.25) => Conv2D(64, (3, 3), same) => relu
            => Conv2D(64, (3, 3)) => relu => MaxPool(2, 2) => Dropout(0.25) => Flatten
            => Dense(512) => relu => Dropout(0.5) => Dense(10) => softmax
        ];
        let mut model = net
            .compile(Loss::sparse_categorical_crossentropy(), Adam::new(1e-4))
            .with_threads(threads);
        let mut seed = 0;
        group.bench_function(BenchmarkId::new("batch64_threads", threads), |b| {
            b.iter(|| {
                seed += 1;
                black_box(model.train_on_batch(&x, &labels, seed).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
