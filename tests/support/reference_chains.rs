// Every Keras reference case (tests/reference and tests/reference/layers2),
// written once for the tests that run them: `reference_chains!(m)` calls
// `m!(test_name, "case", engine_tolerance, chain...)` for each, where the
// chain is both compiled by `sequential!` and compared, as text, with the
// case's `macro` field, and `engine_tolerance` is the max abs error allowed
// between strata and another engine running the same model (the deepest
// case gets more). Included with `include!`, so it is not a test of its own.

macro_rules! reference_chains {
    ($case:ident) => {
        $case!(conv_same, "p_conv_same", 1e-5, Input(8, 8, 3) => Conv2D(4, (3, 3), same));
        $case!(conv_valid, "p_conv_valid", 1e-5, Input(9, 7, 2) => Conv2D(5, (3, 3)));
        $case!(conv_stride2, "p_conv_stride2", 1e-5,
    Input(9, 9, 3) => Conv2D(4, (3, 3), same, strides = (2, 2)));
        $case!(maxpool, "p_maxpool", 1e-5, Input(8, 8, 3) => MaxPool(2, 2));
        $case!(dense, "p_dense", 1e-5,
    Input(4, 4, 2) => Flatten => Dense(6) => relu => Dense(3) => softmax);
        $case!(seed_block, "p_seed_block", 1e-5,
    Input(16, 16, 3) => Conv2D(32, (3, 3), same) => relu => Conv2D(32, (3, 3)) => relu
    => MaxPool(2, 2) => Dropout(0.25));
        $case!(cifar_cnn, "p_cifar_cnn", 1e-5,
    Input(32, 32, 3) => Conv2D(32, (3, 3), same) => relu => Conv2D(32, (3, 3)) => relu
    => MaxPool(2, 2) => Dropout(0.25) => Conv2D(64, (3, 3), same) => relu
    => Conv2D(64, (3, 3)) => relu => MaxPool(2, 2) => Dropout(0.25) => Flatten
    => Dense(512) => relu => Dropout(0.5) => Dense(10) => softmax);
        $case!(global_average_pooling, "layers2/p2_gap", 1e-5,
    Input(7, 7, 3) => Conv2D(6, (3, 3)) => relu => GlobalAveragePooling2D => Dense(3) => softmax);
        $case!(global_max_pooling, "layers2/p2_gmp", 1e-5,
    Input(7, 7, 3) => Conv2D(6, (3, 3), same) => GlobalMaxPooling2D => Dense(3) => softmax);
        $case!(activations, "layers2/p2_acts", 1e-5,
    Input(5, 5, 4) => Conv2D(8, (3, 3), same) => relu6 => Conv2D(8, (1, 1)) => elu => selu
    => Conv2D(8, (1, 1)) => gelu => silu => Conv2D(8, (1, 1)) => swish => hard_sigmoid
    => Conv2D(8, (1, 1)) => hard_silu => hard_swish => Conv2D(8, (1, 1)) => softplus => softsign
    => Conv2D(8, (1, 1)) => mish => leaky_relu => Conv2D(8, (1, 1)) => LeakyReLU
    => LeakyReLU(negative_slope = 0.1) => Flatten => Dense(6) => log_softmax);
        $case!(batch_normalization, "layers2/p2_bn", 1e-5,
    Input(8, 8, 3) => Conv2D(4, (3, 3), same, use_bias = false) => BatchNormalization => relu);
        $case!(residual_identity, "layers2/p2_residual_identity", 1e-5,
    Input(8, 8, 4) => Residual({ Conv2D(4, (3, 3), same, use_bias = false) => BatchNormalization => relu
    => Conv2D(4, (3, 3), same, use_bias = false) => BatchNormalization }) => relu);
        $case!(residual_projection, "layers2/p2_residual_projection", 1e-5,
    Input(8, 8, 4) => Residual({ Conv2D(8, (3, 3), same, strides = (2, 2), use_bias = false)
    => BatchNormalization => relu => Conv2D(8, (3, 3), same, use_bias = false) => BatchNormalization },
    shortcut = { Conv2D(8, (1, 1), strides = (2, 2), use_bias = false) => BatchNormalization }) => relu);
        $case!(resnet20, "layers2/p2_resnet20", 1e-4,
    Input(32, 32, 3) => Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization => relu
    => Residual({ Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization => relu => Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization => relu => Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization => relu => Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(32, (3, 3), same, strides = (2, 2), use_bias = false) => BatchNormalization => relu => Conv2D(32, (3, 3), same, use_bias = false) => BatchNormalization },
        shortcut = { Conv2D(32, (1, 1), strides = (2, 2), use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(32, (3, 3), same, use_bias = false) => BatchNormalization => relu => Conv2D(32, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(32, (3, 3), same, use_bias = false) => BatchNormalization => relu => Conv2D(32, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(64, (3, 3), same, strides = (2, 2), use_bias = false) => BatchNormalization => relu => Conv2D(64, (3, 3), same, use_bias = false) => BatchNormalization },
        shortcut = { Conv2D(64, (1, 1), strides = (2, 2), use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(64, (3, 3), same, use_bias = false) => BatchNormalization => relu => Conv2D(64, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(64, (3, 3), same, use_bias = false) => BatchNormalization => relu => Conv2D(64, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    => GlobalAveragePooling2D => Dense(10) => softmax);
        $case!(mobilenet_v2_block, "layers2/p2_mbv2_block", 1e-5,
    Input(8, 8, 8) => Residual({ Conv2D(48, (1, 1), same, use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001) => relu6
    => DepthwiseConv2D((3, 3), padding = same, use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001) => relu6
    => Conv2D(8, (1, 1), same, use_bias = false) => BatchNormalization(momentum = 0.999, epsilon = 0.001) }));
        $case!(depthwise, "layers2/p2_depthwise", 1e-5,
    Input(9, 9, 3) => DepthwiseConv2D((3, 3), strides = 2, padding = same, depth_multiplier = 2) => relu6);
        $case!(separable, "layers2/p2_separable", 1e-5,
    Input(8, 8, 4) => SeparableConv2D(6, (3, 3), padding = same) => relu);
        $case!(dilated_grouped, "layers2/p2_dilated_grouped", 1e-5,
    Input(11, 11, 4) => Conv2D(8, (3, 3), dilation_rate = 2, groups = 2));
        $case!(reshape, "layers2/p2_reshape", 1e-5,
    Input(6, 6, 3) => Conv2D(8, (3, 3), same) => relu => GlobalAveragePooling2D => Reshape((1, 1, 8))
    => Conv2D(4, (1, 1)) => Reshape((4,)) => softmax);
        $case!(zero_padding_asymmetric, "layers2/p2_zeropad_asym", 1e-5,
    Input(8, 8, 3) => ZeroPadding2D(((0, 1), (0, 1))) => DepthwiseConv2D((3, 3), strides = 2)
    => BatchNormalization => relu6);
    };
}
