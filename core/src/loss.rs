//! Losses (Keras's), the targets they compare a model's output with, and
//! the accuracy that goes with them.
//!
//! A loss is computed per *row*, a vector along the output's last axis (one
//! per sample for a `Shape1` output, one per pixel for a `Shape3` one), and
//! averaged over the rows, as Keras does.

use core::fmt;
use core::marker::PhantomData;

use crate::batch::Batch;
use crate::shape::Shape;

/// Keras clips probabilities into `[EPSILON, 1 - EPSILON]` before taking logs.
pub const EPSILON: f32 = 1e-7;

/// A loss function.
///
/// Integer class labels go with the sparse losses, one-hot rows (a `Batch`
/// of the output's shape) with the others:
///
/// ```
/// use strata_core::typenum::U3;
/// use strata_core::{seeded_rng, Adam, Batch, Dense, Loss, Model, Shape1, Softmax};
///
/// let mut net: Dense<Shape1<U3>, U3, Softmax> = Dense::new(true, &mut seeded_rng(0));
/// let x = Batch::<Shape1<U3>>::from_vec(2, vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).unwrap();
/// let sparse = net.loss_and_gradients(&x, &[0, 2], Loss::sparse_categorical_crossentropy()).unwrap();
/// let one_hot = Batch::<Shape1<U3>>::from_vec(2, vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0]).unwrap();
/// let dense = net.loss_and_gradients(&x, &one_hot, Loss::categorical_crossentropy()).unwrap();
/// assert!((sparse.loss - dense.loss).abs() < 1e-6);
///
/// // Keras: model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
/// let model = net.compile(Loss::sparse_categorical_crossentropy(), Adam::default());
/// assert_eq!(model.loss().name(), "sparse_categorical_crossentropy");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// `-Σ y log p` over the last axis; `from_logits` applies softmax first.
    /// On a model ending in softmax it is fused with it: the gradient of
    /// the softmax input is `p - y`, with no division by `p`.
    CategoricalCrossentropy {
        /// Whether the output is logits rather than probabilities.
        from_logits: bool,
    },
    /// Categorical cross-entropy with integer class labels.
    SparseCategoricalCrossentropy {
        /// Whether the output is logits rather than probabilities.
        from_logits: bool,
    },
    /// `-(y log p + (1 - y) log(1 - p))`, averaged over the last axis.
    BinaryCrossentropy {
        /// Whether the output is logits rather than probabilities.
        from_logits: bool,
    },
    /// `(p - y)²`, averaged over the last axis.
    MeanSquaredError,
}

impl Loss {
    /// Categorical cross-entropy on probabilities (a softmax output).
    pub const fn categorical_crossentropy() -> Loss {
        Loss::CategoricalCrossentropy { from_logits: false }
    }

    /// Sparse categorical cross-entropy on probabilities.
    pub const fn sparse_categorical_crossentropy() -> Loss {
        Loss::SparseCategoricalCrossentropy { from_logits: false }
    }

    /// Binary cross-entropy on probabilities (a sigmoid output).
    pub const fn binary_crossentropy() -> Loss {
        Loss::BinaryCrossentropy { from_logits: false }
    }

    /// Mean squared error.
    pub const fn mean_squared_error() -> Loss {
        Loss::MeanSquaredError
    }

    /// Keras's name for it.
    pub fn name(&self) -> &'static str {
        match self {
            Loss::CategoricalCrossentropy { .. } => "categorical_crossentropy",
            Loss::SparseCategoricalCrossentropy { .. } => "sparse_categorical_crossentropy",
            Loss::BinaryCrossentropy { .. } => "binary_crossentropy",
            Loss::MeanSquaredError => "mean_squared_error",
        }
    }

    /// Whether this loss, on a model whose output is a softmax, takes over
    /// the softmax's backward pass (see [`Loss::CategoricalCrossentropy`]).
    pub fn fuses_softmax(&self) -> bool {
        matches!(
            self,
            Loss::CategoricalCrossentropy { from_logits: false }
                | Loss::SparseCategoricalCrossentropy { from_logits: false }
        )
    }
}

/// What a model's output is compared with: a batch of the output's own
/// shape (one-hot labels, probabilities, regression targets), or one class
/// index per row.
pub struct Targets<'a, S> {
    kind: TargetKind<'a>,
    shape: PhantomData<fn() -> S>,
}

#[derive(Clone, Copy)]
enum TargetKind<'a> {
    Values(&'a [f32], usize),
    Classes(&'a [usize]),
}

impl<S> Clone for Targets<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S> Copy for Targets<'_, S> {}

impl<'a, S: Shape> From<&'a Batch<S>> for Targets<'a, S> {
    fn from(b: &'a Batch<S>) -> Self {
        Targets {
            kind: TargetKind::Values(b.as_slice(), b.batch_size()),
            shape: PhantomData,
        }
    }
}

impl<'a, S: Shape> From<&'a [usize]> for Targets<'a, S> {
    fn from(classes: &'a [usize]) -> Self {
        Targets {
            kind: TargetKind::Classes(classes),
            shape: PhantomData,
        }
    }
}

impl<'a, S: Shape> From<&'a Vec<usize>> for Targets<'a, S> {
    fn from(classes: &'a Vec<usize>) -> Self {
        Self::from(classes.as_slice())
    }
}

impl<'a, S: Shape, const N: usize> From<&'a [usize; N]> for Targets<'a, S> {
    fn from(classes: &'a [usize; N]) -> Self {
        Self::from(classes.as_slice())
    }
}

/// Targets that do not fit the model's output or the inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetError {
    /// Not one target per sample (or per output row).
    Count {
        /// Targets expected: the number of output rows.
        expected: usize,
        /// Targets given.
        found: usize,
    },
    /// A class index not below the number of classes.
    ClassOutOfRange {
        /// Position of the offending label.
        index: usize,
        /// The label.
        label: usize,
        /// The number of classes (the output's last axis).
        classes: usize,
    },
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::Count { expected, found } => write!(
                f,
                "expected {expected} targets (one per sample and output position), but {found} were given"
            ),
            TargetError::ClassOutOfRange { index, label, classes } => write!(
                f,
                "label {label} at position {index} is not a class: the model has {classes} classes (0..{})",
                classes.saturating_sub(1)
            ),
        }
    }
}

impl std::error::Error for TargetError {}

impl<'a, S: Shape> Targets<'a, S> {
    fn rows_per_sample() -> usize {
        S::NUMEL / S::LAST.max(1)
    }

    /// Checks the targets against `samples` samples of output `S`.
    pub fn check(&self, samples: usize) -> Result<(), TargetError> {
        match self.kind {
            TargetKind::Values(_, n) if n != samples => Err(TargetError::Count {
                expected: samples,
                found: n,
            }),
            TargetKind::Values(..) => Ok(()),
            TargetKind::Classes(c) => {
                let expected = samples * Self::rows_per_sample();
                if c.len() != expected {
                    return Err(TargetError::Count {
                        expected,
                        found: c.len(),
                    });
                }
                match c.iter().position(|&l| l >= S::LAST) {
                    Some(index) => Err(TargetError::ClassOutOfRange {
                        index,
                        label: c[index],
                        classes: S::LAST,
                    }),
                    None => Ok(()),
                }
            }
        }
    }

    /// The targets of samples `indices`, in that order, as an owned
    /// one-row-per-position buffer (values) or class list.
    pub(crate) fn gather(&self, indices: &[usize]) -> OwnedTargets {
        let rows = Self::rows_per_sample();
        match self.kind {
            TargetKind::Values(v, _) => OwnedTargets::Values(
                indices
                    .iter()
                    .flat_map(|&i| &v[i * S::NUMEL..(i + 1) * S::NUMEL])
                    .copied()
                    .collect(),
            ),
            TargetKind::Classes(c) => OwnedTargets::Classes(
                indices
                    .iter()
                    .flat_map(|&i| &c[i * rows..(i + 1) * rows])
                    .copied()
                    .collect(),
            ),
        }
    }

    /// The class of sample `i`, as Keras reads it for `class_weight`: its
    /// label, the index of the largest value of a one-hot (or probability)
    /// target, or a single target value rounded (binary labels). `None`
    /// when samples have several output rows (a per-pixel output).
    pub(crate) fn class_of(&self, i: usize) -> Option<usize> {
        if Self::rows_per_sample() != 1 {
            return None;
        }
        Some(match self.kind {
            TargetKind::Classes(c) => c[i],
            TargetKind::Values(v, _) if S::LAST == 1 => v[i].round().max(0.0) as usize,
            TargetKind::Values(v, _) => argmax(&v[i * S::LAST..(i + 1) * S::LAST]),
        })
    }

    /// All the targets, as an owned buffer.
    pub(crate) fn to_owned_targets(self) -> OwnedTargets {
        match self.kind {
            TargetKind::Values(v, _) => OwnedTargets::Values(v.to_vec()),
            TargetKind::Classes(c) => OwnedTargets::Classes(c.to_vec()),
        }
    }
}

/// Targets for one batch, already checked.
#[derive(Clone, Debug)]
pub(crate) enum OwnedTargets {
    Values(Vec<f32>),
    Classes(Vec<usize>),
}

impl OwnedTargets {
    /// Borrows these targets of `samples` samples as [`Targets`].
    pub(crate) fn as_targets<S>(&self, samples: usize) -> Targets<'_, S> {
        let kind = match self {
            OwnedTargets::Values(v) => TargetKind::Values(v, samples),
            OwnedTargets::Classes(c) => TargetKind::Classes(c),
        };
        Targets {
            kind,
            shape: PhantomData,
        }
    }

    /// Row `r`'s target as a dense vector of `last` values.
    fn row(&self, r: usize, last: usize, buf: &mut Vec<f32>) {
        buf.clear();
        match self {
            OwnedTargets::Values(v) => buf.extend_from_slice(&v[r * last..(r + 1) * last]),
            OwnedTargets::Classes(c) => {
                buf.resize(last, 0.0);
                buf[c[r]] = 1.0;
            }
        }
    }
}

/// A loss's value on a batch, its gradient and the accuracy.
#[derive(Clone, Debug)]
pub(crate) struct LossValue {
    /// Mean over rows.
    pub loss: f32,
    /// Gradient of the mean with respect to the output (or, when fused, to
    /// the final softmax's input).
    pub grad: Vec<f32>,
    /// Correct predictions.
    pub correct: usize,
    /// Predictions counted for accuracy.
    pub counted: usize,
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

fn log_softmax(z: &[f32], out: &mut Vec<f32>) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = z.iter().map(|v| (v - max).exp()).sum::<f32>().ln() + max;
    out.clear();
    out.extend(z.iter().map(|v| v - lse));
}

impl Loss {
    /// The loss of `output` (rows of `last` values) against `targets`, and
    /// its gradient. `fused`: the output is a softmax whose backward pass
    /// this gradient replaces. (Training goes through
    /// [`Loss::evaluate_weighted`]; this unweighted form serves the tests.)
    #[cfg(test)]
    pub(crate) fn evaluate(
        &self,
        output: &[f32],
        targets: &OwnedTargets,
        last: usize,
        fused: bool,
    ) -> LossValue {
        self.evaluate_weighted(output, targets, last, fused, None)
    }

    /// [`Loss::evaluate`] with a weight per sample, as Keras's
    /// `sample_weight`: each row's loss (and gradient) is multiplied by its
    /// sample's weight, and the mean still divides by the number of rows,
    /// not by the weights' sum (Keras's `sum_over_batch_size`). An output
    /// of several rows per sample gives each of them the sample's weight.
    pub(crate) fn evaluate_weighted(
        &self,
        output: &[f32],
        targets: &OwnedTargets,
        last: usize,
        fused: bool,
        sample_weights: Option<&[f32]>,
    ) -> LossValue {
        let last = last.max(1);
        let rows = output.len() / last;
        let scale = 1.0 / rows.max(1) as f32;
        let mut grad = vec![0.0f32; output.len()];
        let mut total = 0.0f64;
        let mut correct = 0;
        let mut counted = 0;
        let mut y = Vec::with_capacity(last);
        let mut logp = Vec::with_capacity(last);
        let rows_per_sample = sample_weights.map_or(1, |w| (rows / w.len().max(1)).max(1));
        for r in 0..rows {
            let p = &output[r * last..(r + 1) * last];
            let g = &mut grad[r * last..(r + 1) * last];
            targets.row(r, last, &mut y);
            let total_before = total;
            let y_sum: f32 = y.iter().sum();
            match *self {
                Loss::CategoricalCrossentropy { from_logits }
                | Loss::SparseCategoricalCrossentropy { from_logits } => {
                    if from_logits {
                        log_softmax(p, &mut logp);
                        total -= y
                            .iter()
                            .zip(&logp)
                            .map(|(y, l)| (y * l) as f64)
                            .sum::<f64>();
                        for i in 0..last {
                            g[i] = (logp[i].exp() * y_sum - y[i]) * scale;
                        }
                    } else {
                        // Keras normalises the probabilities and clips them.
                        let p_sum: f32 = p.iter().sum();
                        let mut row = 0.0f64;
                        for i in 0..last {
                            let q = (p[i] / p_sum).clamp(EPSILON, 1.0 - EPSILON);
                            row -= (y[i] * q.ln()) as f64;
                            g[i] = if fused {
                                (p[i] * y_sum - y[i]) * scale
                            } else {
                                // d/dp of -Σ y log(p / Σp), p not clipped.
                                (y_sum - y[i] / q) / p_sum * scale
                            };
                        }
                        total += row;
                    }
                    correct += usize::from(argmax(p) == argmax(&y));
                    counted += 1;
                }
                Loss::BinaryCrossentropy { from_logits } => {
                    let mut row = 0.0f64;
                    let s = scale / last as f32;
                    for i in 0..last {
                        let prob = if from_logits {
                            let z = p[i];
                            row += (z.max(0.0) - z * y[i] + (-z.abs()).exp().ln_1p()) as f64;
                            let sig = 1.0 / (1.0 + (-z).exp());
                            g[i] = (sig - y[i]) * s;
                            sig
                        } else {
                            let q = p[i].clamp(EPSILON, 1.0 - EPSILON);
                            row -= (y[i] * q.ln() + (1.0 - y[i]) * (1.0 - q).ln()) as f64;
                            g[i] = (q - y[i]) / (q * (1.0 - q)) * s;
                            q
                        };
                        correct += usize::from((prob > 0.5) == (y[i] > 0.5));
                        counted += 1;
                    }
                    total += row / last as f64;
                }
                Loss::MeanSquaredError => {
                    let mut row = 0.0f64;
                    for i in 0..last {
                        let d = p[i] - y[i];
                        row += (d * d) as f64;
                        g[i] = 2.0 * d * scale / last as f32;
                    }
                    total += row / last as f64;
                    if last > 1 {
                        correct += usize::from(argmax(p) == argmax(&y));
                        counted += 1;
                    }
                }
            }
            // Every branch adds the row's loss to `total` and writes its
            // gradient to `g`: weighting both weights the row.
            if let Some(w) = sample_weights.map(|w| w[r / rows_per_sample]) {
                total = total_before + (total - total_before) * f64::from(w);
                g.iter_mut().for_each(|v| *v *= w);
            }
        }
        LossValue {
            loss: (total / rows.max(1) as f64) as f32,
            grad,
            correct,
            counted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(v: &[f32]) -> OwnedTargets {
        OwnedTargets::Values(v.to_vec())
    }

    #[test]
    fn cross_entropy_by_hand() {
        let p = [0.7, 0.2, 0.1, 0.25, 0.25, 0.5];
        let y = targets(&[1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        let v = Loss::categorical_crossentropy().evaluate(&p, &y, 3, false);
        let expected = -(0.7f32.ln() + 0.5f32.ln()) / 2.0;
        assert!((v.loss - expected).abs() < 1e-6);
        // Σp = 1 here, so the normalisation adds Σy = 1.
        assert!((v.grad[0] - (1.0 - 1.0 / 0.7) / 2.0).abs() < 1e-6);
        assert_eq!(v.correct, 2);
        let fused = Loss::categorical_crossentropy().evaluate(&p, &y, 3, true);
        assert!((fused.grad[0] - (0.7 - 1.0) / 2.0).abs() < 1e-6);
        assert!((fused.grad[5] - (0.5 - 1.0) / 2.0).abs() < 1e-6);
        let sparse = Loss::sparse_categorical_crossentropy().evaluate(
            &p,
            &OwnedTargets::Classes(vec![0, 2]),
            3,
            false,
        );
        assert_eq!(sparse.loss, v.loss);
    }

    #[test]
    fn logits_and_probabilities_agree() {
        let z = [2.0f32, -1.0, 0.5];
        let m = z.iter().map(|v| v.exp()).sum::<f32>();
        let p: Vec<f32> = z.iter().map(|v| v.exp() / m).collect();
        let y = targets(&[0.0, 0.0, 1.0]);
        let a = Loss::CategoricalCrossentropy { from_logits: true }.evaluate(&z, &y, 3, false);
        let b = Loss::categorical_crossentropy().evaluate(&p, &y, 3, true);
        assert!((a.loss - b.loss).abs() < 1e-6);
        for i in 0..3 {
            assert!((a.grad[i] - b.grad[i]).abs() < 1e-6);
        }
    }

    #[test]
    fn sample_weights_scale_rows_and_divide_by_the_batch_size() {
        // Keras: loss = Σ wᵢ·lossᵢ / N, not / Σ wᵢ. MSE rows: (1-0)² = 1
        // and (3-1)² = 4, weights 2 and 0.5: (2·1 + 0.5·4) / 2 = 2.
        let out = [1.0, 3.0];
        let y = targets(&[0.0, 1.0]);
        let w = [2.0, 0.5];
        let m = Loss::mean_squared_error().evaluate_weighted(&out, &y, 1, false, Some(&w));
        assert!((m.loss - 2.0).abs() < 1e-6);
        // d(w·d²)/dp / N = 2·w·d / 2.
        assert_eq!(m.grad, vec![2.0, 1.0]);
        // Cross-entropy, one weight per sample: (3·-ln 0.7 + 1·-ln 0.5) / 2.
        let p = [0.7, 0.2, 0.1, 0.25, 0.25, 0.5];
        let c = Loss::sparse_categorical_crossentropy().evaluate_weighted(
            &p,
            &OwnedTargets::Classes(vec![0, 2]),
            3,
            true,
            Some(&[3.0, 1.0]),
        );
        let expected = -(3.0 * 0.7f32.ln() + 0.5f32.ln()) / 2.0;
        assert!((c.loss - expected).abs() < 1e-6, "{} vs {expected}", c.loss);
        assert!((c.grad[0] - 3.0 * (0.7 - 1.0) / 2.0).abs() < 1e-6);
        // Two rows per sample (a per-pixel output): each row takes its
        // sample's weight, the mean divides by the 4 rows.
        let px = Loss::mean_squared_error().evaluate_weighted(
            &[1.0, 1.0, 1.0, 1.0],
            &targets(&[0.0; 4]),
            1,
            false,
            Some(&[1.0, 3.0]),
        );
        assert!((px.loss - (1.0 + 1.0 + 3.0 + 3.0) / 4.0).abs() < 1e-6);
    }

    #[test]
    fn binary_and_mse_by_hand() {
        let v = Loss::binary_crossentropy().evaluate(&[0.8, 0.4], &targets(&[1.0, 0.0]), 2, false);
        let expected = -(0.8f32.ln() + 0.6f32.ln()) / 2.0;
        assert!((v.loss - expected).abs() < 1e-6);
        assert_eq!(v.correct, 2);
        let l = Loss::BinaryCrossentropy { from_logits: true }.evaluate(
            &[0.0],
            &targets(&[1.0]),
            1,
            false,
        );
        assert!((l.loss - 2.0f32.ln()).abs() < 1e-6);
        assert!((l.grad[0] + 0.5).abs() < 1e-6);
        let m = Loss::mean_squared_error().evaluate(&[1.0, 3.0], &targets(&[0.0, 1.0]), 2, false);
        assert!((m.loss - 2.5).abs() < 1e-6);
        // d = (1, 2); the gradient of mean(d²) is 2d / 2.
        assert_eq!(m.grad, vec![1.0, 2.0]);
    }
}
