//! The Keras 3 activations in every spelling: bare, `Activation(...)` with
//! a name or a string, `activation = ...` on Conv2D and Dense, the aliases
//! (swish, hard_swish), `ReLU(max_value = 6)`, and the `LeakyReLU` layer
//! with its default slope, a positional one and Keras 2's `alpha`.
use strata::prelude::*;

fn kinds<M: Model>(net: &M) -> Vec<String> {
    net.summary().rows.into_iter().map(|r| r.kind).collect()
}

fn main() {
    let x =
        Batch::<Shape1<U8>>::from_vec(1, vec![-8.0, -3.0, -1.0, -0.5, 0.0, 0.5, 3.0, 8.0]).unwrap();
    let through = |y: Batch<Shape1<U8>>| y.into_vec();

    // Aliases are the same function.
    let silu = sequential![Input(8) => silu];
    let swish = sequential![Input(8) => Activation(swish)];
    assert_eq!(through(silu.predict(&x)), through(swish.predict(&x)));
    let hard_silu = sequential![Input(8) => Activation("hard_silu")];
    let hard_swish = sequential![Input(8) => Activation("hard_swish")];
    assert_eq!(
        through(hard_silu.predict(&x)),
        through(hard_swish.predict(&x))
    );
    assert_eq!(
        through(hard_swish.predict(&x)),
        [
            -0.0,
            -0.0,
            -1.0 / 3.0,
            -0.5 * 2.5 / 6.0,
            0.0,
            0.5 * 3.5 / 6.0,
            3.0,
            8.0
        ]
    );

    // ReLU(max_value = 6) is relu6; ReLU alone is relu.
    let x6 =
        Batch::<Shape1<U8>>::from_vec(1, vec![-1.0, 0.0, 5.0, 6.0, 7.0, 100.0, 2.0, 1.0]).unwrap();
    let capped = [0.0, 0.0, 5.0, 6.0, 6.0, 6.0, 2.0, 1.0];
    assert_eq!(
        through(sequential![Input(8) => ReLU(max_value = 6)].predict(&x6)),
        capped
    );
    assert_eq!(
        through(sequential![Input(8) => ReLU(6.0)].predict(&x6)),
        capped
    );
    assert_eq!(through(sequential![Input(8) => relu6].predict(&x6)), capped);
    assert_eq!(
        through(sequential![Input(8) => ReLU].predict(&x6))[5],
        100.0
    );

    // The LeakyReLU layer: default 0.3, a slope given by position, by name,
    // or as Keras 2's alpha; the leaky_relu function's slope is 0.2.
    let neg = Batch::<Shape1<U1>>::from_vec(1, vec![-10.0]).unwrap();
    let at = |y: Batch<Shape1<U1>>| y.as_slice()[0];
    assert_eq!(at(sequential![Input(1) => LeakyReLU].predict(&neg)), -3.0);
    assert_eq!(
        at(sequential![Input(1) => LeakyReLU(0.1)].predict(&neg)),
        -1.0
    );
    assert_eq!(
        at(sequential![Input(1) => LeakyReLU(negative_slope = 0.5)].predict(&neg)),
        -5.0
    );
    assert_eq!(
        at(sequential![Input(1) => LeakyReLU(alpha = 0)].predict(&neg)),
        0.0
    );
    assert_eq!(at(sequential![Input(1) => leaky_relu].predict(&neg)), -2.0);

    // As activation = ... on Conv2D and Dense, one layer each.
    let net = sequential![
        Input(6, 6, 2) => Conv2D(4, (3, 3), activation = gelu) => mish => Flatten
        => Dense(8, activation = "hard_swish") => LeakyReLU => Dense(3, activation = log_softmax)
    ];
    assert_eq!(
        kinds(&net),
        [
            "Conv2D",
            "Activation",
            "Flatten",
            "Dense",
            "LeakyReLU",
            "Dense"
        ]
    );
    let y = net.predict(&Batch::<Shape3<U6, U6, U2>>::filled(2, 0.5));
    for row in y.as_slice().chunks(3) {
        let total: f32 = row.iter().map(|v| v.exp()).sum();
        assert!(
            (total - 1.0).abs() < 1e-5,
            "log_softmax rows are log-probabilities"
        );
    }

    // Every name, standalone.
    let net = sequential![
        Input(8) => relu6 => elu => selu => gelu => silu => swish => hard_sigmoid => hard_silu
        => hard_swish => softplus => softsign => mish => leaky_relu => log_softmax
    ];
    assert_eq!(net.summary().rows.len(), 14);
    assert!(net
        .predict(&x)
        .as_slice()
        .iter()
        .all(|v| v.is_finite() && *v < 0.0));
}
