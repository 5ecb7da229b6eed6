use strata::prelude::*;

fn main() {
    let _a = sequential![Input(8, 8, 3) => GlobalAveragePooling2D => ZeroPadding2D(1)];
    let _b = sequential![Input(10) => ZeroPadding2D(((0, 1), (0, 1)))];
}
