//! Training: Keras's `compile` / `fit` / `evaluate`, the gradients of one
//! batch, and the errors bad training data gets.
//!
//! ```
//! use strata_core::typenum::U2;
//! use strata_core::{Adam, Batch, Dense, FitOptions, Loss, Model, Shape1, seeded_rng};
//!
//! // A single Dense layer learning which of two features is larger.
//! let net: Dense<Shape1<U2>, U2, strata_core::Softmax> = Dense::new(true, &mut seeded_rng(0));
//! let x = Batch::<Shape1<U2>>::from_vec(4, vec![1.0, 0.0, 0.0, 1.0, 0.9, 0.1, 0.2, 0.8]).unwrap();
//! let y = [0, 1, 0, 1];
//! let mut model = net.compile(Loss::sparse_categorical_crossentropy(), Adam::new(0.1));
//! let history = model
//!     .fit(&x, &y, FitOptions { epochs: 30, batch_size: 4, verbose: 0, ..FitOptions::default() })
//!     .unwrap();
//! assert!(history.loss.last().unwrap() < &history.loss[0]);
//! assert_eq!(model.evaluate(&x, &y).unwrap().accuracy, 1.0);
//! ```

use core::fmt;
use std::io::IsTerminal;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::time::Instant;

use rand::seq::SliceRandom;

use crate::batch::Batch;
use crate::callbacks::{
    BatchLogs, Callback, CallbackError, CallbackList, EpochLogs, FitState, TrainingInfo,
};
use crate::init::{seeded_rng, DEFAULT_SEED};
use crate::layer::{default_threads, Context, Layer, Workspace};
use crate::loss::{Loss, OwnedTargets, TargetError, Targets};
use crate::model::BatchOf;
use crate::optim::{HyperparameterError, LearningRateSchedule, Optimizer};
use crate::sample_weights::{per_sample, WeightError};
use crate::shape::Shape;
use crate::tensor::Role;
use crate::weights::SaveError;

/// Why training (or evaluating) could not proceed. The model is unchanged
/// unless said otherwise.
#[derive(Debug)]
pub enum TrainError {
    /// The data set has no samples.
    EmptyDataset,
    /// `batch_size` is 0.
    ZeroBatchSize,
    /// `epochs` is 0.
    ZeroEpochs,
    /// The targets do not fit the inputs or the output.
    Targets(TargetError),
    /// `validation_split` is not in `[0, 1)`, or leaves no training data.
    ValidationSplit {
        /// The split given.
        split: f32,
        /// Samples in the data set.
        samples: usize,
    },
    /// An optimizer hyperparameter is out of range.
    Hyperparameter(HyperparameterError),
    /// A gradient became NaN or infinite while the loss stayed finite (a
    /// NaN input swallowed on the way, an overflow). The update of this
    /// batch was not made (nor its change to running statistics); those of
    /// the batches before it stay applied.
    NonFiniteGradient {
        /// The epoch (1-based).
        epoch: usize,
        /// The batch within the epoch (1-based).
        batch: usize,
    },
    /// The loss became NaN or infinite. The updates of the batches before
    /// it stay applied; the one of this batch was not made (nor its change
    /// to running statistics).
    NonFiniteLoss {
        /// The epoch (1-based, as Keras prints it).
        epoch: usize,
        /// The batch within the epoch (1-based).
        batch: usize,
        /// The value.
        loss: f32,
    },
    /// The learning-rate schedule gave a rate that is NaN, infinite or
    /// negative. Training stopped before the first update of that epoch
    /// (the epochs before it stay applied), and the optimizer keeps the
    /// rate it had.
    LearningRate {
        /// The epoch the rate was for (1-based).
        epoch: usize,
        /// The rate the schedule returned.
        rate: f32,
    },
    /// `sample_weight` or `class_weight` does not fit the data (checked
    /// before the first step).
    Weights(WeightError),
    /// A callback stopped training with an error (a checkpoint it could
    /// not write, a monitored quantity fit does not compute). The epochs
    /// before it stay applied.
    Callback(CallbackError),
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::EmptyDataset => write!(f, "the data set is empty: there is nothing to train on"),
            TrainError::ZeroBatchSize => write!(f, "batch_size must be at least 1, but it is 0"),
            TrainError::ZeroEpochs => write!(f, "epochs must be at least 1, but it is 0"),
            TrainError::Targets(e) => write!(f, "bad targets: {e}"),
            TrainError::ValidationSplit { split, samples } => write!(
                f,
                "validation_split must be in [0, 1) and leave training samples, but it is {split} of {samples} samples"
            ),
            TrainError::Hyperparameter(e) => write!(f, "bad optimizer setting: {e}"),
            TrainError::NonFiniteGradient { epoch, batch } => write!(
                f,
                "a gradient became NaN or infinite at epoch {epoch}, batch {batch}; training stopped before applying \
                 that batch (check the inputs for NaN, or lower the learning rate)"
            ),
            TrainError::NonFiniteLoss { epoch, batch, loss } => write!(
                f,
                "the loss became {loss} at epoch {epoch}, batch {batch}; training stopped before applying that batch \
                 (try a lower learning rate, or check the inputs for NaN)"
            ),
            TrainError::LearningRate { epoch, rate } => write!(
                f,
                "the learning-rate schedule gave {rate} for epoch {epoch}; expected a finite rate >= 0. \
                 Training stopped before that epoch's first update"
            ),
            TrainError::Weights(e) => write!(f, "bad weights: {e}"),
            TrainError::Callback(e) => write!(f, "a callback stopped training: {e}"),
        }
    }
}

impl std::error::Error for TrainError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TrainError::Targets(e) => Some(e),
            TrainError::Hyperparameter(e) => Some(e),
            TrainError::Weights(e) => Some(e),
            TrainError::Callback(e) => Some(&**e),
            _ => None,
        }
    }
}

impl From<TargetError> for TrainError {
    fn from(e: TargetError) -> Self {
        TrainError::Targets(e)
    }
}

/// How much `fit` prints, as Keras's `verbose`.
pub type Verbosity = u8;

/// The settings of [`Trainer::fit`], Keras's arguments with its defaults
/// (`epochs: 1, batch_size: 32, shuffle: true, verbose: 1`).
///
/// ```
/// use strata_core::datasets::{digits, train_test_split};
/// use strata_core::typenum::{U10, U64};
/// use strata_core::{seeded_rng, Batch, Dense, FitOptions, Loss, Model, Sgd, Shape1, Softmax};
///
/// let (images, labels) = digits();
/// let pixels = Batch::<Shape1<U64>>::from_vec(images.batch_size(), images.into_vec()).unwrap();
/// let (x_train, y_train, x_val, y_val) = train_test_split(&pixels, &labels, 0.2, 7).unwrap();
/// let net: Dense<Shape1<U64>, U10, Softmax> = Dense::new(true, &mut seeded_rng(0));
/// let mut model = net.compile(Loss::sparse_categorical_crossentropy(), Sgd::new(0.1));
///
/// // Keras: model.fit(x, y, epochs=3, batch_size=64, validation_data=(x_val, y_val), verbose=0)
/// let options = FitOptions {
///     epochs: 3,
///     batch_size: 64,
///     validation_data: Some((&x_val, y_val.as_slice().into())),
///     verbose: 0,
///     seed: 1, // shuffling and dropout: the same seed, the same training
///     ..FitOptions::default()
/// };
/// let history = model.fit(&x_train, &y_train, options).unwrap();
/// assert_eq!(history.val_accuracy.len(), 3);
/// ```
pub struct FitOptions<'a, In, Out> {
    /// Passes over the training data.
    pub epochs: usize,
    /// Samples per gradient step.
    pub batch_size: usize,
    /// Shuffle the training samples before each epoch.
    pub shuffle: bool,
    /// Fraction of the samples (the last ones, before shuffling, as in
    /// Keras) held out for validation; ignored if `validation_data` is set.
    pub validation_split: f32,
    /// Separate validation inputs and targets.
    pub validation_data: Option<(&'a Batch<In>, Targets<'a, Out>)>,
    /// Seeds shuffling and dropout: the same seed gives the same training.
    pub seed: u64,
    /// 0: silent; 1: a progress bar per epoch (one line per epoch when the
    /// output is not a terminal); 2: one line per epoch.
    pub verbose: Verbosity,
    /// Keras's `callbacks`: called at the start and end of training, of
    /// each epoch and after each batch (see [`crate::callbacks`]). Given by
    /// reference, so that they can be read after `fit`.
    pub callbacks: Vec<&'a mut dyn Callback>,
    /// Keras's `sample_weight`: one weight per sample, multiplying its
    /// loss; a batch's loss is `Σ wᵢ·lossᵢ / batch_size` (Keras divides by
    /// the number of samples, not by the weights' sum). With
    /// `validation_split` the held-out samples' weights weight `val_loss`.
    /// Accuracy is not weighted.
    pub sample_weight: Option<&'a [f32]>,
    /// Keras's `class_weight`, indexed by class: each training sample's
    /// loss is multiplied by its class's weight (classes past the end weigh
    /// 1, as classes missing from Keras's dict). Validation is not
    /// weighted. Not together with `sample_weight`.
    pub class_weight: Option<&'a [f32]>,
}

impl<In, Out> Default for FitOptions<'_, In, Out> {
    fn default() -> Self {
        FitOptions {
            epochs: 1,
            batch_size: 32,
            shuffle: true,
            validation_split: 0.0,
            validation_data: None,
            seed: DEFAULT_SEED,
            verbose: 1,
            callbacks: Vec::new(),
            sample_weight: None,
            class_weight: None,
        }
    }
}

/// Loss and accuracy per epoch, as Keras's `History.history`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// Mean training loss of each epoch.
    pub loss: Vec<f32>,
    /// Training accuracy of each epoch.
    pub accuracy: Vec<f32>,
    /// Validation loss after each epoch (empty without validation data).
    pub val_loss: Vec<f32>,
    /// Validation accuracy after each epoch.
    pub val_accuracy: Vec<f32>,
}

/// The loss and accuracy of a model on a data set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss.
    pub loss: f32,
    /// Fraction of correct predictions.
    pub accuracy: f32,
}

/// The loss of one batch and the gradient of every parameter, in the
/// weight-file convention (PyTorch layout, `{i}.weight` / `{i}.bias`).
#[derive(Clone, Debug, PartialEq)]
pub struct Gradients {
    /// The loss.
    pub loss: f32,
    /// `(key, shape, values)` of each parameter's gradient.
    pub tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl Gradients {
    /// The gradient of parameter `key`.
    pub fn get(&self, key: &str) -> Option<&[f32]> {
        self.tensors
            .iter()
            .find(|t| t.0 == key)
            .map(|t| t.2.as_slice())
    }

    /// The gradients as safetensors bytes, under the weights' keys.
    pub fn to_safetensors(&self) -> Result<Vec<u8>, SaveError> {
        crate::weights::serialize_f32(
            self.tensors
                .iter()
                .map(|(k, s, v)| (k.as_str(), s.as_slice(), v.as_slice())),
        )
    }

    /// Writes the gradients to `path` as safetensors.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<(), SaveError> {
        let bytes = self.to_safetensors()?;
        std::fs::write(path.as_ref(), bytes).map_err(|source| SaveError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        })
    }
}

/// `correct / counted`, NaN when nothing was counted (a loss without an
/// accuracy).
fn ratio(correct: usize, counted: usize) -> f32 {
    if counted == 0 {
        f32::NAN
    } else {
        correct as f32 / counted as f32
    }
}

/// The samples `indices` of `x`, in that order.
fn gather<S: Shape>(x: &Batch<S>, indices: &[usize]) -> Batch<S> {
    let mut data = Vec::with_capacity(indices.len() * S::NUMEL);
    for &i in indices {
        data.extend_from_slice(&x.as_slice()[i * S::NUMEL..(i + 1) * S::NUMEL]);
    }
    Batch::from_vec(indices.len(), data).expect("gathered whole samples")
}

/// One forward and backward pass over `x`: the loss (weighted per sample
/// by `weights`, plus the regularization penalties, as Keras's training
/// loss), the accuracy counts, and the gradients left in the model's
/// buffers (zeroed first).
fn forward_backward<M: Layer>(
    model: &mut M,
    x: &Batch<M::Input>,
    targets: &OwnedTargets,
    loss: Loss,
    weights: Option<&[f32]>,
    ctx: &mut Context<'_>,
) -> (f32, usize, usize) {
    model.zero_grads();
    let (out, tape) = model.forward_taped(x.clone(), ctx);
    let last = M::Output::LAST;
    let mut value = loss.evaluate_weighted(out.as_slice(), targets, last, false, weights);
    // Keras's loss is the data loss plus `model.losses`, computed from the
    // weights the step starts from.
    value.loss += model.regularization_loss();
    if value.loss.is_finite() {
        if loss.fuses_softmax() {
            // Taken only if the model ends in a softmax (see
            // Context::offer_logit_gradient); the plain gradient serves
            // every other model.
            let fused = loss.evaluate_weighted(out.as_slice(), targets, last, true, weights);
            ctx.offer_logit_gradient(fused.grad);
        }
        let grad = Batch::<M::Output>::from_vec(out.batch_size(), value.grad)
            .expect("gradient of the output's shape");
        let grad_input = model.backward(tape, grad, ctx);
        ctx.take_logit_gradient();
        ctx.recycle(grad_input);
        model.add_regularization_gradients();
    }
    (value.loss, value.correct, value.counted)
}

/// The values of every buffer (running statistics...), in visiting order:
/// a taped training pass moves them before its loss and gradients can be
/// checked, so a refused step puts them back with [`restore_buffers`].
/// Nothing is allocated for a model without buffers.
fn save_buffers<M: Layer>(model: &M) -> Vec<Vec<f32>> {
    let mut saved = Vec::new();
    crate::layer::each_tensor(model, &mut |_, t| {
        if t.role() == Role::Buffer {
            saved.push(t.values().to_vec());
        }
    });
    saved
}

/// Puts back what [`save_buffers`] saved from the same model.
fn restore_buffers<M: Layer>(model: &mut M, saved: Vec<Vec<f32>>) {
    let mut saved = saved.into_iter();
    crate::layer::each_tensor_mut(model, &mut |_, t| {
        if t.role() == Role::Buffer {
            // The same visit in the same order: one saved vector each, of
            // the tensor's own length.
            if let Some(values) = saved.next() {
                t.values_mut().copy_from_slice(&values);
            }
        }
    });
}

/// Whether every gradient in the model's buffers is finite.
fn gradients_finite<M: Layer>(model: &mut M) -> bool {
    let mut finite = true;
    model.visit_params_mut(&mut |_, g| finite &= g.iter().all(|v| v.is_finite()));
    finite
}

/// Loss and accuracy of `model` on `x` in inference mode, in batches; the
/// loss weighted per sample by `weights` and with the regularization
/// penalties, as Keras's `evaluate` and `val_loss`.
fn evaluate_in_batches<M: Layer>(
    model: &M,
    x: &Batch<M::Input>,
    targets: Targets<'_, M::Output>,
    loss: Loss,
    (batch_size, threads): (usize, usize),
    weights: Option<&[f32]>,
) -> Evaluation {
    let n = x.batch_size();
    let (mut total, mut correct, mut counted) = (0.0f64, 0usize, 0usize);
    let mut ctx = Context::inference().with_threads(threads);
    let indices: Vec<usize> = (0..n).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let xb = gather(x, chunk);
        let out = model.forward(&xb, &mut ctx);
        let t = targets.gather(chunk);
        let w: Option<Vec<f32>> = weights.map(|w| chunk.iter().map(|&i| w[i]).collect());
        let v = loss.evaluate_weighted(out.as_slice(), &t, M::Output::LAST, false, w.as_deref());
        total += v.loss as f64 * chunk.len() as f64;
        correct += v.correct;
        counted += v.counted;
    }
    Evaluation {
        loss: (total / n.max(1) as f64) as f32 + model.regularization_loss(),
        accuracy: if counted == 0 {
            f32::NAN
        } else {
            correct as f32 / counted as f32
        },
    }
}

/// A model with its loss and optimizer: what Keras's `model.compile(...)`
/// makes. It dereferences to the model, so `predict`, `summary` and the
/// weight files work on it directly.
///
/// ```
/// use strata_core::datasets::{digits, train_test_split};
/// use strata_core::typenum::{U10, U64};
/// use strata_core::{seeded_rng, Adam, Batch, Dense, FitOptions, Loss, Model, Shape1, Softmax};
///
/// // Softmax regression on the 8x8 digits, each image a vector of 64 pixels.
/// let (images, labels) = digits();
/// let pixels = Batch::<Shape1<U64>>::from_vec(images.batch_size(), images.into_vec()).unwrap();
/// let (x_train, y_train, x_test, y_test) = train_test_split(&pixels, &labels, 0.2, 7).unwrap();
///
/// let net: Dense<Shape1<U64>, U10, Softmax> = Dense::new(true, &mut seeded_rng(0));
/// let mut model = net.compile(Loss::sparse_categorical_crossentropy(), Adam::new(0.01));
/// let options = FitOptions { epochs: 5, verbose: 0, ..FitOptions::default() };
/// let history = model.fit(&x_train, &y_train, options).unwrap();
/// assert_eq!(history.loss.len(), 5);
/// let test = model.evaluate(&x_test, &y_test).unwrap();
/// assert!(test.accuracy > 0.8, "{test:?}");
///
/// let classes = model.predict(&x_test).argmax(); // the trainer derefs to the model
/// let net = model.into_model(); // or takes it back
/// # let _ = (classes, net);
/// ```
pub struct Trainer<M> {
    model: M,
    loss: Loss,
    // `+ Send` restates the traits' supertrait: it is what makes a
    // Trainer (of a Send model) Send, so say it where it matters.
    optimizer: Box<dyn Optimizer + Send>,
    schedule: Option<Box<dyn LearningRateSchedule + Send>>,
    threads: usize,
    /// The last step's buffers, for the next step's context: one step's
    /// activations and gradients stay allocated between steps, so that
    /// each step does not allocate (and fault in) all of them again.
    workspace: Workspace,
}

impl<M> Deref for Trainer<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.model
    }
}

impl<M> DerefMut for Trainer<M> {
    fn deref_mut(&mut self) -> &mut M {
        &mut self.model
    }
}

impl<M: Layer> Trainer<M> {
    /// Compiles `model` with `loss` and `optimizer` (see also
    /// [`Model::compile`](crate::Model::compile)).
    pub fn new(model: M, loss: Loss, optimizer: impl Optimizer + 'static) -> Self {
        Trainer {
            model,
            loss,
            optimizer: Box::new(optimizer),
            schedule: None,
            threads: default_threads(),
            workspace: Workspace::default(),
        }
    }

    /// Sets the learning rate at the start of each epoch from `schedule`.
    pub fn with_schedule(mut self, schedule: impl LearningRateSchedule + 'static) -> Self {
        self.schedule = Some(Box::new(schedule));
        self
    }

    /// Uses `threads` threads for the kernels.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The loss.
    pub fn loss(&self) -> Loss {
        self.loss
    }

    /// The optimizer's current learning rate.
    pub fn learning_rate(&self) -> f32 {
        self.optimizer.learning_rate()
    }

    /// Gives the model back.
    pub fn into_model(self) -> M {
        self.model
    }

    /// Trains on `x` and `y` as Keras's `fit` does: `epochs` passes of
    /// mini-batch steps, optionally shuffled and validated, printing
    /// progress per `verbose`. Returns the per-epoch history.
    ///
    /// Every argument is checked before the first step: on an error there
    /// the model is unchanged. During training, each batch's loss and
    /// gradients are checked before they are applied
    /// ([`TrainError::NonFiniteLoss`], [`TrainError::NonFiniteGradient`]),
    /// and each epoch's scheduled learning rate before it is used
    /// ([`TrainError::LearningRate`]).
    pub fn fit<'t>(
        &mut self,
        x: &impl BatchOf<M::Input>,
        y: impl Into<Targets<'t, M::Output>>,
        mut options: FitOptions<'_, M::Input, M::Output>,
    ) -> Result<History, TrainError> {
        let x = x.as_input();
        let y = y.into();
        let n = x.batch_size();
        let held_out = self.check_fit(n, &y, &options)?;
        let weights = per_sample(options.sample_weight, options.class_weight, &y, n)
            .map_err(TrainError::Weights)?;
        let train_n = n - held_out;
        let split_validation = (held_out > 0).then(|| {
            let idx: Vec<usize> = (train_n..n).collect();
            // Keras splits sample weights with the samples; class weights
            // only weight training.
            let w = options.sample_weight.map(|w| w[train_n..].to_vec());
            (gather(x, &idx), y.gather(&idx), w)
        });

        let mut order: Vec<usize> = (0..train_n).collect();
        let mut shuffle_rng = seeded_rng(options.seed);
        let mut dropout_rng = seeded_rng(options.seed.wrapping_add(0x9E37_79B9_7F4A_7C15));
        let steps = train_n.div_ceil(options.batch_size);
        let mut history = History::default();
        let mut progress = Progress::new(options.verbose, options.epochs, steps);
        let mut callbacks = CallbackList::new(std::mem::take(&mut options.callbacks));
        let info = TrainingInfo {
            epochs: options.epochs,
            steps,
            has_validation: held_out > 0 || options.validation_data.is_some(),
        };
        self.callback(&mut callbacks, &mut progress, |c, fit| {
            c.on_train_begin(&info, fit)
        })?;

        for epoch in 0..options.epochs {
            self.schedule_rate(epoch)
                .inspect_err(|_| progress.abandon())?;
            if options.shuffle {
                order.shuffle(&mut shuffle_rng);
            }
            self.callback(&mut callbacks, &mut progress, |c, fit| {
                c.on_epoch_begin(epoch, fit)
            })?;
            progress.start_epoch(epoch);
            let (mut total, mut seen, mut correct, mut counted) = (0.0f64, 0usize, 0usize, 0usize);
            for (step, chunk) in order.chunks(options.batch_size).enumerate() {
                let batch_weights: Option<Vec<f32>> = weights
                    .as_ref()
                    .map(|w| chunk.iter().map(|&i| w[i]).collect());
                let (xb, targets) = (gather(x, chunk), y.gather(chunk));
                let mut ctx = Context::training(&mut dropout_rng)
                    .with_threads(self.threads)
                    .with_workspace(std::mem::take(&mut self.workspace));
                let (loss, c, k) = self
                    .train_step(
                        &xb,
                        &targets,
                        batch_weights.as_deref(),
                        &mut ctx,
                        (epoch, step),
                    )
                    .inspect_err(|_| progress.abandon())?;
                self.workspace = ctx.into_workspace();
                total += loss as f64 * chunk.len() as f64;
                seen += chunk.len();
                correct += c;
                counted += k;
                let logs = BatchLogs {
                    epoch,
                    batch: step,
                    loss: (total / seen as f64) as f32,
                    accuracy: ratio(correct, counted),
                };
                progress.step(step + 1, logs.loss, logs.accuracy);
                self.callback(&mut callbacks, &mut progress, |c, fit| {
                    c.on_batch_end(&logs, fit)
                })?;
                if callbacks.stopping() {
                    break;
                }
            }
            let loss = (total / seen.max(1) as f64) as f32;
            let accuracy = ratio(correct, counted);
            history.loss.push(loss);
            history.accuracy.push(accuracy);
            let val = match (&options.validation_data, &split_validation) {
                (Some((vx, vy)), _) => Some(self.validate(vx, *vy, None, options.batch_size)),
                (None, Some(held)) => Some(self.validate_held_out(held, options.batch_size)),
                (None, None) => None,
            };
            if let Some(v) = val {
                history.val_loss.push(v.loss);
                history.val_accuracy.push(v.accuracy);
            }
            progress.end_epoch(loss, accuracy, val);
            let logs = EpochLogs {
                epoch,
                loss,
                accuracy,
                val_loss: val.map(|v| v.loss),
                val_accuracy: val.map(|v| v.accuracy),
                learning_rate: self.optimizer.learning_rate(),
            };
            self.callback(&mut callbacks, &mut progress, |c, fit| {
                c.on_epoch_end(&logs, fit)
            })?;
            if callbacks.stopping() {
                break;
            }
        }
        self.callback(&mut callbacks, &mut progress, |c, fit| {
            c.on_train_end(&history, fit)
        })?;
        Ok(history)
    }

    /// Checks `fit`'s arguments before anything changes, and returns how
    /// many of the `n` samples `validation_split` holds out (Keras holds out
    /// the last ones, before any shuffling).
    fn check_fit(
        &self,
        n: usize,
        y: &Targets<'_, M::Output>,
        options: &FitOptions<'_, M::Input, M::Output>,
    ) -> Result<usize, TrainError> {
        if n == 0 {
            return Err(TrainError::EmptyDataset);
        }
        if options.batch_size == 0 {
            return Err(TrainError::ZeroBatchSize);
        }
        if options.epochs == 0 {
            return Err(TrainError::ZeroEpochs);
        }
        y.check(n)?;
        self.optimizer.check().map_err(TrainError::Hyperparameter)?;
        if let Some((vx, vy)) = &options.validation_data {
            vy.check(vx.batch_size())?;
        }
        let split = options.validation_split;
        let held_out = if options.validation_data.is_some() {
            0
        } else if (0.0..1.0).contains(&split) {
            ((n as f64) * split as f64).floor() as usize
        } else {
            return Err(TrainError::ValidationSplit { split, samples: n });
        };
        if held_out == n {
            return Err(TrainError::ValidationSplit { split, samples: n });
        }
        Ok(held_out)
    }

    /// Sets the schedule's rate for `epoch` (0-based), if there is a
    /// schedule. Checked before the optimizer sees it: a NaN rate would
    /// poison every parameter (and be blamed on the loss), a negative one
    /// would train by gradient ascent.
    fn schedule_rate(&mut self, epoch: usize) -> Result<(), TrainError> {
        if let Some(s) = &mut self.schedule {
            let lr = s.rate(epoch, self.optimizer.learning_rate());
            if !(lr.is_finite() && lr >= 0.0) {
                return Err(TrainError::LearningRate {
                    epoch: epoch + 1,
                    rate: lr,
                });
            }
            self.optimizer.set_learning_rate(lr);
        }
        Ok(())
    }

    /// Loss and accuracy on the samples `validation_split` held out, with
    /// their sample weights.
    fn validate_held_out(
        &self,
        (x, y, weights): &(Batch<M::Input>, OwnedTargets, Option<Vec<f32>>),
        batch_size: usize,
    ) -> Evaluation {
        let targets = y.as_targets(x.batch_size());
        self.validate(x, targets, weights.as_deref(), batch_size)
    }

    /// One checked gradient step of `fit` on one batch (`at`: the 0-based
    /// epoch and batch): its loss and accuracy counts. A non-finite loss or
    /// gradient is refused, with the buffers the pass moved put back.
    fn train_step(
        &mut self,
        x: &Batch<M::Input>,
        targets: &OwnedTargets,
        weights: Option<&[f32]>,
        ctx: &mut Context<'_>,
        (epoch, step): (usize, usize),
    ) -> Result<(f32, usize, usize), TrainError> {
        let buffers = save_buffers(&self.model);
        let (loss, c, k) = forward_backward(&mut self.model, x, targets, self.loss, weights, ctx);
        if !loss.is_finite() {
            restore_buffers(&mut self.model, buffers);
            return Err(TrainError::NonFiniteLoss {
                epoch: epoch + 1,
                batch: step + 1,
                loss,
            });
        }
        if !gradients_finite(&mut self.model) {
            restore_buffers(&mut self.model, buffers);
            return Err(TrainError::NonFiniteGradient {
                epoch: epoch + 1,
                batch: step + 1,
            });
        }
        self.apply_gradients();
        Ok((loss, c, k))
    }

    /// The validation of one epoch.
    fn validate(
        &self,
        x: &Batch<M::Input>,
        y: Targets<'_, M::Output>,
        weights: Option<&[f32]>,
        batch_size: usize,
    ) -> Evaluation {
        let sizes = (batch_size, self.threads);
        evaluate_in_batches(&self.model, x, y, self.loss, sizes, weights)
    }

    /// Runs one event on every callback, with the model and optimizer.
    fn callback(
        &mut self,
        callbacks: &mut CallbackList<'_>,
        progress: &mut Progress,
        event: impl FnMut(&mut dyn Callback, &mut FitState<'_>) -> Result<(), CallbackError>,
    ) -> Result<(), TrainError> {
        callbacks
            .each(&mut self.model, &mut *self.optimizer, event)
            .map_err(|e| {
                progress.abandon();
                TrainError::Callback(e)
            })
    }

    /// One optimizer step from the gradients in the model's buffers.
    /// Frozen parameters are skipped but keep their index, so that
    /// freezing or unfreezing between fits leaves every other parameter
    /// with its own optimizer state.
    fn apply_gradients(&mut self) {
        self.optimizer.begin_step();
        let optimizer = &mut self.optimizer;
        let mut index = 0;
        crate::layer::each_tensor_mut(&mut self.model, &mut |_, t| {
            if t.role() == Role::Parameter {
                if t.is_trainable() {
                    let (p, g) = t.values_and_grad_mut();
                    optimizer.update(index, p, g);
                }
                index += 1;
            }
        });
    }

    /// The loss and accuracy on `x` and `y` (inference mode, dropout off).
    pub fn evaluate<'t>(
        &self,
        x: &impl BatchOf<M::Input>,
        y: impl Into<Targets<'t, M::Output>>,
    ) -> Result<Evaluation, TrainError> {
        let x = x.as_input();
        let y = y.into();
        if x.batch_size() == 0 {
            return Err(TrainError::EmptyDataset);
        }
        y.check(x.batch_size())?;
        Ok(evaluate_in_batches(
            &self.model,
            x,
            y,
            self.loss,
            (256, self.threads),
            None,
        ))
    }

    /// One gradient step on one batch (dropout on, from `seed`): Keras's
    /// `train_on_batch`. Returns the batch's loss and accuracy before the
    /// update.
    ///
    /// Checks as [`Trainer::fit`] does: a NaN or infinite loss
    /// ([`TrainError::NonFiniteLoss`]) or gradient
    /// ([`TrainError::NonFiniteGradient`], epoch and batch 1) is an error,
    /// and the model is left unchanged: parameters, and buffers such as
    /// running statistics, which the refused pass had moved.
    pub fn train_on_batch<'t>(
        &mut self,
        x: &impl BatchOf<M::Input>,
        y: impl Into<Targets<'t, M::Output>>,
        seed: u64,
    ) -> Result<Evaluation, TrainError> {
        let x = x.as_input();
        let y = y.into();
        if x.batch_size() == 0 {
            return Err(TrainError::EmptyDataset);
        }
        y.check(x.batch_size())?;
        self.optimizer.check().map_err(TrainError::Hyperparameter)?;
        let mut rng = seeded_rng(seed);
        let mut ctx = Context::training(&mut rng)
            .with_threads(self.threads)
            .with_workspace(std::mem::take(&mut self.workspace));
        let targets = y.to_owned_targets();
        let buffers = save_buffers(&self.model);
        let (loss, correct, counted) =
            forward_backward(&mut self.model, x, &targets, self.loss, None, &mut ctx);
        self.workspace = ctx.into_workspace();
        if !loss.is_finite() {
            restore_buffers(&mut self.model, buffers);
            return Err(TrainError::NonFiniteLoss {
                epoch: 1,
                batch: 1,
                loss,
            });
        }
        // As in `fit`: a finite loss can still come with NaN gradients (an
        // infinite input saturating a sigmoid), and applying them would
        // make every later prediction NaN.
        if !gradients_finite(&mut self.model) {
            restore_buffers(&mut self.model, buffers);
            return Err(TrainError::NonFiniteGradient { epoch: 1, batch: 1 });
        }
        self.apply_gradients();
        Ok(Evaluation {
            loss,
            accuracy: if counted == 0 {
                f32::NAN
            } else {
                correct as f32 / counted as f32
            },
        })
    }
}

/// The loss of `model` on `x` and `y` and the gradient of every parameter
/// (inference mode: dropout is the identity, as Keras's `training=False`);
/// the parameters are not changed. See [`Model::loss_and_gradients`](crate::Model::loss_and_gradients).
pub fn loss_and_gradients<'t, M: Layer>(
    model: &mut M,
    x: &Batch<M::Input>,
    y: impl Into<Targets<'t, M::Output>>,
    loss: Loss,
) -> Result<Gradients, TrainError> {
    let y = y.into();
    if x.batch_size() == 0 {
        return Err(TrainError::EmptyDataset);
    }
    y.check(x.batch_size())?;
    let mut ctx = Context::inference();
    let targets = y.to_owned_targets();
    let (value, _, _) = forward_backward(model, x, &targets, loss, None, &mut ctx);
    // One pass over the tensors: every trained parameter's gradient under
    // its weight-file key (buffers have none).
    let mut tensors = Vec::new();
    crate::layer::each_tensor(model, &mut |key, t| {
        if t.role() == Role::Parameter {
            tensors.push((key.to_string(), t.shape().to_vec(), t.export_grad()));
        }
    });
    Ok(Gradients {
        loss: value,
        tensors,
    })
}

/// The loss and gradients of a training-mode forward pass (batch
/// statistics, dropout drawn from `seed`), leaving the model as it was:
/// parameters, and buffers such as the running statistics, which the
/// taped pass moves and this puts back. See
/// [`Model::loss_and_gradients_training`](crate::Model::loss_and_gradients_training).
pub fn loss_and_gradients_training<'t, M: Layer>(
    model: &mut M,
    x: &Batch<M::Input>,
    y: impl Into<Targets<'t, M::Output>>,
    loss: Loss,
    seed: u64,
) -> Result<Gradients, TrainError> {
    let y = y.into();
    if x.batch_size() == 0 {
        return Err(TrainError::EmptyDataset);
    }
    y.check(x.batch_size())?;
    let mut buffers = Vec::new();
    crate::layer::each_tensor(model, &mut |_, t| {
        if t.role() == Role::Buffer {
            buffers.push(t.values().to_vec());
        }
    });
    let mut rng = seeded_rng(seed);
    let mut ctx = Context::training(&mut rng);
    let (value, _, _) = forward_backward(model, x, &y.to_owned_targets(), loss, None, &mut ctx);
    // The same visit, in the same order, puts every buffer back.
    let mut saved = buffers.into_iter();
    crate::layer::each_tensor_mut(model, &mut |_, t| {
        if t.role() == Role::Buffer {
            let values = saved.next().expect("the same tensors as before");
            t.values_mut().copy_from_slice(&values);
        }
    });
    let mut tensors = Vec::new();
    crate::layer::each_tensor(model, &mut |key, t| {
        if t.role() == Role::Parameter {
            tensors.push((key.to_string(), t.shape().to_vec(), t.export_grad()));
        }
    });
    Ok(Gradients {
        loss: value,
        tensors,
    })
}

/// Keras-style progress: a bar per epoch on a terminal, or a line per epoch.
struct Progress {
    mode: ProgressMode,
    epochs: usize,
    epoch: usize,
    steps: usize,
    started: Instant,
}

enum ProgressMode {
    Silent,
    Lines,
    Bar(Option<indicatif::ProgressBar>),
}

impl Progress {
    fn new(verbose: Verbosity, epochs: usize, steps: usize) -> Progress {
        let mode = match verbose {
            0 => ProgressMode::Silent,
            1 if std::io::stderr().is_terminal() => ProgressMode::Bar(None),
            _ => ProgressMode::Lines,
        };
        Progress {
            mode,
            epochs,
            epoch: 0,
            steps,
            started: Instant::now(),
        }
    }

    fn start_epoch(&mut self, epoch: usize) {
        self.started = Instant::now();
        self.epoch = epoch;
        match &mut self.mode {
            ProgressMode::Silent => {}
            ProgressMode::Lines => {}
            ProgressMode::Bar(bar) => {
                eprintln!("Epoch {}/{}", epoch + 1, self.epochs);
                let pb = indicatif::ProgressBar::new(self.steps as u64);
                pb.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{pos:>4}/{len} [{bar:30}] - ETA: {eta} - {msg}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                *bar = Some(pb);
            }
        }
    }

    fn step(&mut self, step: usize, loss: f32, accuracy: f32) {
        if let ProgressMode::Bar(Some(pb)) = &self.mode {
            pb.set_position(step as u64);
            pb.set_message(format!("accuracy: {accuracy:.4} - loss: {loss:.4}"));
        }
    }

    fn end_epoch(&mut self, loss: f32, accuracy: f32, val: Option<Evaluation>) {
        let elapsed = self.started.elapsed();
        let per_step = elapsed.as_secs_f64() * 1e3 / self.steps.max(1) as f64;
        let mut line = format!(
            "{}/{} - {:.1}s {:.0}ms/step - accuracy: {accuracy:.4} - loss: {loss:.4}",
            self.steps,
            self.steps,
            elapsed.as_secs_f64(),
            per_step
        );
        if let Some(v) = val {
            line.push_str(&format!(
                " - val_accuracy: {:.4} - val_loss: {:.4}",
                v.accuracy, v.loss
            ));
        }
        match &mut self.mode {
            ProgressMode::Silent => {}
            ProgressMode::Lines => eprintln!("Epoch {}/{}: {line}", self.epoch + 1, self.epochs),
            ProgressMode::Bar(bar) => {
                if let Some(pb) = bar.take() {
                    pb.finish_and_clear();
                }
                eprintln!("{line}");
            }
        }
    }

    fn abandon(&mut self) {
        if let ProgressMode::Bar(bar) = &mut self.mode {
            if let Some(pb) = bar.take() {
                pb.abandon();
            }
        }
    }
}
