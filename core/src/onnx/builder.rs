//! [`OnnxGraph`]: what a layer's `export_onnx` writes its nodes into.
//!
//! Inside the graph, images are NCHW (what every ONNX engine's Conv and
//! pooling take) and vectors `[N, L]`: the graph's entry transposes the
//! NHWC input once, its exit transposes a 3-D output back. A layer whose
//! meaning depends on the memory order (Flatten, Reshape) transposes to
//! NHWC itself, so that the values keep strata's order.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::proto::{
    AttributeProto, AttributeType, DataType, NodeProto, TensorProto, ValueInfoProto,
};
use super::{tensor_type, ExportError};
use crate::kernels::ConvGeometry;

/// An attribute's value: what a node's `(name, value)` pairs hold.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    /// One integer (`axis`, `group`).
    Int(i64),
    /// Integers (`kernel_shape`, `pads`, `perm`).
    Ints(Vec<i64>),
    /// One float (`alpha`, `epsilon`).
    Float(f32),
}

impl Attr {
    fn proto(&self, name: &str) -> AttributeProto {
        let mut a = AttributeProto {
            name: name.to_string(),
            ..Default::default()
        };
        match self {
            Attr::Int(i) => {
                a.i = *i;
                a.set_type(AttributeType::Int);
            }
            Attr::Ints(v) => {
                a.ints = v.clone();
                a.set_type(AttributeType::Ints);
            }
            Attr::Float(f) => {
                a.f = *f;
                a.set_type(AttributeType::Float);
            }
        }
        a
    }
}

/// One level of the layer path: the key segment its tensors are saved
/// under (`3`, `main`) and what a viewer shows (`3:Conv2D`).
struct Scope {
    key: String,
    label: String,
}

/// A graph being built: nodes in topological order (each appended after
/// the values it reads exist), initializers, and unique names.
///
/// Node names follow the layer path, `3:Residual/main/0:Conv2D/Conv`,
/// so a viewer shows the Keras chain; initializers are named by the
/// tensors' weight-file keys (`3.main.0.weight`).
pub struct OnnxGraph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    /// Every value name defined so far (graph input, initializers, node
    /// outputs) and every node name.
    taken: HashSet<String>,
    scopes: Vec<Scope>,
    /// Shared scalar constants, by their bits.
    scalars: HashMap<u32, String>,
    input: ValueInfoProto,
}

/// The name of the graph's input value.
pub const INPUT: &str = "input";
/// The name of the graph's output value.
pub const OUTPUT: &str = "output";

const TO_NCHW: [i64; 4] = [0, 3, 1, 2];
const TO_NHWC: [i64; 4] = [0, 2, 3, 1];

impl OnnxGraph {
    /// A graph whose input is `input`, float32 `["N", dims...]`.
    pub(crate) fn new(dims: &[usize]) -> Result<Self, ExportError> {
        let mut taken = HashSet::new();
        taken.insert(INPUT.to_string());
        taken.insert(OUTPUT.to_string());
        Ok(OnnxGraph {
            nodes: Vec::new(),
            initializers: Vec::new(),
            taken,
            scopes: Vec::new(),
            scalars: HashMap::new(),
            input: ValueInfoProto {
                name: INPUT.to_string(),
                r#type: Some(tensor_type(dims)?),
            },
        })
    }

    /// Runs `f` inside the scope of chain position `index`, a layer of
    /// kind `kind`: its nodes are named `index:kind/...`, its tensors
    /// `index.name`.
    pub fn layer<R>(&mut self, index: usize, kind: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        self.scoped(index.to_string(), format!("{index}:{kind}"), f)
    }

    /// Runs `f` inside the scope of a named part of a layer (`main`,
    /// `shortcut`, `depthwise`), whose tensors are keyed as
    /// [`VisitPath::part`](crate::tensor::VisitPath::part) keys them.
    pub fn part<R>(&mut self, name: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        self.scoped(name.to_string(), name.to_string(), f)
    }

    fn scoped<R>(&mut self, key: String, label: String, f: impl FnOnce(&mut Self) -> R) -> R {
        self.scopes.push(Scope { key, label });
        let result = f(self);
        self.scopes.pop();
        result
    }

    /// `name` if no value or node has it yet, else `name_2`, `name_3`...
    fn unique(&mut self, name: String) -> String {
        let mut candidate = name.clone();
        let mut n = 1;
        while self.taken.contains(&candidate) {
            n += 1;
            candidate = format!("{name}_{n}");
        }
        self.taken.insert(candidate.clone());
        candidate
    }

    fn path(&self, f: impl Fn(&Scope) -> &str, sep: &str) -> String {
        self.scopes.iter().map(f).collect::<Vec<_>>().join(sep)
    }

    /// Appends an `op` node reading `inputs`, with `attrs`; returns the
    /// name of its one output.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        let prefix = self.path(|s| &s.label, "/");
        let base = if prefix.is_empty() {
            op.to_string()
        } else {
            format!("{prefix}/{op}")
        };
        let name = self.unique(base);
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![name.clone()],
            name: name.clone(),
            op_type: op.to_string(),
            attribute: attrs.iter().map(|(n, a)| a.proto(n)).collect(),
            ..Default::default()
        });
        name
    }

    /// Adds a float32 constant of shape `dims` named after the current
    /// layer path and `local` (`3.weight`); returns its name.
    pub fn initializer(
        &mut self,
        local: &str,
        dims: &[usize],
        values: &[f32],
    ) -> Result<String, ExportError> {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(local, dims, values.len(), DataType::Float, raw)
    }

    /// Adds an int64 constant (a shape, pads) of one axis; returns its name.
    pub fn ints(&mut self, local: &str, values: &[i64]) -> Result<String, ExportError> {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(local, &[values.len()], values.len(), DataType::Int64, raw)
    }

    /// A float32 scalar constant, shared by every node that needs it.
    pub fn scalar(&mut self, value: f32) -> Result<String, ExportError> {
        if let Some(name) = self.scalars.get(&value.to_bits()) {
            return Ok(name.clone());
        }
        let saved = std::mem::take(&mut self.scopes);
        let name = self.initializer(&format!("const_{value}"), &[], &[value]);
        self.scopes = saved;
        let name = name?;
        self.scalars.insert(value.to_bits(), name.clone());
        Ok(name)
    }

    fn constant(
        &mut self,
        local: &str,
        dims: &[usize],
        len: usize,
        data_type: DataType,
        raw_data: Vec<u8>,
    ) -> Result<String, ExportError> {
        let prefix = self.path(|s| &s.key, ".");
        let base = if prefix.is_empty() {
            local.to_string()
        } else {
            format!("{prefix}.{local}")
        };
        let numel = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if numel != Some(len) {
            return Err(ExportError::TensorSize {
                name: base,
                dims: dims.to_vec(),
                len,
            });
        }
        let name = self.unique(base);
        let dims = dims.iter().map(|&d| dim(d)).collect::<Result<_, _>>()?;
        self.initializers.push(TensorProto {
            dims,
            data_type: data_type as i32,
            name: name.clone(),
            raw_data,
        });
        Ok(name)
    }

    /// `x` (NHWC) transposed to NCHW.
    pub fn to_nchw(&mut self, x: &str) -> String {
        self.node("Transpose", &[x], &[("perm", Attr::Ints(TO_NCHW.to_vec()))])
    }

    /// `x` (NCHW) transposed to NHWC.
    pub fn to_nhwc(&mut self, x: &str) -> String {
        self.node("Transpose", &[x], &[("perm", Attr::Ints(TO_NHWC.to_vec()))])
    }

    /// A `Conv` of `x` (NCHW) by `weight` (`[out, in/group, kh, kw]`)
    /// plus `bias`, with `g`'s strides, dilations and Keras's padding as
    /// explicit (possibly asymmetric) pads.
    pub fn conv(
        &mut self,
        x: &str,
        weight: &str,
        bias: Option<&str>,
        g: &ConvGeometry,
    ) -> Result<String, ExportError> {
        let mut inputs = vec![x, weight];
        inputs.extend(bias);
        let attrs = [
            ("kernel_shape", ints(&[g.k_h, g.k_w])?),
            ("strides", ints(&[g.s_h, g.s_w])?),
            ("dilations", ints(&[g.d_h, g.d_w])?),
            ("pads", ints(&window_pads(g))?),
            ("group", Attr::Int(dim(g.groups)?)),
        ];
        Ok(self.node("Conv", &inputs, &attrs))
    }

    /// A `MaxPool` or `AveragePool` (`op`) of `x` (NCHW) over `g`'s window,
    /// padding excluded from averages as Keras does.
    pub fn pool(&mut self, op: &str, x: &str, g: &ConvGeometry) -> Result<String, ExportError> {
        let mut attrs = vec![
            ("kernel_shape", ints(&[g.k_h, g.k_w])?),
            ("strides", ints(&[g.s_h, g.s_w])?),
            ("pads", ints(&window_pads(g))?),
        ];
        if op == "AveragePool" {
            attrs.push(("count_include_pad", Attr::Int(0)));
        }
        Ok(self.node(op, &[x], &attrs))
    }

    /// Finishes the graph: `last` becomes the value `output`, of float32
    /// `["N", dims...]`, transposed back to NHWC when it is an image.
    pub(crate) fn finish(
        mut self,
        last: &str,
        dims: &[usize],
    ) -> Result<super::proto::GraphProto, ExportError> {
        let last = if dims.len() == 3 {
            self.to_nhwc(last)
        } else {
            last.to_string()
        };
        let produced_here = self
            .nodes
            .last()
            .is_some_and(|n| n.output == [last.as_str()]);
        let read_elsewhere = self.nodes.iter().any(|n| n.input.contains(&last));
        if produced_here && !read_elsewhere {
            if let Some(node) = self.nodes.last_mut() {
                node.output = vec![OUTPUT.to_string()];
            }
        } else {
            self.node("Identity", &[&last], &[]);
            if let Some(node) = self.nodes.last_mut() {
                node.output = vec![OUTPUT.to_string()];
            }
        }
        Ok(super::proto::GraphProto {
            node: self.nodes,
            name: "strata".to_string(),
            initializer: self.initializers,
            input: vec![self.input],
            output: vec![ValueInfoProto {
                name: OUTPUT.to_string(),
                r#type: Some(tensor_type(dims)?),
            }],
            ..Default::default()
        })
    }

    /// The distinct operators used so far.
    pub fn operators(&self) -> BTreeSet<String> {
        self.nodes.iter().map(|n| n.op_type.clone()).collect()
    }
}

/// A size as ONNX's int64.
pub(crate) fn dim(d: usize) -> Result<i64, ExportError> {
    i64::try_from(d).map_err(|_| ExportError::TooLarge(d))
}

fn ints(values: &[usize]) -> Result<Attr, ExportError> {
    Ok(Attr::Ints(
        values.iter().map(|&d| dim(d)).collect::<Result<_, _>>()?,
    ))
}

/// ONNX's `pads` (`[top, left, bottom, right]`) of a window: Keras's
/// 'same' puts the odd row or column at the bottom or right; 'valid' has
/// none (a window that would overhang is dropped, as ONNX's floor does).
pub fn window_pads(g: &ConvGeometry) -> [usize; 4] {
    let after = |out: usize, s: usize, k: usize, d: usize, input: usize, before: usize| {
        let span = (out.saturating_sub(1)) * s + (k.saturating_sub(1)) * d + 1;
        span.saturating_sub(input + before)
    };
    [
        g.pad_top,
        g.pad_left,
        after(g.out_h, g.s_h, g.k_h, g.d_h, g.in_h, g.pad_top),
        after(g.out_w, g.s_w, g.k_w, g.d_w, g.in_w, g.pad_left),
    ]
}
