use strata::prelude::*;

fn main() {
    let _a = sequential![Input(8, 8, 3) => Flatten => GlobalAveragePooling2D];
    let _b = sequential![Input(64) => Dense(10) => GlobalMaxPooling2D => Dense(2)];
    // Without an input shape the rank is still known after Flatten.
    let _c = sequential![Flatten => GlobalAvgPool2D];
}
