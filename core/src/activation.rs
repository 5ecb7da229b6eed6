//! Activation functions, as types, and the `Activation` layer.
//!
//! Keras's `Activation('relu')` is [`Activation<S, Relu>`]; Conv2D and Dense
//! take the same types as their `activation = ...` argument. The classic
//! five are here; the ones Keras 3 adds (gelu, silu, mish...) are in
//! `keras3.rs` beside this file, re-exported here.

use core::fmt::Debug;
use core::marker::PhantomData;

use crate::batch::Batch;
use crate::kernels::parallel::{for_chunks, map_chunks};
use crate::layer::{Context, Layer};
use crate::onnx::{Attr, ExportError, OnnxGraph};
use crate::shape::Shape;

mod keras3;
pub use keras3::*;

/// What an activation's backward pass needs from its forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keeps {
    /// Nothing: the derivative is a constant (the identity).
    Nothing,
    /// The output, when the derivative is a function of it (relu, sigmoid,
    /// tanh, softmax...): the cheapest to keep after an in-place forward.
    Output,
    /// The input, when the output does not determine the derivative (gelu,
    /// silu, mish: not monotonic; hard_silu, leaky_relu: kinks an output
    /// test would misplace).
    Input,
}

/// An element-wise (or, for softmax and log_softmax, last-axis) activation
/// function.
pub trait ActivationFn: Copy + Default + Debug + Send + Sync + 'static {
    /// Keras's name: `relu`, `softmax`, ...
    const NAME: &'static str;

    /// What [`ActivationFn::backward`] gets: the forward pass's output, its
    /// input, or nothing.
    const KEEPS: Keeps = Keeps::Output;

    /// Applies the function in place to `values`, whose last axis has
    /// length `last` (softmax normalises over it; the rest ignore it).
    fn apply(values: &mut [f32], last: usize);

    /// `output = f(input)`: the same as copying then [`ActivationFn::apply`],
    /// in one pass where the function allows.
    fn map(input: &[f32], output: &mut [f32], last: usize) {
        output.copy_from_slice(input);
        Self::apply(output, last);
    }

    /// Turns `grad`, the gradient with respect to this function's output,
    /// into the gradient with respect to its input, in place. `kept` is what
    /// [`ActivationFn::KEEPS`] says (the output or the input of the forward
    /// pass; empty for [`Keeps::Nothing`]).
    fn backward(kept: &[f32], grad: &mut [f32], last: usize);

    /// Whether this is softmax (whose gradient cross-entropy can fuse).
    const IS_SOFTMAX: bool = false;

    /// Whether this is the identity (nothing to save for backward).
    const IS_LINEAR: bool = false;

    /// `Some((lo, hi))` when the function is `x.clamp(lo, hi)` with a NaN
    /// staying a NaN (relu, relu6): fused into a convolution, it then runs
    /// as a step compiled for the vector unit.
    const CLAMP: Option<(f32, f32)> = None;

    /// Whether each value's result depends on that value alone, so that any
    /// split of a tensor among threads gives the same result (false for the
    /// functions normalising over the last axis).
    const ELEMENTWISE: bool = true;

    /// Appends the function applied to value `x` to an ONNX graph; returns
    /// the result's name. `x` is NCHW or `[N, L]`, so strata's last axis
    /// (channels or features) is axis 1 either way. The default has no
    /// ONNX equivalent.
    fn export_onnx(g: &mut OnnxGraph, x: &str) -> Result<String, ExportError> {
        let _ = (g, x);
        Err(ExportError::NoOnnxEquivalent {
            kind: Self::NAME.to_string(),
        })
    }
}

/// The `op` node of one input and no attribute: most activations.
pub(crate) fn unary(g: &mut OnnxGraph, op: &str, x: &str) -> Result<String, ExportError> {
    Ok(g.node(op, &[x], &[]))
}

/// Softmax-like `op` over strata's last axis: axis 1 of NCHW and of
/// `[N, L]` (opset 13 and later normalise over that axis alone).
pub(crate) fn over_channels(g: &mut OnnxGraph, op: &str, x: &str) -> Result<String, ExportError> {
    Ok(g.node(op, &[x], &[("axis", Attr::Int(1))]))
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
    const CLAMP: Option<(f32, f32)> = Some((0.0, f32::INFINITY));
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
    fn export_onnx(g: &mut OnnxGraph, x: &str) -> Result<String, ExportError> {
        unary(g, "Relu", x)
    }
    fn backward(output: &[f32], grad: &mut [f32], _: usize) {
        // The derivative at 0 is taken as 0, as TensorFlow and JAX do. A
        // select rather than a conditional store, so that it vectorises
        // (a NaN output keeps its gradient either way).
        for (g, y) in grad.iter_mut().zip(output) {
            *g = if *y <= 0.0 { 0.0 } else { *g };
        }
    }
}

impl ActivationFn for Sigmoid {
    const NAME: &'static str = "sigmoid";
    fn export_onnx(g: &mut OnnxGraph, x: &str) -> Result<String, ExportError> {
        unary(g, "Sigmoid", x)
    }
    fn apply(values: &mut [f32], _: usize) {
        values.iter_mut().for_each(|v| *v = sigmoid(*v));
    }
    fn backward(output: &[f32], grad: &mut [f32], _: usize) {
        for (g, y) in grad.iter_mut().zip(output) {
            *g *= y * (1.0 - y);
        }
    }
}

/// The logistic function, for sigmoid and the functions built on it.
pub(crate) fn sigmoid(x: f32) -> f32 {
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
    fn export_onnx(g: &mut OnnxGraph, x: &str) -> Result<String, ExportError> {
        unary(g, "Tanh", x)
    }
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
    fn export_onnx(g: &mut OnnxGraph, x: &str) -> Result<String, ExportError> {
        over_channels(g, "Softmax", x)
    }
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
    const ELEMENTWISE: bool = false;
}

impl ActivationFn for Linear {
    const NAME: &'static str = "linear";
    const KEEPS: Keeps = Keeps::Nothing;
    fn apply(_: &mut [f32], _: usize) {}
    fn export_onnx(_: &mut OnnxGraph, x: &str) -> Result<String, ExportError> {
        Ok(x.to_string())
    }
    fn backward(_: &[f32], _: &mut [f32], _: usize) {}
    const IS_LINEAR: bool = true;
}

/// Applies `A` to `values` in place, element-wise work shared among the
/// context's threads.
pub(crate) fn apply_activation<A: ActivationFn, S: Shape>(
    values: &mut Batch<S>,
    ctx: &Context<'_>,
) {
    if A::IS_LINEAR {
        return;
    }
    if A::ELEMENTWISE {
        for_chunks(ctx.threads(), values.as_mut_slice(), |v| {
            A::apply(v, S::LAST)
        });
    } else {
        A::apply(values.as_mut_slice(), S::LAST);
    }
}

/// `out = A(input)`, resizing `out` to the input's batch size; element-wise
/// work shared among the context's threads.
pub(crate) fn map_activation<A: ActivationFn, S: Shape>(
    input: &Batch<S>,
    out: &mut Batch<S>,
    ctx: &Context<'_>,
) {
    out.resize(input.batch_size());
    if A::ELEMENTWISE {
        // Element-wise: any split of the values gives the same result.
        map_chunks(
            ctx.threads(),
            input.as_slice(),
            out.as_mut_slice(),
            |i, o| A::map(i, o, S::LAST),
        );
    } else {
        A::map(input.as_slice(), out.as_mut_slice(), S::LAST);
    }
}

/// The taped forward pass of `A` on `values`: the output, and what `A`'s
/// backward pass needs (the input moved, not copied, when it keeps the input).
pub(crate) fn activation_taped<A: ActivationFn, S: Shape>(
    mut values: Batch<S>,
    ctx: &mut Context<'_>,
) -> (Batch<S>, Option<Batch<S>>) {
    match A::KEEPS {
        Keeps::Nothing => {
            apply_activation::<A, S>(&mut values, ctx);
            (values, None)
        }
        Keeps::Input => {
            let mut out = ctx.take_batch(values.batch_size());
            map_activation::<A, S>(&values, &mut out, ctx);
            (out, Some(values))
        }
        Keeps::Output => {
            apply_activation::<A, S>(&mut values, ctx);
            let mut copy = ctx.take_batch(values.batch_size());
            map_chunks(
                ctx.threads(),
                values.as_slice(),
                copy.as_mut_slice(),
                |i, o| o.copy_from_slice(i),
            );
            (values, Some(copy))
        }
    }
}

/// The `Activation` layer: applies `A` to an input of shape `S`, keeping the
/// shape. `relu`, `softmax`, ... in a `sequential!` chain are this layer.
///
/// ```
/// use strata_core::typenum::U3;
/// use strata_core::{Activation, Batch, Model, Relu, Shape1, Softmax};
///
/// let x = Batch::<Shape1<U3>>::from_vec(1, vec![-1.0, 0.0, 1.0]).unwrap();
/// assert_eq!(Activation::<_, Relu>::new().predict(&x).as_slice(), [0.0, 0.0, 1.0]);
/// let p = Activation::<_, Softmax>::new().predict(&x);
/// assert!((p.as_slice().iter().sum::<f32>() - 1.0).abs() < 1e-6);
/// ```
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

impl<S: Shape, A: ActivationFn> Layer for Activation<S, A> {
    type Input = S;
    type Output = S;
    /// What `A`'s derivative needs ([`ActivationFn::KEEPS`]): the output or
    /// the input; none for linear.
    type Tape = Option<Batch<S>>;

    fn kind(&self) -> &'static str {
        "Activation"
    }

    fn forward_into(&self, input: &Batch<S>, out: &mut Batch<S>, ctx: &mut Context<'_>) {
        map_activation::<A, S>(input, out, ctx);
    }

    fn forward_owned(&self, mut values: Batch<S>, ctx: &mut Context<'_>) -> Batch<S> {
        apply_activation::<A, S>(&mut values, ctx);
        values
    }

    fn forward_taped(&mut self, values: Batch<S>, ctx: &mut Context<'_>) -> (Batch<S>, Self::Tape) {
        activation_taped::<A, S>(values, ctx)
    }

    fn export_onnx(&self, g: &mut OnnxGraph, input: &str) -> Result<String, ExportError> {
        A::export_onnx(g, input)
    }

    fn backward(
        &mut self,
        kept: Self::Tape,
        mut grad: Batch<S>,
        ctx: &mut Context<'_>,
    ) -> Batch<S> {
        activation_backward::<A>(
            kept.as_ref().map(Batch::as_slice),
            grad.as_mut_slice(),
            S::LAST,
            ctx,
        );
        if let Some(kept) = kept {
            ctx.recycle(kept);
        }
        grad
    }
}

/// The backward pass of activation `A` on `grad`, in place, from what the
/// forward pass kept ([`ActivationFn::KEEPS`]; `None` for linear). A softmax
/// takes the loss's logit gradient instead when one is offered (see
/// [`Context::offer_logit_gradient`]).
pub fn activation_backward<A: ActivationFn>(
    kept: Option<&[f32]>,
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
    match (A::KEEPS, kept) {
        (Keeps::Nothing, _) => A::backward(&[], grad, last),
        // Element-wise, like the forward pass: any split of the values
        // gives the same result, so the context's threads share them.
        (_, Some(kept)) if A::ELEMENTWISE => {
            map_chunks(ctx.threads(), kept, grad, |k, g| A::backward(k, g, last))
        }
        (_, Some(kept)) => A::backward(kept, grad, last),
        (keeps, None) => panic!("{} keeps its {keeps:?} for backward", A::NAME),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The taped pass's kept copy and the backward pass, shared among two
    /// threads over a batch large enough to be split (640 000 values, more
    /// than two threads' shares), equal the one-thread computation bit for
    /// bit, every value covered.
    #[test]
    fn taped_relu_and_its_gradient_split_among_threads() {
        type S = crate::shape::Shape1<typenum::U1000>;
        let n = 640;
        let values = |seed: usize| -> Vec<f32> {
            (0..n * 1000)
                .map(|i| ((i * 7919 + seed) % 2001) as f32 / 1000.0 - 1.0)
                .collect()
        };
        let run = |threads: usize| {
            let mut ctx = Context::inference().with_threads(threads);
            let x = Batch::<S>::from_vec(n, values(1)).unwrap();
            let (y, kept) = activation_taped::<Relu, S>(x, &mut ctx);
            let kept = kept.unwrap();
            assert_eq!(
                kept.as_slice(),
                y.as_slice(),
                "{threads} threads: kept output"
            );
            let mut grad = values(2);
            activation_backward::<Relu>(Some(kept.as_slice()), &mut grad, 1000, &mut ctx);
            (y.as_slice().to_vec(), grad)
        };
        let (y1, g1) = run(1);
        let mut want = values(2);
        Relu::backward(&y1, &mut want, 1000);
        assert_eq!(g1, want);
        let (y2, g2) = run(2);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&y1), bits(&y2));
        assert_eq!(bits(&g1), bits(&g2));
    }

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

    /// The taped forward pass keeps what each function says: the input
    /// for gelu (moved: the very values given), the output for relu.
    #[test]
    fn taped_forward_keeps_what_backward_needs() {
        type S = crate::shape::Shape1<typenum::U3>;
        let x = Batch::<S>::from_vec(1, vec![-1.0, 0.5, 2.0]).unwrap();
        let mut ctx = Context::inference();
        let (y, kept) = activation_taped::<Gelu, S>(x.clone(), &mut ctx);
        assert_eq!(kept.unwrap().as_slice(), x.as_slice());
        assert_ne!(y.as_slice(), x.as_slice());
        let (y, kept) = activation_taped::<Relu, S>(x.clone(), &mut ctx);
        assert_eq!(kept.unwrap().as_slice(), y.as_slice());
        let (y, kept) = activation_taped::<Linear, S>(x.clone(), &mut ctx);
        assert!(kept.is_none());
        assert_eq!(y.as_slice(), x.as_slice());
    }

    /// Through the layer, forward and backward on a batch large enough to
    /// be split among threads: the same as one call on the whole slice.
    #[test]
    fn layer_matches_the_function_on_many_threads() {
        type S = crate::shape::Shape1<typenum::U1000>;
        let n = 300;
        let x: Vec<f32> = (0..n * 1000)
            .map(|i| ((i * 37 % 1001) as f32 - 500.0) / 50.0)
            .collect();
        let x = Batch::<S>::from_vec(n, x).unwrap();
        let mut layer = Activation::<S, Mish>::new();
        let mut ctx = Context::inference().with_threads(4);
        let (y, tape) = layer.forward_taped(x.clone(), &mut ctx);
        let mut expected = x.as_slice().to_vec();
        Mish::apply(&mut expected, 1000);
        assert_eq!(y.as_slice(), expected.as_slice());
        let grad = layer.backward(tape, Batch::filled(n, 1.0), &mut ctx);
        let mut g = vec![1.0; n * 1000];
        Mish::backward(x.as_slice(), &mut g, 1000);
        assert_eq!(grad.as_slice(), g.as_slice());
    }
}
