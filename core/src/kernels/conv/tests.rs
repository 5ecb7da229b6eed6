//! Tests of the convolution kernels: every path against the naive
//! implementation and independent references (`testutil`), thread-count
//! invariance, hand-worked Keras 'same' cases, dilation and channel groups,
//! and the backward pass against finite differences.

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::backward::{
    conv2d_backward, conv2d_backward_grouped, conv2d_backward_grouped_scratch,
    conv2d_backward_grouped_scratch_len, conv2d_backward_scratch, conv2d_backward_scratch_len,
};
use super::{
    choose_path, conv2d, conv2d_scratch_len, conv2d_with, direct, ConvExtras, ConvGeometry,
    ConvPath, PreparedKernel,
};
use crate::kernels::epilogue::{Epilogue, Step};
use crate::kernels::isa::Isa;
use crate::kernels::naive;
use crate::kernels::testutil::*;
use crate::shape::{conv_output_len, same_padding, Padding};

/// Runs the fast convolution with exactly `conv2d_scratch_len` scratch
/// values, output and scratch pre-filled with NaN (the kernel must write
/// every output and must not read stale scratch).
fn fast_conv(g: &ConvGeometry, x: &[f32], k: &[f32], bias: Option<&[f32]>, co: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; g.out_pixels() * co];
    let mut scratch = vec![f32::NAN; conv2d_scratch_len(g, co, 1)];
    conv2d(g, x, k, bias, co, &mut out, &mut scratch, 1);
    out
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
        prop_assert!(conv2d_scratch_len(&geo.fast().unwrap(), co, 1) <= w * c + 32);
        check_conv(&geo, co, with_bias, seed)?;
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
        conv2d_scratch_len(&g, 5, 1) < g.out_pixels() * g.patch_len(),
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
    for isa in Isa::SIMD {
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
    let mut scratch = vec![f32::NAN; path.scratch_len(g, co, threads)];
    conv2d_with(
        path,
        g,
        x,
        k,
        bias,
        co,
        &mut out,
        &mut scratch,
        threads,
        ConvExtras::default(),
    );
    out
}

fn relu(values: &mut [f32], _: usize) {
    values.iter_mut().for_each(|v| *v = v.max(0.0));
}

/// A prepared kernel and a fused epilogue change nothing but where the work
/// happens: `path` with both, on 1 and 3 threads, gives bitwise what the
/// plain call (`plain`) followed by the epilogue gives.
#[allow(clippy::too_many_arguments)]
fn check_extras(
    path: ConvPath,
    g: &ConvGeometry,
    x: &[f32],
    k: &[f32],
    bias: Option<&[f32]>,
    co: usize,
    plain: &[f32],
) -> Result<(), TestCaseError> {
    let scale: Vec<f32> = (0..co).map(|c| 0.5 + c as f32 / 7.0).collect();
    let shift: Vec<f32> = (0..co).map(|c| c as f32 / 5.0 - 1.0).collect();
    let steps = [
        Step::Affine {
            scale: &scale,
            shift: &shift,
        },
        Step::Map(relu),
    ];
    let epilogue = Epilogue::new(&steps);
    let mut expected = plain.to_vec();
    epilogue.apply(&mut expected, co);
    let prepared = PreparedKernel::with_path(path, g, k, co);
    // Winograd's transform, the direct kernel's panels, and the panels of
    // the unpacked GEMM that small im2col and pointwise outputs take.
    let prepares = match path {
        ConvPath::Winograd | ConvPath::Winograd4 | ConvPath::Direct(_) => true,
        ConvPath::Im2col | ConvPath::Pointwise => super::unpacked_isa(g, co).is_some(),
    };
    prop_assert_eq!(prepared.is_some(), prepares);
    for threads in [1, 3] {
        let mut out = vec![f32::NAN; g.out_pixels() * co];
        let mut scratch = vec![f32::NAN; path.scratch_len(g, co, threads)];
        let extras = ConvExtras {
            prepared: prepared.as_ref(),
            epilogue,
        };
        conv2d_with(
            path,
            g,
            x,
            k,
            bias,
            co,
            &mut out,
            &mut scratch,
            threads,
            extras,
        );
        let same_bits = out
            .iter()
            .zip(&expected)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        prop_assert!(same_bits, "{:?}, {} threads: fused differs", path, threads);
    }
    Ok(())
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
        check_extras(path, &g, &x, &k, bias, co, &one)?;
        checked += 1;
    }
    // What `conv2d` itself picks, with the scratch the layer gives it.
    let chosen = choose_path(&g, co);
    prop_assert!(chosen.supports(&g, co));
    prop_assert_eq!(chosen.scratch_len(&g, co, 2), conv2d_scratch_len(&g, co, 2));
    let mut out = vec![f32::NAN; g.out_pixels() * co];
    let mut scratch = vec![f32::NAN; conv2d_scratch_len(&g, co, 2)];
    conv2d(&g, &x, &k, bias, co, &mut out, &mut scratch, 2);
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

    /// The direct kernel: rows of one to several pixel blocks (short and
    /// overlapping tails), one register of channels to several blocks,
    /// short patches, strides 1 and 2.
    #[test]
    fn direct_matches_reference(
        n in 1usize..=2, h in 1usize..=9, w in 12usize..=56, c in 1usize..=4,
        k in 1usize..=7, s in 1usize..=2, co in 8usize..=70,
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
    // ResNet's stages: 16 channels take the direct kernel where it runs,
    // whatever the register width; 32 take Winograd.
    let stage1 = choose_path(&g(64, (32, 32, 16), 3, 1, same), 16);
    assert_eq!(matches!(stage1, ConvPath::Direct(_)), direct);
    assert_eq!(stage1 == ConvPath::Winograd4, !direct);
    let stage2 = choose_path(&g(1, (16, 16, 32), 3, 1, same), 32);
    assert_eq!(stage2, ConvPath::Winograd4);
    // Too few 4×4 tiles for F(4×4)'s GEMMs (4 on an 8×8 map at batch 1):
    // F(2×2); twice as many at batch 2: F(4×4).
    let stage3 = |n| choose_path(&g(n, (8, 8, 64), 3, 1, same), 64);
    assert_eq!(stage3(1), ConvPath::Winograd);
    assert_eq!(stage3(2), ConvPath::Winograd4);
    // A large kernel with stride 2: im2col + GEMM.
    let big = choose_path(&g(8, (28, 28, 256), 3, 2, same), 256);
    assert_eq!(big, ConvPath::Im2col);
    // The scratch never depends on the batch size.
    for p in [same, valid] {
        let small = conv2d_scratch_len(&g(8, (56, 56, 64), 3, 1, p), 64, 2);
        let large = conv2d_scratch_len(&g(512, (56, 56, 64), 3, 1, p), 64, 2);
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

// ---------------------------------------------------------------------------
// Convolution
// ---------------------------------------------------------------------------

/// Checks `conv2d_backward` on `g` with `out_c` filters; returns the worst
/// error.
fn check_conv_backward(g: &ConvGeometry, out_c: usize, with_bias: bool, seed: u64) -> f64 {
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
    conv2d_backward(
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
        Some(check_conv_backward(&g, c.cout, c.bias, c.seed))
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
        let worst = check_conv_backward(&g, 3, true, seed);
        println!("conv2d_backward across tiles (same: {same}): worst error {worst:.3e}");
    }
}

/// The grouped (threaded) convolution backward pass agrees with the plain
/// one, and gives the same bits on any number of threads.
#[test]
fn grouped_conv_backward_matches_plain_and_is_thread_invariant() {
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
                None => conv2d_backward(&g, &x, &w, &dy, out_c, &mut gk, Some(&mut gb), &mut gx),
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

// ---------------------------------------------------------------------------
// Thread counts (issue 9): scratch follows the work, not the request
// ---------------------------------------------------------------------------

/// Geometries for every forward path at batch 8, with their filters: a
/// few MFLOPs (one thread's worth) up to some hundreds.
fn thread_count_cases() -> Vec<(ConvGeometry, usize)> {
    let g = |n, hwc, k, s, p| ConvGeometry::new(n, hwc, (k, k), (s, s), p).unwrap();
    let (same, valid) = (Padding::Same, Padding::Valid);
    vec![
        (g(1, (32, 32, 3), 3, 1, same), 32),
        (g(8, (32, 32, 3), 3, 1, same), 32),
        (g(8, (32, 32, 32), 3, 1, valid), 32),
        (g(8, (14, 14, 64), 3, 1, same), 64),
        (g(8, (28, 28, 64), 3, 2, same), 64),
        (g(8, (28, 28, 64), 1, 1, valid), 64),
    ]
}

/// A path's scratch grows with the threads its work can use (one per
/// [`FLOPS_PER_THREAD`](crate::kernels::parallel::FLOPS_PER_THREAD) at
/// most), not with the threads asked for: 2^40 or `usize::MAX` threads
/// neither abort nor overflow, and compute the bits one thread computes.
#[test]
fn forward_scratch_follows_the_work_not_the_thread_count() {
    use crate::kernels::parallel::{FLOPS_PER_THREAD, MAX_THREADS};
    for (g, co) in thread_count_cases() {
        let value = |i: usize| ((i * 7919) % 1009) as f32 / 504.5 - 1.0;
        let x: Vec<f32> = (0..g.input_len()).map(value).collect();
        let k: Vec<f32> = (0..g.patch_len() * co).map(|i| value(i + 17)).collect();
        let b: Vec<f32> = (0..co).map(|i| value(i + 5)).collect();
        // Every thread has at least this much work, whatever the path.
        let most = (2 * g.out_pixels() * g.patch_len() * co / FLOPS_PER_THREAD).max(1);
        for path in all_paths() {
            if !path.supports(&g, co) {
                continue;
            }
            let one = path.scratch_len(&g, co, 1);
            let mut last = one;
            for threads in [2, 4, 64, 1024, 1 << 40, usize::MAX] {
                let len = path.scratch_len(&g, co, threads);
                assert!(len >= last, "{path:?} {g:?}: less scratch for more threads");
                assert!(
                    len <= most * one,
                    "{path:?} {g:?}: {len} values on {threads} threads, {one} on 1"
                );
                last = len;
            }
            assert_eq!(last, path.scratch_len(&g, co, MAX_THREADS));
            let serial = path_conv(path, &g, &x, &k, Some(&b), co, 1);
            for threads in [1 << 40, usize::MAX] {
                let many = path_conv(path, &g, &x, &k, Some(&b), co, threads);
                let same_bits = serial
                    .iter()
                    .zip(&many)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same_bits, "{path:?} {g:?}: {threads} threads differ from 1");
            }
        }
    }
}

/// The grouped backward pass: the same bounds, the same bits.
#[test]
fn backward_scratch_follows_the_work_not_the_thread_count() {
    for (g, co) in thread_count_cases() {
        let one = conv2d_backward_grouped_scratch_len(&g, co, 1);
        let most = conv2d_backward_grouped_scratch_len(&g, co, usize::MAX);
        assert!(
            most <= super::backward::MAX_GROUPS * one,
            "{g:?}: {most} vs {one}"
        );
        assert_eq!(most, conv2d_backward_grouped_scratch_len(&g, co, 1 << 40));
    }
    let (g, co) = thread_count_cases()[2];
    let value = |i: usize| ((i * 7919) % 1009) as f32 / 504.5 - 1.0;
    let x: Vec<f32> = (0..g.input_len()).map(value).collect();
    let w: Vec<f32> = (0..g.patch_len() * co).map(|i| value(i + 17)).collect();
    let dy: Vec<f32> = (0..g.out_pixels() * co).map(|i| value(i + 91)).collect();
    let run = |threads: usize| {
        let (mut gk, mut gb, mut gx) =
            (vec![0.0f32; w.len()], vec![0.0f32; co], vec![0.0; x.len()]);
        conv2d_backward_grouped(
            &g,
            &x,
            &w,
            &dy,
            co,
            &mut gk,
            Some(&mut gb),
            &mut gx,
            threads,
        );
        (gk, gb, gx)
    };
    assert_eq!(run(1), run(usize::MAX));
}

// ---------------------------------------------------------------------------
// Hostile arguments (issue 9)
// ---------------------------------------------------------------------------

/// `k = (2^64 + 2) / 6` makes `m · k` wrap to 2 in release: the direct GEMM
/// must panic rather than read past `a`.
#[test]
fn direct_gemm_rejects_sizes_that_overflow() {
    let k = (((1u128 << 64) + 2) / 6) as usize;
    for isa in Isa::SIMD {
        if !isa.available() {
            continue;
        }
        let result = std::panic::catch_unwind(|| {
            direct::gemm(isa, 6, k, 18, &[1.0; 2], &[1.0; 6], &mut [0.0; 108]);
        });
        assert!(result.is_err(), "{isa:?}: no panic");
        let m = 12;
        let result = std::panic::catch_unwind(|| {
            direct::gemm(isa, m, k, 32, &[1.0; 2], &[1.0; 6], &mut [0.0; 384]);
        });
        assert!(result.is_err(), "{isa:?}: no panic");
    }
}

/// The direct GEMM's other hostile sizes: below one register block
/// (zero rows included), `n` whose reach overflows, each slice one value
/// short. Each must panic before the unchecked block code runs.
#[test]
fn direct_gemm_rejects_short_slices_and_small_sizes() {
    for isa in Isa::SIMD {
        if !isa.available() {
            continue;
        }
        let (p, lanes) = isa.min_block();
        let (m, k, n) = (p + 1, 5, 2 * lanes + 3);
        let cases = [
            (0, k, n, 0, k * n, 0),
            (p - 1, k, n, (p - 1) * k, k * n, (p - 1) * n),
            (m, k, lanes - 1, m * k, k * n, m * n),
            (m, 1, usize::MAX / 2, m, 64, m * n),
            (m, k, n, m * k - 1, k * n, m * n),
            (m, k, n, m * k, k * n - 1, m * n),
            (m, k, n, m * k, k * n, m * n - 1),
        ];
        for (m, k, n, la, lb, lc) in cases {
            let (a, b, mut c) = (vec![1.0f32; la], vec![1.0f32; lb], vec![0.0f32; lc]);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                direct::gemm(isa, m, k, n, &a, &b, &mut c);
            }));
            assert!(
                result.is_err(),
                "{isa:?} ({m}, {k}, {n}), {la}/{lb}/{lc}: no panic"
            );
        }
        // The exact lengths work, and k = 0 is a product of zeros.
        let (a, b) = (vec![1.0f32; m * k], vec![1.0f32; k * n]);
        let mut c = vec![f32::NAN; m * n];
        direct::gemm(isa, m, k, n, &a, &b, &mut c);
        assert!(c.iter().all(|&v| v == k as f32));
        direct::gemm(isa, m, 0, n, &[], &[], &mut c);
        assert!(c.iter().all(|&v| v == 0.0));
    }
}

/// Every forward path (the direct kernel's SIMD blocks, Winograd's
/// transforms and unpacked GEMMs, the tiled GEMMs: all reach unsafe code
/// through `dispatch` or `matrixmultiply`) refuses each slice one value
/// short and a geometry whose sizes overflow `usize`, on any thread
/// count; empty batches and zero filters do nothing.
#[test]
fn forward_paths_reject_hostile_sizes() {
    let g = ConvGeometry::new(2, (6, 40, 3), (3, 3), (1, 1), Padding::Same).unwrap();
    let co = 32;
    let lens = [g.input_len(), g.patch_len() * co, co, g.out_pixels() * co];
    for path in all_paths() {
        if !path.supports(&g, co) {
            continue;
        }
        let scratch_len = path.scratch_len(&g, co, usize::MAX);
        let run = |g: &ConvGeometry, lens: [usize; 4], threads: usize| {
            let x = vec![1.0f32; lens[0]];
            let k = vec![1.0f32; lens[1]];
            let b = vec![1.0f32; lens[2]];
            let mut out = vec![0.0f32; lens[3]];
            let mut scratch = vec![0.0f32; scratch_len];
            let call = std::panic::AssertUnwindSafe(|| {
                conv2d_with(
                    path,
                    g,
                    &x,
                    &k,
                    Some(&b),
                    co,
                    &mut out,
                    &mut scratch,
                    threads,
                    ConvExtras::default(),
                )
            });
            std::panic::catch_unwind(call).is_err()
        };
        assert!(
            !run(&g, lens, usize::MAX),
            "{path:?}: the exact lengths panic"
        );
        for i in 0..4 {
            let mut short = lens;
            short[i] -= 1;
            for threads in [1, usize::MAX] {
                assert!(
                    run(&g, short, threads),
                    "{path:?}: slice {i} short, no panic"
                );
            }
        }
        // 2^62 images: the input length overflows (and wraps, in release,
        // to a small number that these slices would pass).
        let huge = ConvGeometry {
            batch: 1 << 62,
            ..g
        };
        assert!(
            run(&huge, lens, 1),
            "{path:?}: overflowing geometry, no panic"
        );
        let empty = ConvGeometry { batch: 0, ..g };
        assert!(path.scratch_len(&empty, co, usize::MAX) <= scratch_len);
        let mut none: [f32; 0] = [];
        conv2d_with(
            path,
            &empty,
            &[],
            &[1.0; 864],
            None,
            co,
            &mut none,
            &mut [],
            usize::MAX,
            ConvExtras::default(),
        );
    }
    let mut none: [f32; 0] = [];
    conv2d(
        &g,
        &[0.0; 1440],
        &[],
        None,
        0,
        &mut none,
        &mut [],
        usize::MAX,
    );
}

// ---------------------------------------------------------------------------
// Dilation and channel groups
// ---------------------------------------------------------------------------

/// A dilated and/or grouped convolution case.
#[derive(Clone, Debug)]
struct Dilated {
    batch: usize,
    h: usize,
    w: usize,
    per_group: usize,
    groups: usize,
    filters_per_group: usize,
    k: (usize, usize),
    s: (usize, usize),
    d: (usize, usize),
    same: bool,
    bias: bool,
    seed: u64,
}

impl Dilated {
    fn geometry(&self) -> Option<ConvGeometry> {
        let padding = if self.same {
            Padding::Same
        } else {
            Padding::Valid
        };
        ConvGeometry::with_options(
            self.batch,
            (self.h, self.w, self.per_group * self.groups),
            self.k,
            self.s,
            padding,
            self.d,
            self.groups,
        )
    }

    fn out_c(&self) -> usize {
        self.filters_per_group * self.groups
    }
}

fn dilated_case() -> impl Strategy<Value = Dilated> {
    (
        (1usize..=3, 1usize..=11, 1usize..=11),
        (1usize..=3, 1usize..=3, 1usize..=3),
        (1usize..=3, 1usize..=3, 1usize..=2, 1usize..=2),
        (1usize..=3, 1usize..=3),
        (any::<bool>(), any::<bool>(), any::<u64>()),
    )
        .prop_map(
            |(
                (batch, h, w),
                (per_group, groups, filters_per_group),
                (kh, kw, sh, sw),
                (dh, dw),
                (same, bias, seed),
            )| Dilated {
                batch,
                h,
                w,
                per_group,
                groups,
                filters_per_group,
                k: (kh, kw),
                s: (sh, sw),
                d: (dh, dw),
                same,
                bias,
                seed,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_global_rejects: 4096,
        ..ProptestConfig::default()
    })]

    /// im2col (the only general path), what `conv2d` picks and the naive
    /// convolution all agree with the f64 reference on dilated and grouped
    /// windows; only the paths that support them are ever chosen.
    #[test]
    fn dilated_and_grouped_conv_match_reference(case in dilated_case()) {
        let Some(g) = case.geometry() else {
            return Err(TestCaseError::reject("no window fits"));
        };
        let co = case.out_c();
        let mut rng = rng(case.seed);
        let x = uniform_f32(&mut rng, g.input_len(), -1.0, 1.0);
        let w = uniform_f32(&mut rng, g.patch_len() * co, -1.0, 1.0);
        let b = uniform_f32(&mut rng, co, -1.0, 1.0);
        let bias = case.bias.then_some(b.as_slice());
        let b64 = to_f64(&b);
        let reference: Vec<f32> = conv_ref(&g, &to_f64(&x), &to_f64(&w), case.bias.then_some(b64.as_slice()), co)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let ax: Vec<f64> = x.iter().map(|v| v.abs() as f64).collect();
        let aw: Vec<f64> = w.iter().map(|v| v.abs() as f64).collect();
        let magnitude: Vec<f32> = conv_ref(&g, &ax, &aw, None, co).into_iter().map(|v| v as f32).collect();

        assert_close("naive vs reference", &naive::conv2d(&g, &x, &w, bias, co), &reference, &magnitude)?;
        let chosen = choose_path(&g, co);
        prop_assert!(chosen.supports(&g, co));
        if !g.is_plain() {
            prop_assert!(matches!(chosen, ConvPath::Im2col | ConvPath::Pointwise), "{:?}", chosen);
            for isa in Isa::SIMD {
                prop_assert!(!ConvPath::Direct(isa).supports(&g, co));
            }
            prop_assert!(!ConvPath::Winograd.supports(&g, co) && !ConvPath::Winograd4.supports(&g, co));
        }
        let mut out = vec![f32::NAN; g.out_pixels() * co];
        let mut scratch = vec![f32::NAN; conv2d_scratch_len(&g, co, 2)];
        conv2d(&g, &x, &w, bias, co, &mut out, &mut scratch, 2);
        assert_close("conv2d vs reference", &out, &reference, &magnitude)?;
        for path in [ConvPath::Im2col, ConvPath::Pointwise] {
            if !path.supports(&g, co) {
                continue;
            }
            let one = path_conv(path, &g, &x, &w, bias, co, 1);
            assert_close(&format!("{path:?} vs reference"), &one, &reference, &magnitude)?;
            let three = path_conv(path, &g, &x, &w, bias, co, 3);
            prop_assert!(one.iter().zip(&three).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }
}

/// The backward pass on dilated and grouped windows, against finite
/// differences of the f64 reference (grouped by images as well: bitwise
/// the same on 1 and 3 threads).
#[test]
fn dilated_and_grouped_conv_backward_matches_finite_differences() {
    run(
        "dilated/grouped conv2d_backward",
        128,
        dilated_case(),
        |c| {
            let g = c.geometry()?;
            let worst = check_conv_backward(&g, c.out_c(), c.bias, c.seed);
            let mut rng = rng(c.seed ^ 1);
            let co = c.out_c();
            let x = uniform_f32(&mut rng, g.input_len(), -1.0, 1.0);
            let w = uniform_f32(&mut rng, g.patch_len() * co, -1.0, 1.0);
            let dy = uniform_f32(&mut rng, g.out_pixels() * co, -1.0, 1.0);
            let grouped = |threads: usize| {
                let (mut gk, mut gb, mut gx) = (
                    vec![0.0f32; w.len()],
                    vec![0.0f32; co],
                    vec![f32::NAN; x.len()],
                );
                conv2d_backward_grouped(
                    &g,
                    &x,
                    &w,
                    &dy,
                    co,
                    &mut gk,
                    Some(&mut gb),
                    &mut gx,
                    threads,
                );
                (gk, gb, gx)
            };
            assert_eq!(grouped(1), grouped(3), "{g:?}");
            Some(worst)
        },
    );
}

/// The scratch twins give the same bits as the allocating functions, with
/// exactly their scratch length filled with NaN (stale scratch must never
/// be read), and the grouped one on any thread count.
#[test]
fn backward_scratch_twins_match_and_ignore_stale_scratch() {
    let cases = [
        (
            ConvGeometry::new(3, (9, 7, 3), (3, 2), (2, 1), Padding::Same).unwrap(),
            4,
        ),
        (
            ConvGeometry::new(16, (16, 16, 8), (3, 3), (1, 1), Padding::Valid).unwrap(),
            8,
        ),
        (
            ConvGeometry::with_options(5, (12, 10, 6), (3, 3), (1, 2), Padding::Same, (2, 1), 3)
                .unwrap(),
            6,
        ),
    ];
    for (g, co) in cases {
        let value = |i: usize| ((i * 7919) % 1009) as f32 / 504.5 - 1.0;
        let x: Vec<f32> = (0..g.input_len()).map(value).collect();
        let w: Vec<f32> = (0..g.patch_len() * co).map(|i| value(i + 17)).collect();
        let dy: Vec<f32> = (0..g.out_pixels() * co).map(|i| value(i + 91)).collect();
        let fresh = || {
            (
                vec![0.5f32; w.len()],
                vec![0.25f32; co],
                vec![f32::NAN; x.len()],
            )
        };

        let mut plain = fresh();
        conv2d_backward(
            &g,
            &x,
            &w,
            &dy,
            co,
            &mut plain.0,
            Some(&mut plain.1),
            &mut plain.2,
        );
        let mut twin = fresh();
        let mut scratch = vec![f32::NAN; conv2d_backward_scratch_len(&g)];
        conv2d_backward_scratch(
            &g,
            &x,
            &w,
            &dy,
            co,
            &mut twin.0,
            Some(&mut twin.1),
            &mut twin.2,
            &mut scratch,
        );
        assert_eq!(plain, twin, "{g:?}");

        let mut grouped = fresh();
        conv2d_backward_grouped(
            &g,
            &x,
            &w,
            &dy,
            co,
            &mut grouped.0,
            Some(&mut grouped.1),
            &mut grouped.2,
            1,
        );
        for threads in [1, 2, 5] {
            let mut twin = fresh();
            let mut scratch = vec![f32::NAN; conv2d_backward_grouped_scratch_len(&g, co, threads)];
            conv2d_backward_grouped_scratch(
                &g,
                &x,
                &w,
                &dy,
                co,
                &mut twin.0,
                Some(&mut twin.1),
                &mut twin.2,
                &mut scratch,
                threads,
            );
            assert_eq!(grouped, twin, "{g:?} on {threads} threads");
        }
    }
}

/// Winograd pads a unit's GEMM to [`winograd::MIN_GEMM_ROWS`] rows so that
/// small units stay on the direct kernel: that must be a whole register
/// block on every instruction set.
#[test]
fn winograd_gemm_rows_cover_every_register_block() {
    for isa in Isa::SIMD {
        assert!(isa.block().0 <= super::winograd::MIN_GEMM_ROWS, "{isa:?}");
    }
}

/// The direct kernel's panels, by hand: 20 channels in registers of 8 are
/// one wide panel of channels 0..16, then one of 12..20 (the last panel
/// ends at the last channel), each holding its channels of every row.
#[test]
fn pack_panels_by_hand() {
    let (rows, n, lanes) = (2, 20, 8);
    let kernel: Vec<f32> = (0..rows * n).map(|i| i as f32).collect();
    let packed = direct::pack(&kernel, rows, n, lanes);
    assert_eq!(packed.len(), direct::packed_len(rows, n, lanes));
    let value = |row: usize, c: usize| (row * n + c) as f32;
    let mut expected = Vec::new();
    for (c0, width) in [(0, 16), (12, 8)] {
        for row in 0..rows {
            expected.extend((c0..c0 + width).map(|c| value(row, c)));
        }
    }
    assert_eq!(packed, expected);
    // Fewer channels than lanes cannot fill a register.
    let short = std::panic::catch_unwind(|| direct::pack(&kernel, rows, 4, lanes));
    assert!(short.is_err());
}

/// Channel counts of an odd number of registers (3, 5, 7 on each vector
/// width: 4, 8 and 16 lanes) end in a one-register block after the wide
/// ones: every path matches the reference and ignores threads, prepared
/// or not, on 1×1 layers (one product over the pixels) and 3×3 ones.
#[test]
fn odd_register_counts_match_reference() {
    for lanes in [4, 8, 16] {
        for co in [3 * lanes, 5 * lanes, 7 * lanes] {
            for (k, same) in [(1, false), (3, true), (3, false)] {
                let geo = Geo {
                    n: 2,
                    h: 5,
                    w: 15,
                    c: 3,
                    kh: k,
                    kw: k,
                    sh: 1,
                    sw: 1,
                    same,
                };
                let checked = check_paths(&geo, co, true, co as u64).unwrap();
                assert!(checked >= 2, "{co} channels, {k}x{k}");
            }
        }
    }
}

/// `g` (its input already padded) with the frame `(t, b, l, r)` folded
/// into its window padding, and the padded input built from `x`.
fn folded(g: &ConvGeometry, x: &[f32], [t, b, l, r]: [usize; 4]) -> (ConvGeometry, Vec<f32>) {
    let inner = g.fold_padding((t, b), (l, r)).expect("the frame fits");
    let (c, w) = (g.in_c, inner.in_w);
    let mut padded = vec![0.0; g.input_len()];
    for (i, row) in x.chunks_exact(w * c).enumerate() {
        let (image, y) = (i / inner.in_h, i % inner.in_h);
        let at = ((image * g.in_h + t + y) * g.in_w + l) * c;
        padded[at..at + w * c].copy_from_slice(row);
    }
    (inner, padded)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A frame of zeros folded into the window padding (what a
    /// ZeroPadding2D before a convolution becomes at inference) computes
    /// what the convolution of the padded input computes, on every path
    /// and on the depthwise kernel, whatever the frame's width against the
    /// window: the same sums, skipped terms being products with zero.
    #[test]
    fn folded_padding_matches_the_padded_input(
        n in 1usize..=2, h in 1usize..=9, w in 1usize..=14, c in 1usize..=20,
        k in 1usize..=3, s in 1usize..=2, co in 1usize..=24,
        frame in [0usize..=3, 0usize..=3, 0usize..=3, 0usize..=3],
        same in any::<bool>(), seed in any::<u64>(),
    ) {
        let [t, b, l, r] = frame;
        let padding = if same { Padding::Same } else { Padding::Valid };
        let outer = (t + h + b, l + w + r, c);
        let Some(g) = ConvGeometry::new(n, outer, (k, k), (s, s), padding) else {
            return Err(TestCaseError::reject("no window fits"));
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = random_vec(&mut rng, n * h * w * c);
        let kernel = random_vec(&mut rng, k * k * c * co);
        let bias = random_vec(&mut rng, co);
        let (inner, padded) = folded(&g, &x, frame);
        for path in all_paths() {
            if !path.supports(&g, co) || !path.supports(&inner, co) {
                continue;
            }
            let want = path_conv(path, &g, &padded, &kernel, Some(&bias), co, 2);
            let got = path_conv(path, &inner, &x, &kernel, Some(&bias), co, 2);
            prop_assert!(got == want, "{:?} on {:?}: folded differs", path, inner);
        }
        // Depthwise, one filter per channel: the same frame.
        let dw = ConvGeometry::with_options(n, outer, (k, k), (s, s), padding, (1, 1), c).unwrap();
        let (dw_inner, _) = folded(&dw, &x, frame);
        let depthwise = |g: &ConvGeometry, x: &[f32]| {
            let mut out = vec![f32::NAN; g.out_pixels() * c];
            let kernel = &kernel[..k * k * c];
            super::depthwise::depthwise_conv2d_then(g, 1, x, kernel, Some(&bias[..c.min(co)]).filter(|b| b.len() == c), &mut out, 2, Epilogue::NONE);
            out
        };
        prop_assert!(depthwise(&dw_inner, &x) == depthwise(&dw, &padded));
    }
}

/// A kernel prepared for one window serves no other: the direct kernel's
/// panels hold `k_h · k_w · in_c` rows, so a 3×3 layer's panels offered to
/// a 1×1 layer of the same channels are ignored (the call packs the kernel
/// it is given), never read as if they were that layer's.
#[test]
fn prepared_panels_serve_only_their_window() {
    let (c, co) = (4, 16);
    let mut rng = ChaCha8Rng::seed_from_u64(51);
    let x = random_vec(&mut rng, 8 * 12 * c);
    let k3 = random_vec(&mut rng, 9 * c * co);
    let k1 = random_vec(&mut rng, c * co);
    let g = |k| ConvGeometry::new(1, (8, 12, c), (k, k), (1, 1), Padding::Same).unwrap();
    let (g3, g1) = (g(3), g(1));
    for isa in Isa::SIMD {
        let path = ConvPath::Direct(isa);
        if !path.supports(&g1, co) {
            continue;
        }
        let prepared = PreparedKernel::with_path(path, &g3, &k3, co).unwrap();
        assert!(prepared.for_path(path, &g3, co).is_some());
        assert!(prepared.for_path(path, &g1, co).is_none());
        let plain = path_conv(path, &g1, &x, &k1, None, co, 1);
        let mut out = vec![f32::NAN; g1.out_pixels() * co];
        let mut scratch = vec![f32::NAN; path.scratch_len(&g1, co, 1)];
        let extras = ConvExtras {
            prepared: Some(&prepared),
            epilogue: Epilogue::NONE,
        };
        conv2d_with(
            path,
            &g1,
            &x,
            &k1,
            None,
            co,
            &mut out,
            &mut scratch,
            1,
            extras,
        );
        assert_eq!(out, plain, "{isa:?}");
    }
}
