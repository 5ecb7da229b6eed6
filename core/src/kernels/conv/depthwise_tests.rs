//! Tests of the forward row paths of the depthwise kernel: every path on
//! every instruction set this CPU has, against the f64 reference, on
//! geometries with any padding (asymmetric included), strides, dilations
//! and channel counts that are not whole registers.

use proptest::prelude::*;

use super::*;
use crate::kernels::epilogue::Step;
use crate::kernels::testutil::*;

/// A geometry with explicit padding on each side.
#[derive(Clone, Debug)]
struct Case {
    batch: usize,
    h: usize,
    w: usize,
    c: usize,
    m: usize,
    k: (usize, usize),
    s: (usize, usize),
    d: (usize, usize),
    /// Top, bottom, left, right, each below the dilated window.
    pad: (usize, usize, usize, usize),
    bias: bool,
    seed: u64,
}

impl Case {
    fn geometry(&self) -> Option<ConvGeometry> {
        let out = |len: usize, k: usize, s: usize, d: usize, before: usize, after: usize| {
            let reach = (k - 1) * d + 1;
            let padded = len + before + after;
            (padded >= reach).then(|| (padded - reach) / s + 1)
        };
        let (top, bottom, left, right) = self.pad;
        Some(ConvGeometry {
            batch: self.batch,
            in_h: self.h,
            in_w: self.w,
            in_c: self.c,
            k_h: self.k.0,
            k_w: self.k.1,
            s_h: self.s.0,
            s_w: self.s.1,
            pad_top: top,
            pad_left: left,
            out_h: out(self.h, self.k.0, self.s.0, self.d.0, top, bottom)?,
            out_w: out(self.w, self.k.1, self.s.1, self.d.1, left, right)?,
            d_h: self.d.0,
            d_w: self.d.1,
            groups: self.c,
        })
    }
}

/// Channel counts around the register widths (1, 4, 8, 16 lanes) and
/// MobileNet's, or any up to 40.
fn channels() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![1usize, 3, 4, 8, 15, 16, 17, 31, 33, 48, 144]),
        1usize..=40,
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        (1usize..=2, 1usize..=9, 1usize..=40),
        (channels(), 1usize..=2),
        (1usize..=4, 1usize..=5, 1usize..=2, 1usize..=2),
        (1usize..=2, 1usize..=3),
        (0usize..=4, 0usize..=4, 0usize..=4, 0usize..=4),
        (any::<bool>(), any::<u64>()),
    )
        .prop_map(
            |((batch, h, w), (c, m), (kh, kw, sh, sw), d, pad, (bias, seed))| {
                // Padding is always smaller than the dilated window.
                let cap = |p: usize, k: usize, d: usize| p.min((k - 1) * d);
                let pad = (
                    cap(pad.0, kh, d.0),
                    cap(pad.1, kh, d.0),
                    cap(pad.2, kw, d.1),
                    cap(pad.3, kw, d.1),
                );
                Case {
                    batch,
                    h,
                    w,
                    c,
                    m,
                    k: (kh, kw),
                    s: (sh, sw),
                    d,
                    pad,
                    bias,
                    seed,
                }
            },
        )
}

/// Every row path that can run here with multiplier `m`: the portable
/// one, and for `m = 1` the blocked one on each available instruction set
/// and in its one-lane form.
fn paths(m: usize) -> Vec<RowPath> {
    let mut paths = vec![RowPath::Portable];
    if m == 1 {
        paths.push(RowPath::Blocked(Isa::None));
        paths.extend(
            Isa::SIMD
                .into_iter()
                .filter(|isa| isa.available())
                .map(RowPath::Blocked),
        );
    }
    paths
}

/// Random operands of `g` with multiplier `m`: input, kernel, bias.
fn operands(g: &ConvGeometry, m: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let oc = g.in_c * m;
    let mut rng = rng(seed);
    let x = uniform_f32(&mut rng, g.input_len(), -1.0, 1.0);
    let w = uniform_f32(&mut rng, g.k_h * g.k_w * oc, -1.0, 1.0);
    let b = uniform_f32(&mut rng, oc, -1.0, 1.0);
    (x, w, b)
}

#[allow(clippy::too_many_arguments)]
fn forward(
    g: &ConvGeometry,
    m: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    threads: usize,
    path: RowPath,
    epilogue: Epilogue<'_>,
) -> Vec<f32> {
    let mut out = vec![f32::NAN; g.out_pixels() * g.in_c * m];
    let f = Forward {
        g,
        m,
        input: x,
        kernel: w,
        bias: b,
        epilogue,
    };
    f.run(&mut out, threads, path);
    out
}

/// The f64 reference and `Σ |x · w|` per output value (the tolerance's
/// scale).
fn reference(
    g: &ConvGeometry,
    m: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let oc = g.in_c * m;
    let b64 = b.map(to_f64);
    let narrow = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect::<Vec<f32>>();
    let want = narrow(conv_ref(g, &to_f64(x), &to_f64(w), b64.as_deref(), oc));
    let abs = |v: &[f32]| v.iter().map(|v| v.abs() as f64).collect::<Vec<f64>>();
    let magnitude = narrow(conv_ref(g, &abs(x), &abs(w), None, oc));
    (want, magnitude)
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 384,
        max_global_rejects: 4096,
        ..ProptestConfig::default()
    })]

    /// Every path matches the reference on 1, 2 and 3 threads, bitwise the
    /// same on each; the blocked path gives the same bits on every
    /// instruction set (each value is one chain of fused multiply-adds in
    /// window order).
    #[test]
    fn paths_match_reference_on_any_threads(case in case()) {
        let Some(g) = case.geometry() else {
            return Err(TestCaseError::reject("no window fits"));
        };
        let m = case.m;
        let (x, w, b) = operands(&g, m, case.seed);
        let bias = case.bias.then_some(b.as_slice());
        let (want, magnitude) = reference(&g, m, &x, &w, bias);
        let mut blocked: Option<Vec<f32>> = None;
        for path in paths(m) {
            let one = forward(&g, m, &x, &w, bias, 1, path, Epilogue::NONE);
            assert_close(&format!("{path:?}"), &one, &want, &magnitude)?;
            for threads in [2, 3] {
                let more = forward(&g, m, &x, &w, bias, threads, path, Epilogue::NONE);
                prop_assert!(same_bits(&one, &more), "{:?} on {} threads", path, threads);
            }
            if let RowPath::Blocked(_) = path {
                let first = blocked.get_or_insert_with(|| one.clone());
                prop_assert!(same_bits(first, &one), "{:?} differs from the others", path);
            }
        }
    }
}

/// `y = min(max(y, 0), 6)`, MobileNet's activation.
fn relu6(v: &mut [f32], _: usize) {
    v.iter_mut().for_each(|y| *y = y.clamp(0.0, 6.0));
}

/// The fused epilogue gives the bits of the convolution followed by the
/// epilogue on the whole output, on every path and thread count.
#[test]
fn fused_epilogue_equals_epilogue_afterwards() {
    let shapes = [
        (1, 9, 13, 17, 1, 1),
        (2, 8, 11, 33, 2, 1),
        (1, 7, 20, 5, 2, 2),
    ];
    for (batch, h, w, c, s, m) in shapes {
        let g = ConvGeometry::with_options(
            batch,
            (h, w, c),
            (3, 3),
            (s, s),
            crate::shape::Padding::Same,
            (1, 1),
            c,
        )
        .unwrap();
        let oc = c * m;
        let (x, k, b) = operands(&g, m, (h * w * c) as u64);
        let mut rng = rng(7);
        let (scale, shift) = (
            uniform_f32(&mut rng, oc, 0.5, 2.0),
            uniform_f32(&mut rng, oc, -1.0, 1.0),
        );
        let steps = [
            Step::Affine {
                scale: &scale,
                shift: &shift,
            },
            Step::Map(relu6),
        ];
        let epilogue = Epilogue::new(&steps);
        for path in paths(m) {
            let mut want = forward(&g, m, &x, &k, Some(&b), 1, path, Epilogue::NONE);
            epilogue.apply(&mut want, oc);
            for threads in [1, 3] {
                let got = forward(&g, m, &x, &k, Some(&b), threads, path, epilogue);
                assert!(same_bits(&got, &want), "{path:?}, {threads} threads, {g:?}");
            }
        }
    }
}

/// MobileNetV2's depthwise shapes (smaller images, the same channels):
/// 3×3 'same' at strides 1 and 2, on every path.
#[test]
fn mobilenet_shapes_match_reference() {
    let shapes = [
        (16, 32, 1),
        (13, 144, 1),
        (15, 96, 2),
        (9, 576, 1),
        (7, 960, 1),
        (6, 384, 2),
    ];
    for (hw, c, s) in shapes {
        let g = ConvGeometry::with_options(
            1,
            (hw, hw, c),
            (3, 3),
            (s, s),
            crate::shape::Padding::Same,
            (1, 1),
            c,
        )
        .unwrap();
        let (x, w, b) = operands(&g, 1, c as u64);
        let (want, magnitude) = reference(&g, 1, &x, &w, Some(&b));
        for path in paths(1) {
            let got = forward(&g, 1, &x, &w, Some(&b), 2, path, Epilogue::NONE);
            assert_close(&format!("{path:?} on {g:?}"), &got, &want, &magnitude).unwrap();
        }
    }
}

/// Every path refuses each slice one value short and a geometry whose
/// sizes overflow `usize`, before any unchecked code runs.
#[test]
fn paths_reject_short_slices_and_overflowing_geometry() {
    let g = ConvGeometry::with_options(
        1,
        (5, 19, 17),
        (3, 3),
        (1, 1),
        crate::shape::Padding::Same,
        (1, 1),
        17,
    )
    .unwrap();
    let lens = [g.input_len(), 9 * 17, 17, g.out_pixels() * 17];
    for path in paths(1) {
        for short in 0..4 {
            let mut l = lens;
            l[short] -= 1;
            let (x, w, b) = (vec![1.0; l[0]], vec![1.0; l[1]], vec![1.0; l[2]]);
            let mut out = vec![0.0; l[3]];
            let f = Forward {
                g: &g,
                m: 1,
                input: &x,
                kernel: &w,
                bias: Some(&b),
                epilogue: Epilogue::NONE,
            };
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                f.run(&mut out, 1, path);
            }));
            assert!(
                result.is_err(),
                "{path:?}: slice {short} one short, no panic"
            );
        }
        let huge = ConvGeometry {
            in_w: usize::MAX / 4,
            out_w: usize::MAX / 4,
            ..g
        };
        let (x, w) = (vec![1.0; 64], vec![1.0; 9 * 17]);
        let mut out = vec![0.0; 64];
        let f = Forward {
            g: &huge,
            m: 1,
            input: &x,
            kernel: &w,
            bias: None,
            epilogue: Epilogue::NONE,
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            f.run(&mut out, 1, path);
        }));
        assert!(result.is_err(), "{path:?}: overflowing geometry, no panic");
    }
}

/// Half-width blocks are taken exactly where they recompute fewer pixels,
/// and only with the channels for two registers.
#[test]
fn half_blocks_where_they_recompute_less() {
    use super::halves;
    // AVX2 (8 pixels × 1 register, or 4 × 2): 12 columns are 16 computed
    // or 12; 54 are 56 either way; 14 channels do not fill two registers.
    assert!(halves(8, 8, 32, 12));
    assert!(halves(8, 8, 16, 26));
    assert!(!halves(8, 8, 144, 54));
    assert!(!halves(8, 8, 144, 16));
    assert!(!halves(8, 8, 14, 12));
    // AVX-512 and NEON (12 pixels, or 6 × 2); the one-lane form never.
    assert!(halves(12, 16, 32, 13));
    assert!(!halves(12, 16, 32, 24));
    assert!(halves(12, 4, 8, 18));
    assert!(!halves(4, 1, 64, 5));
}

/// The rows asked for ahead are the rows the next output row reads and
/// this one does not, worked by hand; none for the last row, a stride of
/// 1 or an image within four times L2.
#[test]
fn rows_ahead_are_the_next_rows_new_rows() {
    let case = |s, d, top| Case {
        batch: 1,
        h: 10,
        w: 2,
        c: 3,
        m: 1,
        k: (3, 3),
        s: (s, 1),
        d: (d, 1),
        pad: (top, 1, 1, 1),
        bias: false,
        seed: 0,
    };
    let image: Vec<f32> = (0..60).map(|v| v as f32).collect();
    let rows = |a: usize, b: usize| &image[a * 6..b * 6];
    // Stride 2, padding 1 on top: output row 0 reads padded rows 0-2, row 1
    // rows 2-4, so row 0 asks for padded rows 3 and 4 (image rows 2 and 3).
    let g = case(2, 1, 1).geometry().unwrap();
    assert_eq!(g.out_h, 5);
    assert_eq!(rows_ahead(&g, 0, &image, 0), rows(2, 4));
    assert_eq!(rows_ahead(&g, 2, &image, 0), rows(6, 8));
    assert_eq!(rows_ahead(&g, 3, &image, 0), rows(8, 10));
    assert!(rows_ahead(&g, 4, &image, 0).is_empty(), "the last row");
    // Dilation 2 (a reach of 4 rows), padding 2: row 1 reads padded rows
    // 2, 4 and 6, row 2 rows 4, 6 and 8: it asks for padded 7 and 8.
    let g = case(2, 2, 2).geometry().unwrap();
    assert_eq!(rows_ahead(&g, 1, &image, 0), rows(5, 7));
    // Row 3 asks for padded rows 11 and 12: image row 9, then the padding.
    assert_eq!(rows_ahead(&g, 3, &image, 0), rows(9, 10));
    // Not for stride 1, nor for an image of four times L2 or less.
    let g = case(1, 1, 1).geometry().unwrap();
    assert!(rows_ahead(&g, 0, &image, 0).is_empty());
    let g = case(2, 1, 1).geometry().unwrap();
    assert!(rows_ahead(&g, 0, &image, 60).is_empty());
    assert_eq!(rows_ahead(&g, 0, &image, 59), rows(2, 4));
}

/// An image beyond four times this machine's L2, stride 2 (the rows are
/// asked for ahead): every path matches the reference, the blocked ones
/// with the same bits on every instruction set.
#[test]
fn an_image_beyond_l2_matches_reference() {
    let (w, c) = (33, 24);
    let row_bytes = w * c * 4;
    let h = (4 * crate::kernels::isa::l2_bytes()).div_ceil(row_bytes) + 3;
    let case = Case {
        batch: 1,
        h,
        w,
        c,
        m: 1,
        k: (3, 3),
        s: (2, 2),
        d: (1, 1),
        pad: (0, 1, 0, 1),
        bias: true,
        seed: 5,
    };
    let g = case.geometry().unwrap();
    assert!(g.input_len() * 4 > 4 * crate::kernels::isa::l2_bytes());
    let (x, w, b) = operands(&g, 1, case.seed);
    let (want, magnitude) = reference(&g, 1, &x, &w, Some(&b));
    let mut blocked: Option<Vec<f32>> = None;
    for path in paths(1) {
        let got = forward(&g, 1, &x, &w, Some(&b), 2, path, Epilogue::NONE);
        assert_close(&format!("{path:?}"), &got, &want, &magnitude).unwrap();
        if let RowPath::Blocked(_) = path {
            let first = blocked.get_or_insert_with(|| got.clone());
            assert!(same_bits(first, &got), "{path:?} differs from the others");
        }
    }
}
