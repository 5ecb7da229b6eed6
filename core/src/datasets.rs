//! Small image datasets, ready to feed a model: MNIST from its IDX files, the
//! UCI handwritten digits embedded in the crate, and a seeded train/test split.
//!
//! Every loader checks what it reads and returns a [`DatasetError`] saying
//! what it expected and what it found; none panics on bad data.
//!
//! ```
//! use strata_core::datasets::{digits, train_test_split};
//!
//! let (x, y) = digits();
//! assert_eq!(x.batch_size(), 1797);
//! let (x_train, y_train, x_test, y_test) = train_test_split(&x, &y, 0.2, 42).unwrap();
//! assert_eq!(x_train.batch_size() + x_test.batch_size(), 1797);
//! assert_eq!((y_train.len(), y_test.len()), (1438, 359));
//! ```

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use typenum::{U1, U28, U8};

use crate::batch::{Batch, ShapeError};
use crate::init::seeded_rng;
use crate::shape::{format_dims, Shape, Shape3};

/// The shape of one MNIST image: 28x28 pixels, one channel.
pub type MnistImage = Shape3<U28, U28, U1>;

/// The shape of one UCI digits image: 8x8 pixels, one channel.
pub type DigitsImage = Shape3<U8, U8, U1>;

/// A dataset split in two: `(x_train, y_train, x_test, y_test)`, labels as
/// class indices.
pub type TrainTest<S> = (Batch<S>, Vec<usize>, Batch<S>, Vec<usize>);

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// IDX type code of unsigned bytes, the only element type MNIST uses.
const IDX_U8: u8 = 0x08;

/// Why a dataset could not be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum DatasetError {
    /// A file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// None of the file names a dataset may be stored under exists.
    NotFound {
        /// Every path that was looked for.
        tried: Vec<PathBuf>,
    },
    /// A file was read, but its contents are wrong in the way `error` says.
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: Box<DatasetError>,
    },
    /// The bytes start with the gzip magic `1f 8b` but do not decompress
    /// (truncated or corrupt stream, bad checksum...).
    Gzip {
        /// What the decompressor said.
        source: std::io::Error,
    },
    /// The first four bytes are not an IDX magic number (IDX magic numbers
    /// start with two zero bytes).
    BadMagic {
        /// The magic number that was looked for, e.g. `0x00000803`.
        expected: u32,
        /// The first four bytes, read big-endian.
        found: u32,
    },
    /// The IDX element type (third byte) is not the one expected: MNIST
    /// stores unsigned bytes, type `0x08`.
    WrongDtype {
        /// The type code that was looked for.
        expected: u8,
        /// The type code in the file.
        found: u8,
    },
    /// The IDX number of dimensions (fourth byte) is not the one expected:
    /// 3 for images (count, rows, columns), 1 for labels.
    WrongDims {
        /// The number of dimensions that was looked for.
        expected: u8,
        /// The number in the file.
        found: u8,
    },
    /// The data ends before the header says it should.
    Truncated {
        /// What was being read: `"IDX header"`, `"IDX data"`.
        part: &'static str,
        /// Bytes needed.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// The data goes on after everything the header describes.
    TrailingBytes {
        /// Total length the header describes, in bytes.
        expected: usize,
        /// Actual length, in bytes.
        found: usize,
    },
    /// A stream (a gzip file, a pipe) goes on further past the end the
    /// header describes than the loader reads to count: it stopped reading
    /// there. Decompression never runs further than the header promises
    /// plus [`TRAILING_PROBE`] bytes, so a small file that inflates to
    /// gigabytes fails early and cheaply.
    TooLong {
        /// Total length the header describes, in bytes.
        expected: usize,
        /// Bytes read before stopping; there are more.
        read: usize,
    },
    /// The header's dimensions multiply to more bytes than can be addressed.
    TooLarge {
        /// The dimensions in the header.
        dims: Vec<usize>,
    },
    /// The images do not have the size of the requested sample shape.
    ShapeMismatch {
        /// The images' size: `[rows, cols, 1]`.
        found: Vec<usize>,
        /// The requested shape's dimensions.
        expected: &'static [usize],
    },
    /// The pixel buffer does not hold the number of images it claims to.
    Batch(ShapeError),
    /// The number of labels differs from the number of samples.
    LabelCount {
        /// Number of samples.
        samples: usize,
        /// Number of labels.
        labels: usize,
    },
    /// A label is not a valid class index.
    BadLabel {
        /// The sample it belongs to (from 0).
        index: usize,
        /// The label.
        label: usize,
        /// The number of classes: labels must be below it.
        classes: usize,
    },
    /// A line of a CSV file cannot be read.
    BadLine {
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The data holds no samples at all.
    NoSamples,
    /// A test fraction outside the open interval (0, 1).
    BadFraction {
        /// The fraction given.
        found: f64,
    },
    /// A split would leave the training or the test set empty.
    EmptySplit {
        /// Samples to split.
        samples: usize,
        /// The test fraction asked for.
        test_fraction: f64,
        /// Samples that would go to training.
        train: usize,
        /// Samples that would go to testing.
        test: usize,
    },
}

impl DatasetError {
    /// The error with any [`DatasetError::File`] wrappers (which only add
    /// the file's path) taken off.
    pub fn without_path(&self) -> &DatasetError {
        match self {
            DatasetError::File { error, .. } => error.without_path(),
            other => other,
        }
    }
}

/// What an IDX file with this many dimensions holds, for messages.
fn idx_contents(dims: u8) -> &'static str {
    match dims {
        1 => "labels: count",
        3 => "images: count, rows, columns",
        _ => "dimensions",
    }
}

impl fmt::Display for DatasetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetError::Io { path, source } => {
                write!(f, "could not read {}: {source}", path.display())
            }
            DatasetError::NotFound { tried } => {
                write!(f, "no such file; looked for ")?;
                for (i, p) in tried.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{}", p.display())?;
                }
                Ok(())
            }
            DatasetError::File { path, error } => write!(f, "{}: {error}", path.display()),
            DatasetError::Gzip { source } => write!(
                f,
                "the data starts with the gzip magic 1f 8b but does not decompress: {source}"
            ),
            DatasetError::BadMagic { expected, found } => {
                write!(
                    f,
                    "not an IDX file: expected the magic number {expected:#010x}, found {found:#010x}"
                )?;
                if found.swap_bytes() == *expected {
                    write!(f, " (byte-swapped: IDX numbers are big-endian)")?;
                }
                Ok(())
            }
            DatasetError::WrongDtype { expected, found } => write!(
                f,
                "IDX element type {found:#04x} where {expected:#04x} (unsigned byte) was expected"
            ),
            DatasetError::WrongDims { expected, found } => write!(
                f,
                "expected an IDX file of {expected} dimension(s) ({}), found {found} ({})",
                idx_contents(*expected),
                idx_contents(*found)
            ),
            DatasetError::Truncated {
                part,
                expected,
                found,
            } => write!(
                f,
                "truncated {part}: expected {expected} bytes, found {found}"
            ),
            DatasetError::TrailingBytes { expected, found } => write!(
                f,
                "the header describes {expected} bytes but there are {found}: {} unexpected trailing byte(s)",
                found.saturating_sub(*expected)
            ),
            DatasetError::TooLong { expected, read } => write!(
                f,
                "the header describes {expected} bytes but the data goes on past {read}; \
                 reading stopped there (a stream is never read further than its header \
                 promises plus {TRAILING_PROBE} bytes)"
            ),
            DatasetError::TooLarge { dims } => write!(
                f,
                "the header's dimensions {} are too large to hold in memory",
                dims.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(" x ")
            ),
            DatasetError::ShapeMismatch { found, expected } => write!(
                f,
                "the images are {} ({} values) but the requested sample shape {} holds {}",
                format_dims(found),
                Product(found),
                format_dims(expected),
                Product(expected)
            ),
            DatasetError::Batch(e) => write!(f, "{e}"),
            DatasetError::LabelCount { samples, labels } => write!(
                f,
                "{samples} samples but {labels} labels: there must be one label per sample"
            ),
            DatasetError::BadLabel {
                index,
                label,
                classes,
            } => write!(
                f,
                "label {label} of sample {index} is not a class index: expected 0..={}",
                classes.saturating_sub(1)
            ),
            DatasetError::BadLine { line, reason } => write!(f, "line {line}: {reason}"),
            DatasetError::NoSamples => write!(f, "the data holds no samples"),
            DatasetError::BadFraction { found } => write!(
                f,
                "the test fraction must be strictly between 0 and 1, found {found}"
            ),
            DatasetError::EmptySplit {
                samples,
                test_fraction,
                train,
                test,
            } => write!(
                f,
                "splitting {samples} samples with test fraction {test_fraction} gives {train} \
                 for training and {test} for testing; both must be at least 1"
            ),
        }
    }
}

/// The product of some dimensions, for messages: written out in full even
/// when it does not fit a `usize` (the dimensions come from files).
struct Product<'a>(&'a [usize]);

impl fmt::Display for Product<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) {
            Some(n) => write!(f, "{n}"),
            // u128 holds the product of up to two usizes exactly; past that
            // the size only needs to read as enormous.
            None => match self
                .0
                .iter()
                .try_fold(1u128, |acc, &d| acc.checked_mul(d as u128))
            {
                Some(n) => write!(f, "{n}"),
                None => write!(f, "more than {}", u128::MAX),
            },
        }
    }
}

impl std::error::Error for DatasetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DatasetError::Io { source, .. } | DatasetError::Gzip { source } => Some(source),
            DatasetError::File { error, .. } => Some(error.as_ref()),
            DatasetError::Batch(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ShapeError> for DatasetError {
    fn from(e: ShapeError) -> Self {
        DatasetError::Batch(e)
    }
}

/// How far past the end an IDX header describes a stream (gzip data, a
/// pipe) is read, to count trailing bytes exactly. Reading stops there:
/// a decompression bomb costs at most this much more than the header
/// promises.
pub const TRAILING_PROBE: usize = 64 * 1024;

/// Wraps an error about a file's contents with the file's path.
fn in_file(path: &Path) -> impl FnOnce(DatasetError) -> DatasetError + '_ {
    move |error| DatasetError::File {
        path: path.to_path_buf(),
        error: Box::new(error),
    }
}

/// Reads into `buf` until it is full or the data ends; the number of bytes
/// read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// IDX bytes read from a stream, no further than the header says they go.
struct Stream<'a> {
    reader: &'a mut dyn Read,
    /// What a failed read becomes: [`DatasetError::Gzip`] for a
    /// decompressor, [`DatasetError::Io`] for a file.
    fail: &'a dyn Fn(std::io::Error) -> DatasetError,
    /// The stream's total length, when known (a plain file's size): then
    /// a short or long file is measured instead of read.
    len: Option<usize>,
}

/// Checks the first bytes of an IDX file of unsigned bytes with `ndims`
/// dimensions (`prefix` holds at most the header; fewer bytes when the
/// data is shorter): returns the dimensions and the length of the data
/// after the header.
fn parse_idx_header(prefix: &[u8], ndims: u8) -> Result<(Vec<usize>, usize), DatasetError> {
    let header_len = 4 + 4 * ndims as usize;
    if prefix.len() < 4 {
        return Err(DatasetError::Truncated {
            part: "IDX header",
            expected: header_len,
            found: prefix.len(),
        });
    }
    let expected_magic = u32::from_be_bytes([0, 0, IDX_U8, ndims]);
    let found_magic = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if prefix[0] != 0 || prefix[1] != 0 {
        return Err(DatasetError::BadMagic {
            expected: expected_magic,
            found: found_magic,
        });
    }
    if prefix[2] != IDX_U8 {
        return Err(DatasetError::WrongDtype {
            expected: IDX_U8,
            found: prefix[2],
        });
    }
    if prefix[3] != ndims {
        return Err(DatasetError::WrongDims {
            expected: ndims,
            found: prefix[3],
        });
    }
    if prefix.len() < header_len {
        return Err(DatasetError::Truncated {
            part: "IDX header",
            expected: header_len,
            found: prefix.len(),
        });
    }
    let dims: Vec<usize> = prefix[4..header_len]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let data_len = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|n| n.checked_add(header_len).is_some())
        .ok_or_else(|| DatasetError::TooLarge { dims: dims.clone() })?;
    Ok((dims, data_len))
}

/// Parses an IDX file of unsigned bytes with `ndims` dimensions, gunzipping
/// it first if it starts with the gzip magic: returns the dimensions and
/// the data.
fn parse_idx(bytes: &[u8], ndims: u8) -> Result<(Vec<usize>, Vec<u8>), DatasetError> {
    if bytes.starts_with(&GZIP_MAGIC) {
        let mut decoder = flate2::read::MultiGzDecoder::new(bytes);
        return parse_idx_stream(
            Stream {
                reader: &mut decoder,
                fail: &|source| DatasetError::Gzip { source },
                len: None,
            },
            ndims,
        );
    }
    let header_len = 4 + 4 * ndims as usize;
    let (dims, data_len) = parse_idx_header(&bytes[..bytes.len().min(header_len)], ndims)?;
    let total = header_len + data_len;
    if bytes.len() < total {
        return Err(DatasetError::Truncated {
            part: "IDX data",
            expected: data_len,
            found: bytes.len() - header_len,
        });
    }
    if bytes.len() > total {
        return Err(DatasetError::TrailingBytes {
            expected: total,
            found: bytes.len(),
        });
    }
    Ok((dims, bytes[header_len..].to_vec()))
}

/// [`parse_idx`] on a stream: the header first, then exactly the data it
/// describes (memory grows with the bytes that arrive, never with the
/// header's promise alone), then at most [`TRAILING_PROBE`] bytes more.
fn parse_idx_stream(s: Stream<'_>, ndims: u8) -> Result<(Vec<usize>, Vec<u8>), DatasetError> {
    let header_len = 4 + 4 * ndims as usize;
    let mut header = vec![0u8; header_len];
    let got = read_full(s.reader, &mut header).map_err(s.fail)?;
    let (dims, data_len) = parse_idx_header(&header[..got], ndims)?;
    let total = header_len + data_len;
    if let Some(len) = s.len {
        // A plain file: its size settles it before any data is read.
        if len < total {
            return Err(DatasetError::Truncated {
                part: "IDX data",
                expected: data_len,
                found: len.saturating_sub(header_len),
            });
        }
        if len > total {
            return Err(DatasetError::TrailingBytes {
                expected: total,
                found: len,
            });
        }
    }
    let mut data = Vec::new();
    // Reserve only what is known to exist; a decompressor's output grows
    // the buffer as it arrives.
    data.reserve_exact(s.len.map_or(0, |len| len.saturating_sub(header_len)));
    s.reader
        .take(data_len as u64)
        .read_to_end(&mut data)
        .map_err(s.fail)?;
    if data.len() < data_len {
        return Err(DatasetError::Truncated {
            part: "IDX data",
            expected: data_len,
            found: data.len(),
        });
    }
    // Counting (not keeping) what follows also makes a decompressor check
    // the stream's CRC, which it does on reaching the end.
    let extra = std::io::copy(
        &mut s.reader.take(TRAILING_PROBE as u64 + 1),
        &mut std::io::sink(),
    )
    .map_err(s.fail)? as usize;
    if extra > TRAILING_PROBE {
        return Err(DatasetError::TooLong {
            expected: total,
            read: total + extra,
        });
    }
    if extra > 0 {
        return Err(DatasetError::TrailingBytes {
            expected: total,
            found: total + extra,
        });
    }
    Ok((dims, data))
}

/// Reads the IDX file at `path` (plain or gzipped) without reading more
/// than its header describes: a read failure is [`DatasetError::Io`], bad
/// contents are [`DatasetError::File`].
fn read_idx(path: &Path, ndims: u8) -> Result<(Vec<usize>, Vec<u8>), DatasetError> {
    let io = |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    // The size of a regular file is known; a pipe or a device (/dev/zero)
    // has none and is read as a stream, as far as the header says.
    let len = meta
        .is_file()
        .then(|| usize::try_from(meta.len()).ok())
        .flatten();
    let mut magic = [0u8; 2];
    let got = read_full(&mut file, &mut magic).map_err(io)?;
    let mut reader = (&magic[..got]).chain(file);
    let result = if magic[..got] == GZIP_MAGIC {
        // A failing read of the file itself also surfaces here, through the
        // decompressor: it is reported as a gzip error carrying the
        // system's message.
        let mut decoder = flate2::read::MultiGzDecoder::new(reader);
        parse_idx_stream(
            Stream {
                reader: &mut decoder,
                fail: &|source| DatasetError::Gzip { source },
                len: None,
            },
            ndims,
        )
    } else {
        parse_idx_stream(
            Stream {
                reader: &mut reader,
                fail: &io,
                len,
            },
            ndims,
        )
    };
    result.map_err(|e| match e {
        e @ DatasetError::Io { .. } => e,
        e => in_file(path)(e),
    })
}

/// Images read from an IDX file (magic `0x00000803`): `count` images of
/// `rows` x `cols` unsigned-byte pixels, row-major, one image after another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows of each image.
    pub rows: usize,
    /// Columns of each image.
    pub cols: usize,
    /// `count * rows * cols` pixels, 0..=255.
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// The pixels of image `i`, or `None` past the end (also for images of
    /// no pixels, whose offsets alone would not tell).
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        if i >= self.count {
            return None;
        }
        let n = self.rows.checked_mul(self.cols)?;
        self.pixels
            .get(i.checked_mul(n)?..i.checked_add(1)?.checked_mul(n)?)
    }

    /// The images as a batch of shape `S`, each pixel divided by 255 so
    /// values lie in [0, 1].
    ///
    /// `S` must hold `rows * cols` values: [`MnistImage`]
    /// (`Shape3<U28, U28, U1>`) for MNIST, or a `Shape1<U784>` to skip the
    /// flattening. Fails with [`DatasetError::ShapeMismatch`] otherwise, and
    /// with [`DatasetError::Batch`] if `pixels` does not hold `count` images.
    pub fn to_batch<S: Shape>(&self) -> Result<Batch<S>, DatasetError> {
        if self.rows.checked_mul(self.cols) != Some(S::NUMEL) {
            return Err(DatasetError::ShapeMismatch {
                found: vec![self.rows, self.cols, 1],
                expected: S::DIMS,
            });
        }
        let data = self.pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
        Ok(Batch::from_vec(self.count, data)?)
    }
}

/// Parses IDX images (magic `0x00000803`: unsigned bytes, 3 dimensions)
/// from bytes, gunzipping them first if they start with `1f 8b`.
///
/// ```
/// use strata_core::datasets::parse_idx_images;
///
/// // Two 1x2 images.
/// let bytes = [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 255, 7, 9];
/// let images = parse_idx_images(&bytes).unwrap();
/// assert_eq!((images.count, images.rows, images.cols), (2, 1, 2));
/// assert_eq!(images.image(1), Some(&[7, 9][..]));
/// assert!(parse_idx_images(&bytes[..19]).is_err());
/// ```
pub fn parse_idx_images(bytes: &[u8]) -> Result<IdxImages, DatasetError> {
    let (dims, pixels) = parse_idx(bytes, 3)?;
    Ok(IdxImages {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels,
    })
}

/// Parses IDX labels (magic `0x00000801`: unsigned bytes, 1 dimension)
/// from bytes, gunzipping them first if they start with `1f 8b`.
///
/// ```
/// use strata_core::datasets::parse_idx_labels;
///
/// let bytes = [0, 0, 8, 1, 0, 0, 0, 3, 5, 0, 4];
/// assert_eq!(parse_idx_labels(&bytes).unwrap(), vec![5, 0, 4]);
/// ```
pub fn parse_idx_labels(bytes: &[u8]) -> Result<Vec<u8>, DatasetError> {
    parse_idx(bytes, 1).map(|(_, labels)| labels)
}

/// Reads IDX images from a file, plain or gzipped (`train-images-idx3-ubyte`
/// or `train-images-idx3-ubyte.gz`): see [`parse_idx_images`].
///
/// A file that cannot be read gives [`DatasetError::Io`]; one with bad
/// contents gives [`DatasetError::File`] wrapping what is wrong with it.
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<IdxImages, DatasetError> {
    let (dims, pixels) = read_idx(path.as_ref(), 3)?;
    Ok(IdxImages {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels,
    })
}

/// Reads IDX labels from a file, plain or gzipped (`train-labels-idx1-ubyte`
/// or `train-labels-idx1-ubyte.gz`): see [`parse_idx_labels`] and, for the
/// errors, [`read_idx_images`].
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>, DatasetError> {
    read_idx(path.as_ref(), 1).map(|(_, labels)| labels)
}

/// The first of `dir/stem`, `dir/stem.gz` and the same with the `-idx`
/// spelled `.idx` (as some mirrors do) that is a file.
fn find_idx_file(dir: &Path, stem: &str) -> Result<PathBuf, DatasetError> {
    let dotted = stem.replacen("-idx", ".idx", 1);
    let tried: Vec<PathBuf> = [stem, &dotted]
        .iter()
        .flat_map(|s| [dir.join(s), dir.join(format!("{s}.gz"))])
        .collect();
    match tried.iter().find(|p| p.is_file()) {
        Some(p) => Ok(p.clone()),
        None => Err(DatasetError::NotFound { tried }),
    }
}

/// One half of MNIST: images and labels, checked against each other.
fn mnist_part(
    dir: &Path,
    images: &str,
    labels: &str,
) -> Result<(Batch<MnistImage>, Vec<usize>), DatasetError> {
    let images_path = find_idx_file(dir, images)?;
    let labels_path = find_idx_file(dir, labels)?;
    let x = read_idx_images(&images_path)?
        .to_batch::<MnistImage>()
        .map_err(in_file(&images_path))?;
    let y = read_idx_labels(&labels_path)?;
    if y.len() != x.batch_size() {
        return Err(in_file(&labels_path)(DatasetError::LabelCount {
            samples: x.batch_size(),
            labels: y.len(),
        }));
    }
    if let Some((index, &label)) = y.iter().enumerate().find(|(_, &l)| l > 9) {
        return Err(in_file(&labels_path)(DatasetError::BadLabel {
            index,
            label: label.into(),
            classes: 10,
        }));
    }
    Ok((x, y.into_iter().map(usize::from).collect()))
}

/// Loads MNIST from the four files of its standard distribution in `dir`:
/// `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each plain or
/// with `.gz` (and also found spelled `train-images.idx3-ubyte`).
///
/// Returns `(x_train, y_train, x_test, y_test)`: pixels scaled to [0, 1],
/// labels as class indices 0..=9. Fails with [`DatasetError::NotFound`] if
/// a file is missing, and otherwise as [`read_idx_images`] does, or if the
/// images are not 28x28, the label and image counts differ or a label is
/// above 9.
pub fn mnist(dir: impl AsRef<Path>) -> Result<TrainTest<MnistImage>, DatasetError> {
    let dir = dir.as_ref();
    let (x_train, y_train) = mnist_part(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte")?;
    let (x_test, y_test) = mnist_part(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?;
    Ok((x_train, y_train, x_test, y_test))
}

/// Values on a line of the digits CSV: 64 pixels, then the label.
const DIGITS_FIELDS: usize = 65;

/// The most bytes the digits CSV reader reads without finding an image: a
/// line longer than this, or a run of blank lines this long, is an error.
/// A real line is under 200 bytes; the limit is what keeps a stream of
/// garbage (a decompression bomb of zeros or newlines) from being read to
/// its end.
pub const DIGITS_MAX_GAP: usize = 64 * 1024;

/// Parses the UCI digits CSV, plain or gzipped: one image a line, 65
/// comma-separated integers, the 64 pixels of an 8x8 image row by row
/// (each 0..=16) and then the label (0..=9).
///
/// Returns the images with pixels divided by 16, so values lie in [0, 1],
/// and the labels. Blank lines are skipped; any other line that is not
/// exactly that gives [`DatasetError::BadLine`] with its number, as does
/// more than [`DIGITS_MAX_GAP`] bytes without an image (one huge line, or
/// a long run of blank lines), and data without a single image gives
/// [`DatasetError::NoSamples`]. Gzipped data is decompressed a line at a
/// time as it is parsed, so memory follows the images found, not the size
/// the stream inflates to.
///
/// ```
/// use strata_core::datasets::{parse_digits_csv, DatasetError};
///
/// let mut line = vec!["0"; 64];
/// line[9] = "16";
/// let csv = format!("{},7\n", line.join(","));
/// let (x, y) = parse_digits_csv(csv.as_bytes()).unwrap();
/// assert_eq!(y, vec![7]);
/// assert_eq!(x.as_slice()[9], 1.0);
///
/// let bad = format!("{},7\n{},12\n", line.join(","), line.join(","));
/// let err = parse_digits_csv(bad.as_bytes()).unwrap_err();
/// assert!(matches!(err, DatasetError::BadLine { line: 2, .. }));
/// ```
pub fn parse_digits_csv(bytes: &[u8]) -> Result<(Batch<DigitsImage>, Vec<usize>), DatasetError> {
    if bytes.starts_with(&GZIP_MAGIC) {
        let mut reader = BufReader::new(flate2::read::MultiGzDecoder::new(bytes));
        parse_digits_lines(&mut reader, &|source| DatasetError::Gzip { source })
    } else {
        // Reading a slice cannot fail: the mapping is never used.
        parse_digits_lines(&mut &bytes[..], &|source| DatasetError::Io {
            path: PathBuf::new(),
            source,
        })
    }
}

/// [`parse_digits_csv`] on a stream of lines; `fail` maps a read error.
fn parse_digits_lines(
    reader: &mut dyn BufRead,
    fail: &dyn Fn(std::io::Error) -> DatasetError,
) -> Result<(Batch<DigitsImage>, Vec<usize>), DatasetError> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    let mut raw = Vec::new();
    // Bytes read since the last image (blank lines included).
    let mut gap = 0usize;
    for line in 1usize.. {
        raw.clear();
        // One byte over the limit tells a line that reaches it from one
        // that stops there.
        let budget = (DIGITS_MAX_GAP - gap) as u64 + 1;
        let n = (&mut *reader)
            .take(budget)
            .read_until(b'\n', &mut raw)
            .map_err(fail)?;
        if n == 0 {
            break;
        }
        gap += n;
        let bad = |reason: String| DatasetError::BadLine { line, reason };
        if gap > DIGITS_MAX_GAP {
            return Err(bad(format!(
                "more than {DIGITS_MAX_GAP} bytes without an image (a line this long, or a run \
                 of blank lines); a line is 65 short integers"
            )));
        }
        let text = std::str::from_utf8(&raw)
            .map_err(|e| bad(format!("not UTF-8 text ({e})")))?
            .trim();
        if text.is_empty() {
            continue;
        }
        let fields = text.split(',').map(str::trim);
        let count = fields.clone().count();
        if count != DIGITS_FIELDS {
            return Err(bad(format!(
                "expected {DIGITS_FIELDS} comma-separated integers (64 pixels, then the label), \
                 found {count} values"
            )));
        }
        for (col, field) in fields.enumerate() {
            let (what, max) = if col < DIGITS_FIELDS - 1 {
                ("pixel", 16)
            } else {
                ("label", 9)
            };
            let value: u8 = field.parse().ok().filter(|v| *v <= max).ok_or_else(|| {
                bad(format!(
                    "value {} (the {what}) is `{field}`; expected an integer 0..={max}",
                    col + 1
                ))
            })?;
            if col < DIGITS_FIELDS - 1 {
                pixels.push(f32::from(value) / 16.0);
            } else {
                labels.push(usize::from(value));
            }
        }
        gap = 0;
    }
    if labels.is_empty() {
        return Err(DatasetError::NoSamples);
    }
    Ok((Batch::from_vec(labels.len(), pixels)?, labels))
}

/// The UCI digits CSV, gzipped, as shipped in `data/digits/`.
static DIGITS_CSV_GZ: &[u8] = include_bytes!("../../data/digits/digits.csv.gz");

/// The UCI "Optical Recognition of Handwritten Digits" test set, the 1797
/// 8x8 images scikit-learn ships as `load_digits`: images with pixels in
/// [0, 1] and their labels 0..=9, about 180 of each.
///
/// The data (E. Alpaydin, C. Kaynak, 1998; UCI Machine Learning Repository,
/// CC BY 4.0) is embedded in the library, so this needs no file or network;
/// see `data/digits/README.md`.
///
/// Never panics in practice: the embedded copy is parsed by the tests.
pub fn digits() -> (Batch<DigitsImage>, Vec<usize>) {
    parse_digits_csv(DIGITS_CSV_GZ).expect("the embedded digits data is valid")
}

/// Splits a dataset into training and test sets at random, reproducibly:
/// the samples are shuffled by a generator seeded with `seed`
/// ([`seeded_rng`]), then `round(n * test_fraction)` of them go to the test
/// set and the rest to training, each in shuffled order.
///
/// Returns `(x_train, y_train, x_test, y_test)`. Fails when `test_fraction`
/// is not strictly between 0 and 1, when `labels` does not have one label
/// per sample, or when either set would be empty.
pub fn train_test_split<S: Shape>(
    x: &Batch<S>,
    labels: &[usize],
    test_fraction: f64,
    seed: u64,
) -> Result<TrainTest<S>, DatasetError> {
    // Written so NaN fails too.
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(DatasetError::BadFraction {
            found: test_fraction,
        });
    }
    let n = x.batch_size();
    if labels.len() != n {
        return Err(DatasetError::LabelCount {
            samples: n,
            labels: labels.len(),
        });
    }
    let test = ((n as f64 * test_fraction).round() as usize).min(n);
    let train = n - test;
    if test == 0 || train == 0 {
        return Err(DatasetError::EmptySplit {
            samples: n,
            test_fraction,
            train,
            test,
        });
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut seeded_rng(seed));
    let (test_idx, train_idx) = order.split_at(test);
    let gather = |idx: &[usize]| -> Result<(Batch<S>, Vec<usize>), DatasetError> {
        let mut data = Vec::with_capacity(idx.len() * S::NUMEL);
        for &i in idx {
            data.extend_from_slice(x.sample(i).unwrap_or_default());
        }
        let y = idx.iter().map(|&i| labels[i]).collect();
        Ok((Batch::from_vec(idx.len(), data)?, y))
    };
    let (x_train, y_train) = gather(train_idx)?;
    let (x_test, y_test) = gather(test_idx)?;
    Ok((x_train, y_train, x_test, y_test))
}
