//! A named model with an input shape: a plain type, nameable anywhere.
use strata::prelude::*;

sequential! {
    /// The seed network.
    #[must_use]
    pub struct Net = Input(32, 32, 3) => Conv2D(8, (3, 3), padding = same) => relu
        => MaxPool(2, 2) => Flatten => Dense(10) => softmax
}

mod inner {
    use strata::sequential;

    // No `use` of strata's names leaks into this module: the expansion
    // names them by path.
    sequential! { pub struct Tiny = Input(4) => Dense(2) }
}

fn build() -> Net {
    Net::new()
}

struct Holder {
    net: Net,
    tiny: inner::Tiny,
}

fn main() {
    let h = Holder {
        net: build(),
        tiny: inner::Tiny::default(),
    };
    let y: Batch<Shape1<U10>> = h.net.predict(&Batch::<Shape3<U32, U32, U3>>::zeros(1));
    assert_eq!(y.dims(), vec![1, 10]);
    assert_eq!(
        h.net.param_count(),
        3 * 3 * 3 * 8 + 8 + 16 * 16 * 8 * 10 + 10
    );
    let y: Batch<Shape1<U2>> = h.tiny.predict(&Batch::<Shape1<U4>>::zeros(3));
    assert_eq!(y.dims(), vec![3, 2]);
    assert_eq!(h.net.flatten_3.param_count(), 0);
}
