//! # strata
//!
//! Keras-style convolutional networks in one macro, with every tensor shape
//! a type.
//!
//! ```
//! use strata::prelude::*;
//!
//! let net = sequential![
//!     Conv2D(32, (3, 3), padding = same, input_shape = (32, 32, 3)) => relu
//!     => Conv2D(32, (3, 3)) => relu => MaxPool(2, 2) => Dropout(0.25)
//!     => Flatten => Dense(10) => softmax
//! ];
//! let x = Batch::<Shape3<U32, U32, U3>>::zeros(2);
//! let y: Batch<Shape1<U10>> = net.predict(&x);
//! assert_eq!(y.batch_size(), 2);
//! ```
//!
//! See the README for the grammar of `sequential!`, the shape rules and the
//! weight-file convention.

#![warn(missing_docs)]

extern crate self as strata;

pub use strata_core::*;
pub use strata_macros::sequential;

/// Everything a model definition needs: `use strata::prelude::*;`.
pub mod prelude {
    pub use strata_core::datasets;
    pub use strata_core::typenum::consts::*;
    pub use strata_core::{
        seeded_rng, Adam, Batch, Evaluation, FitOptions, Gradients, History, Layer, LoadError,
        Loss, Model, Padding, SaveError, Sgd, Shape, Shape1, Shape3, ShapeError, StepDecay,
        Summary, TrainError, Trainer, DEFAULT_SEED,
    };
    pub use strata_macros::sequential;
}

/// What `sequential!` expansions refer to. Not a public API.
#[doc(hidden)]
pub mod __macro_support {
    pub use strata_core::activation::*;
    pub use strata_core::layers::*;
    pub use strata_core::rand::RngCore;
    pub use strata_core::tensor::{VisitPath, Visitor, VisitorMut};
    pub use strata_core::typenum::consts::*;
    pub use strata_core::typenum::{UInt, UTerm, B0, B1};
    pub use strata_core::{
        seeded_rng, Activation, Batch, Context, Layer, Linear, Relu, Same, Shape, Shape1, Shape3,
        Sigmoid, Softmax, SummaryRow, Tanh, Valid, DEFAULT_SEED,
    };

    /// Stands in for the model after a `sequential!` error, so that the
    /// macro's own message is the only one.
    pub fn invalid_model<T>() -> T {
        unreachable!("sequential! reported a compile error")
    }
}
