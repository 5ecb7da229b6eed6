use strata::prelude::*;

sequential! {
    /// No input shape: the macro cannot see that the branch changes the
    /// channels, the type-level rule does.
    pub struct Widening = Residual({ Conv2D(16, (3, 3), same) })
}

fn main() {
    let block = Widening::new();
    let _ = block.predict(&Batch::<Shape3<U8, U8, U4>>::zeros(1));
}
