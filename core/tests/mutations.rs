//! A stable, seeded mutation test of every loader, run by `cargo test`:
//! the fuzz suite's (`fuzz/`) little sibling for those without a nightly
//! toolchain.
//!
//! Real files (a weights file written by Keras's reference generator, one
//! written by strata, IDX files and the CSV of the UCI digits shipped in
//! `data/`) are mutated the way fuzzers do (bit flips, interesting bytes
//! and integers, insertions, deletions, duplicated chunks, truncation;
//! biased towards the headers) at least 10,000 times per loader, with a
//! fixed seed. Every result is checked:
//!
//! - no panic;
//! - bounded allocation: a counting allocator measures each call, which
//!   may hold at most [`SLACK`] bytes plus [`FACTOR`] times the input (for
//!   gzip, the larger of the compressed and the inflated size);
//! - after an error, a model is bit for bit what it was before.
//!
//! Run with `--nocapture` to see the counts and the largest allocations.

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use counting_alloc::{measure, Counting, Usage};
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use rand::Rng;
use strata_core::datasets::{
    parse_digits_csv, parse_idx_images, parse_idx_labels, read_idx_images, read_idx_labels,
    DigitsImage,
};
use strata_core::tensor::{VisitPath, Visitor, VisitorMut};
use strata_core::typenum::consts::*;
use strata_core::{
    seeded_rng, Batch, Context, Conv2D, Dense, Layer, Model, Same, SeededRng, Shape1, Shape3,
};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Mutations per loader (weights bytes, IDX images, IDX labels, digits
/// CSV), split among the ways its input can arrive. The file readers, which
/// share those parsers, get [`FILE_MUTATIONS`] more on top.
const MUTATIONS: usize = 10_000;

/// Mutations through a file on disk, per file reader.
const FILE_MUTATIONS: usize = 1_000;

/// The fixed seed: the same mutations on every run.
const SEED: u64 = 0x5EED_F022;

/// Allocation allowed whatever the input: decompressor state (a 32 KiB
/// window and its tables), the model's own key list, buffers of I/O.
const SLACK: usize = 256 << 10;

/// Allocation allowed per input byte: a parsed CSV is `f32`s (4 bytes
/// for at least 2 of text) in a vector that may have doubled.
const FACTOR: usize = 8;

// ---------------------------------------------------------------------------
// The mutator
// ---------------------------------------------------------------------------

const INTERESTING_BYTES: [u8; 16] = [
    0, 1, 0x7f, 0x80, 0xff, b'"', b',', b'{', b'}', b'[', b']', b'0', b'9', b'\n', b'\\', b'-',
];

const INTERESTING_INTS: [u64; 12] = [
    0,
    1,
    0x7f,
    0xff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    1 << 62,
    u64::MAX,
    100_000_001,
];

/// A position in `len` bytes, one time in four among the first 32, where
/// the headers are.
fn position(rng: &mut SeededRng, len: usize) -> usize {
    if len == 0 {
        0
    } else if rng.random_range(0..4) == 0 {
        rng.random_range(0..len.min(32))
    } else {
        rng.random_range(0..len)
    }
}

/// Applies one to four random edits to `data`.
fn mutate(rng: &mut SeededRng, data: &mut Vec<u8>) {
    for _ in 0..rng.random_range(1..=4) {
        let len = data.len();
        let at = position(rng, len);
        match rng.random_range(0..10) {
            0 if len > 0 => data[at] ^= 1 << rng.random_range(0..8),
            1 if len > 0 => {
                data[at] = INTERESTING_BYTES[rng.random_range(0..INTERESTING_BYTES.len())]
            }
            2 if len > 0 => {
                let end = (at + rng.random_range(1..=16)).min(len);
                data.drain(at..end);
            }
            3 => {
                let n = rng.random_range(1..=16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                data.splice(at..at, bytes);
            }
            4 => data.truncate(at),
            5 if len > 0 => {
                let start = rng.random_range(0..len);
                let end = (start + rng.random_range(1..=64)).min(len);
                let chunk = data[start..end].to_vec();
                data.splice(at..at, chunk);
            }
            6 | 7 => {
                let v = INTERESTING_INTS[rng.random_range(0..INTERESTING_INTS.len())];
                let bytes = match (rng.random_range(0..4), rng.random::<bool>()) {
                    (0, _) => v.to_le_bytes().to_vec(),
                    (1, _) => v.to_be_bytes().to_vec(),
                    (_, true) => (v as u32).to_le_bytes().to_vec(),
                    (_, false) => (v as u32).to_be_bytes().to_vec(),
                };
                for (i, b) in bytes.into_iter().enumerate() {
                    if let Some(slot) = data.get_mut(at + i) {
                        *slot = b;
                    }
                }
            }
            8 if len > 0 => data[at] = b'0' + rng.random_range(0..10),
            _ if len > 0 => data[at] = rng.random(),
            _ => data.push(rng.random()),
        }
    }
}

// ---------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------

/// What a loader did over all its mutations.
#[derive(Default)]
struct Tally {
    runs: usize,
    ok: usize,
    largest: usize,
    peak: usize,
    /// The largest `peak / input bytes` seen (the decompressor's fixed
    /// state makes it large for tiny gzip inputs).
    worst_ratio: f64,
}

impl Tally {
    fn report(&self, name: &str) {
        eprintln!(
            "{name:<34} {:>6} mutations ({:>5} loaded, {:>6} refused); peak {:>8} B, \
             largest allocation {:>8} B, worst peak/input {:.1}",
            self.runs,
            self.ok,
            self.runs - self.ok,
            self.peak,
            self.largest,
            self.worst_ratio
        );
    }
}

/// Where a failing input is written for the report.
fn dump(name: &str, input: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("strata-mutation-{name}.bin"));
    let _ = std::fs::write(&path, input);
    path
}

/// Runs `load` on `input` (of effective size `size` for the allocation
/// bound), checking it neither panics nor allocates beyond the bound.
fn check<T>(
    tally: &mut Tally,
    name: &str,
    input: &[u8],
    size: usize,
    load: impl FnOnce() -> T,
) -> T {
    let (result, usage): (_, Usage) = measure(|| catch_unwind(AssertUnwindSafe(load)));
    let Ok(out) = result else {
        let path = dump(name, input);
        panic!(
            "{name}: the loader panicked on the input saved in {}",
            path.display()
        );
    };
    let allowed = SLACK + FACTOR * size;
    if usage.peak > allowed {
        let path = dump(name, input);
        panic!(
            "{name}: {usage:?} for an input of {size} bytes (allowed {allowed}); saved in {}",
            path.display()
        );
    }
    tally.runs += 1;
    tally.largest = tally.largest.max(usage.largest);
    tally.peak = tally.peak.max(usage.peak);
    tally.worst_ratio = tally
        .worst_ratio
        .max(usage.peak as f64 / size.max(1) as f64);
    out
}

/// The number of bytes `bytes` inflates to (if gzip; else its length),
/// capped at 64 MiB: the size the allocation bound is measured against.
fn effective_size(bytes: &[u8]) -> usize {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return bytes.len();
    }
    let mut sink = std::io::sink();
    let inflated = std::io::copy(&mut MultiGzDecoder::new(bytes).take(64 << 20), &mut sink)
        .unwrap_or(0) as usize;
    // A stream that fails part-way inflated at most the cap before.
    bytes.len().max(inflated)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn repo_file(path: &str) -> Vec<u8> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The real UCI digits CSV, inflated.
fn digits_csv() -> Vec<u8> {
    let mut csv = Vec::new();
    MultiGzDecoder::new(&repo_file("data/digits/digits.csv.gz")[..])
        .read_to_end(&mut csv)
        .unwrap();
    csv
}

/// How the mutated bytes reach a loader.
#[derive(Clone, Copy, Debug)]
enum Form {
    /// As they are.
    Plain,
    /// The original gzipped, then mutated: mostly broken streams.
    GzipMutated,
    /// Mutated, then gzipped: valid streams of hostile contents.
    MutatedGzip,
}

/// `count` mutants of `original` in `form`, each handed to `run`.
fn for_each_mutant(
    seed: u64,
    original: &[u8],
    form: Form,
    count: usize,
    mut run: impl FnMut(&[u8]),
) {
    let mut rng = seeded_rng(seed);
    let gz = gzip(original);
    let mut buf = Vec::new();
    for _ in 0..count {
        buf.clear();
        match form {
            Form::Plain => {
                buf.extend_from_slice(original);
                mutate(&mut rng, &mut buf);
            }
            Form::GzipMutated => {
                buf.extend_from_slice(&gz);
                mutate(&mut rng, &mut buf);
            }
            Form::MutatedGzip => {
                let mut m = original.to_vec();
                mutate(&mut rng, &mut m);
                buf = gzip(&m);
            }
        }
        run(&buf);
    }
}

// ---------------------------------------------------------------------------
// Weights
// ---------------------------------------------------------------------------

/// A layer at position 0 of a model, as in the reference files'
/// `nn.Sequential` keys (`0.weight`): built from core pieces, so this test
/// does not depend on the `sequential!` macro.
struct AtZero<L>(L);

impl<L: Layer> Layer for AtZero<L> {
    type Input = L::Input;
    type Output = L::Output;
    type Tape = L::Tape;

    fn kind(&self) -> &'static str {
        "Sequential"
    }

    fn forward_into(
        &self,
        input: &Batch<Self::Input>,
        output: &mut Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) {
        self.0.forward_into(input, output, ctx);
    }

    fn forward_taped(
        &mut self,
        input: Batch<Self::Input>,
        ctx: &mut Context<'_>,
    ) -> (Batch<Self::Output>, Self::Tape) {
        self.0.forward_taped(input, ctx)
    }

    fn backward(
        &mut self,
        tape: Self::Tape,
        grad_output: Batch<Self::Output>,
        ctx: &mut Context<'_>,
    ) -> Batch<Self::Input> {
        self.0.backward(tape, grad_output, ctx)
    }

    fn visit_tensors(&self, path: &mut VisitPath, v: &mut dyn Visitor) {
        path.child(0, &self.0, v);
    }

    fn visit_tensors_mut(&mut self, path: &mut VisitPath, v: &mut dyn VisitorMut) {
        path.child_mut(0, &mut self.0, v);
    }
}

/// `Input(8, 8, 3) => Conv2D(4, (3, 3), same)`, the reference case `p_conv_same`.
type ConvSame = AtZero<Conv2D<Shape3<U8, U8, U3>, U4, U3, U3, U1, U1, Same>>;

/// Every tensor of `layer`, as bits.
fn snapshot<L: Layer>(layer: &L) -> Vec<(String, Vec<u32>)> {
    layer
        .params()
        .into_iter()
        .map(|p| {
            let v = layer.export_param(&p.name).unwrap_or_default();
            (p.name, v.iter().map(|x| x.to_bits()).collect())
        })
        .collect()
}

/// Loads `count` mutants of `original` into `model` through `load`,
/// checking the model is unchanged after each error.
fn mutate_weights<M: Layer>(
    name: &str,
    (seed, count): (u64, usize),
    original: &[u8],
    model: &mut M,
    mut load: impl FnMut(&mut M, &[u8]) -> bool,
) -> Tally {
    // The unmutated file loads.
    assert!(load(model, original), "{name}: the original does not load");
    let mut tally = Tally::default();
    for_each_mutant(seed, original, Form::Plain, count, |bytes| {
        let before = snapshot(model);
        let loaded = check(&mut tally, name, bytes, bytes.len(), || load(model, bytes));
        if loaded {
            tally.ok += 1;
        } else if snapshot(model) != before {
            let path = dump(name, bytes);
            panic!(
                "{name}: a failed load changed the model; input saved in {}",
                path.display()
            );
        }
    });
    tally.report(name);
    tally
}

#[test]
fn mutated_weight_files_never_panic_allocate_little_and_leave_the_model_alone() {
    let keras = repo_file("tests/reference/p_conv_same.weights.safetensors");
    let mut conv = ConvSame::new_seeded(7);
    let t1 = mutate_weights(
        "weights bytes (Keras conv)",
        (SEED, MUTATIONS * 6 / 10),
        &keras,
        &mut conv,
        |m, b| m.load_safetensors_bytes(b).is_ok(),
    );

    let mut dense = Dense::<Shape1<U6>, U4>::new(true, &mut seeded_rng(2));
    let ours = dense.to_safetensors().unwrap();
    let t2 = mutate_weights(
        "weights bytes (strata dense)",
        (SEED + 1, MUTATIONS * 4 / 10),
        &ours,
        &mut dense,
        |m, b| m.load_safetensors_bytes(b).is_ok(),
    );

    // The same through a file, which is read by the bounded reader.
    let path = std::env::temp_dir().join(format!(
        "strata-mutation-{}.safetensors",
        std::process::id()
    ));
    let t3 = mutate_weights(
        "weights file (Keras conv)",
        (SEED + 2, FILE_MUTATIONS),
        &keras,
        &mut conv,
        |m, b| {
            std::fs::write(&path, b).unwrap();
            m.load_safetensors(&path).is_ok()
        },
    );
    let _ = std::fs::remove_file(&path);
    assert!(t1.runs + t2.runs >= MUTATIONS);
    assert!(t3.runs >= FILE_MUTATIONS);
    for t in [&t1, &t2, &t3] {
        // Mutations that keep a file valid (a flipped value byte) load.
        assert!(t.ok > 0 && t.ok < t.runs);
    }
}

/// `AtZero` of a freshly drawn layer.
trait NewSeeded {
    fn new_seeded(seed: u64) -> Self;
}

impl NewSeeded for ConvSame {
    fn new_seeded(seed: u64) -> Self {
        AtZero(Conv2D::new(true, &mut seeded_rng(seed)))
    }
}

// ---------------------------------------------------------------------------
// IDX and the digits CSV
// ---------------------------------------------------------------------------

/// The first `n` digits as IDX images (8x8, pixels 0..=16) and labels.
fn digits_idx(n: usize) -> (Vec<u8>, Vec<u8>) {
    let csv = digits_csv();
    let mut images = vec![0, 0, 8, 3];
    for d in [n as u32, 8, 8] {
        images.extend_from_slice(&d.to_be_bytes());
    }
    let mut labels = vec![0, 0, 8, 1];
    labels.extend_from_slice(&(n as u32).to_be_bytes());
    for line in csv.split(|&b| b == b'\n').filter(|l| !l.is_empty()).take(n) {
        let fields: Vec<u8> = std::str::from_utf8(line)
            .unwrap()
            .split(',')
            .map(|f| f.trim().parse().unwrap())
            .collect();
        images.extend_from_slice(&fields[..64]);
        labels.push(fields[64]);
    }
    (images, labels)
}

/// A loader of bytes: its name, and whether it accepted them.
type Loader<'a> = (&'a str, &'a dyn Fn(&[u8]) -> bool);

/// Runs `loader` on mutants of `original`, `count` in each `form`;
/// returns how many it ran.
fn mutate_loader(seed: u64, original: &[u8], loader: Loader<'_>, forms: &[(Form, usize)]) -> usize {
    let (name, load) = loader;
    assert!(load(original), "{name}: the original does not load");
    let mut runs = 0;
    for (i, &(form, count)) in forms.iter().enumerate() {
        let name = format!("{name} ({form:?})");
        let mut tally = Tally::default();
        for_each_mutant(seed + i as u64, original, form, count, |bytes| {
            let size = effective_size(bytes);
            if check(&mut tally, &name, bytes, size, || load(bytes)) {
                tally.ok += 1;
            }
        });
        tally.report(&name);
        runs += tally.runs;
    }
    runs
}

/// Most mutations on the plain bytes (every check of the format), the rest
/// on gzip streams: broken ones, and valid ones of hostile contents.
const ALL_FORMS: [(Form, usize); 3] = [
    (Form::Plain, MUTATIONS * 6 / 10),
    (Form::GzipMutated, MUTATIONS * 2 / 10),
    (Form::MutatedGzip, MUTATIONS * 2 / 10),
];

#[test]
fn mutated_idx_images_never_panic_and_allocate_little() {
    let (images, _) = digits_idx(24);
    let runs = mutate_loader(
        SEED + 10,
        &images,
        ("IDX images", &|b| {
            parse_idx_images(b)
                .and_then(|i| i.to_batch::<DigitsImage>())
                .is_ok()
        }),
        &ALL_FORMS,
    );
    assert!(runs >= MUTATIONS);
}

#[test]
fn mutated_idx_labels_never_panic_and_allocate_little() {
    let (_, labels) = digits_idx(256);
    let runs = mutate_loader(
        SEED + 20,
        &labels,
        ("IDX labels", &|b| parse_idx_labels(b).is_ok()),
        &ALL_FORMS,
    );
    assert!(runs >= MUTATIONS);
}

#[test]
fn mutated_idx_files_never_panic_and_allocate_little() {
    // Through the file reader, which streams plain files as well.
    let (images, labels) = digits_idx(16);
    let dir = std::env::temp_dir();
    let pid = std::process::id();
    let img_path = dir.join(format!("strata-mutation-{pid}-images-idx3-ubyte"));
    let lbl_path = dir.join(format!("strata-mutation-{pid}-labels-idx1-ubyte"));
    let images_runs = mutate_loader(
        SEED + 30,
        &images,
        ("IDX images file", &|b| {
            std::fs::write(&img_path, b).unwrap();
            read_idx_images(&img_path).is_ok()
        }),
        &[
            (Form::Plain, FILE_MUTATIONS / 2),
            (Form::MutatedGzip, FILE_MUTATIONS / 2),
        ],
    );
    let labels_runs = mutate_loader(
        SEED + 40,
        &labels,
        ("IDX labels file", &|b| {
            std::fs::write(&lbl_path, b).unwrap();
            read_idx_labels(&lbl_path).is_ok()
        }),
        &[(Form::Plain, FILE_MUTATIONS)],
    );
    let _ = std::fs::remove_file(&img_path);
    let _ = std::fs::remove_file(&lbl_path);
    assert!(images_runs >= FILE_MUTATIONS && labels_runs >= FILE_MUTATIONS);
}

#[test]
fn mutated_digits_csv_never_panics_and_allocates_little() {
    let csv = digits_csv();
    // The first 12 lines of the real file.
    let end = csv
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(11)
        .map_or(csv.len(), |(i, _)| i + 1);
    let runs = mutate_loader(
        SEED + 50,
        &csv[..end],
        ("digits CSV", &|b| parse_digits_csv(b).is_ok()),
        &ALL_FORMS,
    );
    assert!(runs >= MUTATIONS);
}
