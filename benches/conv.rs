//! Forward of one Conv2D (bias included) on the configurations of
//! BENCHMARKS.md, each beside its baseline measured in the same run:
//! `matrixmultiply::sgemm` alone on that configuration's im2col GEMM shape
//! (M = N·Ho·Wo, K = Kh·Kw·Cin, N = Cout) with the operands already in place.
//! On c1 and c3 a naive direct convolution shows what im2col + GEMM buys.
//!
//! Each configuration runs on 1 and 2 threads (`strata_t1`, `strata_t2`);
//! the 2-thread baseline (`sgemm_baseline_t2`) splits the GEMM's rows in
//! two halves, each a single-threaded sgemm on its own scoped thread.
//!
//! `cargo bench --bench conv`; throughput is reported in FLOP/s with
//! FLOPs = 2·N·Ho·Wo·Cout·Cin·Kh·Kw. Restrict with
//! `STRATA_BENCH_CONFIGS=c1,c6` and `STRATA_BENCH_THREADS=1`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata::kernels::{naive, sgemm, ConvGeometry};
use strata::prelude::*;
use strata::{Context, Conv2D, Same, Valid};

#[path = "env_list.rs"]
mod env_list;

fn values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

/// Benchmarks layer `L` (one Conv2D) at batch `n` against sgemm on its GEMM.
fn bench_conv<L: Layer>(
    c: &mut Criterion,
    id: &str,
    layer: L,
    n: usize,
    geometry: ConvGeometry,
    cout: usize,
    naive_too: bool,
) {
    let x = Batch::<L::Input>::from_vec(n, values(n * <L::Input as Shape>::NUMEL)).unwrap();
    let (m, k) = (geometry.out_pixels(), geometry.patch_len());
    let flops = 2 * m * k * cout;
    let mut group = c.benchmark_group(format!("conv/{id}"));
    group.throughput(Throughput::Elements(flops as u64));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    let threads = thread_counts();
    for &t in &threads {
        // Output and context reused across calls, as `predict_into` does:
        // the baseline writes into a buffer allocated once, too.
        let mut ctx = Context::inference().with_threads(t);
        let mut y = layer.forward(&x, &mut ctx);
        group.bench_function(BenchmarkId::new(format!("strata_t{t}"), id), |b| {
            b.iter(|| layer.forward_into(black_box(&x), black_box(&mut y), &mut ctx))
        });
    }

    let a = values(m * k);
    let w = values(k * cout);
    let mut out = vec![0.0f32; m * cout];
    if threads.contains(&1) {
        group.bench_function(BenchmarkId::new("sgemm_baseline", id), |b| {
            b.iter(|| {
                sgemm(
                    m,
                    k,
                    cout,
                    black_box(&a),
                    black_box(&w),
                    0.0,
                    black_box(&mut out),
                )
            })
        });
    }
    if threads.contains(&2) {
        let half = m.div_ceil(2);
        group.bench_function(BenchmarkId::new("sgemm_baseline_t2", id), |b| {
            b.iter(|| {
                let (top, bottom) = out.split_at_mut(half * cout);
                std::thread::scope(|s| {
                    s.spawn(|| sgemm(half, k, cout, &a, &w, 0.0, black_box(top)));
                    sgemm(
                        m - half,
                        k,
                        cout,
                        &a[half * k..],
                        &w,
                        0.0,
                        black_box(bottom),
                    );
                });
            })
        });
    }

    if naive_too {
        let bias = vec![0.1f32; cout];
        group.bench_function(BenchmarkId::new("naive_direct", id), |b| {
            b.iter(|| {
                black_box(naive::conv2d(
                    &geometry,
                    x.as_slice(),
                    &w,
                    Some(&bias),
                    cout,
                ))
            })
        });
    }
    group.finish();
}

/// Thread counts to measure: `STRATA_BENCH_THREADS` (default 1,2).
fn thread_counts() -> Vec<usize> {
    env_list::list("STRATA_BENCH_THREADS", &[1, 2])
}

fn geometry(n: usize, hwc: (usize, usize, usize), k: usize, s: usize, p: Padding) -> ConvGeometry {
    ConvGeometry::new(n, hwc, (k, k), (s, s), p).expect("valid configuration")
}

fn convs(c: &mut Criterion) {
    let rng = &mut seeded_rng(1);
    let only = std::env::var("STRATA_BENCH_CONFIGS").unwrap_or_default();
    let wanted = |id: &str| only.is_empty() || only.split(',').any(|w| w == id);

    if wanted("c1") {
        let l: Conv2D<Shape3<U32, U32, U3>, U32, U3, U3, U1, U1, Same> = Conv2D::new(true, rng);
        bench_conv(
            c,
            "c1",
            l,
            64,
            geometry(64, (32, 32, 3), 3, 1, Padding::Same),
            32,
            true,
        );
    }
    if wanted("c2") {
        let l: Conv2D<Shape3<U32, U32, U32>, U32, U3, U3, U1, U1, Valid> = Conv2D::new(true, rng);
        bench_conv(
            c,
            "c2",
            l,
            64,
            geometry(64, (32, 32, 32), 3, 1, Padding::Valid),
            32,
            false,
        );
    }
    if wanted("c3") {
        let l: Conv2D<Shape3<U15, U15, U32>, U64, U3, U3, U1, U1, Same> = Conv2D::new(true, rng);
        bench_conv(
            c,
            "c3",
            l,
            64,
            geometry(64, (15, 15, 32), 3, 1, Padding::Same),
            64,
            true,
        );
    }
    if wanted("c4") {
        let l: Conv2D<Shape3<U56, U56, U64>, U64, U3, U3, U1, U1, Same> = Conv2D::new(true, rng);
        bench_conv(
            c,
            "c4",
            l,
            8,
            geometry(8, (56, 56, 64), 3, 1, Padding::Same),
            64,
            false,
        );
    }
    if wanted("c5") {
        let l: Conv2D<Shape3<U28, U28, U128>, U128, U3, U3, U1, U1, Same> = Conv2D::new(true, rng);
        bench_conv(
            c,
            "c5",
            l,
            8,
            geometry(8, (28, 28, 128), 3, 1, Padding::Same),
            128,
            false,
        );
    }
    if wanted("c6") {
        let l: Conv2D<Shape3<U14, U14, U256>, U256, U3, U3, U1, U1, Same> = Conv2D::new(true, rng);
        bench_conv(
            c,
            "c6",
            l,
            8,
            geometry(8, (14, 14, 256), 3, 1, Padding::Same),
            256,
            false,
        );
    }
    if wanted("c7") {
        let l: Conv2D<Shape3<U56, U56, U64>, U256, U1, U1, U1, U1, Valid> = Conv2D::new(true, rng);
        bench_conv(
            c,
            "c7",
            l,
            8,
            geometry(8, (56, 56, 64), 1, 1, Padding::Valid),
            256,
            false,
        );
    }
    if wanted("c8") {
        let l: Conv2D<Shape3<U224, U224, U3>, U64, U7, U7, U2, U2, Same> = Conv2D::new(true, rng);
        bench_conv(
            c,
            "c8",
            l,
            1,
            geometry(1, (224, 224, 3), 7, 2, Padding::Same),
            64,
            false,
        );
    }
}

criterion_group!(benches, convs);
criterion_main!(benches);
