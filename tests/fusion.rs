//! Inference fuses what it can: a convolution runs the BatchNormalization
//! and element-wise activations after it inside its kernel, and reads its
//! input without the zero padding written before it, and a pooling layer
//! after such a run pools it a band of images at a time. `forward_taped`
//! runs the same layers one by one: both must give the same values.

use strata::prelude::*;
use strata::Context;

/// `batch` samples of shape `S`, values spread over [-1, 1).
fn spread<S: Shape>(batch: usize) -> Batch<S> {
    let values = (0..batch * S::NUMEL).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0);
    Batch::from_vec(batch, values.collect()).unwrap()
}

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
        let x = spread::<Shape3<U9, U8, U5>>(batch);
        for threads in [1, 2] {
            let mut ctx = Context::inference().with_threads(threads);
            let fused = net.forward(&x, &mut ctx);
            let (one_by_one, _) = net.forward_taped(x.clone(), &mut ctx);
            assert_eq!(fused.dims(), vec![batch, 3, 4, 4]);
            assert_eq!(fused, one_by_one, "batch {batch}, {threads} threads");
        }
    }
}

/// The three ways into a model (`forward_into` into the caller's batch,
/// `forward_owned` from an input given away, `forward_ref` into a batch
/// from the context) take their buffers in different orders: with one
/// context reused, so that every buffer holds stale values from another
/// layer, all give the taped pass's values, in residual blocks (identity
/// and projection shortcuts) and nested models too.
#[test]
fn every_way_into_a_model_gives_the_same_values() {
    let mut net = sequential![
        Input(9, 9, 6)
        => Conv2D(12, (1, 1), use_bias = false) => BatchNormalization() => ReLU(max_value = 6)
        => Residual({ Conv2D(36, (1, 1)) => BatchNormalization() => ReLU(max_value = 6)
            => DepthwiseConv2D((3, 3), same) => BatchNormalization() => ReLU(max_value = 6)
            => Conv2D(12, (1, 1)) => BatchNormalization() })
        => ZeroPadding2D(((0, 1), (0, 1))) => DepthwiseConv2D((3, 3), strides = (2, 2)) => relu
        => Residual({ Conv2D(8, (3, 3), same) => relu => Conv2D(8, (3, 3), same) },
            shortcut = { Conv2D(8, (1, 1)) => BatchNormalization() })
        => Flatten => Dense(5) => relu => Dense(3, activation = softmax)
    ];
    let mut rng = strata::seeded_rng(7);
    net.initialize(&mut rng);
    // Moving statistics away from 0 and 1, so that every normalisation
    // does something.
    let mut count = 0.0f32;
    strata::layer::each_tensor_mut(&mut net, &mut |key, t| {
        if key.name.starts_with("running_") {
            count += 1.0;
            for (i, v) in t.values_mut().iter_mut().enumerate() {
                *v = 0.5 + 0.1 * (i as f32 + count).sin().abs();
            }
        }
    });
    let mut ctx = Context::inference();
    for batch in [3, 1, 2] {
        let x = spread::<Shape3<U9, U9, U6>>(batch);
        let (taped, _) = net.forward_taped(x.clone(), &mut ctx);
        let mut into = Batch::zeros(0);
        net.forward_into(&x, &mut into, &mut ctx);
        let owned = net.forward_owned(x.clone(), &mut ctx);
        let fresh = net.forward_ref(&x, &mut ctx);
        assert_eq!(into, taped, "forward_into, batch {batch}");
        assert_eq!(owned, taped, "forward_owned, batch {batch}");
        assert_eq!(fresh, taped, "forward_ref, batch {batch}");
        ctx.recycle(owned);
        ctx.recycle(fresh);
    }
}

/// A convolution, its per-pixel layers and the pooling layer after them:
/// as the model's first layer and after another, with max and average
/// pooling and with no per-pixel layer between. The first convolution's
/// output (128 KiB an image) leaves half of a 2 MiB L2 past 8 images, so
/// batch 12 on one thread goes by bands there; every way gives the taped
/// pass's values, on one thread and on two.
#[test]
fn pooling_after_a_convolution_changes_nothing() {
    let mut net = sequential![
        Input(32, 32, 16)
        => Conv2D(32, (3, 3), same) => BatchNormalization() => relu => MaxPool(2, 2)
        => Conv2D(32, (3, 3), same) => relu => AvgPool(2, 2)
        => Conv2D(16, (3, 3)) => MaxPooling2D(pool_size = (3, 3), strides = (2, 2))
    ];
    for batch in [12, 1] {
        let x = spread::<Shape3<U32, U32, U16>>(batch);
        for threads in [1, 2] {
            let mut ctx = Context::inference().with_threads(threads);
            let (taped, _) = net.forward_taped(x.clone(), &mut ctx);
            assert_eq!(taped.dims(), vec![batch, 2, 2, 16]);
            let fused = net.forward(&x, &mut ctx);
            let owned = net.forward_owned(x.clone(), &mut ctx);
            assert_eq!(fused, taped, "batch {batch}, {threads} threads");
            assert_eq!(owned, taped, "owned, batch {batch}, {threads} threads");
        }
    }
}
