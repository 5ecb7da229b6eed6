//! Every convolution path (`strata::kernels::ConvPath`) on the 3×3
//! stride-1 shapes of ResNet-20's three stages (32×32×16, 16×16×32 and
//! 8×8×64, 'same', channels in = channels out) at batch 1, 8 and 64, one
//! thread, with BatchNormalization and relu as the epilogue and each
//! path's kernel prepared beforehand (Winograd's transform, the direct
//! kernel's panels), as a network at inference runs them: the
//! measurements behind `choose_path`'s rules, repeatable on any machine.
//!
//! `cargo bench --bench paths`; throughput in FLOP/s (FLOPs =
//! 2·N·Ho·Wo·Cout·Cin·9). Restrict with `STRATA_BENCH_BATCHES=1,8`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata::kernels::{
    choose_path, conv2d_with, ConvExtras, ConvGeometry, ConvPath, Epilogue, Isa, PreparedKernel,
    Step,
};
use strata::Padding;

#[path = "env_list.rs"]
mod env_list;

fn values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

fn paths(c: &mut Criterion) {
    let isa = Isa::detect();
    for (side, channels) in [(32, 16), (16, 32), (8, 64)] {
        for n in env_list::list("STRATA_BENCH_BATCHES", &[1, 8, 64]) {
            let g = ConvGeometry::new(n, (side, side, channels), (3, 3), (1, 1), Padding::Same)
                .expect("valid configuration");
            let x = values(g.input_len());
            let kernel = values(9 * channels * channels);
            let scale = vec![0.9; channels];
            let shift = vec![0.1; channels];
            let steps = [
                Step::Affine {
                    scale: &scale,
                    shift: &shift,
                },
                Step::Clamp {
                    lo: 0.0,
                    hi: f32::INFINITY,
                },
            ];
            let id = format!("{side}x{side}x{channels}/batch{n}");
            let mut group = c.benchmark_group("paths");
            let flops = 2 * g.out_pixels() * g.patch_len() * channels;
            group
                .throughput(Throughput::Elements(flops as u64))
                .sample_size(10)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(2));
            let chosen = choose_path(&g, channels);
            for path in [
                ConvPath::Im2col,
                ConvPath::Direct(isa),
                ConvPath::Winograd,
                ConvPath::Winograd4,
            ] {
                if !path.supports(&g, channels) {
                    continue;
                }
                let prepared = PreparedKernel::with_path(path, &g, &kernel, channels);
                let mut y = vec![0.0; g.out_pixels() * channels];
                let mut scratch = vec![0.0; path.scratch_len(&g, channels, 1)];
                let mark = if path == chosen { " (chosen)" } else { "" };
                let name = format!("{path:?}{mark}");
                group.bench_function(BenchmarkId::new(name, &id), |b| {
                    b.iter(|| {
                        let extras = ConvExtras {
                            prepared: prepared.as_ref(),
                            epilogue: Epilogue::new(&steps),
                        };
                        conv2d_with(
                            path,
                            &g,
                            black_box(&x),
                            &kernel,
                            None,
                            channels,
                            &mut y,
                            &mut scratch,
                            1,
                            extras,
                        )
                    })
                });
            }
            group.finish();
        }
    }
}

criterion_group!(benches, paths);
criterion_main!(benches);
