//! The MobileNetV2 of `examples/mobilenet_v2.rs` (Keras's
//! `keras.applications.MobileNetV2()`, alpha 1.0, 224×224×3, 1000
//! classes): Keras's parameter counts, its layer count and its output at
//! batch 1.

use strata::prelude::*;

include!("../examples/models/mobilenet_v2.rs");

#[test]
fn mobilenet_v2_has_keras_parameter_counts() {
    let net = MobileNetV2::new();
    // `model.count_params()` of Keras 3 and its summary's split.
    assert_eq!(net.param_count(), 3_538_984);
    assert_eq!(net.trainable_param_count(), 3_504_872);
    assert_eq!(net.param_count() - net.trainable_param_count(), 34_112);
    // 52 BatchNormalization layers, each with a count PyTorch keeps.
    let counts = net
        .params()
        .into_iter()
        .filter(|p| p.name.ends_with("num_batches_tracked"))
        .count();
    assert_eq!(counts, 52);
    let keys: Vec<String> = net.params().into_iter().map(|p| p.name).collect();
    // The first residual (block_2) keeps Keras's layer order inside.
    assert!(keys.contains(&"17.main.3.weight".to_string()), "{keys:?}");
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
}
