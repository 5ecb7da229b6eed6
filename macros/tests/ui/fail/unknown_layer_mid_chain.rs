// An unknown layer in the middle: reported once, and the layers after it are
// not checked against a guessed shape (no false second error).
use strata::prelude::*;

fn main() {
    let _net = sequential![
        Input(8, 8, 3) => Conv2D(4, (3, 3)) => UpSampling2D(2) => Conv2D(4, (7, 7))
    ];
}
