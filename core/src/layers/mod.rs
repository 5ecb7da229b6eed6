//! The layers, one file each, in Keras's words.
//!
//! Adding a layer: its file here (arguments, shape rule, computation and
//! tests, as the others), one line in the list below, and its description
//! in the macro crate's `layers/`.

use rand::RngCore;
use typenum::Unsigned;

use crate::activation::ActivationFn;
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
    conv2d,
    dense,
    dropout,
    flatten,
    global_pooling2d,
    max_pooling2d,
    pooling2d,
}

/// What a layer with a kernel (Conv2D, Dense) keeps for its backward pass:
/// its input, and its output when its activation needs it.
pub struct KernelTape<In: Shape, Out: Shape> {
    input: Batch<In>,
    output: Option<Batch<Out>>,
}

impl<In: Shape, Out: Shape> KernelTape<In, Out> {
    /// Runs `layer`'s forward pass, keeping the input (moved, not copied)
    /// and, unless `A` is linear, a copy of the output.
    pub(crate) fn record<A, L>(
        layer: &L,
        input: Batch<In>,
        ctx: &mut Context<'_>,
    ) -> (Batch<Out>, Self)
    where
        A: ActivationFn,
        L: Layer<Input = In, Output = Out>,
    {
        let mut out = ctx.take_batch(input.batch_size());
        layer.forward_into(&input, &mut out, ctx);
        let output = (!A::IS_LINEAR).then(|| {
            let mut copy = ctx.take_batch(out.batch_size());
            copy.copy_from(&out);
            copy
        });
        (out, KernelTape { input, output })
    }

    /// The input of the forward pass.
    pub(crate) fn input(&self) -> &Batch<In> {
        &self.input
    }

    /// The activated output, if the activation's derivative needs it.
    pub(crate) fn output(&self) -> Option<&[f32]> {
        self.output.as_ref().map(Batch::as_slice)
    }

    /// Gives the tape's memory back to the context.
    pub(crate) fn recycle(self, ctx: &mut Context<'_>) {
        ctx.recycle(self.input);
        if let Some(out) = self.output {
            ctx.recycle(out);
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

/// Keras's default initialisation of a layer with a kernel: Glorot-uniform
/// kernel from `rng`, zero bias.
pub(crate) fn init_kernel_and_bias(
    kernel: &mut Tensor,
    bias: Option<&mut Tensor>,
    (fan_in, fan_out): (usize, usize),
    rng: &mut dyn RngCore,
) {
    glorot_uniform(kernel.values_mut(), fan_in, fan_out, rng);
    if let Some(b) = bias {
        b.values_mut().fill(0.0);
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
