//! Inference fuses what it can: a convolution runs the BatchNormalization
//! and element-wise activations after it inside its kernel, and reads its
//! input without the zero padding written before it. `forward_taped` runs
//! the same layers one by one: both must give the same values.

use strata::prelude::*;
use strata::Context;

/// Every ZeroPadding2D here comes right before a convolution: a plain one
/// with a fused tail, a depthwise one with two filters per channel, one
/// with no tail, and one whose own softmax keeps the padding as a layer.
#[test]
fn zero_padding_folded_into_the_next_convolution_changes_nothing() {
    let mut net = sequential![
        Input(9, 8, 5)
        => ZeroPadding2D(((1, 2), (0, 1))) => Conv2D(8, (3, 3), strides = (2, 2), use_bias = false)
        => BatchNormalization() => relu
        => ZeroPadding2D(1) => DepthwiseConv2D((3, 3), depth_multiplier = 2) => ReLU(max_value = 6)
        => ZeroPadding2D(((0, 1), (0, 1))) => Conv2D(6, (2, 2))
        => ZeroPadding2D(((2, 0), (1, 1))) => Conv2D(4, (3, 3), strides = (2, 1), activation = softmax)
    ];
    for batch in [1, 3] {
        let x = Batch::<Shape3<U9, U8, U5>>::from_vec(
            batch,
            (0..batch * 360)
                .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                .collect(),
        )
        .unwrap();
        for threads in [1, 2] {
            let mut ctx = Context::inference().with_threads(threads);
            let fused = net.forward(&x, &mut ctx);
            let (one_by_one, _) = net.forward_taped(x.clone(), &mut ctx);
            assert_eq!(fused.dims(), vec![batch, 3, 4, 4]);
            assert_eq!(fused, one_by_one, "batch {batch}, {threads} threads");
        }
    }
}
