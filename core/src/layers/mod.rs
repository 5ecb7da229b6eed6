//! The layers, one file each, in Keras's words.
//!
//! Adding a layer: its file here (arguments, shape rule, computation and
//! tests, as the others), one line in the list below, and its description
//! in the macro crate's `layers/`.

use rand::RngCore;
use typenum::Unsigned;

use crate::activation::{activation_taped, apply_activation, ActivationFn};
use crate::batch::Batch;
use crate::init::glorot_uniform;
use crate::kernels::ConvGeometry;
use crate::layer::{Context, Layer};
use crate::shape::{PaddingMode, Shape};
use crate::tensor::Tensor;

/// Declares each layer module and re-exports what it defines.
macro_rules! layers {
    ($($module:ident,)*) => {
        $(pub mod $module;
        pub use $module::*;)*
    };
}

layers! {
    average_pooling2d,
    batch_normalization,
    conv2d,
    dense,
    depthwise_conv2d,
    dropout,
    flatten,
    global_pooling2d,
    leaky_relu,
    max_pooling2d,
    pooling2d,
    reshape,
    residual,
    separable_conv2d,
    zero_padding2d,
}

/// A layer whose output is its activation applied to a linear map of its
/// input: Conv2D, Dense, every layer taking `activation = ...`. Its
/// forward pass is `forward_activated`, its taped one `KernelTape::record`,
/// which keeps what the activation's derivative needs.
pub trait Activated: Layer {
    /// The activation applied last.
    type Activation: ActivationFn;

    /// The output before the activation, into `out` (resized to the input's
    /// batch size).
    fn forward_linear(
        &self,
        input: &Batch<Self::Input>,
        out: &mut Batch<Self::Output>,
        ctx: &mut Context<'_>,
    );
}

/// [`Layer::forward_into`] of an [`Activated`] layer: the linear map, then
/// the activation in place.
pub(crate) fn forward_activated<L: Activated>(
    layer: &L,
    input: &Batch<L::Input>,
    out: &mut Batch<L::Output>,
    ctx: &mut Context<'_>,
) {
    layer.forward_linear(input, out, ctx);
    apply_activation::<L::Activation, L::Output>(out, ctx);
}

/// What a layer with a kernel (Conv2D, Dense) keeps for its backward pass:
/// its input, and what its activation's derivative needs (its output, or
/// the value before it; nothing for linear).
pub struct KernelTape<In: Shape, Out: Shape> {
    input: Batch<In>,
    kept: Option<Batch<Out>>,
}

impl<In: Shape, Out: Shape> KernelTape<In, Out> {
    /// Runs `layer`'s forward pass, keeping the input (moved, not copied)
    /// and what the activation keeps ([`ActivationFn::KEEPS`]).
    pub(crate) fn record<L>(
        layer: &L,
        input: Batch<In>,
        ctx: &mut Context<'_>,
    ) -> (Batch<Out>, Self)
    where
        L: Activated<Input = In, Output = Out>,
    {
        let mut linear = ctx.take_batch(input.batch_size());
        layer.forward_linear(&input, &mut linear, ctx);
        let (out, kept) = activation_taped::<L::Activation, Out>(linear, ctx);
        (out, KernelTape { input, kept })
    }

    /// The input of the forward pass.
    pub(crate) fn input(&self) -> &Batch<In> {
        &self.input
    }

    /// What the activation's backward pass needs, if anything.
    pub(crate) fn kept(&self) -> Option<&[f32]> {
        self.kept.as_ref().map(Batch::as_slice)
    }

    /// Gives the tape's memory back to the context.
    pub(crate) fn recycle(self, ctx: &mut Context<'_>) {
        ctx.recycle(self.input);
        if let Some(kept) = self.kept {
            ctx.recycle(kept);
        }
    }
}

/// The geometry of a `KH × KW` window at strides `SH × SW` under padding
/// `P` over a batch of `H × W × C` images: what convolution and pooling
/// layers derive from their types.
pub(crate) fn window_geometry<H, W, C, KH, KW, SH, SW, P>(batch: usize) -> ConvGeometry
where
    H: Unsigned,
    W: Unsigned,
    C: Unsigned,
    KH: Unsigned,
    KW: Unsigned,
    SH: Unsigned,
    SW: Unsigned,
    P: PaddingMode,
{
    ConvGeometry::new(
        batch,
        (H::USIZE, W::USIZE, C::USIZE),
        (KH::USIZE, KW::USIZE),
        (SH::USIZE, SW::USIZE),
        P::PADDING,
    )
    .expect("the type-level shape rule guarantees the window fits")
}

/// The initialisation of a layer with a kernel: each tensor's chosen
/// [`Initializer`](crate::Initializer) (`kernel_initializer = ...`), else
/// Keras's defaults, a Glorot-uniform kernel from `rng` and a zero bias.
/// A bias's fans are its length, as Keras computes them for a vector.
pub(crate) fn init_kernel_and_bias(
    kernel: &mut Tensor,
    bias: Option<&mut Tensor>,
    (fan_in, fan_out): (usize, usize),
    rng: &mut dyn RngCore,
) {
    match kernel.initializer() {
        Some(init) => init.fill(kernel.values_mut(), (fan_in, fan_out), rng),
        None => glorot_uniform(kernel.values_mut(), fan_in, fan_out, rng),
    }
    if let Some(b) = bias {
        let len = b.numel();
        match b.initializer() {
            Some(init) => init.fill(b.values_mut(), (len, len), rng),
            None => b.values_mut().fill(0.0),
        }
    }
}

/// The taped forward pass of a layer whose backward pass needs at most its
/// input (pooling): the output, and the input if `keep`.
pub(crate) fn forward_keeping_input<L: Layer>(
    layer: &L,
    keep: bool,
    input: Batch<L::Input>,
    ctx: &mut Context<'_>,
) -> (Batch<L::Output>, Option<Batch<L::Input>>) {
    let mut out = ctx.take_batch(input.batch_size());
    layer.forward_into(&input, &mut out, ctx);
    if keep {
        (out, Some(input))
    } else {
        ctx.recycle(input);
        (out, None)
    }
}

/// The backward pass of a layer taped by [`forward_keeping_input`]: `f`
/// gets the kept input (if any), the output's gradient and the input's
/// gradient to write; the memory of both batches goes back to the context.
pub(crate) fn backward_from_input<In: Shape, Out: Shape>(
    input: Option<Batch<In>>,
    grad_output: Batch<Out>,
    ctx: &mut Context<'_>,
    f: impl FnOnce(Option<&[f32]>, &[f32], &mut [f32]),
) -> Batch<In> {
    let mut grad_input = ctx.take_batch(grad_output.batch_size());
    f(
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
