//! What every model can do ([`Model`]).

use std::path::Path;

use rand::RngCore;

use crate::batch::Batch;
use crate::init::seeded_rng;
use crate::layer::{Context, Layer};
use crate::loss::{Loss, Targets};
use crate::onnx::ExportError;
use crate::optim::Optimizer;
use crate::shape::Shape;
use crate::summary::Summary;
use crate::train::{Gradients, TrainError, Trainer};
use crate::weights::{load_params, read_file, save_params, LoadError, SaveError};

/// Inference, training-mode forward, summary and weight files for any
/// [`Layer`], in particular every `sequential!` model.
///
/// `sequential!` models are the usual ones, but any layer is a model:
///
/// ```
/// use strata_core::typenum::{U2, U4};
/// use strata_core::{seeded_rng, Batch, Dense, Layer, Model, Shape1, Softmax};
///
/// let net: Dense<Shape1<U4>, U2, Softmax> = Dense::new(true, &mut seeded_rng(0));
/// println!("{}", net.summary()); // Keras's table
/// let x = Batch::<Shape1<U4>>::from_vec(2, vec![0.5; 8]).unwrap();
/// let p = net.predict(&x);
/// assert_eq!(p.dims(), [2, 2]);
/// assert!((p.sample(0).unwrap().iter().sum::<f32>() - 1.0).abs() < 1e-6);
///
/// // Weight files: every tensor, under PyTorch's keys and layouts.
/// let bytes = net.to_safetensors().unwrap();
/// let mut other = net.with_seed(1);
/// other.load_safetensors_bytes(&bytes).unwrap();
/// assert_eq!(other.export_param("weight").unwrap().len(), 2 * 4);
/// ```
pub trait Model: Layer + Sized {
    /// Inference: the output for `input`, dropout off. `input` is a
    /// [`Batch`] of the model's input shape (anything else is a compile
    /// error that says so: see [`InputMatches`]).
    fn predict(&self, input: &impl BatchOf<Self::Input>) -> Batch<Self::Output> {
        self.forward(input.as_input(), &mut Context::inference())
    }

    /// Inference into `output`, reusing `workspace` (a
    /// [`Context::inference`], which also sets the thread count) and the
    /// output's memory: after the first call with a given batch size, the
    /// model itself allocates nothing (`matrixmultiply` still allocates its
    /// packing buffer inside each GEMM call).
    fn predict_into(
        &self,
        input: &impl BatchOf<Self::Input>,
        output: &mut Batch<Self::Output>,
        workspace: &mut Context<'_>,
    ) {
        self.forward_into(input.as_input(), output, workspace);
    }

    /// A training-mode forward pass: dropout on, its masks drawn from `rng`
    /// (so a seeded `rng` makes it reproducible).
    fn predict_training(
        &self,
        input: &impl BatchOf<Self::Input>,
        rng: &mut (dyn RngCore + Send),
    ) -> Batch<Self::Output> {
        self.forward(input.as_input(), &mut Context::training(rng))
    }

    /// A Keras-style table of the layers; print it with `{}`.
    fn summary(&self) -> Summary {
        let mut rows = Vec::new();
        self.summary_rows(&mut rows);
        Summary {
            input: Self::Input::DIMS.to_vec(),
            rows,
        }
    }

    /// Redraws every parameter from `seed` (models start from
    /// [`DEFAULT_SEED`](crate::DEFAULT_SEED)).
    fn with_seed(mut self, seed: u64) -> Self {
        self.initialize(&mut seeded_rng(seed));
        self
    }

    /// Fixes the input shape of a block written without one: a no-op that
    /// tells the compiler `S` is the input.
    ///
    /// With `sequential!` (in the `strata` crate):
    ///
    /// ```ignore
    /// let block = sequential![Conv2D(4, (3, 3), same) => relu].built_for::<Shape3<U8, U8, U3>>();
    /// assert_eq!(block.summary().rows[0].output, [8, 8, 4]);
    /// ```
    ///
    /// On a single layer it only checks the type:
    ///
    /// ```
    /// use strata_core::typenum::{U2, U4};
    /// use strata_core::{seeded_rng, Dense, Model, Shape1};
    ///
    /// let dense: Dense<Shape1<U4>, U2> = Dense::new(true, &mut seeded_rng(0));
    /// let dense = dense.built_for::<Shape1<U4>>();
    /// assert_eq!(dense.summary().rows[0].output, [2]);
    /// ```
    fn built_for<S: Shape>(self) -> Self
    where
        Self: Layer<Input = S>,
    {
        self
    }

    /// Pairs the model with a loss and an optimizer, ready to
    /// [`fit`](crate::Trainer::fit): Keras's `model.compile(...)`.
    fn compile(self, loss: Loss, optimizer: impl Optimizer + 'static) -> Trainer<Self> {
        Trainer::new(self, loss, optimizer)
    }

    /// The loss on `x` and `y`, and the gradient of every parameter, without
    /// changing any parameter. Dropout is off (Keras's `training=False`).
    /// The gradients save under the weights' keys and layouts.
    fn loss_and_gradients<'t>(
        &mut self,
        x: &impl BatchOf<Self::Input>,
        y: impl Into<Targets<'t, Self::Output>>,
        loss: Loss,
    ) -> Result<Gradients, TrainError> {
        crate::train::loss_and_gradients(self, x.as_input(), y, loss)
    }

    /// The loss on `x` and `y`, and the gradient of every parameter, of a
    /// training-mode forward pass (Keras's `training=True`):
    /// BatchNormalization normalises with the batch's statistics and
    /// dropout draws its masks from `seed`. Nothing changes, not even the
    /// running statistics a training step would update.
    fn loss_and_gradients_training<'t>(
        &mut self,
        x: &impl BatchOf<Self::Input>,
        y: impl Into<Targets<'t, Self::Output>>,
        loss: Loss,
        seed: u64,
    ) -> Result<Gradients, TrainError> {
        crate::train::loss_and_gradients_training(self, x.as_input(), y, loss, seed)
    }

    /// Writes the parameters to `path` as safetensors, PyTorch
    /// `nn.Sequential` convention.
    fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<(), SaveError> {
        let bytes = self.to_safetensors()?;
        std::fs::write(path.as_ref(), bytes).map_err(|source| SaveError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        })
    }

    /// The parameters as safetensors bytes: see [`Model::save_safetensors`].
    fn to_safetensors(&self) -> Result<Vec<u8>, SaveError> {
        save_params(self)
    }

    /// Reads every parameter from the safetensors file at `path`. On any
    /// error (missing file, corrupt data, a missing, extra or misshapen
    /// tensor, an unconvertible dtype) the model is left unchanged.
    fn load_safetensors(&mut self, path: impl AsRef<Path>) -> Result<(), LoadError> {
        let bytes = read_file(path.as_ref())?;
        self.load_safetensors_bytes(&bytes)
    }

    /// As [`Model::load_safetensors`], from bytes in memory.
    fn load_safetensors_bytes(&mut self, bytes: &[u8]) -> Result<(), LoadError> {
        load_params(self, bytes)
    }

    /// The model as an ONNX file (opset [`OPSET`](crate::onnx::OPSET)),
    /// in bytes: input `input`, float32 NHWC with a symbolic batch
    /// (`["N", H, W, C]`), output `output`, inference semantics (see
    /// [`crate::onnx`]). Fails, without panicking, if a layer has no ONNX
    /// equivalent.
    fn to_onnx(&self) -> Result<Vec<u8>, ExportError> {
        crate::onnx::to_bytes(self)
    }

    /// Writes [`Model::to_onnx`]'s file to `path`, for ONNX Runtime,
    /// Triton, OpenVINO or tract.
    fn save_onnx(&self, path: impl AsRef<Path>) -> Result<(), ExportError> {
        crate::onnx::save(self, path.as_ref())
    }
}

impl<L: Layer> Model for L {}

/// A batch a model whose input shape is `I` can take: a [`Batch`] of `I`
/// samples. [`Model::predict`] and the other entry points take any
/// `impl BatchOf<Self::Input>` rather than a `Batch<Self::Input>`, so that a
/// batch of another shape is reported in words ([`InputMatches`]'s
/// message) instead of as a mismatch of typenum's binary digits, while
/// either side can still be inferred from the other (a `Batch::zeros(1)`
/// for a known model, a block's input from its batch).
pub trait BatchOf<I> {
    /// The batch, typed as a batch of `I`.
    fn as_input(&self) -> &Batch<I>;
}

impl<I, S: Shape> BatchOf<I> for Batch<S>
where
    ShapeCheck: InputMatches<I, S>,
{
    fn as_input(&self) -> &Batch<I> {
        ShapeCheck::cast(self)
    }
}

/// Proof that a batch's sample shape `S` is a model's input shape `I`: it
/// holds only for `I = S`. Implemented on [`ShapeCheck`] rather than on
/// either shape so that the compiler can infer one from the other.
#[diagnostic::on_unimplemented(
    message = "the batch's samples do not have the model's input shape",
    label = "a batch of samples of another shape than the model's input",
    note = "the batch holds samples of shape `{S}`",
    note = "the model takes samples of shape `{I}`",
    note = "`net.summary()` prints the model's input shape (a `Shape3<H, W, C>` is height, width, channels); make the batch with exactly that shape, e.g. `Batch::<Shape3<U8, U8, U1>>::from_vec(n, pixels)`"
)]
pub trait InputMatches<I, S> {
    /// The same batch, typed as the model's input.
    fn cast(batch: &Batch<S>) -> &Batch<I>;
}

/// What [`InputMatches`] is implemented on.
pub enum ShapeCheck {}

impl<T> InputMatches<T, T> for ShapeCheck {
    fn cast(batch: &Batch<T>) -> &Batch<T> {
        batch
    }
}
