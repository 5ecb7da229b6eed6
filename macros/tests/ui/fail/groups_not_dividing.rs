use strata::prelude::*;

fn main() {
    // 6 input channels do not split into 4 groups.
    let _a = sequential![Input(8, 8, 6) => Conv2D(8, (3, 3), groups = 4)];
    // 6 filters do not split into 4 groups.
    let _b = sequential![Input(8, 8, 8) => Conv2D(6, (3, 3), groups = 4)];
    let _c = sequential![Input(8, 8, 4) => Conv2D(4, (3, 3), groups = 0, dilation_rate = 0)];
}
