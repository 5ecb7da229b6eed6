//! The whole networks of the examples, built from the files they
//! `include!`: Keras's MobileNetV2 (`examples/models/mobilenet_v2.rs`:
//! `keras.applications.MobileNetV2()`, alpha 1.0, 224×224×3, 1000
//! classes) with Keras's parameter counts, and the CIFAR ResNet-20
//! (`examples/models/resnet20.rs`) as a named model that loads the Keras
//! reference case's weights under the same keys and matches its output.

use std::path::PathBuf;

use safetensors::SafeTensors;
use strata::prelude::*;

include!("../examples/models/mobilenet_v2.rs");
include!("../examples/models/resnet20.rs");

#[test]
fn mobilenet_v2_has_keras_parameter_counts() {
    let net = MobileNetV2::new();
    // `model.count_params()` of Keras 3 and its summary's split.
    assert_eq!(net.param_count(), 3_538_984);
    assert_eq!(net.trainable_param_count(), 3_504_872);
    assert_eq!(net.param_count() - net.trainable_param_count(), 34_112);
    let params = net.params();
    // 52 BatchNormalization layers, each with the count PyTorch keeps.
    let counts = params
        .iter()
        .filter(|p| p.name.ends_with("num_batches_tracked"))
        .count();
    assert_eq!(counts, 52);
    // The first residual (Keras's block_2) is layer 17, its depthwise
    // convolution the fourth layer of its main branch.
    let depthwise = params.iter().find(|p| p.name == "17.main.3.weight");
    assert_eq!(
        depthwise.map(|p| p.shape.as_slice()),
        Some(&[144, 1, 3, 3][..])
    );
}

#[test]
fn mobilenet_v2_predicts_a_distribution_over_1000_classes() {
    let net = MobileNetV2::new();
    let x = Batch::<Shape3<U224, U224, U3>>::filled(1, 0.5);
    let y: Batch<Shape1<U1000>> = net.predict(&x);
    assert_eq!(y.dims(), vec![1, 1000]);
    let sum: f32 = y.as_slice().iter().sum();
    assert!((sum - 1.0).abs() < 1e-4, "{sum}");
    assert!(y.as_slice().iter().all(|p| p.is_finite() && *p >= 0.0));
    // Keras's initial weights shrink the signal block after block (the
    // depthwise kernels' Glorot fans count every channel) and the initial
    // moving statistics do not undo it: at inference an untrained
    // MobileNetV2 is all but uniform, in Keras as here. With the batch's
    // statistics (training mode) every block is renormalised, and the
    // features reach the classifier.
    let pixels = (0..224 * 224 * 3).map(|i| ((i * 7919) % 1000) as f32 / 1000.0);
    let x = Batch::<Shape3<U224, U224, U3>>::from_vec(1, pixels.collect()).unwrap();
    let y = net.predict_training(&x, &mut seeded_rng(0));
    let (lo, hi) = y
        .as_slice()
        .iter()
        .fold((1.0f32, 0.0f32), |(lo, hi), p| (lo.min(*p), hi.max(*p)));
    assert!(hi > 1.5 * lo, "{lo} .. {hi}");
}

#[test]
fn resnet20_has_the_reference_keys_and_output() {
    let mut net = ResNet20::new();
    assert_eq!(
        (net.param_count(), net.trainable_param_count()),
        (274_042, 272_474)
    );
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/layers2");
    net.load_safetensors(dir.join("p2_resnet20.weights.safetensors"))
        .expect("the reference case's weights load under the named model's keys");
    let io = std::fs::read(dir.join("p2_resnet20.io.safetensors")).unwrap();
    let io = SafeTensors::deserialize(&io).unwrap();
    let values = |key: &str| -> (usize, Vec<f32>) {
        let t = io.tensor(key).unwrap();
        let data = t.data().chunks_exact(4);
        let v = data.map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        (t.shape()[0], v.collect())
    };
    let ((n, input), (_, expected)) = (values("input"), values("output"));
    let y = net.predict(&Batch::<Shape3<U32, U32, U3>>::from_vec(n, input).unwrap());
    let err = y
        .as_slice()
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("ResNet20 against p2_resnet20: max abs error {err:e}");
    assert!(err <= 1e-4, "max abs error {err}");
}

/// The README's residual stage, verbatim.
#[test]
fn readme_residual_stage() {
    let stage = sequential![
        Input(32, 32, 16)
        => Residual({ Conv2D(32, (3, 3), same, strides = (2, 2), use_bias = false)
                      => BatchNormalization => relu
                      => Conv2D(32, (3, 3), same, use_bias = false) => BatchNormalization },
                    shortcut = { Conv2D(32, (1, 1), strides = (2, 2), use_bias = false)
                                 => BatchNormalization })
        => relu
        => Residual({ Conv2D(32, (3, 3), same, use_bias = false) => BatchNormalization => relu
                      => Conv2D(32, (3, 3), same, use_bias = false) => BatchNormalization })
        => relu
    ];
    let y = stage.predict(&Batch::<Shape3<U32, U32, U16>>::zeros(1)); // 16x16x32
    assert_eq!(y.dims(), [1, 16, 16, 32]);
    let keys: Vec<String> = stage.params().into_iter().map(|p| p.name).collect();
    assert!(keys.contains(&"0.main.0.weight".to_string()), "{keys:?}");
    assert!(
        keys.contains(&"0.shortcut.1.running_var".to_string()),
        "{keys:?}"
    );
}
