//! The graph's structure, decoded back with the messages it was written
//! with (running it is `tests/onnx_export.rs`'s job, in a real engine).

use prost::Message;
use typenum::{U1, U2, U3, U4, U5, U6};

use super::proto::{DimensionValue, ModelProto, NodeProto};
use super::*;
use crate::activation::{Activation, Relu, Softmax};
use crate::batch::Batch;
use crate::init::seeded_rng;
use crate::layer::Context;
use crate::layers::{Conv2D, Dense, Flatten};
use crate::model::Model;
use crate::shape::{Same, Shape, Shape1, Shape3};

fn decode(bytes: &[u8]) -> ModelProto {
    ModelProto::decode(bytes).expect("the export decodes")
}

fn nodes(m: &ModelProto) -> &[NodeProto] {
    &m.graph.as_ref().unwrap().node
}

fn ops(m: &ModelProto) -> Vec<&str> {
    nodes(m).iter().map(|n| n.op_type.as_str()).collect()
}

fn dims(v: &proto::ValueInfoProto) -> Vec<String> {
    let t = v.r#type.as_ref().unwrap().tensor_type.as_ref().unwrap();
    t.shape
        .as_ref()
        .unwrap()
        .dim
        .iter()
        .map(|d| match d.value.as_ref().unwrap() {
            DimensionValue::DimValue(v) => v.to_string(),
            DimensionValue::DimParam(p) => p.clone(),
        })
        .collect()
}

type Img = Shape3<U5, U4, U3>;

#[test]
fn a_conv_has_nchw_inside_and_keras_same_padding_as_explicit_pads() {
    // 5 rows, kernel 2, stride 2 under 'same': 1 row of padding, at the
    // bottom; 4 columns: none.
    let conv: Conv2D<Img, U6, U2, U2, U2, U2, Same, Relu> = Conv2D::new(true, &mut seeded_rng(1));
    let m = decode(&conv.to_onnx().unwrap());
    assert_eq!(m.ir_version, IR_VERSION);
    assert_eq!(m.opset_import.len(), 1);
    assert_eq!(
        (m.opset_import[0].domain.as_str(), m.opset_import[0].version),
        ("", OPSET)
    );
    assert_eq!(ops(&m), ["Transpose", "Conv", "Relu", "Transpose"]);
    let g = m.graph.as_ref().unwrap();
    assert_eq!(dims(&g.input[0]), ["N", "5", "4", "3"]);
    assert_eq!(dims(&g.output[0]), ["N", "3", "2", "6"]);
    assert_eq!(g.output[0].name, OUTPUT);
    let conv = &nodes(&m)[1];
    let pads = conv.attribute.iter().find(|a| a.name == "pads").unwrap();
    assert_eq!(pads.ints, [0, 0, 1, 0]);
    let weight = g.initializer.iter().find(|t| t.name == "weight").unwrap();
    assert_eq!(weight.dims, [6, 3, 2, 2]);
    // Initializers are not graph inputs.
    assert_eq!(g.input.len(), 1);
}

#[test]
fn a_dense_after_flatten_reads_nhwc_columns() {
    type Flat = Shape1<typenum::U60>;
    let net = (
        Flatten::<Img>::new(),
        Dense::<Flat, U2, Softmax>::new(true, &mut seeded_rng(2)),
    );
    let mut g = OnnxGraph::new(Img::DIMS).unwrap();
    let x = g.to_nchw(INPUT);
    let y = g.layer(0, "Flatten", |g| net.0.export_onnx(g, &x)).unwrap();
    let y = g.layer(1, "Dense", |g| net.1.export_onnx(g, &y)).unwrap();
    assert_eq!(
        g.operators().into_iter().collect::<Vec<_>>(),
        ["Flatten", "Gemm", "Softmax", "Transpose"]
    );
    let graph = g.finish(&y, &[2]).unwrap();
    let names: Vec<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Transpose",
            "0:Flatten/Transpose",
            "0:Flatten/Flatten",
            "1:Dense/Gemm",
            "1:Dense/Softmax"
        ]
    );
    // The kernel goes in as held, [in, units], in strata's order.
    let w = graph
        .initializer
        .iter()
        .find(|t| t.name == "1.weight")
        .unwrap();
    assert_eq!(w.dims, [60, 2]);
    let raw: Vec<f32> = w
        .raw_data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(raw, net.1.kernel());
    assert_eq!(graph.node.last().unwrap().output, [OUTPUT]);
}

/// A layer that computes something ONNX has no word for.
struct Custom;

impl Layer for Custom {
    type Input = Shape1<U4>;
    type Output = Shape1<U4>;
    type Tape = ();
    fn kind(&self) -> &'static str {
        "Custom"
    }
    fn forward_into(
        &self,
        x: &Batch<Shape1<U4>>,
        out: &mut Batch<Shape1<U4>>,
        _: &mut Context<'_>,
    ) {
        out.copy_from(x);
    }
    fn forward_taped(
        &mut self,
        x: Batch<Shape1<U4>>,
        _: &mut Context<'_>,
    ) -> (Batch<Shape1<U4>>, ()) {
        (x, ())
    }
    fn backward(&mut self, _: (), g: Batch<Shape1<U4>>, _: &mut Context<'_>) -> Batch<Shape1<U4>> {
        g
    }
}

#[test]
fn a_layer_without_an_onnx_form_is_a_typed_error() {
    let err = Custom.to_onnx().unwrap_err();
    assert!(matches!(&err, ExportError::NoOnnxEquivalent { kind } if kind == "Custom"));
    assert!(err.to_string().contains("`Custom` has no ONNX equivalent"));
    let dir = std::env::temp_dir().join("strata-onnx-no-such-dir/x/y.onnx");
    let dense = Dense::<Shape1<U4>, U1>::new(true, &mut seeded_rng(0));
    assert!(matches!(dense.save_onnx(&dir), Err(ExportError::Io { .. })));
}

#[test]
fn an_identity_model_still_has_an_output_node_and_names_are_unique() {
    let relu = Activation::<Shape1<U4>, crate::Linear>::new();
    let m = decode(&relu.to_onnx().unwrap());
    assert_eq!(ops(&m), ["Identity"]);
    assert_eq!(nodes(&m)[0].input, [INPUT]);
    assert_eq!(nodes(&m)[0].output, [OUTPUT]);

    let mut g = OnnxGraph::new(&[4]).unwrap();
    let a = g.node("Relu", &[INPUT], &[]);
    let b = g.node("Relu", &[&a], &[]);
    assert_eq!((a.as_str(), b.as_str()), ("Relu", "Relu_2"));
    let w1 = g.initializer("w", &[2], &[1.0, 2.0]).unwrap();
    let w2 = g.initializer("w", &[2], &[1.0, 2.0]).unwrap();
    assert_ne!(w1, w2);
    assert_eq!(g.scalar(6.0).unwrap(), g.scalar(6.0).unwrap());
    assert!(matches!(
        g.initializer("bad", &[3], &[1.0]),
        Err(ExportError::TensorSize { len: 1, .. })
    ));
}
