use strata::prelude::*;

fn main() {
    let _a = sequential![Input(8, 8, 3) => Conv2D(4, (0, 3))];
    let _b = sequential![Input(8, 8, 3) => Conv2D(4, (3, 3), strides = (1, 0))];
    let _c = sequential![Input(8, 8, 3) => MaxPool(0, 2, strides = (2, 2))];
    let _d = sequential![Input(8, 8, 3) => AveragePooling2D(pool_size = 2, strides = 0)];
}
