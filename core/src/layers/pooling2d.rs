//! What `MaxPooling2D` and `AveragePooling2D` share: a window slid over
//! height and width, channel by channel, Keras's `Pooling2D` base.
//!
//! Arguments and defaults: `pool_size = (2, 2)`, `strides = pool_size`,
//! `padding = 'valid'`.
//!
//! Shape: `(H, W, C) -> (Ho, Wo, C)` by the same rule as `Conv2D`.
//!
//! The layer is [`Pooling2D`], generic over what a window computes
//! ([`PoolKind`]); each kind's file says what it computes.

use core::marker::PhantomData;

use typenum::Unsigned;

use super::{backward_from_input, forward_keeping_input, window_geometry};
use crate::batch::Batch;
use crate::fusion::SliceLayer;
use crate::kernels::ConvGeometry;
use crate::layer::{Context, Layer};
use crate::onnx::{ExportError, OnnxGraph};
use crate::shape::{PaddingMode, Shape3, TypeMarker, WindowLen, WindowOut};

/// What a pooling window computes: the max, the mean.
pub trait PoolKind: 'static {
    /// Keras's name of the layer.
    const NAME: &'static str;
    /// Whether the backward pass needs the forward pass's input.
    const KEEPS_INPUT: bool;
    /// The ONNX operator (`MaxPool`, `AveragePool`).
    const ONNX_OP: &'static str;
    /// Pools each window of `input` into `output`, the batch's images
    /// shared among up to `threads` threads.
    fn forward(g: &ConvGeometry, input: &[f32], output: &mut [f32], threads: usize);
    /// Writes the gradient of the input, given the output's; `input` is the
    /// forward pass's when [`PoolKind::KEEPS_INPUT`]. The batch's images may
    /// be shared among up to `threads` threads.
    fn backward(
        g: &ConvGeometry,
        input: Option<&[f32]>,
        grad_output: &[f32],
        grad_input: &mut [f32],
        threads: usize,
    );
}

/// Pooling over `In` (a [`Shape3`]) with a `PH × PW` window, strides
/// `SH × SW`, padding `P` and kind `K`.
///
/// Written through its aliases: [`MaxPooling2D`](crate::MaxPooling2D) and
/// [`AveragePooling2D`](crate::AveragePooling2D) (see their examples).
pub struct Pooling2D<In, PH, PW, SH, SW, P, K>(TypeMarker<(In, PH, PW, SH, SW, P, K)>);

impl<In, PH, PW, SH, SW, P, K> Pooling2D<In, PH, PW, SH, SW, P, K> {
    /// The layer (it has no parameters).
    pub fn new() -> Self {
        Pooling2D(PhantomData)
    }
}

impl<In, PH, PW, SH, SW, P, K> Default for Pooling2D<In, PH, PW, SH, SW, P, K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H, W, C, PH, PW, SH, SW, P, K> SliceLayer for Pooling2D<Shape3<H, W, C>, PH, PW, SH, SW, P, K>
where
    Self: Layer,
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    PH: Unsigned,
    PW: Unsigned,
    SH: Unsigned,
    SW: Unsigned,
    P: PaddingMode + WindowOut<H, PH, SH> + WindowOut<W, PW, SW>,
    K: PoolKind,
{
    fn forward_slices(&self, input: &[f32], images: usize, out: &mut [f32], ctx: &mut Context<'_>) {
        let g = window_geometry::<H, W, C, PH, PW, SH, SW, P>(images);
        let out_len = g.out_pixels() * C::USIZE;
        assert!(
            input.len() >= g.input_len() && out.len() >= out_len,
            "{}: slices shorter than {images} images",
            K::NAME
        );
        K::forward(&g, &input[..g.input_len()], &mut out[..out_len], ctx.threads());
    }
}

impl<H, W, C, PH, PW, SH, SW, P, K> Layer for Pooling2D<Shape3<H, W, C>, PH, PW, SH, SW, P, K>
where
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    PH: Unsigned,
    PW: Unsigned,
    SH: Unsigned,
    SW: Unsigned,
    P: PaddingMode + WindowOut<H, PH, SH> + WindowOut<W, PW, SW>,
    K: PoolKind,
{
    type Input = Shape3<H, W, C>;
    type Output = Shape3<WindowLen<H, PH, SH, P>, WindowLen<W, PW, SW, P>, C>;
    /// The input, for the kinds whose backward pass needs it.
    type Tape = Option<Batch<Self::Input>>;

    fn kind(&self) -> &'static str {
        K::NAME
    }

    fn forward_into(
        &self,
        input: &Batch<Self::Input>,
        out: &mut Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) {
        out.resize(input.batch_size());
        self.forward_slices(input.as_slice(), input.batch_size(), out.as_mut_slice(), ctx);
    }

    fn forward_taped(
        &mut self,
        input: Batch<Self::Input>,
        ctx: &mut Context<'_>,
    ) -> (Batch<Self::Output>, Self::Tape) {
        forward_keeping_input(self, K::KEEPS_INPUT, input, ctx)
    }

    fn backward(
        &mut self,
        input: Self::Tape,
        grad_output: Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) -> Batch<Self::Input> {
        let g = window_geometry::<H, W, C, PH, PW, SH, SW, P>(grad_output.batch_size());
        let threads = ctx.threads();
        backward_from_input(input, grad_output, ctx, |input, grad_output, grad_input| {
            K::backward(&g, input, grad_output, grad_input, threads)
        })
    }

    /// The kind's pooling operator with Keras's padding as explicit pads
    /// (which ONNX, like Keras, leaves out of maxima and averages).
    fn export_onnx(&self, g: &mut OnnxGraph, input: &str) -> Result<String, ExportError> {
        g.pool(
            K::ONNX_OP,
            input,
            &window_geometry::<H, W, C, PH, PW, SH, SW, P>(1),
        )
    }
}
