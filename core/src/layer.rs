//! The [`Layer`] trait every layer and every `sequential!` model implements.

use core::fmt;

use rand::RngCore;

use crate::batch::Batch;
use crate::init::Initializer;
use crate::onnx::{ExportError, OnnxGraph};
use crate::regularizers::Regularizer;
use crate::shape::Shape;
use crate::tensor::{Dtype, Role, Tensor, TensorKey, VisitPath, Visitor, VisitorMut};

/// Inference or training: what a forward pass is for.
pub enum Mode<'a> {
    /// Inference (Keras's `training=False`): dropout is the identity,
    /// normalisation uses its running statistics.
    Inference,
    /// Training (Keras's `training=True`): dropout draws its masks from the
    /// stream, normalisation uses the batch's statistics (and a taped
    /// forward pass updates the running ones).
    Training(&'a mut (dyn RngCore + Send)),
}

impl fmt::Debug for Mode<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Inference => "Inference",
            Mode::Training(_) => "Training",
        })
    }
}

/// Everything a forward or backward pass needs besides the data: the
/// [`Mode`], the thread count, and memory reused from call to call.
pub struct Context<'a> {
    /// Inference or training (with the random stream dropout draws from).
    pub mode: Mode<'a>,
    scratch: Vec<f32>,
    threads: usize,
    /// Activation buffers for reuse, in the order they were given back
    /// (see [`Context::take_batch`]).
    buffers: Vec<Held>,
    /// How many buffers [`Context::take_batch`] handed out: all a pass
    /// needs, so all a [`Workspace`] keeps.
    taken: usize,
    /// The gradient with respect to a final softmax's input, offered by a
    /// loss that can compute it directly (see [`Context::offer_logit_gradient`]).
    logit_gradient: Option<Vec<f32>>,
    /// Small per-channel buffers of fused layers (see
    /// [`crate::fusion::fused_into`]), kept so that a call allocates none.
    stores: [Vec<f32>; 3],
}

/// The number of threads a [`Context`] uses unless told otherwise: the
/// machine's available parallelism (at most [`Context::MAX_THREADS`]).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(Context::MAX_THREADS))
}

impl<'a> Context<'a> {
    fn with_mode(mode: Mode<'a>) -> Self {
        Context {
            mode,
            scratch: Vec::new(),
            threads: default_threads(),
            buffers: Vec::new(),
            taken: 0,
            logit_gradient: None,
            stores: Default::default(),
        }
    }

    /// Inference: dropout is the identity.
    pub fn inference() -> Self {
        Context::with_mode(Mode::Inference)
    }

    /// Training: dropout draws its masks from `rng`.
    pub fn training(rng: &'a mut (dyn RngCore + Send)) -> Self {
        Context::with_mode(Mode::Training(rng))
    }

    /// The most threads [`Context::with_threads`] grants (larger requests
    /// are capped to it): several times the cores of current machines.
    pub const MAX_THREADS: usize = crate::kernels::parallel::MAX_THREADS;

    /// Lets the kernels use up to `threads` threads (at least 1, at most
    /// [`Context::MAX_THREADS`]). Results are bitwise identical whatever
    /// the count: work is split, never reordered.
    ///
    /// This is a ceiling, not a demand: each kernel call runs on no more
    /// threads than it has work units and than its work pays for (about
    /// 16 MFLOPs a thread), and takes scratch only for the threads it runs
    /// on. So [`Context::scratch_len`] follows the work, whatever the
    /// request: even `with_threads(usize::MAX)` gives a small batch only a
    /// few threads' worth (`tests/threads.rs` measures it).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.clamp(1, Self::MAX_THREADS);
        self
    }

    /// The most threads kernels may use (the request, capped).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Whether layers should behave as in training (dropout on).
    pub fn is_training(&self) -> bool {
        matches!(self.mode, Mode::Training(_))
    }

    /// The training random stream, or `None` at inference.
    pub fn rng(&mut self) -> Option<&mut dyn RngCore> {
        match &mut self.mode {
            Mode::Training(r) => Some(&mut **r),
            Mode::Inference => None,
        }
    }

    /// Offers the gradient of the loss with respect to the input of the
    /// model's final softmax, for the loss functions that have it in closed
    /// form (cross-entropy on a softmax is `p - y`: no division by `p`).
    /// A softmax whose backward pass runs first takes it
    /// ([`Context::take_logit_gradient`]) instead of differentiating itself;
    /// models withdraw it after their last layer's backward pass, so no
    /// other layer sees it.
    pub fn offer_logit_gradient(&mut self, grad: Vec<f32>) {
        self.logit_gradient = Some(grad);
    }

    /// Takes the gradient offered by [`Context::offer_logit_gradient`].
    pub fn take_logit_gradient(&mut self) -> Option<Vec<f32>> {
        self.logit_gradient.take()
    }

    /// Values of kernel scratch memory held (the largest any kernel asked for).
    pub fn scratch_len(&self) -> usize {
        self.scratch.len()
    }

    /// A scratch buffer of at least `len` values, reused across calls. Its
    /// contents are unspecified.
    pub fn scratch(&mut self, len: usize) -> &mut [f32] {
        if self.scratch.len() < len {
            self.scratch.resize(len, 0.0);
        }
        &mut self.scratch[..len]
    }
}

/// An activation buffer a [`Context`] keeps, and how many of its values
/// the batch last made from it held: those were the last written or read.
#[derive(Debug)]
struct Held {
    buffer: Vec<f32>,
    warm: usize,
}

/// The memory a [`Context`] reuses (its scratch and activation buffers),
/// carried from one context to the next so that a training loop that
/// needs a fresh context per step (each with its own random stream) does
/// not allocate, and fault in, every buffer again on every step.
#[derive(Debug, Default)]
pub struct Workspace {
    scratch: Vec<f32>,
    buffers: Vec<Vec<f32>>,
}

impl<'a> Context<'a> {
    /// This context, reusing `workspace`'s memory.
    pub fn with_workspace(mut self, workspace: Workspace) -> Self {
        self.scratch = workspace.scratch;
        // Nothing is known about what of them is still in cache.
        self.buffers = workspace
            .buffers
            .into_iter()
            .map(|buffer| Held { buffer, warm: 0 })
            .collect();
        self
    }

    /// The memory this context holds, for [`Context::with_workspace`]: the
    /// scratch, and as many of the largest buffers as it handed out (the
    /// others were allocated by layers themselves; keeping them would let
    /// the pile grow with every step).
    pub fn into_workspace(self) -> Workspace {
        let mut buffers: Vec<Vec<f32>> = self.buffers.into_iter().map(|h| h.buffer).collect();
        buffers.sort_by_key(|b| std::cmp::Reverse(b.capacity()));
        buffers.truncate(self.taken);
        Workspace {
            scratch: self.scratch,
            buffers,
        }
    }
}

impl Context<'_> {
    /// The fused layers' per-channel buffers, for the length of a call:
    /// give them back with [`Context::return_stores`].
    pub(crate) fn take_stores(&mut self) -> [Vec<f32>; 3] {
        std::mem::take(&mut self.stores)
    }

    /// Keeps `stores` for the next [`Context::take_stores`].
    pub(crate) fn return_stores(&mut self, stores: [Vec<f32>; 3]) {
        self.stores = stores;
    }

    /// A batch of `len` samples made from a buffer this context keeps (the
    /// one given back last whose batch held as many values, else the one
    /// given back last that is long enough, else the smallest that holds
    /// it, else the largest), so that a model's intermediate activations
    /// reuse memory from one call to the next. Give it back with
    /// [`Context::recycle`].
    pub fn take_batch<S: Shape>(&mut self, len: usize) -> Batch<S> {
        self.taken += 1;
        let need = len.saturating_mul(S::NUMEL);
        // A buffer given back recently is likely still in cache, as far as
        // its batch reached: in a sequential model it held the input of the
        // layer that just ran, so writing the next output over it does not
        // fetch the memory again (MobileNetV2's layers ran 1.1-2× faster so
        // on AMD Zen 3, 512 KiB of L2; a buffer that last held a smaller
        // batch is cold beyond it).
        let held = |i: usize| &self.buffers[i];
        let last =
            |ok: &dyn Fn(&Held) -> bool| (0..self.buffers.len()).rev().find(|&i| ok(held(i)));
        let recent = last(&|h| h.warm >= need).or_else(|| last(&|h| h.buffer.len() >= need));
        // Else a large buffer spent on a small batch would leave a small
        // one to grow (a copy) for the next large batch.
        let capacity = |i: usize| held(i).buffer.capacity();
        // Among those, the one longest already: growing a buffer's length
        // writes zeros over the gap (a memset of up to the whole batch),
        // which the layer then overwrites anyway.
        let gap = |i: usize| need.saturating_sub(held(i).buffer.len());
        let fits = || {
            (0..self.buffers.len())
                .filter(|&i| capacity(i) >= need)
                .min_by_key(|&i| (gap(i), capacity(i)))
        };
        let best = recent
            .or_else(fits)
            .or_else(|| (0..self.buffers.len()).max_by_key(|&i| capacity(i)));
        // `remove`, not `swap_remove`: the others stay in the order they
        // were given back.
        let buffer = best
            .map(|i| self.buffers.remove(i).buffer)
            .unwrap_or_default();
        Batch::from_buffer(len, buffer)
    }

    /// Returns a batch's memory for [`Context::take_batch`] to reuse.
    pub fn recycle<S: Shape>(&mut self, batch: Batch<S>) {
        let warm = batch.as_slice().len();
        self.buffers.push(Held {
            buffer: batch.into_buffer(),
            warm,
        });
    }
}

/// One named tensor of a model, as it appears in a weights file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    /// The state-dict key: `weight`, `bias`, or `3.weight` inside a model.
    pub name: String,
    /// Shape in PyTorch's layout (`[out, in, kh, kw]` for Conv2D,
    /// `[out, in]` for Dense, `[out]` for biases).
    pub shape: Vec<usize>,
    /// Trained parameter or buffer.
    pub role: Role,
    /// The element type in weights files (I64 for a count such as
    /// `num_batches_tracked`).
    pub dtype: Dtype,
}

impl ParamInfo {
    /// Number of values.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// One row of a model summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    /// The layer's kind in Keras's words: `Conv2D`, `MaxPooling2D`, ...
    pub kind: String,
    /// The output shape of one sample.
    pub output: Vec<usize>,
    /// Number of parameters (Keras's "Param #").
    pub params: usize,
    /// How many of them are trained (the rest, such as BatchNormalization's
    /// moving statistics, are Keras's non-trainable parameters).
    pub trainable: usize,
}

/// A layer: a function from a batch of `Input`-shaped samples to a batch of
/// `Output`-shaped ones, with its named tensors.
///
/// Shapes are associated types computed from the layer's type, so chaining
/// layers whose shapes do not agree is a type error. A `sequential!` model is
/// itself a `Layer`, so models nest.
///
/// A layer implements four things: the forward pass without a tape
/// ([`Layer::forward_into`], for inference), the forward pass with one
/// ([`Layer::forward_taped`], for training), the backward pass that
/// consumes the tape, and its tensors ([`declare_tensors!`](crate::declare_tensors)).
/// Everything about parameters (weight files, gradients, the optimizer
/// step) is provided on top of the tensors.
pub trait Layer {
    /// Shape of one input sample.
    type Input: Shape;
    /// Shape of one output sample.
    type Output: Shape;
    /// What a taped forward pass keeps for the backward pass (the input of
    /// a convolution, the mask of a dropout...). A model's tape holds its
    /// layers' tapes.
    type Tape;

    /// The layer's kind in Keras's words (`Conv2D`, `Dense`, `Sequential`...).
    fn kind(&self) -> &'static str;

    /// Computes the output for `input` into `output`, which it resizes to
    /// the input's batch size (reusing its allocation). Behaves as
    /// [`Context::mode`] says, keeps nothing and changes no state.
    fn forward_into(
        &self,
        input: &Batch<Self::Input>,
        output: &mut Batch<Self::Output>,
        ctx: &mut Context<'_>,
    );

    /// Computes the output for `input` in a new batch: see
    /// [`Layer::forward_into`].
    fn forward(&self, input: &Batch<Self::Input>, ctx: &mut Context<'_>) -> Batch<Self::Output> {
        let mut output = Batch::zeros(0);
        self.forward_into(input, &mut output, ctx);
        output
    }

    /// [`Layer::forward_into`] for an input the caller gives away, as a
    /// model does with its intermediate activations: layers that can work in
    /// place (activations, and at inference dropout and flatten) reuse the
    /// input's memory instead of writing a second buffer.
    fn forward_owned(&self, input: Batch<Self::Input>, ctx: &mut Context<'_>) -> Batch<Self::Output>
    where
        Self: Sized,
    {
        forward_via_into(self, input, ctx)
    }

    /// [`Layer::forward_into`] into a batch taken from the context (give it
    /// back with [`Context::recycle`]), for a caller that keeps `input`, as
    /// a residual block does for its shortcut. A model takes that batch
    /// only when its last layer runs, so its own intermediate activations
    /// get the buffers most recently given back, still in cache.
    fn forward_ref(&self, input: &Batch<Self::Input>, ctx: &mut Context<'_>) -> Batch<Self::Output>
    where
        Self: Sized,
    {
        let mut output = ctx.take_batch(input.batch_size());
        self.forward_into(input, &mut output, ctx);
        output
    }

    /// The forward pass of training (or of differentiating inference, in
    /// [`Mode::Inference`]): the output, and the tape the backward pass
    /// needs. In [`Mode::Training`] it may update the layer's state (the
    /// running statistics of a normalisation).
    fn forward_taped(
        &mut self,
        input: Batch<Self::Input>,
        ctx: &mut Context<'_>,
    ) -> (Batch<Self::Output>, Self::Tape);

    /// The backward pass of the taped forward pass that made `tape`: given
    /// the gradient of the loss with respect to this layer's output, adds
    /// the gradients of its parameters to their gradients and returns the
    /// gradient with respect to its input.
    fn backward(
        &mut self,
        tape: Self::Tape,
        grad_output: Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) -> Batch<Self::Input>;

    /// Calls `v` with each of the layer's tensors (see
    /// [`declare_tensors!`](crate::declare_tensors), which writes this).
    fn visit_tensors(&self, path: &mut VisitPath, v: &mut dyn Visitor) {
        let _ = (path, v);
    }

    /// Writable twin of [`Layer::visit_tensors`].
    fn visit_tensors_mut(&mut self, path: &mut VisitPath, v: &mut dyn VisitorMut) {
        let _ = (path, v);
    }

    /// Draws fresh initial parameters (Keras's defaults) from `rng`, and
    /// resets buffers to their initial values.
    fn initialize(&mut self, rng: &mut dyn RngCore) {
        let _ = rng;
    }

    /// Appends this layer's summary rows (one row, or one per inner layer
    /// for a model).
    fn summary_rows(&self, rows: &mut Vec<SummaryRow>) {
        rows.push(SummaryRow {
            kind: self.kind().to_string(),
            output: Self::Output::DIMS.to_vec(),
            params: self.param_count(),
            trainable: self.trainable_param_count(),
        });
    }

    /// Every tensor (parameters and buffers), in PyTorch layout, with its
    /// state-dict key: what a weights file holds.
    fn params(&self) -> Vec<ParamInfo> {
        let mut out = Vec::new();
        each_tensor(self, &mut |key, t| {
            out.push(ParamInfo {
                name: key.to_string(),
                shape: t.shape().to_vec(),
                role: t.role(),
                dtype: t.dtype(),
            })
        });
        out
    }

    /// Total number of values in the layer's float tensors (Keras's
    /// "Total params": trainable and not; counts such as
    /// `num_batches_tracked`, which Keras does not have, are left out).
    fn param_count(&self) -> usize {
        let mut n = 0;
        each_tensor(self, &mut |_, t| {
            if t.dtype() == Dtype::F32 {
                n += t.numel();
            }
        });
        n
    }

    /// Number of values in the trained parameters (Keras's "Trainable
    /// params"): frozen ones ([`Layer::set_trainable`]) are left out.
    fn trainable_param_count(&self) -> usize {
        let mut n = 0;
        each_tensor(self, &mut |_, t| {
            if t.role() == Role::Parameter && t.is_trainable() {
                n += t.numel();
            }
        });
        n
    }

    /// The values of tensor `key` in PyTorch layout, or `None` if there is
    /// no such tensor.
    fn export_param(&self, key: &str) -> Option<Vec<f32>> {
        let mut found = None;
        each_tensor(self, &mut |k, t| {
            if found.is_none() && k.is(key) {
                found = Some(t.export());
            }
        });
        found
    }

    /// Overwrites tensor `key` from PyTorch-layout `values`. Returns
    /// `false`, changing nothing, when there is no such tensor or the length
    /// is wrong.
    fn import_param(&mut self, key: &str, values: &[f32]) -> bool {
        let mut done = false;
        each_tensor_mut(self, &mut |k, t| {
            if !done && k.is(key) {
                done = t.import(values);
            }
        });
        done
    }

    /// The accumulated gradient of parameter `key`, in the same PyTorch
    /// layout as [`Layer::export_param`] (zeros before any backward pass),
    /// or `None` if there is no such parameter (buffers have none).
    fn export_grad(&self, key: &str) -> Option<Vec<f32>> {
        let mut found = None;
        each_tensor(self, &mut |k, t| {
            if found.is_none() && t.role() == Role::Parameter && k.is(key) {
                found = Some(t.export_grad());
            }
        });
        found
    }

    /// Calls `f(values, gradient)` for each trained parameter, in
    /// [`Layer::params`] order, in the layer's storage layout: what an
    /// optimizer updates. Buffers and frozen parameters are skipped.
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [f32], &[f32])) {
        each_tensor_mut(self, &mut |_, t| {
            if t.role() == Role::Parameter && t.is_trainable() {
                let (values, grad) = t.values_and_grad_mut();
                f(values, grad);
            }
        });
    }

    /// Resets every gradient to zero.
    fn zero_grads(&mut self) {
        each_tensor_mut(self, &mut |_, t| t.zero_grad());
    }

    /// Freezes (`false`) or unfreezes every tensor of this layer, as
    /// Keras's `layer.trainable = False`: frozen parameters get no update
    /// from `fit` and count as non-trainable in the summary, and a frozen
    /// BatchNormalization runs in inference mode (its moving statistics,
    /// not the batch's, and no update to them).
    ///
    /// On a model it freezes every layer; `net.dense_3.set_trainable(false)`
    /// freezes one, as does [`Layer::set_trainable_under`] by key.
    fn set_trainable(&mut self, trainable: bool) {
        each_tensor_mut(self, &mut |_, t| t.set_trainable(trainable));
    }

    /// Freezes or unfreezes the tensors whose key starts with the segments
    /// `prefix` (`"3"` is layer 3 and everything inside it, not layer 30;
    /// `"3.main"` is a residual's main branch). Returns how many tensors
    /// matched: 0 means the prefix names nothing.
    fn set_trainable_under(&mut self, prefix: &str, trainable: bool) -> usize {
        let mut matched = 0;
        each_tensor_mut(self, &mut |key, t| {
            if key_is_under(&key.to_string(), prefix) {
                t.set_trainable(trainable);
                matched += 1;
            }
        });
        matched
    }

    /// Whether training changes this layer: false once every one of its
    /// tensors is frozen (a layer without tensors is trainable, as in
    /// Keras).
    fn is_trainable(&self) -> bool {
        let (mut any, mut all_frozen) = (false, true);
        each_tensor(self, &mut |_, t| {
            any = true;
            all_frozen &= !t.is_trainable();
        });
        !(any && all_frozen)
    }

    /// Sets the initializer of tensor `key` (`"weight"`, or `"3.weight"` in
    /// a model), used from the next [`Layer::initialize`] on. Returns
    /// `false` if there is no such tensor.
    fn set_initializer(&mut self, key: &str, init: Option<Initializer>) -> bool {
        let mut found = false;
        each_tensor_mut(self, &mut |k, t| {
            if k.is(key) {
                t.set_initializer(init);
                found = true;
            }
        });
        found
    }

    /// Sets (or removes) the penalty on tensor `key` that training adds to
    /// the loss (Keras's `kernel_regularizer`). Returns `false` if there is
    /// no such tensor.
    fn set_regularizer(&mut self, key: &str, regularizer: Option<Regularizer>) -> bool {
        let mut found = false;
        each_tensor_mut(self, &mut |k, t| {
            if k.is(key) {
                t.set_regularizer(regularizer);
                found = true;
            }
        });
        found
    }

    /// The sum of the penalties of the trainable tensors with a
    /// regularizer: what Keras adds to the loss (`model.losses`, which
    /// counts trainable weights only).
    fn regularization_loss(&self) -> f32 {
        let mut total = 0.0f64;
        each_tensor(self, &mut |_, t| {
            if let (Some(r), true) = (t.regularizer(), t.is_trainable()) {
                total += r.penalty(t.values());
            }
        });
        total as f32
    }

    /// Adds the gradient of [`Layer::regularization_loss`] to the
    /// parameters' gradients.
    fn add_regularization_gradients(&mut self) {
        each_tensor_mut(self, &mut |_, t| {
            if let (Some(r), true) = (t.regularizer(), t.is_trainable()) {
                if t.role() == Role::Parameter {
                    let (values, grad) = t.values_and_grad_mut();
                    r.add_gradient(values, grad);
                }
            }
        });
    }

    /// Appends this layer's inference computation to an ONNX graph:
    /// `input` names its input value (NCHW for an image, `[N, L]` for a
    /// vector: see [`crate::onnx`]); returns the name of its output value.
    /// The default has no ONNX equivalent, so a custom layer that does not
    /// write one makes [`Model::to_onnx`](crate::Model::to_onnx) fail.
    fn export_onnx(&self, g: &mut OnnxGraph, input: &str) -> Result<String, ExportError> {
        let _ = (g, input);
        Err(ExportError::NoOnnxEquivalent {
            kind: self.kind().to_string(),
        })
    }
}

/// Whether `key` (`3.main.0.weight`) lies under `prefix` (`3`, `3.main`,
/// or the whole key), segment by segment.
fn key_is_under(key: &str, prefix: &str) -> bool {
    match key.strip_prefix(prefix) {
        Some(rest) => prefix.is_empty() || rest.is_empty() || rest.starts_with('.'),
        None => false,
    }
}

struct FnVisitor<F>(F);

impl<F: FnMut(TensorKey<'_>, &Tensor)> Visitor for FnVisitor<F> {
    fn tensor(&mut self, key: TensorKey<'_>, tensor: &Tensor) {
        (self.0)(key, tensor)
    }
}

impl<F: FnMut(TensorKey<'_>, &mut Tensor)> VisitorMut for FnVisitor<F> {
    fn tensor(&mut self, key: TensorKey<'_>, tensor: &mut Tensor) {
        (self.0)(key, tensor)
    }
}

/// Calls `f` with every tensor of `layer` and its full key.
pub fn each_tensor<L: Layer + ?Sized>(layer: &L, f: &mut dyn FnMut(TensorKey<'_>, &Tensor)) {
    layer.visit_tensors(&mut VisitPath::default(), &mut FnVisitor(f));
}

/// Calls `f` with every tensor of `layer`, writable, and its full key.
pub fn each_tensor_mut<L: Layer + ?Sized>(
    layer: &mut L,
    f: &mut dyn FnMut(TensorKey<'_>, &mut Tensor),
) {
    layer.visit_tensors_mut(&mut VisitPath::default(), &mut FnVisitor(f));
}

/// The plain [`Layer::forward_owned`]: the output in a buffer from the
/// context, the input's buffer given back to it.
pub fn forward_via_into<L: Layer>(
    layer: &L,
    input: Batch<L::Input>,
    ctx: &mut Context<'_>,
) -> Batch<L::Output> {
    let mut output = ctx.take_batch(input.batch_size());
    layer.forward_into(&input, &mut output, ctx);
    ctx.recycle(input);
    output
}
