//! `MaxPooling2D`: the largest value of each window (Keras's `MaxPooling2D`).
//!
//! Arguments and defaults: `pool_size = (2, 2)`, `strides = pool_size`,
//! `padding = 'valid'`.
//!
//! Shape: `(H, W, C) -> (Ho, Wo, C)` by the same rule as `Conv2D`.
//!
//! Computation: under 'same', padding cells never win (they act as -inf).

use core::marker::PhantomData;

use typenum::Unsigned;

use crate::batch::Batch;
use crate::kernels::grad::max_pool2d_backward;
use crate::kernels::pool::pool2d_threaded;
use crate::kernels::ConvGeometry;
use crate::layer::{Context, Layer};
use crate::shape::{PaddingMode, Shape3, TypeMarker, WindowLen, WindowOut};

/// Max pooling over `In` (a [`Shape3`]) with a `PH × PW` window, strides
/// `SH × SW` and padding `P`.
pub struct MaxPooling2D<In, PH, PW, SH, SW, P>(TypeMarker<(In, PH, PW, SH, SW, P)>);

/// Keras's alias.
pub type MaxPool2D<In, PH, PW, SH, SW, P> = MaxPooling2D<In, PH, PW, SH, SW, P>;

impl<In, PH, PW, SH, SW, P> MaxPooling2D<In, PH, PW, SH, SW, P> {
    /// The layer (it has no parameters).
    pub fn new() -> Self {
        MaxPooling2D(PhantomData)
    }
}

impl<In, PH, PW, SH, SW, P> Default for MaxPooling2D<In, PH, PW, SH, SW, P> {
    fn default() -> Self {
        Self::new()
    }
}

/// The geometry of a pooling window of `PH × PW` at `SH × SW` over `(H, W, C)`.
pub(crate) fn pool_geometry<H, W, C, PH, PW, SH, SW, P>(batch: usize) -> ConvGeometry
where
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    PH: Unsigned,
    PW: Unsigned,
    SH: Unsigned,
    SW: Unsigned,
    P: PaddingMode,
{
    ConvGeometry::new(
        batch,
        (H::USIZE, W::USIZE, C::USIZE),
        (PH::USIZE, PW::USIZE),
        (SH::USIZE, SW::USIZE),
        P::PADDING,
    )
    .expect("the type-level shape rule guarantees the window fits")
}

impl<H, W, C, PH, PW, SH, SW, P> Layer for MaxPooling2D<Shape3<H, W, C>, PH, PW, SH, SW, P>
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
        "MaxPooling2D"
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
            true,
            ctx.threads(),
        );
        // The backward pass finds each window's winner again from the input.
        if ctx.is_recording() {
            ctx.save(input.as_slice().to_vec());
        }
    }

    fn backward(
        &mut self,
        grad_output: &Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) -> Batch<Self::Input> {
        let input = ctx.restore();
        let g = pool_geometry::<H, W, C, PH, PW, SH, SW, P>(grad_output.batch_size());
        let mut grad_input = Batch::zeros(grad_output.batch_size());
        max_pool2d_backward(
            &g,
            &input,
            grad_output.as_slice(),
            grad_input.as_mut_slice(),
        );
        grad_input
    }
}
