//! The numeric kernels behind the layers: plain functions on slices, with
//! the geometry passed in. Layers derive every size from their types.
//!
//! The kernels are internal to strata. One module per operation holds its
//! forward and backward passes and, beside them, their tests:
//! - `conv`: convolution (path choice, im2col + GEMM, the direct SIMD
//!   kernel, Winograd, the backward pass);
//! - `pool`: max and average pooling, and global pooling;
//! - `dense`: a dense layer's products;
//! - `gemm`: the one front to `matrixmultiply`;
//! - `geometry` ([`ConvGeometry`]) and `isa` ([`Isa`], cache sizes and the
//!   one dispatch on the instruction set) serve all of them.
//!
//! What stays public is what the benchmarks and root-crate tests need:
//! [`ConvGeometry`], [`conv2d`] with [`choose_path`] / [`ConvPath`] and
//! [`conv2d_scratch_len`], [`sgemm`] and [`sgemm_calls`], [`Isa`], and the
//! reference implementations in [`naive`].
//!
//! Every backward kernel that needs work space takes it from the caller
//! (`scratch`, sized by its `*_scratch_len` twin), so that a training step
//! allocates nothing per call.
//!
//! All of strata's unsafe code is here (the SIMD micro-kernels behind
//! `isa::dispatch`, the call into `matrixmultiply`). Each unsafe block
//! carries a `// SAFETY:` comment (a lint denied crate-wide), and each
//! safe function that reaches one checks its sizes with arithmetic that
//! cannot wrap; the `Hostile arguments` tests of each module feed them
//! sizes that overflow, strides that stand for negative ones and empty
//! products.

#[cfg(test)]
mod activation_tests;
pub(crate) mod conv;
pub(crate) mod dense;
pub mod epilogue;
pub(crate) mod gemm;
mod geometry;
pub(crate) mod isa;
pub mod naive;
pub(crate) mod parallel;
pub(crate) mod pool;
#[cfg(test)]
mod testutil;

pub use conv::{
    choose_path, conv2d, conv2d_scratch_len, conv2d_then, conv2d_with, ConvExtras, ConvPath,
    PreparedKernel,
};
pub use epilogue::{Epilogue, Step};
pub use gemm::{sgemm, sgemm_calls};
pub use geometry::ConvGeometry;
pub use isa::Isa;
