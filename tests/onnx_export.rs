//! Every Keras reference model (tests/reference and tests/reference/layers2),
//! exported to ONNX and run by a real engine (tract): its output for the
//! case's input must match strata's own prediction to 1e-5 max abs error
//! (1e-4 for ResNet-20, the deepest). A second test checks the ONNX
//! checker's rules on the same files, read with tract's own protobuf
//! schema.
//!
//! With `STRATA_ONNX_DIR` set, each case also writes `{case}.onnx` and
//! `{case}.check.safetensors` (`input`, `strata` and, for the Keras
//! cases, `keras`) there, for `scripts/check_onnx.py` (onnx's full checker
//! and ONNX Runtime).

use std::collections::HashSet;
use std::path::PathBuf;

use safetensors::SafeTensors;
use strata::onnx::OPSET;
use strata::prelude::*;
use tract_onnx::pb;
use tract_onnx::prelude::{
    tvec, Framework, InferenceModelExt, IntoRunnable, IntoTValue, TDim, Tensor as TractTensor,
};

fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference")
}

fn locate(name: &str) -> (PathBuf, &str) {
    match name.rsplit_once('/') {
        Some((set, stem)) => (reference_dir().join(set), stem),
        None => (reference_dir(), name),
    }
}

fn case_macro(name: &str) -> String {
    let (dir, stem) = locate(name);
    let text = std::fs::read_to_string(dir.join("cases.json")).expect("cases.json");
    let cases: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let case = cases
        .as_array()
        .expect("a list of cases")
        .iter()
        .find(|c| c["name"] == stem)
        .unwrap_or_else(|| panic!("no case {name}"));
    case["macro"].as_str().expect("a macro field").to_string()
}

fn tensor(st: &SafeTensors<'_>, key: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(key).expect("tensor in the io file");
    let values = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), values)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "output lengths");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Loads `bytes` in tract (symbolic batch), optimises it and runs `x`, a
/// batch of `shape`; returns the output's shape and values.
fn run_in_tract(bytes: &[u8], shape: &[usize], x: &[f32]) -> (Vec<usize>, Vec<f32>) {
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .expect("tract reads the file")
        .into_optimized()
        .expect("tract optimises the model")
        .into_runnable()
        .expect("tract plans the model");
    let input = TractTensor::from_shape(shape, x).expect("input tensor");
    let outputs = model
        .run(tvec!(input.into_tvalue()))
        .expect("tract runs the model");
    let y = &outputs[0];
    let values = y
        .to_plain_array_view::<f32>()
        .expect("float32 output")
        .iter()
        .copied()
        .collect();
    (y.shape().to_vec(), values)
}

/// Runs one case: strata's prediction and tract's on the exported file
/// must agree to `tolerance`. Returns the max abs error.
fn run_case<M: Model>(name: &str, dsl: &str, mut net: M, tolerance: f32) -> f32 {
    let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    assert_eq!(
        squash(&case_macro(name)),
        squash(dsl),
        "the test's chain is not the case's"
    );
    let (dir, stem) = locate(name);
    net.load_safetensors(dir.join(format!("{stem}.weights.safetensors")))
        .expect("reference weights load");
    let io = std::fs::read(dir.join(format!("{stem}.io.safetensors"))).unwrap();
    let io = SafeTensors::deserialize(&io).unwrap();
    let (in_shape, input) = tensor(&io, "input");
    let (_, keras) = tensor(&io, "output");
    let x = Batch::<M::Input>::from_vec(in_shape[0], input).expect("input of the model's shape");
    let ours = net.predict(&x);

    let bytes = net.to_onnx().expect("the model exports");
    let (shape, theirs) = run_in_tract(&bytes, &in_shape, x.as_slice());
    assert_eq!(shape, ours.dims(), "{name}: tract's output shape");
    let err = max_abs_diff(ours.as_slice(), &theirs);
    println!(
        "{name}: tract vs strata max abs error {err:e} ({} bytes)",
        bytes.len()
    );
    assert!(
        err <= tolerance,
        "{name}: max abs error {err} > {tolerance}"
    );
    check_rules(name, &bytes, M::Input::DIMS, M::Output::DIMS);
    write_for_script(stem, &bytes, &x, &ours, Some(&keras));
    err
}

/// With `STRATA_ONNX_DIR` set, `{stem}.onnx` and `{stem}.check.safetensors`
/// there for `scripts/check_onnx.py`.
fn write_for_script<I: Shape, O: Shape>(
    stem: &str,
    bytes: &[u8],
    x: &Batch<I>,
    ours: &Batch<O>,
    keras: Option<&[f32]>,
) {
    let Some(dir) = std::env::var_os("STRATA_ONNX_DIR").map(PathBuf::from) else {
        return;
    };
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{stem}.onnx")), bytes).unwrap();
    let raw = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    let (x_raw, ours_raw) = (raw(x.as_slice()), raw(ours.as_slice()));
    let keras_raw = keras.map(raw);
    fn view(shape: Vec<usize>, data: &[u8]) -> safetensors::tensor::TensorView<'_> {
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, data).unwrap()
    }
    let mut tensors = vec![
        ("input", view(x.dims(), &x_raw)),
        ("strata", view(ours.dims(), &ours_raw)),
    ];
    if let Some(keras) = &keras_raw {
        tensors.push(("keras", view(ours.dims(), keras)));
    }
    safetensors::serialize_to_file(
        tensors,
        None,
        &dir.join(format!("{stem}.check.safetensors")),
    )
    .unwrap();
}

/// The rules of ONNX's checker that a graph's structure can break, on the
/// file as tract's own schema decodes it: the opset declared, the graph
/// in SSA form and topologically sorted (every node input defined before
/// by a node, an initializer or the graph input), initializers not graph
/// inputs, the input and output declared as `["N", dims...]` float32, and
/// every shape inferred by tract with the batch left symbolic.
fn check_rules(name: &str, bytes: &[u8], input: &[usize], output: &[usize]) {
    let model = tract_onnx::onnx()
        .proto_model_for_read(&mut &bytes[..])
        .expect("tract decodes the protobuf");
    assert!(model.ir_version >= 7, "{name}: IR version");
    let opsets: Vec<(&str, i64)> = model
        .opset_import
        .iter()
        .map(|o| (o.domain.as_str(), o.version))
        .collect();
    assert_eq!(opsets, [("", OPSET)], "{name}: opset");
    const { assert!(OPSET >= 13, "Softmax over one axis needs opset 13") };
    let graph = model.graph.as_ref().expect("a graph");

    let mut defined: HashSet<&str> = HashSet::new();
    for t in &graph.initializer {
        assert!(
            defined.insert(&t.name),
            "{name}: initializer {} twice",
            t.name
        );
    }
    for i in &graph.input {
        assert!(
            defined.insert(&i.name),
            "{name}: graph input {} is also an initializer",
            i.name
        );
    }
    let mut node_names = HashSet::new();
    for node in &graph.node {
        assert!(
            node_names.insert(&node.name),
            "{name}: node {} twice",
            node.name
        );
        assert!(
            node.domain.is_empty(),
            "{name}: {} not standard",
            node.op_type
        );
        for i in &node.input {
            assert!(
                defined.contains(i.as_str()),
                "{name}: {} reads {i} before it is defined",
                node.name
            );
        }
        for o in &node.output {
            assert!(defined.insert(o), "{name}: {o} assigned twice");
        }
    }
    assert_eq!(graph.input.len(), 1, "{name}: one graph input");
    assert_eq!(declared(&graph.input[0]), ("input", dims_with_batch(input)));
    assert_eq!(graph.output.len(), 1, "{name}: one graph output");
    assert_eq!(
        declared(&graph.output[0]),
        ("output", dims_with_batch(output))
    );
    assert!(defined.contains("output"), "{name}: output is computed");

    let typed = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .expect("tract reads the file")
        .into_typed()
        .expect("tract infers every type and shape");
    let fact = typed.output_fact(0).expect("an output");
    let dims: Vec<&TDim> = fact.shape.iter().collect();
    assert_eq!(dims.len(), output.len() + 1, "{name}: output rank");
    assert_eq!(dims[0].to_string(), "N", "{name}: batch stays symbolic");
    for (d, want) in dims[1..].iter().zip(output) {
        assert_eq!(
            d.to_i64().ok(),
            Some(*want as i64),
            "{name}: inferred shape"
        );
    }
}

fn dims_with_batch(dims: &[usize]) -> Vec<String> {
    std::iter::once("N".to_string())
        .chain(dims.iter().map(usize::to_string))
        .collect()
}

/// A value's name and declared float32 shape.
fn declared(v: &pb::ValueInfoProto) -> (&str, Vec<String>) {
    use pb::tensor_shape_proto::dimension::Value;
    use pb::type_proto::Value as Type;
    let Some(Type::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        panic!("{} is not a tensor", v.name);
    };
    assert_eq!(t.elem_type, pb::tensor_proto::DataType::Float as i32);
    let dims = t
        .shape
        .as_ref()
        .expect("a shape")
        .dim
        .iter()
        .map(|d| match d.value.as_ref().expect("a size") {
            Value::DimValue(v) => v.to_string(),
            Value::DimParam(p) => p.clone(),
        })
        .collect();
    (&v.name, dims)
}

/// `onnx_case!(test, "case", tolerance, chain...)`, called for every case by
/// `reference_chains!`: the chain compiled by
/// `sequential!`, compared as text with the case's, exported and run.
macro_rules! onnx_case {
    ($test:ident, $name:literal, $tol:expr, $($chain:tt)*) => {
        #[test]
        fn $test() {
            run_case($name, stringify!($($chain)*), sequential![$($chain)*], $tol);
        }
    };
}

include!("support/reference_chains.rs");
reference_chains!(onnx_case);

/// Every reference case, of both sets, has a test here.
#[test]
fn every_reference_case_is_exported() {
    let source = include_str!("support/reference_chains.rs");
    for (set, prefix) in [("", ""), ("layers2", "layers2/")] {
        let path = reference_dir().join(set).join("cases.json");
        let cases: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for c in cases.as_array().unwrap() {
            let quoted = format!("\"{prefix}{}\"", c["name"].as_str().unwrap());
            assert!(
                source.contains(&quoted),
                "reference case {quoted} is not exported"
            );
        }
    }
}

/// The batch is symbolic: the same file runs batches of 1 and of 5, and
/// agrees with strata on both; the weights are in the file (only `input`
/// is fed).
#[test]
fn the_batch_size_is_free() {
    let mut net = sequential![
        Input(6, 5, 2) => Conv2D(3, (3, 3), same, strides = 2) => BatchNormalization => hard_silu
        => AvgPool(2, 2, padding = same) => ZeroPadding2D((1, 2)) => MaxPool(3, 3, padding = same)
        => Flatten => Dense(4, activation = tanh) => Dropout(0.5) => Dense(3, activation = gelu)
        => sigmoid => Reshape((1, 3, 1))
        => Dense(2) => Flatten => mish => log_softmax
    ];
    perturb_vectors(&mut net);
    let bytes = net.to_onnx().unwrap();
    check_rules("free batch", &bytes, &[6, 5, 2], &[6]);
    for n in [1, 5] {
        let x: Vec<f32> = (0..n * 60)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let x = Batch::<Shape3<U6, U5, U2>>::from_vec(n, x).unwrap();
        let ours = net.predict(&x);
        let (shape, theirs) = run_in_tract(&bytes, &[n, 6, 5, 2], x.as_slice());
        assert_eq!(shape, [n, 6]);
        let err = max_abs_diff(ours.as_slice(), &theirs);
        assert!(err <= 1e-5, "batch {n}: {err}");
        write_for_script(&format!("free_batch_{n}"), &bytes, &x, &ours, None);
    }
}

include!("../examples/models/mobilenet_v2.rs");

/// The whole of Keras's MobileNetV2 (52 BatchNormalizations, 10
/// residuals, stride-2 depthwise convolutions after asymmetric padding):
/// tract agrees with strata on a 224×224 image.
#[test]
fn mobilenet_v2_runs_in_tract() {
    let mut net = MobileNetV2::new();
    perturb_vectors(&mut net);
    let start = std::time::Instant::now();
    let bytes = net.to_onnx().expect("MobileNetV2 exports");
    println!(
        "MobileNetV2: exported in {:.0} ms, {} bytes",
        start.elapsed().as_secs_f64() * 1e3,
        bytes.len()
    );
    check_rules("MobileNetV2", &bytes, &[224, 224, 3], &[1000]);
    let pixels = (0..224 * 224 * 3).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0);
    let x = Batch::<Shape3<U224, U224, U3>>::from_vec(1, pixels.collect()).unwrap();
    let ours = net.predict(&x);
    let (shape, theirs) = run_in_tract(&bytes, &[1, 224, 224, 3], x.as_slice());
    assert_eq!(shape, [1, 1000]);
    let err = max_abs_diff(ours.as_slice(), &theirs);
    println!("MobileNetV2: tract vs strata max abs error {err:e}");
    assert!(err <= 1e-5, "MobileNetV2: max abs error {err}");
    write_for_script("mobilenet_v2", &bytes, &x, &ours, None);
    let top = ours.as_slice().iter().copied().fold(0.0, f32::max);
    assert!(top > 0.002, "a uniform output would test little: top {top}");
}

/// Gives every vector (BatchNormalization's gamma, beta and statistics,
/// biases) values away from its initial ones, so that every one of them
/// shows in the output: Keras's initial statistics (0 and 1) and betas
/// (0) would hide a misplaced one.
fn perturb_vectors<M: Model>(net: &mut M) {
    for (i, p) in net.params().into_iter().enumerate() {
        if p.shape.len() != 1 || p.dtype != strata::tensor::Dtype::F32 {
            continue;
        }
        let wave = |j: usize| (((i * 131 + j * 17) % 97) as f32 / 97.0) - 0.5;
        let values: Vec<f32> = (0..p.numel())
            .map(|j| match p.name.rsplit('.').next() {
                Some("running_var") => 1.0 + wave(j),
                Some("weight") => 1.0 + 0.5 * wave(j),
                _ => 0.4 * wave(j),
            })
            .collect();
        assert!(net.import_param(&p.name, &values), "{}", p.name);
    }
}

/// Softmax and log-softmax over an image's channels (axis 1 of NCHW, not
/// ONNX's last axis), and a Dense on an image (a 1×1 Conv), with an image
/// output transposed back to NHWC.
#[test]
fn image_outputs_normalise_over_the_channels() {
    let mut net = sequential![
        Input(3, 4, 5) => Conv2D(6, (1, 1)) => softmax => Dense(3) => log_softmax
    ];
    perturb_vectors(&mut net);
    let bytes = net.to_onnx().unwrap();
    check_rules("image softmax", &bytes, &[3, 4, 5], &[3, 4, 3]);
    let x: Vec<f32> = (0..2 * 60)
        .map(|i| ((i * 29 % 31) as f32 - 15.0) / 4.0)
        .collect();
    let x = Batch::<Shape3<U3, U4, U5>>::from_vec(2, x).unwrap();
    let ours = net.predict(&x);
    let (shape, theirs) = run_in_tract(&bytes, &[2, 3, 4, 5], x.as_slice());
    assert_eq!(shape, [2, 3, 4, 3]);
    let err = max_abs_diff(ours.as_slice(), &theirs);
    assert!(err <= 1e-5, "{err}");
    write_for_script("image_softmax", &bytes, &x, &ours, None);
}

/// Node names follow the chain, so a viewer shows the Keras layers.
#[test]
fn node_names_follow_the_chain() {
    let net = sequential![
        Input(8, 8, 4) => Residual({ Conv2D(4, (3, 3), same) => relu }) => GlobalMaxPooling2D
        => Dense(2)
    ];
    let bytes = net.to_onnx().unwrap();
    let model = tract_onnx::onnx()
        .proto_model_for_read(&mut &bytes[..])
        .unwrap();
    let graph = model.graph.unwrap();
    let names: Vec<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "input/Transpose",
            "0:Residual/main/0:Conv2D/Conv",
            "0:Residual/main/1:Activation/Relu",
            "0:Residual/Add",
            "1:GlobalMaxPooling2D/GlobalMaxPool",
            "1:GlobalMaxPooling2D/Flatten",
            "2:Dense/Gemm",
        ]
    );
    let mut keys: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["0.main.0.bias", "0.main.0.weight", "2.bias", "2.weight"]
    );
}
