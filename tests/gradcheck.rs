//! Model-level gradient checks: `loss_and_gradients` through `sequential!`
//! models against central finite differences of the loss it reports, with
//! the parameters perturbed through `Layer::import_param`; and `fit`'s
//! determinism and its errors.
//!
//! Every model's first layer has parameters, so each check of a first-layer
//! gradient also checks the input gradients of every later layer.
//!
//! Run with `--nocapture` to see the worst error of each model.

use rand::Rng;
use strata::prelude::*;
use strata::{HyperparameterError, TargetError, Targets};

/// Elements checked per parameter tensor.
const SAMPLES: usize = 20;

fn rng(seed: u64) -> strata::SeededRng {
    seeded_rng(seed)
}

/// How to check one model.
#[derive(Clone, Copy)]
struct Check {
    /// Finite-difference step, relative to the tensor's RMS value.
    step: f32,
    /// Allowed |fd - g|, relative to the tensor's largest |g|...
    rtol: f32,
    /// ... plus this.
    atol: f32,
    /// Whether the loss has kinks (relu, max pooling). When the step crosses
    /// one (the one-sided slopes differ), the gradient must match the slope
    /// on one side instead, the side without the kink (or, for a kink at the
    /// point itself, the side the backward pass chose). At most half the
    /// elements checked in a tensor may need this (one near-tie of a max
    /// pooling window moves with every weight of its channel).
    kinks: bool,
    /// Whether to differentiate a training-mode pass
    /// (`loss_and_gradients_training`: batch statistics) instead of an
    /// inference one (`loss_and_gradients`).
    training: bool,
}

/// For smooth models: a step of 1% of the values' scale.
const SMOOTH: Check = Check {
    step: 1e-2,
    rtol: 1e-2,
    atol: 2e-4,
    kinks: false,
    training: false,
};

/// For models with relu or max pooling: a smaller step, so that it rarely
/// crosses a kink, and kinks recognised when it does.
const KINKED: Check = Check {
    step: 3e-3,
    rtol: 1e-2,
    atol: 3e-4,
    kinks: true,
    training: false,
};

/// Sets every bias to small random values (they start at zero), so that
/// bias gradients and relu kinks are exercised in general position.
fn randomize_biases<M: Model>(net: &mut M, seed: u64) {
    let mut r = rng(seed);
    for p in net.params() {
        if p.name.ends_with("bias") {
            let v: Vec<f32> = (0..p.numel()).map(|_| r.random_range(-0.2..0.2)).collect();
            assert!(Layer::import_param(net, &p.name, &v), "{}", p.name);
        }
    }
}

fn random_batch<S: Shape>(n: usize, lo: f32, hi: f32, seed: u64) -> Batch<S> {
    let mut r = rng(seed);
    let v = (0..n * S::NUMEL).map(|_| r.random_range(lo..hi)).collect();
    Batch::from_vec(n, v).unwrap()
}

/// One class per output row (per sample, or per pixel of a `Shape3`
/// output): the first rows take classes 0, 1, ... in turn (so that every
/// class is used when there are enough rows), the rest are random.
fn labels<S: Shape>(n: usize, seed: u64) -> Vec<usize> {
    let mut r = rng(seed);
    let rows = n * S::NUMEL / S::LAST;
    (0..rows)
        .map(|i| {
            if i < S::LAST {
                i
            } else {
                r.random_range(0..S::LAST)
            }
        })
        .collect()
}

/// Rows of `S::LAST` random probabilities summing to one.
fn soft_labels<S: Shape>(n: usize, seed: u64) -> Batch<S> {
    let mut b = random_batch::<S>(n, 0.05, 1.0, seed);
    for row in b.as_mut_slice().chunks_exact_mut(S::LAST) {
        let s: f32 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= s);
    }
    b
}

fn loss_of<M: Model>(
    net: &mut M,
    x: &Batch<M::Input>,
    y: Targets<'_, M::Output>,
    loss: Loss,
    training: bool,
) -> f32 {
    gradients(net, x, y, loss, training).loss
}

/// The loss and gradients of an inference-mode or a training-mode pass.
fn gradients<M: Model>(
    net: &mut M,
    x: &Batch<M::Input>,
    y: Targets<'_, M::Output>,
    loss: Loss,
    training: bool,
) -> Gradients {
    if training {
        net.loss_and_gradients_training(x, y, loss, 0).unwrap()
    } else {
        net.loss_and_gradients(x, y, loss).unwrap()
    }
}

/// Compares every parameter's gradient from `loss_and_gradients` (up to
/// `SAMPLES` elements per tensor) with central differences of the loss.
/// Returns the worst |fd - g| relative to the tensor's largest |g|.
fn gradcheck<M: Model>(
    name: &str,
    net: &mut M,
    x: &Batch<M::Input>,
    y: Targets<'_, M::Output>,
    loss: Loss,
    check: Check,
) -> f32 {
    let before = net.to_safetensors().unwrap();
    let g = gradients(net, x, y, loss, check.training);
    assert!(
        g.loss.is_finite() && g.loss > 0.0,
        "{name}: loss {}",
        g.loss
    );
    assert_eq!(
        net.to_safetensors().unwrap(),
        before,
        "{name}: parameters changed"
    );
    // Buffers (running statistics) have no gradient.
    let params: Vec<_> = net
        .params()
        .into_iter()
        .filter(|p| p.role == strata::Role::Parameter)
        .collect();
    assert_eq!(
        g.tensors.iter().map(|t| (&t.0, &t.1)).collect::<Vec<_>>(),
        params
            .iter()
            .map(|p| (&p.name, &p.shape))
            .collect::<Vec<_>>(),
        "{name}: one gradient per parameter, in order, of its shape"
    );
    // The same call gives the same result: gradients are not accumulated
    // across calls.
    assert_eq!(
        gradients(net, x, y, loss, check.training),
        g,
        "{name}: second call differs"
    );

    let mut r = rng(0xC0FFEE);
    let mut worst = 0.0f32;
    for p in &params {
        let grad = g.get(&p.name).unwrap();
        assert_eq!(grad.len(), p.numel(), "{name}: {} gradient length", p.name);
        assert!(
            grad.iter().all(|v| v.is_finite()),
            "{name}: {} not finite",
            p.name
        );
        let values = Layer::export_param(net, &p.name).unwrap();
        let g_max = grad.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(g_max > 0.0, "{name}: {} has an all-zero gradient", p.name);
        let rms = (values.iter().map(|v| v * v).sum::<f32>() / values.len() as f32).sqrt();
        let h = check.step * rms.max(0.05);

        let mut picks: Vec<usize> = (0..p.numel()).collect();
        if picks.len() > SAMPLES {
            // Always the first and last, the rest at random.
            let mut chosen = vec![0, p.numel() - 1];
            while chosen.len() < SAMPLES {
                let i = r.random_range(0..p.numel());
                if !chosen.contains(&i) {
                    chosen.push(i);
                }
            }
            picks = chosen;
        }
        let mut tensor_worst = 0.0f32;
        let mut kinks = 0;
        for &i in &picks {
            let mut v = values.clone();
            v[i] = values[i] + h;
            let up_step = v[i] - values[i];
            assert!(Layer::import_param(net, &p.name, &v));
            let up = loss_of(net, x, y, loss, check.training);
            v[i] = values[i] - h;
            let down_step = values[i] - v[i];
            assert!(Layer::import_param(net, &p.name, &v));
            let down = loss_of(net, x, y, loss, check.training);
            let fd = (up - down) / (up_step + down_step);
            let tol = check.rtol * g_max + check.atol;
            let err = (fd - grad[i]).abs();
            if err <= tol {
                tensor_worst = tensor_worst.max(err / g_max);
                continue;
            }
            let right = (up - g.loss) / up_step;
            let left = (g.loss - down) / down_step;
            let one_sided = (right - grad[i]).abs().min((left - grad[i]).abs());
            // A kink inside the step: the one-sided slopes differ, and the
            // gradient must match one of them (a small kink may leave the
            // slopes closer than 2 tol, but then one of them must be within
            // tol of the gradient).
            let kink = (right - left).abs() > 2.0 * tol;
            let matches_side = if kink {
                one_sided <= 2.0 * tol
            } else {
                one_sided <= tol
            };
            assert!(
                check.kinks && matches_side,
                "{name}: {}[{i}]: gradient {} vs finite difference {fd} (slopes: left {left}, \
                 right {right}; largest |g| {g_max}; {kinks} kinks before)",
                p.name,
                grad[i]
            );
            kinks += 1;
        }
        assert!(
            kinks * 2 <= picks.len(),
            "{name}: {}: {kinks} of {} elements across kinks",
            p.name,
            picks.len()
        );
        assert!(Layer::import_param(net, &p.name, &values));
        println!(
            "{name}: {:<10} {:>4} values, {:>2} checked ({kinks} across a kink), max|g| {g_max:.3e}, \
             worst |fd - g| / max|g| {tensor_worst:.2e}",
            p.name,
            p.numel(),
            picks.len()
        );
        worst = worst.max(tensor_worst);
    }
    assert_eq!(
        net.to_safetensors().unwrap(),
        before,
        "{name}: parameters not restored"
    );
    worst
}

// ---------------------------------------------------------------------------
// Gradient checks, one per model
// ---------------------------------------------------------------------------

/// Strided 'same' convolution on an odd size (uneven padding), tanh inside
/// the convolution, overlapping 'same' average pooling, Dense with tanh,
/// categorical cross-entropy fused with the final softmax.
#[test]
fn conv_same_strided_avgpool_categorical() {
    let mut net = sequential![
        Input(9, 9, 2)
        => Conv2D(4, (3, 3), strides = (2, 2), padding = same, activation = tanh)
        => AveragePooling2D(pool_size = 3, strides = 2, padding = same)
        => Flatten => Dense(5, activation = tanh) => Dense(3) => softmax
    ]
    .with_seed(1);
    randomize_biases(&mut net, 1);
    let x = random_batch(3, -1.0, 1.0, 10);
    let y = labels::<Shape1<U3>>(3, 11);
    let worst = gradcheck(
        "conv same/2 + avgpool 3/2 same, CCE(softmax)",
        &mut net,
        &x,
        Targets::from(&y),
        Loss::categorical_crossentropy(),
        SMOOTH,
    );
    // Soft labels, too.
    let soft = soft_labels::<Shape1<U3>>(3, 12);
    let worst2 = gradcheck(
        "same model, soft labels",
        &mut net,
        &x,
        Targets::from(&soft),
        Loss::categorical_crossentropy(),
        SMOOTH,
    );
    println!("worst: {:.2e}", worst.max(worst2));
}

/// Valid convolution with a non-square kernel and sigmoid, max pooling,
/// dropout (the identity here), sparse categorical cross-entropy fused with
/// softmax inside the last Dense.
#[test]
fn conv_valid_sigmoid_maxpool_dropout_sparse() {
    let mut net = sequential![
        Input(8, 7, 3)
        => Conv2D(3, (3, 2), activation = sigmoid) => MaxPool(2, 2) => Dropout(0.5)
        => Flatten => Dense(4, activation = softmax)
    ]
    .with_seed(2);
    randomize_biases(&mut net, 2);
    let x = random_batch(4, -1.0, 1.0, 20);
    let y = labels::<Shape1<U4>>(4, 21);
    gradcheck(
        "conv valid sigmoid + maxpool + dropout, sparse CE",
        &mut net,
        &x,
        Targets::from(&y),
        Loss::sparse_categorical_crossentropy(),
        KINKED,
    );
}

/// Relu convolutions (same, then valid with stride 2), overlapping 'same'
/// max pooling 3/2 on an odd size, categorical cross-entropy from logits on
/// a linear output, with soft targets that do not sum to one.
#[test]
fn conv_relu_maxpool_same_overlapping_from_logits() {
    let mut net = sequential![
        Input(7, 7, 2)
        => Conv2D(4, (3, 3), padding = same, activation = relu)
        => MaxPooling2D(pool_size = 3, strides = 2, padding = same)
        => Conv2D(3, (2, 2), strides = 2) => relu
        => Flatten => Dense(4)
    ]
    .with_seed(3);
    randomize_biases(&mut net, 3);
    let x = random_batch(3, -1.0, 1.0, 30);
    let y = random_batch::<Shape1<U4>>(3, 0.0, 1.0, 31);
    gradcheck(
        "relu convs + maxpool 3/2 same, CCE from logits",
        &mut net,
        &x,
        Targets::from(&y),
        Loss::CategoricalCrossentropy { from_logits: true },
        KINKED,
    );
    let labels = labels::<Shape1<U4>>(3, 32);
    gradcheck(
        "same model, sparse CE from logits",
        &mut net,
        &x,
        Targets::from(&labels),
        Loss::SparseCategoricalCrossentropy { from_logits: true },
        KINKED,
    );
}

/// Valid average pooling with overlapping windows after a strided 'same'
/// convolution with uneven strides; binary cross-entropy on sigmoid
/// outputs, and from logits on a linear one.
#[test]
fn conv_avgpool_valid_binary_crossentropy() {
    let mut net = sequential![
        Input(7, 6, 1)
        => Conv2D(3, (2, 3), strides = (2, 1), padding = same, activation = tanh)
        => AvgPool(pool_size = 3, strides = 2)
        => Flatten => Dense(3, activation = sigmoid)
    ]
    .with_seed(4);
    randomize_biases(&mut net, 4);
    let x = random_batch(3, -1.0, 1.0, 40);
    let y = random_batch::<Shape1<U3>>(3, 0.0, 1.0, 41);
    gradcheck(
        "conv same (2,1) + avgpool 3/2 valid, BCE(sigmoid)",
        &mut net,
        &x,
        Targets::from(&y),
        Loss::binary_crossentropy(),
        SMOOTH,
    );

    let mut logits = sequential![
        Input(7, 6, 1)
        => Conv2D(3, (2, 3), strides = (2, 1), padding = same, activation = tanh)
        => AvgPool(pool_size = 3, strides = 2)
        => Flatten => Dense(3)
    ]
    .with_seed(5);
    randomize_biases(&mut logits, 5);
    gradcheck(
        "same, BCE from logits",
        &mut logits,
        &x,
        Targets::from(&y),
        Loss::BinaryCrossentropy { from_logits: true },
        SMOOTH,
    );
}

/// Dense on a `Shape3` input (acting on the channels of every pixel), mean
/// squared error on a `Shape3` output. The second convolution has
/// overlapping windows and uneven padding (one row above, none on the
/// left), so the first one's gradients check its input gradient.
#[test]
fn dense_on_shape3_mean_squared_error() {
    let mut net = sequential![
        Input(5, 3, 2)
        => Conv2D(3, (2, 2), padding = same, activation = tanh)
        => Conv2D(3, (3, 2), padding = same, activation = tanh)
        => Dense(4, activation = sigmoid) => Dense(2)
    ]
    .with_seed(6);
    randomize_biases(&mut net, 6);
    let x = random_batch(2, -1.0, 1.0, 60);
    let y = random_batch::<Shape3<U5, U3, U2>>(2, -1.0, 1.0, 61);
    gradcheck(
        "Dense on Shape3, MSE",
        &mut net,
        &x,
        Targets::from(&y),
        Loss::mean_squared_error(),
        SMOOTH,
    );
}

/// A per-pixel classifier: softmax over the channels of a `Shape3` output,
/// sparse labels one per pixel (the loss averages over every pixel).
#[test]
fn per_pixel_sparse_crossentropy() {
    let mut net = sequential![
        Input(3, 4, 2)
        => Conv2D(4, (3, 3), padding = same, activation = tanh)
        => Dense(3) => softmax
    ]
    .with_seed(7);
    randomize_biases(&mut net, 7);
    let x = random_batch(2, -1.0, 1.0, 70);
    let y = labels::<Shape3<U3, U4, U3>>(2, 71);
    assert_eq!(y.len(), 2 * 3 * 4);
    gradcheck(
        "per-pixel sparse CE",
        &mut net,
        &x,
        Targets::from(&y),
        Loss::sparse_categorical_crossentropy(),
        SMOOTH,
    );
}

/// Global average and max pooling (each channel over all positions) between
/// convolutions and the classifier, the pattern of ResNet and MobileNet
/// heads; the max is piecewise linear, so the inputs are spread enough that
/// no two positions tie within the step.
#[test]
fn global_pooling_heads() {
    let mut net = sequential![
        Input(5, 6, 2)
        => Conv2D(4, (3, 3), padding = same, activation = tanh)
        => GlobalAveragePooling2D => Dense(3) => softmax
    ]
    .with_seed(14);
    randomize_biases(&mut net, 14);
    let x = random_batch(3, -1.0, 1.0, 140);
    let y = labels::<Shape1<U3>>(3, 141);
    gradcheck(
        "conv + global average pooling, CCE(softmax)",
        &mut net,
        &x,
        Targets::from(&y),
        Loss::categorical_crossentropy(),
        SMOOTH,
    );
    let mut net = sequential![
        Input(4, 4, 3) => Conv2D(5, (2, 2)) => GlobalMaxPooling2D => Dense(2)
    ]
    .with_seed(15);
    randomize_biases(&mut net, 15);
    let x = random_batch(2, -3.0, 3.0, 150);
    let y = soft_labels::<Shape1<U2>>(2, 151);
    gradcheck(
        "conv + global max pooling, MSE",
        &mut net,
        &x,
        Targets::from(&y),
        Loss::mean_squared_error(),
        KINKED,
    );
}

/// The convolution family in one model: a dilated grouped Conv2D,
/// asymmetric zero padding, a depthwise convolution with a multiplier, a
/// separable one, reshapes to a map and to a vector (with a grouped,
/// strided Conv2D between them) and a Dense after the last reshape.
#[test]
fn convolution_family() {
    let mut net = sequential![
        Input(7, 7, 4)
        => Conv2D(4, (3, 3), dilation_rate = 2, groups = 2, activation = tanh)
        => ZeroPadding2D(((0, 1), (1, 0)))
        => DepthwiseConv2D((2, 2), depth_multiplier = 2, activation = tanh)
        => SeparableConv2D(4, (2, 2), padding = same, activation = tanh)
        => Reshape((1, 9, 4))
        => Conv2D(4, (1, 3), strides = (1, 2), groups = 2, activation = tanh)
        => Reshape((16,)) => Dense(3) => softmax
    ]
    .with_seed(16);
    randomize_biases(&mut net, 16);
    let x = random_batch(3, -1.0, 1.0, 160);
    let y = labels::<Shape1<U3>>(3, 161);
    gradcheck(
        "dilated/grouped conv, padding, depthwise, separable, reshape",
        &mut net,
        &x,
        Targets::from(&y),
        Loss::categorical_crossentropy(),
        SMOOTH,
    );
}

/// The smooth Keras 3 activations, fused into Conv2D and Dense and standalone
/// (gelu, mish, swish, silu; elu, selu, softplus, softsign), and a final
/// log_softmax under a mean squared error. gelu, mish and silu keep their
/// input for the backward pass, the others their output. Two short models,
/// so that the gradients stay large against the loss's rounding.
#[test]
fn keras3_smooth_activations() {
    let mut net = sequential![
        Input(4, 4, 2)
        => Conv2D(4, (3, 3), padding = same, activation = gelu) => mish
        => Conv2D(3, (3, 3), activation = swish)
        => Flatten => Dense(4, activation = silu) => Dense(3) => softmax
    ]
    .with_seed(30);
    randomize_biases(&mut net, 30);
    let x = random_batch(3, -2.0, 2.0, 300);
    let y = labels::<Shape1<U3>>(3, 301);
    gradcheck(
        "gelu, mish, swish, silu; CCE(softmax)",
        &mut net,
        &x,
        Targets::from(&y),
        Loss::categorical_crossentropy(),
        SMOOTH,
    );

    let mut net = sequential![
        Input(4, 4, 2)
        => Conv2D(4, (3, 3), activation = elu) => selu
        => Flatten => Dense(5, activation = softplus) => softsign => Dense(3) => log_softmax
    ]
    .with_seed(32);
    randomize_biases(&mut net, 32);
    let x = random_batch(3, -2.0, 2.0, 320);
    let y = random_batch::<Shape1<U3>>(3, -3.0, 0.0, 321);
    gradcheck(
        "elu, selu, softplus, softsign, log_softmax; MSE",
        &mut net,
        &x,
        Targets::from(&y),
        Loss::mean_squared_error(),
        SMOOTH,
    );
}

/// The piecewise Keras 3 activations (relu6, hard_sigmoid, hard_swish,
/// leaky_relu) and the LeakyReLU layer with its default and a given slope,
/// whose kinks the step may cross.
#[test]
fn keras3_piecewise_activations() {
    let mut net = sequential![
        Input(4, 4, 2)
        => Conv2D(4, (3, 3), padding = same, activation = hard_swish) => relu6
        => Conv2D(3, (3, 3), activation = leaky_relu) => LeakyReLU
        => Flatten => Dense(4) => LeakyReLU(alpha = 0.05) => hard_sigmoid
        => Dense(3, activation = relu6) => Dense(3) => softmax
    ]
    .with_seed(31);
    randomize_biases(&mut net, 31);
    let x = random_batch(3, -2.0, 2.0, 310);
    let y = labels::<Shape1<U3>>(3, 311);
    gradcheck(
        "hard_swish, relu6, leaky_relu, LeakyReLU, hard_sigmoid; CCE(softmax)",
        &mut net,
        &x,
        Targets::from(&y),
        Loss::categorical_crossentropy(),
        KINKED,
    );
}

/// A softmax that is not the model's last layer is not fused: the loss's
/// own gradient goes through the softmax's backward pass.
#[test]
fn unfused_softmax_before_dropout() {
    let mut net = sequential![
        Input(5, 5, 1)
        => Conv2D(2, (3, 3), activation = tanh) => Flatten
        => Dense(3) => softmax => Dropout(0.3)
    ]
    .with_seed(8);
    randomize_biases(&mut net, 8);
    // The dropout after the softmax takes the backward pass first, so the
    // logit gradient the loss offers is withdrawn before the softmax runs.
    let x = random_batch(3, -1.0, 1.0, 80);
    let y = labels::<Shape1<U3>>(3, 81);
    gradcheck(
        "unfused softmax, CCE",
        &mut net,
        &x,
        Targets::from(&y),
        Loss::categorical_crossentropy(),
        SMOOTH,
    );
    gradcheck(
        "unfused softmax, MSE",
        &mut net,
        &x,
        Targets::from(&soft_labels::<Shape1<U3>>(3, 82)),
        Loss::mean_squared_error(),
        SMOOTH,
    );
}

/// Categorical cross-entropy on outputs that are not normalised (sigmoid):
/// Keras divides by their sum before the log, so the gradient has a term
/// from that division too.
#[test]
fn categorical_crossentropy_on_unnormalised_outputs() {
    let mut net = sequential![
        Input(6) => Dense(5, activation = tanh) => Dense(3, activation = sigmoid)
    ]
    .with_seed(9);
    randomize_biases(&mut net, 9);
    let x = random_batch(4, -1.0, 1.0, 90);
    let y = labels::<Shape1<U3>>(4, 91);
    gradcheck(
        "CCE on sigmoid outputs",
        &mut net,
        &x,
        Targets::from(&y),
        Loss::categorical_crossentropy(),
        SMOOTH,
    );
}

/// A model nested in a model: the inner block's parameters get the right
/// gradients through the outer chain.
#[test]
fn nested_block() {
    let mut net = sequential![
        Input(6, 6, 2)
        => { sequential![Conv2D(3, (3, 3), activation = tanh) => AvgPool(2, 2)] }
        => Flatten => Dense(2) => softmax
    ]
    .with_seed(10);
    randomize_biases(&mut net, 10);
    let x = random_batch(2, -1.0, 1.0, 100);
    let y = labels::<Shape1<U2>>(2, 101);
    gradcheck(
        "nested block",
        &mut net,
        &x,
        Targets::from(&y),
        Loss::categorical_crossentropy(),
        SMOOTH,
    );
}

/// Gives every BatchNormalization random affine parameters and running
/// statistics (they start at 1, 0, 0, 1), so that inference-mode passes are
/// not the identity and every gradient is exercised in general position.
fn randomize_batch_norms<M: Model>(net: &mut M, seed: u64) {
    let mut r = rng(seed);
    for p in net.params() {
        let range = match p.name.rsplit('.').next() {
            Some("running_var") => 0.5..2.0,
            Some("running_mean") => -0.5..0.5,
            Some("weight") if p.shape.len() == 1 => 0.5..1.5,
            _ => continue,
        };
        let v: Vec<f32> = (0..p.numel())
            .map(|_| r.random_range(range.clone()))
            .collect();
        assert!(Layer::import_param(net, &p.name, &v), "{}", p.name);
    }
}

/// BatchNormalization and residuals (identity, projection, nested) in a
/// smooth model; batch normalisation right after a convolution without a
/// bias, as in ResNets (a bias there has no gradient in training mode).
fn batch_norm_residual_net() -> impl Model<Input = Shape3<U6, U6, U2>, Output = Shape1<U3>> {
    let mut net = sequential![
        Input(6, 6, 2) => Conv2D(4, (3, 3), same, use_bias = false) => BatchNormalization => tanh
        => Residual({ Conv2D(4, (3, 3), same, use_bias = false) => BatchNormalization(momentum = 0.9) => tanh
            => Residual({ Conv2D(4, (1, 1), activation = tanh) }) },
            shortcut = { Conv2D(4, (1, 1), use_bias = false) => BatchNormalization(center = false) })
        => Residual({ BatchNormalization(scale = false) => Conv2D(4, (3, 3), same, strides = (2, 2)) },
            shortcut = { Conv2D(4, (1, 1), strides = (2, 2)) })
        => GlobalAveragePooling2D => Dense(3) => softmax
    ]
    .with_seed(12);
    randomize_biases(&mut net, 12);
    randomize_batch_norms(&mut net, 13);
    net
}

#[test]
fn batch_norm_and_residuals_in_inference_mode() {
    let mut net = batch_norm_residual_net();
    let x = random_batch(3, -1.0, 1.0, 120);
    let y = labels::<Shape1<U3>>(3, 121);
    gradcheck(
        "batch norm + residuals (inference)",
        &mut net,
        &x,
        Targets::from(&y),
        Loss::categorical_crossentropy(),
        SMOOTH,
    );
}

#[test]
fn batch_norm_and_residuals_in_training_mode() {
    let mut net = batch_norm_residual_net();
    let before = net.to_safetensors().unwrap();
    let x = random_batch(3, -1.0, 1.0, 130);
    let y = labels::<Shape1<U3>>(3, 131);
    gradcheck(
        "batch norm + residuals (training)",
        &mut net,
        &x,
        Targets::from(&y),
        Loss::categorical_crossentropy(),
        Check {
            training: true,
            ..SMOOTH
        },
    );
    // Not even the running statistics moved.
    assert_eq!(net.to_safetensors().unwrap(), before);
}

// ---------------------------------------------------------------------------
// fit
// ---------------------------------------------------------------------------

fn small_net() -> impl Model<Input = Shape3<U6, U6, U1>, Output = Shape1<U3>> {
    sequential![
        Input(6, 6, 1)
        => Conv2D(3, (3, 3), activation = tanh) => MaxPool(2, 2) => Dropout(0.25)
        => Flatten => Dense(3) => softmax
    ]
}

#[test]
fn fit_is_deterministic_for_a_seed() {
    let x = random_batch::<Shape3<U6, U6, U1>>(10, -1.0, 1.0, 200);
    let y = labels::<Shape1<U3>>(10, 201);
    let options = |seed| FitOptions {
        epochs: 3,
        batch_size: 4,
        seed,
        verbose: 0,
        ..FitOptions::default()
    };
    let train = |seed| {
        let mut t = small_net().compile(Loss::sparse_categorical_crossentropy(), Adam::new(0.01));
        let history = t.fit(&x, &y, options(seed)).unwrap();
        (t.to_safetensors().unwrap(), history)
    };
    let initial = small_net().to_safetensors().unwrap();
    let (a, ha) = train(7);
    let (b, hb) = train(7);
    assert_eq!(a, b, "same seed, different weights");
    assert_eq!(ha, hb, "same seed, different history");
    assert_ne!(a, initial, "training changed nothing");
    assert_eq!(ha.loss.len(), 3);
    assert!(ha.loss.iter().all(|l| l.is_finite()));
    // The seed drives shuffling and dropout: another one trains differently.
    let (c, _) = train(8);
    assert_ne!(a, c, "the seed has no effect");

    // Same with a thread count of one and many: results do not depend on it.
    let mut t1 = small_net()
        .compile(Loss::sparse_categorical_crossentropy(), Adam::new(0.01))
        .with_threads(1);
    t1.fit(&x, &y, options(7)).unwrap();
    let mut t4 = small_net()
        .compile(Loss::sparse_categorical_crossentropy(), Adam::new(0.01))
        .with_threads(4);
    t4.fit(&x, &y, options(7)).unwrap();
    assert_eq!(t1.to_safetensors().unwrap(), t4.to_safetensors().unwrap());
}

/// Fits and expects an error, and the weights bitwise unchanged.
fn expect_error<'t>(
    what: &str,
    trainer: &mut Trainer<impl Model<Input = Shape3<U6, U6, U1>, Output = Shape1<U3>>>,
    x: &Batch<Shape3<U6, U6, U1>>,
    y: impl Into<Targets<'t, Shape1<U3>>>,
    options: FitOptions<'_, Shape3<U6, U6, U1>, Shape1<U3>>,
) -> TrainError {
    let before = trainer.to_safetensors().unwrap();
    let e = match trainer.fit(x, y, options) {
        Ok(h) => panic!("{what}: fit succeeded ({h:?})"),
        Err(e) => e,
    };
    assert_eq!(
        trainer.to_safetensors().unwrap(),
        before,
        "{what}: weights changed ({e})"
    );
    assert!(!e.to_string().is_empty());
    e
}

fn quiet<'a>() -> FitOptions<'a, Shape3<U6, U6, U1>, Shape1<U3>> {
    FitOptions {
        epochs: 2,
        batch_size: 4,
        verbose: 0,
        ..FitOptions::default()
    }
}

#[test]
fn fit_rejects_bad_arguments_without_touching_the_weights() {
    let x = random_batch::<Shape3<U6, U6, U1>>(10, -1.0, 1.0, 300);
    let y = labels::<Shape1<U3>>(10, 301);
    let mut t = small_net().compile(Loss::sparse_categorical_crossentropy(), Sgd::new(0.1));

    let mut bad = y.clone();
    bad[6] = 3;
    match expect_error("label out of range", &mut t, &x, &bad, quiet()) {
        TrainError::Targets(TargetError::ClassOutOfRange {
            index: 6,
            label: 3,
            classes: 3,
        }) => {}
        e => panic!("label out of range: {e:?}"),
    }
    match expect_error("too few labels", &mut t, &x, &y[..9], quiet()) {
        TrainError::Targets(TargetError::Count {
            expected: 10,
            found: 9,
        }) => {}
        e => panic!("too few labels: {e:?}"),
    }
    let mut more = y.clone();
    more.push(0);
    match expect_error("too many labels", &mut t, &x, &more, quiet()) {
        TrainError::Targets(TargetError::Count {
            expected: 10,
            found: 11,
        }) => {}
        e => panic!("too many labels: {e:?}"),
    }
    // One-hot targets with the wrong number of samples.
    let one_hot = soft_labels::<Shape1<U3>>(9, 302);
    match expect_error("one-hot count", &mut t, &x, &one_hot, quiet()) {
        TrainError::Targets(TargetError::Count {
            expected: 10,
            found: 9,
        }) => {}
        e => panic!("one-hot count: {e:?}"),
    }
    let zero_batch = FitOptions {
        batch_size: 0,
        ..quiet()
    };
    match expect_error("batch_size 0", &mut t, &x, &y, zero_batch) {
        TrainError::ZeroBatchSize => {}
        e => panic!("batch_size 0: {e:?}"),
    }
    let zero_epochs = FitOptions {
        epochs: 0,
        ..quiet()
    };
    match expect_error("epochs 0", &mut t, &x, &y, zero_epochs) {
        TrainError::ZeroEpochs => {}
        e => panic!("epochs 0: {e:?}"),
    }
    let empty = Batch::<Shape3<U6, U6, U1>>::zeros(0);
    let no_labels: Vec<usize> = Vec::new();
    match expect_error("empty data set", &mut t, &empty, &no_labels, quiet()) {
        TrainError::EmptyDataset => {}
        e => panic!("empty data set: {e:?}"),
    }
    for split in [1.0f32, 1.5, -0.1, f32::NAN] {
        let options = FitOptions {
            validation_split: split,
            ..quiet()
        };
        match expect_error("validation_split", &mut t, &x, &y, options) {
            TrainError::ValidationSplit {
                split: s,
                samples: 10,
            } if s.to_bits() == split.to_bits() => {}
            e => panic!("validation_split {split}: {e:?}"),
        }
    }
    // Bad validation data is caught before training starts too.
    let vx = random_batch::<Shape3<U6, U6, U1>>(2, -1.0, 1.0, 303);
    let vy = [0usize, 7];
    let options = FitOptions {
        validation_data: Some((&vx, Targets::from(&vy))),
        ..quiet()
    };
    match expect_error("validation labels", &mut t, &x, &y, options) {
        TrainError::Targets(TargetError::ClassOutOfRange {
            index: 1, label: 7, ..
        }) => {}
        e => panic!("validation labels: {e:?}"),
    }

    // A NaN learning rate, for either optimizer.
    let mut sgd = small_net().compile(Loss::sparse_categorical_crossentropy(), Sgd::new(f32::NAN));
    match expect_error("Sgd lr NaN", &mut sgd, &x, &y, quiet()) {
        TrainError::Hyperparameter(HyperparameterError {
            name: "learning_rate",
            value,
            ..
        }) if value.is_nan() => {}
        e => panic!("Sgd lr NaN: {e:?}"),
    }
    let mut adam =
        small_net().compile(Loss::sparse_categorical_crossentropy(), Adam::new(f32::NAN));
    match expect_error("Adam lr NaN", &mut adam, &x, &y, quiet()) {
        TrainError::Hyperparameter(HyperparameterError {
            name: "learning_rate",
            ..
        }) => {}
        e => panic!("Adam lr NaN: {e:?}"),
    }

    // After all that, the trainer still trains.
    t.fit(&x, &y, quiet()).unwrap();
}

/// Smooth all the way (no relu, no max pooling), so a NaN anywhere in the
/// input reaches the loss.
fn smooth_net() -> impl Model<Input = Shape3<U6, U6, U1>, Output = Shape1<U3>> {
    sequential![
        Input(6, 6, 1)
        => Conv2D(3, (3, 3), activation = tanh) => AvgPool(2, 2) => Dropout(0.25)
        => Flatten => Dense(3) => softmax
    ]
}

#[test]
fn nan_input_stops_fit_at_its_batch() {
    let y = labels::<Shape1<U3>>(10, 401);
    let no_shuffle = || FitOptions {
        shuffle: false,
        ..quiet()
    };

    // In the first batch (shuffle off): nothing is applied.
    let mut x = random_batch::<Shape3<U6, U6, U1>>(10, -1.0, 1.0, 400);
    x.as_mut_slice()[5] = f32::NAN;
    let mut t = smooth_net().compile(Loss::sparse_categorical_crossentropy(), Sgd::new(0.1));
    match expect_error("NaN in batch 1", &mut t, &x, &y, no_shuffle()) {
        TrainError::NonFiniteLoss {
            epoch: 1,
            batch: 1,
            loss,
        } => assert!(loss.is_nan()),
        e => panic!("NaN in batch 1: {e:?}"),
    }

    // In the second batch: the first batch's update stays, the second's is
    // not made, so the weights are those of one step on the first batch.
    let mut x = random_batch::<Shape3<U6, U6, U1>>(10, -1.0, 1.0, 400);
    let first = Batch::<Shape3<U6, U6, U1>>::from_slice(4, &x.as_slice()[..4 * 36]).unwrap();
    x.as_mut_slice()[5 * 36 + 7] = f32::NAN;
    let mut t = smooth_net().compile(Loss::sparse_categorical_crossentropy(), Sgd::new(0.1));
    let e = t.fit(&x, &y, no_shuffle()).unwrap_err();
    assert!(
        matches!(
            e,
            TrainError::NonFiniteLoss {
                epoch: 1,
                batch: 2,
                ..
            }
        ),
        "NaN in batch 2: {e:?}"
    );
    let mut one_step = smooth_net().compile(Loss::sparse_categorical_crossentropy(), Sgd::new(0.1));
    let one_epoch = FitOptions {
        epochs: 1,
        ..no_shuffle()
    };
    one_step.fit(&first, &y[..4], one_epoch).unwrap();
    assert_eq!(
        t.to_safetensors().unwrap(),
        one_step.to_safetensors().unwrap(),
        "NaN in batch 2: weights are not those after batch 1"
    );
}

/// A NaN input must not be hidden by a relu or a max pooling (which pick
/// the other operand of a comparison with NaN): Keras, whose relu and max
/// pooling propagate NaN, gets a NaN loss, and the NaN gradients of the
/// first layer must not reach the weights either way.
#[test]
fn nan_input_is_not_swallowed_by_relu_or_max_pooling() {
    let y = labels::<Shape1<U3>>(10, 501);
    let mut x = random_batch::<Shape3<U6, U6, U1>>(10, -1.0, 1.0, 500);
    x.as_mut_slice()[5] = f32::NAN;
    let options = || FitOptions {
        shuffle: false,
        ..quiet()
    };

    let relu_net = sequential![
        Input(6, 6, 1)
        => Conv2D(3, (3, 3), activation = relu) => AvgPool(2, 2)
        => Flatten => Dense(3) => softmax
    ];
    let mut relu = relu_net.compile(Loss::sparse_categorical_crossentropy(), Sgd::new(0.1));
    let relu_result = relu.fit(&x, &y, options());
    let mut pool = small_net().compile(Loss::sparse_categorical_crossentropy(), Sgd::new(0.1));
    let pool_result = pool.fit(&x, &y, options());
    let mut failures = Vec::new();
    for (what, result, bad) in [
        ("relu", relu_result, non_finite_params(&*relu)),
        ("max pooling", pool_result, non_finite_params(&*pool)),
    ] {
        match result {
            Err(TrainError::NonFiniteLoss {
                epoch: 1, batch: 1, ..
            }) if bad == 0 => {}
            other => failures.push(format!(
                "NaN input through {what}: expected NonFiniteLoss at epoch 1, batch 1 and \
                 untouched weights; got {other:?} with {bad} non-finite weights"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// How many parameter values are NaN or infinite.
fn non_finite_params<M: Model>(net: &M) -> usize {
    net.params()
        .iter()
        .map(|p| {
            let v = Layer::export_param(net, &p.name).unwrap();
            v.iter().filter(|v| !v.is_finite()).count()
        })
        .sum()
}
