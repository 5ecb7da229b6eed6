//! Tests of the dense kernels: the forward pass against the naive product
//! and bit for bit against the layer's former code, the backward pass
//! against finite differences.

use super::*;
use crate::kernels::naive;
use crate::kernels::testutil::*;
use proptest::prelude::*;

#[test]
fn dense_backward_matches_finite_differences() {
    let case = (
        1usize..=6,
        1usize..=10,
        1usize..=6,
        any::<bool>(),
        any::<u64>(),
    );
    run(
        "dense_backward",
        256,
        case,
        |&(rows, n_in, units, with_bias, seed)| {
            let mut rng = rng(seed);
            let x = uniform_f32(&mut rng, rows * n_in, -1.0, 1.0);
            let w = uniform_f32(&mut rng, n_in * units, -1.0, 1.0);
            let b = uniform_f32(&mut rng, units, -1.0, 1.0);
            let r = uniform_f32(&mut rng, rows * units, -1.0, 1.0);
            let (x64, w64, b64, r64) = (to_f64(&x), to_f64(&w), to_f64(&b), to_f64(&r));
            let bias64 = with_bias.then_some(b64.as_slice());

            let reference = dense_ref(rows, n_in, units, &x64, &w64, bias64);
            let direct = naive::dense(&x, rows, &w, with_bias.then_some(b.as_slice()), units);
            for (a, b) in reference.iter().zip(&direct) {
                assert!(
                    (a - *b as f64).abs() <= 1e-4,
                    "dense reference {a} vs naive {b}"
                );
            }

            let gk0 = uniform_f32(&mut rng, n_in * units, -1.0, 1.0);
            let gb0 = uniform_f32(&mut rng, units, -1.0, 1.0);
            let mut gk = gk0.clone();
            let mut gb = gb0.clone();
            let mut gi = vec![f32::NAN; rows * n_in];
            backward(
                (rows, n_in, units),
                &x,
                &w,
                &r,
                &mut gk,
                with_bias.then_some(gb.as_mut_slice()),
                &mut gi,
                1,
            );
            let dk: Vec<f32> = gk.iter().zip(&gk0).map(|(a, b)| a - b).collect();
            let db: Vec<f32> = gb.iter().zip(&gb0).map(|(a, b)| a - b).collect();
            let f = |x: &[f64], w: &[f64], b: Option<&[f64]>| {
                dot(&r64, &dense_ref(rows, n_in, units, x, w, b))
            };
            let mut worst = check_gradient(
                "dense grad_kernel",
                &dk,
                &w64,
                |w| f(&x64, w, bias64),
                &mut rng,
            );
            worst = worst.max(check_gradient(
                "dense grad_input",
                &gi,
                &x64,
                |x| f(x, &w64, bias64),
                &mut rng,
            ));
            if with_bias {
                worst = worst.max(check_gradient(
                    "dense grad_bias",
                    &db,
                    &b64,
                    |b| f(&x64, &w64, Some(b)),
                    &mut rng,
                ));
            } else {
                assert_eq!(gb, gb0, "grad_bias changed without a bias");
            }
            Some(worst)
        },
    );
}

/// The forward pass against the naive product on both of its paths (small
/// products from the bias, large ones in column blocks), bitwise the same
/// on any number of threads, with exactly its scratch (NaN-filled).
#[test]
fn forward_matches_naive_and_ignores_threads() {
    let mut rng = rng(21);
    for &(rows, k, units) in &[
        (1, 7, 300),
        (8, 33, 256),
        (9, 33, 255),
        (9, 20, 256),
        (40, 65, 300),
        (64, 128, 513),
        (3, 0, 5),
    ] {
        let x = uniform_f32(&mut rng, rows * k, -1.0, 1.0);
        let w = uniform_f32(&mut rng, k * units, -1.0, 1.0);
        let b = uniform_f32(&mut rng, units, -1.0, 1.0);
        for bias in [None, Some(b.as_slice())] {
            let want = naive::dense(&x, rows, &w, bias, units);
            let run = |threads: usize| {
                let mut out = vec![f32::NAN; rows * units];
                let mut scratch = vec![f32::NAN; forward_scratch_len(rows, units, threads)];
                forward(
                    rows,
                    k,
                    units,
                    &x,
                    &w,
                    bias,
                    &mut out,
                    &mut scratch,
                    threads,
                );
                out
            };
            let one = run(1);
            for (i, (a, b)) in one.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4,
                    "({rows}, {k}, {units})[{i}]: {a} vs naive {b}"
                );
            }
            for threads in [2, 3, usize::MAX] {
                let many = run(threads);
                assert!(
                    one.iter()
                        .zip(&many)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "({rows}, {k}, {units}): {threads} threads differ"
                );
            }
        }
    }
}

/// Small products are exactly `sgemm` with `beta = 1` onto the bias (the
/// layer's former arithmetic); large ones exactly a plain product per
/// column block plus the bias.
#[test]
fn forward_keeps_the_former_arithmetic() {
    let mut rng = rng(22);
    for &(rows, k, units) in &[(4, 50, 300), (20, 50, 100), (20, 70, 300)] {
        let x = uniform_f32(&mut rng, rows * k, -1.0, 1.0);
        let w = uniform_f32(&mut rng, k * units, -1.0, 1.0);
        let b = uniform_f32(&mut rng, units, -1.0, 1.0);
        let mut out = vec![0.0; rows * units];
        let mut scratch = vec![0.0; forward_scratch_len(rows, units, 2)];
        forward(rows, k, units, &x, &w, Some(&b), &mut out, &mut scratch, 2);
        let mut want = vec![0.0; rows * units];
        if rows <= gemm::SMALL_M || units < 2 * COLUMN_BLOCK {
            for row in want.chunks_exact_mut(units) {
                row.copy_from_slice(&b);
            }
            sgemm(rows, k, units, &x, &w, 1.0, &mut want);
        } else {
            for first in (0..units).step_by(COLUMN_BLOCK) {
                let width = (units - first).min(COLUMN_BLOCK);
                let mut block = vec![0.0; rows * width];
                gemm::sgemm_strided(
                    rows,
                    k,
                    width,
                    &x,
                    k,
                    &w[first..],
                    units,
                    0.0,
                    &mut block,
                    width,
                );
                for r in 0..rows {
                    for j in 0..width {
                        want[r * units + first + j] = block[r * width + j] + b[first + j];
                    }
                }
            }
        }
        assert_eq!(out, want, "({rows}, {k}, {units})");
    }
}

/// Issue 9: the dense kernels reach the unsafe GEMM code (small-`m`
/// dispatch, `matrixmultiply`): sizes whose products overflow and slices
/// one value short panic before anything is read; empty products do
/// nothing.
#[test]
fn dense_rejects_hostile_sizes() {
    let panics = |f: &dyn Fn()| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err();
    let huge = (((1u128 << 64) + 2) / 6) as usize;
    for (rows, k, units) in [(6, huge, 18), (huge, 6, 2), (20, huge, 300), (3, 4, 5)] {
        let short = (rows, k, units) == (3, 4, 5);
        let x = vec![1.0f32; if short { 11 } else { 64 }];
        assert!(
            panics(&|| {
                let mut out = vec![0.0f32; 6000];
                let mut scratch = vec![0.0f32; 6000];
                let w = [1.0f32; 64];
                forward(rows, k, units, &x, &w, None, &mut out, &mut scratch, 4);
            }),
            "forward ({rows}, {k}, {units}): no panic"
        );
        assert!(
            panics(&|| {
                let (mut gk, mut gi) = (vec![0.0f32; 64], vec![0.0f32; 64]);
                let dy = [1.0f32; 64];
                backward(
                    (rows, k, units),
                    &x,
                    &[1.0; 64],
                    &dy,
                    &mut gk,
                    None,
                    &mut gi,
                    4,
                );
            }),
            "backward ({rows}, {k}, {units}): no panic"
        );
    }
    // Nothing to compute: nothing read, nothing written.
    let mut out: [f32; 0] = [];
    forward(
        0,
        5,
        7,
        &[],
        &[0.0; 35],
        None,
        &mut out,
        &mut [],
        usize::MAX,
    );
    forward(
        3,
        5,
        0,
        &[0.0; 15],
        &[],
        None,
        &mut out,
        &mut [],
        usize::MAX,
    );
    let mut gi = [7.0f32; 4];
    backward(
        (0, 4, 3),
        &[],
        &[0.0; 12],
        &[],
        &mut [0.0; 12],
        None,
        &mut [],
        2,
    );
    backward((1, 4, 0), &[1.0; 4], &[], &[], &mut [], None, &mut gi, 2);
    assert_eq!(gi, [0.0; 4], "an empty product still defines dX = 0");
}

/// The backward pass shares the input gradient and fixed blocks of kernel
/// gradient rows among threads: past one block of rows, the gradients
/// match the plain products and are the same bits on any thread count.
#[test]
fn dense_backward_is_thread_invariant() {
    let (rows, n_in, units) = (24, 2 * GRAD_ROW_BLOCK + 37, 70);
    let mut rng = rng(5);
    let x = uniform_f32(&mut rng, rows * n_in, -1.0, 1.0);
    let w = uniform_f32(&mut rng, n_in * units, -1.0, 1.0);
    let dy = uniform_f32(&mut rng, rows * units, -1.0, 1.0);
    let run = |threads: usize| {
        let (mut gk, mut gb) = (vec![0.5f32; w.len()], vec![0.25f32; units]);
        let mut gi = vec![f32::NAN; x.len()];
        let sizes = (rows, n_in, units);
        backward(sizes, &x, &w, &dy, &mut gk, Some(&mut gb), &mut gi, threads);
        (gk, gb, gi)
    };
    let (gk, gb, gi) = run(1);
    for threads in [2, 3, 8] {
        assert!(
            run(threads) == (gk.clone(), gb.clone(), gi.clone()),
            "{threads} threads"
        );
    }
    for i in 0..n_in {
        for u in 0..units {
            let want: f64 = (0..rows)
                .map(|r| x[r * n_in + i] as f64 * dy[r * units + u] as f64)
                .sum();
            let got = (gk[i * units + u] - 0.5) as f64;
            assert!((got - want).abs() < 1e-4, "dW[{i}, {u}]: {got} vs {want}");
        }
    }
    for r in 0..rows {
        for i in 0..n_in {
            let want: f64 = (0..units)
                .map(|u| dy[r * units + u] as f64 * w[i * units + u] as f64)
                .sum();
            let got = gi[r * n_in + i] as f64;
            assert!((got - want).abs() < 1e-4, "dX[{r}, {i}]: {got} vs {want}");
        }
    }
    for (u, b) in gb.iter().enumerate() {
        let want: f64 = (0..rows).map(|r| dy[r * units + u] as f64).sum();
        assert!(((b - 0.25) as f64 - want).abs() < 1e-4, "db[{u}]");
    }
}
