//! Keras's own spellings of layers and arguments; every output shape is the
//! one Keras's summary shows for the same model.
use strata::prelude::*;

fn outputs<M: Model>(net: &M) -> Vec<Vec<usize>> {
    net.summary()
        .rows
        .iter()
        .map(|r| r.output.clone())
        .collect()
}

fn main() {
    // Convolution2D, "same" as a string.
    let net = sequential![Input(9, 9, 3) => Convolution2D(4, (3, 3), padding = "same")];
    assert_eq!(outputs(&net), [[9, 9, 4]]);
    assert_eq!(net.param_count(), 3 * 3 * 3 * 4 + 4);

    // kernel_size as one integer, strides = 2 (valid): (9 - 3) / 2 + 1 = 4.
    let net = sequential![Conv2D(4, 3, strides = 2, input_shape = (9, 9, 3))];
    assert_eq!(outputs(&net), [[4, 4, 4]]);

    // strides = (2, 1), same: ceil(9 / 2) = 5 rows, 9 columns.
    let net = sequential![Input(9, 9, 3) => Conv2D(4, (3, 3), strides = (2, 1), padding = same)];
    assert_eq!(outputs(&net), [[5, 9, 4]]);

    // Every argument by name, Keras's positional order (filters, kernel,
    // strides, padding).
    let net = sequential![Input(9, 9, 3) => Conv2D(filters = 6, kernel_size = (2, 3), strides = (1, 2), padding = valid)];
    assert_eq!(outputs(&net), [[8, 4, 6]]);
    let net = sequential![Input(9, 9, 3) => Conv2D(6, (2, 3), (1, 2), "valid")];
    assert_eq!(outputs(&net), [[8, 4, 6]]);

    // activation = relu / "relu" on Conv2D and Dense: one layer each, and
    // the outputs are rectified.
    let x = Batch::<Shape3<U6, U6, U2>>::from_vec(
        1,
        (0..72).map(|i| (i as f32 - 36.0) / 10.0).collect(),
    )
    .unwrap();
    let net = sequential![Input(6, 6, 2) => Conv2D(8, (3, 3), activation = relu) => Flatten => Dense(5, activation = "relu")];
    assert_eq!(outputs(&net), [vec![4, 4, 8], vec![128], vec![5]]);
    assert!(net.predict(&x).as_slice().iter().all(|v| *v >= 0.0));
    let net = sequential![Input(6, 6, 2) => Conv2D(8, (3, 3), activation = "relu") => Flatten => Dense(5, activation = relu)];
    assert_eq!(outputs(&net), [vec![4, 4, 8], vec![128], vec![5]]);
    assert!(net.predict(&x).as_slice().iter().all(|v| *v >= 0.0));

    // use_bias = false: no bias parameter.
    let net = sequential![Input(6, 6, 2) => Conv2D(8, (3, 3), use_bias = false) => Flatten => Dense(5, use_bias = false)];
    let names: Vec<String> = net.params().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["0.weight", "2.weight"]);
    assert_eq!(net.param_count(), 3 * 3 * 2 * 8 + 128 * 5);

    // Activation(relu), Activation("tanh"), and the bare sigmoid/tanh/linear.
    let net = sequential![Input(10) => Dense(4) => Activation(relu) => Dense(4) => Activation("tanh") => Dense(3) => sigmoid => tanh => linear];
    assert_eq!(outputs(&net), [[4], [4], [4], [4], [3], [3], [3], [3]]);
    let kinds: Vec<String> = net.summary().rows.into_iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            "Dense",
            "Activation",
            "Dense",
            "Activation",
            "Dense",
            "Activation",
            "Activation",
            "Activation"
        ]
    );
    let x = Batch::<Shape1<U10>>::from_vec(1, (0..10).map(|i| i as f32 - 4.5).collect()).unwrap();
    // tanh of a sigmoid is in (tanh 0, tanh 1).
    assert!(net
        .predict(&x)
        .as_slice()
        .iter()
        .all(|v| *v > 0.0 && *v < 0.77));
    let net = sequential![Input(3) => Dense(2, activation = sigmoid)];
    assert_eq!(
        net.predict(&Batch::<Shape1<U3>>::zeros(1)).as_slice(),
        &[0.5, 0.5]
    );
    let net = sequential![Input(3) => Dense(2, activation = tanh)];
    assert_eq!(
        net.predict(&Batch::<Shape1<U3>>::zeros(1)).as_slice(),
        &[0.0, 0.0]
    );
    let net = sequential![Input(3) => Dense(2, activation = linear)];
    assert_eq!(outputs(&net), [[2]]);

    // Pooling, Keras's names and arguments.
    let net = sequential![Input(9, 9, 3) => MaxPooling2D(pool_size = (2, 2), strides = (1, 1), padding = same)];
    assert_eq!(outputs(&net), [[9, 9, 3]]);
    let net = sequential![Input(9, 9, 3) => MaxPooling2D(pool_size = (2, 2), strides = (1, 1))];
    assert_eq!(outputs(&net), [[8, 8, 3]]);
    let net = sequential![Input(9, 9, 3) => MaxPooling2D((3, 3), (2, 2), "same")];
    assert_eq!(outputs(&net), [[5, 5, 3]]);
    let net = sequential![Input(9, 9, 3) => AveragePooling2D];
    assert_eq!(outputs(&net), [[4, 4, 3]]);
    let net = sequential![Input(9, 9, 3) => AveragePooling2D(pool_size = 3, padding = "same")];
    assert_eq!(outputs(&net), [[3, 3, 3]]);
    let net = sequential![Input(9, 9, 3) => AvgPool(3, 3)];
    assert_eq!(outputs(&net), [[3, 3, 3]]);
    let y = net.predict(&Batch::<Shape3<U9, U9, U3>>::filled(1, 2.0));
    assert!(y.as_slice().iter().all(|v| (*v - 2.0).abs() < 1e-6));
    let kinds: Vec<String> = sequential![Input(4, 4, 1) => MaxPool(2, 2) => AvgPool(2, 2)]
        .summary()
        .rows
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(kinds, ["MaxPooling2D", "AveragePooling2D"]);

    // Vector inputs: Input(10) and input_shape = (10,).
    let net = sequential![Input(10) => Dense(4)];
    assert_eq!(outputs(&net), [[4]]);
    assert_eq!(net.param_count(), 44);
    let net = sequential![Dense(4, input_shape = (10,))];
    assert_eq!(outputs(&net), [[4]]);
    assert_eq!(net.summary().input, [10]);
    let _: Batch<Shape1<U4>> = net.predict(&Batch::<Shape1<U10>>::zeros(3));
}
