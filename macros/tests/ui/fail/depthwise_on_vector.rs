use strata::prelude::*;

fn main() {
    let _a = sequential![Input(8, 8, 3) => Flatten => DepthwiseConv2D((3, 3))];
    let _b = sequential![Input(16) => Dense(8) => SeparableConv2D(4, (3, 3))];
}
