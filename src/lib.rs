//! # strata
//!
//! Keras-style convolutional networks in one macro, with every tensor shape
//! a type. This page is a tour: the grammar of [`sequential!`], what a
//! model is, training, weight files and speed. Each item's own page has
//! the details and an example.
//!
//! ```
//! use strata::datasets::{digits, train_test_split};
//! use strata::prelude::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The UCI handwritten digits (8x8, embedded in the library): 80% to
//! // train on, 20% to test on.
//! let (images, labels) = digits();
//! let (x_train, y_train, x_test, y_test) = train_test_split(&images, &labels, 0.2, 7)?;
//!
//! let net = sequential![
//!     Input(8, 8, 1)
//!     => Conv2D(16, (3, 3), padding = same) => relu
//!     => MaxPooling2D((2, 2)) => Dropout(0.25)
//!     => Flatten => Dense(10) => softmax
//! ];
//! let mut model = net.compile(Loss::sparse_categorical_crossentropy(), Adam::new(0.01));
//! let options = FitOptions { epochs: 2, verbose: 0, ..FitOptions::default() };
//! let history = model.fit(&x_train, &y_train, options)?;
//! let test = model.evaluate(&x_test, &y_test)?;
//! assert!(test.accuracy > 0.5, "{history:?} {test:?}");
//!
//! let classes: Vec<usize> = model.predict(&x_test).argmax();
//! assert_eq!(classes.len(), y_test.len());
//! # Ok(())
//! # }
//! ```
//!
//! `cargo run --release --example quickstart` in the repository trains the
//! seed network on the same digits and shows its predictions.
//!
//! # The `sequential!` grammar
//!
//! A model is a chain of layers joined by `=>`, written as in Keras:
//!
//! ```text
//! sequential![ LAYER => LAYER => ... ]
//! sequential! { [pub] struct Name = LAYER => LAYER => ... }      a named model type (below)
//!
//! LAYER := Input(h, w, c) | Input(n)                    the shape of one sample (the batch size is a run-time number)
//!        | Conv2D(filters, kernel [, same|valid] [, strides = s|(sh, sw)] [, padding = same|valid]
//!                 [, dilation_rate = d|(dh, dw)] [, groups = g] [, activation = A] [, use_bias = false]
//!                 [, input_shape = (..)])                      alias Convolution2D
//!        | DepthwiseConv2D(kernel [, strides] [, padding] [, depth_multiplier = m] [, dilation_rate]
//!                 [, activation = A] [, use_bias = false])
//!        | SeparableConv2D(filters, kernel [, ...as DepthwiseConv2D])   alias SeparableConvolution2D
//!        | MaxPooling2D(pool_size [, strides] [, padding])  aliases MaxPool2D; also AveragePooling2D, AvgPool2D
//!        | MaxPool(ph, pw) | AvgPool(ph, pw)                a ph x pw window, strides = window, valid
//!        | GlobalAveragePooling2D | GlobalMaxPooling2D     (h, w, c) -> (c); aliases GlobalAvgPool2D, GlobalMaxPool2D
//!        | ZeroPadding2D(p | (ph, pw) | ((top, bottom), (left, right)))
//!        | BatchNormalization([axis = -1] [, momentum = 0.99] [, epsilon = 0.001] [, center = false] [, scale = false])   alias BatchNorm
//!        | Dropout(rate)                                     0 <= rate < 1
//!        | Flatten | Reshape(target_shape)                  (h, w, c) or (n,)
//!        | Dense(units [, activation = A] [, use_bias = false])
//!        | Activation(A) | A | ReLU | ReLU(max_value = 6) | Softmax
//!        | LeakyReLU | LeakyReLU(negative_slope = a)        the layer: default slope 0.3 (Keras 2's alpha = a too)
//!        | Residual({ CHAIN } [, shortcut = { CHAIN }])     main(x) + shortcut(x), the shortcut the identity by default
//!        | { expr }                                          another model (a block) as one layer
//! A     := relu | sigmoid | tanh | softmax | linear | relu6 | elu | selu | gelu | silu | swish
//!        | hard_sigmoid | hard_silu | hard_swish | softplus | softsign | mish | leaky_relu | log_softmax
//!                                                            Keras 3's formulas; also as strings: "relu"
//! ```
//!
//! Keras's defaults hold throughout: Conv2D is `valid`, stride 1, with
//! bias; pooling strides default to the window; a kernel or stride given as
//! one integer `k` means `(k, k)`; `"same"` may be written as a string;
//! `input_shape = (..)` on the first layer is the same as a leading
//! `Input(..)`. Named arguments (`filters =`, `kernel_size =`, `pool_size =`,
//! `rate =`, `units =`) work too. The semantics are Keras's: 'same' padding
//! gives `ceil(in / stride)` outputs with the odd extra row or column at
//! the bottom/right; 'same' max pooling pads with -inf and 'same' average
//! pooling averages over the real cells only; softmax is over the last
//! axis; Dense acts on the last axis; Dropout is the identity at inference
//! and inverted dropout in training.
//!
//! ```
//! use strata::prelude::*;
//!
//! let net = sequential![
//!     Input(32, 32, 3)
//!     => Conv2D(16, (3, 3), padding = same, use_bias = false) => BatchNormalization => relu
//!     => Residual({ Conv2D(16, (3, 3), same) => relu => Conv2D(16, (3, 3), same) }) => relu
//!     => SeparableConv2D(32, (3, 3), strides = 2, padding = same, activation = relu)
//!     => GlobalAveragePooling2D => Dropout(0.5) => Dense(10, activation = softmax)
//! ];
//! let y = net.predict(&Batch::<Shape3<U32, U32, U3>>::zeros(2));
//! assert_eq!(y.dims(), [2, 10]);
//! println!("{}", net.summary()); // Keras's table: layers, output shapes, parameter counts
//! ```
//!
//! # Shapes are types
//!
//! A sample's shape is a type: [`Shape3<H, W, C>`](Shape3) (height, width,
//! channels) or [`Shape1<N>`](Shape1), with typenum's `U8`, `U32`, ... (all
//! in the [`prelude`]). A [`Batch<S>`](Batch) holds any number of `S`
//! samples, NHWC and contiguous (`Batch::from_vec(n, data)`,
//! `Batch::zeros(n)`, `as_slice()`, `sample(i)`, `argmax()`). Every layer's
//! type carries its input shape, so a chain whose shapes do not fit does
//! not compile. Where the macro can see the shapes it says what is wrong in
//! words, pointing at the layer:
//!
//! ```compile_fail
//! use strata::prelude::*;
//! // error: MaxPool(2, 2) needs an input of at least 2x2, but Conv2D(8, (3, 3)) outputs 1x1x8
//! let net = sequential![Input(3, 3, 1) => Conv2D(8, (3, 3)) => MaxPool(2, 2)];
//! ```
//!
//! and a batch of the wrong sample shape is refused where it is used:
//!
//! ```compile_fail,E0277
//! use strata::prelude::*;
//! let net = sequential![Input(8, 8, 1) => Flatten => Dense(10)];
//! // error[E0277]: the batch's samples do not have the model's input shape
//! let y = net.predict(&Batch::<Shape3<U28, U28, U1>>::zeros(1));
//! ```
//!
//! # What a model is
//!
//! `sequential![...]` expands to a value of a plain struct with one public
//! field per layer, named after Keras's snake-case kind and the layer's
//! position in the chain (counting every layer after `Input`, activations
//! included): `conv2d_0`, `activation_1`, `max_pooling2d_2`, `dropout_3`,
//! `flatten_4`, `dense_5`. The position is also the layer's index in weight
//! files (`conv2d_0` holds `0.weight` and `0.bias`). The struct implements
//! [`Layer`] (so models nest) and therefore [`Model`]: `predict`,
//! `predict_into`, `summary`, `compile`, the weight files.
//!
//! One layer's tensors can be read and written by key, in PyTorch's layout
//! ([`Layer::params`] lists the keys, shapes and roles):
//!
//! ```
//! use strata::prelude::*;
//!
//! let mut net = sequential![Input(4, 4, 1) => Conv2D(2, (3, 3)) => relu => Flatten => Dense(3)];
//! let keys: Vec<String> = net.params().into_iter().map(|p| p.name).collect();
//! assert_eq!(keys, ["0.weight", "0.bias", "3.weight", "3.bias"]);
//!
//! // The fields are the layers themselves.
//! assert_eq!(net.conv2d_0.kernel().len(), 3 * 3 * 1 * 2);
//! assert_eq!(net.dense_3.bias(), Some(&[0.0; 3][..]));
//!
//! // Set the convolution's bias, then read it back (PyTorch layout).
//! assert!(net.import_param("0.bias", &[0.5, -0.5]));
//! assert_eq!(net.export_param("0.bias"), Some(vec![0.5, -0.5]));
//! assert!(!net.import_param("0.bias", &[1.0])); // wrong length: nothing changes
//! ```
//!
//! # Blocks and named models
//!
//! A chain without an input shape is a block: its shapes are fixed by the
//! input it is given (and the same checks apply then). `{ expr }` embeds
//! any model as one layer.
//!
//! ```
//! use strata::prelude::*;
//!
//! let block = sequential![Conv2D(8, (3, 3), same) => relu => MaxPool(2, 2)];
//! let y = block.predict(&Batch::<Shape3<U16, U16, U3>>::zeros(1)); // 8x8x8
//! assert_eq!(y.dims(), [1, 8, 8, 8]);
//!
//! let fixed = sequential![Conv2D(8, (3, 3)) => relu].built_for::<Shape3<U8, U8, U3>>();
//! let net = sequential![Input(8, 8, 3) => { fixed } => Flatten => Dense(10)];
//! assert_eq!(net.predict(&Batch::zeros(1)).dims(), [1, 10]);
//! ```
//!
//! At item level, `sequential! { pub struct Name = ... }` declares the
//! model as a named type, so it can be a struct field, a function's return
//! type or a reusable block. Without an input shape it is generic over its
//! input (`VggBlock<S>`); with one it is a plain type. `Name::new()` builds
//! one (parameters from [`DEFAULT_SEED`]), and so does `Default`.
//!
//! ```
//! use strata::prelude::*;
//!
//! sequential! {
//!     /// Two convolutions and a pooling, for any input.
//!     pub struct VggBlock = Conv2D(16, (3, 3), padding = same) => relu
//!         => Conv2D(16, (3, 3), padding = same) => relu => MaxPool(2, 2)
//! }
//! sequential! {
//!     /// Ten classes from 8x8x16 features.
//!     pub struct Head = Input(8, 8, 16) => GlobalAveragePooling2D => Dense(10) => softmax
//! }
//!
//! struct Classifier {
//!     features: VggBlock<Shape3<U16, U16, U3>>,
//!     head: Head,
//! }
//!
//! let c = Classifier { features: VggBlock::new(), head: Head::new() };
//! let y = c.head.predict(&c.features.predict(&Batch::zeros(2)));
//! assert_eq!(y.dims(), [2, 10]);
//!
//! // Or as layers of another chain, at two sizes.
//! let net = sequential![Input(32, 32, 3) => { VggBlock::new() } => { VggBlock::new() } => { Head::new() }];
//! assert_eq!(net.predict(&Batch::zeros(1)).dims(), [1, 10]);
//! ```
//!
//! # Training
//!
//! [`Model::compile`] pairs a model with a [`Loss`] and an optimizer
//! ([`Sgd`], [`Adam`]) into a [`Trainer`], which dereferences to the model.
//! [`Trainer::fit`] takes [`FitOptions`] with Keras's names and defaults
//! (`epochs`, `batch_size`, `shuffle`, `validation_split`,
//! `validation_data`, `verbose`, plus a `seed`: training is deterministic)
//! and returns the per-epoch [`History`]; [`Trainer::evaluate`] gives the
//! loss and accuracy. Targets are class indices (`&[usize]`, for the sparse
//! losses) or a `Batch` of the output's shape (one-hot).
//!
//! - Losses: categorical and sparse categorical cross-entropy (fused with
//!   a final softmax, or `from_logits`), binary cross-entropy, mean squared
//!   error.
//! - Optimizers: `Sgd` (momentum, Nesterov), `Adam` (Keras's defaults),
//!   decoupled weight decay, and [`Trainer::with_schedule`] for a learning
//!   rate per epoch (a closure `|epoch, lr| ...` or [`StepDecay`]).
//! - `fit` shows a Keras-style progress bar on a terminal, and stops with a
//!   [`TrainError`] naming the epoch and batch if a loss or gradient is not
//!   finite (the refused step is not applied).
//! - [`Model::loss_and_gradients`] gives the loss and every parameter's
//!   gradient without changing anything, under the weights' keys.
//! - Data: [`datasets::digits`] (embedded), [`datasets::mnist`] (IDX files,
//!   gzipped or not), [`datasets::train_test_split`].
//!
//! # Weight files
//!
//! [`Model::save_safetensors`] and [`Model::load_safetensors`] use
//! PyTorch's `nn.Sequential` state-dict convention, so a
//! `torch.nn.Sequential` saved with safetensors loads as it is: keys
//! `{i}.weight` and `{i}.bias` with `i` the layer's position (a nested
//! block's are `{i}.{j}.weight`, a residual's `{i}.main.{j}.weight`);
//! Conv2D weights `[out, in, kh, kw]`, Dense `[out, in]` (after a
//! `Flatten`, in PyTorch's (C, H, W) order: loading and saving permute);
//! buffers such as BatchNormalization's running statistics are saved too.
//! Loading is all or nothing: any problem is a [`LoadError`] naming the key
//! and what was expected and found (for missing keys, every key missing and
//! every key the file has instead), and the model is unchanged. F16, BF16
//! and F64 tensors are converted.
//!
//! ```
//! use strata::prelude::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let net = sequential![Input(4) => Dense(3) => relu => Dense(2)];
//! let bytes = net.to_safetensors()?;
//!
//! let mut other = sequential![Input(4) => Dense(3) => relu => Dense(2)].with_seed(1);
//! assert_ne!(other.export_param("0.weight"), net.export_param("0.weight"));
//! other.load_safetensors_bytes(&bytes)?;
//! assert_eq!(other.export_param("0.weight"), net.export_param("0.weight"));
//!
//! // A model with other keys is refused, and says which.
//! let mut wider = sequential![Input(4) => Dense(3) => Dropout(0.5) => relu => Dense(2)];
//! let err = wider.load_safetensors_bytes(&bytes).unwrap_err();
//! assert!(err.to_string().contains("in the file but not in the model (2): `2.bias`, `2.weight`"));
//! # Ok(())
//! # }
//! ```
//!
//! # Performance
//!
//! - Build in release (`cargo run --release`): a debug build trains about
//!   37 times slower. To keep a debug build of your own crate but get
//!   release-speed kernels, optimise the dependencies in its `Cargo.toml`:
//!
//!   ```toml
//!   [profile.dev.package."*"]
//!   opt-level = 3
//!   ```
//!
//!   (or only `[profile.dev.package.strata-core]` and
//!   `[profile.dev.package.matrixmultiply]`, which hold the kernels).
//! - Convolutions pick, per layer shape, a direct SIMD kernel, Winograd
//!   (3x3, stride 1) or im2col + GEMM on `matrixmultiply`; results are
//!   bitwise identical whatever the thread count.
//! - [`Model::predict_into`] reuses the output and a [`Context`]'s memory
//!   from call to call; `Context::inference().with_threads(n)` sets the
//!   thread count (default: the machine's cores; [`Trainer::with_threads`]
//!   for training).
//! - Models are `Send + Sync`: one model serves many threads through an
//!   `Arc`.

#![warn(missing_docs)]

extern crate self as strata;

pub use strata_core::*;
pub use strata_macros::sequential;

/// Everything a model definition needs: `use strata::prelude::*;`.
pub mod prelude {
    pub use strata_core::datasets;
    pub use strata_core::typenum::consts::*;
    pub use strata_core::{
        seeded_rng, Adam, Batch, Evaluation, FitOptions, Gradients, History, Layer, LoadError,
        Loss, Model, Padding, SaveError, Sgd, Shape, Shape1, Shape3, ShapeError, StepDecay,
        Summary, TrainError, Trainer, DEFAULT_SEED,
    };
    // Keras's fit callbacks, initializers and regularizers.
    pub use strata_core::{
        EarlyStopping, Initializer, LambdaCallback, ModelCheckpoint, Monitor, ReduceLROnPlateau,
        Regularizer,
    };
    pub use strata_macros::sequential;
}

/// What `sequential!` expansions refer to. Not a public API.
#[doc(hidden)]
pub mod __macro_support {
    pub use strata_core::activation::*;
    pub use strata_core::fusion::{
        fused_into, padded_into, pooled_into, pooled_owned, Bare, EpilogueLayer, FusedHead,
        PaddedHead, SliceLayer,
    };
    pub use strata_core::layers::*;
    pub use strata_core::rand::RngCore;
    pub use strata_core::tensor::{VisitPath, Visitor, VisitorMut};
    pub use strata_core::typenum::consts::*;
    pub use strata_core::typenum::{UInt, UTerm, B0, B1};
    pub use strata_core::{
        seeded_rng, Activation, Batch, Context, Layer, Linear, Relu, Same, Shape, Shape1, Shape3,
        Sigmoid, Softmax, SummaryRow, Tanh, Valid, DEFAULT_SEED,
    };
    // `kernel_initializer = ...` and `kernel_regularizer = ...`.
    pub use strata_core::{Initializer, Regularizer};

    /// Stands in for the model after a `sequential!` error, so that the
    /// macro's own message is the only one.
    pub fn invalid_model<T>() -> T {
        unreachable!("sequential! reported a compile error")
    }
}
