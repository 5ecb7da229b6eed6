//! The seed network, verbatim.
use strata::prelude::*;

fn main() {
    let net = sequential![Conv2D(32, (3, 3), padding = same, input_shape = (32, 32, 3)) => relu => Conv2D(32, (3, 3)) => relu => MaxPool(2, 2) => Dropout(0.25) => Flatten => Dense(10) => softmax];

    let x = Batch::<Shape3<U32, U32, U3>>::filled(2, 0.5);
    let y: Batch<Shape1<U10>> = net.predict(&x);
    assert_eq!(y.dims(), vec![2, 10]);
    for i in 0..2 {
        let p = y.sample(i).unwrap();
        assert!(p.iter().all(|v| *v > 0.0));
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    // Keras's model.summary() for the same model.
    let summary = net.summary();
    let rows: Vec<(&str, Vec<usize>, usize)> = summary
        .rows
        .iter()
        .map(|r| (r.kind.as_str(), r.output.clone(), r.params))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("Conv2D", vec![32, 32, 32], 896),
            ("Activation", vec![32, 32, 32], 0),
            ("Conv2D", vec![30, 30, 32], 9248),
            ("Activation", vec![30, 30, 32], 0),
            ("MaxPooling2D", vec![15, 15, 32], 0),
            ("Dropout", vec![15, 15, 32], 0),
            ("Flatten", vec![7200], 0),
            ("Dense", vec![10], 72010),
            ("Activation", vec![10], 0),
        ]
    );
    assert_eq!(summary.total_params(), 82154);
}
