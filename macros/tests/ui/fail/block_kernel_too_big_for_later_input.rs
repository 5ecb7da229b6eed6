use strata::prelude::*;

fn main() {
    // No input shape: the macro cannot see that 5x5 does not fit 3x3, so
    // the type-level rule (WindowOut) is what rejects it.
    let b = sequential![Conv2D(4, (5, 5))];
    let x = Batch::<Shape3<U3, U3, U1>>::zeros(1);
    b.predict(&x);
}
