//! Sizes past typenum's named constants (U1024 is the largest): the macro
//! writes them as UInt chains, and they must be the very types that Flatten
//! computes at the type level.
use strata::prelude::*;

fn main() {
    // 6 * 6 * 64 = 2304.
    let net = sequential![Input(6, 6, 64) => Flatten => Dense(3)];
    assert_eq!(net.summary().rows[0].output, [2304]);
    assert_eq!(net.summary().rows[1].output, [3]);
    assert_eq!(net.param_count(), 2304 * 3 + 3);
    let y = net.predict(&Batch::<Shape3<U6, U6, U64>>::filled(1, 1.0));
    assert_eq!(y.dims(), vec![1, 3]);

    // The same 2304 reached through a convolution: 8x8x3 -> 6x6x64.
    let net = sequential![Input(8, 8, 3) => Conv2D(64, (3, 3)) => relu => Flatten => Dense(10) => softmax];
    assert_eq!(net.summary().rows[2].output, [2304]);
    let y: Batch<Shape1<U10>> = net.predict(&Batch::<Shape3<U8, U8, U3>>::zeros(1));
    assert!((y.as_slice().iter().sum::<f32>() - 1.0).abs() < 1e-5);

    // 56 * 56 * 64 = 200704, batch of 1 and 2 units to keep it cheap.
    let net = sequential![Input(56, 56, 64) => Flatten => Dense(2)];
    assert_eq!(net.summary().rows[0].output, [200704]);
    assert_eq!(net.param_count(), 200704 * 2 + 2);
    let y = net.predict(&Batch::<Shape3<U56, U56, U64>>::filled(1, 0.5));
    assert_eq!(y.dims(), vec![1, 2]);
    assert!(y.as_slice().iter().all(|v| v.is_finite()));

    // Large sizes elsewhere: an input of 2000 features and 1500 units.
    let net = sequential![Input(2000) => Dense(1500) => relu => Dense(2)];
    assert_eq!(net.summary().rows[0].output, [1500]);
    let x = Batch::<Shape1<strata::typenum::UInt<U1000, B0>>>::zeros(1);
    assert_eq!(x.sample_dims(), &[2000]);
    let y = net.predict(&x);
    assert_eq!(y.dims(), vec![1, 2]);
    // typenum's own U2048 is the type the macro writes for 2048.
    let net = sequential![Input(2048) => Dense(2)];
    let y: Batch<Shape1<U2>> = net.predict(&Batch::<Shape1<U2048>>::zeros(1));
    assert_eq!(y.dims(), vec![1, 2]);
}
