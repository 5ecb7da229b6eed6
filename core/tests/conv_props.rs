//! Property tests of the fast convolution and pooling kernels against the
//! direct implementations in `kernels::naive` and against an independent
//! reference written here (explicit zero-padded input, Keras padding rule
//! re-derived from scratch), plus hand-worked Keras 'same' cases.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use strata_core::kernels::{
    self, choose_path, conv2d_scratch_len, naive, ConvGeometry, ConvPath, Isa,
};
use strata_core::shape::{conv_output_len, same_padding, Padding};

// ---------------------------------------------------------------------------
// Independent references
// ---------------------------------------------------------------------------

/// Keras's rule, written out independently of `strata_core::shape`:
/// returns `(out, pad_before)` or `None` when no window fits.
fn keras_axis(input: usize, k: usize, s: usize, same: bool) -> Option<(usize, usize)> {
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
struct Geo {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    same: bool,
}

impl Geo {
    fn padding(&self) -> Padding {
        if self.same {
            Padding::Same
        } else {
            Padding::Valid
        }
    }

    fn fast(&self) -> Option<ConvGeometry> {
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
fn pad_input(g: &Geo, x: &[f32], pad_value: f32) -> (Vec<f32>, usize, usize, usize, usize) {
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
fn ref_conv(g: &Geo, x: &[f32], k: &[f32], bias: Option<&[f32]>, co: usize) -> Vec<f32> {
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
fn ref_pool(g: &Geo, x: &[f32], max: bool) -> Vec<f32> {
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

fn random_vec(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Runs the fast convolution with exactly `conv2d_scratch_len` scratch
/// values, output and scratch pre-filled with NaN (the kernel must write
/// every output and must not read stale scratch).
fn fast_conv(g: &ConvGeometry, x: &[f32], k: &[f32], bias: Option<&[f32]>, co: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; g.out_pixels() * co];
    let mut scratch = vec![f32::NAN; conv2d_scratch_len(g, 1)];
    kernels::conv2d(g, x, k, bias, co, &mut out, &mut scratch, 1);
    out
}

/// Per-element tolerance: 1e-4 absolute, or relative to `Σ |x·w|` for
/// large sums (rounding grows with the magnitude of the terms).
fn assert_close(
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

/// Checks fast conv == naive conv == independent reference for `g`.
fn check_conv(geo: &Geo, co: usize, with_bias: bool, seed: u64) -> Result<(), TestCaseError> {
    let g = match geo.fast() {
        Some(g) => g,
        None => {
            // ConvGeometry refuses exactly when Keras's rule has no window.
            prop_assert!(
                keras_axis(geo.h, geo.kh, geo.sh, geo.same).is_none()
                    || keras_axis(geo.w, geo.kw, geo.sw, geo.same).is_none()
            );
            return Err(TestCaseError::reject("no window fits"));
        }
    };
    let (oh, pt) = keras_axis(geo.h, geo.kh, geo.sh, geo.same).unwrap();
    let (ow, pl) = keras_axis(geo.w, geo.kw, geo.sw, geo.same).unwrap();
    prop_assert_eq!((g.out_h, g.out_w, g.pad_top, g.pad_left), (oh, ow, pt, pl));

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = random_vec(&mut rng, geo.n * geo.h * geo.w * geo.c);
    let k = random_vec(&mut rng, geo.kh * geo.kw * geo.c * co);
    let b = random_vec(&mut rng, co);
    let bias = with_bias.then_some(b.as_slice());

    let fast = fast_conv(&g, &x, &k, bias, co);
    let slow = naive::conv2d(&g, &x, &k, bias, co);
    let reference = ref_conv(geo, &x, &k, bias, co);
    let ax: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    let ak: Vec<f32> = k.iter().map(|v| v.abs()).collect();
    let magnitude = ref_conv(geo, &ax, &ak, None, co);

    assert_close("fast vs naive", &fast, &slow, &magnitude)?;
    assert_close("fast vs reference", &fast, &reference, &magnitude)?;
    assert_close("naive vs reference", &slow, &reference, &magnitude)?;
    Ok(())
}

fn check_pool(geo: &Geo, seed: u64) -> Result<(), TestCaseError> {
    let g = match geo.fast() {
        Some(g) => g,
        None => return Err(TestCaseError::reject("no window fits")),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = random_vec(&mut rng, geo.n * geo.h * geo.w * geo.c);
    let n_out = g.out_pixels() * geo.c;

    let mut fast_max = vec![f32::NAN; n_out];
    kernels::max_pool2d(&g, &x, &mut fast_max);
    let mut fast_avg = vec![f32::NAN; n_out];
    kernels::avg_pool2d(&g, &x, &mut fast_avg);

    let ref_max = ref_pool(geo, &x, true);
    let ref_avg = ref_pool(geo, &x, false);
    // The max is one of the inputs: it must match exactly.
    prop_assert_eq!(&fast_max, &naive::pool2d(&g, &x, true));
    prop_assert_eq!(&fast_max, &ref_max);
    let ones = vec![1.0; n_out];
    assert_close(
        "avg fast vs naive",
        &fast_avg,
        &naive::pool2d(&g, &x, false),
        &ones,
    )?;
    assert_close("avg fast vs reference", &fast_avg, &ref_avg, &ones)?;
    Ok(())
}

fn geo_strategy() -> impl Strategy<Value = Geo> {
    geo_in(4, 12, 6, 5, 3)
}

/// Geometries with up to `n` images of up to `hw × hw × c`, windows up to
/// `k` and strides up to `s` on each axis, either padding.
fn geo_in(n: usize, hw: usize, c: usize, k: usize, s: usize) -> impl Strategy<Value = Geo> {
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

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_global_rejects: 4096,
        ..ProptestConfig::default()
    })]

    #[test]
    fn conv2d_matches_references(
        geo in geo_strategy(),
        co in 1usize..=7,
        with_bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        check_conv(&geo, co, with_bias, seed)?;
    }

    #[test]
    fn pointwise_conv2d_matches_references(
        n in 1usize..=4, h in 1usize..=12, w in 1usize..=12, c in 1usize..=6,
        co in 1usize..=7, same in any::<bool>(), with_bias in any::<bool>(), seed in any::<u64>(),
    ) {
        let geo = Geo { n, h, w, c, kh: 1, kw: 1, sh: 1, sw: 1, same };
        prop_assert!(geo.fast().unwrap().is_pointwise());
                // No im2col matrix: at most one input row per thread (the direct
        // kernel's padded copy, plus two cache lines of padding), whatever
        // the batch.
        prop_assert!(conv2d_scratch_len(&geo.fast().unwrap(), 1) <= w * c + 32);
        check_conv(&geo, co, with_bias, seed)?;
    }

    #[test]
    fn pooling_matches_references(geo in geo_strategy(), seed in any::<u64>()) {
        check_pool(&geo, seed)?;
    }

    #[test]
    fn geometry_matches_keras_rule(
        input in 1usize..40,
        k in 1usize..8,
        s in 1usize..5,
        same in any::<bool>(),
    ) {
        let padding = if same { Padding::Same } else { Padding::Valid };
        let ours = conv_output_len(input, k, s, padding);
        let keras = keras_axis(input, k, s, same);
        prop_assert_eq!(ours, keras.map(|(o, _)| o));
        if let Some((_, before)) = keras {
            let (b, a) = same_padding(input, k, s, padding);
            prop_assert_eq!(b, before);
            // The padded axis holds exactly the windows: the last window ends
            // inside it, and 'after' is never smaller than 'before'.
            let out = keras.unwrap().0;
            if same {
                prop_assert_eq!(b + input + a, ((out - 1) * s + k).max(input));
                prop_assert!(a == b || a == b + 1);
            } else {
                prop_assert_eq!((b, a), (0, 0));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Fixed configurations: tiling, pointwise, big kernels
// ---------------------------------------------------------------------------

fn run_fixed(geo: Geo, co: usize, with_bias: bool, seed: u64) {
    check_conv(&geo, co, with_bias, seed).unwrap();
}

#[test]
fn many_tiles_small_k() {
    // K = 3·3·2 = 18: tiles of 512 rows; 4·20·20 = 1600 output pixels is
    // three full tiles and a partial one.
    let geo = Geo {
        n: 4,
        h: 20,
        w: 20,
        c: 2,
        kh: 3,
        kw: 3,
        sh: 1,
        sw: 1,
        same: true,
    };
    let g = geo.fast().unwrap();
    assert!(g.out_pixels() > 3 * 512);
    assert!(
        conv2d_scratch_len(&g, 1) < g.out_pixels() * g.patch_len(),
        "scratch should be one tile"
    );
    run_fixed(geo, 5, true, 1);
    run_fixed(geo, 3, false, 2);
    // Strided, valid, K = 2·1·1 = 2.
    run_fixed(
        Geo {
            n: 3,
            h: 30,
            w: 27,
            c: 1,
            kh: 2,
            kw: 1,
            sh: 1,
            sw: 2,
            same: false,
        },
        4,
        true,
        3,
    );
}

#[test]
fn many_tiles_large_k() {
    // K = 5·5·200 = 5000: the smallest tiles (16 rows); 2·8·8 = 128 pixels.
    let geo = Geo {
        n: 2,
        h: 8,
        w: 8,
        c: 200,
        kh: 5,
        kw: 5,
        sh: 1,
        sw: 1,
        same: true,
    };
    let g = geo.fast().unwrap();
    assert!(g.out_pixels() > 16);
    run_fixed(geo, 3, true, 4);
}

#[test]
fn large_pointwise() {
    let geo = Geo {
        n: 3,
        h: 17,
        w: 13,
        c: 5,
        kh: 1,
        kw: 1,
        sh: 1,
        sw: 1,
        same: false,
    };
    assert!(geo.fast().unwrap().out_pixels() > 512);
    run_fixed(geo, 6, true, 5);
    run_fixed(geo, 1, false, 6);
    // 1x1 at stride 2 is not pointwise: it goes through im2col.
    let strided = Geo {
        sh: 2,
        sw: 2,
        ..geo
    };
    assert!(!strided.fast().unwrap().is_pointwise());
    run_fixed(strided, 6, true, 7);
}

#[test]
fn kernel_larger_than_input_under_same() {
    // Keras allows any kernel under 'same'; the window hangs over both sides.
    run_fixed(
        Geo {
            n: 2,
            h: 2,
            w: 3,
            c: 2,
            kh: 5,
            kw: 4,
            sh: 1,
            sw: 2,
            same: true,
        },
        3,
        true,
        8,
    );
    run_fixed(
        Geo {
            n: 1,
            h: 1,
            w: 1,
            c: 3,
            kh: 5,
            kw: 5,
            sh: 3,
            sw: 3,
            same: true,
        },
        2,
        false,
        9,
    );
}

// ---------------------------------------------------------------------------
// Hand-worked Keras 'same' cases
// ---------------------------------------------------------------------------

fn geometry(
    h: usize,
    w: usize,
    c: usize,
    k: (usize, usize),
    s: (usize, usize),
    p: Padding,
) -> ConvGeometry {
    ConvGeometry::new(1, (h, w, c), k, s, p).unwrap()
}

#[test]
fn same_2x2_stride1_pads_only_bottom_right() {
    let g = geometry(4, 4, 1, (2, 2), (1, 1), Padding::Same);
    assert_eq!((g.out_h, g.out_w, g.pad_top, g.pad_left), (4, 4, 0, 0));
    let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let k = [1.0; 4];
    let out = fast_conv(&g, &x, &k, None, 1);
    // out[y][x] = x[y][x] + x[y][x+1] + x[y+1][x] + x[y+1][x+1], the cells
    // past the bottom/right edge being zero.
    #[rustfmt::skip]
    let want = [
        10.0, 14.0, 18.0, 10.0,
        26.0, 30.0, 34.0, 18.0,
        42.0, 46.0, 50.0, 26.0,
        25.0, 27.0, 29.0, 15.0,
    ];
    assert_eq!(out, want);
    assert_eq!(naive::conv2d(&g, &x, &k, None, 1), want);
}

#[test]
fn same_8x8_k3_s2_pads_nothing_on_top() {
    let g = geometry(8, 8, 1, (3, 3), (2, 2), Padding::Same);
    assert_eq!((g.out_h, g.out_w, g.pad_top, g.pad_left), (4, 4, 0, 0));
    assert_eq!(same_padding(8, 3, 2, Padding::Same), (0, 1));
    let x = vec![1.0; 64];
    let out = fast_conv(&g, &x, &[1.0; 9], Some(&[0.5]), 1);
    // Rows 0..3 of windows see 3 input rows; the last sees rows 6, 7 and pad.
    let count = |i: usize| if i < 3 { 3.0 } else { 2.0 };
    for oy in 0..4 {
        for ox in 0..4 {
            assert_eq!(
                out[oy * 4 + ox],
                count(oy) * count(ox) + 0.5,
                "at ({oy}, {ox})"
            );
        }
    }
    // Position check: a single 1 at (0, 0) reaches only output (0, 0) with
    // the kernel's top-left weight, since there is no top/left padding.
    let mut x = vec![0.0; 64];
    x[0] = 1.0;
    let k: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let out = fast_conv(&g, &x, &k, None, 1);
    let mut want = vec![0.0; 16];
    want[0] = 1.0;
    assert_eq!(out, want);
}

#[test]
fn same_9x9_k3_s2_pads_one_each_side() {
    let g = geometry(9, 9, 1, (3, 3), (2, 2), Padding::Same);
    assert_eq!((g.out_h, g.out_w, g.pad_top, g.pad_left), (5, 5, 1, 1));
    let out = fast_conv(&g, &[1.0; 81], &[1.0; 9], None, 1);
    let count = |i: usize| if i == 0 || i == 4 { 2.0 } else { 3.0 };
    for oy in 0..5 {
        for ox in 0..5 {
            assert_eq!(out[oy * 5 + ox], count(oy) * count(ox), "at ({oy}, {ox})");
        }
    }
}

#[test]
fn conv_channels_and_filters_by_hand() {
    // 1x2 input with 2 channels, 1x2 kernel, valid: one output pixel,
    // out[f] = Σ_{kx, c} x[kx][c] · k[kx][c][f].
    let g = geometry(1, 2, 2, (1, 2), (1, 1), Padding::Valid);
    let x = [1.0, 2.0, 3.0, 4.0]; // x[0] = (1, 2), x[1] = (3, 4)
                                  // HWIO [1][2][2][2]: k[kx][c][f]
    let k = [1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0];
    let out = fast_conv(&g, &x, &k, Some(&[100.0, 200.0]), 2);
    let f0 = 1.0 * 1.0 + 2.0 * 2.0 + 3.0 * 3.0 + 4.0 * 4.0 + 100.0;
    let f1 = 1.0 * 10.0 + 2.0 * 20.0 + 3.0 * 30.0 + 4.0 * 40.0 + 200.0;
    assert_eq!(out, [f0, f1]);
}

#[test]
fn max_pool_same_padding_acts_as_minus_infinity() {
    // 3x3 of -1..-9, pool 2 stride 2 same: pads 0 top / 1 bottom.
    let g = geometry(3, 3, 1, (2, 2), (2, 2), Padding::Same);
    assert_eq!((g.out_h, g.out_w, g.pad_top, g.pad_left), (2, 2, 0, 0));
    let x: Vec<f32> = (1..=9).map(|v| -(v as f32)).collect();
    let mut out = [f32::NAN; 4];
    kernels::max_pool2d(&g, &x, &mut out);
    // [-1 -2 -3; -4 -5 -6; -7 -8 -9]
    assert_eq!(out, [-1.0, -3.0, -7.0, -9.0]);
    assert_eq!(naive::pool2d(&g, &x, true), out);

    // 3x3 window stride 1 same pads 1 on every side: the corners see 4 cells.
    let g = geometry(3, 3, 1, (3, 3), (1, 1), Padding::Same);
    assert_eq!((g.pad_top, g.pad_left), (1, 1));
    let mut out = [f32::NAN; 9];
    kernels::max_pool2d(&g, &x, &mut out);
    assert_eq!(out, [-1.0, -1.0, -2.0, -1.0, -1.0, -2.0, -4.0, -4.0, -5.0]);
}

#[test]
fn avg_pool_same_divides_by_real_cells() {
    let g = geometry(3, 3, 1, (2, 2), (2, 2), Padding::Same);
    let mut out = [f32::NAN; 4];
    kernels::avg_pool2d(&g, &[1.0; 9], &mut out);
    assert_eq!(out, [1.0; 4]);

    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    kernels::avg_pool2d(&g, &x, &mut out);
    // [1 2 3; 4 5 6; 7 8 9]: (1+2+4+5)/4, (3+6)/2, (7+8)/2, 9/1
    assert_eq!(out, [3.0, 4.5, 7.5, 9.0]);

    // 3x3 window stride 1 same on the same input: corners average 4 cells,
    // edges 6, the centre 9.
    let g = geometry(3, 3, 1, (3, 3), (1, 1), Padding::Same);
    let mut out = [f32::NAN; 9];
    kernels::avg_pool2d(&g, &x, &mut out);
    let want = [
        (1.0 + 2.0 + 4.0 + 5.0) / 4.0,
        (1.0 + 2.0 + 3.0 + 4.0 + 5.0 + 6.0) / 6.0,
        (2.0 + 3.0 + 5.0 + 6.0) / 4.0,
        (1.0 + 2.0 + 4.0 + 5.0 + 7.0 + 8.0) / 6.0,
        45.0 / 9.0,
        (2.0 + 3.0 + 5.0 + 6.0 + 8.0 + 9.0) / 6.0,
        (4.0 + 5.0 + 7.0 + 8.0) / 4.0,
        (4.0 + 5.0 + 6.0 + 7.0 + 8.0 + 9.0) / 6.0,
        (5.0 + 6.0 + 8.0 + 9.0) / 4.0,
    ];
    for (a, b) in out.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{out:?} vs {want:?}");
    }
}

#[test]
fn pooling_keeps_channels_apart() {
    // 2x2 input, 2 channels, pool 2 valid: one pixel, one max/avg per channel.
    let g = geometry(2, 2, 2, (2, 2), (2, 2), Padding::Valid);
    let x = [1.0, -1.0, 5.0, -5.0, 2.0, -2.0, 3.0, -3.0];
    let mut out = [f32::NAN; 2];
    kernels::max_pool2d(&g, &x, &mut out);
    assert_eq!(out, [5.0, -1.0]);
    kernels::avg_pool2d(&g, &x, &mut out);
    assert_eq!(out, [2.75, -2.75]);
}

#[test]
fn sgemm_matches_naive_product() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for &(m, k, n) in &[(1, 1, 1), (3, 5, 7), (17, 9, 4), (64, 33, 10), (5, 0, 3)] {
        let a = random_vec(&mut rng, m * k);
        let b = random_vec(&mut rng, k * n);
        let c0 = random_vec(&mut rng, m * n);
        for beta in [0.0f32, 1.0] {
            let mut c = c0.clone();
            kernels::sgemm(m, k, n, &a, &b, beta, &mut c);
            for i in 0..m {
                for j in 0..n {
                    let mut want = beta as f64 * c0[i * n + j] as f64;
                    for p in 0..k {
                        want += a[i * k + p] as f64 * b[p * n + j] as f64;
                    }
                    assert!(
                        (c[i * n + j] as f64 - want).abs() < 1e-4,
                        "({m},{k},{n}) beta {beta}"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Every convolution path, and thread-count invariance
// ---------------------------------------------------------------------------

/// The paths worth trying on this machine: every one that can run here.
fn all_paths() -> Vec<ConvPath> {
    let mut paths = vec![
        ConvPath::Im2col,
        ConvPath::Pointwise,
        ConvPath::Winograd,
        ConvPath::Winograd4,
    ];
    for isa in [Isa::Avx512, Isa::Avx2] {
        if isa.available() {
            paths.push(ConvPath::Direct(isa));
        }
    }
    paths
}

/// Runs `path` with exactly its scratch, output and scratch pre-filled
/// with NaN.
#[allow(clippy::too_many_arguments)]
fn path_conv(
    path: ConvPath,
    g: &ConvGeometry,
    x: &[f32],
    k: &[f32],
    bias: Option<&[f32]>,
    co: usize,
    threads: usize,
) -> Vec<f32> {
    let mut out = vec![f32::NAN; g.out_pixels() * co];
    let mut scratch = vec![f32::NAN; path.scratch_len(g, threads)];
    kernels::conv2d_with(path, g, x, k, bias, co, &mut out, &mut scratch, threads);
    out
}

/// Checks every path that supports `geo` against the reference, and that
/// each gives bitwise the same result on 1, 2 and 3 threads.
fn check_paths(geo: &Geo, co: usize, with_bias: bool, seed: u64) -> Result<usize, TestCaseError> {
    let Some(g) = geo.fast() else {
        return Err(TestCaseError::reject("no window fits"));
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = random_vec(&mut rng, geo.n * geo.h * geo.w * geo.c);
    let k = random_vec(&mut rng, geo.kh * geo.kw * geo.c * co);
    let b = random_vec(&mut rng, co);
    let bias = with_bias.then_some(b.as_slice());
    let reference = ref_conv(geo, &x, &k, bias, co);
    let ax: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    let ak: Vec<f32> = k.iter().map(|v| v.abs()).collect();
    let magnitude = ref_conv(geo, &ax, &ak, None, co);
    let mut checked = 0;
    for path in all_paths() {
        if !path.supports(&g, co) {
            continue;
        }
        let one = path_conv(path, &g, &x, &k, bias, co, 1);
        assert_close(
            &format!("{path:?} vs reference"),
            &one,
            &reference,
            &magnitude,
        )?;
        for threads in [2, 3] {
            let many = path_conv(path, &g, &x, &k, bias, co, threads);
            let same_bits = one
                .iter()
                .zip(&many)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            prop_assert!(same_bits, "{:?}: {} threads differ from 1", path, threads);
        }
        checked += 1;
    }
    // What `conv2d` itself picks, with the scratch the layer gives it.
    let chosen = choose_path(&g, co);
    prop_assert!(chosen.supports(&g, co));
    prop_assert!(chosen.scratch_len(&g, 2) <= conv2d_scratch_len(&g, 2));
    let mut out = vec![f32::NAN; g.out_pixels() * co];
    let mut scratch = vec![f32::NAN; conv2d_scratch_len(&g, 2)];
    kernels::conv2d(&g, &x, &k, bias, co, &mut out, &mut scratch, 2);
    assert_close("conv2d vs reference", &out, &reference, &magnitude)?;
    Ok(checked)
}

fn path_geo_strategy() -> impl Strategy<Value = Geo> {
    geo_in(3, 15, 20, 4, 2)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        max_global_rejects: 4096,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_path_matches_reference_and_ignores_threads(
        geo in path_geo_strategy(),
        co in 1usize..=40,
        with_bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        check_paths(&geo, co, with_bias, seed)?;
    }

    /// Winograd: 3×3 stride 1, odd and even sizes, both paddings, batch > 1.
    #[test]
    fn winograd_matches_reference(
        n in 1usize..=3, h in 3usize..=13, w in 3usize..=13, c in 1usize..=24,
        co in 1usize..=40, same in any::<bool>(), with_bias in any::<bool>(), seed in any::<u64>(),
    ) {
        let geo = Geo { n, h, w, c, kh: 3, kw: 3, sh: 1, sw: 1, same };
        prop_assert!(check_paths(&geo, co, with_bias, seed)? >= 3);
    }

    /// The direct kernel: rows of at least one pixel block, at least one
    /// channel block, short patches, strides 1 and 2.
    #[test]
    fn direct_matches_reference(
        n in 1usize..=2, h in 1usize..=9, w in 24usize..=40, c in 1usize..=4,
        k in 1usize..=7, s in 1usize..=2, co in 32usize..=70,
        same in any::<bool>(), with_bias in any::<bool>(), seed in any::<u64>(),
    ) {
        let geo = Geo { n, h, w, c, kh: k.min(h.max(1)), kw: k, sh: s, sw: s, same };
        check_paths(&geo, co, with_bias, seed)?;
    }
}

#[test]
fn paths_on_larger_shapes() {
    // Several im2col tiles and patch chunks (K = 3·3·40 = 360 > 256), a
    // Winograd layer with more than one block of output channels, a
    // pointwise layer over several tiles, and c1/c8-like direct layers.
    let cases = [
        (
            Geo {
                n: 2,
                h: 24,
                w: 22,
                c: 40,
                kh: 3,
                kw: 3,
                sh: 1,
                sw: 1,
                same: true,
            },
            140,
        ),
        (
            Geo {
                n: 3,
                h: 20,
                w: 21,
                c: 40,
                kh: 3,
                kw: 3,
                sh: 2,
                sw: 1,
                same: false,
            },
            20,
        ),
        (
            Geo {
                n: 2,
                h: 30,
                w: 30,
                c: 24,
                kh: 1,
                kw: 1,
                sh: 1,
                sw: 1,
                same: false,
            },
            36,
        ),
        (
            Geo {
                n: 2,
                h: 32,
                w: 32,
                c: 3,
                kh: 3,
                kw: 3,
                sh: 1,
                sw: 1,
                same: true,
            },
            32,
        ),
        (
            Geo {
                n: 1,
                h: 40,
                w: 44,
                c: 3,
                kh: 7,
                kw: 7,
                sh: 2,
                sw: 2,
                same: true,
            },
            64,
        ),
    ];
    for (i, (geo, co)) in cases.into_iter().enumerate() {
        let checked = check_paths(&geo, co, i % 2 == 0, 100 + i as u64).unwrap();
        assert!(checked >= 1);
    }
}

#[test]
fn chosen_paths_for_the_benchmark_configurations() {
    let g = |n, hwc, k, s, p| ConvGeometry::new(n, hwc, (k, k), (s, s), p).unwrap();
    let (same, valid) = (Padding::Same, Padding::Valid);
    // Short patches take the direct kernel where the machine has one.
    let direct = Isa::detect() != Isa::None;
    let c1 = choose_path(&g(64, (32, 32, 3), 3, 1, same), 32);
    assert_eq!(matches!(c1, ConvPath::Direct(_)), direct);
    let c8 = choose_path(&g(1, (224, 224, 3), 7, 2, same), 64);
    assert_eq!(matches!(c8, ConvPath::Direct(_)), direct);
    // So do 1x1 layers whose kernel fits in cache.
    let c7 = choose_path(&g(8, (56, 56, 64), 1, 1, valid), 256);
    assert_eq!(c7 == ConvPath::Pointwise, !direct);
    // 3x3 stride 1 with many channels: Winograd.
    // F(4×4) where 4×4 tiles fit the output, F(2×2) where they waste.
    let c2 = choose_path(&g(64, (32, 32, 32), 3, 1, valid), 32);
    assert_eq!(c2, ConvPath::Winograd4);
    let c5 = choose_path(&g(8, (28, 28, 128), 3, 1, same), 128);
    assert_eq!(c5, ConvPath::Winograd4);
    let c6 = choose_path(&g(8, (14, 14, 256), 3, 1, same), 256);
    assert_eq!(c6, ConvPath::Winograd);
    // A large kernel with stride 2: im2col + GEMM.
    let big = choose_path(&g(8, (28, 28, 256), 3, 2, same), 256);
    assert_eq!(big, ConvPath::Im2col);
    // The scratch never depends on the batch size.
    for p in [same, valid] {
        let small = conv2d_scratch_len(&g(8, (56, 56, 64), 3, 1, p), 2);
        let large = conv2d_scratch_len(&g(512, (56, 56, 64), 3, 1, p), 2);
        assert_eq!(small, large);
    }
}

#[test]
fn winograd_accuracy_with_many_channels() {
    // F(4×4, 3×3)'s transforms hold 1/24 and 8: its rounding error is the
    // largest of all paths. With 256 input channels (the sum of 2304 terms)
    // it must still be within 1e-4 of the exact sum, relative to Σ|x·w|.
    for (c, same) in [(256, true), (96, false)] {
        let geo = Geo {
            n: 1,
            h: 9,
            w: 10,
            c,
            kh: 3,
            kw: 3,
            sh: 1,
            sw: 1,
            same,
        };
        let g = geo.fast().unwrap();
        let co = 33;
        let mut rng = ChaCha8Rng::seed_from_u64(c as u64);
        let x = random_vec(&mut rng, geo.n * geo.h * geo.w * geo.c);
        let k = random_vec(&mut rng, 9 * geo.c * co);
        let reference = ref_conv(&geo, &x, &k, None, co);
        let ax: Vec<f32> = x.iter().map(|v| v.abs()).collect();
        let ak: Vec<f32> = k.iter().map(|v| v.abs()).collect();
        let magnitude = ref_conv(&geo, &ax, &ak, None, co);
        for path in [ConvPath::Winograd, ConvPath::Winograd4, ConvPath::Im2col] {
            let got = path_conv(path, &g, &x, &k, None, co, 2);
            let worst = got
                .iter()
                .zip(&reference)
                .zip(&magnitude)
                .map(|((a, b), m)| (a - b).abs() / m)
                .fold(0.0f32, f32::max);
            println!("{path:?}, Cin {c}: worst error / Σ|x·w| = {worst:.2e}");
            assert!(worst < 1e-4, "{path:?} with Cin {c}: {worst:e}");
        }
    }
}

#[test]
fn strided_sgemm_matches_naive_product_small_and_large_m() {
    // m <= 8 streams b (no packing); larger m goes to matrixmultiply. Both
    // honour leading dimensions and beta (beta = 0 ignores c, even NaN).
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for &(m, k, n) in &[
        (1, 300, 40),
        (3, 7, 5),
        (8, 33, 17),
        (9, 33, 17),
        (40, 20, 50),
    ] {
        let (lda, ldb, ldc) = (k + 3, n + 2, n + 5);
        let a = random_vec(&mut rng, m * lda);
        let b = random_vec(&mut rng, k * ldb);
        let c0 = random_vec(&mut rng, m * ldc);
        for beta in [0.0f32, 1.0, 0.5] {
            let mut c = c0.clone();
            if beta == 0.0 {
                for i in 0..m {
                    c[i * ldc..i * ldc + n].fill(f32::NAN);
                }
            }
            kernels::sgemm_strided(m, k, n, &a, lda, &b, ldb, beta, &mut c, ldc);
            for i in 0..m {
                for j in 0..n {
                    let mut want = beta as f64 * c0[i * ldc + j] as f64;
                    for p in 0..k {
                        want += a[i * lda + p] as f64 * b[p * ldb + j] as f64;
                    }
                    let got = c[i * ldc + j] as f64;
                    assert!((got - want).abs() < 1e-4, "({m},{k},{n}) beta {beta}");
                }
                // Past each row's n columns, c is untouched.
                assert_eq!(
                    c[i * ldc + n..(i + 1) * ldc],
                    c0[i * ldc + n..(i + 1) * ldc]
                );
            }
        }
    }
}
