use strata::prelude::*;

fn main() {
    let _net = sequential![Input(64) => Dense(16) => MaxPool(2, 2)];
}
