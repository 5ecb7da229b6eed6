//! Layer-level tests through the typed layers: forward passes against naive
//! computations written here from PyTorch-layout weights, parameter import
//! and export, Dense after Flatten, Dropout, activations, batches, and the
//! type-level output shapes.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use strata_core::activation::Activation;
use strata_core::layers::Flatten;
use strata_core::shape::conv_output_len;
use strata_core::typenum::consts::*;
use strata_core::typenum::Unsigned;
use strata_core::{
    seeded_rng, AvgPool2D, Batch, Conv2D, Dense, Dropout, Layer, Linear, MaxPool2D, Model, Relu,
    Same, Shape, Shape1, Shape3, Sigmoid, Softmax, Tanh, Valid,
};

fn random_vec(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "lengths differ");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol,
            "element {i}: {a} vs {b}\n got {got:?}\nwant {want:?}"
        );
    }
}

/// Keras's 'same' padding before, written out here: total padding is
/// `max((ceil(L/S) - 1)·S + K - L, 0)`, the smaller half before.
fn pad_before(len: usize, k: usize, s: usize, same: bool) -> usize {
    if !same {
        return 0;
    }
    let out = len.div_ceil(s);
    ((out - 1) * s + k).saturating_sub(len) / 2
}

/// A convolution computed straight from a PyTorch-layout weight
/// `[out, in, kh, kw]`, NHWC input and output, then ReLU if asked.
#[allow(clippy::too_many_arguments)]
fn torch_conv(
    x: &[f32],
    n: usize,
    (h, w, c): (usize, usize, usize),
    weight: &[f32],
    bias: Option<&[f32]>,
    (f, kh, kw): (usize, usize, usize),
    (sh, sw): (usize, usize),
    same: bool,
    relu: bool,
) -> (Vec<f32>, usize, usize) {
    let oh = if same {
        h.div_ceil(sh)
    } else {
        (h - kh) / sh + 1
    };
    let ow = if same {
        w.div_ceil(sw)
    } else {
        (w - kw) / sw + 1
    };
    let pt = pad_before(h, kh, sh, same) as isize;
    let pl = pad_before(w, kw, sw, same) as isize;
    let mut out = vec![0.0; n * oh * ow * f];
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..f {
                    let mut acc = bias.map_or(0.0, |b| b[o]) as f64;
                    for i in 0..c {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * sh + ky) as isize - pt;
                                let ix = (ox * sw + kx) as isize - pl;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let xv = x[((b * h + iy as usize) * w + ix as usize) * c + i];
                                let wv = weight[((o * c + i) * kh + ky) * kw + kx];
                                acc += xv as f64 * wv as f64;
                            }
                        }
                    }
                    let v = acc as f32;
                    out[((b * oh + oy) * ow + ox) * f + o] = if relu { v.max(0.0) } else { v };
                }
            }
        }
    }
    (out, oh, ow)
}

// ---------------------------------------------------------------------------
// Conv2D
// ---------------------------------------------------------------------------

type ConvA = Conv2D<Shape3<U5, U6, U2>, U3, U3, U2, U2, U1, Same, Relu>;

#[test]
fn conv2d_same_relu_matches_torch_layout_reference() {
    let mut layer = ConvA::new(true, &mut seeded_rng(1));
    // [out=3, in=2, kh=3, kw=2]
    let weight = random_vec(10, 3 * 2 * 3 * 2);
    let bias = random_vec(11, 3);
    assert!(layer.import_param("weight", &weight));
    assert!(layer.import_param("bias", &bias));

    let n = 3;
    let x = random_vec(12, n * 5 * 6 * 2);
    let input = Batch::<Shape3<U5, U6, U2>>::from_vec(n, x.clone()).unwrap();
    let y = layer.predict(&input);

    let (want, oh, ow) = torch_conv(
        &x,
        n,
        (5, 6, 2),
        &weight,
        Some(&bias),
        (3, 3, 2),
        (2, 1),
        true,
        true,
    );
    assert_eq!((oh, ow), (3, 6));
    assert_eq!(<<ConvA as Layer>::Output as Shape>::DIMS, &[3, 6, 3]);
    assert_eq!(y.dims(), vec![n, 3, 6, 3]);
    assert_close(y.as_slice(), &want, 1e-5);
    // ReLU did something: both zeros and positives are present.
    assert!(y.as_slice().contains(&0.0));
    assert!(y.as_slice().iter().any(|&v| v > 0.0));
}

#[test]
fn conv2d_valid_strided_without_bias_matches_reference() {
    type L = Conv2D<Shape3<U7, U9, U3>, U4, U2, U3, U2, U3, Valid>;
    let mut layer = L::new(false, &mut seeded_rng(2));
    assert_eq!(layer.bias(), None);
    let weight = random_vec(20, 4 * 3 * 2 * 3);
    assert!(layer.import_param("weight", &weight));
    // No bias parameter to import into.
    assert!(!layer.import_param("bias", &[0.0; 4]));

    let n = 2;
    let x = random_vec(21, n * 7 * 9 * 3);
    let y = layer.predict(&Batch::from_vec(n, x.clone()).unwrap());
    let (want, oh, ow) = torch_conv(
        &x,
        n,
        (7, 9, 3),
        &weight,
        None,
        (4, 2, 3),
        (2, 3),
        false,
        false,
    );
    assert_eq!((oh, ow), (3, 3));
    assert_eq!(<<L as Layer>::Output as Shape>::DIMS, &[3, 3, 4]);
    assert_close(y.as_slice(), &want, 1e-5);
    // Linear activation: negative outputs survive.
    assert!(y.as_slice().iter().any(|&v| v < 0.0));
}

#[test]
fn conv2d_same_with_even_kernels_and_big_batch() {
    // Even kernel under same: padding goes after; 4x4 kernels over 6x5.
    type L = Conv2D<Shape3<U6, U5, U1>, U2, U4, U4, U1, U2, Same>;
    let mut layer = L::new(true, &mut seeded_rng(3));
    let weight = random_vec(30, 2 * 4 * 4);
    let bias = vec![0.25, -0.5];
    assert!(layer.import_param("weight", &weight));
    assert!(layer.import_param("bias", &bias));
    let n = 40; // 40·6·3 = 720 output pixels: more than one im2col tile
    let x = random_vec(31, n * 30);
    let y = layer.predict(&Batch::from_vec(n, x.clone()).unwrap());
    let (want, oh, ow) = torch_conv(
        &x,
        n,
        (6, 5, 1),
        &weight,
        Some(&bias),
        (2, 4, 4),
        (1, 2),
        true,
        false,
    );
    assert_eq!((oh, ow), (6, 3));
    assert_close(y.as_slice(), &want, 1e-5);
}

#[test]
fn conv2d_params_layout_and_round_trip() {
    let mut layer = ConvA::new(true, &mut seeded_rng(1));
    let params = layer.params();
    assert_eq!(params.len(), 2);
    assert_eq!(params[0].name, "weight");
    assert_eq!(params[0].shape, vec![3, 2, 3, 2]);
    assert_eq!(params[1].name, "bias");
    assert_eq!(params[1].shape, vec![3]);
    assert_eq!(layer.param_count(), 3 * 2 * 3 * 2 + 3);

    // Distinct values so any permutation mistake shows.
    let weight: Vec<f32> = (0..36).map(|v| v as f32).collect();
    assert!(layer.import_param("weight", &weight));
    assert_eq!(layer.export_param("weight").unwrap(), weight);
    // The internal kernel is HWIO: kernel[y][x][i][o] = weight[o][i][y][x].
    let (f, c, kh, kw) = (3, 2, 3, 2);
    for o in 0..f {
        for i in 0..c {
            for y in 0..kh {
                for x in 0..kw {
                    assert_eq!(
                        layer.kernel()[((y * kw + x) * c + i) * f + o],
                        weight[((o * c + i) * kh + y) * kw + x]
                    );
                }
            }
        }
    }
    assert!(layer.import_param("bias", &[7.0, 8.0, 9.0]));
    assert_eq!(layer.export_param("bias").unwrap(), vec![7.0, 8.0, 9.0]);
    assert_eq!(layer.bias(), Some(&[7.0, 8.0, 9.0][..]));

    // Wrong lengths and unknown names change nothing.
    assert!(!layer.import_param("weight", &[1.0; 35]));
    assert!(!layer.import_param("bias", &[1.0; 4]));
    assert!(!layer.import_param("kernel", &weight));
    assert_eq!(layer.export_param("weight").unwrap(), weight);
    assert_eq!(layer.export_param("bias").unwrap(), vec![7.0, 8.0, 9.0]);
    assert_eq!(layer.export_param("kernel"), None);
}

#[test]
fn conv2d_initialisation_is_seeded_glorot() {
    let a = ConvA::new(true, &mut seeded_rng(5));
    let b = ConvA::new(true, &mut seeded_rng(5));
    let c = ConvA::new(true, &mut seeded_rng(6));
    assert_eq!(a.kernel(), b.kernel());
    assert_ne!(a.kernel(), c.kernel());
    assert_eq!(a.bias(), Some(&[0.0; 3][..]));
    // Glorot uniform: fan_in = 3·2·2 = 12, fan_out = 3·2·3 = 18.
    let limit = (6.0f32 / 30.0).sqrt();
    assert!(a.kernel().iter().all(|v| v.abs() <= limit));
    assert!(a.kernel().iter().any(|v| v.abs() > limit / 2.0));
    let d = a.with_seed(6);
    assert_eq!(d.kernel(), c.kernel());
}

// ---------------------------------------------------------------------------
// Dense
// ---------------------------------------------------------------------------

#[test]
fn dense_after_flatten_reads_torch_chw_columns() {
    let (h, w, c, units) = (2usize, 3usize, 4usize, 5usize);
    let mut layer =
        Dense::<Shape1<U24>, U5>::new(true, &mut seeded_rng(1)).follows_flatten_of(&[h, w, c]);
    // Torch weight [units, c·h·w]: column c·H·W + h·W + w.
    let weight = random_vec(40, units * c * h * w);
    let bias = random_vec(41, units);
    assert!(layer.import_param("weight", &weight));
    assert!(layer.import_param("bias", &bias));

    let n = 3;
    // NHWC sample, flattened in (h, w, c) order as Flatten produces it.
    let x = random_vec(42, n * h * w * c);
    let y = layer.predict(&Batch::from_vec(n, x.clone()).unwrap());

    let mut want = vec![0.0f32; n * units];
    for b in 0..n {
        for u in 0..units {
            let mut acc = bias[u] as f64;
            for ch in 0..c {
                for yy in 0..h {
                    for xx in 0..w {
                        let torch_col = ch * h * w + yy * w + xx;
                        let nhwc = (yy * w + xx) * c + ch;
                        acc += weight[u * 24 + torch_col] as f64 * x[b * 24 + nhwc] as f64;
                    }
                }
            }
            want[b * units + u] = acc as f32;
        }
    }
    assert_close(y.as_slice(), &want, 1e-5);
    assert_eq!(layer.export_param("weight").unwrap(), weight);

    // The same input through Flatten from Shape3 gives the same result.
    let flat = Flatten::<Shape3<U2, U3, U4>>::new();
    let x3 = Batch::<Shape3<U2, U3, U4>>::from_vec(n, x).unwrap();
    let y2 = layer.predict(&flat.predict(&x3));
    assert_eq!(y2.as_slice(), y.as_slice());
}

#[test]
fn dense_without_flatten_uses_columns_as_given() {
    let mut plain = Dense::<Shape1<U24>, U5>::new(true, &mut seeded_rng(1));
    // Dims that do not multiply to the input length are ignored.
    let mut ignored =
        Dense::<Shape1<U24>, U5>::new(true, &mut seeded_rng(1)).follows_flatten_of(&[2, 3, 5]);
    let weight = random_vec(50, 5 * 24);
    let bias = random_vec(51, 5);
    let x = random_vec(52, 2 * 24);
    let mut want = vec![0.0f32; 2 * 5];
    for b in 0..2 {
        for u in 0..5 {
            let dot: f64 = (0..24)
                .map(|t| weight[u * 24 + t] as f64 * x[b * 24 + t] as f64)
                .sum();
            want[b * 5 + u] = (dot + bias[u] as f64) as f32;
        }
    }
    for layer in [&mut plain, &mut ignored] {
        assert!(layer.import_param("weight", &weight));
        assert!(layer.import_param("bias", &bias));
        let y = layer.predict(&Batch::from_vec(2, x.clone()).unwrap());
        assert_close(y.as_slice(), &want, 1e-5);
        // Internal kernel is [in, units]: kernel[t][u] = weight[u][t].
        for u in 0..5 {
            for t in 0..24 {
                assert_eq!(layer.kernel()[t * 5 + u], weight[u * 24 + t]);
            }
        }
    }
    assert_eq!(plain.params()[0].shape, vec![5, 24]);
    assert_eq!(plain.params()[1].shape, vec![5]);
    assert_eq!(plain.param_count(), 125);
    assert!(!plain.import_param("weight", &weight[1..]));
}

#[test]
fn dense_on_shape3_acts_on_last_axis() {
    type L = Dense<Shape3<U2, U3, U4>, U5, Linear>;
    assert_eq!(<<L as Layer>::Output as Shape>::DIMS, &[2, 3, 5]);
    let mut layer = L::new(true, &mut seeded_rng(9)).follows_flatten_of(&[1, 1, 4]);
    let weight = random_vec(60, 5 * 4);
    let bias = random_vec(61, 5);
    assert!(layer.import_param("weight", &weight));
    assert!(layer.import_param("bias", &bias));
    assert_eq!(layer.params()[0].shape, vec![5, 4]);
    let n = 2;
    let x = random_vec(62, n * 2 * 3 * 4);
    let y = layer.predict(&Batch::from_vec(n, x.clone()).unwrap());
    assert_eq!(y.dims(), vec![n, 2, 3, 5]);
    let mut want = Vec::new();
    for pixel in x.chunks(4) {
        for u in 0..5 {
            let dot: f64 = (0..4)
                .map(|i| weight[u * 4 + i] as f64 * pixel[i] as f64)
                .sum();
            want.push((dot + bias[u] as f64) as f32);
        }
    }
    assert_close(y.as_slice(), &want, 1e-5);
}

#[test]
fn dense_softmax_on_shape3_normalises_each_pixel() {
    type L = Dense<Shape3<U2, U2, U3>, U4, Softmax>;
    let layer = L::new(false, &mut seeded_rng(3));
    let x: Vec<f32> = random_vec(70, 3 * 12).iter().map(|v| v * 5.0).collect();
    let y = layer.predict(&Batch::from_vec(3, x).unwrap());
    assert_eq!(y.as_slice().len(), 3 * 2 * 2 * 4);
    for row in y.as_slice().chunks(4) {
        let s: f32 = row.iter().sum();
        assert!((s - 1.0).abs() < 1e-5, "row {row:?} sums to {s}");
        assert!(row.iter().all(|&v| v > 0.0 && v < 1.0));
    }
}

// ---------------------------------------------------------------------------
// Dropout
// ---------------------------------------------------------------------------

fn dropout_input() -> Batch<Shape1<U1000>> {
    // Values in [0.5, 1.5): never zero, so zeros in the output are drops.
    let x: Vec<f32> = random_vec(80, 10_000)
        .iter()
        .map(|v| 1.0 + v / 2.0)
        .collect();
    Batch::from_vec(10, x).unwrap()
}

#[test]
fn dropout_is_identity_at_inference() {
    let layer = Dropout::<Shape1<U1000>>::new(0.3).unwrap();
    assert_eq!(layer.rate(), 0.3);
    let x = dropout_input();
    assert_eq!(layer.predict(&x), x);
    assert_eq!(layer.param_count(), 0);
}

#[test]
fn dropout_in_training_drops_about_rate_and_rescales() {
    let layer = Dropout::<Shape1<U1000>>::new(0.3).unwrap();
    let x = dropout_input();
    let y = layer.predict_training(&x, &mut seeded_rng(7));
    assert_eq!(y.dims(), vec![10, 1000]);
    let zeros = y.as_slice().iter().filter(|&&v| v == 0.0).count();
    let frac = zeros as f64 / 10_000.0;
    // Binomial(10000, 0.3): sd ≈ 0.0046, so 0.25..0.35 is over 10 sd wide.
    assert!((0.25..0.35).contains(&frac), "dropped fraction {frac}");
    for (a, b) in x.as_slice().iter().zip(y.as_slice()) {
        if *b != 0.0 {
            assert!(
                (b - a / 0.7).abs() <= 1e-6 * b.abs(),
                "{b} is not {a} / 0.7"
            );
        }
    }
    // Inverted dropout keeps the mean.
    let mean_x: f64 = x.as_slice().iter().map(|&v| v as f64).sum::<f64>() / 1e4;
    let mean_y: f64 = y.as_slice().iter().map(|&v| v as f64).sum::<f64>() / 1e4;
    assert!(
        (mean_x - mean_y).abs() < 0.05 * mean_x,
        "{mean_x} vs {mean_y}"
    );

    // Same seed, same mask; another seed, another mask.
    assert_eq!(layer.predict_training(&x, &mut seeded_rng(7)), y);
    assert_ne!(layer.predict_training(&x, &mut seeded_rng(8)), y);
    // One stream, two draws: different masks.
    let mut rng = seeded_rng(7);
    let first = layer.predict_training(&x, &mut rng);
    let second = layer.predict_training(&x, &mut rng);
    assert_eq!(first, y);
    assert_ne!(first, second);
}

#[test]
fn dropout_rates() {
    for bad in [
        1.0f32,
        1.5,
        -0.1,
        -1e-9,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ] {
        let err = Dropout::<Shape1<U4>>::new(bad)
            .err()
            .unwrap_or_else(|| panic!("rate {bad} accepted"));
        assert!(err.rate.to_bits() == bad.to_bits());
        let text = err.to_string();
        assert!(text.contains(&bad.to_string()), "{text}");
    }
    for good in [0.0f32, 0.5, 0.999] {
        assert!(
            Dropout::<Shape1<U4>>::new(good).is_ok(),
            "rate {good} refused"
        );
    }
    // Rate 0 drops nothing, even in training.
    let layer = Dropout::<Shape1<U1000>>::new(0.0).unwrap();
    let x = dropout_input();
    assert_eq!(layer.predict_training(&x, &mut seeded_rng(1)), x);
}

#[test]
fn dropout_on_images_keeps_shape() {
    let layer = Dropout::<Shape3<U4, U4, U3>>::new(0.5).unwrap();
    let x = Batch::<Shape3<U4, U4, U3>>::filled(5, 2.0);
    let y = layer.predict_training(&x, &mut seeded_rng(3));
    assert_eq!(y.dims(), vec![5, 4, 4, 3]);
    assert!(y.as_slice().iter().all(|&v| v == 0.0 || v == 4.0));
    assert!(y.as_slice().contains(&0.0));
    assert!(y.as_slice().contains(&4.0));
}

// ---------------------------------------------------------------------------
// Activations
// ---------------------------------------------------------------------------

#[test]
fn softmax_rows_sum_to_one_and_are_stable() {
    let layer = Activation::<Shape1<U3>, Softmax>::new();
    let rows: Vec<f32> = vec![
        1.0,
        2.0,
        3.0, //
        1001.0,
        1002.0,
        1003.0, // shifted by 1000: same probabilities
        -1e4,
        -1e4 + 1.0,
        -1e4 + 2.0, // very negative
        3e38,
        3e38,
        3e38, // near f32::MAX
        -3e38,
        0.0,
        3e38, // extremes in one row
        0.0,
        0.0,
        0.0,
    ];
    let y = layer.predict(&Batch::from_vec(6, rows).unwrap());
    let e: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|v| v.exp()).collect();
    let s: f64 = e.iter().sum();
    let want: Vec<f32> = e.iter().map(|v| (v / s) as f32).collect();
    let out = y.as_slice();
    assert!(out.iter().all(|v| v.is_finite()), "{out:?}");
    for row in out.chunks(3) {
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6, "{row:?}");
    }
    assert_close(&out[0..3], &want, 1e-6);
    assert_close(&out[3..6], &want, 1e-6);
    assert_close(&out[6..9], &want, 1e-6);
    assert_close(&out[9..12], &[1.0 / 3.0; 3], 1e-6);
    assert_close(&out[12..15], &[0.0, 0.0, 1.0], 1e-6);
    assert_close(&out[15..18], &[1.0 / 3.0; 3], 1e-6);
}

#[test]
fn softmax_on_images_normalises_channels() {
    let layer = Activation::<Shape3<U2, U2, U5>, Softmax>::new();
    let x: Vec<f32> = random_vec(90, 2 * 20).iter().map(|v| v * 30.0).collect();
    let y = layer.predict(&Batch::from_vec(2, x.clone()).unwrap());
    for (xs, ys) in x.chunks(5).zip(y.as_slice().chunks(5)) {
        let m = xs
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, |a, b| a.max(b as f64));
        let s: f64 = xs.iter().map(|&v| (v as f64 - m).exp()).sum();
        let want: Vec<f32> = xs
            .iter()
            .map(|&v| ((v as f64 - m).exp() / s) as f32)
            .collect();
        assert_close(ys, &want, 1e-6);
    }
}

#[test]
fn elementwise_activations() {
    let x = vec![-1000.0f32, -20.0, -1.5, -0.0, 0.0, 0.5, 3.0, 20.0, 1000.0];
    let batch = Batch::<Shape1<U9>>::from_vec(1, x.clone()).unwrap();

    let relu = Activation::<Shape1<U9>, Relu>::new().predict(&batch);
    let want: Vec<f32> = x.iter().map(|&v| if v > 0.0 { v } else { 0.0 }).collect();
    assert_eq!(relu.as_slice(), &want[..]);

    let sig = Activation::<Shape1<U9>, Sigmoid>::new().predict(&batch);
    let want: Vec<f32> = x
        .iter()
        .map(|&v| (1.0 / (1.0 + (-(v as f64)).exp())) as f32)
        .collect();
    assert!(sig
        .as_slice()
        .iter()
        .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
    assert_close(sig.as_slice(), &want, 2e-7);

    let tanh = Activation::<Shape1<U9>, Tanh>::new().predict(&batch);
    let want: Vec<f32> = x.iter().map(|&v| (v as f64).tanh() as f32).collect();
    assert_close(tanh.as_slice(), &want, 1e-6);

    let lin = Activation::<Shape1<U9>, Linear>::new().predict(&batch);
    assert_eq!(lin, batch);
}

// ---------------------------------------------------------------------------
// Batch
// ---------------------------------------------------------------------------

#[test]
fn batch_from_vec_checks_length() {
    let err = Batch::<Shape3<U2, U3, U4>>::from_vec(5, vec![0.0; 119]).unwrap_err();
    assert_eq!(err.expected, 120);
    assert_eq!(err.found, 119);
    let text = err.to_string();
    assert!(text.contains("120") && text.contains("119"), "{text}");
    assert!(text.contains("2x3x4"), "{text}");

    let err = Batch::<Shape1<U10>>::from_slice(2, &[1.0; 21]).unwrap_err();
    assert_eq!((err.expected, err.found), (20, 21));

    // Overflowing sizes are an error, not a panic.
    let err = Batch::<Shape1<U10>>::from_vec(usize::MAX, vec![1.0; 3]).unwrap_err();
    assert_eq!(err.found, 3);

    let ok =
        Batch::<Shape3<U2, U3, U4>>::from_vec(5, (0..120).map(|v| v as f32).collect()).unwrap();
    assert_eq!(ok.batch_size(), 5);
    assert_eq!(ok.dims(), vec![5, 2, 3, 4]);
    assert_eq!(ok.sample(1).unwrap()[0], 24.0);
    assert!(ok.sample(5).is_none());
    assert!(Batch::<Shape1<U10>>::from_vec(0, vec![]).is_ok());
}

#[test]
fn batch_argmax_per_last_axis() {
    let b = Batch::<Shape1<U3>>::from_vec(3, vec![0.1, 0.7, 0.2, 5.0, -1.0, 4.0, -3.0, -2.0, -1.0])
        .unwrap();
    assert_eq!(b.argmax(), vec![1, 0, 2]);
}

// ---------------------------------------------------------------------------
// Pooling and flatten through the layers
// ---------------------------------------------------------------------------

#[test]
fn pooling_layers_match_keras_semantics() {
    // 5x5, 2 channels; pool 2 stride 2 same: pads 0 top / 1 bottom.
    type Max = MaxPool2D<Shape3<U5, U5, U2>, U2, U2, U2, U2, Same>;
    type Avg = AvgPool2D<Shape3<U5, U5, U2>, U2, U2, U2, U2, Same>;
    assert_eq!(<<Max as Layer>::Output as Shape>::DIMS, &[3, 3, 2]);
    // Channel 0: -(y·5 + x) - 1 (all negative); channel 1: y·5 + x.
    let mut x = Vec::new();
    for y in 0..5 {
        for xx in 0..5 {
            x.push(-((y * 5 + xx) as f32) - 1.0);
            x.push((y * 5 + xx) as f32);
        }
    }
    let batch = Batch::from_vec(1, x.clone()).unwrap();
    let mx = Max::new().predict(&batch);
    let av = Avg::new().predict(&batch);
    let cell = |y: usize, xx: usize, c: usize| x[(y * 5 + xx) * 2 + c];
    for oy in 0..3 {
        for ox in 0..3 {
            let ys: Vec<usize> = (oy * 2..(oy * 2 + 2).min(5)).collect();
            let xs: Vec<usize> = (ox * 2..(ox * 2 + 2).min(5)).collect();
            for c in 0..2 {
                let cells: Vec<f32> = ys
                    .iter()
                    .flat_map(|&y| xs.iter().map(move |&xx| (y, xx)))
                    .map(|(y, xx)| cell(y, xx, c))
                    .collect();
                let max = cells.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mean = cells.iter().sum::<f32>() / cells.len() as f32;
                assert_eq!(mx.as_slice()[(oy * 3 + ox) * 2 + c], max);
                assert!((av.as_slice()[(oy * 3 + ox) * 2 + c] - mean).abs() < 1e-6);
            }
        }
    }
    // The bottom-right corner sees one real cell: the negative channel's
    // max is that cell, not the padding's 0.
    assert_eq!(mx.as_slice()[(2 * 3 + 2) * 2], -25.0);
    assert_eq!(av.as_slice()[(2 * 3 + 2) * 2], -25.0);
}

#[test]
fn flatten_keeps_nhwc_order() {
    let flat = Flatten::<Shape3<U2, U3, U4>>::new();
    assert_eq!(
        <<Flatten<Shape3<U2, U3, U4>> as Layer>::Output as Shape>::DIMS,
        &[24]
    );
    let x: Vec<f32> = (0..48).map(|v| v as f32).collect();
    let y = flat.predict(&Batch::from_vec(2, x.clone()).unwrap());
    assert_eq!(y.as_slice(), &x[..]);
    assert_eq!(y.dims(), vec![2, 24]);
}

// ---------------------------------------------------------------------------
// Output shapes at the type level agree with the runtime rule
// ---------------------------------------------------------------------------

fn conv_dims<H, W, C, F, KH, KW, SH, SW, P>() -> (&'static [usize], Vec<usize>)
where
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    F: Unsigned,
    KH: Unsigned,
    KW: Unsigned,
    SH: Unsigned,
    SW: Unsigned,
    P: strata_core::shape::PaddingMode
        + strata_core::shape::WindowOut<H, KH, SH>
        + strata_core::shape::WindowOut<W, KW, SW>,
    Conv2D<Shape3<H, W, C>, F, KH, KW, SH, SW, P>: Layer,
{
    let typed = <<Conv2D<Shape3<H, W, C>, F, KH, KW, SH, SW, P> as Layer>::Output as Shape>::DIMS;
    let pad = P::PADDING;
    let runtime = vec![
        conv_output_len(H::USIZE, KH::USIZE, SH::USIZE, pad).unwrap(),
        conv_output_len(W::USIZE, KW::USIZE, SW::USIZE, pad).unwrap(),
        F::USIZE,
    ];
    (typed, runtime)
}

fn pool_dims<H, W, C, PH, PW, SH, SW, P>() -> [(&'static [usize], Vec<usize>); 2]
where
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    PH: Unsigned,
    PW: Unsigned,
    SH: Unsigned,
    SW: Unsigned,
    P: strata_core::shape::PaddingMode
        + strata_core::shape::WindowOut<H, PH, SH>
        + strata_core::shape::WindowOut<W, PW, SW>,
    MaxPool2D<Shape3<H, W, C>, PH, PW, SH, SW, P>: Layer,
    AvgPool2D<Shape3<H, W, C>, PH, PW, SH, SW, P>: Layer,
{
    let pad = P::PADDING;
    let runtime = vec![
        conv_output_len(H::USIZE, PH::USIZE, SH::USIZE, pad).unwrap(),
        conv_output_len(W::USIZE, PW::USIZE, SW::USIZE, pad).unwrap(),
        C::USIZE,
    ];
    [
        (
            <<MaxPool2D<Shape3<H, W, C>, PH, PW, SH, SW, P> as Layer>::Output as Shape>::DIMS,
            runtime.clone(),
        ),
        (
            <<AvgPool2D<Shape3<H, W, C>, PH, PW, SH, SW, P> as Layer>::Output as Shape>::DIMS,
            runtime,
        ),
    ]
}

#[test]
fn type_level_output_shapes_match_runtime_rule() {
    let cases = [
        conv_dims::<U32, U32, U3, U16, U3, U3, U1, U1, Same>(),
        conv_dims::<U32, U32, U3, U16, U3, U3, U1, U1, Valid>(),
        conv_dims::<U28, U28, U1, U8, U5, U5, U2, U2, Valid>(),
        conv_dims::<U9, U8, U2, U4, U3, U3, U2, U2, Same>(),
        conv_dims::<U7, U11, U1, U2, U2, U4, U3, U2, Valid>(),
        conv_dims::<U7, U11, U1, U2, U2, U4, U3, U2, Same>(),
        conv_dims::<U1, U1, U4, U2, U3, U3, U2, U2, Same>(),
        conv_dims::<U5, U5, U1, U1, U5, U5, U1, U1, Valid>(),
        conv_dims::<U224, U224, U3, U64, U7, U7, U2, U2, Same>(),
    ];
    for (typed, runtime) in &cases {
        assert_eq!(*typed, &runtime[..]);
    }
    // Hand-worked: Keras gives (None, 16, 16, 16) etc.
    assert_eq!(cases[0].0, &[32, 32, 16]);
    assert_eq!(cases[1].0, &[30, 30, 16]);
    assert_eq!(cases[2].0, &[12, 12, 8]);
    assert_eq!(cases[3].0, &[5, 4, 4]);
    assert_eq!(cases[4].0, &[2, 4, 2]);
    assert_eq!(cases[5].0, &[3, 6, 2]);
    assert_eq!(cases[8].0, &[112, 112, 64]);

    let pools = [
        pool_dims::<U32, U32, U8, U2, U2, U2, U2, Valid>(),
        pool_dims::<U7, U7, U3, U2, U2, U2, U2, Valid>(),
        pool_dims::<U7, U7, U3, U2, U2, U2, U2, Same>(),
        pool_dims::<U10, U6, U1, U3, U2, U1, U2, Same>(),
        pool_dims::<U10, U6, U1, U3, U3, U3, U3, Valid>(),
    ];
    for pair in &pools {
        for (typed, runtime) in pair {
            assert_eq!(*typed, &runtime[..]);
        }
    }
    assert_eq!(pools[0][0].0, &[16, 16, 8]);
    assert_eq!(pools[1][0].0, &[3, 3, 3]);
    assert_eq!(pools[2][0].0, &[4, 4, 3]);
    assert_eq!(pools[3][1].0, &[10, 3, 1]);
    assert_eq!(pools[4][1].0, &[3, 2, 1]);
}

// ---------------------------------------------------------------------------
// Which windows the type-level rule accepts
// ---------------------------------------------------------------------------

/// Method-resolution probe: the inherent `fits` exists only when
/// `P: WindowOut<L, K, S>`; otherwise the trait's default (false) is used.
struct Probe<P, L, K, S>(core::marker::PhantomData<(P, L, K, S)>);
trait DoesNotFit {
    fn fits(&self) -> bool {
        false
    }
}
impl<P, L, K, S> DoesNotFit for Probe<P, L, K, S> {}
impl<P: strata_core::shape::WindowOut<L, K, S>, L, K, S> Probe<P, L, K, S> {
    fn fits(&self) -> bool {
        true
    }
}
macro_rules! fits {
    ($p:ty, $l:ty, $k:ty, $s:ty) => {
        Probe::<$p, $l, $k, $s>(core::marker::PhantomData).fits()
    };
}

#[test]
fn type_level_rule_accepts_exactly_the_runtime_windows() {
    use strata_core::shape::{conv_output_len, Padding};
    // Accepted: the runtime rule has an output for these.
    assert!(fits!(Valid, U4, U4, U1));
    assert!(fits!(Valid, U4, U3, U3));
    assert!(fits!(Same, U4, U9, U2));
    assert!(fits!(Same, U1, U1, U1));
    // Refused: no window fits, or a zero kernel / stride / input, for which
    // `conv_output_len` (and so the layers' forward) has no answer.
    assert!(!fits!(Valid, U4, U5, U1));
    assert!(!fits!(Valid, U4, U2, U0));
    assert!(!fits!(Same, U4, U2, U0));
    assert_eq!(conv_output_len(4, 0, 1, Padding::Valid), None);
    assert!(
        !fits!(Valid, U4, U0, U1),
        "a 0-wide kernel type-checks but cannot run"
    );
    assert!(
        !fits!(Same, U4, U0, U1),
        "a 0-wide kernel type-checks but cannot run"
    );
    assert_eq!(conv_output_len(0, 1, 1, Padding::Same), None);
    assert!(
        !fits!(Same, U0, U1, U1),
        "a 0-long input type-checks but cannot run"
    );
}

#[test]
fn empty_batches_pass_through_every_layer() {
    let conv = ConvA::new(true, &mut seeded_rng(1));
    let y = conv.predict(&Batch::zeros(0));
    assert_eq!(y.dims(), vec![0, 3, 6, 3]);
    assert!(y.as_slice().is_empty());
    let pool = MaxPool2D::<Shape3<U5, U5, U2>, U2, U2, U2, U2, Same>::new();
    assert!(pool.predict(&Batch::zeros(0)).as_slice().is_empty());
    let avg = AvgPool2D::<Shape3<U5, U5, U2>, U3, U3, U1, U1, Valid>::new();
    assert!(avg.predict(&Batch::zeros(0)).as_slice().is_empty());
    let dense = Dense::<Shape1<U6>, U4, Softmax>::new(true, &mut seeded_rng(1));
    assert_eq!(dense.predict(&Batch::zeros(0)).dims(), vec![0, 4]);
    let drop = Dropout::<Shape1<U6>>::new(0.5).unwrap();
    assert!(drop
        .predict_training(&Batch::zeros(0), &mut seeded_rng(1))
        .as_slice()
        .is_empty());
}
