use strata::prelude::*;

fn main() {
    let _net = sequential![Input(8, 8, 3) => Conv2D(0, (3, 3))];
}
