use strata::prelude::*;

fn main() {
    let _a = sequential![Input(4, 4, 3) => Reshape((5, 5, 1))];
    let _b = sequential![Input(4, 4, 3) => Conv2D(2, (3, 3)) => Reshape((9,))];
    let _c = sequential![Input(12) => Reshape((2, 2))];
}
