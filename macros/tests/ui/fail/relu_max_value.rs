use strata::prelude::*;

fn main() {
    // ReLU(max_value = 6) is relu6; other caps are not supported.
    let _net = sequential![Input(16) => ReLU(max_value = 5)];
}
