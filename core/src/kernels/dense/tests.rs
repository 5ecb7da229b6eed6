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
