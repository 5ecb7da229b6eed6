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

/// Calls `f(parameter, gradient)` for a kernel and its optional bias, the
/// gradient buffers grown to size first: what `visit_params_mut` does for
/// every layer with a kernel and a bias.
pub(crate) fn visit_kernel_and_bias(
    (kernel, grad_kernel): (&mut [f32], &mut Vec<f32>),
    (bias, grad_bias): (Option<&mut Vec<f32>>, &mut Vec<f32>),
    f: &mut dyn FnMut(&mut [f32], &[f32]),
) {
    grow_zeroed(grad_kernel, kernel.len());
    f(kernel, grad_kernel);
    if let Some(b) = bias {
        grow_zeroed(grad_bias, b.len());
        f(b, grad_bias);
    }
}

/// A gradient buffer's values, or `len` zeros if no backward pass has run.
pub(crate) fn grad_or_zeros(grad: &[f32], len: usize) -> Vec<f32> {
    if grad.is_empty() {
        vec![0.0; len]
    } else {
        grad.to_vec()
    }
}

pub use average_pooling2d::{AveragePooling2D, AvgPool2D};
pub use conv2d::Conv2D;
pub use dense::Dense;
pub use dropout::{Dropout, RateError};
pub use flatten::Flatten;
pub use max_pooling2d::{MaxPool2D, MaxPooling2D};
