//! The numeric kernels behind the layers: plain functions on slices, with
//! the geometry passed in. Layers derive every size from their types.

pub mod conv;
pub mod direct;
pub mod gemm;
pub mod grad;
pub mod naive;
pub(crate) mod parallel;
pub mod pool;
pub mod winograd;

pub use conv::{
    choose_path, conv2d, conv2d_scratch_len, conv2d_with, im2col, im2col_columns, ConvGeometry,
    ConvPath,
};
pub use direct::Isa;
pub use gemm::{sgemm, sgemm_general, sgemm_strided};
pub use pool::{avg_pool2d, max_pool2d};
