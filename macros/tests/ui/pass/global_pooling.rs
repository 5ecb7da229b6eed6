//! Global pooling: (H, W, C) -> (C), Keras's names and aliases.
use strata::prelude::*;

fn main() {
    let net = sequential![
        Input(8, 8, 3) => Conv2D(16, (3, 3), same) => relu
        => GlobalAveragePooling2D => Dense(10) => softmax
    ];
    let y: Batch<Shape1<U10>> = net.predict(&Batch::<Shape3<U8, U8, U3>>::filled(2, 0.5));
    assert_eq!(y.dims(), vec![2, 10]);
    let rows = net.summary().rows;
    assert_eq!(rows[2].kind, "GlobalAveragePooling2D");
    assert_eq!(rows[2].output, [16]);
    assert_eq!(rows[2].params, 0);
    assert_eq!(net.global_average_pooling2d_2.param_count(), 0);

    // The output type of global pooling alone is Batch<Shape1<C>>.
    let pool = sequential![Input(4, 4, 7) => GlobalMaxPooling2D(keepdims = false)];
    let x = Batch::<Shape3<U4, U4, U7>>::from_vec(1, (0..112).map(|i| i as f32).collect()).unwrap();
    let y: Batch<Shape1<U7>> = pool.predict(&x);
    // The last row (3, 3) holds the largest value of each channel.
    assert_eq!(
        y.as_slice(),
        &[105.0, 106.0, 107.0, 108.0, 109.0, 110.0, 111.0]
    );
    let _ = &pool.global_max_pooling2d_0;

    let avg = sequential![Input(2, 2, 1) => GlobalAvgPool2D];
    let y: Batch<Shape1<U1>> =
        avg.predict(&Batch::<Shape3<U2, U2, U1>>::from_vec(1, vec![1.0, 2.0, 3.0, 6.0]).unwrap());
    assert_eq!(y.as_slice(), &[3.0]);

    // Without an input shape: the rank is known, the size comes with use.
    let head = sequential![GlobalMaxPool2D => Dense(3)];
    let y: Batch<Shape1<U3>> = head.predict(&Batch::<Shape3<U5, U5, U6>>::zeros(1));
    assert_eq!(y.dims(), vec![1, 3]);
}
