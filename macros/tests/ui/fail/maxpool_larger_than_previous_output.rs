use strata::prelude::*;

fn main() {
    let _net = sequential![Input(3, 3, 1) => Conv2D(8, (3, 3)) => MaxPool(2, 2)];
}
