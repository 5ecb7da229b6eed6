//! Property tests of the backward kernels (`kernels::grad`) and of the
//! activations' backward passes, against central finite differences of
//! independent f64 reference forward passes written here.
//!
//! Every check is on the scalar `L = Σ r ⊙ Y` for a random `r`, so that
//! `dL/dY = r` is what the kernels are given. The references are linear (or
//! piecewise linear, for max pooling with distinct values) in the perturbed
//! argument, so f64 central differences with `eps = 1e-6` are essentially
//! exact: the tolerance (1e-4 of the tensor's largest gradient) only has to
//! absorb the f32 arithmetic of the kernels.
//!
//! Each case checks up to `COORDS` sampled coordinates of every gradient one
//! by one, plus the full gradient through directional derivatives along
//! random directions (which sees every coordinate at once).
//!
//! Run with `--nocapture` to see the worst error each property observed.

use std::cell::Cell;
use std::fmt::Debug;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use strata_core::activation::{ActivationFn, Linear, Relu, Sigmoid, Softmax, Tanh};
use strata_core::kernels::{gemm, grad, naive, ConvGeometry};
use strata_core::shape::Padding;

/// Central-difference step (f64).
const EPS: f64 = 1e-6;
/// Allowed error, relative to the largest |gradient| of the tensor (or to
/// `SCALE_FLOOR`, whichever is larger).
const TOL: f64 = 1e-4;
/// The smallest scale errors are measured against: when every gradient is
/// tiny through cancellation (a softmax row dominated by one class, a bias
/// gradient summing to almost zero), f32 rounding of the O(1) terms still
/// leaves ~1e-7 absolute. So errors below `TOL · SCALE_FLOOR = 1e-6` pass.
const SCALE_FLOOR: f64 = 1e-2;
/// Coordinates checked one by one per gradient tensor.
const COORDS: usize = 48;
/// Random directions per gradient tensor.
const DIRECTIONS: usize = 2;

// ---------------------------------------------------------------------------
// Running properties
// ---------------------------------------------------------------------------

/// Runs `test` on `cases` values of `strategy`; `test` returns the worst
/// relative error it saw, or `None` to reject the value (a geometry with no
/// window). Prints the worst error over all cases.
fn run<S>(name: &str, cases: u32, strategy: S, test: impl Fn(&S::Value) -> Option<f64>)
where
    S: Strategy,
    S::Value: Debug,
{
    let config = Config {
        cases,
        failure_persistence: None,
        max_global_rejects: 100 * cases,
        ..Config::default()
    };
    let worst = Cell::new(0.0f64);
    let checked = Cell::new(0u32);
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |value| match test(&value) {
        Some(err) => {
            worst.set(worst.get().max(err));
            checked.set(checked.get() + 1);
            Ok(())
        }
        None => Err(TestCaseError::reject("no window fits")),
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    println!(
        "{name}: {} cases, worst error {:.3e} (relative to the largest gradient, at least {SCALE_FLOOR})",
        checked.get(),
        worst.get()
    );
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn uniform_f32(rng: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// `Σ r ⊙ y`.
fn dot(r: &[f64], y: &[f64]) -> f64 {
    assert_eq!(r.len(), y.len(), "reference output length");
    r.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// Checks `analytic` (the kernel's gradient of `f` at `point`) against
/// central differences of `f`: up to `COORDS` random coordinates one at a
/// time, and `DIRECTIONS` random directions over all coordinates. Returns the
/// worst error relative to the tensor's scale (its largest |gradient|, at
/// least `SCALE_FLOOR`).
fn check_gradient(
    what: &str,
    analytic: &[f32],
    point: &[f64],
    f: impl Fn(&[f64]) -> f64,
    rng: &mut ChaCha8Rng,
) -> f64 {
    assert_eq!(analytic.len(), point.len(), "{what}: gradient length");
    assert!(
        analytic.iter().all(|g| g.is_finite()),
        "{what}: non-finite gradient {analytic:?}"
    );
    let n = point.len();
    let mut coords: Vec<usize> = (0..n).collect();
    coords.shuffle(rng);
    coords.truncate(COORDS);
    let mut p = point.to_vec();
    let mut fd = Vec::with_capacity(coords.len());
    for &i in &coords {
        p[i] = point[i] + EPS;
        let up = f(&p);
        p[i] = point[i] - EPS;
        let down = f(&p);
        p[i] = point[i];
        fd.push((up - down) / (2.0 * EPS));
    }
    let scale = analytic
        .iter()
        .map(|g| (*g as f64).abs())
        .chain(fd.iter().map(|d| d.abs()))
        .fold(SCALE_FLOOR, f64::max);
    let mut worst = 0.0f64;
    for (&i, d) in coords.iter().zip(&fd) {
        let err = (analytic[i] as f64 - d).abs() / scale;
        assert!(
            err <= TOL,
            "{what}[{i}]: kernel {} vs finite difference {d} (error {err:e} of scale {scale})",
            analytic[i]
        );
        worst = worst.max(err);
    }
    for _ in 0..DIRECTIONS {
        let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let shifted =
            |s: f64| -> Vec<f64> { point.iter().zip(&v).map(|(p, v)| p + s * v).collect() };
        let fd = (f(&shifted(EPS)) - f(&shifted(-EPS))) / (2.0 * EPS);
        let predicted: f64 = analytic.iter().zip(&v).map(|(g, v)| *g as f64 * v).sum();
        let size: f64 = analytic
            .iter()
            .zip(&v)
            .map(|(g, v)| (*g as f64 * v).abs())
            .sum();
        let err = (predicted - fd).abs() / size.max(scale);
        assert!(
            err <= TOL,
            "{what}: directional derivative {predicted} vs finite difference {fd} (error {err:e})"
        );
        worst = worst.max(err);
    }
    worst
}

// ---------------------------------------------------------------------------
// Independent f64 references
// ---------------------------------------------------------------------------

/// Direct convolution, NHWC input, HWIO kernel, NHWC output, with Keras
/// padding given by the geometry's `pad_top` / `pad_left` (cells outside
/// the input are zeros).
fn conv_ref(
    g: &ConvGeometry,
    x: &[f64],
    w: &[f64],
    bias: Option<&[f64]>,
    out_c: usize,
) -> Vec<f64> {
    let mut y = Vec::with_capacity(g.batch * g.out_h * g.out_w * out_c);
    for n in 0..g.batch {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                for f in 0..out_c {
                    let mut acc = bias.map_or(0.0, |b| b[f]);
                    for ky in 0..g.k_h {
                        for kx in 0..g.k_w {
                            let iy = (oy * g.s_h + ky) as i64 - g.pad_top as i64;
                            let ix = (ox * g.s_w + kx) as i64 - g.pad_left as i64;
                            if iy < 0 || ix < 0 || iy >= g.in_h as i64 || ix >= g.in_w as i64 {
                                continue;
                            }
                            let (iy, ix) = (iy as usize, ix as usize);
                            for c in 0..g.in_c {
                                let xv = x[((n * g.in_h + iy) * g.in_w + ix) * g.in_c + c];
                                let wv = w[((ky * g.k_w + kx) * g.in_c + c) * out_c + f];
                                acc += xv * wv;
                            }
                        }
                    }
                    y.push(acc);
                }
            }
        }
    }
    y
}

/// `y = x · w + b` with `x` `rows × n_in`, `w` `n_in × units`.
fn dense_ref(
    rows: usize,
    n_in: usize,
    units: usize,
    x: &[f64],
    w: &[f64],
    b: Option<&[f64]>,
) -> Vec<f64> {
    let mut y = Vec::with_capacity(rows * units);
    for r in 0..rows {
        for u in 0..units {
            let mut acc = b.map_or(0.0, |b| b[u]);
            for i in 0..n_in {
                acc += x[r * n_in + i] * w[i * units + u];
            }
            y.push(acc);
        }
    }
    y
}

/// Max (or mean) of the window's cells that lie inside the input; padding
/// cells never count.
fn pool_ref(g: &ConvGeometry, x: &[f64], max: bool) -> Vec<f64> {
    let c = g.in_c;
    let mut y = Vec::with_capacity(g.batch * g.out_h * g.out_w * c);
    for n in 0..g.batch {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                for ch in 0..c {
                    let mut cells = Vec::new();
                    for ky in 0..g.k_h {
                        for kx in 0..g.k_w {
                            let iy = (oy * g.s_h + ky) as i64 - g.pad_top as i64;
                            let ix = (ox * g.s_w + kx) as i64 - g.pad_left as i64;
                            if iy >= 0 && ix >= 0 && iy < g.in_h as i64 && ix < g.in_w as i64 {
                                cells.push(
                                    x[((n * g.in_h + iy as usize) * g.in_w + ix as usize) * c + ch],
                                );
                            }
                        }
                    }
                    assert!(!cells.is_empty(), "a window with no input cell: {g:?}");
                    y.push(if max {
                        cells.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                    } else {
                        cells.iter().sum::<f64>() / cells.len() as f64
                    });
                }
            }
        }
    }
    y
}

// ---------------------------------------------------------------------------
// Geometry
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct WindowCase {
    batch: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    same: bool,
    bias: bool,
    seed: u64,
}

impl WindowCase {
    /// The geometry, or `None` when `ConvGeometry::new` rejects it (which
    /// must be exactly when a valid window is larger than the input).
    fn geometry(&self) -> Option<ConvGeometry> {
        let padding = if self.same {
            Padding::Same
        } else {
            Padding::Valid
        };
        let g = ConvGeometry::new(
            self.batch,
            (self.h, self.w, self.cin),
            (self.kh, self.kw),
            (self.sh, self.sw),
            padding,
        );
        let fits = self.same || (self.kh <= self.h && self.kw <= self.w);
        assert_eq!(g.is_some(), fits, "ConvGeometry::new on {self:?}");
        g
    }
}

fn window_case() -> impl Strategy<Value = WindowCase> {
    (
        (1usize..=3, 1usize..=9, 1usize..=9, 1usize..=4, 1usize..=4),
        (1usize..=4, 1usize..=4, 1usize..=3, 1usize..=3),
        (any::<bool>(), any::<bool>(), any::<u64>()),
    )
        .prop_map(
            |((batch, h, w, cin, cout), (kh, kw, sh, sw), (same, bias, seed))| WindowCase {
                batch,
                h,
                w,
                cin,
                cout,
                kh,
                kw,
                sh,
                sw,
                same,
                bias,
                seed,
            },
        )
}

// ---------------------------------------------------------------------------
// Convolution
// ---------------------------------------------------------------------------

/// Checks `conv2d_backward` on `g` with `out_c` filters; returns the worst
/// error.
fn check_conv(g: &ConvGeometry, out_c: usize, with_bias: bool, seed: u64) -> f64 {
    let mut rng = rng(seed);
    let k = g.patch_len();
    let m = g.out_pixels();
    let x = uniform_f32(&mut rng, g.input_len(), -1.0, 1.0);
    let w = uniform_f32(&mut rng, k * out_c, -1.0, 1.0);
    let b = uniform_f32(&mut rng, out_c, -1.0, 1.0);
    let r = uniform_f32(&mut rng, m * out_c, -1.0, 1.0);
    let (x64, w64, b64, r64) = (to_f64(&x), to_f64(&w), to_f64(&b), to_f64(&r));
    let bias64 = with_bias.then_some(b64.as_slice());

    // The reference computes the same function as the library's forward.
    let reference = conv_ref(g, &x64, &w64, bias64, out_c);
    let direct = naive::conv2d(g, &x, &w, with_bias.then_some(b.as_slice()), out_c);
    for (i, (a, b)) in reference.iter().zip(&direct).enumerate() {
        assert!(
            (a - *b as f64).abs() <= 1e-4,
            "forward reference [{i}]: {a} vs naive {b} on {g:?}"
        );
    }

    // grad_kernel and grad_bias are added to, grad_input is overwritten.
    let gk0 = uniform_f32(&mut rng, k * out_c, -1.0, 1.0);
    let gb0 = uniform_f32(&mut rng, out_c, -1.0, 1.0);
    let mut gk = gk0.clone();
    let mut gb = gb0.clone();
    let mut gi = vec![f32::NAN; g.input_len()];
    grad::conv2d_backward(
        g,
        &x,
        &w,
        &r,
        out_c,
        &mut gk,
        with_bias.then_some(gb.as_mut_slice()),
        &mut gi,
    );
    let dk: Vec<f32> = gk.iter().zip(&gk0).map(|(a, b)| a - b).collect();
    let db: Vec<f32> = gb.iter().zip(&gb0).map(|(a, b)| a - b).collect();

    let mut worst = check_gradient(
        "conv grad_kernel",
        &dk,
        &w64,
        |w| dot(&r64, &conv_ref(g, &x64, w, bias64, out_c)),
        &mut rng,
    );
    worst = worst.max(check_gradient(
        "conv grad_input",
        &gi,
        &x64,
        |x| dot(&r64, &conv_ref(g, x, &w64, bias64, out_c)),
        &mut rng,
    ));
    if with_bias {
        worst = worst.max(check_gradient(
            "conv grad_bias",
            &db,
            &b64,
            |b| dot(&r64, &conv_ref(g, &x64, &w64, Some(b), out_c)),
            &mut rng,
        ));
    } else {
        assert_eq!(gb, gb0, "grad_bias changed without a bias");
    }
    worst
}

#[test]
fn conv2d_backward_matches_finite_differences() {
    run("conv2d_backward", 256, window_case(), |c| {
        let g = c.geometry()?;
        Some(check_conv(&g, c.cout, c.bias, c.seed))
    });
}

/// The kernel processes output rows in tiles (of at most 1024 rows); the
/// random geometries above never have more than one. This one has several,
/// the last one partial.
#[test]
fn conv2d_backward_across_tiles() {
    for (same, seed) in [(true, 1), (false, 2)] {
        let padding = if same { Padding::Same } else { Padding::Valid };
        let g = ConvGeometry::new(2, (37, 31, 2), (3, 2), (1, 1), padding).unwrap();
        assert!(g.out_pixels() > 2048, "{g:?} should span three tiles");
        let worst = check_conv(&g, 3, true, seed);
        println!("conv2d_backward across tiles (same: {same}): worst error {worst:.3e}");
    }
}

// ---------------------------------------------------------------------------
// Dense
// ---------------------------------------------------------------------------

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
            grad::dense_backward(
                (rows, n_in, units),
                &x,
                &w,
                &r,
                &mut gk,
                with_bias.then_some(gb.as_mut_slice()),
                &mut gi,
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

// ---------------------------------------------------------------------------
// Pooling
// ---------------------------------------------------------------------------

/// `n` distinct values at least 0.01 apart, in random order, shifted so that
/// some cases are all negative (where a padding cell taken as 0 would win a
/// max) and some all positive.
fn distinct_values(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    let mut ranks: Vec<usize> = (0..n).collect();
    ranks.shuffle(rng);
    let shift = match rng.random_range(0..3) {
        0 => -(n as f32) * 0.01 - 0.5,
        1 => 0.5,
        _ => -(n as f32) * 0.005,
    };
    ranks.iter().map(|&k| k as f32 * 0.01 + shift).collect()
}

#[test]
fn max_pool2d_backward_matches_finite_differences() {
    run("max_pool2d_backward", 256, window_case(), |c| {
        let g = c.geometry()?;
        let mut rng = rng(c.seed);
        let x = distinct_values(&mut rng, g.input_len());
        let r = uniform_f32(&mut rng, g.out_pixels() * g.in_c, -1.0, 1.0);
        let (x64, r64) = (to_f64(&x), to_f64(&r));
        let reference = pool_ref(&g, &x64, true);
        let direct = naive::pool2d(&g, &x, true);
        for (a, b) in reference.iter().zip(&direct) {
            assert_eq!(*a as f32, *b, "max pool reference vs naive on {g:?}");
        }
        let mut gi = vec![f32::NAN; g.input_len()];
        grad::max_pool2d_backward(&g, &x, &r, &mut gi);
        Some(check_gradient(
            "max pool grad_input",
            &gi,
            &x64,
            |x| dot(&r64, &pool_ref(&g, x, true)),
            &mut rng,
        ))
    });
}

#[test]
fn avg_pool2d_backward_matches_finite_differences() {
    run("avg_pool2d_backward", 256, window_case(), |c| {
        let g = c.geometry()?;
        let mut rng = rng(c.seed);
        let x = uniform_f32(&mut rng, g.input_len(), -1.0, 1.0);
        let r = uniform_f32(&mut rng, g.out_pixels() * g.in_c, -1.0, 1.0);
        let (x64, r64) = (to_f64(&x), to_f64(&r));
        let reference = pool_ref(&g, &x64, false);
        let direct = naive::pool2d(&g, &x, false);
        for (a, b) in reference.iter().zip(&direct) {
            assert!(
                (a - *b as f64).abs() <= 1e-5,
                "avg pool reference {a} vs naive {b} on {g:?}"
            );
        }
        let mut gi = vec![f32::NAN; g.input_len()];
        grad::avg_pool2d_backward(&g, &r, &mut gi);
        Some(check_gradient(
            "avg pool grad_input",
            &gi,
            &x64,
            |x| dot(&r64, &pool_ref(&g, x, false)),
            &mut rng,
        ))
    });
}

// ---------------------------------------------------------------------------
// Strided GEMM
// ---------------------------------------------------------------------------

/// A `rows × cols` matrix stored row-major (`transposed: false`) or
/// column-major, with `pad` unused values after each stored line: its
/// buffer and its `(row, column)` element strides.
fn layout(rows: usize, cols: usize, transposed: bool, pad: usize) -> (usize, (usize, usize)) {
    if transposed {
        let ld = rows + pad;
        (cols * ld, (1, ld))
    } else {
        let ld = cols + pad;
        (rows * ld, (ld, 1))
    }
}

#[test]
fn sgemm_strided_matches_naive_matmul() {
    let case = (
        (0usize..=7, 0usize..=7, 0usize..=7),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        (0usize..=2, 0usize..=2, 0usize..=2),
        (
            prop::sample::select(vec![0.0f32, 1.0, 0.5, -2.0]),
            any::<u64>(),
        ),
    );
    run(
        "sgemm_strided",
        256,
        case,
        |&((m, k, n), (ta, tb, tc), (pa, pb, pc), (beta, seed))| {
            let mut rng = rng(seed);
            let (a_len, a_st) = layout(m, k, ta, pa);
            let (b_len, b_st) = layout(k, n, tb, pb);
            let (c_len, c_st) = layout(m, n, tc, pc);
            let a = uniform_f32(&mut rng, a_len, -1.0, 1.0);
            let b = uniform_f32(&mut rng, b_len, -1.0, 1.0);
            let c0 = uniform_f32(&mut rng, c_len, -1.0, 1.0);
            let mut c = c0.clone();
            gemm::sgemm_general((m, k, n), &a, a_st, &b, b_st, beta, &mut c, c_st);
            let at =
                |v: &[f32], (rs, cs): (usize, usize), i: usize, j: usize| v[i * rs + j * cs] as f64;
            let mut in_matrix = vec![false; c_len];
            let mut worst = 0.0f64;
            for i in 0..m {
                for j in 0..n {
                    let mut expected = beta as f64 * at(&c0, c_st, i, j);
                    let mut size = expected.abs();
                    for p in 0..k {
                        let t = at(&a, a_st, i, p) * at(&b, b_st, p, j);
                        expected += t;
                        size += t.abs();
                    }
                    let got = at(&c, c_st, i, j);
                    let err = (got - expected).abs() / size.max(1e-3);
                    assert!(
                        err <= 1e-5,
                        "c[{i}][{j}] = {got}, expected {expected} ((m, k, n) = {:?})",
                        (m, k, n)
                    );
                    worst = worst.max(err);
                    in_matrix[i * c_st.0 + j * c_st.1] = true;
                }
            }
            for (idx, (got, before)) in c.iter().zip(&c0).enumerate() {
                if !in_matrix[idx] {
                    assert_eq!(
                        got.to_bits(),
                        before.to_bits(),
                        "padding c[{idx}] was written"
                    );
                }
            }
            Some(worst)
        },
    );
}

/// With `beta = 0`, `c`'s old contents do not matter (the BLAS convention
/// matrixmultiply follows): not even a NaN there shows through, whatever `k`.
#[test]
fn sgemm_strided_beta_zero_overwrites_c() {
    for k in [0usize, 1, 3] {
        let (m, n) = (2, 3);
        let a: Vec<f32> = (0..m * k).map(|v| v as f32 + 1.0).collect();
        let b: Vec<f32> = (0..k * n).map(|v| 0.5 - v as f32).collect();
        let mut c = vec![f32::NAN; m * n];
        gemm::sgemm_general((m, k, n), &a, (k, 1), &b, (n, 1), 0.0, &mut c, (n, 1));
        for i in 0..m {
            for j in 0..n {
                let expected: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                assert_eq!(c[i * n + j], expected, "k = {k}: c[{i}][{j}]");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Activations
// ---------------------------------------------------------------------------

/// The f64 reference of an activation over rows of `last` values.
fn activation_ref(name: &str, x: &[f64], last: usize) -> Vec<f64> {
    match name {
        "relu" => x.iter().map(|v| v.max(0.0)).collect(),
        "sigmoid" => x.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect(),
        "tanh" => x.iter().map(|v| v.tanh()).collect(),
        "linear" => x.to_vec(),
        "softmax" => x
            .chunks_exact(last)
            .flat_map(|row| {
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = row.iter().map(|v| (v - max).exp()).collect();
                let s: f64 = e.iter().sum();
                e.into_iter().map(move |v| v / s)
            })
            .collect(),
        other => panic!("no reference for {other}"),
    }
}

/// Checks `A::backward` on random rows; returns the worst error.
fn check_activation<A: ActivationFn>(rows: usize, last: usize, seed: u64) -> f64 {
    let mut rng = rng(seed);
    // Relu away from its kink: |x| >= 1e-3.
    let x: Vec<f32> = (0..rows * last)
        .map(|_| {
            let v: f32 = rng.random_range(1e-3..4.0);
            if rng.random::<bool>() {
                v
            } else {
                -v
            }
        })
        .collect();
    let r = uniform_f32(&mut rng, rows * last, -1.0, 1.0);
    let (x64, r64) = (to_f64(&x), to_f64(&r));
    let mut y = x.clone();
    A::apply(&mut y, last);
    for (a, b) in y.iter().zip(activation_ref(A::NAME, &x64, last)) {
        assert!(
            (*a as f64 - b).abs() <= 1e-6,
            "{} forward {a} vs reference {b}",
            A::NAME
        );
    }
    let mut g = r.clone();
    A::backward(&y, &mut g, last);
    check_gradient(
        A::NAME,
        &g,
        &x64,
        |x| dot(&r64, &activation_ref(A::NAME, x, last)),
        &mut rng,
    )
}

#[test]
fn activation_backward_matches_finite_differences() {
    let case = (1usize..=4, 1usize..=8, any::<u64>());
    run("relu backward", 64, case.clone(), |&(rows, last, seed)| {
        Some(check_activation::<Relu>(rows, last, seed))
    });
    run(
        "sigmoid backward",
        64,
        case.clone(),
        |&(rows, last, seed)| Some(check_activation::<Sigmoid>(rows, last, seed)),
    );
    run("tanh backward", 64, case.clone(), |&(rows, last, seed)| {
        Some(check_activation::<Tanh>(rows, last, seed))
    });
    run(
        "softmax backward",
        64,
        case.clone(),
        |&(rows, last, seed)| Some(check_activation::<Softmax>(rows, last, seed)),
    );
    run("linear backward", 16, case, |&(rows, last, seed)| {
        Some(check_activation::<Linear>(rows, last, seed))
    });
}

/// Relu's derivative at 0 is taken as 0 (TensorFlow's and JAX's choice),
/// and the output alone decides it.
#[test]
fn relu_backward_at_zero_is_zero() {
    let y = [0.0f32, 0.0, 2.0, 0.5];
    let mut g = [1.0f32, -3.0, 4.0, -1.0];
    Relu::backward(&y, &mut g, 4);
    assert_eq!(g, [0.0, 0.0, 4.0, -1.0]);
}

/// The grouped (threaded) convolution backward pass agrees with the plain
/// one, and gives the same bits on any number of threads.
#[test]
fn grouped_conv_backward_matches_plain_and_is_thread_invariant() {
    use strata_core::kernels::grad::conv2d_backward_grouped;
    // The last case is large enough (about 300 MFLOP) to be split among
    // threads; the small ones run on one whatever they are allowed.
    let cases = [
        (1, (9, 7, 3), 4, Padding::Same),
        (5, (9, 7, 3), 4, Padding::Valid),
        (13, (9, 7, 3), 4, Padding::Same),
        (16, (32, 32, 16), 32, Padding::Same),
    ];
    for (batch, hwc, out_c, padding) in cases {
        let g = ConvGeometry::new(batch, hwc, (3, 2), (2, 1), padding).unwrap();
        let value = |i: usize| ((i * 7919) % 1009) as f32 / 504.5 - 1.0;
        let x: Vec<f32> = (0..g.input_len()).map(value).collect();
        let w: Vec<f32> = (0..g.patch_len() * out_c).map(|i| value(i + 17)).collect();
        let dy: Vec<f32> = (0..g.out_pixels() * out_c).map(|i| value(i + 91)).collect();
        let run = |grouped: Option<usize>| {
            let mut gk = vec![0.5f32; w.len()];
            let mut gb = vec![0.25f32; out_c];
            let mut gx = vec![f32::NAN; x.len()];
            match grouped {
                Some(threads) => conv2d_backward_grouped(
                    &g,
                    &x,
                    &w,
                    &dy,
                    out_c,
                    &mut gk,
                    Some(&mut gb),
                    &mut gx,
                    threads,
                ),
                None => {
                    grad::conv2d_backward(&g, &x, &w, &dy, out_c, &mut gk, Some(&mut gb), &mut gx)
                }
            }
            (gk, gb, gx)
        };
        let plain = run(None);
        let one = run(Some(1));
        for (a, b) in [(&plain.0, &one.0), (&plain.1, &one.1), (&plain.2, &one.2)] {
            let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let err = a
                .iter()
                .zip(b)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err <= 1e-5 * scale,
                "batch {batch}: grouped differs from plain by {err}"
            );
        }
        for threads in [2, 3] {
            assert_eq!(run(Some(threads)), one, "batch {batch}, {threads} threads");
        }
    }
}
