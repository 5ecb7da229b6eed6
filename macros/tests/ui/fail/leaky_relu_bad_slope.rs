use strata::prelude::*;

fn main() {
    // Keras rejects a negative slope; 1e39 is not a finite f32.
    let _net = sequential![
        Input(16) => LeakyReLU(negative_slope = -0.1) => Dense(8) => LeakyReLU(alpha = 1e39)
    ];
    // Keras 2's alias and Keras 3's name together.
    let _net = sequential![Input(16) => LeakyReLU(negative_slope = 0.1, alpha = 0.1)];
}
