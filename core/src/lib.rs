//! The engine behind [strata](https://docs.rs/strata): shapes as types,
//! batches, layers, the im2col + GEMM convolution core, weight files and
//! model summaries. Users normally reach all of it through
//! `strata::prelude::*` and the `sequential!` macro.

#![warn(missing_docs)]
// Every unsafe block says why it is sound, and unsafe functions spell out
// their unsafe operations in such blocks too.
#![deny(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

pub mod activation;
pub mod batch;
pub mod callbacks;
pub mod datasets;
pub mod fusion;
pub mod init;
pub mod kernels;
pub mod layer;
pub mod layers;
pub mod loss;
pub mod model;
pub mod onnx;
pub mod optim;
pub mod regularizers;
pub mod sample_weights;
pub mod shape;
pub mod summary;
pub mod tensor;
pub mod train;
pub mod weights;

pub use activation::{
    Activation, ActivationFn, Elu, Gelu, HardSigmoid, HardSilu, Keeps, LeakyRelu, Linear,
    LogSoftmax, Mish, Relu, Relu6, Selu, Sigmoid, Silu, Softmax, Softplus, Softsign, Tanh,
};
pub use batch::{Batch, ShapeError};
pub use callbacks::{
    Callback, EarlyStopping, LambdaCallback, ModelCheckpoint, Monitor, ReduceLROnPlateau,
};
pub use datasets::{DatasetError, DigitsImage, IdxImages, MnistImage, TrainTest};
pub use init::{seeded_rng, Initializer, SeededRng, DEFAULT_SEED};
pub use layer::{default_threads, Context, Layer, Mode, ParamInfo, SummaryRow};
pub use layers::*;
pub use loss::{Loss, TargetError, Targets};
pub use model::{BatchOf, InputMatches, Model, ShapeCheck};
pub use onnx::ExportError;
pub use optim::{Adam, HyperparameterError, LearningRateSchedule, Optimizer, Sgd, StepDecay};
pub use regularizers::Regularizer;
pub use sample_weights::WeightError;
pub use shape::{Padding, Same, Shape, Shape1, Shape3, Valid};
pub use summary::Summary;
pub use tensor::{Layout, Role, Tensor};
pub use train::{Evaluation, FitOptions, Gradients, History, TrainError, Trainer};
pub use weights::{LoadError, SaveError};

/// rand, whose `RngCore` drives initialisation and dropout.
pub use rand;
/// typenum, whose unsigned integers (`U32`, ...) are the sizes in shapes.
pub use typenum;
