use strata::prelude::*;

fn main() {
    let _a = sequential![Input(28, 28) => Flatten => Dense(10)];
    let _b = sequential![Dense(10, input_shape = (28, 28))];
}
