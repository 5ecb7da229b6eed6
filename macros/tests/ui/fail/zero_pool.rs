// A zero pool size is reported once, not again as the default stride.
use strata::prelude::*;

fn main() {
    let _net = sequential![Input(8, 8, 3) => MaxPool(0, 2)];
}
