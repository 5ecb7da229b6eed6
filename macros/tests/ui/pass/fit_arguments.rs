//! Keras's parameter arguments: `trainable`, the initializers and the
//! regularizers on every layer with weights, in a chain and in a named
//! model, spelled as Keras spells them.
use strata::prelude::*;

sequential! {
    /// A frozen feature extractor, generic over its input.
    pub struct Frozen = Conv2D(4, 3, same, kernel_initializer = he_uniform, trainable = false)
        => BatchNormalization(trainable = false)
}

fn main() {
    let net = sequential![
        Input(8, 8, 2)
        => Conv2D(4, (3, 3), kernel_initializer = "glorot_normal", bias_initializer = zeros,
                  kernel_regularizer = l2(0.01), bias_regularizer = l1(0.001), trainable = false)
        => DepthwiseConv2D(3, depthwise_initializer = lecun_normal, depthwise_regularizer = l2)
        => SeparableConv2D(4, 3, depthwise_initializer = HeNormal,
                           pointwise_initializer = orthogonal(gain = 1.0),
                           pointwise_regularizer = L1L2(l1 = 0.01, l2 = 0.01))
        => BatchNormalization(trainable = true) => Flatten
        => Dense(8, kernel_initializer = truncated_normal(stddev = 0.02),
                 bias_initializer = constant(0.1), kernel_regularizer = l1_l2(0.0, 0.001))
        => Dense(2, activation = softmax, kernel_initializer = lecun_uniform, trainable = false)
    ];
    let summary = net.summary();
    let frozen = summary.rows[0].params + summary.rows[6].params;
    // BatchNormalization's moving statistics are never trainable.
    assert_eq!(summary.non_trainable_params(), frozen + 2 * 4);
    assert!(!net.conv2d_0.is_trainable() && net.dense_5.is_trainable());
    let bias = net.dense_5.bias().unwrap();
    assert!(bias.iter().all(|b| (*b - 0.1).abs() < 1e-7));
    assert!(net.regularization_loss() > 0.0);
    let y: Batch<Shape1<U2>> = net.predict(&Batch::<Shape3<U8, U8, U2>>::filled(1, 0.5));
    assert_eq!(y.dims(), vec![1, 2]);

    let frozen = Frozen::<Shape3<U6, U6, U1>>::new();
    assert!(!frozen.is_trainable());
    assert_eq!(frozen.summary().trainable_params(), 0);
}
