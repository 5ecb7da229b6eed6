//! Optimizers (Keras's update rules and defaults) and learning-rate
//! schedules.

use core::fmt;

/// An update rule: given each parameter tensor and its gradient, changes
/// the parameters.
///
/// Optimizers are `Send`, so that a compiled model ([`Trainer`](crate::Trainer))
/// can move to a training thread.
pub trait Optimizer: Send {
    /// The current learning rate.
    fn learning_rate(&self) -> f32;

    /// Sets the learning rate (what a schedule does between epochs).
    fn set_learning_rate(&mut self, lr: f32);

    /// Checks the hyperparameters; a bad one is an error before training.
    fn check(&self) -> Result<(), HyperparameterError> {
        Ok(())
    }

    /// Called once per step, before the tensors are updated.
    fn begin_step(&mut self) {}

    /// Updates parameter tensor `index` (its position among the model's
    /// tensors, the same every step) from its gradient.
    fn update(&mut self, index: usize, param: &mut [f32], grad: &[f32]);
}

/// A hyperparameter outside its range.
#[derive(Clone, Debug, PartialEq)]
pub struct HyperparameterError {
    /// Which one.
    pub name: &'static str,
    /// The value given.
    pub value: f32,
    /// The range it must be in.
    pub expected: &'static str,
}

impl fmt::Display for HyperparameterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} must be {}, but it is {}",
            self.name, self.expected, self.value
        )
    }
}

impl std::error::Error for HyperparameterError {}

fn require(
    name: &'static str,
    value: f32,
    ok: bool,
    expected: &'static str,
) -> Result<(), HyperparameterError> {
    if ok {
        Ok(())
    } else {
        Err(HyperparameterError {
            name,
            value,
            expected,
        })
    }
}

/// A rate or decay: finite and not negative.
fn require_non_negative(name: &'static str, value: f32) -> Result<(), HyperparameterError> {
    require(
        name,
        value,
        value >= 0.0 && value.is_finite(),
        "finite and >= 0",
    )
}

/// Per-tensor state, grown on first use.
fn slot(state: &mut Vec<Vec<f32>>, index: usize, len: usize) -> &mut Vec<f32> {
    if state.len() <= index {
        state.resize_with(index + 1, Vec::new);
    }
    let s = &mut state[index];
    if s.len() != len {
        *s = vec![0.0; len];
    }
    s
}

/// Applies Keras 3's decoupled weight decay: `w -= w · decay · lr`.
fn decay(param: &mut [f32], weight_decay: f32, lr: f32) {
    if weight_decay != 0.0 {
        let k = 1.0 - weight_decay * lr;
        param.iter_mut().for_each(|w| *w *= k);
    }
}

/// What every optimizer here has alike: a `weight_decay` builder, `Default`
/// at Keras's learning rate, and the learning-rate accessors of
/// [`Optimizer`] over its `learning_rate` field.
macro_rules! common_hyperparameters {
    ($name:ident, default_learning_rate = $lr:expr) => {
        impl $name {
            /// With decoupled weight decay.
            pub fn weight_decay(mut self, weight_decay: f32) -> $name {
                self.weight_decay = weight_decay;
                self
            }
        }

        impl Default for $name {
            fn default() -> $name {
                $name::new($lr)
            }
        }
    };
    (accessors) => {
        fn learning_rate(&self) -> f32 {
            self.learning_rate
        }

        fn set_learning_rate(&mut self, lr: f32) {
            self.learning_rate = lr;
        }
    };
}

/// Stochastic gradient descent, with optional momentum (classic or
/// Nesterov) and weight decay. Keras's defaults: learning rate 0.01, no
/// momentum.
///
/// With momentum `m`: `v = m·v - lr·g`, then `w += v`, or with Nesterov
/// `w += m·v - lr·g`.
///
/// ```
/// use strata_core::typenum::U1;
/// use strata_core::{seeded_rng, Batch, Dense, Layer, Loss, Model, Sgd, Shape1};
///
/// // y = 2x by SGD with momentum (Keras: SGD(learning_rate=0.05, momentum=0.9)).
/// let net: Dense<Shape1<U1>, U1> = Dense::new(true, &mut seeded_rng(0));
/// let mut model = net.compile(Loss::mean_squared_error(), Sgd::new(0.05).momentum(0.9));
/// let x = Batch::<Shape1<U1>>::from_vec(4, vec![-1.0, 0.0, 1.0, 2.0]).unwrap();
/// let y = Batch::<Shape1<U1>>::from_vec(4, vec![-2.0, 0.0, 2.0, 4.0]).unwrap();
/// for step in 0..200 {
///     model.train_on_batch(&x, &y, step).unwrap();
/// }
/// let w = model.export_param("weight").unwrap();
/// assert!((w[0] - 2.0).abs() < 1e-3, "{w:?}");
/// ```
#[derive(Clone, Debug)]
pub struct Sgd {
    /// Step size.
    pub learning_rate: f32,
    /// Momentum, in `[0, 1)`.
    pub momentum: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Decoupled weight decay.
    pub weight_decay: f32,
    velocity: Vec<Vec<f32>>,
}

impl Sgd {
    /// Plain SGD at `learning_rate`.
    pub fn new(learning_rate: f32) -> Sgd {
        Sgd {
            learning_rate,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            velocity: Vec::new(),
        }
    }

    /// With momentum.
    pub fn momentum(mut self, momentum: f32) -> Sgd {
        self.momentum = momentum;
        self
    }

    /// With Nesterov momentum.
    pub fn nesterov(mut self, nesterov: bool) -> Sgd {
        self.nesterov = nesterov;
        self
    }
}

common_hyperparameters!(Sgd, default_learning_rate = 0.01);

impl Optimizer for Sgd {
    common_hyperparameters!(accessors);

    fn check(&self) -> Result<(), HyperparameterError> {
        require_non_negative("learning_rate", self.learning_rate)?;
        require(
            "momentum",
            self.momentum,
            (0.0..1.0).contains(&self.momentum),
            "in [0, 1)",
        )?;
        require_non_negative("weight_decay", self.weight_decay)
    }

    fn update(&mut self, index: usize, param: &mut [f32], grad: &[f32]) {
        let lr = self.learning_rate;
        decay(param, self.weight_decay, lr);
        if self.momentum == 0.0 {
            for (w, g) in param.iter_mut().zip(grad) {
                *w -= lr * g;
            }
            return;
        }
        let m = self.momentum;
        let v = slot(&mut self.velocity, index, param.len());
        for ((w, g), v) in param.iter_mut().zip(grad).zip(v.iter_mut()) {
            *v = m * *v - lr * g;
            *w += if self.nesterov { m * *v - lr * g } else { *v };
        }
    }
}

/// Adam. Keras's defaults: learning rate 0.001, beta_1 0.9, beta_2 0.999,
/// epsilon 1e-7.
///
/// `m = β1·m + (1-β1)·g`, `v = β2·v + (1-β2)·g²`,
/// `w -= lr·√(1-β2ᵗ)/(1-β1ᵗ) · m / (√v + ε)`.
///
/// ```
/// use strata_core::typenum::U1;
/// use strata_core::{seeded_rng, Adam, Batch, Dense, Loss, Model, Shape1};
///
/// // y = 2x (Keras: Adam(learning_rate=0.05)); `Adam::default()` is Keras's 0.001.
/// let net: Dense<Shape1<U1>, U1> = Dense::new(true, &mut seeded_rng(0));
/// let mut model = net.compile(Loss::mean_squared_error(), Adam::new(0.05));
/// let x = Batch::<Shape1<U1>>::from_vec(4, vec![-1.0, 0.0, 1.0, 2.0]).unwrap();
/// let y = Batch::<Shape1<U1>>::from_vec(4, vec![-2.0, 0.0, 2.0, 4.0]).unwrap();
/// for step in 0..300 {
///     model.train_on_batch(&x, &y, step).unwrap();
/// }
/// assert!(model.evaluate(&x, &y).unwrap().loss < 1e-2);
/// ```
#[derive(Clone, Debug)]
pub struct Adam {
    /// Step size.
    pub learning_rate: f32,
    /// Decay of the first moment.
    pub beta_1: f32,
    /// Decay of the second moment.
    pub beta_2: f32,
    /// Added to the denominator.
    pub epsilon: f32,
    /// Decoupled weight decay (AdamW when non-zero).
    pub weight_decay: f32,
    step: u32,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl Adam {
    /// Adam at `learning_rate`, other hyperparameters at Keras's defaults.
    pub fn new(learning_rate: f32) -> Adam {
        Adam {
            learning_rate,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            weight_decay: 0.0,
            step: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }
}

common_hyperparameters!(Adam, default_learning_rate = 0.001);

impl Optimizer for Adam {
    common_hyperparameters!(accessors);

    fn check(&self) -> Result<(), HyperparameterError> {
        require_non_negative("learning_rate", self.learning_rate)?;
        require(
            "beta_1",
            self.beta_1,
            (0.0..1.0).contains(&self.beta_1),
            "in [0, 1)",
        )?;
        require(
            "beta_2",
            self.beta_2,
            (0.0..1.0).contains(&self.beta_2),
            "in [0, 1)",
        )?;
        require("epsilon", self.epsilon, self.epsilon > 0.0, "> 0")?;
        require_non_negative("weight_decay", self.weight_decay)
    }

    fn begin_step(&mut self) {
        self.step += 1;
    }

    fn update(&mut self, index: usize, param: &mut [f32], grad: &[f32]) {
        let t = self.step.max(1) as i32;
        let lr = self.learning_rate;
        decay(param, self.weight_decay, lr);
        let lr_t = lr * (1.0 - self.beta_2.powi(t)).sqrt() / (1.0 - self.beta_1.powi(t));
        let (b1, b2, eps) = (self.beta_1, self.beta_2, self.epsilon);
        slot(&mut self.m, index, param.len());
        slot(&mut self.v, index, param.len());
        let (m, v) = (&mut self.m[index], &mut self.v[index]);
        // One pass over the four arrays (the large ones do not fit in
        // cache): each moment is updated before the step reads it.
        for (((w, g), m), v) in param.iter_mut().zip(grad).zip(m).zip(v) {
            *m += (g - *m) * (1.0 - b1);
            *v += (g * g - *v) * (1.0 - b2);
            *w -= lr_t * *m / (v.sqrt() + eps);
        }
    }
}

/// A learning-rate schedule: the rate to use in `epoch` (0-based), given
/// the current one. Any `FnMut(usize, f32) -> f32 + Send` is one (Keras's
/// `LearningRateScheduler` callback).
///
/// The rate is checked each epoch before it is used: one that is NaN,
/// infinite or negative stops [`Trainer::fit`](crate::Trainer::fit) with
/// [`TrainError::LearningRate`](crate::TrainError::LearningRate). Schedules
/// are `Send` for the same reason optimizers are.
pub trait LearningRateSchedule: Send {
    /// The learning rate for `epoch`.
    fn rate(&mut self, epoch: usize, current: f32) -> f32;
}

impl<F: FnMut(usize, f32) -> f32 + Send> LearningRateSchedule for F {
    fn rate(&mut self, epoch: usize, current: f32) -> f32 {
        self(epoch, current)
    }
}

/// Multiplies the learning rate by `factor` every `every` epochs.
#[derive(Clone, Copy, Debug)]
pub struct StepDecay {
    /// The rate at epoch 0.
    pub initial: f32,
    /// The factor applied at each step.
    pub factor: f32,
    /// Epochs between steps.
    pub every: usize,
}

impl LearningRateSchedule for StepDecay {
    fn rate(&mut self, epoch: usize, _: f32) -> f32 {
        self.initial * self.factor.powi((epoch / self.every.max(1)) as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_momentum_by_hand() {
        let mut w = [1.0f32];
        let mut opt = Sgd::new(0.1).momentum(0.9);
        opt.update(0, &mut w, &[1.0]); // v = -0.1, w = 0.9
        opt.update(0, &mut w, &[1.0]); // v = -0.09 - 0.1 = -0.19, w = 0.71
        assert!((w[0] - 0.71).abs() < 1e-6);
        let mut w = [1.0f32];
        let mut opt = Sgd::new(0.1).momentum(0.9).nesterov(true);
        opt.update(0, &mut w, &[1.0]); // v = -0.1; w += 0.9*-0.1 - 0.1 = -0.19
        assert!((w[0] - 0.81).abs() < 1e-6);
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        // At step 1 the bias corrections make the step lr · g / (|g| + ε').
        let mut w = [0.5f32, -0.5];
        let mut opt = Adam::default();
        opt.begin_step();
        opt.update(0, &mut w, &[3.0, -0.2]);
        assert!((w[0] - (0.5 - 0.001)).abs() < 1e-6);
        assert!((w[1] - (-0.5 + 0.001)).abs() < 1e-6);
    }

    #[test]
    fn bad_hyperparameters_are_errors() {
        assert!(Sgd::new(-1.0).check().is_err());
        assert!(Sgd::new(0.1).momentum(1.0).check().is_err());
        assert!(Adam::new(f32::NAN).check().is_err());
        let e = Adam {
            beta_1: 1.5,
            ..Adam::default()
        }
        .check()
        .unwrap_err();
        assert_eq!(e.name, "beta_1");
        assert!(e.to_string().contains("1.5"));
        assert!(Adam::default().check().is_ok());
    }
}
