//! `LeakyReLU`: Keras's leaky rectifier LAYER, whose slope is an argument.
//!
//! Arguments and defaults: `negative_slope = 0.3` (Keras 2 called it
//! `alpha`), finite and at least 0 as Keras requires. Not to be confused
//! with the `leaky_relu` activation function ([`crate::activation::LeakyRelu`]),
//! whose slope is 0.2.
//!
//! Shape: unchanged.
//!
//! Computation: `x` for `x >= 0`, else `negative_slope · x`, element-wise;
//! the derivative at 0 is 1, as Keras's JAX backend takes it.

use core::fmt;
use core::marker::PhantomData;

use crate::activation::{d_leaky, leaky, onnx_leaky};
use crate::batch::Batch;
use crate::kernels::parallel::{for_chunks, map_chunks};
use crate::layer::{Context, Layer};
use crate::onnx::{ExportError, OnnxGraph};
use crate::shape::Shape;

/// The leaky rectifier over samples of shape `S`, with a slope chosen at
/// run time.
///
/// In `sequential!`: `LeakyReLU` (slope 0.3) or `LeakyReLU(negative_slope = 0.1)`.
///
/// ```
/// use strata_core::typenum::U2;
/// use strata_core::{Batch, LeakyReLU, Model, Shape1};
///
/// let layer = LeakyReLU::<Shape1<U2>>::new(0.5).unwrap();
/// let y = layer.predict(&Batch::from_vec(1, vec![-2.0, 3.0]).unwrap());
/// assert_eq!(y.as_slice(), [-1.0, 3.0]);
/// ```
pub struct LeakyReLU<S> {
    slope: f32,
    types: PhantomData<fn() -> S>,
}

/// A `LeakyReLU` slope that is negative or not finite.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlopeError {
    /// The slope given.
    pub slope: f32,
}

impl fmt::Display for SlopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the negative_slope of LeakyReLU must be a finite number >= 0, but {} was given",
            self.slope
        )
    }
}

impl std::error::Error for SlopeError {}

impl<S> LeakyReLU<S> {
    /// Keras's default slope.
    pub const DEFAULT_SLOPE: f32 = 0.3;

    /// The layer with `negative_slope`; an error unless it is finite and
    /// at least 0 (Keras rejects a negative one).
    pub fn new(negative_slope: f32) -> Result<Self, SlopeError> {
        if negative_slope.is_finite() && negative_slope >= 0.0 {
            Ok(LeakyReLU {
                slope: negative_slope,
                types: PhantomData,
            })
        } else {
            Err(SlopeError {
                slope: negative_slope,
            })
        }
    }

    /// The slope for negative inputs.
    pub fn negative_slope(&self) -> f32 {
        self.slope
    }
}

impl<S> Default for LeakyReLU<S> {
    fn default() -> Self {
        Self::new(Self::DEFAULT_SLOPE).expect("the default slope is valid")
    }
}

impl<S: Shape> Layer for LeakyReLU<S> {
    type Input = S;
    type Output = S;
    /// The input: with a zero slope the output could not tell `x < 0`
    /// from `x = 0`, whose derivatives differ.
    type Tape = Batch<S>;

    fn kind(&self) -> &'static str {
        "LeakyReLU"
    }

    fn forward_into(&self, input: &Batch<S>, out: &mut Batch<S>, ctx: &mut Context<'_>) {
        out.resize(input.batch_size());
        let slope = self.slope;
        map_chunks(
            ctx.threads(),
            input.as_slice(),
            out.as_mut_slice(),
            |i, o| o.iter_mut().zip(i).for_each(|(o, x)| *o = leaky(*x, slope)),
        );
    }

    fn forward_owned(&self, mut values: Batch<S>, ctx: &mut Context<'_>) -> Batch<S> {
        let slope = self.slope;
        for_chunks(ctx.threads(), values.as_mut_slice(), |v| {
            v.iter_mut().for_each(|x| *x = leaky(*x, slope))
        });
        values
    }

    fn forward_taped(&mut self, input: Batch<S>, ctx: &mut Context<'_>) -> (Batch<S>, Batch<S>) {
        let mut out = ctx.take_batch(input.batch_size());
        self.forward_into(&input, &mut out, ctx);
        (out, input)
    }

    fn backward(&mut self, input: Batch<S>, mut grad: Batch<S>, ctx: &mut Context<'_>) -> Batch<S> {
        for (g, x) in grad.as_mut_slice().iter_mut().zip(input.as_slice()) {
            *g *= d_leaky(*x, self.slope);
        }
        ctx.recycle(input);
        grad
    }

    /// ONNX's `LeakyRelu` with this layer's slope.
    fn export_onnx(&self, g: &mut OnnxGraph, input: &str) -> Result<String, ExportError> {
        onnx_leaky(g, input, self.slope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::Shape1;
    use typenum::U4;

    type S = Shape1<U4>;

    #[test]
    fn default_slope_is_keras_0_3() {
        let layer = LeakyReLU::<S>::default();
        assert_eq!(layer.negative_slope(), 0.3);
        let x = Batch::<S>::from_vec(1, vec![-10.0, -1.0, 0.0, 2.0]).unwrap();
        let y = layer.forward(&x, &mut Context::inference());
        assert_eq!(y.as_slice(), &[-3.0, -0.3, 0.0, 2.0]);
    }

    #[test]
    fn slope_must_be_finite_and_not_negative() {
        for bad in [-0.1, f32::NAN, f32::INFINITY] {
            let err = LeakyReLU::<S>::new(bad).err().expect("rejected");
            assert!(err.to_string().contains("finite number >= 0"), "{err}");
        }
        assert!(LeakyReLU::<S>::new(0.0).is_ok());
        assert!(LeakyReLU::<S>::new(5.0).is_ok());
    }

    /// Forward in place and into a buffer agree; backward takes the slope
    /// below 0 and 1 from 0 up, also with a zero slope (where the output
    /// of a negative input is 0, as that of 0 is).
    #[test]
    fn forward_and_backward_by_hand() {
        for slope in [0.1, 0.0] {
            let mut layer = LeakyReLU::<S>::new(slope).unwrap();
            let x = Batch::<S>::from_vec(2, vec![-2.0, 0.0, 3.0, -1e30, 1.0, -0.5, 0.25, 1e30])
                .unwrap();
            let mut ctx = Context::inference();
            let owned = layer.forward_owned(x.clone(), &mut ctx);
            let (y, tape) = layer.forward_taped(x.clone(), &mut ctx);
            assert_eq!(y.as_slice(), owned.as_slice());
            assert_eq!(y.as_slice()[..3], [-2.0 * slope, 0.0, 3.0]);
            let grad = layer.backward(tape, Batch::filled(2, 2.0), &mut ctx);
            let s = 2.0 * slope;
            assert_eq!(grad.as_slice(), &[s, 2.0, 2.0, s, 2.0, s, 2.0, 2.0]);
        }
    }

    /// The derivative against an f64 central difference on a grid away
    /// from the kink at 0.
    #[test]
    fn derivative_matches_central_differences() {
        let slope = 0.37f32;
        let mut layer = LeakyReLU::<S>::new(slope).unwrap();
        let xs: Vec<f32> = (0..400).map(|k| -4.0 + k as f32 * 0.02 + 0.005).collect();
        let x = Batch::<S>::from_vec(100, xs.clone()).unwrap();
        let mut ctx = Context::inference();
        let (_, tape) = layer.forward_taped(x, &mut ctx);
        let grad = layer.backward(tape, Batch::filled(100, 1.0), &mut ctx);
        let f = |x: f64| if x >= 0.0 { x } else { slope as f64 * x };
        let h = 1e-6;
        for (x, g) in xs.iter().zip(grad.as_slice()) {
            let fd = (f(*x as f64 + h) - f(*x as f64 - h)) / (2.0 * h);
            assert!((*g as f64 - fd).abs() < 1e-6, "at {x}: {g} vs {fd}");
        }
    }
}
