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
reference_case!(activations, "layers2/p2_acts",
    Input(5, 5, 4) => Conv2D(8, (3, 3), same) => relu6 => Conv2D(8, (1, 1)) => elu => selu
    => Conv2D(8, (1, 1)) => gelu => silu => Conv2D(8, (1, 1)) => swish => hard_sigmoid
    => Conv2D(8, (1, 1)) => hard_silu => hard_swish => Conv2D(8, (1, 1)) => softplus => softsign
    => Conv2D(8, (1, 1)) => mish => leaky_relu => Conv2D(8, (1, 1)) => LeakyReLU
    => LeakyReLU(negative_slope = 0.1) => Flatten => Dense(6) => log_softmax);
reference_case!(batch_normalization, "layers2/p2_bn",
    Input(8, 8, 3) => Conv2D(4, (3, 3), same, use_bias = false) => BatchNormalization => relu);
reference_case!(residual_identity, "layers2/p2_residual_identity",
    Input(8, 8, 4) => Residual({ Conv2D(4, (3, 3), same, use_bias = false) => BatchNormalization => relu
    => Conv2D(4, (3, 3), same, use_bias = false) => BatchNormalization }) => relu);
reference_case!(residual_projection, "layers2/p2_residual_projection",
    Input(8, 8, 4) => Residual({ Conv2D(8, (3, 3), same, strides = (2, 2), use_bias = false)
    => BatchNormalization => relu => Conv2D(8, (3, 3), same, use_bias = false) => BatchNormalization },
    shortcut = { Conv2D(8, (1, 1), strides = (2, 2), use_bias = false) => BatchNormalization }) => relu);
reference_case!(resnet20, "layers2/p2_resnet20",
    Input(32, 32, 3) => Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization => relu
    => Residual({ Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization => relu => Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization => relu => Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization => relu => Conv2D(16, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(32, (3, 3), same, strides = (2, 2), use_bias = false) => BatchNormalization => relu => Conv2D(32, (3, 3), same, use_bias = false) => BatchNormalization },
        shortcut = { Conv2D(32, (1, 1), strides = (2, 2), use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(32, (3, 3), same, use_bias = false) => BatchNormalization => relu => Conv2D(32, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(32, (3, 3), same, use_bias = false) => BatchNormalization => relu => Conv2D(32, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(64, (3, 3), same, strides = (2, 2), use_bias = false) => BatchNormalization => relu => Conv2D(64, (3, 3), same, use_bias = false) => BatchNormalization },
        shortcut = { Conv2D(64, (1, 1), strides = (2, 2), use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(64, (3, 3), same, use_bias = false) => BatchNormalization => relu => Conv2D(64, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    => Residual({ Conv2D(64, (3, 3), same, use_bias = false) => BatchNormalization => relu => Conv2D(64, (3, 3), same, use_bias = false) => BatchNormalization }) => relu
    => GlobalAveragePooling2D => Dense(10) => softmax);

reference_case!(mobilenet_v2_block, "layers2/p2_mbv2_block",
    Input(8, 8, 8) => Residual({ Conv2D(48, (1, 1), same, use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001) => relu6
    => DepthwiseConv2D((3, 3), padding = same, use_bias = false)
    => BatchNormalization(momentum = 0.999, epsilon = 0.001) => relu6
    => Conv2D(8, (1, 1), same, use_bias = false) => BatchNormalization(momentum = 0.999, epsilon = 0.001) }));
reference_case!(depthwise, "layers2/p2_depthwise",
    Input(9, 9, 3) => DepthwiseConv2D((3, 3), strides = 2, padding = same, depth_multiplier = 2) => relu6);
reference_case!(separable, "layers2/p2_separable",
    Input(8, 8, 4) => SeparableConv2D(6, (3, 3), padding = same) => relu);
reference_case!(dilated_grouped, "layers2/p2_dilated_grouped",
    Input(11, 11, 4) => Conv2D(8, (3, 3), dilation_rate = 2, groups = 2));
reference_case!(reshape, "layers2/p2_reshape",
    Input(6, 6, 3) => Conv2D(8, (3, 3), same) => relu => GlobalAveragePooling2D => Reshape((1, 1, 8))
    => Conv2D(4, (1, 1)) => Reshape((4,)) => softmax);
reference_case!(zero_padding_asymmetric, "layers2/p2_zeropad_asym",
    Input(8, 8, 3) => ZeroPadding2D(((0, 1), (0, 1))) => DepthwiseConv2D((3, 3), strides = 2)
    => BatchNormalization => relu6);

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

#[test]
fn every_layers2_case_has_a_test() {
    let text = std::fs::read_to_string(reference_dir().join("layers2/cases.json")).unwrap();
    let cases: serde_json::Value = serde_json::from_str(&text).unwrap();
    let source = include_str!("keras_reference.rs");
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
