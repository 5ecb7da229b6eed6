// A bare activation where Conv2D expects a padding gets a hint.
use strata::prelude::*;

fn main() {
    let _net = sequential![Input(8, 8, 3) => Conv2D(8, (3, 3), relu)];
}
