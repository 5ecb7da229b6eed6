//! `BatchNormalization` (Keras's `BatchNormalization`, PyTorch's
//! `BatchNorm2d` / `BatchNorm1d`).
//!
//! Arguments and defaults (Keras 3): `axis = -1` (the channels, the only
//! axis strata normalises over), `momentum = 0.99`, `epsilon = 0.001`,
//! `center = true` (a trained offset `beta`), `scale = true` (a trained
//! factor `gamma`). Gamma starts at 1, beta at 0, the moving mean at 0 and
//! the moving variance at 1.
//!
//! Shape: unchanged; every position of every sample (N, H, W) shares the
//! statistics of its channel.
//!
//! Computation: at inference `gamma * (x - moving_mean) / sqrt(moving_var +
//! epsilon) + beta`. In training the batch's mean and biased variance over
//! N, H, W take the moving statistics' place, and a taped forward pass
//! updates those: `moving = moving * momentum + batch * (1 - momentum)`
//! (Keras's rule, with the biased variance, where PyTorch would use the
//! unbiased one).
//!
//! Weight files (PyTorch's names): `weight` (gamma), `bias` (beta),
//! `running_mean`, `running_var` and `num_batches_tracked` (an I64 count of
//! the training batches seen, which files may leave out).

use core::fmt;
use core::marker::PhantomData;

use rand::RngCore;

use crate::batch::Batch;
use crate::fusion::EpilogueLayer;
use crate::kernels::epilogue::Step;
use crate::kernels::parallel::{for_rows, map_rows};
use crate::layer::{Context, Layer};
use crate::onnx::{Attr, ExportError, OnnxGraph};
use crate::shape::Shape;
use crate::tensor::{Layout, Tensor};

/// Batch normalisation over the last axis of `S`.
///
/// In `sequential!`: `BatchNormalization` or `BatchNormalization(momentum = 0.9)`.
///
/// ```
/// use strata_core::typenum::{U1, U2};
/// use strata_core::{Batch, BatchNormalization, Model, Shape3};
///
/// let bn = BatchNormalization::<Shape3<U1, U1, U2>>::keras_default();
/// // At inference, with the initial moving statistics (mean 0, variance 1):
/// // x / sqrt(1 + epsilon).
/// let y = bn.predict(&Batch::from_vec(1, vec![1.0, -2.0]).unwrap());
/// assert!((y.as_slice()[0] - 1.0 / 1.001f32.sqrt()).abs() < 1e-6);
/// ```
pub struct BatchNormalization<S> {
    /// `weight`: gamma, `[C]`; absent with `scale = false`.
    gamma: Option<Tensor>,
    /// `bias`: beta, `[C]`; absent with `center = false`.
    beta: Option<Tensor>,
    /// `running_mean`, `[C]`.
    moving_mean: Tensor,
    /// `running_var`, `[C]`.
    moving_var: Tensor,
    /// `num_batches_tracked`, `[]`.
    batches: Tensor,
    momentum: f32,
    epsilon: f32,
    types: PhantomData<fn() -> S>,
}

/// A `momentum` outside `[0, 1]` or an `epsilon` that is not positive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BatchNormError {
    /// The momentum given, not in `[0, 1]`.
    Momentum(f32),
    /// The epsilon given, not a positive finite number.
    Epsilon(f32),
}

impl fmt::Display for BatchNormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchNormError::Momentum(m) => write!(
                f,
                "BatchNormalization's momentum must be in [0, 1], but {m} was given"
            ),
            BatchNormError::Epsilon(e) => write!(
                f,
                "BatchNormalization's epsilon must be a positive number, but {e} was given"
            ),
        }
    }
}

impl std::error::Error for BatchNormError {}

/// A batch's own per-channel mean and biased variance.
type Moments = (Vec<f32>, Vec<f32>);

/// What a taped forward pass keeps: the normalised input (for gamma's
/// gradient and the batch statistics' backward pass), the factor it was
/// divided by, and whether the statistics were the batch's own.
pub struct BatchNormTape<S: Shape> {
    normalized: Batch<S>,
    inv_std: Vec<f32>,
    batch_stats: bool,
}

impl<S: Shape> BatchNormalization<S> {
    /// A layer with Keras's initial state (gamma 1, beta 0, moving mean 0,
    /// moving variance 1), or an error unless `0 <= momentum <= 1` and
    /// `epsilon > 0`.
    pub fn new(
        momentum: f32,
        epsilon: f32,
        center: bool,
        scale: bool,
    ) -> Result<Self, BatchNormError> {
        if !(0.0..=1.0).contains(&momentum) {
            return Err(BatchNormError::Momentum(momentum));
        }
        if !(epsilon > 0.0 && epsilon.is_finite()) {
            return Err(BatchNormError::Epsilon(epsilon));
        }
        let c = S::LAST;
        Ok(BatchNormalization {
            gamma: scale.then(|| Tensor::parameter(vec![c], Layout::Plain, 1.0)),
            beta: center.then(|| Tensor::parameter(vec![c], Layout::Plain, 0.0)),
            moving_mean: Tensor::buffer(vec![c], 0.0),
            moving_var: Tensor::buffer(vec![c], 1.0),
            batches: Tensor::counter(),
            momentum,
            epsilon,
            types: PhantomData,
        })
    }

    /// Keras's defaults: momentum 0.99, epsilon 0.001, gamma and beta.
    pub fn keras_default() -> Self {
        Self::new(0.99, 1e-3, true, true).expect("Keras's defaults are valid")
    }

    /// The momentum of the moving statistics.
    pub fn momentum(&self) -> f32 {
        self.momentum
    }

    /// The epsilon added to the variance.
    pub fn epsilon(&self) -> f32 {
        self.epsilon
    }

    /// The moving mean, one value per channel.
    pub fn moving_mean(&self) -> &[f32] {
        self.moving_mean.values()
    }

    /// The moving (biased) variance, one value per channel.
    pub fn moving_variance(&self) -> &[f32] {
        self.moving_var.values()
    }

    /// Training batches seen by taped forward passes (PyTorch's
    /// `num_batches_tracked`).
    pub fn batches_tracked(&self) -> u64 {
        self.batches.values()[0] as u64
    }

    fn inv_std(&self, variances: impl Iterator<Item = f32>) -> Vec<f32> {
        let eps = f64::from(self.epsilon);
        variances
            .map(|v| (1.0 / (f64::from(v) + eps).sqrt()) as f32)
            .collect()
    }

    /// The batch's moments when `ctx`'s mode calls for them, `None` when
    /// the moving ones are to be used (at inference, and for an empty
    /// batch, which has none and nothing to normalise anyway).
    fn batch_stats(&self, x: &[f32], ctx: &Context<'_>) -> Option<Moments> {
        // Keras: a frozen BatchNormalization (`trainable = false`) runs in
        // inference mode, even inside `fit`.
        let batch_stats = ctx.is_training() && self.moving_mean.is_trainable();
        batch_stats.then(|| batch_moments(x, S::LAST)).flatten()
    }

    /// The mean and variance to normalise with: the batch's, if given,
    /// else the moving ones.
    fn stats<'a>(&'a self, batch: &'a Option<Moments>) -> (&'a [f32], &'a [f32]) {
        match batch {
            Some((mean, var)) => (mean, var),
            None => (self.moving_mean.values(), self.moving_var.values()),
        }
    }

    /// The per-channel `(scale, shift)` of the normalisation with `stats`
    /// (see [`fold`]), in the context's scratch: an inference pass
    /// allocates nothing.
    fn folded<'c>(
        &self,
        stats: (&[f32], &[f32]),
        ctx: &'c mut Context<'_>,
    ) -> (&'c [f32], &'c [f32]) {
        let (scale, shift) = ctx.scratch(2 * S::LAST).split_at_mut(S::LAST);
        self.fold_into(stats, scale, shift);
        (scale, shift)
    }

    /// [`fold`] with this layer's gamma, beta and epsilon.
    fn fold_into(&self, stats: (&[f32], &[f32]), scale: &mut [f32], shift: &mut [f32]) {
        let gamma = self.gamma.as_ref().map(Tensor::values);
        let beta = self.beta.as_ref().map(Tensor::values);
        fold((gamma, beta), self.epsilon, stats, scale, shift);
    }

    /// `out = x * scale + shift` with the statistics `stats`, on up to
    /// `ctx`'s threads (see [`affine_into`]).
    fn normalize_into(
        &self,
        stats: (&[f32], &[f32]),
        x: &[f32],
        out: &mut [f32],
        ctx: &mut Context<'_>,
    ) {
        let threads = ctx.threads();
        let (scale, shift) = self.folded(stats, ctx);
        affine_into(threads, x, out, scale, shift);
    }

    /// [`Self::normalize_into`] in place.
    fn normalize_in_place(&self, stats: (&[f32], &[f32]), x: &mut [f32], ctx: &mut Context<'_>) {
        let threads = ctx.threads();
        let (scale, shift) = self.folded(stats, ctx);
        affine_in_place(threads, x, scale, shift);
    }

    /// Folds a batch's statistics into the moving ones, and counts it.
    fn track(&mut self, mean: &[f32], var: &[f32]) {
        let m = self.momentum;
        let blend = |moving: &mut [f32], batch: &[f32]| {
            for (a, b) in moving.iter_mut().zip(batch) {
                *a = *a * m + b * (1.0 - m);
            }
        };
        blend(self.moving_mean.values_mut(), mean);
        blend(self.moving_var.values_mut(), var);
        self.batches.values_mut()[0] += 1.0;
    }
}

/// At inference (or frozen) the normalisation is a per-channel affine map,
/// so it runs inside the convolution before it (see `crate::fusion`).
impl<S: Shape> EpilogueLayer for BatchNormalization<S> {
    fn epilogue_step<'a>(&'a self, ctx: &Context<'_>, store: &'a mut Vec<f32>) -> Option<Step<'a>> {
        if ctx.is_training() && self.moving_mean.is_trainable() {
            // Batch statistics: a reduction over the whole batch first.
            return None;
        }
        store.clear();
        store.resize(2 * S::LAST, 0.0);
        let (scale, shift) = store.split_at_mut(S::LAST);
        let stats = (self.moving_mean.values(), self.moving_var.values());
        self.fold_into(stats, scale, shift);
        let (scale, shift) = store.split_at(S::LAST);
        Some(Step::Affine { scale, shift })
    }
}

impl<S: Shape> Layer for BatchNormalization<S> {
    type Input = S;
    type Output = S;
    type Tape = BatchNormTape<S>;

    fn kind(&self) -> &'static str {
        "BatchNormalization"
    }

    fn forward_into(&self, input: &Batch<S>, out: &mut Batch<S>, ctx: &mut Context<'_>) {
        let batch = self.batch_stats(input.as_slice(), ctx);
        out.resize(input.batch_size());
        self.normalize_into(
            self.stats(&batch),
            input.as_slice(),
            out.as_mut_slice(),
            ctx,
        );
    }

    fn forward_owned(&self, mut input: Batch<S>, ctx: &mut Context<'_>) -> Batch<S> {
        let batch = self.batch_stats(input.as_slice(), ctx);
        self.normalize_in_place(self.stats(&batch), input.as_mut_slice(), ctx);
        input
    }

    fn forward_taped(
        &mut self,
        mut input: Batch<S>,
        ctx: &mut Context<'_>,
    ) -> (Batch<S>, Self::Tape) {
        let batch = self.batch_stats(input.as_slice(), ctx);
        if let Some((mean, var)) = &batch {
            self.track(mean, var);
        }
        let stats = self.stats(&batch);
        let mut out = ctx.take_batch(input.batch_size());
        self.normalize_into(stats, input.as_slice(), out.as_mut_slice(), ctx);
        // The backward pass needs x-hat, which the output no longer shows.
        let inv_std = self.inv_std(stats.1.iter().copied());
        standardize(input.as_mut_slice(), stats.0, &inv_std);
        let tape = BatchNormTape {
            normalized: input,
            inv_std,
            batch_stats: batch.is_some(),
        };
        (out, tape)
    }

    fn backward(
        &mut self,
        tape: Self::Tape,
        mut grad: Batch<S>,
        ctx: &mut Context<'_>,
    ) -> Batch<S> {
        let c = S::LAST;
        let xhat = tape.normalized.as_slice();
        // Per channel: the sum of the gradient, and of it times x-hat.
        let (mut sum_g, mut sum_gx) = (vec![0.0f64; c], vec![0.0f64; c]);
        for (g, x) in grad.as_slice().chunks_exact(c).zip(xhat.chunks_exact(c)) {
            for k in 0..c {
                sum_g[k] += f64::from(g[k]);
                sum_gx[k] += f64::from(g[k]) * f64::from(x[k]);
            }
        }
        if let Some(beta) = &mut self.beta {
            let gb = beta.grad_mut();
            gb.iter_mut().zip(&sum_g).for_each(|(a, s)| *a += *s as f32);
        }
        let gamma = match &mut self.gamma {
            Some(t) => {
                let gg = t.grad_mut();
                gg.iter_mut()
                    .zip(&sum_gx)
                    .for_each(|(a, s)| *a += *s as f32);
                t.values().to_vec()
            }
            None => vec![1.0; c],
        };
        let scale: Vec<f32> = gamma
            .iter()
            .zip(&tape.inv_std)
            .map(|(g, s)| g * s)
            .collect();
        let count = (xhat.len() / c.max(1)).max(1) as f64;
        if tape.batch_stats {
            // The batch's mean and variance depend on every input: the
            // gradient loses its mean and its projection on x-hat.
            let mean_g: Vec<f32> = sum_g.iter().map(|s| (s / count) as f32).collect();
            let mean_gx: Vec<f32> = sum_gx.iter().map(|s| (s / count) as f32).collect();
            for (g, x) in grad
                .as_mut_slice()
                .chunks_exact_mut(c)
                .zip(xhat.chunks_exact(c))
            {
                for k in 0..c {
                    g[k] = scale[k] * (g[k] - mean_g[k] - x[k] * mean_gx[k]);
                }
            }
        } else {
            for g in grad.as_mut_slice().chunks_exact_mut(c) {
                g.iter_mut().zip(&scale).for_each(|(v, s)| *v *= s);
            }
        }
        ctx.recycle(tape.normalized);
        grad
    }

    crate::declare_tensors!(
        weight: gamma,
        bias: beta,
        running_mean: moving_mean,
        running_var: moving_var,
        num_batches_tracked: batches,
    );

    fn initialize(&mut self, _: &mut dyn RngCore) {
        let reset = |t: &mut Tensor, v: f32| t.values_mut().fill(v);
        if let Some(g) = &mut self.gamma {
            reset(g, 1.0);
        }
        if let Some(b) = &mut self.beta {
            reset(b, 0.0);
        }
        reset(&mut self.moving_mean, 0.0);
        reset(&mut self.moving_var, 1.0);
        reset(&mut self.batches, 0.0);
    }

    /// ONNX's `BatchNormalization` in its inference form (the moving
    /// statistics), on axis 1: the channels of NCHW, the features of
    /// `[N, C]`. An absent gamma or beta is written as ones or zeros.
    fn export_onnx(&self, g: &mut OnnxGraph, input: &str) -> Result<String, ExportError> {
        let c = S::LAST;
        let or_fill =
            |t: &Option<Tensor>, v: f32| t.as_ref().map_or(vec![v; c], |t| t.values().to_vec());
        let scale = g.initializer("weight", &[c], &or_fill(&self.gamma, 1.0))?;
        let bias = g.initializer("bias", &[c], &or_fill(&self.beta, 0.0))?;
        let mean = g.initializer("running_mean", &[c], self.moving_mean.values())?;
        let var = g.initializer("running_var", &[c], self.moving_var.values())?;
        let attrs = [("epsilon", Attr::Float(self.epsilon))];
        Ok(g.node(
            "BatchNormalization",
            &[input, &scale, &bias, &mean, &var],
            &attrs,
        ))
    }
}

// The arithmetic, free of the shape type: every shape of the layer shares
// one copy of it (and of the thread pool's code its closures instantiate),
// which keeps networks with dozens of BatchNormalization shapes quick to
// compile.

/// The batch's mean and biased variance for each of `c` channels (in
/// `f64`, two passes), or `None` for an empty batch, which has none.
fn batch_moments(x: &[f32], c: usize) -> Option<Moments> {
    let count = x.len() / c.max(1);
    if count == 0 {
        return None;
    }
    let mut sum = vec![0.0f64; c];
    for row in x.chunks_exact(c) {
        sum.iter_mut()
            .zip(row)
            .for_each(|(s, v)| *s += f64::from(*v));
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / count as f64).collect();
    let mut sq = vec![0.0f64; c];
    for row in x.chunks_exact(c) {
        for ((s, v), m) in sq.iter_mut().zip(row).zip(&mean) {
            let d = f64::from(*v) - m;
            *s += d * d;
        }
    }
    let var = sq.iter().map(|s| (s / count as f64) as f32).collect();
    Some((mean.iter().map(|m| *m as f32).collect(), var))
}

/// The per-channel `scale` and `shift` of the normalisation with `mean`
/// and `var` written as `y = x * scale + shift`, gamma and beta (when
/// present) included: `scale = gamma / sqrt(var + epsilon)` and
/// `shift = beta - mean * scale`, as TensorFlow's `batch_normalization`
/// (Keras's) computes it. Folded in `f64`, so that the values only see the
/// rounding of the one multiply-add.
fn fold(
    (gamma, beta): (Option<&[f32]>, Option<&[f32]>),
    epsilon: f32,
    (mean, var): (&[f32], &[f32]),
    scale: &mut [f32],
    shift: &mut [f32],
) {
    let eps = f64::from(epsilon);
    for k in 0..scale.len() {
        let s = gamma.map_or(1.0, |g| f64::from(g[k])) / (f64::from(var[k]) + eps).sqrt();
        let b = beta.map_or(0.0, |b| f64::from(b[k]));
        scale[k] = s as f32;
        shift[k] = (b - f64::from(mean[k]) * s) as f32;
    }
}

/// `out = x * scale + shift` per channel (the last axis, `scale.len()`
/// values), over whole rows on up to `threads` threads: one multiply and
/// one add per value whichever thread computes it, so every thread count
/// gives the same bits, and so does [`affine_in_place`].
fn affine_into(threads: usize, x: &[f32], out: &mut [f32], scale: &[f32], shift: &[f32]) {
    let c = scale.len();
    map_rows(threads, x, out, c, |x, out| {
        for (x, out) in x.chunks_exact(c).zip(out.chunks_exact_mut(c)) {
            for (((y, v), s), b) in out.iter_mut().zip(x).zip(scale).zip(shift) {
                *y = v * s + b;
            }
        }
    });
}

/// [`affine_into`] in place.
fn affine_in_place(threads: usize, x: &mut [f32], scale: &[f32], shift: &[f32]) {
    let c = scale.len();
    for_rows(threads, x, c, |x| {
        for x in x.chunks_exact_mut(c) {
            for ((v, s), b) in x.iter_mut().zip(scale).zip(shift) {
                *v = *v * s + b;
            }
        }
    });
}

/// `x = (x - mean) * inv_std` per channel, in place: the tape's x-hat.
fn standardize(x: &mut [f32], mean: &[f32], inv_std: &[f32]) {
    for row in x.chunks_exact_mut(mean.len()) {
        for ((v, m), s) in row.iter_mut().zip(mean).zip(inv_std) {
            *v = (*v - m) * s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::seeded_rng;
    use crate::shape::{Shape1, Shape3};
    use rand::Rng;
    use typenum::{U1, U2, U3};

    type Map = Shape3<U2, U2, U3>;

    #[test]
    fn inference_uses_the_moving_statistics() {
        let mut bn = BatchNormalization::<Shape1<U2>>::keras_default();
        assert!(bn.import_param("weight", &[2.0, 1.0]));
        assert!(bn.import_param("bias", &[0.5, 0.0]));
        assert!(bn.import_param("running_mean", &[1.0, -1.0]));
        // var + 0.001 = 4 and 1: the square roots are 2 and 1.
        assert!(bn.import_param("running_var", &[3.999, 0.999]));
        let x = Batch::from_vec(1, vec![3.0, 2.0]).unwrap();
        let y = bn.forward(&x, &mut Context::inference());
        // (3 - 1) / 2 * 2 + 0.5 and (2 + 1) / 1 * 1 + 0.
        assert!((y.as_slice()[0] - 2.5).abs() < 1e-5, "{:?}", y.as_slice());
        assert!((y.as_slice()[1] - 3.0).abs() < 1e-5, "{:?}", y.as_slice());
    }

    #[test]
    fn training_uses_the_batch_and_a_taped_pass_tracks_it() {
        let mut bn = BatchNormalization::<Shape1<U1>>::new(0.9, 1e-3, true, true).unwrap();
        let x = Batch::from_vec(4, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        // Mean 2.5, biased variance 1.25.
        let inv = 1.0 / (1.25f64 + 1e-3).sqrt();
        let expected: Vec<f32> = [-1.5, -0.5, 0.5, 1.5]
            .iter()
            .map(|d| (d * inv) as f32)
            .collect();
        let mut rng = seeded_rng(0);
        let y = bn.forward(&x, &mut Context::training(&mut rng));
        for (a, b) in y.as_slice().iter().zip(&expected) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        // An untaped pass changes nothing.
        assert_eq!(
            (bn.moving_mean(), bn.moving_variance()),
            (&[0.0][..], &[1.0][..])
        );
        let (y, _) = bn.forward_taped(x.clone(), &mut Context::training(&mut rng));
        for (a, b) in y.as_slice().iter().zip(&expected) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        // 0 * 0.9 + 2.5 * 0.1 and 1 * 0.9 + 1.25 * 0.1.
        assert!((bn.moving_mean()[0] - 0.25).abs() < 1e-6);
        assert!((bn.moving_variance()[0] - 1.025).abs() < 1e-6);
        assert_eq!(bn.batches_tracked(), 1);
        // An inference-mode taped pass tracks nothing.
        bn.forward_taped(x, &mut Context::inference());
        assert_eq!(bn.batches_tracked(), 1);
    }

    #[test]
    fn bad_momentum_or_epsilon_is_an_error() {
        for m in [-0.1, 1.5, f32::NAN] {
            let e = BatchNormalization::<Map>::new(m, 1e-3, true, true).err();
            assert!(matches!(e, Some(BatchNormError::Momentum(_))), "{m}");
        }
        for eps in [0.0, -1e-3, f32::NAN, f32::INFINITY] {
            let e = BatchNormalization::<Map>::new(0.99, eps, true, true).err();
            assert!(matches!(e, Some(BatchNormError::Epsilon(_))), "{eps}");
            assert!(e
                .unwrap()
                .to_string()
                .contains("epsilon must be a positive number"));
        }
        assert!(BatchNormalization::<Map>::new(0.0, 1e-5, true, true).is_ok());
        assert!(BatchNormalization::<Map>::new(1.0, 1e-5, true, true).is_ok());
    }

    #[test]
    fn tensors_have_pytorch_names_and_keras_counts() {
        let bn = BatchNormalization::<Map>::keras_default();
        let names: Vec<String> = bn.params().into_iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "weight",
                "bias",
                "running_mean",
                "running_var",
                "num_batches_tracked"
            ]
        );
        assert_eq!(bn.params()[4].shape, Vec::<usize>::new());
        assert_eq!(bn.params()[4].dtype, crate::tensor::Dtype::I64);
        assert_eq!((bn.param_count(), bn.trainable_param_count()), (12, 6));
        let bare = BatchNormalization::<Map>::new(0.99, 1e-3, false, false).unwrap();
        let names: Vec<String> = bare.params().into_iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            ["running_mean", "running_var", "num_batches_tracked"]
        );
        assert_eq!((bare.param_count(), bare.trainable_param_count()), (6, 0));
    }

    /// A layer with random statistics and affine parameters, and a random
    /// input: far from the initial state, so no gradient is trivially 0.
    fn random_layer(center: bool, scale: bool) -> (BatchNormalization<Map>, Batch<Map>, Vec<f32>) {
        let mut rng = seeded_rng(7);
        let mut bn = BatchNormalization::<Map>::new(0.9, 1e-3, center, scale).unwrap();
        let mut draw = |n: usize, lo: f32, hi: f32| -> Vec<f32> {
            (0..n).map(|_| rng.random_range(lo..hi)).collect()
        };
        let (gamma, beta, mean, var) = (
            draw(3, 0.5, 1.5),
            draw(3, -0.5, 0.5),
            draw(3, -0.5, 0.5),
            draw(3, 0.5, 2.0),
        );
        bn.import_param("weight", &gamma);
        bn.import_param("bias", &beta);
        bn.import_param("running_mean", &mean);
        bn.import_param("running_var", &var);
        let x = Batch::from_vec(3, draw(36, -1.0, 1.0)).unwrap();
        let w = draw(36, -1.0, 1.0);
        (bn, x, w)
    }

    /// `sum(y * w)`: a loss whose gradient with respect to `y` is `w`.
    fn loss(bn: &BatchNormalization<Map>, x: &Batch<Map>, w: &[f32], training: bool) -> f64 {
        let mut rng = seeded_rng(0);
        let mut ctx = if training {
            Context::training(&mut rng)
        } else {
            Context::inference()
        };
        let y = bn.forward(x, &mut ctx);
        y.as_slice()
            .iter()
            .zip(w)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum()
    }

    fn check_gradients(training: bool, center: bool, scale: bool) {
        let (mut bn, x, w) = random_layer(center, scale);
        let mut rng = seeded_rng(0);
        let mut ctx = if training {
            Context::training(&mut rng)
        } else {
            Context::inference()
        };
        let before = bn.export_param("running_mean");
        let frozen = random_layer(center, scale).0;
        let (_, tape) = bn.forward_taped(x.clone(), &mut ctx);
        let gx = bn.backward(tape, Batch::from_vec(3, w.clone()).unwrap(), &mut ctx);
        assert_eq!(bn.export_param("running_mean") != before, training);
        // Finite differences of the layer as it was (its statistics moved).
        let h = 1e-2f32;
        for i in 0..x.as_slice().len() {
            let (mut plus, mut minus) = (x.clone(), x.clone());
            plus.as_mut_slice()[i] += h;
            minus.as_mut_slice()[i] -= h;
            let numeric = (loss(&frozen, &plus, &w, training)
                - loss(&frozen, &minus, &w, training))
                / (2.0 * f64::from(h));
            let analytic = f64::from(gx.as_slice()[i]);
            assert!(
                (numeric - analytic).abs() < 2e-3,
                "dx[{i}]: {analytic} vs {numeric} (training {training})"
            );
        }
        for key in ["weight", "bias"] {
            let Some(grad) = bn.export_grad(key) else {
                continue;
            };
            let values = frozen.export_param(key).unwrap();
            for (k, g) in grad.iter().enumerate() {
                let at = |d: f32| {
                    let mut layer = random_layer(center, scale).0;
                    let mut v = values.clone();
                    v[k] += d;
                    layer.import_param(key, &v);
                    loss(&layer, &x, &w, training)
                };
                let numeric = (at(h) - at(-h)) / (2.0 * f64::from(h));
                assert!(
                    (numeric - f64::from(*g)).abs() < 2e-3,
                    "{key}[{k}]: {g} vs {numeric}"
                );
            }
        }
    }

    #[test]
    fn inference_gradients_match_finite_differences() {
        check_gradients(false, true, true);
        check_gradients(false, false, false);
    }

    #[test]
    fn training_gradients_through_the_batch_statistics_match_finite_differences() {
        check_gradients(true, true, true);
        check_gradients(true, true, false);
        check_gradients(true, false, true);
    }

    #[test]
    fn the_count_saves_as_an_i64_scalar_and_may_be_left_out() {
        use crate::weights::{load_params, save_params, serialize_f32};
        let (mut bn, x, _) = random_layer(true, true);
        bn.forward_taped(x, &mut Context::training(&mut seeded_rng(0)));
        let bytes = save_params(&bn).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let count = file.tensor("num_batches_tracked").unwrap();
        assert_eq!(
            (count.dtype(), count.shape()),
            (safetensors::Dtype::I64, &[][..])
        );
        assert_eq!(count.data(), 1i64.to_le_bytes());

        let mut fresh = BatchNormalization::<Map>::keras_default();
        load_params(&mut fresh, &bytes).unwrap();
        assert_eq!(fresh.batches_tracked(), 1);
        assert_eq!(fresh.moving_mean(), bn.moving_mean());

        // Without the count: everything else loads, the count stays.
        let names = ["weight", "bias", "running_mean", "running_var"];
        let values: Vec<Vec<f32>> = names.iter().map(|k| bn.export_param(k).unwrap()).collect();
        let shape = [3usize];
        let bytes = serialize_f32(
            names
                .iter()
                .zip(&values)
                .map(|(k, v)| (*k, &shape[..], v.as_slice())),
        )
        .unwrap();
        let mut fresh = BatchNormalization::<Map>::keras_default();
        load_params(&mut fresh, &bytes).unwrap();
        assert_eq!(
            (fresh.batches_tracked(), fresh.moving_variance()),
            (0, bn.moving_variance())
        );
    }

    /// The inference pass is one multiply-add per value with gamma, beta
    /// and the statistics folded: within float rounding of the formula,
    /// and bitwise the same on any number of threads (2.4M values: the
    /// pass splits over them).
    #[test]
    fn inference_folds_into_one_affine_pass_on_any_thread_count() {
        let (bn, _, _) = random_layer(true, true);
        let mut rng = seeded_rng(3);
        let n = 200_000;
        let values = (0..n * 12).map(|_| rng.random_range(-3.0..3.0)).collect();
        let x = Batch::<Map>::from_vec(n, values).unwrap();
        let y = bn.forward(&x, &mut Context::inference().with_threads(1));
        for threads in [2, 3] {
            let mut ctx = Context::inference().with_threads(threads);
            assert_eq!(bn.forward(&x, &mut ctx).as_slice(), y.as_slice());
            assert_eq!(
                bn.forward_owned(x.clone(), &mut ctx).as_slice(),
                y.as_slice()
            );
        }
        let param = |k: &str| bn.export_param(k).unwrap();
        let (gamma, beta, mean, var) = (
            param("weight"),
            param("bias"),
            param("running_mean"),
            param("running_var"),
        );
        for (i, (v, out)) in x.as_slice().iter().zip(y.as_slice()).enumerate() {
            let k = i % 3;
            let sd = (f64::from(var[k]) + 1e-3).sqrt();
            let exact = (f64::from(*v) - f64::from(mean[k])) / sd * f64::from(gamma[k])
                + f64::from(beta[k]);
            assert!(
                (f64::from(*out) - exact).abs() < 2e-6,
                "{i}: {out} vs {exact}"
            );
        }
    }

    #[test]
    fn owned_and_taped_passes_agree_with_forward_into() {
        let (mut bn, x, _) = random_layer(true, true);
        for training in [false, true] {
            let mut rng = seeded_rng(0);
            let mut ctx = if training {
                Context::training(&mut rng)
            } else {
                Context::inference()
            };
            let y = bn.forward(&x, &mut ctx);
            assert_eq!(
                bn.forward_owned(x.clone(), &mut ctx).as_slice(),
                y.as_slice()
            );
            assert_eq!(
                bn.forward_taped(x.clone(), &mut ctx).0.as_slice(),
                y.as_slice()
            );
        }
        // An empty batch is no error in either mode, and tracks nothing.
        let mut rng = seeded_rng(0);
        let (y, _) = bn.forward_taped(Batch::zeros(0), &mut Context::training(&mut rng));
        assert_eq!(y.batch_size(), 0);
        assert_eq!(bn.batches_tracked(), 1);
    }
}
