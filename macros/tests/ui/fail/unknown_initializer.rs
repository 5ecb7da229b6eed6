use strata::prelude::*;

fn main() {
    let _a = sequential![Input(10) => Dense(4, kernel_initializer = he_nromal)];
    let _b = sequential![Input(8, 8, 1) => Conv2D(4, 3, bias_initializer = kaiming)];
    let _c = sequential![Input(10) => Dense(4, kernel_regularizer = l3(0.01))];
    let _d = sequential![Input(10) => Dense(4, kernel_initializer = random_normal(std = 0.1))];
    let _e = sequential![Input(8, 8, 1) => BatchNormalization(trainable = 0)];
    let _f = sequential![Input(8, 8, 1) => DepthwiseConv2D(3, pointwise_initializer = ones)];
}
