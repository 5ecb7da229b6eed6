// Keras's `keras.applications.MobileNetV2(alpha=1.0, input_shape=(224, 224,
// 3), classes=1000, include_top=True)` as one named `sequential!` model,
// shared by `examples/mobilenet_v2.rs` and `tests/mobilenet_v2.rs` (which
// `include!` it, so this file is not a module of its own).
//
// Transcribed from keras/src/applications/mobilenet_v2.py: a stride-2 3×3
// stem ('same'), 17 inverted residual blocks (1×1 expansion ×6 but in the
// first block, 3×3 depthwise, linear 1×1 projection; every convolution
// without bias and followed by BatchNormalization with momentum 0.999 and
// epsilon 1e-3, relu6 after expansion and depthwise), a final 1×1
// convolution to 1280 channels and the classifier. Where Keras adds the
// block's input back (stride 1, as many channels out as in) the block is a
// `Residual`; its stride-2 depthwise convolutions are 'valid' after
// `ZeroPadding2D(correct_pad)`, which on the even maps here pads one row
// at the bottom and one column at the right.

sequential! {
    /// Keras's MobileNetV2 (alpha 1.0) for 224×224×3 images and the 1000
    /// ImageNet classes: 3,538,984 parameters, 34,112 of them the
    /// BatchNormalization moving statistics.
    pub struct MobileNetV2 = Input(224, 224, 3)
    => Conv2D(32, (3, 3), strides = (2, 2), padding = same, use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
    // block_0: 32 -> 16 channels, no expansion, stride 1.
    => DepthwiseConv2D((3, 3), same, use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
    => Conv2D(16, (1, 1), use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001)
    // block_1: 16 -> 24 channels, expansion 6, stride 2.
    => Conv2D(96, (1, 1), use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
    => ZeroPadding2D(((0, 1), (0, 1)))
    => DepthwiseConv2D((3, 3), strides = (2, 2), use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
    => Conv2D(24, (1, 1), use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001)
    // block_2: 24 -> 24 channels, expansion 6, stride 1, residual.
    => Residual({ Conv2D(144, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => DepthwiseConv2D((3, 3), same, use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => Conv2D(24, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) })
    // block_3: 24 -> 32 channels, expansion 6, stride 2.
    => Conv2D(144, (1, 1), use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
    => ZeroPadding2D(((0, 1), (0, 1)))
    => DepthwiseConv2D((3, 3), strides = (2, 2), use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
    => Conv2D(32, (1, 1), use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001)
    // block_4: 32 -> 32 channels, expansion 6, stride 1, residual.
    => Residual({ Conv2D(192, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => DepthwiseConv2D((3, 3), same, use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => Conv2D(32, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) })
    // block_5: 32 -> 32 channels, expansion 6, stride 1, residual.
    => Residual({ Conv2D(192, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => DepthwiseConv2D((3, 3), same, use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => Conv2D(32, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) })
    // block_6: 32 -> 64 channels, expansion 6, stride 2.
    => Conv2D(192, (1, 1), use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
    => ZeroPadding2D(((0, 1), (0, 1)))
    => DepthwiseConv2D((3, 3), strides = (2, 2), use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
    => Conv2D(64, (1, 1), use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001)
    // block_7: 64 -> 64 channels, expansion 6, stride 1, residual.
    => Residual({ Conv2D(384, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => DepthwiseConv2D((3, 3), same, use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => Conv2D(64, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) })
    // block_8: 64 -> 64 channels, expansion 6, stride 1, residual.
    => Residual({ Conv2D(384, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => DepthwiseConv2D((3, 3), same, use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => Conv2D(64, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) })
    // block_9: 64 -> 64 channels, expansion 6, stride 1, residual.
    => Residual({ Conv2D(384, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => DepthwiseConv2D((3, 3), same, use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => Conv2D(64, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) })
    // block_10: 64 -> 96 channels, expansion 6, stride 1.
    => Conv2D(384, (1, 1), use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
    => DepthwiseConv2D((3, 3), same, use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
    => Conv2D(96, (1, 1), use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001)
    // block_11: 96 -> 96 channels, expansion 6, stride 1, residual.
    => Residual({ Conv2D(576, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => DepthwiseConv2D((3, 3), same, use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => Conv2D(96, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) })
    // block_12: 96 -> 96 channels, expansion 6, stride 1, residual.
    => Residual({ Conv2D(576, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => DepthwiseConv2D((3, 3), same, use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => Conv2D(96, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) })
    // block_13: 96 -> 160 channels, expansion 6, stride 2.
    => Conv2D(576, (1, 1), use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
    => ZeroPadding2D(((0, 1), (0, 1)))
    => DepthwiseConv2D((3, 3), strides = (2, 2), use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
    => Conv2D(160, (1, 1), use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001)
    // block_14: 160 -> 160 channels, expansion 6, stride 1, residual.
    => Residual({ Conv2D(960, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => DepthwiseConv2D((3, 3), same, use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => Conv2D(160, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) })
    // block_15: 160 -> 160 channels, expansion 6, stride 1, residual.
    => Residual({ Conv2D(960, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => DepthwiseConv2D((3, 3), same, use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
        => Conv2D(160, (1, 1), use_bias = false)
        => BatchNormalization(momentum = 0.999, epsilon = 0.001) })
    // block_16: 160 -> 320 channels, expansion 6, stride 1.
    => Conv2D(960, (1, 1), use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
    => DepthwiseConv2D((3, 3), same, use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
    => Conv2D(320, (1, 1), use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001)
    // The head: 1×1 to 1280 channels, then the classifier.
    => Conv2D(1280, (1, 1), use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001) => ReLU(max_value = 6)
    => GlobalAveragePooling2D => Dense(1000, activation = softmax)
}
