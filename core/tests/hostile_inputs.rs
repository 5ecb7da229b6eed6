//! The reproductions of the hardening issue (#9), one test each: gzip
//! bombs, hostile weight files, non-finite gradients and learning rates,
//! unaddressable batch sizes, ambiguous weight files, NaN in argmax, and a
//! trainer that moves between threads.
//!
//! A counting allocator measures what each hostile input costs: the point
//! of most of these tests is not only that they fail, but that they fail
//! early and cheaply.

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use counting_alloc::{measure, Counting};
use flate2::write::GzEncoder;
use flate2::Compression;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use strata_core::batch::MAX_VALUES;
use strata_core::datasets::{
    parse_digits_csv, parse_idx_images, parse_idx_labels, read_idx_images, DatasetError,
    DIGITS_MAX_GAP, TRAILING_PROBE,
};
use strata_core::typenum::consts::*;
use strata_core::{
    seeded_rng, Batch, Conv2D, Dense, FitOptions, Layer, LoadError, Loss, Model, Sgd, Shape1,
    Shape3, Sigmoid, Softmax, TrainError, Trainer, Valid,
};

#[global_allocator]
static ALLOC: Counting = Counting;

/// weight [3, 2, 2, 2] (PyTorch [out, in, kh, kw]), bias [3].
type Conv = Conv2D<Shape3<U4, U4, U2>, U3, U2, U2, U1, U1, Valid>;

/// The issue's model for item 4: `Dense(2, activation = sigmoid)` on 4 inputs.
type Dense4x2 = Dense<Shape1<U4>, U2, Sigmoid>;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// `prefix` gzipped, followed by gzip members that inflate to `mib` MiB of
/// `fill` in all: about 1 KB on disk per MiB inflated (a gzip reader reads
/// concatenated members as one stream).
fn gzip_bomb(prefix: &[u8], fill: u8, mib: usize) -> Vec<u8> {
    let member = gzip(&vec![fill; 1 << 20]);
    let mut out = gzip(prefix);
    for _ in 0..mib {
        out.extend_from_slice(&member);
    }
    out
}

fn idx_header(dims: &[u32]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out
}

/// A fresh path under the system temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        TempFile(
            std::env::temp_dir().join(format!("strata-hostile-{tag}-{}-{n}", std::process::id())),
        )
    }

    /// `bytes`, then zeros up to `len` bytes: a sparse file, so a
    /// multi-gigabyte file costs no disk and no time to make.
    fn write_sparse(&self, bytes: &[u8], len: u64) -> &std::path::Path {
        let mut f = std::fs::File::create(&self.0).unwrap();
        f.write_all(bytes).unwrap();
        f.set_len(len).unwrap();
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Every tensor of `layer`, as bits.
fn snapshot<L: Layer>(layer: &L) -> Vec<(String, Vec<u32>)> {
    layer
        .params()
        .into_iter()
        .map(|p| {
            let v = layer.export_param(&p.name).unwrap();
            (p.name, v.iter().map(|x| x.to_bits()).collect())
        })
        .collect()
}

const GIB: u64 = 1 << 30;

// ---------------------------------------------------------------------------
// Item 2: gzip is never inflated past what the header promises
// ---------------------------------------------------------------------------

#[test]
fn an_idx_gzip_bomb_fails_after_the_promised_bytes_with_little_memory() {
    // 10 images of 28x28 are promised; 1 GiB of zeros follows.
    let mut first = idx_header(&[10, 28, 28]);
    first.resize(16 + 10 * 28 * 28, 0);
    let bomb = gzip_bomb(&first, 0, 1024);
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
    let (err, usage) = measure(|| parse_idx_images(&bomb).unwrap_err());
    match err {
        DatasetError::TooLong { expected, read } => {
            assert_eq!(expected, first.len());
            assert_eq!(read, first.len() + TRAILING_PROBE + 1);
        }
        e => panic!("expected TooLong, got {e:?}"),
    }
    // The decompressor's state and the promised 7,856 bytes: nothing near
    // the gigabyte the stream inflates to.
    eprintln!(
        "IDX gzip bomb of {} bytes inflating to 1 GiB: {usage:?}",
        bomb.len()
    );
    assert!(usage.peak < 512 << 10, "{usage:?}");

    // Labels, and trailing bytes within the probe, which are counted.
    let mut labels = idx_header(&[3]);
    labels.extend_from_slice(&[1, 2, 3]);
    let mut long = labels.clone();
    long.extend_from_slice(&[0; 100]);
    assert!(matches!(
        parse_idx_labels(&gzip(&long)).unwrap_err(),
        DatasetError::TrailingBytes {
            expected: 11,
            found: 111
        }
    ));
    let bomb = gzip_bomb(&labels, 7, 64);
    let (err, usage) = measure(|| parse_idx_labels(&bomb).unwrap_err());
    assert!(
        matches!(err, DatasetError::TooLong { expected: 11, .. }),
        "{err:?}"
    );
    assert!(usage.peak < 512 << 10, "{usage:?}");
    assert!(err.to_string().contains("reading stopped"), "{err}");
}

#[test]
fn an_idx_gzip_bomb_on_disk_fails_the_same_way() {
    let mut first = idx_header(&[1, 2, 2]);
    first.extend_from_slice(&[1, 2, 3, 4]);
    let file = TempFile::new("bomb.gz");
    std::fs::write(&file.0, gzip_bomb(&first, 0, 256)).unwrap();
    let (err, usage) = measure(|| read_idx_images(&file.0).unwrap_err());
    assert!(
        matches!(
            err.without_path(),
            DatasetError::TooLong { expected: 20, .. }
        ),
        "{err:?}"
    );
    assert!(usage.peak < 512 << 10, "{usage:?}");
}

#[test]
fn a_huge_plain_idx_file_is_measured_not_read() {
    // A 2 GiB file (sparse) whose header describes 20 bytes.
    let mut first = idx_header(&[1, 2, 2]);
    first.extend_from_slice(&[1, 2, 3, 4]);
    let file = TempFile::new("huge-idx");
    let path = file.write_sparse(&first, 2 * GIB);
    let (err, usage) = measure(|| read_idx_images(path).unwrap_err());
    match err.without_path() {
        DatasetError::TrailingBytes { expected, found } => {
            assert_eq!((*expected, *found as u64), (20, 2 * GIB));
        }
        e => panic!("expected TrailingBytes, got {e:?}"),
    }
    assert!(usage.peak < 64 << 10, "{usage:?}");
}

#[cfg(unix)]
#[test]
fn dev_zero_is_not_an_idx_file() {
    let (err, usage) = measure(|| read_idx_images("/dev/zero").unwrap_err());
    assert!(
        matches!(
            err.without_path(),
            DatasetError::WrongDtype { found: 0, .. }
        ),
        "{err:?}"
    );
    assert!(usage.peak < 64 << 10, "{usage:?}");
}

#[test]
fn a_digits_gzip_bomb_fails_within_one_gap() {
    for fill in [0u8, b'\n', b'1', b' '] {
        let bomb = gzip_bomb(b"", fill, 1024);
        let (err, usage) = measure(|| parse_digits_csv(&bomb).unwrap_err());
        match &err {
            DatasetError::BadLine { reason, .. } => {
                assert!(reason.contains("without an image"), "{fill}: {reason}")
            }
            e => panic!("fill {fill}: expected BadLine, got {e:?}"),
        }
        eprintln!("digits CSV gzip bomb of 1 GiB of {fill:#04x}: {usage:?}");
        assert!(usage.peak < 512 << 10, "fill {fill}: {usage:?}");
    }
    // The gap counts blank lines too: a valid line after 64 KiB of them
    // is still too far.
    let mut line = vec!["0"; 64].join(",");
    line.push_str(",3\n");
    let mut csv = line.clone();
    csv.push_str(&"\n".repeat(DIGITS_MAX_GAP));
    csv.push_str(&line);
    assert!(matches!(
        parse_digits_csv(csv.as_bytes()).unwrap_err(),
        DatasetError::BadLine { .. }
    ));
    // Just under the gap is fine.
    let mut csv = line.clone();
    csv.push_str(&"\n".repeat(DIGITS_MAX_GAP - line.len()));
    csv.push_str(&line);
    assert_eq!(parse_digits_csv(csv.as_bytes()).unwrap().1, vec![3, 3]);
}

// ---------------------------------------------------------------------------
// Item 3: the weights loader reads what the header describes, no more
// ---------------------------------------------------------------------------

fn conv(seed: u64) -> Conv {
    Conv::new(true, &mut seeded_rng(seed))
}

/// Loads the file at `path` into a fresh conv layer, expecting an error
/// and an unchanged layer; returns the error and what the load allocated.
fn conv_load_path_err(path: &std::path::Path) -> (LoadError, counting_alloc::Usage) {
    let mut layer = conv(3);
    let before = snapshot(&layer);
    let (err, usage) = measure(|| layer.load_safetensors(path).unwrap_err());
    assert_eq!(snapshot(&layer), before, "layer changed by a failed load");
    (err, usage)
}

fn corrupt_reason(err: &LoadError) -> &str {
    match err {
        LoadError::Corrupt { reason } => reason,
        e => panic!("expected Corrupt, got {e:?}"),
    }
}

#[test]
fn a_u64_max_header_length_fails_before_reading_the_file() {
    let file = TempFile::new("max-header");
    let path = file.write_sparse(&u64::MAX.to_le_bytes(), 2 * GIB);
    let (err, usage) = conv_load_path_err(path);
    let reason = corrupt_reason(&err);
    assert!(reason.contains("at most 100000000"), "{reason}");
    assert!(reason.contains(&u64::MAX.to_string()), "{reason}");
    eprintln!("2 GiB weights file with a u64::MAX header length: {usage:?}");
    assert!(usage.peak < 64 << 10, "{usage:?}");
    assert!(usage.largest < 16 << 10, "{usage:?}");
}

#[test]
fn a_file_longer_than_its_header_describes_is_refused_by_its_size() {
    let good = conv(1).to_safetensors().unwrap();
    let file = TempFile::new("long");
    let path = file.write_sparse(&good, 2 * GIB);
    let (err, usage) = conv_load_path_err(path);
    let reason = corrupt_reason(&err);
    assert!(
        reason.contains(&format!(
            "should be {} bytes long, but it is {}",
            good.len(),
            2 * GIB
        )),
        "{reason}"
    );
    eprintln!("2 GiB weights file with a 200-byte header: {usage:?}");
    assert!(usage.peak < 64 << 10, "{usage:?}");

    // One byte more or less, and a header length past the end.
    for bytes in [
        [good.as_slice(), &[0]].concat(),
        good[..good.len() - 1].to_vec(),
        [&(1u64 << 20).to_le_bytes()[..], b"{}"].concat(),
        good[..5].to_vec(),
    ] {
        std::fs::write(&file.0, &bytes).unwrap();
        let (err, _) = conv_load_path_err(&file.0);
        corrupt_reason(&err);
    }
    // The good file itself loads.
    std::fs::write(&file.0, &good).unwrap();
    let mut layer = conv(3);
    layer.load_safetensors(&file.0).unwrap();
    assert_eq!(snapshot(&layer), snapshot(&conv(1)));
}

#[cfg(unix)]
#[test]
fn dev_zero_is_not_a_weights_file() {
    let (err, usage) = conv_load_path_err(std::path::Path::new("/dev/zero"));
    corrupt_reason(&err);
    eprintln!("/dev/zero as a weights file: {usage:?}");
    assert!(usage.peak < 64 << 10, "{usage:?}");
}

// ---------------------------------------------------------------------------
// Item 4: train_on_batch refuses non-finite gradients
// ---------------------------------------------------------------------------

#[test]
fn train_on_batch_refuses_non_finite_gradients_and_changes_nothing() {
    let net = Dense4x2::new(true, &mut seeded_rng(0));
    let mut model = net.compile(Loss::binary_crossentropy(), Sgd::new(0.1));
    let probe = Batch::<Shape1<U4>>::from_vec(1, vec![0.1, 0.2, 0.3, 0.4]).unwrap();
    let before = snapshot(&*model);
    let prediction = model.predict(&probe);

    let x = Batch::<Shape1<U4>>::from_vec(1, vec![f32::INFINITY, 0.5, 0.5, 0.5]).unwrap();
    let y = Batch::<Shape1<U2>>::from_vec(1, vec![1.0, 0.0]).unwrap();
    match model.train_on_batch(&x, &y, 0) {
        Err(TrainError::NonFiniteGradient { epoch: 1, batch: 1 }) => {}
        other => panic!("expected NonFiniteGradient, got {other:?}"),
    }
    assert_eq!(snapshot(&*model), before);
    let after = model.predict(&probe);
    assert_eq!(after, prediction);
    assert!(after.as_slice().iter().all(|v| v.is_finite()));

    // A finite batch still trains.
    let x = Batch::<Shape1<U4>>::from_vec(1, vec![1.0, 0.5, 0.5, 0.5]).unwrap();
    model.train_on_batch(&x, &y, 0).unwrap();
    assert_ne!(snapshot(&*model), before);
}

#[test]
fn a_refused_step_puts_back_the_running_statistics_it_moved() {
    // A taped training pass updates a normalisation's moving statistics
    // before the loss can be checked: an infinite input makes them NaN.
    type Bn = strata_core::BatchNormalization<Shape1<U4>>;
    let x =
        Batch::<Shape1<U4>>::from_vec(2, vec![f32::INFINITY, 0.5, 0.5, 0.5, 1.0, 2.0, 3.0, 4.0])
            .unwrap();
    let y = Batch::<Shape1<U4>>::from_vec(2, vec![0.0; 8]).unwrap();

    let mut model = Bn::keras_default().compile(Loss::mean_squared_error(), Sgd::new(0.1));
    let before = snapshot(&*model);
    assert!(model
        .params()
        .iter()
        .any(|p| p.role == strata_core::Role::Buffer));
    let err = model.train_on_batch(&x, &y, 0).unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::NonFiniteLoss { .. } | TrainError::NonFiniteGradient { .. }
        ),
        "{err:?}"
    );
    assert_eq!(snapshot(&*model), before, "train_on_batch");

    let mut model = Bn::keras_default().compile(Loss::mean_squared_error(), Sgd::new(0.1));
    let options = FitOptions {
        epochs: 1,
        batch_size: 2,
        shuffle: false,
        verbose: 0,
        ..FitOptions::default()
    };
    assert!(model.fit(&x, &y, options).is_err());
    assert_eq!(snapshot(&*model), before, "fit");
}

// ---------------------------------------------------------------------------
// Item 5: learning-rate schedules are checked each epoch
// ---------------------------------------------------------------------------

fn small_problem() -> (Batch<Shape1<U4>>, Vec<usize>) {
    let x = Batch::from_vec(4, (0..16).map(|i| (i % 5) as f32 / 5.0).collect()).unwrap();
    (x, vec![0, 1, 1, 0])
}

fn trainer() -> Trainer<Dense<Shape1<U4>, U2, Softmax>> {
    Dense::new(true, &mut seeded_rng(1))
        .compile(Loss::sparse_categorical_crossentropy(), Sgd::new(0.1))
}

fn quiet(epochs: usize) -> FitOptions<'static, Shape1<U4>, Shape1<U2>> {
    FitOptions {
        epochs,
        batch_size: 2,
        verbose: 0,
        ..FitOptions::default()
    }
}

#[test]
fn a_bad_scheduled_rate_stops_training_naming_the_epoch_and_the_value() {
    let (x, y) = small_problem();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -1.0, -0.0001] {
        // Bad from the first epoch: nothing is trained.
        let mut model = trainer().with_schedule(move |_: usize, _: f32| bad);
        let before = snapshot(&*model);
        let err = model.fit(&x, &y, quiet(3)).unwrap_err();
        match err {
            TrainError::LearningRate { epoch: 1, rate } => {
                assert_eq!(rate.to_bits(), bad.to_bits())
            }
            ref e => panic!("{bad}: expected LearningRate, got {e:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("epoch 1") && text.contains(&bad.to_string()),
            "{text}"
        );
        assert_eq!(snapshot(&*model), before, "{bad}");
        assert_eq!(model.learning_rate(), 0.1, "the optimizer keeps its rate");

        // Bad from the third: two epochs are trained, the third is not.
        let mut model =
            trainer().with_schedule(move |e: usize, lr: f32| if e == 2 { bad } else { lr * 0.5 });
        match model.fit(&x, &y, quiet(5)).unwrap_err() {
            TrainError::LearningRate { epoch: 3, .. } => {}
            e => panic!("{bad}: expected LearningRate at epoch 3, got {e:?}"),
        }
        assert_eq!(model.learning_rate(), 0.025);
        assert!(snapshot(&*model)
            .iter()
            .all(|(_, v)| v.iter().all(|b| f32::from_bits(*b).is_finite())));
    }
    // Zero is a valid (if idle) rate.
    let mut model = trainer().with_schedule(|_: usize, _: f32| 0.0);
    let before = snapshot(&*model);
    model.fit(&x, &y, quiet(2)).unwrap();
    assert_eq!(snapshot(&*model), before);
}

// ---------------------------------------------------------------------------
// Item 7: batch sizes are checked
// ---------------------------------------------------------------------------

type Image = Shape3<U32, U32, U3>;

#[test]
fn unaddressable_batch_sizes_are_errors_in_the_fallible_constructors() {
    for len in [1usize << 54, usize::MAX, MAX_VALUES / 3072 + 1] {
        let err = Batch::<Image>::try_zeros(len).unwrap_err();
        assert_eq!(err.expected, usize::MAX);
        assert!(err.to_string().contains("more values than memory"), "{err}");
        assert!(Batch::<Image>::try_filled(len, 1.0).is_err());
        assert!(Batch::<Image>::from_vec(len, vec![]).is_err());
        assert!(Batch::<Image>::from_slice(len, &[]).is_err());
        let mut b = Batch::<Image>::zeros(1);
        assert!(b.try_resize(len).is_err());
        assert_eq!((b.batch_size(), b.as_slice().len()), (1, 3072), "unchanged");
    }
    let mut b = Batch::<Image>::try_zeros(2).unwrap();
    assert_eq!(b.as_slice().len(), 6144);
    b.try_resize(3).unwrap();
    assert_eq!((b.batch_size(), b.as_slice().len()), (3, 9216));
}

#[test]
#[should_panic(expected = "more values than memory can address")]
fn zeros_panics_clearly_on_an_unaddressable_size() {
    let _ = Batch::<Image>::zeros(1 << 54);
}

#[test]
#[should_panic(expected = "more values than memory can address")]
fn filled_panics_clearly_on_an_unaddressable_size() {
    let _ = Batch::<Image>::filled(usize::MAX, 1.0);
}

#[test]
#[should_panic(expected = "more values than memory can address")]
fn resize_panics_clearly_on_an_unaddressable_size() {
    Batch::<Image>::zeros(1).resize(1 << 54);
}

#[test]
#[should_panic(expected = "more values than memory can address")]
fn from_buffer_panics_clearly_on_an_unaddressable_size() {
    let _ = Batch::<Image>::from_buffer(1 << 54, Vec::new());
}

#[test]
fn sample_past_the_end_is_none_for_any_index() {
    let b = Batch::<Image>::filled(1, 0.5);
    assert!(b.sample(0).is_some());
    for i in [1, 2, 1 << 52, 1 << 63, usize::MAX] {
        assert_eq!(b.sample(i), None, "{i}");
    }
}

#[test]
fn shape_mismatch_display_does_not_overflow() {
    let huge = u32::MAX as usize;
    let err = DatasetError::ShapeMismatch {
        found: vec![huge, huge, huge],
        expected: &[28, 28, 1],
    };
    let text = err.to_string();
    assert!(text.contains(&format!("{huge}x{huge}x{huge}")), "{text}");
    assert!(text.contains("holds 784"), "{text}");
    let err = DatasetError::ShapeMismatch {
        found: vec![usize::MAX; 4],
        expected: &[8, 8, 1],
    };
    assert!(err.to_string().contains("more than"), "{err}");
}

// ---------------------------------------------------------------------------
// Item 8: no silent ambiguity
// ---------------------------------------------------------------------------

/// A safetensors file written by hand: `header` JSON, then `data`.
fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn a_duplicate_key_is_rejected_naming_it() {
    // Two `weight` entries over the same bytes, one F32 and one F16 of
    // another shape: safetensors alone keeps the last.
    let entry = |dtype: &str, shape: &str| {
        format!(r#"{{"dtype":"{dtype}","shape":{shape},"data_offsets":[0,96]}}"#)
    };
    let header = format!(
        r#"{{"weight":{},"weight":{},"bias":{{"dtype":"F32","shape":[3],"data_offsets":[96,108]}}}}"#,
        entry("F32", "[3,2,2,2]"),
        entry("F16", "[3,2,2,4]"),
    );
    let data: Vec<u8> = (0..27).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let bytes = raw_file(&header, &data);
    // The same name spelled with an escape is the same name.
    let escaped = raw_file(&header.replacen("\"weight\"", "\"w\\u0065ight\"", 1), &data);
    for (what, bytes) in [("plain", &bytes), ("escaped", &escaped)] {
        let mut layer = conv(3);
        let before = snapshot(&layer);
        match layer.load_safetensors_bytes(bytes) {
            Err(LoadError::DuplicateKey { key }) => assert_eq!(key, "weight", "{what}"),
            other => panic!("{what}: expected DuplicateKey, got {other:?}"),
        }
        assert_eq!(snapshot(&layer), before);
    }
    // Also from a file.
    let file = TempFile::new("dup");
    std::fs::write(&file.0, &bytes).unwrap();
    let (err, _) = conv_load_path_err(&file.0);
    assert!(
        matches!(&err, LoadError::DuplicateKey { key } if key == "weight"),
        "{err:?}"
    );
    assert!(err.to_string().contains("`weight` more than once"), "{err}");
}

fn f64_file(weight: &[f64]) -> Vec<u8> {
    let w: Vec<u8> = weight.iter().flat_map(|v| v.to_le_bytes()).collect();
    let b: Vec<u8> = [0.0f64; 3].iter().flat_map(|v| v.to_le_bytes()).collect();
    safetensors::serialize(
        [
            (
                "weight",
                TensorView::new(Dtype::F64, vec![3, 2, 2, 2], &w).unwrap(),
            ),
            ("bias", TensorView::new(Dtype::F64, vec![3], &b).unwrap()),
        ],
        None,
    )
    .unwrap()
}

#[test]
fn an_f64_beyond_f32_range_is_an_error_naming_the_key() {
    for big in [1e300, -1e39, f64::MAX, f32::MAX as f64 * 1.000001] {
        let mut w = vec![0.5f64; 24];
        w[5] = big;
        let mut layer = conv(3);
        let before = snapshot(&layer);
        let err = layer.load_safetensors_bytes(&f64_file(&w)).unwrap_err();
        match &err {
            LoadError::OutOfRange { key, index, value } => {
                assert_eq!((key.as_str(), *index, *value), ("weight", 5, big));
            }
            e => panic!("{big}: expected OutOfRange, got {e:?}"),
        }
        assert!(err.to_string().contains("`weight`"), "{err}");
        assert_eq!(snapshot(&layer), before);
    }
    // The edge of the range rounds to f32::MAX; infinities and NaN are
    // values of both types and load as themselves.
    let mut w = vec![0.5f64; 24];
    w[0] = f32::MAX as f64;
    w[1] = f64::INFINITY;
    w[2] = f64::NAN;
    w[3] = 1e-50; // underflows to 0, as the format rounds
    let mut layer = conv(3);
    layer.load_safetensors_bytes(&f64_file(&w)).unwrap();
    let loaded = layer.export_param("weight").unwrap();
    assert_eq!(loaded[0], f32::MAX);
    assert_eq!(loaded[1], f32::INFINITY);
    assert!(loaded[2].is_nan());
    assert_eq!(loaded[3], 0.0);
}

#[test]
fn argmax_does_not_read_nan_as_a_confident_class() {
    let nan = f32::NAN;
    let y = Batch::<Shape1<U3>>::from_vec(
        5,
        vec![
            nan,
            nan,
            nan, // all NaN: not class 0 by default...
            0.1,
            nan,
            0.9, // NaN beside finite values: not ignored
            0.2,
            0.7,
            0.1, // a plain row
            0.5,
            0.5,
            0.1, // a tie: the first
            f32::NEG_INFINITY,
            1.0,
            f32::INFINITY,
        ],
    )
    .unwrap();
    // ...but the first NaN's index, as NumPy does.
    assert_eq!(y.argmax(), vec![0, 1, 1, 0, 2]);
    assert_eq!(
        y.argmax_checked(),
        vec![None, None, Some(1), Some(0), Some(2)]
    );
    let z = Batch::<Shape1<U3>>::from_vec(1, vec![0.9, 0.05, nan]).unwrap();
    assert_eq!(z.argmax(), vec![2]);
    assert_eq!(z.argmax_checked(), vec![None]);
}

// ---------------------------------------------------------------------------
// Item 9: a compiled model moves to a training thread
// ---------------------------------------------------------------------------

#[test]
fn a_trainer_is_send_and_trains_on_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<Trainer<Dense<Shape1<U4>, U2, Softmax>>>();
    assert_send::<Trainer<Conv>>();

    let (x, y) = small_problem();
    let model = trainer().with_schedule(|_: usize, lr: f32| lr * 0.9);
    let (x2, y2) = (x.clone(), y.clone());
    let trained = std::thread::spawn(move || {
        let mut model = model;
        model.fit(&x2, &y2, quiet(2)).unwrap();
        model
    })
    .join()
    .unwrap();
    let mut here = trainer().with_schedule(|_: usize, lr: f32| lr * 0.9);
    here.fit(&x, &y, quiet(2)).unwrap();
    assert_eq!(snapshot(&*trained), snapshot(&*here));
}

/// Found by the `idx` fuzz target: images of zero pixels made every index
/// look valid.
#[test]
fn an_image_past_the_end_is_none_even_with_no_pixels() {
    let bytes = [0, 0, 8, 3, 0, 0x22, 0x62, 0, 0, 0, 0, 0, 0, 0, 0x7c, 0x11];
    let images = parse_idx_images(&bytes).unwrap();
    assert_eq!(
        (images.count, images.rows, images.cols),
        (0x22_6200, 0, 0x7c11)
    );
    assert_eq!(images.image(0), Some(&[][..]));
    assert_eq!(images.image(images.count), None);
    assert_eq!(images.image(usize::MAX), None);
}
