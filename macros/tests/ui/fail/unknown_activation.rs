use strata::prelude::*;

fn main() {
    let _net = sequential![Input(32, 32, 3) => Conv2D(32, (3, 3), activation = relux)];
}
