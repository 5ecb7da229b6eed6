use strata::prelude::*;

sequential! {
    pub struct Net = Input(8, 8, 3) => { sequential![Conv2D(4, (3, 3))] } => Flatten => Dense(2)
}

fn main() {}
