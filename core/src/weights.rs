//! Saving and loading parameters as safetensors, in PyTorch's
//! `nn.Sequential` state-dict convention (`{i}.weight`, `{i}.bias`).

use std::fmt;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::layer::{Layer, ParamInfo};

/// Why a weights file could not be loaded. The model is unchanged.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The bytes are not a valid safetensors file (truncated, corrupt header...).
    Corrupt {
        /// What is wrong with them.
        reason: String,
    },
    /// The model has a parameter the file lacks.
    MissingKey {
        /// The parameter, e.g. `3.weight`.
        key: String,
        /// Its shape in the model (PyTorch layout).
        expected: Vec<usize>,
    },
    /// The file has a tensor the model has no parameter for.
    UnexpectedKey {
        /// The tensor's name.
        key: String,
        /// Its shape in the file.
        found: Vec<usize>,
    },
    /// A tensor's shape is not the parameter's.
    WrongShape {
        /// The parameter.
        key: String,
        /// Its shape in the model (PyTorch layout).
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor's element type cannot be converted to `f32` (only F32, F64,
    /// F16 and BF16 can).
    WrongDtype {
        /// The parameter.
        key: String,
        /// The dtype in the file.
        found: String,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io { path, source } => {
                write!(f, "cannot read weights file {}: {source}", path.display())
            }
            LoadError::Corrupt { reason } => write!(f, "not a valid safetensors file: {reason}"),
            LoadError::MissingKey { key, expected } => write!(
                f,
                "the file has no tensor `{key}`; the model expects one of shape {expected:?}"
            ),
            LoadError::UnexpectedKey { key, found } => write!(
                f,
                "the file has a tensor `{key}` of shape {found:?} that the model has no parameter for"
            ),
            LoadError::WrongShape { key, expected, found } => write!(
                f,
                "tensor `{key}` has shape {found:?}, but the model expects {expected:?}"
            ),
            LoadError::WrongDtype { key, found } => write!(
                f,
                "tensor `{key}` has dtype {found}; expected F32 (F64, F16 and BF16 are converted)"
            ),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why parameters could not be saved.
#[derive(Debug)]
pub enum SaveError {
    /// The file could not be written.
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// safetensors refused the tensors (should not happen for a valid model).
    Serialize {
        /// What it said.
        reason: String,
    },
}

impl fmt::Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaveError::Io { path, source } => {
                write!(f, "cannot write weights file {}: {source}", path.display())
            }
            SaveError::Serialize { reason } => write!(f, "cannot serialize weights: {reason}"),
        }
    }
}

impl std::error::Error for SaveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SaveError::Io { source, .. } => Some(source),
            SaveError::Serialize { .. } => None,
        }
    }
}

/// Decodes little-endian `dtype` bytes to `f32`, or `None` for a dtype that
/// is not a float of 16, 32 or 64 bits.
fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("chunk of 8")) as f32)
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

/// Checks every tensor of `bytes` against `expected` and decodes them, in
/// `expected`'s order; nothing is written anywhere.
pub fn decode_params(bytes: &[u8], expected: &[ParamInfo]) -> Result<Vec<Vec<f32>>, LoadError> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| LoadError::Corrupt {
        reason: e.to_string(),
    })?;
    let mut values = Vec::with_capacity(expected.len());
    for p in expected {
        let t = file.tensor(&p.name).map_err(|_| LoadError::MissingKey {
            key: p.name.clone(),
            expected: p.shape.clone(),
        })?;
        if t.shape() != p.shape.as_slice() {
            return Err(LoadError::WrongShape {
                key: p.name.clone(),
                expected: p.shape.clone(),
                found: t.shape().to_vec(),
            });
        }
        let v = to_f32(t.dtype(), t.data()).ok_or_else(|| LoadError::WrongDtype {
            key: p.name.clone(),
            found: format!("{:?}", t.dtype()),
        })?;
        values.push(v);
    }
    let mut names: Vec<&str> = file.names();
    names.sort_unstable();
    if let Some(extra) = names
        .into_iter()
        .find(|n| !expected.iter().any(|p| p.name == *n))
    {
        let found = file
            .tensor(extra)
            .map(|t| t.shape().to_vec())
            .unwrap_or_default();
        return Err(LoadError::UnexpectedKey {
            key: extra.to_string(),
            found,
        });
    }
    Ok(values)
}

/// Loads `layer`'s parameters from safetensors `bytes`: all of them, or on
/// any error none.
pub fn load_params<L: Layer + ?Sized>(layer: &mut L, bytes: &[u8]) -> Result<(), LoadError> {
    let expected = layer.params();
    let values = decode_params(bytes, &expected)?;
    for (p, v) in expected.iter().zip(&values) {
        let ok = layer.import_param(&p.name, v);
        // params() and import_param() are two views of the same layer: a
        // mismatch is a bug in that layer, not bad user data.
        assert!(ok, "layer rejected its own parameter `{}`", p.name);
    }
    Ok(())
}

/// `layer`'s parameters as safetensors bytes (F32).
pub fn save_params<L: Layer + ?Sized>(layer: &L) -> Result<Vec<u8>, SaveError> {
    let params = layer.params();
    let mut values = Vec::with_capacity(params.len());
    for p in &params {
        values.push(
            layer
                .export_param(&p.name)
                .ok_or_else(|| SaveError::Serialize {
                    reason: format!("layer has no parameter `{}` to export", p.name),
                })?,
        );
    }
    serialize_f32(
        params
            .iter()
            .zip(&values)
            .map(|(p, v)| (p.name.as_str(), p.shape.as_slice(), v.as_slice())),
    )
}

/// Named F32 tensors `(key, shape, values)` as safetensors bytes.
pub fn serialize_f32<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a [usize], &'a [f32])>,
) -> Result<Vec<u8>, SaveError> {
    let data: Vec<(&str, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(k, s, v)| {
            (
                k,
                s.to_vec(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = data
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (*name, v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SaveError::Serialize {
            reason: e.to_string(),
        })?;
    safetensors::serialize(views, None).map_err(|e| SaveError::Serialize {
        reason: e.to_string(),
    })
}

/// Reads `path` whole, as a [`LoadError::Io`] on failure.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })
}
