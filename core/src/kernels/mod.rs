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

#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(test)]
mod activation_tests;
#[doc(hidden)]
pub mod conv;
// Until the layers call the new dense and global pooling kernels, only the
// tests do.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod dense;
pub(crate) mod gemm;
mod geometry;
pub(crate) mod isa;
pub mod naive;
pub(crate) mod parallel;
pub(crate) mod pool;
#[cfg(test)]
mod testutil;

pub use conv::{choose_path, conv2d, conv2d_scratch_len, ConvPath};
pub use gemm::{sgemm, sgemm_calls};
pub use geometry::ConvGeometry;
pub use isa::Isa;

/// Today's paths of the backward kernels, for the layers until they call
/// the new ones (`conv::backward`, `dense::backward`, `pool`). To delete
/// then.
pub(crate) mod grad {
    pub(crate) use super::conv::backward::conv2d_backward_grouped;
    pub(crate) use super::dense::backward as dense_backward;
    pub(crate) use super::pool::{avg_pool2d_backward, max_pool2d_backward};
}
