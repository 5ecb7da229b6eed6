use strata::prelude::*;

fn main() {
    // 32 -> 15 -> 7 -> 3 -> 1: the fifth strided conv has nothing to slide over.
    let _net = sequential![
        Input(32, 32, 3)
            => Conv2D(8, (3, 3), strides = 2)
            => Conv2D(8, (3, 3), strides = 2)
            => Conv2D(8, (3, 3), strides = 2)
            => Conv2D(8, (3, 3), strides = 2)
            => Conv2D(8, (3, 3), strides = 2)
    ];
}
