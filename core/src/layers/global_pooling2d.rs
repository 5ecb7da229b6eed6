//! `GlobalAveragePooling2D` and `GlobalMaxPooling2D`: one value per channel
//! (Keras's layers of those names; PyTorch's `AdaptiveAvgPool2d(1)` /
//! `AdaptiveMaxPool2d(1)` followed by `Flatten`).
//!
//! Arguments: none (Keras's `keepdims = False`, channels last).
//!
//! Shape: `(H, W, C) -> (C)`. Only a 3-D input has a height and width to
//! pool over ([`Spatial`]), so a vector input is a type error.
//!
//! Computation: the mean, or the max, of each channel over all `H·W`
//! positions. The max propagates a NaN, as `MaxPooling2D` does, and its
//! gradient goes to the first largest position; the mean's gradient is
//! shared equally among all positions.

use core::marker::PhantomData;


use super::{Average, Max};
use crate::batch::Batch;
use crate::kernels::pool::global;
use crate::layer::{Context, Layer};
use crate::shape::{Shape1, Spatial, TypeMarker};

/// What global pooling computes per channel: see [`Max`] and [`Average`].
pub trait GlobalPoolKind: 'static {
    /// Keras's name of the layer.
    const NAME: &'static str;
    /// Whether the backward pass needs the forward pass's input.
    const KEEPS_INPUT: bool;
    /// Reduces each of `images` images of `positions × channels` values to
    /// `channels` values, the images shared among up to `threads` threads.
    fn forward(
        dims: global::Dims,
        input: &[f32],
        output: &mut [f32],
        threads: usize,
    );
    /// Writes the input's gradient from the output's.
    fn backward(
        dims: global::Dims,
        input: Option<&[f32]>,
        grad_output: &[f32],
        grad_input: &mut [f32],
    );
}

impl GlobalPoolKind for Average {
    const NAME: &'static str = "GlobalAveragePooling2D";
    const KEEPS_INPUT: bool = false;

    fn forward(dims: global::Dims, input: &[f32], output: &mut [f32], threads: usize) {
        global::avg_forward(dims, input, output, threads);
    }

    fn backward(dims: global::Dims, _: Option<&[f32]>, grad_output: &[f32], grad_input: &mut [f32]) {
        global::avg_backward(dims, grad_output, grad_input);
    }
}

impl GlobalPoolKind for Max {
    const NAME: &'static str = "GlobalMaxPooling2D";
    const KEEPS_INPUT: bool = true;

    fn forward(dims: global::Dims, input: &[f32], output: &mut [f32], threads: usize) {
        global::max_forward(dims, input, output, threads);
    }

    fn backward(dims: global::Dims, input: Option<&[f32]>, grad_output: &[f32], grad_input: &mut [f32]) {
        let input = input.expect("global max pooling keeps its input");
        global::max_backward(dims, input, grad_output, grad_input);
    }
}

/// Global pooling of kind `K` over `In` (a [`Shape3`](crate::Shape3)).
pub struct GlobalPooling2D<In, K>(TypeMarker<(In, K)>);

/// The mean of each channel: `(H, W, C) -> (C)`.
pub type GlobalAveragePooling2D<In> = GlobalPooling2D<In, Average>;

/// The max of each channel: `(H, W, C) -> (C)`.
pub type GlobalMaxPooling2D<In> = GlobalPooling2D<In, Max>;

/// Keras's alias.
pub type GlobalAvgPool2D<In> = GlobalAveragePooling2D<In>;

/// Keras's alias.
pub type GlobalMaxPool2D<In> = GlobalMaxPooling2D<In>;

impl<In, K> GlobalPooling2D<In, K> {
    /// The layer (it has no parameters).
    pub fn new() -> Self {
        GlobalPooling2D(PhantomData)
    }
}

impl<In, K> Default for GlobalPooling2D<In, K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<In: Spatial, K: GlobalPoolKind> GlobalPooling2D<In, K> {
    fn dims(images: usize) -> global::Dims {
        global::Dims {
            images,
            positions: In::NUMEL / In::LAST.max(1),
            channels: In::LAST,
        }
    }
}

impl<In: Spatial, K: GlobalPoolKind> Layer for GlobalPooling2D<In, K> {
    type Input = In;
    type Output = Shape1<In::Channels>;
    /// The input, for the kinds whose backward pass needs it.
    type Tape = Option<Batch<In>>;

    fn kind(&self) -> &'static str {
        K::NAME
    }

    fn forward_into(&self, input: &Batch<In>, out: &mut Batch<Self::Output>, ctx: &mut Context<'_>) {
        out.resize(input.batch_size());
        let dims = Self::dims(input.batch_size());
        K::forward(dims, input.as_slice(), out.as_mut_slice(), ctx.threads());
    }

    fn forward_taped(&mut self, input: Batch<In>, ctx: &mut Context<'_>) -> (Batch<Self::Output>, Self::Tape) {
        let mut out = ctx.take_batch(input.batch_size());
        self.forward_into(&input, &mut out, ctx);
        let tape = if K::KEEPS_INPUT {
            Some(input)
        } else {
            ctx.recycle(input);
            None
        };
        (out, tape)
    }

    fn backward(&mut self, input: Self::Tape, grad_output: Batch<Self::Output>, ctx: &mut Context<'_>) -> Batch<In> {
        let mut grad_input = ctx.take_batch(grad_output.batch_size());
        let dims = Self::dims(grad_output.batch_size());
        K::backward(
            dims,
            input.as_ref().map(Batch::as_slice),
            grad_output.as_slice(),
            grad_input.as_mut_slice(),
        );
        if let Some(input) = input {
            ctx.recycle(input);
        }
        ctx.recycle(grad_output);
        grad_input
    }
}
