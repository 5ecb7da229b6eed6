//! Callbacks: code that [`Trainer::fit`](crate::Trainer::fit) calls at the
//! start and end of training, of each epoch and after each batch, as
//! Keras's `callbacks=[...]`. They see the logs (loss, accuracy, their
//! validation twins, the learning rate), and through [`FitState`] can stop
//! training, change the learning rate, and read, restore or save the
//! model's weights.
//!
//! Keras's own are here with its defaults and rules: [`EarlyStopping`],
//! [`ModelCheckpoint`] (to a safetensors file), [`ReduceLROnPlateau`], and
//! [`LambdaCallback`] for closures. Give them to `fit` by reference, so that
//! they can be read afterwards:
//!
//! ```
//! use strata_core::callbacks::{EarlyStopping, LambdaCallback, Monitor};
//! use strata_core::typenum::U2;
//! use strata_core::{seeded_rng, Adam, Batch, Dense, FitOptions, Loss, Model, Shape1, Softmax};
//!
//! let net: Dense<Shape1<U2>, U2, Softmax> = Dense::new(true, &mut seeded_rng(0));
//! let x = Batch::<Shape1<U2>>::from_vec(4, vec![1.0, 0.0, 0.0, 1.0, 0.9, 0.1, 0.2, 0.8]).unwrap();
//! let y = [0, 1, 0, 1];
//! let mut model = net.compile(Loss::sparse_categorical_crossentropy(), Adam::new(0.1));
//!
//! let mut early = EarlyStopping::new(Monitor::Loss).patience(2).restore_best_weights(true);
//! let mut epochs_seen = 0;
//! let mut count = LambdaCallback::new().on_epoch_end(|_, _| epochs_seen += 1);
//! let history = model
//!     .fit(&x, &y, FitOptions {
//!         epochs: 20,
//!         batch_size: 4,
//!         verbose: 0,
//!         callbacks: vec![&mut early, &mut count],
//!         ..FitOptions::default()
//!     })
//!     .unwrap();
//! drop(count);
//! assert_eq!(epochs_seen, history.loss.len());
//! ```

use core::fmt;
use std::path::{Path, PathBuf};

use crate::layer::{each_tensor, each_tensor_mut, Layer};
use crate::optim::Optimizer;
use crate::train::History;
use crate::weights::SaveError;

/// What a callback returns when training cannot go on (a checkpoint that
/// cannot be written, a metric that is never computed): `fit` stops with
/// [`TrainError::Callback`](crate::TrainError::Callback).
pub type CallbackError = Box<dyn std::error::Error + Send + Sync>;

/// The quantity a callback watches, by Keras's log names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Monitor {
    /// `"loss"`: the epoch's mean training loss (with regularization).
    Loss,
    /// `"accuracy"`: the epoch's training accuracy.
    Accuracy,
    /// `"val_loss"`: the loss on the validation data (Keras's default).
    #[default]
    ValLoss,
    /// `"val_accuracy"`: the accuracy on the validation data.
    ValAccuracy,
}

impl Monitor {
    /// The monitor Keras calls `name` (`"val_loss"`, `"accuracy"`...;
    /// `"acc"` and `"val_acc"` too).
    pub fn from_name(name: &str) -> Option<Monitor> {
        Some(match name {
            "loss" => Monitor::Loss,
            "accuracy" | "acc" => Monitor::Accuracy,
            "val_loss" => Monitor::ValLoss,
            "val_accuracy" | "val_acc" => Monitor::ValAccuracy,
            _ => return None,
        })
    }

    /// Keras's name.
    pub fn name(&self) -> &'static str {
        match self {
            Monitor::Loss => "loss",
            Monitor::Accuracy => "accuracy",
            Monitor::ValLoss => "val_loss",
            Monitor::ValAccuracy => "val_accuracy",
        }
    }

    /// Whether larger is better (Keras's `mode="auto"`: accuracies are
    /// maximised, losses minimised).
    pub fn maximized(&self) -> bool {
        matches!(self, Monitor::Accuracy | Monitor::ValAccuracy)
    }

    fn needs_validation(&self) -> bool {
        matches!(self, Monitor::ValLoss | Monitor::ValAccuracy)
    }

    /// The value in `logs`, if the epoch computed it.
    pub fn value(&self, logs: &EpochLogs) -> Option<f32> {
        match self {
            Monitor::Loss => Some(logs.loss),
            Monitor::Accuracy => Some(logs.accuracy),
            Monitor::ValLoss => logs.val_loss,
            Monitor::ValAccuracy => logs.val_accuracy,
        }
    }

    /// Whether `current` beats `best` by more than `min_delta` (Keras's
    /// `_is_improvement`; anything beats no best yet).
    fn improves(&self, current: f32, best: Option<f32>, min_delta: f32) -> bool {
        match best {
            None => true,
            Some(best) if self.maximized() => current - min_delta.abs() > best,
            Some(best) => current + min_delta.abs() < best,
        }
    }

    /// The error for a monitor that `fit` will not compute.
    fn check(&self, callback: &str, info: &TrainingInfo) -> Result<(), CallbackError> {
        if self.needs_validation() && !info.has_validation {
            return Err(format!(
                "{callback} monitors `{}`, which fit computes only with validation data: \
                 set `validation_split` or `validation_data`, or monitor `{}`",
                self.name(),
                &self.name()[4..]
            )
            .into());
        }
        Ok(())
    }
}

impl fmt::Display for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `fit` is about to do, given to [`Callback::on_train_begin`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrainingInfo {
    /// Epochs asked for.
    pub epochs: usize,
    /// Batches per epoch.
    pub steps: usize,
    /// Whether each epoch ends with a validation (so `val_loss` exists).
    pub has_validation: bool,
}

/// The logs after one batch (Keras's `on_train_batch_end` logs): the
/// running means over the epoch so far.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchLogs {
    /// The epoch (0-based, as Keras passes it).
    pub epoch: usize,
    /// The batch within the epoch (0-based).
    pub batch: usize,
    /// Mean loss over the epoch's batches so far.
    pub loss: f32,
    /// Accuracy over the epoch's batches so far.
    pub accuracy: f32,
}

/// The logs after one epoch (Keras's `on_epoch_end` logs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochLogs {
    /// The epoch (0-based, as Keras passes it; Keras prints it 1-based).
    pub epoch: usize,
    /// Mean training loss (with regularization), as `History::loss`.
    pub loss: f32,
    /// Training accuracy.
    pub accuracy: f32,
    /// Validation loss, when there is validation data.
    pub val_loss: Option<f32>,
    /// Validation accuracy, when there is validation data.
    pub val_accuracy: Option<f32>,
    /// The learning rate the epoch trained with.
    pub learning_rate: f32,
}

/// The values of every tensor of a model (parameters and buffers, such as
/// BatchNormalization's statistics), in visiting order: Keras's
/// `model.get_weights()`.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightsSnapshot(Vec<Vec<f32>>);

/// What a callback may do to the model being trained, whatever its type.
trait WeightAccess {
    fn snapshot(&self) -> WeightsSnapshot;
    fn restore(&mut self, snapshot: &WeightsSnapshot);
    fn to_safetensors(&self) -> Result<Vec<u8>, SaveError>;
}

impl<L: Layer> WeightAccess for L {
    fn snapshot(&self) -> WeightsSnapshot {
        let mut all = Vec::new();
        each_tensor(self, &mut |_, t| all.push(t.values().to_vec()));
        WeightsSnapshot(all)
    }

    fn restore(&mut self, snapshot: &WeightsSnapshot) {
        let mut saved = snapshot.0.iter();
        each_tensor_mut(self, &mut |_, t| {
            // Snapshots come from the same model: one vector per tensor,
            // of its own length.
            if let Some(values) = saved.next() {
                t.values_mut().copy_from_slice(values);
            }
        });
    }

    fn to_safetensors(&self) -> Result<Vec<u8>, SaveError> {
        crate::weights::save_params(self)
    }
}

/// The model and optimizer under training, as callbacks reach them
/// (Keras's `self.model` inside a callback).
pub struct FitState<'a> {
    model: &'a mut dyn WeightAccess,
    optimizer: &'a mut dyn Optimizer,
    stop: &'a mut bool,
}

impl<'a> FitState<'a> {
    pub(crate) fn new<L: Layer>(
        model: &'a mut L,
        optimizer: &'a mut dyn Optimizer,
        stop: &'a mut bool,
    ) -> Self {
        FitState {
            model,
            optimizer,
            stop,
        }
    }

    /// Stops training (Keras's `model.stop_training = True`): after the
    /// current batch, whose epoch still ends (validation, `on_epoch_end`).
    pub fn stop_training(&mut self) {
        *self.stop = true;
    }

    /// Whether training has been told to stop.
    pub fn stopping(&self) -> bool {
        *self.stop
    }

    /// The optimizer's learning rate.
    pub fn learning_rate(&self) -> f32 {
        self.optimizer.learning_rate()
    }

    /// Sets the optimizer's learning rate from the next batch on.
    pub fn set_learning_rate(&mut self, lr: f32) {
        self.optimizer.set_learning_rate(lr);
    }

    /// A copy of every weight (Keras's `model.get_weights()`).
    pub fn weights(&self) -> WeightsSnapshot {
        self.model.snapshot()
    }

    /// Puts back weights taken by [`FitState::weights`] during this `fit`
    /// (Keras's `model.set_weights`).
    pub fn set_weights(&mut self, snapshot: &WeightsSnapshot) {
        self.model.restore(snapshot);
    }

    /// Writes the model's weights to `path` as safetensors, as
    /// `Model::save_safetensors` does.
    pub fn save_safetensors(&self, path: &Path) -> Result<(), SaveError> {
        let bytes = self.model.to_safetensors()?;
        std::fs::write(path, bytes).map_err(|source| SaveError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Code run by `fit` at its events. Every method does nothing unless
/// written; an error stops training with
/// [`TrainError::Callback`](crate::TrainError::Callback).
///
/// Epochs and batches are 0-based, as Keras passes them.
pub trait Callback {
    /// Before the first epoch (Keras's `on_train_begin`): where a callback
    /// resets its state, so that it can serve several `fit` calls.
    fn on_train_begin(
        &mut self,
        info: &TrainingInfo,
        fit: &mut FitState<'_>,
    ) -> Result<(), CallbackError> {
        let _ = (info, fit);
        Ok(())
    }

    /// Before epoch `epoch`'s first batch.
    fn on_epoch_begin(
        &mut self,
        epoch: usize,
        fit: &mut FitState<'_>,
    ) -> Result<(), CallbackError> {
        let _ = (epoch, fit);
        Ok(())
    }

    /// After each batch's update.
    fn on_batch_end(
        &mut self,
        logs: &BatchLogs,
        fit: &mut FitState<'_>,
    ) -> Result<(), CallbackError> {
        let _ = (logs, fit);
        Ok(())
    }

    /// After each epoch and its validation.
    fn on_epoch_end(
        &mut self,
        logs: &EpochLogs,
        fit: &mut FitState<'_>,
    ) -> Result<(), CallbackError> {
        let _ = (logs, fit);
        Ok(())
    }

    /// After the last epoch (or the one training stopped in), when
    /// training ended without an error.
    fn on_train_end(
        &mut self,
        history: &History,
        fit: &mut FitState<'_>,
    ) -> Result<(), CallbackError> {
        let _ = (history, fit);
        Ok(())
    }
}

/// The callbacks of one `fit` and whether one of them stopped it.
pub(crate) struct CallbackList<'c> {
    callbacks: Vec<&'c mut dyn Callback>,
    stop: bool,
}

impl<'c> CallbackList<'c> {
    pub(crate) fn new(callbacks: Vec<&'c mut dyn Callback>) -> Self {
        CallbackList {
            callbacks,
            stop: false,
        }
    }

    /// Whether a callback has stopped training.
    pub(crate) fn stopping(&self) -> bool {
        self.stop
    }

    /// Calls `event` on each callback in order, stopping at the first error.
    pub(crate) fn each<L: Layer>(
        &mut self,
        model: &mut L,
        optimizer: &mut dyn Optimizer,
        mut event: impl FnMut(&mut dyn Callback, &mut FitState<'_>) -> Result<(), CallbackError>,
    ) -> Result<(), CallbackError> {
        for callback in self.callbacks.iter_mut() {
            let mut fit = FitState::new(model, optimizer, &mut self.stop);
            event(&mut **callback, &mut fit)?;
        }
        Ok(())
    }
}

/// Stops training when the monitored quantity has stopped improving, as
/// Keras's `EarlyStopping`: after `patience` epochs in a row without an
/// improvement of more than `min_delta` (never in the first epoch), and
/// with `restore_best_weights` it puts back the weights of the best epoch
/// when training ends.
///
/// Keras's defaults: monitor `val_loss`, `min_delta` 0, `patience` 0, no
/// baseline, no restoring, from epoch 0. Unlike Keras, which warns and
/// carries on, monitoring a validation quantity without validation data
/// is an error before the first epoch.
#[derive(Clone, Debug)]
pub struct EarlyStopping {
    monitor: Monitor,
    min_delta: f32,
    patience: usize,
    baseline: Option<f32>,
    restore_best_weights: bool,
    start_from_epoch: usize,
    verbose: bool,
    wait: usize,
    best: Option<f32>,
    best_epoch: Option<usize>,
    best_weights: Option<WeightsSnapshot>,
    stopped_epoch: Option<usize>,
}

impl Default for EarlyStopping {
    fn default() -> Self {
        EarlyStopping::new(Monitor::ValLoss)
    }
}

impl EarlyStopping {
    /// Watches `monitor`, with Keras's other defaults.
    pub fn new(monitor: Monitor) -> Self {
        EarlyStopping {
            monitor,
            min_delta: 0.0,
            patience: 0,
            baseline: None,
            restore_best_weights: false,
            start_from_epoch: 0,
            verbose: false,
            wait: 0,
            best: None,
            best_epoch: None,
            best_weights: None,
            stopped_epoch: None,
        }
    }

    /// The least change that counts as an improvement (its sign is ignored).
    pub fn min_delta(mut self, min_delta: f32) -> Self {
        self.min_delta = min_delta.abs();
        self
    }

    /// Epochs without improvement after which training stops.
    pub fn patience(mut self, patience: usize) -> Self {
        self.patience = patience;
        self
    }

    /// A value to beat: until an epoch beats it, the wait is not reset.
    pub fn baseline(mut self, baseline: f32) -> Self {
        self.baseline = Some(baseline);
        self
    }

    /// Restore the weights of the best epoch when training ends.
    pub fn restore_best_weights(mut self, restore: bool) -> Self {
        self.restore_best_weights = restore;
        self
    }

    /// Epochs to train before watching (a warm-up).
    pub fn start_from_epoch(mut self, epoch: usize) -> Self {
        self.start_from_epoch = epoch;
        self
    }

    /// Print "Epoch N: early stopping" and the restoring, as Keras's
    /// `verbose=1`.
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// The epoch (0-based) training stopped after, if it was stopped.
    pub fn stopped_epoch(&self) -> Option<usize> {
        self.stopped_epoch
    }

    /// The best epoch (0-based) seen, if any.
    pub fn best_epoch(&self) -> Option<usize> {
        self.best_epoch
    }

    /// The best monitored value seen, if any.
    pub fn best(&self) -> Option<f32> {
        self.best
    }
}

impl Callback for EarlyStopping {
    fn on_train_begin(
        &mut self,
        info: &TrainingInfo,
        _: &mut FitState<'_>,
    ) -> Result<(), CallbackError> {
        self.monitor.check("EarlyStopping", info)?;
        self.wait = 0;
        self.best = None;
        self.best_epoch = None;
        self.best_weights = None;
        self.stopped_epoch = None;
        Ok(())
    }

    fn on_epoch_end(
        &mut self,
        logs: &EpochLogs,
        fit: &mut FitState<'_>,
    ) -> Result<(), CallbackError> {
        let Some(current) = self.monitor.value(logs) else {
            return Ok(());
        };
        if logs.epoch < self.start_from_epoch {
            return Ok(());
        }
        if self.restore_best_weights && self.best_weights.is_none() {
            self.best_weights = Some(fit.weights());
            self.best_epoch = Some(logs.epoch);
        }
        self.wait += 1;
        if self.monitor.improves(current, self.best, self.min_delta) {
            self.best = Some(current);
            self.best_epoch = Some(logs.epoch);
            if self.restore_best_weights {
                self.best_weights = Some(fit.weights());
            }
            // The wait restarts only on beating the baseline too.
            if self
                .monitor
                .improves(current, self.baseline, self.min_delta)
            {
                self.wait = 0;
            }
            return Ok(());
        }
        if self.wait >= self.patience && logs.epoch > 0 {
            self.stopped_epoch = Some(logs.epoch);
            fit.stop_training();
        }
        Ok(())
    }

    fn on_train_end(&mut self, _: &History, fit: &mut FitState<'_>) -> Result<(), CallbackError> {
        if let (Some(epoch), true) = (self.stopped_epoch, self.verbose) {
            eprintln!("Epoch {}: early stopping", epoch + 1);
        }
        // As Keras 3: the best weights come back whether or not training
        // stopped early.
        if let (true, Some(weights)) = (self.restore_best_weights, &self.best_weights) {
            if self.verbose {
                let best = self.best_epoch.map_or(0, |e| e + 1);
                eprintln!("Restoring model weights from the end of the best epoch: {best}.");
            }
            fit.set_weights(weights);
        }
        Ok(())
    }
}

/// Saves the model's weights as safetensors after each epoch, or with
/// `save_best_only` only when the monitored quantity improved on the best
/// so far (Keras's `ModelCheckpoint(save_weights_only=True)` with
/// safetensors for `.weights.h5`).
///
/// `{epoch}` in the path becomes the epoch's 1-based number, `{epoch:03d}`
/// zero-padded to 3 digits, as Keras formats it. Keras's defaults: monitor
/// `val_loss`, every epoch.
#[derive(Clone, Debug)]
pub struct ModelCheckpoint {
    path: String,
    monitor: Monitor,
    save_best_only: bool,
    initial_value_threshold: Option<f32>,
    verbose: bool,
    best: Option<f32>,
    saved: Vec<(usize, PathBuf)>,
}

impl ModelCheckpoint {
    /// Saves to `path` (a pattern with `{epoch}` or `{epoch:02d}`, or a
    /// plain path overwritten each time).
    pub fn new(path: impl Into<String>) -> Self {
        ModelCheckpoint {
            path: path.into(),
            monitor: Monitor::ValLoss,
            save_best_only: false,
            initial_value_threshold: None,
            verbose: false,
            best: None,
            saved: Vec::new(),
        }
    }

    /// The quantity `save_best_only` compares.
    pub fn monitor(mut self, monitor: Monitor) -> Self {
        self.monitor = monitor;
        self
    }

    /// Save only when the monitored quantity is strictly better than the
    /// best so far.
    pub fn save_best_only(mut self, best_only: bool) -> Self {
        self.save_best_only = best_only;
        self
    }

    /// The value to beat before the first save (with `save_best_only`).
    pub fn initial_value_threshold(mut self, threshold: f32) -> Self {
        self.initial_value_threshold = Some(threshold);
        self
    }

    /// Print each save, as Keras's `verbose=1`.
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// The saves made in the last `fit`: each epoch (0-based) and file.
    pub fn saved(&self) -> &[(usize, PathBuf)] {
        &self.saved
    }

    /// The path for `epoch` (0-based): `{epoch}` and `{epoch:0Nd}`
    /// replaced by the 1-based epoch.
    pub fn path_for(&self, epoch: usize) -> PathBuf {
        let mut out = String::new();
        let mut rest = self.path.as_str();
        while let Some(start) = rest.find("{epoch") {
            out.push_str(&rest[..start]);
            let after = &rest[start + "{epoch".len()..];
            let Some(end) = after.find('}') else { break };
            let width = after[..end]
                .strip_prefix(":0")
                .and_then(|w| w.strip_suffix('d'))
                .and_then(|w| w.parse::<usize>().ok())
                .unwrap_or(0);
            out.push_str(&format!("{:0width$}", epoch + 1));
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        PathBuf::from(out)
    }
}

impl Callback for ModelCheckpoint {
    fn on_train_begin(
        &mut self,
        info: &TrainingInfo,
        _: &mut FitState<'_>,
    ) -> Result<(), CallbackError> {
        if self.save_best_only {
            self.monitor
                .check("ModelCheckpoint with save_best_only", info)?;
        }
        self.best = self.initial_value_threshold;
        self.saved.clear();
        Ok(())
    }

    fn on_epoch_end(
        &mut self,
        logs: &EpochLogs,
        fit: &mut FitState<'_>,
    ) -> Result<(), CallbackError> {
        let path = self.path_for(logs.epoch);
        if self.save_best_only {
            let current = self.monitor.value(logs);
            match current {
                Some(v) if self.monitor.improves(v, self.best, 0.0) => {
                    if self.verbose {
                        eprintln!(
                            "Epoch {}: {} improved to {v:.5}, saving model to {}",
                            logs.epoch + 1,
                            self.monitor,
                            path.display()
                        );
                    }
                    self.best = Some(v);
                }
                _ => {
                    if self.verbose {
                        eprintln!("Epoch {}: {} did not improve", logs.epoch + 1, self.monitor);
                    }
                    return Ok(());
                }
            }
        } else if self.verbose {
            eprintln!(
                "Epoch {}: saving model to {}",
                logs.epoch + 1,
                path.display()
            );
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        fit.save_safetensors(&path)?;
        self.saved.push((logs.epoch, path));
        Ok(())
    }
}

/// Lowers the learning rate when the monitored quantity has stopped
/// improving, as Keras's `ReduceLROnPlateau`: after `patience` epochs
/// without an improvement of more than `min_delta`, the rate becomes
/// `max(rate · factor, min_lr)` (if it is above `min_lr`), then `cooldown`
/// epochs pass before waiting starts again.
///
/// Keras's defaults: monitor `val_loss`, factor 0.1, patience 10,
/// `min_delta` 1e-4, cooldown 0, `min_lr` 0.
#[derive(Clone, Debug)]
pub struct ReduceLROnPlateau {
    monitor: Monitor,
    factor: f32,
    patience: usize,
    min_delta: f32,
    cooldown: usize,
    min_lr: f32,
    verbose: bool,
    wait: usize,
    cooldown_counter: usize,
    best: Option<f32>,
    reductions: Vec<(usize, f32)>,
}

impl Default for ReduceLROnPlateau {
    fn default() -> Self {
        ReduceLROnPlateau::new(Monitor::ValLoss)
    }
}

impl ReduceLROnPlateau {
    /// Watches `monitor`, with Keras's other defaults.
    pub fn new(monitor: Monitor) -> Self {
        ReduceLROnPlateau {
            monitor,
            factor: 0.1,
            patience: 10,
            min_delta: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
            verbose: false,
            wait: 0,
            cooldown_counter: 0,
            best: None,
            reductions: Vec::new(),
        }
    }

    /// The factor the rate is multiplied by, in `[0, 1)`.
    pub fn factor(mut self, factor: f32) -> Self {
        self.factor = factor;
        self
    }

    /// Epochs without improvement before a reduction.
    pub fn patience(mut self, patience: usize) -> Self {
        self.patience = patience;
        self
    }

    /// The least change that counts as an improvement.
    pub fn min_delta(mut self, min_delta: f32) -> Self {
        self.min_delta = min_delta.abs();
        self
    }

    /// Epochs after a reduction before waiting starts again.
    pub fn cooldown(mut self, cooldown: usize) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The lowest rate a reduction goes to.
    pub fn min_lr(mut self, min_lr: f32) -> Self {
        self.min_lr = min_lr;
        self
    }

    /// Print each reduction, as Keras's `verbose=1`.
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// The reductions made in the last `fit`: each epoch (0-based) at
    /// whose end the rate changed, and the new rate.
    pub fn reductions(&self) -> &[(usize, f32)] {
        &self.reductions
    }
}

impl Callback for ReduceLROnPlateau {
    fn on_train_begin(
        &mut self,
        info: &TrainingInfo,
        _: &mut FitState<'_>,
    ) -> Result<(), CallbackError> {
        if !(0.0..1.0).contains(&self.factor) {
            return Err(format!(
                "ReduceLROnPlateau's factor must be in [0, 1) to reduce the rate, but it is {}",
                self.factor
            )
            .into());
        }
        self.monitor.check("ReduceLROnPlateau", info)?;
        self.wait = 0;
        self.cooldown_counter = 0;
        self.best = None;
        self.reductions.clear();
        Ok(())
    }

    fn on_epoch_end(
        &mut self,
        logs: &EpochLogs,
        fit: &mut FitState<'_>,
    ) -> Result<(), CallbackError> {
        let Some(current) = self.monitor.value(logs) else {
            return Ok(());
        };
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.wait = 0;
        }
        if self.monitor.improves(current, self.best, self.min_delta) {
            self.best = Some(current);
            self.wait = 0;
        } else if self.cooldown_counter == 0 {
            self.wait += 1;
            if self.wait >= self.patience {
                let old = fit.learning_rate();
                if old > self.min_lr {
                    let new = (old * self.factor).max(self.min_lr);
                    fit.set_learning_rate(new);
                    if self.verbose {
                        eprintln!(
                            "Epoch {}: ReduceLROnPlateau reducing learning rate to {new}.",
                            logs.epoch + 1
                        );
                    }
                    self.reductions.push((logs.epoch, new));
                    self.cooldown_counter = self.cooldown;
                    self.wait = 0;
                }
            }
        }
        Ok(())
    }
}

type EpochHook<'a> = Box<dyn FnMut(&EpochLogs, &mut FitState<'_>) + 'a>;
type BatchHook<'a> = Box<dyn FnMut(&BatchLogs, &mut FitState<'_>) + 'a>;

/// A callback made of closures, as Keras's `LambdaCallback`: each sees the
/// logs and the [`FitState`] (to stop training, change the rate...).
///
/// ```
/// use strata_core::callbacks::LambdaCallback;
///
/// // Stop as soon as an epoch's loss is below 0.1.
/// let stop_early = LambdaCallback::new().on_epoch_end(|logs, fit| {
///     if logs.loss < 0.1 {
///         fit.stop_training();
///     }
/// });
/// # drop(stop_early);
/// ```
#[derive(Default)]
pub struct LambdaCallback<'a> {
    epoch_end: Option<EpochHook<'a>>,
    batch_end: Option<BatchHook<'a>>,
}

impl<'a> LambdaCallback<'a> {
    /// A callback that does nothing yet.
    pub fn new() -> Self {
        LambdaCallback::default()
    }

    /// Calls `f` after each epoch.
    pub fn on_epoch_end(mut self, f: impl FnMut(&EpochLogs, &mut FitState<'_>) + 'a) -> Self {
        self.epoch_end = Some(Box::new(f));
        self
    }

    /// Calls `f` after each batch.
    pub fn on_batch_end(mut self, f: impl FnMut(&BatchLogs, &mut FitState<'_>) + 'a) -> Self {
        self.batch_end = Some(Box::new(f));
        self
    }
}

impl Callback for LambdaCallback<'_> {
    fn on_batch_end(
        &mut self,
        logs: &BatchLogs,
        fit: &mut FitState<'_>,
    ) -> Result<(), CallbackError> {
        if let Some(f) = &mut self.batch_end {
            f(logs, fit);
        }
        Ok(())
    }

    fn on_epoch_end(
        &mut self,
        logs: &EpochLogs,
        fit: &mut FitState<'_>,
    ) -> Result<(), CallbackError> {
        if let Some(f) = &mut self.epoch_end {
            f(logs, fit);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Layer;
    use crate::layers::Dense;
    use crate::optim::Sgd;
    use crate::shape::Shape1;
    use crate::{seeded_rng, Linear};
    use typenum::U2;

    type Net = Dense<Shape1<U2>, U2, Linear>;

    /// Plays `fit`'s callback protocol over a planted curve of the
    /// monitored quantity (as `loss` and `val_loss`; as `accuracy` too),
    /// writing the epoch number into the model's first weight at each
    /// epoch's end, so that restored weights say which epoch they are
    /// from. Returns the epochs run and the rate of each.
    fn drive(callback: &mut dyn Callback, curve: &[f32], net: &mut Net) -> (usize, Vec<f32>) {
        let mut opt = Sgd::new(1.0);
        let mut list = CallbackList::new(vec![callback]);
        let info = TrainingInfo {
            epochs: curve.len(),
            steps: 1,
            has_validation: true,
        };
        list.each(net, &mut opt, |c, fit| c.on_train_begin(&info, fit))
            .unwrap();
        let mut rates = Vec::new();
        let mut run = 0;
        for (epoch, &v) in curve.iter().enumerate() {
            run += 1;
            let mut w = net.export_param("weight").unwrap();
            w[0] = epoch as f32;
            net.import_param("weight", &w);
            rates.push(opt.learning_rate());
            let logs = EpochLogs {
                epoch,
                loss: v,
                accuracy: v,
                val_loss: Some(v),
                val_accuracy: Some(v),
                learning_rate: opt.learning_rate(),
            };
            list.each(net, &mut opt, |c, fit| c.on_epoch_end(&logs, fit))
                .unwrap();
            if list.stopping() {
                break;
            }
        }
        let history = History::default();
        list.each(net, &mut opt, |c, fit| c.on_train_end(&history, fit))
            .unwrap();
        (run, rates)
    }

    fn net() -> Net {
        Dense::new(true, &mut seeded_rng(0))
    }

    fn first_weight(net: &Net) -> f32 {
        net.export_param("weight").unwrap()[0]
    }

    #[test]
    fn early_stopping_stops_after_patience_epochs_without_improvement() {
        // Best at epoch 1 (0.5); epochs 2 and 3 do not improve on it:
        // with patience 2 Keras stops at the end of epoch 3 (0-based).
        let curve = [1.0, 0.5, 0.6, 0.55, 0.1, 0.05];
        let mut early = EarlyStopping::new(Monitor::ValLoss).patience(2);
        let (run, _) = drive(&mut early, &curve, &mut net());
        assert_eq!(run, 4);
        assert_eq!(early.stopped_epoch(), Some(3));
        assert_eq!(early.best_epoch(), Some(1));
        assert_eq!(early.best(), Some(0.5));
        // min_delta: 0.45 is not better than 0.5 by more than 0.1.
        let curve = [1.0, 0.5, 0.45, 0.42, 0.3];
        let mut early = EarlyStopping::new(Monitor::Loss).patience(2).min_delta(0.1);
        assert_eq!(drive(&mut early, &curve, &mut net()).0, 4);
        // Patience 0 stops at the first epoch without improvement, never
        // at the first epoch.
        let mut early = EarlyStopping::new(Monitor::Loss);
        assert_eq!(drive(&mut early, &[1.0, 1.0, 0.5], &mut net()).0, 2);
        assert_eq!(drive(&mut early, &[1.0, 0.9, 0.8], &mut net()).0, 3);
        assert_eq!(early.stopped_epoch(), None);
    }

    #[test]
    fn early_stopping_on_accuracy_maximises() {
        let curve = [0.5, 0.7, 0.6, 0.65, 0.9];
        let mut early = EarlyStopping::new(Monitor::ValAccuracy).patience(2);
        assert_eq!(drive(&mut early, &curve, &mut net()).0, 4);
        assert_eq!(early.best_epoch(), Some(1));
    }

    #[test]
    fn early_stopping_baseline_keeps_waiting_until_beaten() {
        // Improvements that do not beat the baseline 0.4 do not reset the
        // wait: with patience 2, epoch 1 is the second epoch waited.
        let curve = [1.0, 0.9, 0.8, 0.3, 0.2];
        let mut early = EarlyStopping::new(Monitor::Loss).patience(2).baseline(0.4);
        let (run, _) = drive(&mut early, &curve, &mut net());
        assert_eq!(run, 5, "improving epochs never stop training");
        let curve = [1.0, 1.1, 1.2];
        let mut early = EarlyStopping::new(Monitor::Loss).patience(2).baseline(0.4);
        assert_eq!(drive(&mut early, &curve, &mut net()).0, 2);
    }

    #[test]
    fn restore_best_weights_puts_back_the_best_epochs() {
        let curve = [1.0, 0.5, 0.6, 0.7, 0.8];
        let mut net = net();
        let mut early = EarlyStopping::new(Monitor::ValLoss)
            .patience(2)
            .restore_best_weights(true);
        assert_eq!(drive(&mut early, &curve, &mut net).0, 4);
        // The weights are epoch 1's, not those of epoch 3 it stopped at.
        assert_eq!(first_weight(&net), 1.0);
        // Keras 3 restores at the end even without stopping early.
        let mut early = EarlyStopping::new(Monitor::ValLoss)
            .patience(10)
            .restore_best_weights(true);
        drive(&mut early, &[0.9, 0.2, 0.4], &mut net);
        assert_eq!(first_weight(&net), 1.0);
        // Without it the last epoch's weights stay.
        let mut early = EarlyStopping::new(Monitor::ValLoss).patience(10);
        drive(&mut early, &[0.9, 0.2, 0.4], &mut net);
        assert_eq!(first_weight(&net), 2.0);
    }

    #[test]
    fn reduce_lr_on_plateau_follows_kerass_schedule() {
        // patience 2, factor 0.5, cooldown 1, min_lr 0.2, from rate 1.
        // A cooldown epoch counts down first, so it already waits (as
        // Keras: `in_cooldown()` is asked again after the countdown).
        // epoch: value -> wait -> rate after the epoch
        // 0: 1.0 best                               -> 1
        // 1: 1.0 wait 1                             -> 1
        // 2: 1.0 wait 2: reduce, cooldown 1         -> 0.5
        // 3: 1.0 cooldown 1 -> 0, wait 0 -> 1       -> 0.5
        // 4: 1.0 wait 2: reduce                     -> 0.25
        // 5: 1.0 cooldown over, wait 1              -> 0.25
        // 6: 0.5 improves, wait 0                   -> 0.25
        // 7, 8: wait 1, 2: 0.125 is below min_lr    -> 0.2
        // 9, 10...: the rate is min_lr: no more reductions.
        let curve = [
            1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5,
        ];
        let mut plateau = ReduceLROnPlateau::new(Monitor::ValLoss)
            .patience(2)
            .factor(0.5)
            .cooldown(1)
            .min_lr(0.2);
        let (_, rates) = drive(&mut plateau, &curve, &mut net());
        let expected = [
            1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2,
        ];
        assert_eq!(rates, expected);
        assert_eq!(plateau.reductions(), [(2, 0.5), (4, 0.25), (8, 0.2)]);
    }

    #[test]
    fn reduce_lr_min_delta_and_bad_factor() {
        // Keras's default min_delta 1e-4: a gain of 5e-5 is a plateau.
        let curve = [1.0, 0.99995, 0.9999];
        let mut plateau = ReduceLROnPlateau::new(Monitor::Loss).patience(1);
        let (_, rates) = drive(&mut plateau, &curve, &mut net());
        assert!((rates[2] - 0.1).abs() < 1e-7, "{rates:?}");
        let mut net = net();
        let mut opt = Sgd::new(1.0);
        let mut bad = ReduceLROnPlateau::new(Monitor::Loss).factor(1.5);
        let mut list = CallbackList::new(vec![&mut bad]);
        let info = TrainingInfo {
            epochs: 1,
            steps: 1,
            has_validation: false,
        };
        let e = list
            .each(&mut net, &mut opt, |c, fit| c.on_train_begin(&info, fit))
            .unwrap_err();
        assert!(e.to_string().contains("factor must be in [0, 1)"), "{e}");
    }

    #[test]
    fn model_checkpoint_writes_only_on_improvement() {
        let dir = std::env::temp_dir().join(format!("strata-ckpt-{}", std::process::id()));
        let pattern = dir.join("net-{epoch:02d}.safetensors");
        let mut ckpt = ModelCheckpoint::new(pattern.to_str().unwrap())
            .monitor(Monitor::ValLoss)
            .save_best_only(true);
        let mut net = net();
        drive(&mut ckpt, &[1.0, 0.5, 0.7, 0.5, 0.4], &mut net);
        // 0.5 again at epoch 3 is not an improvement (strictly better).
        let epochs: Vec<usize> = ckpt.saved().iter().map(|s| s.0).collect();
        assert_eq!(epochs, [0, 1, 4]);
        for (epoch, path) in ckpt.saved() {
            assert!(path.ends_with(format!("net-{:02}.safetensors", epoch + 1)));
            // Each file holds the weights of its epoch.
            let mut loaded = super::tests::net();
            crate::weights::load_params(&mut loaded, &std::fs::read(path).unwrap()).unwrap();
            assert_eq!(first_weight(&loaded), *epoch as f32);
        }
        assert!(!dir.join("net-03.safetensors").exists());
        // Without save_best_only every epoch is written.
        let mut every = ModelCheckpoint::new(dir.join("last.safetensors").to_str().unwrap());
        drive(&mut every, &[1.0, 2.0, 3.0], &mut net);
        assert_eq!(every.saved().len(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn validation_monitors_need_validation_data() {
        let mut net = net();
        let mut opt = Sgd::new(1.0);
        let info = TrainingInfo {
            epochs: 1,
            steps: 1,
            has_validation: false,
        };
        let mut early = EarlyStopping::default();
        let mut list = CallbackList::new(vec![&mut early]);
        let e = list
            .each(&mut net, &mut opt, |c, fit| c.on_train_begin(&info, fit))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("monitors `val_loss`") && e.contains("monitor `loss`"),
            "{e}"
        );
    }

    #[test]
    fn monitors_and_paths() {
        assert_eq!(Monitor::from_name("val_acc"), Some(Monitor::ValAccuracy));
        assert_eq!(Monitor::from_name("loss"), Some(Monitor::Loss));
        assert_eq!(Monitor::from_name("mae"), None);
        assert!(Monitor::Accuracy.maximized() && !Monitor::ValLoss.maximized());
        let c = ModelCheckpoint::new("ckpt/e{epoch}-{epoch:03d}.safetensors");
        assert_eq!(c.path_for(6), PathBuf::from("ckpt/e7-007.safetensors"));
        assert_eq!(
            ModelCheckpoint::new("w.st").path_for(0),
            PathBuf::from("w.st")
        );
    }
}
