//! Datasets: IDX files written here (plain and gzipped), every way they can
//! be broken, the embedded UCI digits and the seeded split.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use flate2::write::GzEncoder;
use flate2::Compression;
use strata_core::datasets::{
    digits, mnist, parse_digits_csv, parse_idx_images, parse_idx_labels, read_idx_images,
    read_idx_labels, train_test_split, DatasetError, IdxImages, MnistImage,
};
use strata_core::typenum::consts::*;
use strata_core::{Batch, Shape1, Shape3};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "strata-datasets-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An IDX file of unsigned bytes.
fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// `count` images of `rows` x `cols` with pixel values from a simple pattern.
fn pattern(count: usize, rows: usize, cols: usize) -> Vec<u8> {
    (0..count * rows * cols)
        .map(|i| (i * 37 % 256) as u8)
        .collect()
}

fn images_file(count: usize, rows: usize, cols: usize) -> (Vec<u8>, Vec<u8>) {
    let pixels = pattern(count, rows, cols);
    let file = idx(&[count as u32, rows as u32, cols as u32], &pixels);
    (file, pixels)
}

#[test]
fn idx_images_and_labels_round_trip_plain_and_gzipped() {
    let (file, pixels) = images_file(3, 4, 5);
    let labels = vec![7u8, 0, 9];
    let label_file = idx(&[3], &labels);
    for gz in [false, true] {
        let (img_bytes, lbl_bytes) = if gz {
            (gzip(&file), gzip(&label_file))
        } else {
            (file.clone(), label_file.clone())
        };
        let images = parse_idx_images(&img_bytes).unwrap();
        assert_eq!(
            images,
            IdxImages {
                count: 3,
                rows: 4,
                cols: 5,
                pixels: pixels.clone()
            }
        );
        assert_eq!(images.image(2), Some(&pixels[40..60]));
        assert_eq!(images.image(3), None);
        assert_eq!(parse_idx_labels(&lbl_bytes).unwrap(), labels);
    }
}

#[test]
fn idx_files_read_from_disk_plain_and_gzipped() {
    let dir = TempDir::new("read");
    let (file, pixels) = images_file(2, 3, 3);
    let plain = dir.write("images-idx3-ubyte", &file);
    let gz = dir.write("images-idx3-ubyte.gz", &gzip(&file));
    assert_eq!(read_idx_images(&plain).unwrap().pixels, pixels);
    assert_eq!(read_idx_images(&gz).unwrap().pixels, pixels);
    let labels = dir.write("labels-idx1-ubyte.gz", &gzip(&idx(&[2], &[1, 2])));
    assert_eq!(read_idx_labels(labels).unwrap(), vec![1, 2]);
}

#[test]
fn images_convert_to_a_scaled_batch_of_a_matching_shape() {
    let (file, pixels) = images_file(2, 2, 3);
    let images = parse_idx_images(&file).unwrap();
    let batch: Batch<Shape3<U2, U3, U1>> = images.to_batch().unwrap();
    assert_eq!(batch.batch_size(), 2);
    for (v, p) in batch.as_slice().iter().zip(&pixels) {
        assert_eq!(*v, f32::from(*p) / 255.0);
    }
    assert!(batch.as_slice().iter().all(|v| (0.0..=1.0).contains(v)));
    // Flat shapes of the right size work too.
    let flat: Batch<Shape1<U6>> = images.to_batch().unwrap();
    assert_eq!(flat.as_slice(), batch.as_slice());

    match images.to_batch::<Shape3<U3, U3, U1>>().unwrap_err() {
        DatasetError::ShapeMismatch { found, expected } => {
            assert_eq!(found, vec![2, 3, 1]);
            assert_eq!(expected, &[3, 3, 1]);
        }
        e => panic!("unexpected error {e:?}"),
    }
    // A hand-built struct whose pixels do not add up fails instead of panicking.
    let broken = IdxImages { count: 3, ..images };
    assert!(matches!(
        broken.to_batch::<Shape3<U2, U3, U1>>(),
        Err(DatasetError::Batch(_))
    ));
}

#[test]
fn bad_magic_is_reported_with_expected_and_found() {
    let (mut file, _) = images_file(1, 2, 2);
    file[..4].copy_from_slice(&[0x12, 0x34, 0x56, 0x78]);
    match parse_idx_images(&file).unwrap_err() {
        DatasetError::BadMagic { expected, found } => {
            assert_eq!(expected, 0x0000_0803);
            assert_eq!(found, 0x1234_5678);
        }
        e => panic!("unexpected error {e:?}"),
    }
    // Written little-endian by mistake: the message says so.
    file[..4].copy_from_slice(&[0x03, 0x08, 0, 0]);
    let err = parse_idx_images(&file).unwrap_err();
    assert!(matches!(err, DatasetError::BadMagic { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("0x00000803") && msg.contains("0x03080000"),
        "{msg}"
    );
    assert!(msg.contains("byte-swapped"), "{msg}");
    // Labels expect 0x00000801.
    let err = parse_idx_labels(&[1, 2, 3, 4, 0, 0, 0, 0]).unwrap_err();
    assert!(matches!(
        err,
        DatasetError::BadMagic {
            expected: 0x0000_0801,
            found: 0x0102_0304
        }
    ));
}

#[test]
fn wrong_dtype_and_wrong_dims_are_reported() {
    let (mut file, _) = images_file(1, 2, 2);
    file[2] = 0x0D; // float
    assert!(matches!(
        parse_idx_images(&file).unwrap_err(),
        DatasetError::WrongDtype {
            expected: 0x08,
            found: 0x0D
        }
    ));
    // A labels file given as images, and the other way round.
    let labels = idx(&[2], &[1, 2]);
    let err = parse_idx_images(&labels).unwrap_err();
    assert!(matches!(
        err,
        DatasetError::WrongDims {
            expected: 3,
            found: 1
        }
    ));
    assert!(err.to_string().contains("labels"), "{err}");
    let (images, _) = images_file(1, 2, 2);
    assert!(matches!(
        parse_idx_labels(&images).unwrap_err(),
        DatasetError::WrongDims {
            expected: 1,
            found: 3
        }
    ));
}

#[test]
fn truncated_headers_and_data_are_reported_with_byte_counts() {
    let (file, _) = images_file(2, 3, 3);
    // Header is 16 bytes for 3 dims; every cut inside it is a truncated header.
    for cut in 0..16 {
        match parse_idx_images(&file[..cut]).unwrap_err() {
            DatasetError::Truncated {
                part,
                expected,
                found,
            } => {
                assert_eq!((part, expected, found), ("IDX header", 16, cut));
            }
            e => panic!("cut {cut}: unexpected error {e:?}"),
        }
    }
    // Missing pixel bytes.
    let err = parse_idx_images(&file[..file.len() - 5]).unwrap_err();
    match &err {
        DatasetError::Truncated {
            part,
            expected,
            found,
        } => assert_eq!((*part, *expected, *found), ("IDX data", 18, 13)),
        e => panic!("unexpected error {e:?}"),
    }
    assert!(
        err.to_string().contains("expected 18 bytes, found 13"),
        "{err}"
    );
    // Labels too, and gzipped data that is complete as gzip but short as IDX.
    let labels = idx(&[4], &[1, 2, 3]);
    assert!(matches!(
        parse_idx_labels(&gzip(&labels)).unwrap_err(),
        DatasetError::Truncated {
            part: "IDX data",
            expected: 4,
            found: 3
        }
    ));
    // Extra bytes after the data are an error as well.
    let mut long = idx(&[2], &[1, 2]);
    long.push(0);
    assert!(matches!(
        parse_idx_labels(&long).unwrap_err(),
        DatasetError::TrailingBytes {
            expected: 10,
            found: 11
        }
    ));
}

#[test]
fn huge_dimensions_do_not_allocate_or_panic() {
    let file = idx(&[u32::MAX, u32::MAX, u32::MAX], &[0; 8]);
    let err = parse_idx_images(&file).unwrap_err();
    assert!(
        matches!(
            err,
            DatasetError::TooLarge { .. } | DatasetError::Truncated { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn corrupt_gzip_is_reported() {
    let (file, _) = images_file(2, 3, 3);
    let gz = gzip(&file);
    // Cut short.
    assert!(matches!(
        parse_idx_images(&gz[..gz.len() / 2]).unwrap_err(),
        DatasetError::Gzip { .. }
    ));
    // A flipped byte in the CRC trailer.
    let mut bad_crc = gz.clone();
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xFF;
    assert!(matches!(
        parse_idx_images(&bad_crc).unwrap_err(),
        DatasetError::Gzip { .. }
    ));
    // Just the magic and garbage.
    assert!(matches!(
        parse_idx_labels(&[0x1f, 0x8b, 0xde, 0xad, 0xbe, 0xef]).unwrap_err(),
        DatasetError::Gzip { .. }
    ));
    // From a file, the error carries the path.
    let dir = TempDir::new("gz");
    let path = dir.write("broken.gz", &gz[..10]);
    let err = read_idx_images(&path).unwrap_err();
    match &err {
        DatasetError::File { path: p, .. } => assert_eq!(p, &path),
        e => panic!("unexpected error {e:?}"),
    }
    assert!(matches!(err.without_path(), DatasetError::Gzip { .. }));
    assert!(err.to_string().contains("broken.gz"), "{err}");
}

#[test]
fn missing_file_is_an_io_error_with_its_path() {
    let dir = TempDir::new("missing");
    let path = dir.0.join("no-such-file-idx3-ubyte");
    match read_idx_images(&path).unwrap_err() {
        DatasetError::Io { path: p, source } => {
            assert_eq!(p, path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        e => panic!("unexpected error {e:?}"),
    }
    assert!(matches!(
        read_idx_labels(&path).unwrap_err(),
        DatasetError::Io { .. }
    ));
}

/// Writes a small MNIST-like set (28x28 images, `n` of them) into `dir`
/// under the standard names, gzipped or not per file.
fn write_mnist(dir: &TempDir, n_train: usize, n_test: usize, gz: [bool; 4]) {
    let files = [
        (
            "train-images-idx3-ubyte",
            idx(&[n_train as u32, 28, 28], &pattern(n_train, 28, 28)),
        ),
        (
            "train-labels-idx1-ubyte",
            idx(
                &[n_train as u32],
                &(0..n_train).map(|i| (i % 10) as u8).collect::<Vec<_>>(),
            ),
        ),
        (
            "t10k-images-idx3-ubyte",
            idx(&[n_test as u32, 28, 28], &pattern(n_test, 28, 28)),
        ),
        (
            "t10k-labels-idx1-ubyte",
            idx(
                &[n_test as u32],
                &(0..n_test).map(|i| (9 - i % 10) as u8).collect::<Vec<_>>(),
            ),
        ),
    ];
    for ((name, bytes), gz) in files.iter().zip(gz) {
        if gz {
            dir.write(&format!("{name}.gz"), &gzip(bytes));
        } else {
            dir.write(name, bytes);
        }
    }
}

#[test]
fn mnist_loads_the_four_standard_files_gzipped_or_not() {
    let dir = TempDir::new("mnist");
    write_mnist(&dir, 12, 5, [true, false, false, true]);
    let (x_train, y_train, x_test, y_test) = mnist(&dir.0).unwrap();
    assert_eq!(x_train.batch_size(), 12);
    assert_eq!(x_test.batch_size(), 5);
    assert_eq!(x_train.sample_dims(), &[28, 28, 1]);
    assert_eq!(y_train, (0..12).map(|i| i % 10).collect::<Vec<_>>());
    assert_eq!(y_test, vec![9, 8, 7, 6, 5]);
    let expected: Batch<MnistImage> = parse_idx_images(&idx(&[5, 28, 28], &pattern(5, 28, 28)))
        .unwrap()
        .to_batch()
        .unwrap();
    assert_eq!(x_test, expected);
}

#[test]
fn mnist_reports_missing_files_and_mismatched_counts() {
    let dir = TempDir::new("mnist-bad");
    match mnist(&dir.0).unwrap_err() {
        DatasetError::NotFound { tried } => {
            assert!(tried.contains(&dir.0.join("train-images-idx3-ubyte")));
            assert!(tried.contains(&dir.0.join("train-images-idx3-ubyte.gz")));
        }
        e => panic!("unexpected error {e:?}"),
    }
    write_mnist(&dir, 3, 2, [false; 4]);
    dir.write("t10k-labels-idx1-ubyte", &idx(&[3], &[1, 2, 3]));
    let err = mnist(&dir.0).unwrap_err();
    assert!(
        matches!(
            err.without_path(),
            DatasetError::LabelCount {
                samples: 2,
                labels: 3
            }
        ),
        "{err:?}"
    );
    dir.write("t10k-labels-idx1-ubyte", &idx(&[2], &[1, 10]));
    assert!(matches!(
        mnist(&dir.0).unwrap_err().without_path(),
        DatasetError::BadLabel {
            index: 1,
            label: 10,
            classes: 10
        }
    ));
    // Images of the wrong size.
    dir.write(
        "t10k-images-idx3-ubyte",
        &idx(&[2, 8, 8], &pattern(2, 8, 8)),
    );
    assert!(matches!(
        mnist(&dir.0).unwrap_err().without_path(),
        DatasetError::ShapeMismatch { .. }
    ));
}

#[test]
fn digits_has_1797_balanced_samples_in_range() {
    let (x, y) = digits();
    assert_eq!(x.batch_size(), 1797);
    assert_eq!(x.sample_dims(), &[8, 8, 1]);
    assert_eq!(y.len(), 1797);
    let mut counts = [0usize; 10];
    for &label in &y {
        counts[label] += 1;
    }
    assert!(
        counts.iter().all(|&c| (170..=190).contains(&c)),
        "{counts:?}"
    );
    assert_eq!(counts.iter().sum::<usize>(), 1797);
    let values = x.as_slice();
    assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(values.contains(&0.0) && values.contains(&1.0));
    // Pixels are multiples of 1/16.
    assert!(values.iter().all(|v| (v * 16.0).fract() == 0.0));
    // The first image is a 0, as in scikit-learn's load_digits.
    assert_eq!(y[0], 0);
    assert_eq!(x.sample(0).unwrap()[2], 5.0 / 16.0);
}

fn digits_line(label: &str) -> String {
    let pixels: Vec<String> = (0..64).map(|i| (i % 17).to_string()).collect();
    format!("{},{label}", pixels.join(","))
}

#[test]
fn digits_csv_parses_plain_and_gzipped_and_skips_blank_lines() {
    let csv = format!("{}\r\n\n{}\n", digits_line("3"), digits_line("9"));
    for bytes in [csv.clone().into_bytes(), gzip(csv.as_bytes())] {
        let (x, y) = parse_digits_csv(&bytes).unwrap();
        assert_eq!(y, vec![3, 9]);
        assert_eq!(x.batch_size(), 2);
        assert_eq!(x.sample(1).unwrap()[16], 16.0 / 16.0);
        assert_eq!(x.sample(1).unwrap()[17], 0.0);
    }
}

#[test]
fn bad_digits_lines_are_reported_with_their_numbers() {
    let good = digits_line("1");
    let cases = [
        (format!("{good}\n{good},4\n"), 2, "found 66 values"),
        (format!("{good}\n\n1,2,3\n"), 3, "found 3 values"),
        (format!("{}\n", digits_line("10")), 1, "the label"),
        (format!("{}\n", digits_line("x")), 1, "`x`"),
        (format!("17,{}\n", &good[2..]), 1, "the pixel"),
        (format!("-1,{}\n", &good[2..]), 1, "`-1`"),
    ];
    for (csv, line_no, needle) in cases {
        let err = parse_digits_csv(csv.as_bytes()).unwrap_err();
        match &err {
            DatasetError::BadLine { line, .. } => assert_eq!(*line, line_no, "{err}"),
            e => panic!("unexpected error {e:?}"),
        }
        assert!(err.to_string().contains(needle), "{err}");
    }
    let mut not_utf8 = good.clone().into_bytes();
    not_utf8[0] = 0xFF;
    assert!(matches!(
        parse_digits_csv(&not_utf8).unwrap_err(),
        DatasetError::BadLine { line: 1, .. }
    ));
    assert!(matches!(
        parse_digits_csv(b"\n\n").unwrap_err(),
        DatasetError::NoSamples
    ));
    assert!(matches!(
        parse_digits_csv(&[0x1f, 0x8b, 0, 0]).unwrap_err(),
        DatasetError::Gzip { .. }
    ));
}

#[test]
fn train_test_split_is_sized_deterministic_and_a_partition() {
    let (x, y) = digits();
    let (xa, ya, xb, yb) = train_test_split(&x, &y, 0.2, 7).unwrap();
    assert_eq!((xa.batch_size(), xb.batch_size()), (1438, 359));
    assert_eq!((ya.len(), yb.len()), (1438, 359));
    // Same seed, same split; another seed, another split.
    let again = train_test_split(&x, &y, 0.2, 7).unwrap();
    assert!(again.0 == xa && again.1 == ya && again.2 == xb && again.3 == yb);
    let other = train_test_split(&x, &y, 0.2, 8).unwrap();
    assert!(other.3 != yb);
    // Every sample lands in exactly one set, with its own label.
    let mut seen: Vec<(Vec<u32>, usize)> = Vec::new();
    for (batch, labels) in [(&xa, &ya), (&xb, &yb)] {
        for (i, &label) in labels.iter().enumerate() {
            let bits = batch
                .sample(i)
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect();
            seen.push((bits, label));
        }
    }
    let mut original: Vec<(Vec<u32>, usize)> = (0..x.batch_size())
        .map(|i| {
            let bits = x.sample(i).unwrap().iter().map(|v| v.to_bits()).collect();
            (bits, y[i])
        })
        .collect();
    seen.sort();
    original.sort();
    assert_eq!(seen, original);
}

#[test]
fn train_test_split_rejects_bad_fractions_and_empty_sets() {
    let x = Batch::<Shape1<U2>>::from_vec(4, (0..8).map(|v| v as f32).collect()).unwrap();
    let y = vec![0, 1, 0, 1];
    for f in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
        assert!(
            matches!(
                train_test_split(&x, &y, f, 0).unwrap_err(),
                DatasetError::BadFraction { .. }
            ),
            "{f}"
        );
    }
    assert!(matches!(
        train_test_split(&x, &y, 0.1, 0).unwrap_err(),
        DatasetError::EmptySplit {
            samples: 4,
            train: 4,
            test: 0,
            ..
        }
    ));
    assert!(matches!(
        train_test_split(&x, &y, 0.9, 0).unwrap_err(),
        DatasetError::EmptySplit {
            train: 0,
            test: 4,
            ..
        }
    ));
    assert!(matches!(
        train_test_split(&x, &y[..3], 0.5, 0).unwrap_err(),
        DatasetError::LabelCount {
            samples: 4,
            labels: 3
        }
    ));
    let empty = Batch::<Shape1<U2>>::zeros(0);
    assert!(matches!(
        train_test_split(&empty, &[], 0.5, 0).unwrap_err(),
        DatasetError::EmptySplit { samples: 0, .. }
    ));
    let (xa, ya, xb, yb) = train_test_split(&x, &y, 0.5, 3).unwrap();
    assert_eq!((xa.batch_size(), xb.batch_size()), (2, 2));
    // Rows stay whole: each sample's two values are (2k, 2k + 1), label k % 2.
    for (batch, labels) in [(&xa, &ya), (&xb, &yb)] {
        for (i, &label) in labels.iter().enumerate() {
            let s = batch.sample(i).unwrap();
            assert_eq!(s[1], s[0] + 1.0);
            assert_eq!(label, (s[0] as usize / 2) % 2);
        }
    }
}
