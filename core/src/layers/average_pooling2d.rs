//! `AveragePooling2D`: the mean of each window (Keras's `AveragePooling2D`).
//!
//! Arguments, defaults and shape: see [`super::pooling2d`].
//!
//! Computation: under 'same', a border window averages over the cells that
//! lie inside the input only, as Keras does (padding is not counted); the
//! gradient is shared equally among those cells.

use super::pooling2d::{PoolKind, Pooling2D};
use crate::kernels::pool::{avg_pool2d_backward, pool2d_threaded};
use crate::kernels::ConvGeometry;

/// The mean of a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Average;

impl PoolKind for Average {
    const NAME: &'static str = "AveragePooling2D";
    const KEEPS_INPUT: bool = false;
    const ONNX_OP: &'static str = "AveragePool";

    fn forward(g: &ConvGeometry, input: &[f32], output: &mut [f32], threads: usize) {
        pool2d_threaded(g, input, output, false, threads);
    }

    fn backward(
        g: &ConvGeometry,
        _: Option<&[f32]>,
        grad_output: &[f32],
        grad_input: &mut [f32],
        _threads: usize,
    ) {
        avg_pool2d_backward(g, grad_output, grad_input);
    }
}

/// Average pooling over `In` (a [`Shape3`](crate::Shape3)) with a `PH × PW`
/// window, strides `SH × SW` and padding `P`.
///
/// In `sequential!`: `AveragePooling2D((2, 2))` or `AvgPool(2, 2)`.
///
/// ```
/// use strata_core::typenum::{U1, U2, U4};
/// use strata_core::{AveragePooling2D, Batch, Model, Shape3, Valid};
///
/// // A 2x2 window at strides 2x2 over one 4x4 channel holding 0, 1, ..., 15.
/// let pool = AveragePooling2D::<Shape3<U4, U4, U1>, U2, U2, U2, U2, Valid>::new();
/// let x = Batch::from_vec(1, (0..16).map(|v| v as f32).collect()).unwrap();
/// assert_eq!(pool.predict(&x).as_slice(), [2.5, 4.5, 10.5, 12.5]);
/// ```
pub type AveragePooling2D<In, PH, PW, SH, SW, P> = Pooling2D<In, PH, PW, SH, SW, P, Average>;

/// Keras's alias.
pub type AvgPool2D<In, PH, PW, SH, SW, P> = AveragePooling2D<In, PH, PW, SH, SW, P>;
