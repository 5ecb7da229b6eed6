//! ONNX export: any model becomes a `.onnx` file that ONNX Runtime, Triton,
//! OpenVINO or tract runs ([`Model::to_onnx`](crate::Model::to_onnx),
//! [`Model::save_onnx`](crate::Model::save_onnx)).
//!
//! The graph:
//! - input `input`, float32 `["N", H, W, C]` (or `["N", L]`), the batch
//!   size symbolic; output `output`, likewise in strata's layout;
//! - standard operators of opset [`OPSET`] (no custom domain), the weights
//!   as initializers (not graph inputs), named by their weight-file keys;
//! - images NCHW inside, transposed once at the entry (and once back at
//!   the exit when the output is an image); Flatten and Reshape transpose
//!   to NHWC first, so a Dense after a Flatten keeps strata's columns;
//! - node names after the chain (`3:Residual/main/0:Conv2D/Conv`), so a
//!   viewer such as Netron shows the Keras layers;
//! - inference semantics: Dropout is dropped, BatchNormalization uses its
//!   moving statistics.
//!
//! Each layer writes its own nodes ([`Layer::export_onnx`]), each
//! activation its own ([`ActivationFn::export_onnx`](crate::ActivationFn::export_onnx));
//! a layer with no ONNX equivalent makes the export fail with
//! [`ExportError::NoOnnxEquivalent`], never a panic.

use std::fmt;
use std::path::PathBuf;

use prost::Message;

use crate::layer::Layer;
use crate::shape::Shape;

mod builder;
pub mod proto;

pub use builder::{window_pads, Attr, OnnxGraph, INPUT, OUTPUT};

use builder::dim;
use proto::{
    DataType, Dimension, DimensionValue, ModelProto, OperatorSetIdProto, TensorShapeProto,
    TensorTypeProto, TypeProto,
};

/// The ONNX opset every exported graph declares (standard domain).
/// 17 is run by ONNX Runtime 1.12 and later, TensorRT 8.6, OpenVINO and
/// tract; gelu and mish, whose operators came later (20 and 18), are
/// written as their formulas.
pub const OPSET: i64 = 17;

/// The ONNX IR version written: 8, the one opset 17 belongs to.
pub const IR_VERSION: i64 = 8;

/// The name of the symbolic batch dimension.
pub const BATCH: &str = "N";

/// Why a model could not be exported.
#[derive(Debug)]
#[non_exhaustive]
pub enum ExportError {
    /// A layer or activation has no ONNX equivalent (a custom layer that
    /// does not implement [`Layer::export_onnx`]).
    NoOnnxEquivalent {
        /// The layer's kind or the activation's name.
        kind: String,
    },
    /// A tensor's values do not fill its shape (a layer's export is wrong).
    TensorSize {
        /// The tensor's name.
        name: String,
        /// The shape given.
        dims: Vec<usize>,
        /// The number of values given.
        len: usize,
    },
    /// A size does not fit ONNX's int64.
    TooLarge(usize),
    /// The file would pass protobuf's 2 GiB limit, which every ONNX reader
    /// enforces (weights in external data files are not written).
    ProtobufLimit(usize),
    /// Writing the file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::NoOnnxEquivalent { kind } => write!(
                f,
                "cannot export to ONNX: `{kind}` has no ONNX equivalent (implement `export_onnx` for it)"
            ),
            ExportError::TensorSize { name, dims, len } => write!(
                f,
                "cannot export to ONNX: tensor `{name}` has {len} values for shape {dims:?}"
            ),
            ExportError::TooLarge(d) => {
                write!(f, "cannot export to ONNX: size {d} does not fit in an int64")
            }
            ExportError::ProtobufLimit(n) => write!(
                f,
                "cannot export to ONNX: the file would take {n} bytes, over protobuf's 2 GiB limit"
            ),
            ExportError::Io { path, source } => {
                write!(f, "cannot write ONNX file {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for ExportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExportError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The float32 tensor type `["N", dims...]`.
pub(crate) fn tensor_type(dims: &[usize]) -> Result<TypeProto, ExportError> {
    let batch = Dimension {
        value: Some(DimensionValue::DimParam(BATCH.to_string())),
    };
    let rest = dims.iter().map(|&d| {
        Ok(Dimension {
            value: Some(DimensionValue::DimValue(dim(d)?)),
        })
    });
    let dim = std::iter::once(Ok(batch))
        .chain(rest)
        .collect::<Result<_, _>>()?;
    Ok(TypeProto {
        tensor_type: Some(TensorTypeProto {
            elem_type: DataType::Float as i32,
            shape: Some(TensorShapeProto { dim }),
        }),
    })
}

/// The ONNX model of `net`: see the [module docs](self).
pub fn to_model<L: Layer + ?Sized>(net: &L) -> Result<ModelProto, ExportError> {
    let mut g = OnnxGraph::new(L::Input::DIMS)?;
    let x = if L::Input::RANK == 3 {
        g.part(INPUT, |g| g.to_nchw(INPUT))
    } else {
        INPUT.to_string()
    };
    let y = net.export_onnx(&mut g, &x)?;
    let graph = g.finish(&y, L::Output::DIMS)?;
    Ok(ModelProto {
        ir_version: IR_VERSION,
        producer_name: "strata".to_string(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        doc_string: format!(
            "{}: input NHWC float32 [N, {}], output [N, {}]",
            net.kind(),
            join(L::Input::DIMS),
            join(L::Output::DIMS)
        ),
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        ..Default::default()
    })
}

fn join(dims: &[usize]) -> String {
    dims.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Protobuf's limit on a message's size, which ONNX readers enforce.
pub const PROTOBUF_LIMIT: usize = i32::MAX as usize;

/// The `.onnx` file of `net`, as bytes.
pub fn to_bytes<L: Layer + ?Sized>(net: &L) -> Result<Vec<u8>, ExportError> {
    let model = to_model(net)?;
    let len = model.encoded_len();
    if len > PROTOBUF_LIMIT {
        return Err(ExportError::ProtobufLimit(len));
    }
    Ok(model.encode_to_vec())
}

/// Writes `net`'s `.onnx` file to `path`.
pub fn save<L: Layer + ?Sized>(net: &L, path: impl Into<PathBuf>) -> Result<(), ExportError> {
    let path = path.into();
    let bytes = to_bytes(net)?;
    std::fs::write(&path, bytes).map_err(|source| ExportError::Io { path, source })
}

#[cfg(test)]
mod tests;
