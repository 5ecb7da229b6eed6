//! The [`Layer`] trait every layer and every `sequential!` model implements.

use rand::RngCore;

use crate::batch::Batch;
use crate::shape::Shape;

/// Everything a forward or backward pass needs besides the data: whether
/// this is training (and the random stream dropout draws from), the thread
/// count, reusable scratch memory, and, in training, what each layer's
/// forward pass saved for its backward pass.
pub struct Context<'a> {
    rng: Option<&'a mut dyn RngCore>,
    scratch: Vec<f32>,
    threads: usize,
    /// A stack: forward passes push in layer order, backward passes pop in
    /// reverse, so nested models need no bookkeeping of their own.
    saved: Vec<Vec<f32>>,
    /// Activation buffers for reuse (see [`Context::take_batch`]).
    buffers: Vec<Vec<f32>>,
    recording: bool,
    softmax_fused: bool,
}

/// The number of threads a [`Context`] uses unless told otherwise: the
/// machine's available parallelism.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl<'a> Context<'a> {
    /// Inference: dropout is the identity.
    pub fn inference() -> Self {
        Context {
            rng: None,
            scratch: Vec::new(),
            threads: default_threads(),
            saved: Vec::new(),
            buffers: Vec::new(),
            recording: false,
            softmax_fused: false,
        }
    }

    /// Training: dropout draws its masks from `rng`, and layers keep what
    /// their backward pass needs.
    pub fn training(rng: &'a mut dyn RngCore) -> Self {
        Context {
            rng: Some(rng),
            scratch: Vec::new(),
            threads: default_threads(),
            saved: Vec::new(),
            buffers: Vec::new(),
            recording: true,
            softmax_fused: false,
        }
    }

    /// Keeps what backward passes need, without turning dropout on: the
    /// forward pass of [`Model::loss_and_gradients`](crate::Model), which
    /// differentiates the inference function as Keras's `training=False`.
    pub fn recording(mut self) -> Self {
        self.recording = true;
        self
    }

    /// Whether forward passes keep what backward passes need.
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// Uses `threads` threads (at least 1) for the kernels. Results are
    /// bitwise identical whatever the count: work is split, never reordered.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The number of threads kernels may use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Whether layers should behave as in training (dropout on).
    pub fn is_training(&self) -> bool {
        self.rng.is_some()
    }

    /// The training random stream, or `None` at inference.
    pub fn rng(&mut self) -> Option<&mut dyn RngCore> {
        match &mut self.rng {
            Some(r) => Some(&mut **r),
            None => None,
        }
    }

    /// When recording, keeps `values` for this layer's backward pass (which
    /// takes them back with [`Context::restore`]); otherwise drops them.
    pub fn save(&mut self, values: Vec<f32>) {
        if self.recording {
            self.saved.push(values);
        }
    }

    /// Takes back the most recent [`Context::save`].
    ///
    /// # Panics
    /// If nothing is saved: `backward` was called without a training-mode
    /// `forward` before it, a programmer error.
    pub fn restore(&mut self) -> Vec<f32> {
        self.saved
            .pop()
            .expect("backward called without a training-mode forward before it")
    }

    /// Declares that the gradient about to enter the model's final softmax
    /// is already the gradient of its input (categorical cross-entropy on a
    /// softmax output simplifies to `p - y`, with no division by `p`).
    pub fn fuse_softmax(&mut self) {
        self.softmax_fused = true;
    }

    /// For a softmax's backward pass: whether its gradient is already taken
    /// care of by the loss (see [`Context::fuse_softmax`]). Clears the flag.
    pub fn take_fused_softmax(&mut self) -> bool {
        std::mem::take(&mut self.softmax_fused)
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

impl Context<'_> {
    /// A batch of `len` samples made from a buffer this context keeps (the
    /// largest it has), so that a model's intermediate activations reuse
    /// memory from one call to the next. Give it back with
    /// [`Context::recycle`].
    pub fn take_batch<S: Shape>(&mut self, len: usize) -> Batch<S> {
        let best = (0..self.buffers.len()).max_by_key(|&i| self.buffers[i].capacity());
        let buffer = best
            .map(|i| self.buffers.swap_remove(i))
            .unwrap_or_default();
        Batch::from_buffer(len, buffer)
    }

    /// Returns a batch's memory for [`Context::take_batch`] to reuse.
    pub fn recycle<S: Shape>(&mut self, batch: Batch<S>) {
        self.buffers.push(batch.into_vec());
    }
}

/// One parameter tensor of a layer, as it appears in a weights file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    /// Key relative to the layer: `weight`, `bias`, or `3.weight` inside a block.
    pub name: String,
    /// Shape in PyTorch's layout (`[out, in, kh, kw]` for Conv2D,
    /// `[out, in]` for Dense, `[out]` for biases).
    pub shape: Vec<usize>,
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
    /// Number of parameters.
    pub params: usize,
}

/// A layer: a function from a batch of `Input`-shaped samples to a batch of
/// `Output`-shaped ones, with its parameters.
///
/// Shapes are associated types computed from the layer's type, so chaining
/// layers whose shapes do not agree is a type error. A `sequential!` model is
/// itself a `Layer`, so models nest.
///
/// Parameters are exchanged in PyTorch's layout and naming (see
/// [`ParamInfo`]); each layer converts to and from its own internal layout.
pub trait Layer {
    /// Shape of one input sample.
    type Input: Shape;
    /// Shape of one output sample.
    type Output: Shape;

    /// The layer's kind in Keras's words (`Conv2D`, `Dense`, `Sequential`...).
    fn kind(&self) -> &'static str;

    /// Computes the output for `input` into `output`, which it resizes to
    /// the input's batch size (reusing its allocation). When recording
    /// ([`Context::is_recording`], as in training) it also saves, with
    /// [`Context::save`], whatever [`Layer::backward`] will need.
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

    /// The backward pass of the most recent training-mode `forward`: given
    /// the gradient of the loss with respect to this layer's output, adds the
    /// gradients of its parameters to its gradient buffers and returns the
    /// gradient with respect to its input.
    ///
    /// # Panics
    /// If no training-mode forward pass preceded it (a programmer error).
    fn backward(
        &mut self,
        grad_output: &Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) -> Batch<Self::Input>;

    /// Calls `f(parameter, gradient)` for each parameter tensor, in
    /// [`Layer::params`] order, in the layer's internal layout: what an
    /// optimizer updates.
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [f32], &[f32])) {
        let _ = f;
    }

    /// Resets every gradient buffer to zero.
    fn zero_grads(&mut self) {}

    /// The accumulated gradient of parameter `name`, in the same PyTorch
    /// layout as [`Layer::export_param`], or `None` if there is no such
    /// parameter.
    fn export_grad(&self, name: &str) -> Option<Vec<f32>> {
        let _ = name;
        None
    }

    /// Whether the output is a softmax (for cross-entropy fused with it).
    fn ends_with_softmax(&self) -> bool {
        false
    }

    /// The parameter tensors, in PyTorch layout, with their names.
    fn params(&self) -> Vec<ParamInfo> {
        Vec::new()
    }

    /// Total number of parameters.
    fn param_count(&self) -> usize {
        self.params().iter().map(ParamInfo::numel).sum()
    }

    /// The values of parameter `name` in PyTorch layout, or `None` if the
    /// layer has no such parameter.
    fn export_param(&self, name: &str) -> Option<Vec<f32>> {
        let _ = name;
        None
    }

    /// Overwrites parameter `name` from PyTorch-layout `values`.
    ///
    /// Callers check `name` and the length against [`Layer::params`] first
    /// (as `load_safetensors` does); returns `false`, changing nothing, when
    /// the name is unknown or the length is wrong.
    fn import_param(&mut self, name: &str, values: &[f32]) -> bool {
        let _ = (name, values);
        false
    }

    /// Draws fresh initial parameters (Keras's defaults) from `rng`.
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
        });
    }
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

/// Splits a parameter key `"3.weight"` into the layer index and the rest.
/// Used by generated models to route a key to the layer that owns it.
pub fn split_param_key(key: &str) -> Option<(usize, &str)> {
    let (index, rest) = key.split_once('.')?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((index.parse().ok()?, rest))
}
