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

// ---------------------------------------------------------------------------
// Global pooling
// ---------------------------------------------------------------------------

use super::global;

/// `(batch, pixels, channels)` and a seed.
fn global_case() -> impl Strategy<Value = ((usize, usize, usize), u64)> {
    ((1usize..=5, 1usize..=40, 1usize..=9), any::<u64>())
}

/// The f64 mean or maximum of each image's channels.
fn global_ref((batch, pixels, channels): (usize, usize, usize), x: &[f64], max: bool) -> Vec<f64> {
    let mut y = Vec::with_capacity(batch * channels);
    for b in 0..batch {
        for c in 0..channels {
            let cells = (0..pixels).map(|p| x[(b * pixels + p) * channels + c]);
            y.push(if max {
                cells.fold(f64::NEG_INFINITY, f64::max)
            } else {
                cells.sum::<f64>() / pixels as f64
            });
        }
    }
    y
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Forward passes against the reference (the max exactly), bitwise the
    /// same on any number of threads.
    #[test]
    fn global_pooling_matches_reference_and_ignores_threads((dims, seed) in global_case()) {
        let (batch, pixels, channels) = dims;
        let mut rng = rng(seed);
        let x = uniform_f32(&mut rng, batch * pixels * channels, -1.0, 1.0);
        let x64 = to_f64(&x);
        for max in [false, true] {
            let run = |threads: usize| {
                let mut y = vec![f32::NAN; batch * channels];
                if max {
                    global::max_forward(dims, &x, &mut y, threads);
                } else {
                    global::avg_forward(dims, &x, &mut y, threads);
                }
                y
            };
            let one = run(1);
            for (a, b) in one.iter().zip(global_ref(dims, &x64, max)) {
                if max {
                    prop_assert_eq!(*a, b as f32);
                } else {
                    prop_assert!((*a as f64 - b).abs() <= 1e-5, "{} vs {}", a, b);
                }
            }
            for threads in [2, 3, 8] {
                prop_assert!(one.iter().zip(run(threads)).all(|(a, b)| a.to_bits() == b.to_bits()));
            }
        }
    }
}

/// Large enough (several hundred thousand values) for the forward passes to
/// use several threads: still the same bits.
#[test]
fn global_pooling_threaded_is_bitwise_serial() {
    let dims = (16, 56 * 56, 64);
    let x: Vec<f32> = (0..16 * 56 * 56 * 64usize)
        .map(|i| ((i * 7919) % 2003) as f32 / 1001.5 - 1.0)
        .collect();
    for max in [false, true] {
        let run = |threads: usize| {
            let mut y = vec![f32::NAN; 16 * 64];
            if max {
                global::max_forward(dims, &x, &mut y, threads);
            } else {
                global::avg_forward(dims, &x, &mut y, threads);
            }
            y
        };
        assert_eq!(run(1), run(4));
    }
}

/// A NaN propagates through global max pooling, as through max pooling.
#[test]
fn global_max_propagates_nan() {
    // 1 image, 3 pixels, 2 channels: NaN in channel 0 only.
    let x = [1.0, 2.0, f32::NAN, -1.0, 3.0, 0.5];
    let mut y = [0.0; 2];
    global::max_forward((1, 3, 2), &x, &mut y, 1);
    assert!(y[0].is_nan());
    assert_eq!(y[1], 2.0);
    let mut naive_max = [0.0; 2];
    let g = ConvGeometry::new(1, (1, 3, 2), (1, 3), (1, 1), Padding::Valid).unwrap();
    max_pool2d(&g, &x, &mut naive_max);
    assert!(naive_max[0].is_nan() && naive_max[1] == 2.0);
}

/// Ties go to the first maximum in row-major order, as in max pooling's
/// backward pass; the mean spreads the gradient evenly.
#[test]
fn global_backward_by_hand() {
    // 2 pixels x 2 channels; channel 0 ties at 5.
    let x = [5.0, 1.0, 5.0, 2.0];
    let dy = [10.0, 20.0];
    let mut dx = [f32::NAN; 4];
    global::max_backward((1, 2, 2), &x, &dy, &mut dx);
    assert_eq!(dx, [10.0, 0.0, 0.0, 20.0]);
    let g = ConvGeometry::new(1, (1, 2, 2), (1, 2), (1, 1), Padding::Valid).unwrap();
    let mut pooled = [f32::NAN; 4];
    max_pool2d_backward(&g, &x, &dy, &mut pooled);
    assert_eq!(pooled, dx, "the same routing as max pooling");
    global::avg_backward((1, 2, 2), &dy, &mut dx);
    assert_eq!(dx, [5.0, 10.0, 5.0, 10.0]);
}

/// Both backward passes against finite differences of the references
/// (distinct values for the max, so that it is differentiable).
#[test]
fn global_pooling_backward_matches_finite_differences() {
    for max in [false, true] {
        let name = if max {
            "global max backward"
        } else {
            "global avg backward"
        };
        run(name, 256, global_case(), |&(dims, seed)| {
            let (batch, pixels, channels) = dims;
            let mut rng = rng(seed);
            let n = batch * pixels * channels;
            let x = if max {
                distinct_values(&mut rng, n)
            } else {
                uniform_f32(&mut rng, n, -1.0, 1.0)
            };
            let r = uniform_f32(&mut rng, batch * channels, -1.0, 1.0);
            let (x64, r64) = (to_f64(&x), to_f64(&r));
            let mut dx = vec![f32::NAN; n];
            if max {
                global::max_backward(dims, &x, &r, &mut dx);
            } else {
                global::avg_backward(dims, &r, &mut dx);
            }
            Some(check_gradient(
                name,
                &dx,
                &x64,
                |x| dot(&r64, &global_ref(dims, x, max)),
                &mut rng,
            ))
        });
    }
}

/// Pooling shared among threads gives the serial bits.
#[test]
fn threaded_pooling_is_bitwise_serial() {
    let g = ConvGeometry::new(12, (30, 30, 16), (3, 3), (2, 2), Padding::Same).unwrap();
    let x: Vec<f32> = (0..g.input_len())
        .map(|i| ((i * 7919) % 2003) as f32 / 1001.5 - 1.0)
        .collect();
    for max in [false, true] {
        let run = |threads: usize| {
            let mut y = vec![f32::NAN; g.out_pixels() * g.in_c];
            pool2d_threaded(&g, &x, &mut y, max, threads);
            y
        };
        assert_eq!(run(1), run(3));
    }
}

/// Max pooling's backward pass written the plain way: per output and
/// channel, the first strict maximum of the clipped window in row-major
/// order takes the gradient.
fn max_backward_reference(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let c = g.in_c;
    let mut dx = vec![0.0f32; g.input_len()];
    for b in 0..g.batch {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let ys = (oy * g.s_h) as isize - g.pad_top as isize;
                let xs = (ox * g.s_w) as isize - g.pad_left as isize;
                for ch in 0..c {
                    let mut winner: Option<(usize, f32)> = None;
                    for iy in ys.max(0)..(ys + g.k_h as isize).min(g.in_h as isize) {
                        for ix in xs.max(0)..(xs + g.k_w as isize).min(g.in_w as isize) {
                            let i = ((b * g.in_h + iy as usize) * g.in_w + ix as usize) * c + ch;
                            if winner.is_none_or(|(_, v)| x[i] > v) {
                                winner = Some((i, x[i]));
                            }
                        }
                    }
                    if let Some((i, _)) = winner {
                        dx[i] += dy[((b * g.out_h + oy) * g.out_w + ox) * c + ch];
                    }
                }
            }
        }
    }
    dx
}

/// Channel counts past one block of lanes, ties (values from a small set),
/// NaNs, overlapping and clipped windows: the gradient matches the plain
/// reference bitwise, on any thread count.
#[test]
fn max_pool2d_backward_routes_wide_channels_like_the_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let cases = [
        (3, (9, 7, 40), (2, 2), (2, 2), Padding::Valid),
        (2, (8, 8, 33), (3, 3), (1, 1), Padding::Same),
        (4, (7, 6, 64), (3, 2), (2, 1), Padding::Same),
        (1, (5, 5, 5), (2, 2), (2, 2), Padding::Same),
    ];
    for (batch, input, k, s, p) in cases {
        let g = ConvGeometry::new(batch, input, k, s, p).unwrap();
        let mut x: Vec<f32> = random_vec(&mut rng, g.input_len())
            .iter()
            .map(|v| (v * 3.0).round())
            .collect();
        x[5] = f32::NAN;
        let dy = random_vec(&mut rng, g.out_pixels() * g.in_c);
        let reference = max_backward_reference(&g, &x, &dy);
        for threads in [1, 2, 3] {
            let mut dx = vec![f32::NAN; g.input_len()];
            super::max_pool2d_backward_threaded(&g, &x, &dy, &mut dx, threads);
            let same = dx
                .iter()
                .zip(&reference)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{g:?} on {threads} threads");
        }
    }
}

/// NaNs of two payloads, zeros of both signs, infinities and ties among
/// ordinary values, over channel counts that fill whole registers and
/// leave remainders on every width: each instruction set gives the bits
/// of the value-by-value rule (`naive::pool2d`).
#[test]
fn max_pool_rounds_alike_on_every_instruction_set() {
    use crate::kernels::isa::Isa;
    use rand::Rng;
    let quiet = f32::from_bits(0x7fc0_0001);
    let other = f32::from_bits(0xffc0_0002);
    let specials = [
        quiet,
        other,
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1.5,
        -1.5,
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let cases = [
        (2, 7, 6, 37, (2, 2), (2, 2), Padding::Valid),
        (1, 5, 5, 16, (3, 3), (2, 2), Padding::Same),
        (1, 6, 4, 9, (3, 2), (1, 1), Padding::Same),
        (3, 4, 4, 64, (2, 2), (2, 2), Padding::Valid),
    ];
    for (n, h, w, c, k, s, p) in cases {
        let g = ConvGeometry::new(n, (h, w, c), k, s, p).unwrap();
        let x: Vec<f32> = (0..n * h * w * c)
            .map(|_| match rng.random_range(0..4) {
                0 => specials[rng.random_range(0..specials.len())],
                _ => rng.random_range(-2..=2) as f32,
            })
            .collect();
        let want: Vec<u32> = naive::pool2d(&g, &x, true)
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert!(
            want.iter().any(|b| f32::from_bits(*b).is_nan()),
            "the case has a NaN"
        );
        for isa in [Isa::None]
            .into_iter()
            .chain(Isa::SIMD.into_iter().filter(|i| i.available()))
        {
            let mut y = vec![f32::NAN; g.out_pixels() * c];
            super::max_pool2d_with(isa, &g, &x, &mut y);
            let got: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want, "{isa:?}, {g:?}");
        }
    }
}
