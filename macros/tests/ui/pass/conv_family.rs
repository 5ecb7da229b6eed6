//! The convolution family: dilated and grouped Conv2D, DepthwiseConv2D,
//! SeparableConv2D, ZeroPadding2D and Reshape, with and without an input
//! shape, in a named model, and their summary rows.
use strata::prelude::*;

sequential! {
    /// A MobileNet-style downsampling block, generic over its input.
    pub struct Downsample = ZeroPadding2D(((0, 1), (0, 1)))
        => DepthwiseConv2D((3, 3), strides = 2, activation = relu)
        => Conv2D(8, (1, 1))
}

fn main() {
    let net = sequential![
        Input(12, 12, 4) => Conv2D(8, (3, 3), dilation_rate = 2, groups = 2) => relu
        => ZeroPadding2D(1) => DepthwiseConv2D((3, 3), padding = same, depth_multiplier = 2)
        => SeparableConv2D(6, (3, 3), strides = (2, 2), dilation_rate = (1, 1), activation = relu)
        => ZeroPadding2D((1, 0)) => Reshape((1, 6, 24)) => Conv2D(4, 1, groups = 2, use_bias = false)
        => Reshape((24,)) => Dense(3) => softmax
    ];
    let y: Batch<Shape1<U3>> = net.predict(&Batch::<Shape3<U12, U12, U4>>::filled(2, 0.5));
    assert_eq!(y.dims(), vec![2, 3]);
    let rows = net.summary().rows;
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Conv2D",
            "Activation",
            "ZeroPadding2D",
            "DepthwiseConv2D",
            "SeparableConv2D",
            "ZeroPadding2D",
            "Reshape",
            "Conv2D",
            "Reshape",
            "Dense",
            "Activation"
        ]
    );
    // Grouped kernel: [8, 4 / 2, 3, 3] + bias; depthwise [16, 1, 3, 3] + 16.
    assert_eq!(rows[0].params, 8 * 2 * 9 + 8);
    assert_eq!(rows[3].params, 16 * 9 + 16);
    assert_eq!(rows[3].output, [10, 10, 16]);
    // Depthwise 16 * 9, pointwise 6 * 16 + 6.
    assert_eq!(rows[4].params, 16 * 9 + 6 * 16 + 6);
    assert_eq!(rows[4].output, [4, 4, 6]);
    assert_eq!(rows[6].output, [1, 6, 24]);
    let keys: Vec<String> = net.params().into_iter().map(|p| p.name).collect();
    assert!(keys.contains(&"4.depthwise.weight".to_string()));
    assert!(keys.contains(&"4.pointwise.bias".to_string()));
    assert!(keys.contains(&"7.weight".to_string()) && !keys.contains(&"7.bias".to_string()));

    // Without an input shape, the shapes come with use.
    let block = sequential![DepthwiseConv2D(3, padding = same) => Reshape((50,))];
    let y: Batch<Shape1<U50>> = block.predict(&Batch::<Shape3<U5, U5, U2>>::zeros(1));
    assert_eq!(y.dims(), vec![1, 50]);

    let down = Downsample::<Shape3<U8, U8, U3>>::new();
    let y: Batch<Shape3<U4, U4, U8>> = down.predict(&Batch::zeros(1));
    assert_eq!(y.dims(), vec![1, 4, 4, 8]);
}
