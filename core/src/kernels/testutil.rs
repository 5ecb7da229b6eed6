//! Helpers shared by the kernels' unit tests: independent references
//! (explicitly padded input, Keras's padding rule re-derived from scratch,
//! f64 forward passes) and a finite-difference gradient checker.
//!
//! The gradient checks are on the scalar `L = Σ r ⊙ Y` for a random `r`, so
//! that `dL/dY = r` is what the kernels are given. The references are
//! linear (or piecewise linear, for max pooling with distinct values) in the
//! perturbed argument, so f64 central differences with `eps = 1e-6` are
//! essentially exact: the tolerance (1e-4 of the tensor's largest gradient)
//! only has to absorb the f32 arithmetic of the kernels. Each check looks at
//! up to `COORDS` sampled coordinates of a gradient one by one, plus the
//! full gradient through directional derivatives along random directions.
//!
//! Run with `--nocapture` to see the worst error each property observed.

use std::cell::Cell;
use std::fmt::Debug;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::kernels::ConvGeometry;
use crate::shape::Padding;

// ---------------------------------------------------------------------------
// Independent references
// ---------------------------------------------------------------------------

/// Keras's rule, written out independently of `strata_core::shape`:
/// returns `(out, pad_before)` or `None` when no window fits.
pub(crate) fn keras_axis(input: usize, k: usize, s: usize, same: bool) -> Option<(usize, usize)> {
    if same {
        let out = input.div_ceil(s);
        let needed = (out - 1) * s + k;
        let total = needed.saturating_sub(input);
        Some((out, total / 2))
    } else if k <= input {
        Some(((input - k) / s + 1, 0))
    } else {
        None
    }
}

/// Everything the references need, independent of `ConvGeometry`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geo {
    pub(crate) n: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) c: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) sh: usize,
    pub(crate) sw: usize,
    pub(crate) same: bool,
}

impl Geo {
    pub(crate) fn padding(&self) -> Padding {
        if self.same {
            Padding::Same
        } else {
            Padding::Valid
        }
    }

    pub(crate) fn fast(&self) -> Option<ConvGeometry> {
        ConvGeometry::new(
            self.n,
            (self.h, self.w, self.c),
            (self.kh, self.kw),
            (self.sh, self.sw),
            self.padding(),
        )
    }
}

/// Builds the explicitly padded input (`pad_value` in the border), NHWC.
/// Returns `(padded, ph, pw, oh, ow)`: padded height and width, output
/// height and width.
pub(crate) fn pad_input(
    g: &Geo,
    x: &[f32],
    pad_value: f32,
) -> (Vec<f32>, usize, usize, usize, usize) {
    let (oh, pt) = keras_axis(g.h, g.kh, g.sh, g.same).unwrap();
    let (ow, pl) = keras_axis(g.w, g.kw, g.sw, g.same).unwrap();
    let ph = ((oh - 1) * g.sh + g.kh).max(g.h + pt);
    let pw = ((ow - 1) * g.sw + g.kw).max(g.w + pl);
    let mut p = vec![pad_value; g.n * ph * pw * g.c];
    for b in 0..g.n {
        for y in 0..g.h {
            for xx in 0..g.w {
                for ch in 0..g.c {
                    p[((b * ph + y + pt) * pw + xx + pl) * g.c + ch] =
                        x[((b * g.h + y) * g.w + xx) * g.c + ch];
                }
            }
        }
    }
    (p, ph, pw, oh, ow)
}

/// Convolution over an explicitly zero-padded input; kernel HWIO.
pub(crate) fn ref_conv(g: &Geo, x: &[f32], k: &[f32], bias: Option<&[f32]>, co: usize) -> Vec<f32> {
    let (p, ph, pw, oh, ow) = pad_input(g, x, 0.0);
    let mut out = Vec::with_capacity(g.n * oh * ow * co);
    for b in 0..g.n {
        for oy in 0..oh {
            for ox in 0..ow {
                for f in 0..co {
                    let mut acc = 0.0f64;
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            for ch in 0..g.c {
                                let v =
                                    p[((b * ph + oy * g.sh + ky) * pw + ox * g.sw + kx) * g.c + ch];
                                let wv = k[((ky * g.kw + kx) * g.c + ch) * co + f];
                                acc += v as f64 * wv as f64;
                            }
                        }
                    }
                    out.push(acc as f32 + bias.map_or(0.0, |b| b[f]));
                }
            }
        }
    }
    out
}

/// Pooling over an input padded with NaN; NaN cells are skipped, so neither
/// the max nor the count can be influenced by padding.
pub(crate) fn ref_pool(g: &Geo, x: &[f32], max: bool) -> Vec<f32> {
    let (p, ph, pw, oh, ow) = pad_input(g, x, f32::NAN);
    let mut out = Vec::with_capacity(g.n * oh * ow * g.c);
    for b in 0..g.n {
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..g.c {
                    let cells: Vec<f32> = (0..g.kh)
                        .flat_map(|ky| (0..g.kw).map(move |kx| (ky, kx)))
                        .map(|(ky, kx)| {
                            p[((b * ph + oy * g.sh + ky) * pw + ox * g.sw + kx) * g.c + ch]
                        })
                        .filter(|v| !v.is_nan())
                        .collect();
                    assert!(!cells.is_empty(), "a window lies entirely in the padding");
                    out.push(if max {
                        cells.iter().copied().fold(f32::NEG_INFINITY, f32::max)
                    } else {
                        (cells.iter().map(|&v| v as f64).sum::<f64>() / cells.len() as f64) as f32
                    });
                }
            }
        }
    }
    out
}

pub(crate) fn random_vec(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Per-element tolerance: 1e-4 absolute, or relative to `Σ |x·w|` for
/// large sums (rounding grows with the magnitude of the terms).
pub(crate) fn assert_close(
    what: &str,
    got: &[f32],
    want: &[f32],
    magnitude: &[f32],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len(), "{}: length", what);
    for (i, ((a, b), m)) in got.iter().zip(want).zip(magnitude).enumerate() {
        let tol = 1e-4f32.max(1e-5 * m);
        prop_assert!(
            (a - b).abs() <= tol,
            "{}: element {} is {} but the reference says {} (tol {})",
            what,
            i,
            a,
            b,
            tol
        );
    }
    Ok(())
}

pub(crate) fn geo_strategy() -> impl Strategy<Value = Geo> {
    geo_in(4, 12, 6, 5, 3)
}

/// Geometries with up to `n` images of up to `hw × hw × c`, windows up to
/// `k` and strides up to `s` on each axis, either padding.
pub(crate) fn geo_in(
    n: usize,
    hw: usize,
    c: usize,
    k: usize,
    s: usize,
) -> impl Strategy<Value = Geo> {
    (
        1..=n,
        1..=hw,
        1..=hw,
        1..=c,
        1..=k,
        1..=k,
        1..=s,
        1..=s,
        any::<bool>(),
    )
        .prop_map(|(n, h, w, c, kh, kw, sh, sw, same)| Geo {
            n,
            h,
            w,
            c,
            kh,
            kw,
            sh,
            sw,
            same,
        })
}

/// Central-difference step (f64).
pub(crate) const EPS: f64 = 1e-6;
/// Allowed error, relative to the largest |gradient| of the tensor (or to
/// `SCALE_FLOOR`, whichever is larger).
pub(crate) const TOL: f64 = 1e-4;
/// The smallest scale errors are measured against: when every gradient is
/// tiny through cancellation (a softmax row dominated by one class, a bias
/// gradient summing to almost zero), f32 rounding of the O(1) terms still
/// leaves ~1e-7 absolute. So errors below `TOL · SCALE_FLOOR = 1e-6` pass.
pub(crate) const SCALE_FLOOR: f64 = 1e-2;
/// Coordinates checked one by one per gradient tensor.
pub(crate) const COORDS: usize = 48;
/// Random directions per gradient tensor.
pub(crate) const DIRECTIONS: usize = 2;

// ---------------------------------------------------------------------------
// Running properties
// ---------------------------------------------------------------------------

/// Runs `test` on `cases` values of `strategy`; `test` returns the worst
/// relative error it saw, or `None` to reject the value (a geometry with no
/// window). Prints the worst error over all cases.
pub(crate) fn run<S>(name: &str, cases: u32, strategy: S, test: impl Fn(&S::Value) -> Option<f64>)
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

pub(crate) fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

pub(crate) fn uniform_f32(rng: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

pub(crate) fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// `Σ r ⊙ y`.
pub(crate) fn dot(r: &[f64], y: &[f64]) -> f64 {
    assert_eq!(r.len(), y.len(), "reference output length");
    r.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// Checks `analytic` (the kernel's gradient of `f` at `point`) against
/// central differences of `f`: up to `COORDS` random coordinates one at a
/// time, and `DIRECTIONS` random directions over all coordinates. Returns the
/// worst error relative to the tensor's scale (its largest |gradient|, at
/// least `SCALE_FLOOR`).
pub(crate) fn check_gradient(
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

/// Direct convolution, NHWC input, HWIO kernel (`[k_h, k_w, in_c / groups,
/// out_c]`), NHWC output, with Keras padding given by the geometry's
/// `pad_top` / `pad_left` (cells outside the input are zeros), dilation and
/// channel groups.
pub(crate) fn conv_ref(
    g: &ConvGeometry,
    x: &[f64],
    w: &[f64],
    bias: Option<&[f64]>,
    out_c: usize,
) -> Vec<f64> {
    let cg = g.in_c / g.groups;
    let og = out_c / g.groups;
    let mut y = Vec::with_capacity(g.batch * g.out_h * g.out_w * out_c);
    for n in 0..g.batch {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                for f in 0..out_c {
                    let c0 = (f / og) * cg;
                    let mut acc = bias.map_or(0.0, |b| b[f]);
                    for ky in 0..g.k_h {
                        for kx in 0..g.k_w {
                            let iy = (oy * g.s_h + ky * g.d_h) as i64 - g.pad_top as i64;
                            let ix = (ox * g.s_w + kx * g.d_w) as i64 - g.pad_left as i64;
                            if iy < 0 || ix < 0 || iy >= g.in_h as i64 || ix >= g.in_w as i64 {
                                continue;
                            }
                            let (iy, ix) = (iy as usize, ix as usize);
                            for c in 0..cg {
                                let xv = x[((n * g.in_h + iy) * g.in_w + ix) * g.in_c + c0 + c];
                                let wv = w[((ky * g.k_w + kx) * cg + c) * out_c + f];
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
pub(crate) fn dense_ref(
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
pub(crate) fn pool_ref(g: &ConvGeometry, x: &[f64], max: bool) -> Vec<f64> {
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
pub(crate) struct WindowCase {
    pub(crate) batch: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) cin: usize,
    pub(crate) cout: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) sh: usize,
    pub(crate) sw: usize,
    pub(crate) same: bool,
    pub(crate) bias: bool,
    pub(crate) seed: u64,
}

impl WindowCase {
    /// The geometry, or `None` when `ConvGeometry::new` rejects it (which
    /// must be exactly when a valid window is larger than the input).
    pub(crate) fn geometry(&self) -> Option<ConvGeometry> {
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

pub(crate) fn window_case() -> impl Strategy<Value = WindowCase> {
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

/// `n` distinct values at least 0.01 apart, in random order, shifted so that
/// some cases are all negative (where a padding cell taken as 0 would win a
/// max) and some all positive.
pub(crate) fn distinct_values(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    let mut ranks: Vec<usize> = (0..n).collect();
    ranks.shuffle(rng);
    let shift = match rng.random_range(0..3) {
        0 => -(n as f32) * 0.01 - 0.5,
        1 => 0.5,
        _ => -(n as f32) * 0.005,
    };
    ranks.iter().map(|&k| k as f32 * 0.01 + shift).collect()
}
