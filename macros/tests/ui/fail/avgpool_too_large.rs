use strata::prelude::*;

fn main() {
    // 6x6x3 -> Conv2D -> 4x4x4: a 5x5 window does not fit.
    let _a = sequential![Input(6, 6, 3) => Conv2D(4, (3, 3)) => AvgPool(5, 5)];
    // Only one axis too small: 8x3 under a (2, 4) window.
    let _b = sequential![
        Input(8, 3, 2) => AveragePooling2D(pool_size = (2, 4), strides = (2, 2))
    ];
}
