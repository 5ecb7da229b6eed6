use strata::prelude::*;

fn main() {
    // No input shape: the macro cannot count the values, so the type-level
    // rule (ReshapesTo) is what rejects a block given 8 values per sample.
    let b = sequential![Reshape((10,))];
    let x = Batch::<Shape3<U2, U2, U2>>::zeros(1);
    b.predict(&x);
}
