use strata::prelude::*;

fn main() {
    let _a = sequential![Conv2D(8, (3, 3)) => Flatten => Dense(10, input_shape = (72,))];
    let _b = sequential![Input(8, 8, 3) => Conv2D(8, (3, 3), input_shape = (8, 8, 3))];
}
