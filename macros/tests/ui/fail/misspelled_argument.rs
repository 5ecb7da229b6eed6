use strata::prelude::*;

fn main() {
    let _a = sequential![Input(32, 32, 3) => Conv2D(32, (3, 3), paddding = same)];
    let _b = sequential![Input(32, 32, 3) => MaxPool(2, 2, stride = 2)];
    let _c = sequential![Input(10) => Dense(4, activaton = relu)];
}
