//! `AveragePooling2D`: the mean of each window (Keras's `AveragePooling2D`).
//!
//! Arguments and defaults: `pool_size = (2, 2)`, `strides = pool_size`,
//! `padding = 'valid'`.
//!
//! Shape: `(H, W, C) -> (Ho, Wo, C)` by the same rule as `Conv2D`.
//!
//! Computation: under 'same', a border window averages over the cells that
//! lie inside the input only, as Keras does (padding is not counted).

use core::marker::PhantomData;

use typenum::Unsigned;

use super::max_pooling2d::pool_geometry;
use crate::batch::Batch;
use crate::kernels::grad::avg_pool2d_backward;
use crate::kernels::pool::pool2d_threaded;
use crate::layer::{Context, Layer};
use crate::shape::{PaddingMode, Shape3, TypeMarker, WindowLen, WindowOut};

/// Average pooling over `In` (a [`Shape3`]) with a `PH × PW` window, strides
/// `SH × SW` and padding `P`.
pub struct AveragePooling2D<In, PH, PW, SH, SW, P>(TypeMarker<(In, PH, PW, SH, SW, P)>);

/// Keras's alias.
pub type AvgPool2D<In, PH, PW, SH, SW, P> = AveragePooling2D<In, PH, PW, SH, SW, P>;

impl<In, PH, PW, SH, SW, P> AveragePooling2D<In, PH, PW, SH, SW, P> {
    /// The layer (it has no parameters).
    pub fn new() -> Self {
        AveragePooling2D(PhantomData)
    }
}

impl<In, PH, PW, SH, SW, P> Default for AveragePooling2D<In, PH, PW, SH, SW, P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H, W, C, PH, PW, SH, SW, P> Layer for AveragePooling2D<Shape3<H, W, C>, PH, PW, SH, SW, P>
where
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    PH: Unsigned,
    PW: Unsigned,
    SH: Unsigned,
    SW: Unsigned,
    P: PaddingMode + WindowOut<H, PH, SH> + WindowOut<W, PW, SW>,
{
    type Input = Shape3<H, W, C>;
    type Output = Shape3<WindowLen<H, PH, SH, P>, WindowLen<W, PW, SW, P>, C>;

    fn kind(&self) -> &'static str {
        "AveragePooling2D"
    }

    fn forward_into(
        &self,
        input: &Batch<Self::Input>,
        out: &mut Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) {
        let g = pool_geometry::<H, W, C, PH, PW, SH, SW, P>(input.batch_size());
        out.resize(input.batch_size());
        pool2d_threaded(
            &g,
            input.as_slice(),
            out.as_mut_slice(),
            false,
            ctx.threads(),
        );
    }

    fn backward(
        &mut self,
        grad_output: &Batch<Self::Output>,
        _: &mut Context<'_>,
    ) -> Batch<Self::Input> {
        let g = pool_geometry::<H, W, C, PH, PW, SH, SW, P>(grad_output.batch_size());
        let mut grad_input = Batch::zeros(grad_output.batch_size());
        avg_pool2d_backward(&g, grad_output.as_slice(), grad_input.as_mut_slice());
        grad_input
    }
}
