use strata::prelude::*;

fn main() {
    let _net = sequential![
        Input(8, 8, 3) => BatchNormalization(momentum = 1.5) => BatchNormalization(epsilon = 0)
        => BatchNormalization(momentum = -0.1, epsilon = -1e-3) => BatchNormalization(axis = 1)
    ];
}
