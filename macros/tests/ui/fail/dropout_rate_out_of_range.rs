use strata::prelude::*;

fn main() {
    // All three are reported at once.
    let _net = sequential![
        Input(16) => Dropout(1.0) => Dense(8) => Dropout(1.5) => Dense(4) => Dropout(-0.1)
    ];
}
