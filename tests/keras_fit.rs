//! The rest of Keras's `fit`, end to end through `sequential!`: frozen
//! layers (`trainable = false`), initializers and regularizers given as
//! layer arguments, `sample_weight` / `class_weight`, and the callbacks,
//! each checked against Keras's documented formula or behaviour.

use strata::callbacks::{BatchLogs, EpochLogs};
use strata::prelude::*;

/// `n` samples of `len` values in [-1, 1], fixed.
fn inputs<S: Shape>(n: usize) -> Batch<S> {
    let data = (0..n * S::NUMEL)
        .map(|i| ((i as f32) * 0.7315).sin())
        .collect();
    Batch::from_vec(n, data).unwrap()
}

fn quiet<'a, I, O>(epochs: usize, batch_size: usize) -> FitOptions<'a, I, O> {
    FitOptions {
        epochs,
        batch_size,
        verbose: 0,
        shuffle: false,
        ..FitOptions::default()
    }
}

macro_rules! frozen_net {
    () => {
        sequential![
            Input(6, 6, 1) => Conv2D(4, 3, activation = relu, trainable = false)
            => BatchNormalization(trainable = false) => Flatten
            => Dense(8, activation = relu) => Dense(3, activation = softmax)
        ]
    };
}

fn changed(before: &[f32], after: &[f32]) -> bool {
    before.iter().zip(after).any(|(a, b)| a != b)
}

#[test]
fn frozen_layers_stay_unchanged_while_the_others_train() {
    let net = frozen_net!();
    // Keras counts a frozen layer's parameters as non-trainable: the
    // conv's 40 and all 16 of the BatchNormalization.
    let summary = net.summary();
    assert_eq!(summary.total_params(), 40 + 16 + (64 * 8 + 8) + (8 * 3 + 3));
    assert_eq!(summary.non_trainable_params(), 40 + 16);
    assert!(summary.to_string().contains("Non-trainable params: 56"));
    assert!(!net.conv2d_0.is_trainable());
    assert!(net.dense_3.is_trainable());

    let mut model = net.compile(Loss::sparse_categorical_crossentropy(), Adam::new(0.05));
    // Freeze one more layer of the built model, by key.
    assert_eq!(model.set_trainable_under("3", false), 2);
    assert_eq!(model.set_trainable_under("30", false), 0);
    let x = inputs::<Shape3<U6, U6, U1>>(12);
    let y: Vec<usize> = (0..12).map(|i| i % 3).collect();
    let keys = [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.running_mean",
        "1.running_var",
        "3.weight",
    ];
    let before: Vec<Vec<f32>> = keys
        .iter()
        .map(|k| model.export_param(k).unwrap())
        .collect();
    let head = model.export_param("4.weight").unwrap();
    model.fit(&x, &y, quiet(3, 4)).unwrap();
    for (k, b) in keys.iter().zip(&before) {
        assert_eq!(&model.export_param(k).unwrap(), b, "{k} is frozen");
    }
    assert!(changed(&head, &model.export_param("4.weight").unwrap()));

    // Unfrozen, it trains again (Adam's state of the others is untouched).
    model.dense_3.set_trainable(true);
    model.fit(&x, &y, quiet(1, 4)).unwrap();
    assert!(changed(
        &before[5],
        &model.export_param("3.weight").unwrap()
    ));
    assert_eq!(model.export_param("0.weight").unwrap(), before[0]);
}

#[test]
fn a_frozen_batch_normalization_runs_in_inference_mode() {
    // Keras: `trainable = False` on a BatchNormalization makes it use its
    // moving statistics even in training.
    let mut net = sequential![Input(4) => BatchNormalization(trainable = false)];
    assert!(net.import_param("0.running_mean", &[1.0, -1.0, 0.5, 0.0]));
    let x = inputs::<Shape1<U4>>(5);
    let inference = net.predict(&x);
    let training = net.predict_training(&x, &mut seeded_rng(0));
    assert_eq!(inference.as_slice(), training.as_slice());
    net.set_trainable(true);
    let training = net.predict_training(&x, &mut seeded_rng(0));
    assert_ne!(inference.as_slice(), training.as_slice());
}

/// Mean and standard deviation.
fn moments(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
    let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[test]
fn initializers_are_layer_arguments() {
    let net = sequential![
        Input(400) => Dense(300, kernel_initializer = he_normal, bias_initializer = ones)
        => Dense(2, kernel_initializer = random_uniform(minval = -0.5, maxval = 0.5))
    ];
    // he_normal: truncated normal, std sqrt(2 / fan_in) after truncation,
    // nothing beyond 2 · sqrt(2 / fan_in) / .87962566.
    let k = net.export_param("0.weight").unwrap();
    let (mean, std) = moments(&k);
    let sd = (2.0f64 / 400.0).sqrt();
    assert!(mean.abs() < 0.02 * sd, "mean {mean}");
    assert!((std / sd - 1.0).abs() < 0.02, "std {std} vs {sd}");
    let bound = 2.0 * sd / 0.879_625_66;
    assert!(k.iter().all(|v| (*v as f64).abs() <= bound + 1e-6));
    assert!(net
        .export_param("0.bias")
        .unwrap()
        .iter()
        .all(|b| *b == 1.0));
    let u = net.export_param("1.weight").unwrap();
    assert!(u.iter().all(|v| v.abs() <= 0.5) && u.iter().any(|v| v.abs() > 0.4));
    // Another seed redraws with the same initializers.
    let reseeded = net.with_seed(3);
    assert!(reseeded
        .export_param("0.bias")
        .unwrap()
        .iter()
        .all(|b| *b == 1.0));
    assert_ne!(reseeded.export_param("0.weight").unwrap(), k);

    let convs = sequential![
        Input(5, 5, 2) => Conv2D(3, 3, same, kernel_initializer = zeros, bias_initializer = constant(0.25))
        => DepthwiseConv2D(3, same, depthwise_initializer = ones)
        => SeparableConv2D(2, 3, same, depthwise_initializer = ones, pointwise_initializer = "Zeros")
    ];
    let all = |key: &str, value: f32| convs.export_param(key).unwrap().iter().all(|v| *v == value);
    assert!(all("0.weight", 0.0) && all("0.bias", 0.25) && all("1.weight", 1.0));
    assert!(all("2.depthwise.weight", 1.0) && all("2.pointwise.weight", 0.0));
}

macro_rules! linear {
    ($($arg:tt)*) => {
        sequential![Input(3) => Dense(2, use_bias = false $($arg)*)]
    };
}

#[test]
fn an_l2_regularizer_adds_kerass_term_and_gradient() {
    let w = [0.5f32, -1.0, 2.0, 0.25, 1.5, -0.5];
    let mut plain = linear!();
    let mut l2 = linear!(, kernel_regularizer = l2(0.01));
    let mut l1 = linear!(, kernel_regularizer = l1(0.1));
    assert!(plain.import_param("0.weight", &w));
    assert!(l2.import_param("0.weight", &w) && l1.import_param("0.weight", &w));
    let x = inputs::<Shape1<U3>>(4);
    let y = inputs::<Shape1<U2>>(4);
    let mse = Loss::mean_squared_error();
    let base = plain.loss_and_gradients(&x, &y, mse).unwrap();
    let reg = l2.loss_and_gradients(&x, &y, mse).unwrap();
    // Keras: loss + 0.01 · Σw², gradient + 2 · 0.01 · w.
    let penalty: f32 = 0.01 * w.iter().map(|v| v * v).sum::<f32>();
    assert!((reg.loss - base.loss - penalty).abs() < 1e-6);
    let (g0, g1) = (base.get("0.weight").unwrap(), reg.get("0.weight").unwrap());
    for i in 0..6 {
        assert!((g1[i] - g0[i] - 0.02 * w[i]).abs() < 1e-6, "{i}");
    }
    let lasso = l1.loss_and_gradients(&x, &y, mse).unwrap();
    let penalty_l1: f32 = 0.1 * w.iter().map(|v| v.abs()).sum::<f32>();
    assert!((lasso.loss - base.loss - penalty_l1).abs() < 1e-6);
    let g2 = lasso.get("0.weight").unwrap();
    for i in 0..6 {
        assert!((g2[i] - g0[i] - 0.1 * w[i].signum()).abs() < 1e-6, "{i}");
    }

    // fit reports the regularized loss (before the step), and evaluate too.
    let data_loss = plain
        .compile(mse, Sgd::new(0.0))
        .evaluate(&x, &y)
        .unwrap()
        .loss;
    let mut model = l2.compile(mse, Sgd::new(0.0));
    let history = model.fit(&x, &y, quiet(1, 4)).unwrap();
    assert!((history.loss[0] - (data_loss + penalty)).abs() < 1e-6);
    assert!((model.evaluate(&x, &y).unwrap().loss - history.loss[0]).abs() < 1e-6);
    // A frozen tensor's penalty is not counted (Keras sums trainable
    // weights' regularizers).
    model.set_trainable(false);
    assert!((model.evaluate(&x, &y).unwrap().loss - data_loss).abs() < 1e-6);
}

/// Each sample's cross-entropy given the predictions `p`.
fn per_sample_losses(p: &Batch<Shape1<U3>>, y: &[usize]) -> Vec<f32> {
    y.iter()
        .enumerate()
        .map(|(i, &c)| -p.sample(i).unwrap()[c].ln())
        .collect()
}

#[test]
fn sample_and_class_weights_weight_the_loss_as_keras() {
    let net = sequential![Input(4) => Dense(3, activation = softmax)];
    let x = inputs::<Shape1<U4>>(6);
    let y = [0usize, 1, 2, 2, 1, 0];
    let losses = per_sample_losses(&net.predict(&x), &y);
    // Learning rate 0: the weights stay, every epoch's loss is the same.
    let mut model = net.compile(Loss::sparse_categorical_crossentropy(), Sgd::new(0.0));
    let sw = [1.0f32, 2.0, 0.5, 0.0, 3.0, 1.0];
    let history = model
        .fit(
            &x,
            &y,
            FitOptions {
                sample_weight: Some(&sw),
                ..quiet(1, 4)
            },
        )
        .unwrap();
    // Keras's sum_over_batch_size: Σ wᵢ·lossᵢ / N, not / Σ wᵢ.
    let weighted: f32 = sw.iter().zip(&losses).map(|(w, l)| w * l).sum();
    let expected = weighted / 6.0;
    assert!(
        (history.loss[0] - expected).abs() < 1e-5,
        "{} vs {expected}",
        history.loss[0]
    );
    assert!((history.loss[0] - weighted / sw.iter().sum::<f32>()).abs() > 1e-3);

    // class_weight: each sample weighs its class's weight.
    let cw = [2.0f32, 0.5, 1.0];
    let history = model
        .fit(
            &x,
            &y,
            FitOptions {
                class_weight: Some(&cw),
                ..quiet(1, 6)
            },
        )
        .unwrap();
    let expected: f32 = y.iter().zip(&losses).map(|(c, l)| cw[*c] * l).sum::<f32>() / 6.0;
    assert!((history.loss[0] - expected).abs() < 1e-5);

    // validation_split holds out the last samples with their weights.
    let history = model
        .fit(
            &x,
            &y,
            FitOptions {
                sample_weight: Some(&sw),
                validation_split: 0.5,
                ..quiet(1, 6)
            },
        )
        .unwrap();
    let val: f32 = (3..6).map(|i| sw[i] * losses[i]).sum::<f32>() / 3.0;
    assert!((history.val_loss[0] - val).abs() < 1e-5);

    let both = FitOptions {
        sample_weight: Some(&sw),
        class_weight: Some(&cw),
        ..quiet(1, 6)
    };
    assert!(matches!(
        model.fit(&x, &y, both),
        Err(TrainError::Weights(_))
    ));
    let short = FitOptions {
        sample_weight: Some(&sw[..2]),
        ..quiet(1, 6)
    };
    let e = model.fit(&x, &y, short).unwrap_err().to_string();
    assert!(e.contains("one weight per sample"), "{e}");
}

#[test]
fn early_stopping_stops_a_fit_whose_loss_stalls() {
    // Learning rate 0: the loss is the same every epoch. The first epoch
    // sets the best, the next two do not improve: with patience 2 Keras
    // stops after the third.
    let net = sequential![Input(4) => Dense(3, activation = softmax)];
    let mut model = net.compile(Loss::sparse_categorical_crossentropy(), Sgd::new(0.0));
    let x = inputs::<Shape1<U4>>(8);
    let y = [0usize, 1, 2, 0, 1, 2, 0, 1];
    let mut early = EarlyStopping::new(Monitor::ValLoss).patience(2);
    let options = FitOptions {
        validation_split: 0.25,
        callbacks: vec![&mut early],
        ..quiet(20, 2)
    };
    let history = model.fit(&x, &y, options).unwrap();
    assert_eq!(history.loss.len(), 3);
    assert_eq!(early.stopped_epoch(), Some(2));
    // Monitoring val_loss without validation data is an error up front.
    let mut early = EarlyStopping::default();
    let options = FitOptions {
        callbacks: vec![&mut early],
        ..quiet(5, 2)
    };
    let e = model.fit(&x, &y, options).unwrap_err();
    assert!(matches!(e, TrainError::Callback(_)), "{e}");
}

#[test]
fn reduce_lr_on_plateau_lowers_the_optimizers_rate() {
    // Everything frozen: the loss stalls at a non-zero rate. Patience 1:
    // epoch 0 is the best, each later epoch halves the rate.
    let mut net = sequential![Input(4) => Dense(3, activation = softmax)];
    net.set_trainable(false);
    let mut model = net.compile(Loss::sparse_categorical_crossentropy(), Sgd::new(1.0));
    let x = inputs::<Shape1<U4>>(4);
    let y = [0usize, 1, 2, 0];
    let mut plateau = ReduceLROnPlateau::new(Monitor::Loss)
        .patience(1)
        .factor(0.5);
    let mut rates = Vec::new();
    let mut log =
        LambdaCallback::new().on_epoch_end(|logs: &EpochLogs, _| rates.push(logs.learning_rate));
    let options = FitOptions {
        callbacks: vec![&mut plateau, &mut log],
        ..quiet(4, 4)
    };
    model.fit(&x, &y, options).unwrap();
    drop(log);
    // Each epoch's logs carry the rate it trained with (Keras's
    // `logs["learning_rate"]`); the reduction at its end applies from the
    // next epoch.
    assert_eq!(rates, [1.0, 1.0, 0.5, 0.25]);
    assert_eq!(model.learning_rate(), 0.125);
}

#[test]
fn a_closure_sees_every_batch_and_can_stop_training() {
    let net = sequential![Input(4) => Dense(3, activation = softmax)];
    let mut model = net.compile(Loss::sparse_categorical_crossentropy(), Adam::new(0.01));
    let x = inputs::<Shape1<U4>>(10);
    let y: Vec<usize> = (0..10).map(|i| i % 3).collect();
    let mut seen: Vec<(usize, usize)> = Vec::new();
    let mut stopper = LambdaCallback::new().on_batch_end(|logs: &BatchLogs, fit| {
        seen.push((logs.epoch, logs.batch));
        assert!(logs.loss.is_finite());
        if (logs.epoch, logs.batch) == (1, 1) {
            fit.stop_training();
        }
    });
    let options = FitOptions {
        callbacks: vec![&mut stopper],
        ..quiet(5, 4)
    };
    let history = model.fit(&x, &y, options).unwrap();
    drop(stopper);
    // 3 batches an epoch; stopped after the second batch of epoch 1, whose
    // (partial) epoch still ends and is recorded.
    assert_eq!(seen, [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]);
    assert_eq!(history.loss.len(), 2);
}

#[test]
fn model_checkpoint_saves_the_best_weights_during_fit() {
    let dir = std::env::temp_dir().join(format!("strata-fit-ckpt-{}", std::process::id()));
    let path = dir.join("best.safetensors");
    let net = sequential![Input(4) => Dense(3, activation = softmax)];
    let mut model = net.compile(Loss::sparse_categorical_crossentropy(), Adam::new(0.05));
    let x = inputs::<Shape1<U4>>(8);
    let y = [0usize, 1, 2, 0, 1, 2, 0, 1];
    let mut ckpt = ModelCheckpoint::new(path.to_str().unwrap())
        .monitor(Monitor::Loss)
        .save_best_only(true);
    let options = FitOptions {
        callbacks: vec![&mut ckpt],
        ..quiet(4, 8)
    };
    let history = model.fit(&x, &y, options).unwrap();
    // The loss falls every epoch: every epoch improves, the file holds
    // the last epoch's weights.
    assert!(
        history.loss.windows(2).all(|w| w[1] < w[0]),
        "{:?}",
        history.loss
    );
    assert_eq!(ckpt.saved().len(), 4);
    let mut fresh = sequential![Input(4) => Dense(3, activation = softmax)];
    fresh.load_safetensors(&path).unwrap();
    assert_eq!(
        fresh.export_param("0.weight"),
        model.export_param("0.weight")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
