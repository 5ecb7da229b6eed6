//! Activation functions, as types, and the `Activation` layer.
//!
//! Keras's `Activation('relu')` is [`Activation<S, Relu>`]; Conv2D and Dense
//! take the same types as their `activation = ...` argument.

use core::fmt::Debug;
use core::marker::PhantomData;

use crate::batch::Batch;
use crate::kernels::parallel::{for_chunks, map_chunks};
use crate::layer::{Context, Layer};
use crate::shape::Shape;

/// An element-wise (or, for softmax, last-axis) activation function.
pub trait ActivationFn: Copy + Default + Debug + Send + Sync + 'static {
    /// Keras's name: `relu`, `softmax`, ...
    const NAME: &'static str;
    /// Applies the function in place to `values`, whose last axis has
    /// length `last` (softmax normalises over it; the rest ignore it).
    fn apply(values: &mut [f32], last: usize);

    /// `output = f(input)`: the same as copying then [`ActivationFn::apply`],
    /// in one pass where the function allows.
    fn map(input: &[f32], output: &mut [f32], last: usize) {
        output.copy_from_slice(input);
        Self::apply(output, last);
    }

    /// Turns `grad`, the gradient with respect to this function's output
    /// `output`, into the gradient with respect to its input, in place. Every
    /// derivative here is a function of the output alone.
    fn backward(output: &[f32], grad: &mut [f32], last: usize);

    /// Whether this is softmax (whose gradient cross-entropy can fuse).
    const IS_SOFTMAX: bool = false;

    /// Whether this is the identity (nothing to save for backward).
    const IS_LINEAR: bool = false;
}

/// `max(x, 0)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relu;
/// `1 / (1 + e^-x)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sigmoid;
/// Hyperbolic tangent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tanh;
/// `e^x_i / Σ_j e^x_j` over the last axis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Softmax;
/// The identity (Keras's `linear`, the default of Conv2D and Dense).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Linear;

impl ActivationFn for Relu {
    const NAME: &'static str = "relu";
    fn apply(values: &mut [f32], _: usize) {
        // Not v.max(0.0): that would turn a NaN into 0 and hide it. A
        // select rather than a conditional store, so that it vectorizes.
        values
            .iter_mut()
            .for_each(|v| *v = if *v < 0.0 { 0.0 } else { *v });
    }
    fn map(input: &[f32], output: &mut [f32], _: usize) {
        for (o, i) in output.iter_mut().zip(input) {
            *o = if *i < 0.0 { 0.0 } else { *i };
        }
    }
    fn backward(output: &[f32], grad: &mut [f32], _: usize) {
        // The derivative at 0 is taken as 0, as TensorFlow and JAX do.
        for (g, y) in grad.iter_mut().zip(output) {
            if *y <= 0.0 {
                *g = 0.0;
            }
        }
    }
}

impl ActivationFn for Sigmoid {
    const NAME: &'static str = "sigmoid";
    fn apply(values: &mut [f32], _: usize) {
        values.iter_mut().for_each(|v| *v = sigmoid(*v));
    }
    fn backward(output: &[f32], grad: &mut [f32], _: usize) {
        for (g, y) in grad.iter_mut().zip(output) {
            *g *= y * (1.0 - y);
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    // Written so that neither branch overflows: e^-|x| is at most 1.
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl ActivationFn for Tanh {
    const NAME: &'static str = "tanh";
    fn apply(values: &mut [f32], _: usize) {
        values.iter_mut().for_each(|v| *v = v.tanh());
    }
    fn backward(output: &[f32], grad: &mut [f32], _: usize) {
        for (g, y) in grad.iter_mut().zip(output) {
            *g *= 1.0 - y * y;
        }
    }
}

impl ActivationFn for Softmax {
    const NAME: &'static str = "softmax";
    fn apply(values: &mut [f32], last: usize) {
        for row in values.chunks_exact_mut(last.max(1)) {
            // Subtracting the maximum keeps exp() finite for any input.
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for v in row.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            row.iter_mut().for_each(|v| *v /= sum);
        }
    }
    fn backward(output: &[f32], grad: &mut [f32], last: usize) {
        // dx_i = y_i (g_i - Σ_j g_j y_j): the softmax Jacobian, row by row.
        let last = last.max(1);
        for (g, y) in grad.chunks_exact_mut(last).zip(output.chunks_exact(last)) {
            let dot: f32 = g.iter().zip(y).map(|(g, y)| g * y).sum();
            for (g, y) in g.iter_mut().zip(y) {
                *g = y * (*g - dot);
            }
        }
    }
    const IS_SOFTMAX: bool = true;
}

impl ActivationFn for Linear {
    const NAME: &'static str = "linear";
    fn apply(_: &mut [f32], _: usize) {}
    fn backward(_: &[f32], _: &mut [f32], _: usize) {}
    const IS_LINEAR: bool = true;
}

/// The `Activation` layer: applies `A` to an input of shape `S`, keeping the
/// shape. `relu`, `softmax`, ... in a `sequential!` chain are this layer.
pub struct Activation<S, A>(PhantomData<fn() -> (S, A)>);

impl<S, A> Activation<S, A> {
    /// The layer (it has no parameters).
    pub fn new() -> Self {
        Activation(PhantomData)
    }
}

impl<S, A> Default for Activation<S, A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Shape, A: ActivationFn> Activation<S, A> {
    /// Applies `A` in place, element-wise work shared among the threads.
    fn apply(values: &mut Batch<S>, ctx: &Context<'_>) {
        if A::IS_SOFTMAX {
            A::apply(values.as_mut_slice(), S::LAST);
        } else {
            for_chunks(ctx.threads(), values.as_mut_slice(), |v| {
                A::apply(v, S::LAST)
            });
        }
    }
}

impl<S: Shape, A: ActivationFn> Layer for Activation<S, A> {
    type Input = S;
    type Output = S;
    /// The output, which every derivative here is a function of (none for
    /// linear).
    type Tape = Option<Batch<S>>;

    fn kind(&self) -> &'static str {
        "Activation"
    }

    fn forward_into(&self, input: &Batch<S>, out: &mut Batch<S>, ctx: &mut Context<'_>) {
        out.resize(input.batch_size());
        if A::IS_SOFTMAX {
            A::map(input.as_slice(), out.as_mut_slice(), S::LAST);
        } else {
            // Element-wise: any split of the values gives the same result.
            map_chunks(
                ctx.threads(),
                input.as_slice(),
                out.as_mut_slice(),
                |i, o| A::map(i, o, S::LAST),
            );
        }
    }

    fn forward_owned(&self, mut values: Batch<S>, ctx: &mut Context<'_>) -> Batch<S> {
        Self::apply(&mut values, ctx);
        values
    }

    fn forward_taped(
        &mut self,
        mut values: Batch<S>,
        ctx: &mut Context<'_>,
    ) -> (Batch<S>, Self::Tape) {
        Self::apply(&mut values, ctx);
        let tape = (!A::IS_LINEAR).then(|| {
            let mut copy = ctx.take_batch(values.batch_size());
            copy.copy_from(&values);
            copy
        });
        (values, tape)
    }

    fn backward(
        &mut self,
        output: Self::Tape,
        mut grad: Batch<S>,
        ctx: &mut Context<'_>,
    ) -> Batch<S> {
        activation_backward::<A>(
            output.as_ref().map(Batch::as_slice),
            grad.as_mut_slice(),
            S::LAST,
            ctx,
        );
        if let Some(output) = output {
            ctx.recycle(output);
        }
        grad
    }
}

/// The backward pass of activation `A` on `grad`, in place, from the
/// output the forward pass kept (`None` for linear). A softmax takes the
/// loss's logit gradient instead when one is offered (see
/// [`Context::offer_logit_gradient`]).
pub fn activation_backward<A: ActivationFn>(
    output: Option<&[f32]>,
    grad: &mut [f32],
    last: usize,
    ctx: &mut Context<'_>,
) {
    if A::IS_LINEAR {
        return;
    }
    if A::IS_SOFTMAX {
        if let Some(logit_grad) = ctx.take_logit_gradient() {
            grad.copy_from_slice(&logit_grad);
            return;
        }
    }
    let output = output.expect("a non-linear activation keeps its output");
    A::backward(output, grad, last);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_worked_values() {
        let mut v = [-1.0, 0.0, 2.0];
        Relu::apply(&mut v, 3);
        assert_eq!(v, [0.0, 0.0, 2.0]);

        let mut v = [0.0, 1000.0, -1000.0];
        Sigmoid::apply(&mut v, 3);
        assert_eq!(v, [0.5, 1.0, 0.0]);

        let mut v = [1.0, 2.0, 3.0, 1000.0, 1000.0, 1000.0];
        Softmax::apply(&mut v, 3);
        let e = [1.0f32.exp(), 2.0f32.exp(), 3.0f32.exp()];
        let s: f32 = e.iter().sum();
        for i in 0..3 {
            assert!((v[i] - e[i] / s).abs() < 1e-6);
            assert!((v[3 + i] - 1.0 / 3.0).abs() < 1e-6);
        }
        let mut v = [0.5f32];
        Tanh::apply(&mut v, 1);
        assert!((v[0] - 0.5f32.tanh()).abs() < 1e-7);
    }
}
