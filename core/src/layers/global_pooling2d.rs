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

use super::{backward_from_input, forward_keeping_input, Average, Max};
use crate::batch::Batch;
use crate::kernels::pool::global;
use crate::layer::{Context, Layer};
use crate::onnx::{Attr, ExportError, OnnxGraph};
use crate::shape::{Shape1, Spatial, TypeMarker};

/// Images, positions (`H·W`) per image, channels per position.
type Dims = (usize, usize, usize);

/// What global pooling computes per channel: see [`Max`] and [`Average`].
pub trait GlobalPoolKind: 'static {
    /// Keras's name of the layer.
    const NAME: &'static str;
    /// Whether the backward pass needs the forward pass's input.
    const KEEPS_INPUT: bool;
    /// The ONNX operator (`GlobalAveragePool`, `GlobalMaxPool`).
    const ONNX_OP: &'static str;
    /// Reduces each of `images` images of `positions × channels` values to
    /// `channels` values, the images shared among up to `threads` threads.
    fn forward(dims: Dims, input: &[f32], output: &mut [f32], threads: usize);
    /// Writes the input's gradient from the output's.
    fn backward(dims: Dims, input: Option<&[f32]>, grad_output: &[f32], grad_input: &mut [f32]);
}

impl GlobalPoolKind for Average {
    const NAME: &'static str = "GlobalAveragePooling2D";
    const KEEPS_INPUT: bool = false;
    const ONNX_OP: &'static str = "GlobalAveragePool";

    fn forward(dims: Dims, input: &[f32], output: &mut [f32], threads: usize) {
        global::avg_forward(dims, input, output, threads);
    }

    fn backward(dims: Dims, _: Option<&[f32]>, grad_output: &[f32], grad_input: &mut [f32]) {
        global::avg_backward(dims, grad_output, grad_input);
    }
}

impl GlobalPoolKind for Max {
    const NAME: &'static str = "GlobalMaxPooling2D";
    const KEEPS_INPUT: bool = true;
    const ONNX_OP: &'static str = "GlobalMaxPool";

    fn forward(dims: Dims, input: &[f32], output: &mut [f32], threads: usize) {
        global::max_forward(dims, input, output, threads);
    }

    fn backward(dims: Dims, input: Option<&[f32]>, grad_output: &[f32], grad_input: &mut [f32]) {
        let input = input.expect("global max pooling keeps its input");
        global::max_backward(dims, input, grad_output, grad_input);
    }
}

/// Global pooling of kind `K` over `In` (a [`Shape3`](crate::Shape3)).
///
/// Written through its aliases: [`GlobalAveragePooling2D`]
/// and [`GlobalMaxPooling2D`] (see their examples).
pub struct GlobalPooling2D<In, K>(TypeMarker<(In, K)>);

/// The mean of each channel: `(H, W, C) -> (C)`.
///
/// In `sequential!`: `GlobalAveragePooling2D` (or `GlobalAvgPool2D`).
///
/// ```
/// use strata_core::typenum::{U1, U2};
/// use strata_core::{Batch, GlobalAveragePooling2D, Model, Shape3};
///
/// let pool = GlobalAveragePooling2D::<Shape3<U2, U2, U1>>::new();
/// let y = pool.predict(&Batch::from_vec(1, vec![1.0, 2.0, 3.0, 6.0]).unwrap());
/// assert_eq!(y.as_slice(), [3.0]);
/// ```
pub type GlobalAveragePooling2D<In> = GlobalPooling2D<In, Average>;

/// The max of each channel: `(H, W, C) -> (C)`.
///
/// In `sequential!`: `GlobalMaxPooling2D` (or `GlobalMaxPool2D`).
///
/// ```
/// use strata_core::typenum::{U1, U2};
/// use strata_core::{Batch, GlobalMaxPooling2D, Model, Shape3};
///
/// let pool = GlobalMaxPooling2D::<Shape3<U2, U2, U1>>::new();
/// let y = pool.predict(&Batch::from_vec(1, vec![1.0, 2.0, 3.0, 6.0]).unwrap());
/// assert_eq!(y.as_slice(), [6.0]);
/// ```
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
    fn dims(images: usize) -> Dims {
        (images, In::NUMEL / In::LAST.max(1), In::LAST)
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

    fn forward_into(
        &self,
        input: &Batch<In>,
        out: &mut Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) {
        out.resize(input.batch_size());
        let dims = Self::dims(input.batch_size());
        K::forward(dims, input.as_slice(), out.as_mut_slice(), ctx.threads());
    }

    fn forward_taped(
        &mut self,
        input: Batch<In>,
        ctx: &mut Context<'_>,
    ) -> (Batch<Self::Output>, Self::Tape) {
        forward_keeping_input(self, K::KEEPS_INPUT, input, ctx)
    }

    fn backward(
        &mut self,
        input: Self::Tape,
        grad_output: Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) -> Batch<In> {
        let dims = Self::dims(grad_output.batch_size());
        backward_from_input(input, grad_output, ctx, |input, grad_output, grad_input| {
            K::backward(dims, input, grad_output, grad_input)
        })
    }

    /// The kind's global operator (`[N, C, 1, 1]`), flattened to `[N, C]`.
    fn export_onnx(&self, g: &mut OnnxGraph, input: &str) -> Result<String, ExportError> {
        let pooled = g.node(K::ONNX_OP, &[input], &[]);
        Ok(g.node("Flatten", &[&pooled], &[("axis", Attr::Int(1))]))
    }
}

#[cfg(test)]
mod tests {
    use typenum::{U2, U3, U4};

    use super::*;
    use crate::init::seeded_rng;
    use crate::layer::Context;
    use crate::model::Model;
    use crate::shape::Shape3;
    use rand::Rng;

    type In = Shape3<U3, U4, U2>;

    fn input(images: usize, seed: u64) -> Batch<In> {
        let mut rng = seeded_rng(seed);
        let values = (0..images * 24)
            .map(|_| rng.random_range(-2.0f32..2.0))
            .collect();
        Batch::from_vec(images, values).unwrap()
    }

    /// Mean and max of channel `c` of image `b`, straight from NHWC indices.
    fn by_hand(x: &Batch<In>, b: usize, c: usize) -> (f32, f32) {
        let cell = |y: usize, w: usize| x.as_slice()[((b * 3 + y) * 4 + w) * 2 + c];
        let cells: Vec<f32> = (0..3)
            .flat_map(|y| (0..4).map(move |w| (y, w)))
            .map(|(y, w)| cell(y, w))
            .collect();
        let mean = cells.iter().sum::<f32>() / 12.0;
        let max = cells.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        (mean, max)
    }

    #[test]
    fn pools_each_channel_over_height_and_width() {
        let x = input(3, 1);
        let avg = GlobalAveragePooling2D::<In>::new().predict(&x);
        let max = GlobalMaxPooling2D::<In>::new().predict(&x);
        assert_eq!(avg.sample_dims(), &[2]);
        for b in 0..3 {
            for c in 0..2 {
                let (mean, top) = by_hand(&x, b, c);
                assert!((avg.as_slice()[b * 2 + c] - mean).abs() < 1e-6);
                assert_eq!(max.as_slice()[b * 2 + c], top);
            }
        }
    }

    #[test]
    fn hand_worked_image_and_nan() {
        // One 1x2x2 image: channel 0 holds 1 and 3, channel 1 holds -4 and NaN.
        type Tiny = Shape3<typenum::U1, U2, U2>;
        let x = Batch::<Tiny>::from_vec(1, vec![1.0, -4.0, 3.0, f32::NAN]).unwrap();
        let avg = GlobalAveragePooling2D::<Tiny>::new().predict(&x);
        assert_eq!(avg.as_slice()[0], 2.0);
        assert!(avg.as_slice()[1].is_nan());
        let max = GlobalMaxPooling2D::<Tiny>::new().predict(&x);
        assert_eq!(max.as_slice()[0], 3.0);
        // A NaN is not hidden by a larger neighbour.
        assert!(max.as_slice()[1].is_nan());
    }

    /// The gradient of `Σ r · pool(x)` against central differences, in f64
    /// by hand: the layer is piecewise linear, so away from ties the
    /// difference quotient is exact up to rounding.
    fn check_backward<K: GlobalPoolKind>() {
        let x = input(2, 7);
        let r: Vec<f32> = {
            let mut rng = seeded_rng(8);
            (0..4).map(|_| rng.random_range(-1.0f32..1.0)).collect()
        };
        let mut layer = GlobalPooling2D::<In, K>::new();
        let mut ctx = Context::inference();
        let (_, tape) = layer.forward_taped(x.clone(), &mut ctx);
        let grad_out = Batch::from_vec(2, r.clone()).unwrap();
        let grad = layer.backward(tape, grad_out, &mut ctx);
        let objective = |x: &Batch<In>| -> f64 {
            let y = layer.predict(x);
            y.as_slice()
                .iter()
                .zip(&r)
                .map(|(y, r)| (*y as f64) * (*r as f64))
                .sum()
        };
        let h = 1e-2;
        for i in 0..x.as_slice().len() {
            let mut plus = x.clone();
            plus.as_mut_slice()[i] += h;
            let mut minus = x.clone();
            minus.as_mut_slice()[i] -= h;
            let numeric = (objective(&plus) - objective(&minus)) / (2.0 * h as f64);
            let analytic = grad.as_slice()[i] as f64;
            assert!(
                (numeric - analytic).abs() < 1e-3,
                "{}: value {i}: {numeric} vs {analytic}",
                K::NAME
            );
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        check_backward::<Average>();
        check_backward::<Max>();
    }

    #[test]
    fn max_gradient_goes_to_the_first_largest_position() {
        type Tiny = Shape3<typenum::U1, U3, typenum::U1>;
        let mut layer = GlobalMaxPooling2D::<Tiny>::new();
        let x = Batch::<Tiny>::from_vec(1, vec![5.0, 1.0, 5.0]).unwrap();
        let mut ctx = Context::inference();
        let (y, tape) = layer.forward_taped(x, &mut ctx);
        assert_eq!(y.as_slice(), [5.0]);
        let grad = layer.backward(tape, Batch::from_vec(1, vec![2.0]).unwrap(), &mut ctx);
        assert_eq!(grad.as_slice(), [2.0, 0.0, 0.0]);
    }

    #[test]
    fn summary_and_threads() {
        let layer = GlobalAveragePooling2D::<Shape3<U4, U4, U3>>::new();
        let rows = layer.summary().rows;
        assert_eq!(rows[0].kind, "GlobalAveragePooling2D");
        assert_eq!(rows[0].output, [3]);
        assert_eq!(rows[0].params, 0);
        assert_eq!(GlobalMaxPooling2D::<In>::new().kind(), "GlobalMaxPooling2D");
        let x = input(9, 3);
        for threads in [1, 2, 3] {
            let mut ctx = Context::inference().with_threads(threads);
            let one = GlobalMaxPooling2D::<In>::new()
                .forward(&x, &mut Context::inference().with_threads(1));
            assert_eq!(
                GlobalMaxPooling2D::<In>::new()
                    .forward(&x, &mut ctx)
                    .as_slice(),
                one.as_slice()
            );
        }
    }
}
