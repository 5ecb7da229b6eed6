use strata::prelude::*;

fn main() {
    let _a = sequential![Input(8, 8, 3) => GlobalAveragePooling2D(keepdims = true)];
    let _b = sequential![Input(8, 8, 3) => GlobalMaxPooling2D(data_format = "channels_first")];
}
