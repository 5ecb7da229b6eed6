//! The numeric kernels behind the layers: plain functions on slices, with
//! the geometry passed in. Layers derive every size from their types.

pub mod conv;
pub mod gemm;
pub mod grad;
pub mod naive;
pub mod pool;

pub use conv::{conv2d, conv2d_scratch_len, im2col, ConvGeometry};
pub use gemm::sgemm;
pub use pool::{avg_pool2d, max_pool2d};
