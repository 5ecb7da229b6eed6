//! Every reference case made with Keras 3 (tests/reference and its second
//! set, tests/reference/layers2, see their READMEs) must match to 1e-4 max
//! abs error: the macro invocation is the one in `cases.json`, the weights
//! load from the case's PyTorch-convention file.

use std::path::PathBuf;

use safetensors::SafeTensors;
use strata::prelude::*;

fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference")
}

/// A case's folder and file stem: `p_dense` in the first set,
/// `layers2/p2_gap` in the second.
fn locate(name: &str) -> (PathBuf, &str) {
    match name.rsplit_once('/') {
        Some((set, stem)) => (reference_dir().join(set), stem),
        None => (reference_dir(), name),
    }
}

fn case(name: &str) -> serde_json::Value {
    let (dir, name) = locate(name);
    let text = std::fs::read_to_string(dir.join("cases.json")).expect("cases.json");
    let cases: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    cases
        .as_array()
        .expect("a list of cases")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"))
        .clone()
}

fn tensor(file: &[u8], key: &str) -> (Vec<usize>, Vec<f32>) {
    let st = SafeTensors::deserialize(file).expect("valid safetensors");
    let (shape, _, values) = tensor_of(&st, key);
    (shape, values)
}

/// Runs one case on `net`: load weights, predict the case's input, compare.
fn run_case<M: Model>(name: &str, dsl: &str, mut net: M) -> f32 {
    let case = case(name);
    let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    assert_eq!(
        squash(case["macro"].as_str().unwrap()),
        squash(dsl),
        "the test's chain is not the case's"
    );
    let expected_shape: Vec<usize> = case["output_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(M::Output::DIMS, expected_shape.as_slice());

    let (dir, stem) = locate(name);
    net.load_safetensors(dir.join(format!("{stem}.weights.safetensors")))
        .expect("reference weights load");
    let io = std::fs::read(dir.join(format!("{stem}.io.safetensors"))).unwrap();
    let (in_shape, input) = tensor(&io, "input");
    let (out_shape, expected) = tensor(&io, "output");
    let x = Batch::<M::Input>::from_vec(in_shape[0], input).expect("input of the model's shape");
    let y = net.predict(&x);
    assert_eq!(y.dims(), out_shape);
    let err = y
        .as_slice()
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("{name}: max abs error {err:e}");
    assert!(err <= 1e-4, "{name}: max abs error {err} > 1e-4");

    // Saving gives back the very tensors that were loaded.
    let saved = net.to_safetensors().expect("save");
    let saved = SafeTensors::deserialize(&saved).unwrap();
    let original = std::fs::read(dir.join(format!("{stem}.weights.safetensors"))).unwrap();
    let original = SafeTensors::deserialize(&original).unwrap();
    let (mut saved_keys, mut original_keys) = (saved.names(), original.names());
    saved_keys.sort_unstable();
    original_keys.sort_unstable();
    assert_eq!(saved_keys, original_keys, "{name}: saved keys");
    for key in original.names() {
        assert_eq!(
            tensor_of(&saved, key),
            tensor_of(&original, key),
            "{name}: {key} round trip"
        );
    }
    check_param_counts(&case, &net);
    err
}

/// A tensor's shape, dtype and values: F32, or I64 (BatchNormalization's
/// `num_batches_tracked`) as exact small integers.
fn tensor_of(st: &SafeTensors<'_>, key: &str) -> (Vec<usize>, safetensors::Dtype, Vec<f32>) {
    let t = st.tensor(key).unwrap();
    let values = match t.dtype() {
        safetensors::Dtype::I64 => t
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32)
            .collect(),
        _ => t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    };
    (t.shape().to_vec(), t.dtype(), values)
}

/// The summary's totals are the case's: every float (BatchNormalization's
/// moving statistics included) and the trainable ones.
fn check_param_counts<M: Model>(case: &serde_json::Value, net: &M) {
    let summary = net.summary();
    if let Some(total) = case["param_count"].as_u64() {
        assert_eq!(summary.total_params() as u64, total);
    }
    if let Some(trainable) = case["trainable_param_count"].as_u64() {
        assert_eq!(summary.trainable_params() as u64, trainable);
    }
}

/// `reference_case!(test_name, "case", engine_tolerance, chain...)`, called
/// for every case by `reference_chains!`: the chain is both compiled by
/// `sequential!` and compared, as text, with the case's `macro` field.
macro_rules! reference_case {
    // Against Keras every case gets 1e-4; the engine tolerance is the ONNX
    // test's.
    ($test:ident, $name:literal, $engine_tolerance:expr, $($chain:tt)*) => {
        #[test]
        fn $test() {
            run_case($name, stringify!($($chain)*), sequential![$($chain)*]);
        }
    };
}

include!("support/reference_chains.rs");
reference_chains!(reference_case);

#[test]
fn every_case_in_cases_json_has_a_test() {
    let text = std::fs::read_to_string(reference_dir().join("cases.json")).unwrap();
    let cases: serde_json::Value = serde_json::from_str(&text).unwrap();
    let source = include_str!("support/reference_chains.rs");
    for c in cases.as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let quoted = format!("\"{name}\"");
        assert!(
            source.contains(&quoted),
            "reference case {name} has no test"
        );
    }
}

#[test]
fn every_layers2_case_has_a_test() {
    let text = std::fs::read_to_string(reference_dir().join("layers2/cases.json")).unwrap();
    let cases: serde_json::Value = serde_json::from_str(&text).unwrap();
    let source = include_str!("support/reference_chains.rs");
    for c in cases.as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let quoted = format!("\"layers2/{name}\"");
        assert!(
            source.contains(&quoted),
            "reference case {name} has no test"
        );
    }
}

/// The seed block written without an input shape takes its shapes from the
/// input it is given, and still matches Keras.
#[test]
fn seed_block_without_input_shape_matches_keras() {
    let block = sequential![
        Conv2D(32, (3, 3), same) => relu => Conv2D(32, (3, 3)) => relu => MaxPool(2, 2) => Dropout(0.25)
    ]
    .built_for::<Shape3<U16, U16, U3>>();
    let dsl = "Input(16, 16, 3) => Conv2D(32, (3, 3), same) => relu => Conv2D(32, (3, 3)) => relu => MaxPool(2, 2) => Dropout(0.25)";
    run_case("p_seed_block", dsl, block);
}

/// A batch of no samples is valid input: the output has no samples either.
#[test]
fn an_empty_batch_gives_an_empty_output() {
    let net = sequential![
        Input(32, 32, 3) => Conv2D(32, (3, 3), same) => relu => Conv2D(32, (3, 3)) => relu
        => MaxPool(2, 2) => Conv2D(64, (3, 3), same) => AvgPool(2, 2) => Conv2D(8, (1, 1))
        => Flatten => Dense(512) => Dense(10) => softmax
    ];
    for threads in [1, 2] {
        let y = net.forward(
            &Batch::zeros(0),
            &mut strata::Context::inference().with_threads(threads),
        );
        assert_eq!(y.batch_size(), 0);
        assert!(y.as_slice().is_empty());
    }
}
