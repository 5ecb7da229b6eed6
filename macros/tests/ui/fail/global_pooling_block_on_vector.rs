use strata::prelude::*;

fn main() {
    // No input shape: the macro cannot see the rank; the type-level rule
    // (Spatial) rejects a vector when the block is used.
    let head = sequential![GlobalAveragePooling2D];
    let _y = head.predict(&Batch::<Shape1<U10>>::zeros(1));
}
