use strata::prelude::*;

fn main() {
    let _block = sequential![Flatten => Conv2D(4, (3, 3))];
}
