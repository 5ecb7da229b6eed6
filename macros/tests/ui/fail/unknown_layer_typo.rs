use strata::prelude::*;

fn main() {
    let _net = sequential![Input(64) => Dence(10) => softmax];
}
