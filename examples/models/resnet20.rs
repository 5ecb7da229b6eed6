// The CIFAR ResNet-20 of He et al. (2016, section 4.2) as one named
// `sequential!` model, shared by `examples/resnet20.rs` and the `network`
// benchmark (which `include!` it, so this file is not a module of its own).
//
// The chain is the `p2_resnet20` Keras reference case's, written inline:
// a named model at the top keeps the weight keys of the anonymous one,
// which are Keras's functional model's in PyTorch's words
// (`3.main.0.weight`, `9.shortcut.1.running_var`, ...).

sequential! {
    /// ResNet-20 for 32×32×3 images and 10 classes: 274,042 parameters,
    /// 1,568 of them the BatchNormalization moving statistics.
    pub struct ResNet20 = Input(32, 32, 3)
    => Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization => relu
    // Stage 1: 32×32×16.
    => Residual({ Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization => relu
        => Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization => relu
        => Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization => relu
        => Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    // Stage 2: 16×16×32.
    => Residual({ Conv2D(32, (3, 3), same, strides = (2, 2), use_bias = false)
        => BatchNormalization => relu
        => Conv2D(32, (3, 3), same, use_bias = false) => BatchNormalization },
        shortcut = { Conv2D(32, (1, 1), strides = (2, 2), use_bias = false)
        => BatchNormalization }) => relu
    => Residual({ Conv2D(32, (3, 3), same, use_bias = false) => BatchNormalization => relu
        => Conv2D(32, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(32, (3, 3), same, use_bias = false) => BatchNormalization => relu
        => Conv2D(32, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    // Stage 3: 8×8×64.
    => Residual({ Conv2D(64, (3, 3), same, strides = (2, 2), use_bias = false)
        => BatchNormalization => relu
        => Conv2D(64, (3, 3), same, use_bias = false) => BatchNormalization },
        shortcut = { Conv2D(64, (1, 1), strides = (2, 2), use_bias = false)
        => BatchNormalization }) => relu
    => Residual({ Conv2D(64, (3, 3), same, use_bias = false) => BatchNormalization => relu
        => Conv2D(64, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(64, (3, 3), same, use_bias = false) => BatchNormalization => relu
        => Conv2D(64, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    => GlobalAveragePooling2D => Dense(10) => softmax
}
