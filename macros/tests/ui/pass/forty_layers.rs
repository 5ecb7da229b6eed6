//! A chain of 40 layers: it compiles in reasonable time and runs.
use strata::prelude::*;

fn main() {
    let net = sequential![
        Input(16, 16, 4)
        => Conv2D(8, (3, 3), same)
        => relu
        => Dropout(0.1)
        => Conv2D(8, (3, 3), same)
        => relu
        => Dropout(0.1)
        => Conv2D(8, (3, 3), same)
        => relu
        => Dropout(0.1)
        => Conv2D(8, (3, 3), same)
        => relu
        => Dropout(0.1)
        => Conv2D(8, (3, 3), same)
        => relu
        => Dropout(0.1)
        => Conv2D(8, (3, 3), same)
        => relu
        => Dropout(0.1)
        => Conv2D(8, (3, 3), same)
        => relu
        => Dropout(0.1)
        => Conv2D(8, (3, 3), same)
        => relu
        => Dropout(0.1)
        => Conv2D(8, (3, 3), same)
        => relu
        => Dropout(0.1)
        => Conv2D(8, (3, 3), same)
        => relu
        => Dropout(0.1)
        => Conv2D(8, (3, 3), same)
        => relu
        => Dropout(0.1)
        => Conv2D(8, (3, 3), same)
        => relu
        => Dropout(0.1)
        => MaxPool(2, 2)
        => Flatten
        => Dense(10)
        => softmax
    ];
    let summary = net.summary();
    assert_eq!(summary.rows.len(), 40);
    assert_eq!(summary.rows[35].output, [16, 16, 8]);
    assert_eq!(summary.rows[36].output, [8, 8, 8]);
    assert_eq!(summary.rows[37].output, [512]);
    assert_eq!(summary.rows[39].output, [10]);
    assert_eq!(
        summary.total_params(),
        (3 * 3 * 4 * 8 + 8) + 11 * (3 * 3 * 8 * 8 + 8) + (512 * 10 + 10)
    );

    let x = Batch::<Shape3<U16, U16, U4>>::filled(2, 0.1);
    let y: Batch<Shape1<U10>> = net.predict(&x);
    assert_eq!(y.dims(), vec![2, 10]);
    assert!((y.sample(1).unwrap().iter().sum::<f32>() - 1.0).abs() < 1e-5);
    let mut rng = seeded_rng(7);
    let t = net.predict_training(&x, &mut rng);
    assert!(t.as_slice().iter().all(|v| v.is_finite()));
}
