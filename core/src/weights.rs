//! Saving and loading parameters as safetensors, in PyTorch's
//! `nn.Sequential` state-dict convention (`{i}.weight`, `{i}.bias`).

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::layer::{Layer, ParamInfo};
use crate::tensor::Dtype as TensorDtype;

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
        /// Every tensor the model has and the file lacks, `key` among them,
        /// in the model's order.
        missing: Vec<String>,
        /// Every tensor the file has and the model does not, sorted: next
        /// to `missing` they show at once a file written under other names
        /// (`features.0.weight` for `0.weight`).
        unexpected: Vec<String>,
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
    /// The header names the same tensor twice: which entry is meant is
    /// ambiguous, so neither is taken.
    DuplicateKey {
        /// The name that appears more than once.
        key: String,
    },
    /// An F64 value is finite but beyond `f32`'s range: converting it would
    /// silently make it infinite.
    OutOfRange {
        /// The parameter.
        key: String,
        /// The position of the first such value in the tensor (flat,
        /// PyTorch layout).
        index: usize,
        /// The value in the file.
        value: f64,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io { path, source } => {
                write!(f, "cannot read weights file {}: {source}", path.display())
            }
            LoadError::Corrupt { reason } => write!(f, "not a valid safetensors file: {reason}"),
            LoadError::MissingKey {
                key,
                expected,
                missing,
                unexpected,
            } => {
                write!(
                    f,
                    "the file has no tensor `{key}`; the model expects one of shape {expected:?}"
                )?;
                write_keys(f, "\n  missing from the file", missing)?;
                write_keys(f, "\n  in the file but not in the model", unexpected)
            }
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
            LoadError::DuplicateKey { key } => write!(
                f,
                "the file names tensor `{key}` more than once; expected each name once"
            ),
            LoadError::OutOfRange { key, index, value } => write!(
                f,
                "tensor `{key}` holds {value:e} at element {index}, beyond the range of f32 \
                 (largest magnitude {:e}); expected values that convert without becoming infinite",
                f32::MAX
            ),
        }
    }
}

/// How many keys of a list a message names before it says how many more.
const KEYS_SHOWN: usize = 8;

/// "label (11): `a`, `b`, ... and 3 more", or nothing for an empty list.
fn write_keys(f: &mut fmt::Formatter<'_>, label: &str, keys: &[String]) -> fmt::Result {
    if keys.is_empty() {
        return Ok(());
    }
    write!(f, "{label} ({}): ", keys.len())?;
    for (i, k) in keys.iter().take(KEYS_SHOWN).enumerate() {
        write!(f, "{}`{k}`", if i == 0 { "" } else { ", " })?;
    }
    if keys.len() > KEYS_SHOWN {
        write!(f, " and {} more", keys.len() - KEYS_SHOWN)?;
    }
    Ok(())
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

/// Why a tensor's bytes could not become `f32` values.
enum Conversion {
    /// Not a float of 16, 32 or 64 bits.
    Dtype,
    /// A finite F64 at `index` that `f32` cannot hold.
    OutOfRange { index: usize, value: f64 },
}

/// Decodes little-endian `dtype` bytes to `f32`.
fn to_f32(dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>, Conversion> {
    Ok(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => {
            let mut out = Vec::with_capacity(bytes.len() / 8);
            for (index, b) in bytes.chunks_exact(8).enumerate() {
                let value = f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                let narrowed = value as f32;
                // Infinities and NaN stay what they are; only a finite value
                // turning infinite would change the model's meaning unseen.
                if narrowed.is_infinite() && value.is_finite() {
                    return Err(Conversion::OutOfRange { index, value });
                }
                out.push(narrowed);
            }
            out
        }
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return Err(Conversion::Dtype),
    })
}

/// Decodes a count (an I64 tensor such as BatchNormalization's
/// `num_batches_tracked`): integers as PyTorch writes them, or floats.
fn count_to_f32(dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>, Conversion> {
    Ok(match dtype {
        Dtype::I64 => bytes
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        Dtype::I32 => bytes
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
            .collect(),
        _ => to_f32(dtype, bytes)?,
    })
}

/// Checks every tensor of `bytes` against `expected` and decodes them, in
/// `expected`'s order; nothing is written anywhere. A count
/// ([`TensorDtype::I64`], such as `num_batches_tracked`) is optional, as
/// PyTorch's loader treats it: `None` when the file has none.
pub fn decode_params(
    bytes: &[u8],
    expected: &[ParamInfo],
) -> Result<Vec<Option<Vec<f32>>>, LoadError> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| LoadError::Corrupt {
        reason: e.to_string(),
    })?;
    // safetensors keeps the last of two entries with one name; the scan
    // sees them all. The header is valid JSON by now, so the scan only
    // fails on what safetensors also let through.
    let header = header_json(bytes).ok_or_else(|| LoadError::Corrupt {
        reason: "the header does not fit in the file".to_string(),
    })?;
    let scan = scan_header(header).map_err(|reason| LoadError::Corrupt { reason })?;
    if let Some(key) = scan.duplicate {
        return Err(LoadError::DuplicateKey { key });
    }
    let mut values = Vec::with_capacity(expected.len());
    for p in expected {
        let count = p.dtype == TensorDtype::I64;
        let t = match file.tensor(&p.name) {
            Ok(t) => t,
            Err(_) if count => {
                values.push(None);
                continue;
            }
            Err(_) => return Err(missing_key(&file, expected, p)),
        };
        if t.shape() != p.shape.as_slice() {
            return Err(LoadError::WrongShape {
                key: p.name.clone(),
                expected: p.shape.clone(),
                found: t.shape().to_vec(),
            });
        }
        let decode = if count { count_to_f32 } else { to_f32 };
        let v = decode(t.dtype(), t.data()).map_err(|e| match e {
            Conversion::Dtype => LoadError::WrongDtype {
                key: p.name.clone(),
                found: format!("{:?}", t.dtype()),
            },
            Conversion::OutOfRange { index, value } => LoadError::OutOfRange {
                key: p.name.clone(),
                index,
                value,
            },
        })?;
        values.push(Some(v));
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

/// The error for `p`, absent from `file`: with every other key missing
/// and every key the file has that the model does not.
fn missing_key(file: &SafeTensors<'_>, expected: &[ParamInfo], p: &ParamInfo) -> LoadError {
    let missing = expected
        .iter()
        // Counts are optional (see `decode_params`).
        .filter(|q| q.dtype != TensorDtype::I64 && file.tensor(&q.name).is_err())
        .map(|q| q.name.clone())
        .collect();
    let mut unexpected: Vec<String> = file
        .names()
        .into_iter()
        .filter(|n| !expected.iter().any(|q| q.name == *n))
        .map(str::to_string)
        .collect();
    unexpected.sort_unstable();
    LoadError::MissingKey {
        key: p.name.clone(),
        expected: p.shape.clone(),
        missing,
        unexpected,
    }
}

/// Loads `layer`'s parameters from safetensors `bytes`: all of them, or on
/// any error none.
pub fn load_params<L: Layer + ?Sized>(layer: &mut L, bytes: &[u8]) -> Result<(), LoadError> {
    let expected = layer.params();
    let values = decode_params(bytes, &expected)?;
    for (p, v) in expected.iter().zip(&values) {
        // An optional count the file leaves out keeps its value.
        let Some(v) = v else { continue };
        let ok = layer.import_param(&p.name, v);
        // params() and import_param() are two views of the same layer: a
        // mismatch is a bug in that layer, not bad user data.
        assert!(ok, "layer rejected its own parameter `{}`", p.name);
    }
    Ok(())
}

/// `layer`'s parameters as safetensors bytes: F32, and I64 for counts
/// (`num_batches_tracked`), as PyTorch writes them.
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
    serialize(params.iter().zip(&values).map(|(p, v)| {
        let (dtype, bytes) = match p.dtype {
            TensorDtype::F32 => (Dtype::F32, f32_bytes(v)),
            TensorDtype::I64 => (
                Dtype::I64,
                v.iter()
                    .flat_map(|x| (x.round() as i64).to_le_bytes())
                    .collect(),
            ),
        };
        (p.name.as_str(), p.shape.clone(), dtype, bytes)
    }))
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Named F32 tensors `(key, shape, values)` as safetensors bytes.
pub fn serialize_f32<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a [usize], &'a [f32])>,
) -> Result<Vec<u8>, SaveError> {
    serialize(
        tensors
            .into_iter()
            .map(|(k, s, v)| (k, s.to_vec(), Dtype::F32, f32_bytes(v))),
    )
}

/// Named tensors `(key, shape, dtype, little-endian bytes)` as safetensors
/// bytes.
fn serialize<'a>(
    tensors: impl IntoIterator<Item = (&'a str, Vec<usize>, Dtype, Vec<u8>)>,
) -> Result<Vec<u8>, SaveError> {
    let data: Vec<_> = tensors.into_iter().collect();
    let views = data
        .iter()
        .map(|(name, shape, dtype, bytes)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes).map(|v| (*name, v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SaveError::Serialize {
            reason: e.to_string(),
        })?;
    safetensors::serialize(views, None).map_err(|e| SaveError::Serialize {
        reason: e.to_string(),
    })
}

/// The longest JSON header accepted, in bytes: safetensors' own limit.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// The bytes of a safetensors file at `path`, read no further than its
/// header describes.
///
/// Reads the 8-byte header length and bounds it ([`MAX_HEADER_LEN`]),
/// reads the header, works out from it how many bytes of tensor data
/// follow, and checks the file has exactly that many (a regular file by
/// its size, before reading the data; a pipe or device by reading at most
/// one byte more). So a huge header length, a file far longer than its
/// header, or `/dev/zero` fails at once with [`LoadError::Corrupt`] and
/// little memory; memory only ever grows with bytes that are really there.
/// A file that cannot be read is [`LoadError::Io`].
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let corrupt = |reason: String| LoadError::Corrupt { reason };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    // A regular file's size is known and checked against the header
    // before its data is read; a pipe or device has none.
    let size = meta.is_file().then_some(meta.len());

    let mut bytes = Vec::with_capacity(8);
    (&mut file).take(8).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() < 8 {
        return Err(corrupt(format!(
            "the file is {} byte(s) long; expected at least the 8-byte header length",
            bytes.len()
        )));
    }
    let header_len = u64::from_le_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ]);
    if header_len > MAX_HEADER_LEN {
        return Err(corrupt(format!(
            "the header length is {header_len} bytes; expected at most {MAX_HEADER_LEN}"
        )));
    }
    if let Some(size) = size {
        if 8 + header_len > size {
            return Err(corrupt(format!(
                "the header length is {header_len} bytes, but the file is only {size} bytes long"
            )));
        }
    }
    let header_end = 8 + header_len as usize;
    // The header is read as it arrives: its length field alone reserves
    // nothing.
    (&mut file)
        .take(header_len)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() < header_end {
        return Err(corrupt(format!(
            "the file ends inside its header: {} of its {header_len} bytes are there",
            bytes.len() - 8
        )));
    }
    let scan = scan_header(&bytes[8..]).map_err(corrupt)?;
    let total = (header_end as u64).checked_add(scan.data_len);
    match (size, total) {
        (Some(size), Some(total)) if size == total => {}
        (Some(size), _) => {
            return Err(corrupt(format!(
                "the header describes {} bytes of tensor data, so the file should be {} bytes \
                 long, but it is {size}",
                scan.data_len,
                header_end as u128 + u128::from(scan.data_len)
            )))
        }
        (None, _) => {}
    }
    // The size is now known to be what the header describes (a regular
    // file) and can be reserved; a stream grows the buffer as bytes come.
    if size.is_some() {
        bytes.reserve_exact(usize::try_from(scan.data_len).unwrap_or(0));
    }
    // One byte past the described end tells a stream that goes on.
    let before = bytes.len();
    (&mut file)
        .take(scan.data_len.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let read = (bytes.len() - before) as u64;
    if read != scan.data_len {
        return Err(corrupt(format!(
            "the header describes {} bytes of tensor data, but {}",
            scan.data_len,
            if read > scan.data_len {
                "the file goes on past them".to_string()
            } else {
                format!("the file holds only {read}")
            }
        )));
    }
    Ok(bytes)
}

/// The JSON header of safetensors `bytes`, if its length field fits.
fn header_json(bytes: &[u8]) -> Option<&[u8]> {
    let len: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    let len = usize::try_from(u64::from_le_bytes(len)).ok()?;
    bytes.get(8..8usize.checked_add(len)?)
}

/// What the loader needs from a header before safetensors parses it.
#[derive(Debug)]
struct HeaderScan {
    /// Bytes of tensor data the entries describe: the largest end offset.
    data_len: u64,
    /// The first top-level name that appears twice, if any.
    duplicate: Option<String>,
}

/// Scans a safetensors JSON header: its top-level names (to find a
/// duplicate, which a JSON map silently collapses) and each entry's
/// `data_offsets` (to know how much data follows). It checks JSON syntax
/// only as far as it must; safetensors validates the rest.
fn scan_header(json: &[u8]) -> Result<HeaderScan, String> {
    let text = std::str::from_utf8(json).map_err(|e| format!("the header is not UTF-8: {e}"))?;
    let mut p = JsonScanner {
        text: text.as_bytes(),
        at: 0,
    };
    let mut seen = HashSet::new();
    let mut scan = HeaderScan {
        data_len: 0,
        duplicate: None,
    };
    p.skip_ws();
    p.expect(b'{')?;
    p.skip_ws();
    if p.peek() == Some(b'}') {
        p.at += 1;
    } else {
        loop {
            p.skip_ws();
            let key = p.string()?;
            p.skip_ws();
            p.expect(b':')?;
            p.skip_ws();
            let end = p.entry()?;
            scan.data_len = scan.data_len.max(end);
            if !seen.insert(key.clone()) && scan.duplicate.is_none() {
                scan.duplicate = Some(key);
            }
            p.skip_ws();
            match p.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(p.error("`,` or `}` after a header entry")),
            }
        }
    }
    p.skip_ws();
    if p.at != p.text.len() {
        return Err(p.error("the end of the header after its closing `}`"));
    }
    Ok(scan)
}

/// Nesting deeper than this is refused (serde_json's own limit), so a
/// hostile header cannot exhaust the stack.
const MAX_JSON_DEPTH: usize = 128;

/// A minimal JSON reader over a header, for [`scan_header`].
struct JsonScanner<'a> {
    text: &'a [u8],
    at: usize,
}

impl JsonScanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    fn error(&self, expected: &str) -> String {
        match self.peek() {
            Some(c) => format!(
                "header byte {}: expected {expected}, found `{}`",
                self.at,
                c.escape_ascii()
            ),
            None => format!("the header ends early: expected {expected}"),
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(&format!("`{}`", c as char)))
        }
    }

    /// A string, decoded (escapes included), so names compare as JSON
    /// means them: `"a"` and `"\u0061"` are the same name.
    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.next() {
                None => return Err(self.error("the end of a string")),
                Some(b'"') => break,
                Some(b'\\') => {
                    let c = match self.next() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => self.unicode_escape()?,
                        _ => return Err(self.error("a valid escape")),
                    };
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                Some(c) => out.push(c),
            }
        }
        // The input is UTF-8 and escapes add whole characters.
        String::from_utf8(out).map_err(|_| self.error("UTF-8 text in a string"))
    }

    /// The character of a `\uXXXX` escape (the `\u` read), joining a
    /// surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let high = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&high) {
            if self.next() != Some(b'\\') || self.next() != Some(b'u') {
                return Err(self.error("the second half of a surrogate pair"));
            }
            let low = self.hex4()?;
            if !(0xDC00..0xE000).contains(&low) {
                return Err(self.error("a low surrogate"));
            }
            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        } else {
            high
        };
        char::from_u32(code).ok_or_else(|| self.error("a valid character code"))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut v = 0;
        for _ in 0..4 {
            let d = self
                .next()
                .and_then(|c| (c as char).to_digit(16))
                .ok_or_else(|| self.error("four hex digits"))?;
            v = v * 16 + d;
        }
        Ok(v)
    }

    /// A top-level entry's value: the end of its `data_offsets` if it is a
    /// tensor entry, 0 otherwise (`__metadata__`).
    fn entry(&mut self) -> Result<u64, String> {
        if self.peek() != Some(b'{') {
            self.value(1)?;
            return Ok(0);
        }
        self.at += 1;
        let mut end = 0;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(0);
        }
        loop {
            self.skip_ws();
            let key = self.string()?;
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            if key == "data_offsets" && self.peek() == Some(b'[') {
                end = end.max(self.offsets()?);
            } else {
                self.value(2)?;
            }
            self.skip_ws();
            match self.next() {
                Some(b',') => continue,
                Some(b'}') => return Ok(end),
                _ => return Err(self.error("`,` or `}` in a tensor entry")),
            }
        }
    }

    /// A `data_offsets` array: its largest integer (saturating: a number
    /// too large for `u64` is refused later by safetensors anyway, and
    /// here only makes the described length too large to match the file).
    fn offsets(&mut self) -> Result<u64, String> {
        self.expect(b'[')?;
        let mut max = 0u64;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(0);
        }
        loop {
            self.skip_ws();
            let start = self.at;
            self.value(3)?;
            let number = &self.text[start..self.at];
            if !number.is_empty() && number.iter().all(u8::is_ascii_digit) {
                let v = number.iter().fold(0u64, |acc, d| {
                    acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
                max = max.max(v);
            }
            self.skip_ws();
            match self.next() {
                Some(b',') => continue,
                Some(b']') => return Ok(max),
                _ => return Err(self.error("`,` or `]` in data_offsets")),
            }
        }
    }

    /// Skips any JSON value nested `depth` deep.
    fn value(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_JSON_DEPTH {
            return Err(format!(
                "the header nests deeper than {MAX_JSON_DEPTH} levels"
            ));
        }
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(open @ (b'{' | b'[')) => {
                self.at += 1;
                let close = if open == b'{' { b'}' } else { b']' };
                self.skip_ws();
                if self.peek() == Some(close) {
                    self.at += 1;
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    if open == b'{' {
                        self.string()?;
                        self.skip_ws();
                        self.expect(b':')?;
                        self.skip_ws();
                    }
                    self.value(depth + 1)?;
                    self.skip_ws();
                    match self.next() {
                        Some(b',') => continue,
                        Some(c) if c == close => return Ok(()),
                        _ => return Err(self.error("`,` or a closing bracket")),
                    }
                }
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => {
                // Lenient: any run of number characters. safetensors'
                // parser judges the number itself.
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.at += 1;
                }
                Ok(())
            }
            _ => Err(self.error("a JSON value")),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), String> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(self.error("`true`, `false` or `null`"))
        }
    }
}
