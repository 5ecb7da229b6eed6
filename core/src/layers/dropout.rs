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

use rand::RngCore;

use crate::batch::Batch;
use crate::layer::{Context, Layer};
use crate::onnx::{ExportError, OnnxGraph};
use crate::shape::Shape;

/// Dropout over samples of shape `S`.
///
/// In `sequential!`: `Dropout(0.5)`.
///
/// ```
/// use strata_core::typenum::U1000;
/// use strata_core::{seeded_rng, Batch, Dropout, Model, Shape1};
///
/// let dropout = Dropout::<Shape1<U1000>>::new(0.5).unwrap();
/// let x = Batch::filled(1, 1.0);
/// assert_eq!(dropout.predict(&x), x); // the identity at inference
/// let y = dropout.predict_training(&x, &mut seeded_rng(0));
/// let kept = y.as_slice().iter().filter(|&&v| v == 2.0).count(); // scaled by 1 / (1 - rate)
/// assert!(y.as_slice().iter().all(|&v| v == 0.0 || v == 2.0) && kept > 400 && kept < 600);
/// ```
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

impl<S: Shape> Dropout<S> {
    /// Drops units of `values` in place with the training stream, returning
    /// each unit's factor (0 or `1 / (1 - rate)`); `None` at inference or
    /// with a zero rate, where dropout is the identity.
    fn drop_in_place(&self, values: &mut Batch<S>, ctx: &mut Context<'_>) -> Option<Batch<S>> {
        if self.rate == 0.0 || !ctx.is_training() {
            return None;
        }
        let mut mask = ctx.take_batch::<S>(values.batch_size());
        let rng = ctx.rng().expect("training mode has a random stream");
        draw_mask(rng, self.rate, mask.as_mut_slice(), values.as_mut_slice());
        Some(mask)
    }
}

/// Units whose random words [`draw_mask`] draws at once.
const MASK_CHUNK: usize = 256;

/// Fills `mask` with each unit's factor (0 with probability `rate`, else
/// `1 / (1 - rate)`) and multiplies `values` by it. The words are drawn in
/// chunks (one call of the stream per chunk rather than per unit), and
/// each is turned into a uniform `[0, 1)` draw exactly as `rng.random::<f32>()`
/// does (its top 24 bits), so block generators such as the seeded one give
/// the masks a draw per unit gives.
fn draw_mask(rng: &mut dyn RngCore, rate: f32, mask: &mut [f32], values: &mut [f32]) {
    let keep = 1.0 / (1.0 - rate);
    let scale = 1.0 / (1u32 << 24) as f32;
    let mut bytes = [0u8; 4 * MASK_CHUNK];
    for (m, v) in mask
        .chunks_mut(MASK_CHUNK)
        .zip(values.chunks_mut(MASK_CHUNK))
    {
        let bytes = &mut bytes[..4 * m.len()];
        rng.fill_bytes(bytes);
        for ((m, v), word) in m.iter_mut().zip(v).zip(bytes.chunks_exact(4)) {
            let word = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            let draw = (word >> 8) as f32 * scale;
            *m = if draw < rate { 0.0 } else { keep };
            *v *= *m;
        }
    }
}

impl<S: Shape> Layer for Dropout<S> {
    type Input = S;
    type Output = S;
    /// Each unit's factor, or `None` where dropout was the identity.
    type Tape = Option<Batch<S>>;

    fn kind(&self) -> &'static str {
        "Dropout"
    }

    fn forward_into(&self, input: &Batch<S>, out: &mut Batch<S>, ctx: &mut Context<'_>) {
        out.copy_from(input);
        if let Some(mask) = self.drop_in_place(out, ctx) {
            ctx.recycle(mask);
        }
    }

    fn forward_owned(&self, mut input: Batch<S>, ctx: &mut Context<'_>) -> Batch<S> {
        if let Some(mask) = self.drop_in_place(&mut input, ctx) {
            ctx.recycle(mask);
        }
        input
    }

    fn forward_taped(
        &mut self,
        mut input: Batch<S>,
        ctx: &mut Context<'_>,
    ) -> (Batch<S>, Self::Tape) {
        let mask = self.drop_in_place(&mut input, ctx);
        (input, mask)
    }

    fn backward(
        &mut self,
        mask: Self::Tape,
        mut grad: Batch<S>,
        ctx: &mut Context<'_>,
    ) -> Batch<S> {
        if let Some(mask) = mask {
            for (g, m) in grad.as_mut_slice().iter_mut().zip(mask.as_slice()) {
                *g *= m;
            }
            ctx.recycle(mask);
        }
        grad
    }

    /// Nothing: at inference dropout is the identity.
    fn export_onnx(&self, _: &mut OnnxGraph, input: &str) -> Result<String, ExportError> {
        Ok(input.to_string())
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;
    use crate::init::seeded_rng;

    /// The chunked draw gives, from the seeded stream, the mask one
    /// `random::<f32>()` per unit gives, over several chunks and a partial
    /// one, and scales the values by it.
    #[test]
    fn chunked_mask_is_the_per_unit_draw() {
        for rate in [0.25f32, 0.5, 0.9] {
            let n = 3 * MASK_CHUNK + 17;
            let mut per_unit = seeded_rng(11);
            let keep = 1.0 / (1.0 - rate);
            let want: Vec<f32> = (0..n)
                .map(|_| {
                    if per_unit.random::<f32>() < rate {
                        0.0
                    } else {
                        keep
                    }
                })
                .collect();
            let mut mask = vec![f32::NAN; n];
            let mut values: Vec<f32> = (0..n).map(|i| i as f32 - 7.5).collect();
            draw_mask(&mut seeded_rng(11), rate, &mut mask, &mut values);
            assert_eq!(mask, want, "rate {rate}");
            for (i, (v, m)) in values.iter().zip(&want).enumerate() {
                assert_eq!(*v, (i as f32 - 7.5) * m);
            }
            let dropped = mask.iter().filter(|&&m| m == 0.0).count() as f32 / n as f32;
            assert!((dropped - rate).abs() < 0.05, "rate {rate}: {dropped}");
        }
    }
}
