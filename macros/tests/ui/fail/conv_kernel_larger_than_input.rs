use strata::prelude::*;

fn main() {
    let _net = sequential![Input(4, 4, 3) => Conv2D(8, (5, 5))];
}
