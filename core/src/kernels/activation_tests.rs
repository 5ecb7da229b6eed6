//! Tests of the activations' backward passes against finite differences
//! (moved from the former `core/tests/grad_props.rs` with the kernel tests;
//! they belong beside `activation.rs`).

use crate::activation::{ActivationFn, Linear, Relu, Sigmoid, Softmax, Tanh};
use crate::kernels::testutil::*;
use proptest::prelude::*;
use rand::Rng;

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
