//! The layers, one file each, in Keras's words.

pub mod average_pooling2d;
pub mod conv2d;
pub mod dense;
pub mod dropout;
pub mod flatten;
pub mod max_pooling2d;

/// Makes `v` hold `len` values, zeroing it if it had to grow: gradient
/// buffers start empty (inference never needs them) and appear on first use.
pub(crate) fn grow_zeroed(v: &mut Vec<f32>, len: usize) {
    if v.len() != len {
        v.clear();
        v.resize(len, 0.0);
    }
}

pub use average_pooling2d::{AveragePooling2D, AvgPool2D};
pub use conv2d::Conv2D;
pub use dense::Dense;
pub use dropout::{Dropout, RateError};
pub use flatten::Flatten;
pub use max_pooling2d::{MaxPool2D, MaxPooling2D};
