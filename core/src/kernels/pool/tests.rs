//! Tests of the pooling kernels: forward against the naive implementation
//! and an independent reference (`testutil`), hand-worked Keras 'same'
//! cases, the backward passes against finite differences, and global
//! pooling.

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward, pool2d_threaded};
use crate::kernels::naive;
use crate::kernels::testutil::*;
use crate::kernels::ConvGeometry;
use crate::shape::Padding;

fn check_pool(geo: &Geo, seed: u64) -> Result<(), TestCaseError> {
    let g = match geo.fast() {
        Some(g) => g,
        None => return Err(TestCaseError::reject("no window fits")),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = random_vec(&mut rng, geo.n * geo.h * geo.w * geo.c);
    let n_out = g.out_pixels() * geo.c;

    let mut fast_max = vec![f32::NAN; n_out];
    max_pool2d(&g, &x, &mut fast_max);
    let mut fast_avg = vec![f32::NAN; n_out];
    avg_pool2d(&g, &x, &mut fast_avg);

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

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_global_rejects: 4096,
        ..ProptestConfig::default()
    })]

    #[test]
    fn pooling_matches_references(geo in geo_strategy(), seed in any::<u64>()) {
        check_pool(&geo, seed)?;
    }
}

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
fn max_pool_same_padding_acts_as_minus_infinity() {
    // 3x3 of -1..-9, pool 2 stride 2 same: pads 0 top / 1 bottom.
    let g = geometry(3, 3, 1, (2, 2), (2, 2), Padding::Same);
    assert_eq!((g.out_h, g.out_w, g.pad_top, g.pad_left), (2, 2, 0, 0));
    let x: Vec<f32> = (1..=9).map(|v| -(v as f32)).collect();
    let mut out = [f32::NAN; 4];
    max_pool2d(&g, &x, &mut out);
    // [-1 -2 -3; -4 -5 -6; -7 -8 -9]
    assert_eq!(out, [-1.0, -3.0, -7.0, -9.0]);
    assert_eq!(naive::pool2d(&g, &x, true), out);

    // 3x3 window stride 1 same pads 1 on every side: the corners see 4 cells.
    let g = geometry(3, 3, 1, (3, 3), (1, 1), Padding::Same);
    assert_eq!((g.pad_top, g.pad_left), (1, 1));
    let mut out = [f32::NAN; 9];
    max_pool2d(&g, &x, &mut out);
    assert_eq!(out, [-1.0, -1.0, -2.0, -1.0, -1.0, -2.0, -4.0, -4.0, -5.0]);
}

#[test]
fn avg_pool_same_divides_by_real_cells() {
    let g = geometry(3, 3, 1, (2, 2), (2, 2), Padding::Same);
    let mut out = [f32::NAN; 4];
    avg_pool2d(&g, &[1.0; 9], &mut out);
    assert_eq!(out, [1.0; 4]);

    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    avg_pool2d(&g, &x, &mut out);
    // [1 2 3; 4 5 6; 7 8 9]: (1+2+4+5)/4, (3+6)/2, (7+8)/2, 9/1
    assert_eq!(out, [3.0, 4.5, 7.5, 9.0]);

    // 3x3 window stride 1 same on the same input: corners average 4 cells,
    // edges 6, the centre 9.
    let g = geometry(3, 3, 1, (3, 3), (1, 1), Padding::Same);
    let mut out = [f32::NAN; 9];
    avg_pool2d(&g, &x, &mut out);
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
    max_pool2d(&g, &x, &mut out);
    assert_eq!(out, [5.0, -1.0]);
    avg_pool2d(&g, &x, &mut out);
    assert_eq!(out, [2.75, -2.75]);
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
        max_pool2d_backward(&g, &x, &r, &mut gi);
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
        avg_pool2d_backward(&g, &r, &mut gi);
        Some(check_gradient(
            "avg pool grad_input",
            &gi,
            &x64,
            |x| dot(&r64, &pool_ref(&g, x, false)),
            &mut rng,
        ))
    });
}
