use strata::prelude::*;

fn main() {
    let head = sequential![GlobalMaxPooling2D => Dense(2)];
    let _net = sequential![Input(16) => Dense(8) => { head }];
}
