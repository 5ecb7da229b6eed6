//! Named, reusable models: a chain without an input shape declared as a
//! type generic over its input, used at two sizes in one network, stored
//! in a struct field and returned from functions.
use strata::prelude::*;

sequential! {
    /// A VGG-style block: two convolutions and a pooling.
    pub struct VggBlock = Conv2D(8, (3, 3), padding = same) => relu
        => Conv2D(8, (3, 3), padding = same) => relu => MaxPool(2, 2)
}

sequential! { pub(crate) struct Head = Flatten => Dense(10) => softmax }

sequential! { struct Private = Dense(4) => relu }

/// Stored in a struct field, at a size written out.
struct Classifier {
    features: VggBlock<Shape3<U32, U32, U3>>,
}

fn block_for_cifar() -> VggBlock<Shape3<U32, U32, U3>> {
    VggBlock::new()
}

fn main() {
    // The same block at 32x32x3 and at 16x16x8, in one network.
    let net = sequential![
        Input(32, 32, 3) => { VggBlock::new() } => { VggBlock::new() } => { Head::new() }
    ];
    let y: Batch<Shape1<U10>> = net.predict(&Batch::<Shape3<U32, U32, U3>>::filled(1, 0.5));
    assert!((y.as_slice().iter().sum::<f32>() - 1.0).abs() < 1e-5);
    let outputs: Vec<Vec<usize>> = net.summary().rows.into_iter().map(|r| r.output).collect();
    assert_eq!(outputs[4], [16, 16, 8]);
    assert_eq!(outputs[9], [8, 8, 8]);
    assert_eq!(outputs[12], [10]);

    let c = Classifier {
        features: block_for_cifar(),
    };
    let y = c.features.predict(&Batch::<Shape3<U32, U32, U3>>::zeros(2));
    assert_eq!(y.sample_dims(), &[16, 16, 8]);
    assert_eq!(c.features.params()[0].name, "0.weight");
    assert_eq!(c.features.params()[0].shape, [8, 3, 3, 3]);
    // Fields are the layers, by kind and position.
    assert_eq!(c.features.conv2d_2.param_count(), 3 * 3 * 8 * 8 + 8);

    // new() and Default draw the same weights from DEFAULT_SEED, as the
    // anonymous form does.
    let a = VggBlock::<Shape3<U8, U8, U3>>::new();
    let b = VggBlock::<Shape3<U8, U8, U3>>::default();
    let anonymous = sequential![Input(8, 8, 3) => Conv2D(8, (3, 3), padding = same) => relu
        => Conv2D(8, (3, 3), padding = same) => relu => MaxPool(2, 2)];
    let x = Batch::<Shape3<U8, U8, U3>>::filled(1, 0.25);
    assert_eq!(a.predict(&x).as_slice(), b.predict(&x).as_slice());
    assert_eq!(a.predict(&x).as_slice(), anonymous.predict(&x).as_slice());

    let p = Private::new();
    let y = p.predict(&Batch::<Shape1<U3>>::filled(1, 1.0));
    assert_eq!(y.sample_dims(), &[4]);
}
