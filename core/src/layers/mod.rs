//! The layers, one file each, in Keras's words.
//!
//! Adding a layer: its file here (arguments, shape rule, computation and
//! tests, as the others), one line in the list below, and its description
//! in the macro crate's `layers/`.

use crate::activation::ActivationFn;
use crate::batch::Batch;
use crate::layer::{Context, Layer};
use crate::shape::Shape;

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
    pub(crate) fn record<A, L>(layer: &L, input: Batch<In>, ctx: &mut Context<'_>) -> (Batch<Out>, Self)
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
