//! Training mode against Keras (tests/reference/layers2/grads, made with
//! `jax.grad` through Keras 3's `stateless_call(..., training=True)`):
//! BatchNormalization normalising with the batch's statistics inside and
//! outside a residual. The loss and every gradient must match to 1e-4
//! relative error, the training-mode output to 1e-4, and one training
//! step must move the running statistics as Keras does.

use std::path::PathBuf;

use safetensors::SafeTensors;
use strata::prelude::*;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/layers2/grads")
}

fn read(name: &str, kind: &str) -> Vec<u8> {
    std::fs::read(dir().join(format!("{name}.{kind}.safetensors"))).unwrap()
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

/// max |a - b| over max |b|.
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    max_abs_err(a, b) / scale.max(f32::MIN_POSITIVE)
}

fn max_abs_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max)
}

struct Case<I: Shape> {
    x: Batch<I>,
    labels: Vec<usize>,
    io: Vec<u8>,
    grads: Vec<u8>,
    stats: Vec<u8>,
}

fn load<M: Model>(name: &str, net: &mut M) -> Case<M::Input> {
    net.load_safetensors(dir().join(format!("{name}.weights.safetensors")))
        .expect("reference weights load");
    let io = read(name, "io");
    let (shape, input) = tensor(&SafeTensors::deserialize(&io).unwrap(), "input");
    let grads = read(name, "grads");
    let labels = tensor(&SafeTensors::deserialize(&grads).unwrap(), "labels")
        .1
        .iter()
        .map(|l| *l as usize)
        .collect();
    Case {
        x: Batch::from_vec(shape[0], input).unwrap(),
        labels,
        io,
        grads,
        stats: read(name, "stats"),
    }
}

/// The loss and gradients of a training-mode pass, which leaves the
/// parameters and the running statistics as they were.
fn check_gradients<M: Model>(name: &str, net: &mut M, case: &Case<M::Input>) {
    let before = net.to_safetensors().unwrap();
    let g = net
        .loss_and_gradients_training(&case.x, &case.labels, Loss::categorical_crossentropy(), 0)
        .unwrap();
    assert_eq!(
        net.to_safetensors().unwrap(),
        before,
        "{name}: the model changed"
    );
    let expected = SafeTensors::deserialize(&case.grads).unwrap();
    let (_, loss) = tensor(&expected, "loss");
    let loss_err = (g.loss - loss[0]).abs() / loss[0].abs();
    println!(
        "{name}: loss {} vs Keras {} (rel err {loss_err:e})",
        g.loss, loss[0]
    );
    assert!(loss_err < 1e-4, "{name}: loss rel err {loss_err}");
    let largest = g
        .tensors
        .iter()
        .flat_map(|t| &t.2)
        .fold(0.0f32, |m, v| m.max(v.abs()));
    let mut worst = 0.0f32;
    for (key, shape, values) in &g.tensors {
        let (eshape, evalues) = tensor(&expected, key);
        assert_eq!(shape, &eshape, "{name}: {key} shape");
        let scale = evalues.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        if scale < 1e-5 * largest {
            // Zero in exact arithmetic (a bias just before a training-mode
            // BatchNormalization, whose batch mean takes it out again):
            // both sides are rounding noise, measured against the model's
            // largest gradient.
            let err = max_abs_err(values, &evalues) / largest;
            println!("{name}: {key} gradient is zero up to rounding (err {err:e} of the largest gradient)");
            assert!(err < 1e-5, "{name}: {key} err {err}");
            continue;
        }
        let err = rel_err(values, &evalues);
        println!("{name}: {key} gradient rel err {err:e}");
        assert!(err < 1e-4, "{name}: {key} rel err {err}");
        worst = worst.max(err);
    }
    // Every trained tensor of the file has its gradient, and only those.
    let keys: Vec<&str> = g.tensors.iter().map(|t| t.0.as_str()).collect();
    for key in expected.names() {
        assert!(
            key == "loss" || key == "labels" || keys.contains(&key),
            "{name}: no gradient for {key}"
        );
    }
    println!("{name}: worst gradient rel err {worst:e}");
}

/// The training-mode output and the inference output.
fn check_outputs<M: Model>(name: &str, net: &M, case: &Case<M::Input>) {
    let io = SafeTensors::deserialize(&case.io).unwrap();
    let training = net.predict_training(&case.x, &mut seeded_rng(0));
    let err = max_abs_err(training.as_slice(), &tensor(&io, "output_training").1);
    println!("{name}: training-mode output max abs err {err:e}");
    assert!(err <= 1e-4, "{name}: training output err {err}");
    let err = max_abs_err(net.predict(&case.x).as_slice(), &tensor(&io, "output").1);
    println!("{name}: inference output max abs err {err:e}");
    assert!(err <= 1e-4, "{name}: inference output err {err}");
}

/// One `train_on_batch` at learning rate 0: the weights stay, the running
/// statistics move as Keras's one training-mode call moved them.
fn check_one_step<M: Model>(name: &str, net: M, case: &Case<M::Input>) {
    let weights: Vec<(String, Vec<f32>)> = net
        .params()
        .into_iter()
        .filter(|p| p.role == strata::Role::Parameter)
        .map(|p| (p.name.clone(), net.export_param(&p.name).unwrap()))
        .collect();
    let mut model = net.compile(Loss::categorical_crossentropy(), Sgd::new(0.0));
    model.train_on_batch(&case.x, &case.labels, 0).unwrap();
    for (key, values) in &weights {
        assert_eq!(
            &model.export_param(key).unwrap(),
            values,
            "{name}: {key} moved"
        );
    }
    let stats = SafeTensors::deserialize(&case.stats).unwrap();
    let mut worst = 0.0f32;
    for key in stats.names() {
        let err = max_abs_err(&model.export_param(key).unwrap(), &tensor(&stats, key).1);
        worst = worst.max(err);
        assert!(err <= 1e-4, "{name}: {key} after one step, err {err}");
        let counter = key
            .replace("running_mean", "num_batches_tracked")
            .replace("running_var", "num_batches_tracked");
        assert_eq!(
            model.export_param(&counter).unwrap(),
            [1.0],
            "{name}: {counter}"
        );
    }
    println!("{name}: running statistics after one step, max abs err {worst:e}");
}

#[test]
fn bn_residual_matches_keras_in_training_mode() {
    let name = "g2_bn_residual";
    let mut net = sequential![
        Input(8, 8, 3) => Conv2D(4, (3, 3), same, use_bias = false) => BatchNormalization(momentum = 0.9)
        => relu => Residual({ Conv2D(4, (3, 3), same) => BatchNormalization => relu
        => Conv2D(4, (3, 3), same, use_bias = false) => BatchNormalization(momentum = 0.9) })
        => relu => GlobalAveragePooling2D => Dense(3) => softmax
    ];
    let case = load(name, &mut net);
    check_gradients(name, &mut net, &case);
    check_outputs(name, &net, &case);
    check_one_step(name, net, &case);
}
