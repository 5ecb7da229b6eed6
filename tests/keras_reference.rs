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
    let t = st.tensor(key).expect("tensor present");
    let values = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), values)
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
    let original = std::fs::read(dir.join(format!("{stem}.weights.safetensors"))).unwrap();
    let original = SafeTensors::deserialize(&original).unwrap();
    for key in original.names() {
        assert_eq!(
            tensor(&saved, key),
            tensor_of(&original, key),
            "{name}: {key} round trip"
        );
    }
    err
}

fn tensor_of(st: &SafeTensors<'_>, key: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(key).unwrap();
    let values = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), values)
}

/// `reference_case!(test_name, "case", chain...)`: the chain is both compiled
/// by `sequential!` and compared, as text, with the case's `macro` field.
macro_rules! reference_case {
    ($test:ident, $name:literal, $($chain:tt)*) => {
        #[test]
        fn $test() {
            run_case($name, stringify!($($chain)*), sequential![$($chain)*]);
        }
    };
}

reference_case!(conv_same, "p_conv_same", Input(8, 8, 3) => Conv2D(4, (3, 3), same));
reference_case!(conv_valid, "p_conv_valid", Input(9, 7, 2) => Conv2D(5, (3, 3)));
reference_case!(conv_stride2, "p_conv_stride2",
    Input(9, 9, 3) => Conv2D(4, (3, 3), same, strides = (2, 2)));
reference_case!(maxpool, "p_maxpool", Input(8, 8, 3) => MaxPool(2, 2));
reference_case!(dense, "p_dense",
    Input(4, 4, 2) => Flatten => Dense(6) => relu => Dense(3) => softmax);
reference_case!(seed_block, "p_seed_block",
    Input(16, 16, 3) => Conv2D(32, (3, 3), same) => relu => Conv2D(32, (3, 3)) => relu
    => MaxPool(2, 2) => Dropout(0.25));
reference_case!(cifar_cnn, "p_cifar_cnn",
    Input(32, 32, 3) => Conv2D(32, (3, 3), same) => relu => Conv2D(32, (3, 3)) => relu
    => MaxPool(2, 2) => Dropout(0.25) => Conv2D(64, (3, 3), same) => relu
    => Conv2D(64, (3, 3)) => relu => MaxPool(2, 2) => Dropout(0.25) => Flatten
    => Dense(512) => relu => Dropout(0.5) => Dense(10) => softmax);

reference_case!(global_average_pooling, "layers2/p2_gap",
    Input(7, 7, 3) => Conv2D(6, (3, 3)) => relu => GlobalAveragePooling2D => Dense(3) => softmax);
reference_case!(global_max_pooling, "layers2/p2_gmp",
    Input(7, 7, 3) => Conv2D(6, (3, 3), same) => GlobalMaxPooling2D => Dense(3) => softmax);

#[test]
fn every_case_in_cases_json_has_a_test() {
    let text = std::fs::read_to_string(reference_dir().join("cases.json")).unwrap();
    let cases: serde_json::Value = serde_json::from_str(&text).unwrap();
    let tested = [
        "p_conv_same",
        "p_conv_valid",
        "p_conv_stride2",
        "p_maxpool",
        "p_dense",
        "p_seed_block",
        "p_cifar_cnn",
    ];
    for c in cases.as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        assert!(tested.contains(&name), "reference case {name} has no test");
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
