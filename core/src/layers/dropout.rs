//! `Dropout`: randomly zeroes units while training (Keras's `Dropout`).
//!
//! Arguments: `rate`, the fraction of units to drop, `0 <= rate < 1`.
//!
//! Shape: unchanged.
//!
//! Computation: the identity at inference. In training each value is zeroed
//! with probability `rate` and the rest scaled by `1 / (1 - rate)` (inverted
//! dropout), so the expected value of every unit is unchanged.

use core::fmt;
use core::marker::PhantomData;

use rand::Rng;

use crate::batch::Batch;
use crate::layer::{forward_via_into, Context, Layer};
use crate::shape::Shape;

/// Dropout over samples of shape `S`.
pub struct Dropout<S> {
    rate: f32,
    types: PhantomData<fn() -> S>,
}

/// A dropout rate outside `[0, 1)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateError {
    /// The rate given.
    pub rate: f32,
}

impl fmt::Display for RateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dropout rate must be in [0, 1), but {} was given",
            self.rate
        )
    }
}

impl std::error::Error for RateError {}

impl<S> Dropout<S> {
    /// A dropout layer with `rate`; an error unless `0 <= rate < 1`.
    pub fn new(rate: f32) -> Result<Self, RateError> {
        if (0.0..1.0).contains(&rate) {
            Ok(Dropout {
                rate,
                types: PhantomData,
            })
        } else {
            Err(RateError { rate })
        }
    }

    /// The fraction of units dropped in training.
    pub fn rate(&self) -> f32 {
        self.rate
    }
}

impl<S: Shape> Layer for Dropout<S> {
    type Input = S;
    type Output = S;

    fn kind(&self) -> &'static str {
        "Dropout"
    }

    fn forward_into(&self, input: &Batch<S>, out: &mut Batch<S>, ctx: &mut Context<'_>) {
        out.copy_from(input);
        if self.rate == 0.0 {
            return;
        }
        if let Some(rng) = ctx.rng() {
            let keep = 1.0 / (1.0 - self.rate);
            // The mask holds each unit's factor, 0 or 1 / (1 - rate); the
            // backward pass multiplies the gradient by the same factors.
            let mask: Vec<f32> = (0..out.as_slice().len())
                .map(|_| {
                    if rng.random::<f32>() < self.rate {
                        0.0
                    } else {
                        keep
                    }
                })
                .collect();
            for (v, m) in out.as_mut_slice().iter_mut().zip(&mask) {
                *v *= m;
            }
            ctx.save(mask);
        } else if ctx.is_recording() {
            // Recording without dropout: an empty mask means the identity.
            ctx.save(Vec::new());
        }
    }

    fn forward_owned(&self, input: Batch<S>, ctx: &mut Context<'_>) -> Batch<S> {
        if self.rate != 0.0 && ctx.is_training() {
            return forward_via_into(self, input, ctx);
        }
        // The identity: the input is the output (as forward_into records).
        if self.rate != 0.0 && ctx.is_recording() {
            ctx.save(Vec::new());
        }
        input
    }

    fn backward(&mut self, grad_output: &Batch<S>, ctx: &mut Context<'_>) -> Batch<S> {
        let mut grad = grad_output.clone();
        if self.rate != 0.0 {
            let mask = ctx.restore();
            // An empty mask is the identity (see forward).
            for (g, m) in grad.as_mut_slice().iter_mut().zip(&mask) {
                *g *= m;
            }
        }
        grad
    }
}
