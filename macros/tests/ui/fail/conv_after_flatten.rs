use strata::prelude::*;

fn main() {
    let _net = sequential![Input(8, 8, 3) => Flatten => Conv2D(4, (3, 3))];
}
