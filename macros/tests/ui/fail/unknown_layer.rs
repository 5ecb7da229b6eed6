use strata::prelude::*;

fn main() {
    let _net = sequential![Input(16, 16, 3) => Conv3D(4, (3, 3, 3)) => Flatten => Dense(10)];
}
