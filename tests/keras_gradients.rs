//! Gradients against Keras (tests/reference/grads, made with jax.grad
//! through Keras 3): the loss and every parameter's gradient for given
//! weights, inputs and labels must match to 1e-4 relative error.

use std::path::PathBuf;

use safetensors::SafeTensors;
use strata::prelude::*;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/grads")
}

fn tensor(st: &SafeTensors<'_>, key: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(key).unwrap_or_else(|_| panic!("tensor {key}"));
    let v = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), v)
}

/// The tensor's relative error: max |a - b| over max |b|.
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    diff / scale.max(f32::MIN_POSITIVE)
}

/// The worst element's relative error, |a - b| / |b|, over the elements
/// at least 1% of the tensor's largest (smaller ones are f32 noise).
fn elementwise_rel_err(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .filter(|(_, b)| b.abs() >= scale * 1e-2)
        .map(|(a, b)| (a - b).abs() / b.abs())
        .fold(0.0, f32::max)
}

fn run<M: Model>(name: &str, mut net: M) {
    net.load_safetensors(dir().join(format!("{name}.weights.safetensors")))
        .unwrap();
    let io = std::fs::read(dir().join(format!("{name}.io.safetensors"))).unwrap();
    let io = SafeTensors::deserialize(&io).unwrap();
    let (shape, input) = tensor(&io, "input");
    let x = Batch::<M::Input>::from_vec(shape[0], input).unwrap();
    let grads_file = std::fs::read(dir().join(format!("{name}.grads.safetensors"))).unwrap();
    let expected = SafeTensors::deserialize(&grads_file).unwrap();
    let labels: Vec<usize> = tensor(&expected, "labels")
        .1
        .iter()
        .map(|l| *l as usize)
        .collect();
    let (_, loss) = tensor(&expected, "loss");

    let before = net.to_safetensors().unwrap();
    let g = net
        .loss_and_gradients(&x, &labels, Loss::categorical_crossentropy())
        .unwrap();
    assert_eq!(
        net.to_safetensors().unwrap(),
        before,
        "{name}: parameters changed"
    );

    let loss_err = (g.loss - loss[0]).abs() / loss[0].abs();
    println!(
        "{name}: loss {} vs Keras {} (rel err {loss_err:e})",
        g.loss, loss[0]
    );
    assert!(loss_err < 1e-4, "{name}: loss rel err {loss_err}");
    for (key, shape, values) in &g.tensors {
        let (eshape, evalues) = tensor(&expected, key);
        assert_eq!(shape, &eshape, "{name}: {key} shape");
        let err = rel_err(values, &evalues);
        let worst = elementwise_rel_err(values, &evalues);
        println!("{name}: {key} rel err {err:e} (worst element above 1% of max: {worst:e})");
        assert!(err < 1e-4, "{name}: {key} rel err {err}");
    }

    // The gradients save under the weights' keys and layouts.
    let saved = g.to_safetensors().unwrap();
    let saved = SafeTensors::deserialize(&saved).unwrap();
    for (key, shape, values) in &g.tensors {
        assert_eq!(&tensor(&saved, key), &(shape.clone(), values.clone()));
    }
}

#[test]
fn dense_head_matches_keras() {
    run(
        "g_dense",
        sequential![Input(4, 4, 2) => Flatten => Dense(6) => relu => Dense(3) => softmax],
    );
}

#[test]
fn seed_block_with_head_matches_keras() {
    run(
        "g_seed_block_head",
        sequential![
            Input(16, 16, 3) => Conv2D(32, (3, 3), same) => relu => Conv2D(32, (3, 3)) => relu
            => MaxPool(2, 2) => Dropout(0.25) => Flatten => Dense(10) => softmax
        ],
    );
}
