//! `MaxPooling2D`: the largest value of each window (Keras's `MaxPooling2D`).
//!
//! Arguments, defaults and shape: see [`super::pooling2d`].
//!
//! Computation: under 'same', padding cells never win (they act as -inf); a
//! NaN in a window wins, so it is not hidden. The gradient goes to the
//! first largest cell of each window, found again from the kept input.

use super::pooling2d::{PoolKind, Pooling2D};
use crate::kernels::pool::{max_pool2d_backward_threaded, pool2d_threaded};
use crate::kernels::ConvGeometry;

/// The max of a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Max;

impl PoolKind for Max {
    const NAME: &'static str = "MaxPooling2D";
    const KEEPS_INPUT: bool = true;
    const ONNX_OP: &'static str = "MaxPool";

    fn forward(g: &ConvGeometry, input: &[f32], output: &mut [f32], threads: usize) {
        pool2d_threaded(g, input, output, true, threads);
    }

    fn backward(
        g: &ConvGeometry,
        input: Option<&[f32]>,
        grad_output: &[f32],
        grad_input: &mut [f32],
        threads: usize,
    ) {
        let input = input.expect("max pooling keeps its input");
        max_pool2d_backward_threaded(g, input, grad_output, grad_input, threads);
    }
}

/// Max pooling over `In` (a [`Shape3`](crate::Shape3)) with a `PH × PW`
/// window, strides `SH × SW` and padding `P`.
///
/// In `sequential!`: `MaxPooling2D((2, 2))` or `MaxPool(2, 2)`.
///
/// ```
/// use strata_core::typenum::{U1, U2, U4};
/// use strata_core::{Batch, MaxPooling2D, Model, Shape3, Valid};
///
/// // A 2x2 window at strides 2x2 over one 4x4 channel holding 0, 1, ..., 15.
/// let pool = MaxPooling2D::<Shape3<U4, U4, U1>, U2, U2, U2, U2, Valid>::new();
/// let x = Batch::from_vec(1, (0..16).map(|v| v as f32).collect()).unwrap();
/// assert_eq!(pool.predict(&x).as_slice(), [5.0, 7.0, 13.0, 15.0]);
/// ```
pub type MaxPooling2D<In, PH, PW, SH, SW, P> = Pooling2D<In, PH, PW, SH, SW, P, Max>;

/// Keras's alias.
pub type MaxPool2D<In, PH, PW, SH, SW, P> = MaxPooling2D<In, PH, PW, SH, SW, P>;
