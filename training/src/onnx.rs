//! ONNX export of the trained nets, written by this crate (no protoc, no Python).
//!
//! [`proto`] holds the few `onnx.proto` messages needed, derived with `prost` with the field
//! numbers of onnx.proto (proto2: scalars optional, repeated scalars unpacked).
//!
//! Two files, to the contract in [`stego::contract`]:
//!
//! * `hide.onnx`: prep + hide nets, inputs `cover`, `secret`, output `container`;
//! * `reveal.onnx`: reveal net, input `container`, output `revealed`.
//!
//! All tensors `float32 [N, 3, H, W]` with symbolic `N`, `H`, `W`; opset 17 (IR version 8);
//! nodes `Conv` (pads `[1,1,1,1]`, `[1,1,2,2]`, `[2,2,2,2]` for the 3×3, 4×4, 5×5 branches;
//! `[0,0,0,0]` for the 1×1 output layer), `Concat`, `Relu` and `Sigmoid`; the weights are
//! initializers named as in the checkpoint (see [`crate::nets`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::Tensor;
use prost::Message;
use stego::Variant;
use stego::contract::{self, Role, meta};

use crate::nets::{self, VariantNets};

/// The protobuf messages of onnx.proto used here.
pub mod proto {
    /// `onnx.ModelProto`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(int64, optional, tag = "1")]
        pub ir_version: Option<i64>,
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetIdProto>,
        #[prost(string, optional, tag = "2")]
        pub producer_name: Option<String>,
        #[prost(string, optional, tag = "3")]
        pub producer_version: Option<String>,
        #[prost(string, optional, tag = "4")]
        pub domain: Option<String>,
        #[prost(int64, optional, tag = "5")]
        pub model_version: Option<i64>,
        #[prost(string, optional, tag = "6")]
        pub doc_string: Option<String>,
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
        #[prost(message, repeated, tag = "14")]
        pub metadata_props: Vec<StringStringEntryProto>,
    }

    /// `onnx.OperatorSetIdProto`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetIdProto {
        #[prost(string, optional, tag = "1")]
        pub domain: Option<String>,
        #[prost(int64, optional, tag = "2")]
        pub version: Option<i64>,
    }

    /// `onnx.StringStringEntryProto`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StringStringEntryProto {
        #[prost(string, optional, tag = "1")]
        pub key: Option<String>,
        #[prost(string, optional, tag = "2")]
        pub value: Option<String>,
    }

    /// `onnx.GraphProto`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        #[prost(string, optional, tag = "2")]
        pub name: Option<String>,
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
        #[prost(string, optional, tag = "10")]
        pub doc_string: Option<String>,
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfoProto>,
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfoProto>,
        #[prost(message, repeated, tag = "13")]
        pub value_info: Vec<ValueInfoProto>,
    }

    /// `onnx.NodeProto`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        #[prost(string, optional, tag = "3")]
        pub name: Option<String>,
        #[prost(string, optional, tag = "4")]
        pub op_type: Option<String>,
        #[prost(string, optional, tag = "7")]
        pub domain: Option<String>,
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
        #[prost(string, optional, tag = "6")]
        pub doc_string: Option<String>,
    }

    /// `onnx.AttributeProto.AttributeType` values used here.
    pub mod attribute_type {
        pub const FLOAT: i32 = 1;
        pub const INT: i32 = 2;
        pub const STRING: i32 = 3;
        pub const INTS: i32 = 7;
    }

    /// `onnx.AttributeProto`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(int32, optional, tag = "20")]
        pub r#type: Option<i32>,
        #[prost(float, optional, tag = "2")]
        pub f: Option<f32>,
        #[prost(int64, optional, tag = "3")]
        pub i: Option<i64>,
        #[prost(bytes = "vec", optional, tag = "4")]
        pub s: Option<Vec<u8>>,
        #[prost(float, repeated, packed = "false", tag = "7")]
        pub floats: Vec<f32>,
        #[prost(int64, repeated, packed = "false", tag = "8")]
        pub ints: Vec<i64>,
    }

    /// `onnx.TensorProto.DataType.FLOAT`
    pub const DATA_TYPE_FLOAT: i32 = 1;
    /// `onnx.TensorProto.DataType.INT64`
    pub const DATA_TYPE_INT64: i32 = 7;
    /// `onnx.TensorProto.DataType.FLOAT16`
    pub const DATA_TYPE_FLOAT16: i32 = 10;

    /// `onnx.TensorProto`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int64, repeated, packed = "false", tag = "1")]
        pub dims: Vec<i64>,
        #[prost(int32, optional, tag = "2")]
        pub data_type: Option<i32>,
        #[prost(float, repeated, tag = "4")]
        pub float_data: Vec<f32>,
        #[prost(string, optional, tag = "8")]
        pub name: Option<String>,
        #[prost(bytes = "vec", optional, tag = "9")]
        pub raw_data: Option<Vec<u8>>,
        #[prost(string, optional, tag = "12")]
        pub doc_string: Option<String>,
    }

    /// `onnx.ValueInfoProto`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfoProto {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<TypeProto>,
        #[prost(string, optional, tag = "3")]
        pub doc_string: Option<String>,
    }

    /// `onnx.TypeProto` (only the `tensor_type` member of its `value` oneof).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProto {
        #[prost(message, optional, tag = "1")]
        pub tensor_type: Option<TypeProtoTensor>,
        #[prost(string, optional, tag = "6")]
        pub denotation: Option<String>,
    }

    /// `onnx.TypeProto.Tensor`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProtoTensor {
        #[prost(int32, optional, tag = "1")]
        pub elem_type: Option<i32>,
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
    }

    /// `onnx.TensorShapeProto`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        #[prost(message, repeated, tag = "1")]
        pub dim: Vec<Dimension>,
    }

    /// `onnx.TensorShapeProto.Dimension`; set exactly one of `dim_value` and `dim_param`
    /// (they form a oneof in onnx.proto).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        #[prost(int64, optional, tag = "1")]
        pub dim_value: Option<i64>,
        #[prost(string, optional, tag = "2")]
        pub dim_param: Option<String>,
        #[prost(string, optional, tag = "3")]
        pub denotation: Option<String>,
    }
}

use proto::*;

/// ONNX opset the files declare.
pub const OPSET: i64 = 17;
/// IR version written (ONNX 1.12+ / opset 17 era).
pub const IR_VERSION: i64 = 8;
/// Symbolic dimension names.
pub const DIM_PARAMS: [&str; 4] = ["N", "C", "H", "W"];

/// Free-text metadata stored with the models (the contract keys are filled in here).
#[derive(Debug, Clone, Default)]
pub struct ExportInfo {
    /// [`meta::DATA`]: what the nets were trained on.
    pub data: String,
    /// [`meta::TRAINING`]: steps, batch, crop, β, … (`key=value; …`).
    pub training: String,
    /// [`meta::METRICS`]: validation metrics at export (`key=value; …`).
    pub metrics: String,
    /// How the hide net forms the container.
    pub hide_output: nets::HideOutput,
    /// Which nets the weights are (`paper` or `fast`; see [`nets::VariantNets`]).
    pub arch: Variant,
    /// The shapes of fast nets (context branches, slim).
    pub layout: nets::FastLayout,
    /// Store the weights and run the convolutions in float16 (inputs, outputs, the residual
    /// and the sigmoids stay float32): for GPUs, whose tensor cores run float16 many times
    /// faster. Files get `-fp16` before `.onnx`.
    pub fp16: bool,
    /// Trained to reveal from simulated recordings (`--robust`): the `robust` variant's files.
    pub robust: bool,
}

impl ExportInfo {
    /// The runtime variant these models are.
    pub fn variant(&self) -> Variant {
        self.arch.trained(self.robust)
    }

    /// Whether the nets write the digit code of [`nets::HideOutput::Modular`].
    pub fn modular(&self) -> bool {
        self.hide_output == nets::HideOutput::Modular
    }
}

/// Paths of the two written files.
#[derive(Debug, Clone)]
pub struct Exported {
    pub hide: PathBuf,
    pub reveal: PathBuf,
}

fn image_value_info(name: &str) -> ValueInfoProto {
    let dim = |i: usize| {
        if i == 1 {
            Dimension { dim_value: Some(contract::CHANNELS as i64), ..Default::default() }
        } else {
            Dimension { dim_param: Some(DIM_PARAMS[i].to_string()), ..Default::default() }
        }
    };
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: Some(DATA_TYPE_FLOAT),
                shape: Some(TensorShapeProto { dim: (0..4).map(dim).collect() }),
            }),
            denotation: None,
        }),
        doc_string: Some("float32 NCHW RGB in [0, 1]".to_string()),
    }
}

pub(crate) fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INTS),
        ints: v.to_vec(),
        ..Default::default()
    }
}

pub(crate) fn string_attr(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::STRING),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

pub(crate) fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: Some(name.into()), r#type: Some(attribute_type::INT), i: Some(v), ..Default::default() }
}

fn tensor_proto(name: &str, t: &Tensor, fp16: bool) -> Result<TensorProto> {
    let dims = t.dims().iter().map(|&d| d as i64).collect();
    let values = t.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
    let mut raw = Vec::with_capacity(values.len() * 4);
    for v in values {
        if fp16 {
            raw.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
        } else {
            raw.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok(TensorProto {
        dims,
        data_type: Some(if fp16 { DATA_TYPE_FLOAT16 } else { DATA_TYPE_FLOAT }),
        name: Some(name.to_string()),
        raw_data: Some(raw),
        ..Default::default()
    })
}

/// Builds a graph node by node, pulling weights from the checkpoint map.
pub(crate) struct GraphBuilder<'a> {
    weights: &'a HashMap<String, Tensor>,
    /// Weights stored as float16.
    fp16: bool,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    counter: usize,
}

impl<'a> GraphBuilder<'a> {
    fn new(weights: &'a HashMap<String, Tensor>, fp16: bool) -> Self {
        Self { weights, fp16, nodes: Vec::new(), initializers: Vec::new(), counter: 0 }
    }

    /// `x` as the network's working type: a `Cast` to float16 in an fp16 graph.
    pub(crate) fn cast_to_work(&mut self, x: &str) -> String {
        if self.fp16 { self.node("Cast", &[x], None, vec![int_attr("to", DATA_TYPE_FLOAT16 as i64)]) } else { x.to_string() }
    }

    /// `x` back to float32 (a `Cast` in an fp16 graph).
    pub(crate) fn cast_to_f32(&mut self, x: &str) -> String {
        if self.fp16 { self.node("Cast", &[x], None, vec![int_attr("to", DATA_TYPE_FLOAT as i64)]) } else { x.to_string() }
    }

    pub(crate) fn node(&mut self, op: &str, inputs: &[&str], output: Option<&str>, attrs: Vec<AttributeProto>) -> String {
        self.counter += 1;
        let name = format!("{}_{}", op.to_lowercase(), self.counter);
        let out = output.map(str::to_string).unwrap_or_else(|| format!("{name}_out"));
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: Some(name),
            op_type: Some(op.to_string()),
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    /// A scalar `f32` initializer (broadcast by the elementwise ops).
    pub(crate) fn scalar(&mut self, name: &str, v: f32) {
        self.initializers.push(TensorProto {
            dims: vec![],
            data_type: Some(DATA_TYPE_FLOAT),
            name: Some(name.to_string()),
            raw_data: Some(v.to_le_bytes().to_vec()),
            ..Default::default()
        });
    }

    /// A float32 vector constant, unless the graph has it already.
    pub(crate) fn floats_once(&mut self, name: &str, v: &[f32]) {
        self.vector_once(name, DATA_TYPE_FLOAT, v.len(), v.iter().flat_map(|x| x.to_le_bytes()).collect());
    }

    /// An int64 vector constant, unless the graph has it already.
    pub(crate) fn int64s_once(&mut self, name: &str, v: &[i64]) {
        self.vector_once(name, DATA_TYPE_INT64, v.len(), v.iter().flat_map(|x| x.to_le_bytes()).collect());
    }

    /// A vector constant of `len` elements of `data_type` (little-endian `raw`), unless the
    /// graph has it already.
    fn vector_once(&mut self, name: &str, data_type: i32, len: usize, raw: Vec<u8>) {
        if self.has_initializer(name) {
            return;
        }
        self.initializers.push(TensorProto {
            dims: vec![len as i64],
            data_type: Some(data_type),
            name: Some(name.to_string()),
            raw_data: Some(raw),
            ..Default::default()
        });
    }

    /// [`GraphBuilder::scalar`] unless the graph has it already.
    pub(crate) fn scalar_once(&mut self, name: &str, v: f32) {
        if !self.has_initializer(name) {
            self.scalar(name, v);
        }
    }

    /// Whether the graph already has the initializer `name`.
    pub(crate) fn has_initializer(&self, name: &str) -> bool {
        self.initializers.iter().any(|t| t.name.as_deref() == Some(name))
    }

    /// The checkpoint tensor `name`, added to the initializers.
    pub(crate) fn weight(&mut self, name: &str) -> Result<&Tensor> {
        let t = self.weights.get(name).with_context(|| format!("checkpoint lacks tensor {name}"))?;
        self.initializers.push(tensor_proto(name, t, self.fp16)?);
        Ok(t)
    }

    /// Whether the checkpoint has tensor `name` (without adding it to the graph).
    pub(crate) fn has_weight(&self, name: &str) -> bool {
        self.weights.contains_key(name)
    }

    /// The shape of checkpoint tensor `name`, if it has one (without adding it to the graph).
    pub(crate) fn weight_dims(&self, name: &str) -> Option<&[usize]> {
        self.weights.get(name).map(|t| t.dims())
    }

    fn finish(self, name: &str, inputs: &[&str], output: &str) -> GraphProto {
        GraphProto {
            node: self.nodes,
            name: Some(name.to_string()),
            initializer: self.initializers,
            input: inputs.iter().map(|n| image_value_info(n)).collect(),
            output: vec![image_value_info(output)],
            ..Default::default()
        }
    }
}

fn model(role: Role, graph: GraphProto, info: &ExportInfo) -> ModelProto {
    let entries = [
        (meta::CONTRACT, contract::CONTRACT_VERSION.to_string()),
        (meta::ROLE, role.as_str().to_string()),
        (meta::VARIANT, match (info.arch.nets(), info.hide_output) {
            _ if info.robust => info.variant().as_str().to_string(),
            (Variant::Paper, nets::HideOutput::Sigmoid) => "paper".to_string(),
            (Variant::Paper, nets::HideOutput::Residual) => "paper-residual".to_string(),
            (_, nets::HideOutput::Residual) => "fast".to_string(),
            (_, nets::HideOutput::Sigmoid) => "fast-sigmoid".to_string(),
            (_, nets::HideOutput::Modular) => "fast-modular".to_string(),
        }),
        (meta::MACS_PER_PIXEL, {
            let (h, r) = info.arch.macs_per_pixel(info.layout, info.modular());
            match role {
                Role::Hide => h,
                Role::Reveal => r,
            }
        }.to_string()),
        (meta::ARCHITECTURE, info.arch.architecture(info.layout, info.modular())),
        (meta::DATA, info.data.clone()),
        (meta::TRAINING, info.training.clone()),
        (meta::METRICS, info.metrics.clone()),
        (meta::SIZE_MULTIPLE, info.arch.size_multiple(info.layout).to_string()),
        (meta::PRECISION, if info.fp16 { "fp16" } else { "fp32" }.to_string()),
    ];
    let doc = match role {
        Role::Hide => "Deep steganography (Baluja 2017), prep + hide nets: (cover, secret) -> container",
        Role::Reveal => "Deep steganography (Baluja 2017), reveal net: container -> revealed secret",
    };
    ModelProto {
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(doc.into()),
        ..model_proto(graph, &entries)
    }
}

/// A model of `graph` with the metadata `entries`, in the opset and IR version of the exports.
fn model_proto(graph: GraphProto, entries: &[(&str, String)]) -> ModelProto {
    ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) }],
        producer_name: Some("stego-training".into()),
        producer_version: None,
        domain: Some("stego".into()),
        model_version: Some(1),
        doc_string: None,
        graph: Some(graph),
        metadata_props: entries
            .iter()
            .map(|(k, v)| StringStringEntryProto { key: Some(k.to_string()), value: Some(v.clone()) })
            .collect(),
    }
}

/// The variant named in the metadata of [`linear_test_models`].
pub const TEST_STUB_VARIANT: &str = "test-stub";

/// Two tiny models that follow the model contract (input and output names, NCHW float32 in
/// [0, 1], symbolic N, H, W, metadata of variant [`TEST_STUB_VARIANT`]) with exact arithmetic
/// instead of trained nets, for tests that check pixel values:
///
/// * hide: `container = 0.75·cover + 0.25·secret`;
/// * reveal: `revealed = 1 − container`.
pub fn linear_test_models() -> [ModelProto; 2] {
    let no_weights = HashMap::new();
    let stub = |role: Role, g: GraphBuilder| {
        let graph = g.finish(role.as_str(), role.inputs(), role.output());
        let entries = [
            (meta::ROLE, role.as_str().to_string()),
            (meta::CONTRACT, contract::CONTRACT_VERSION.to_string()),
            (meta::VARIANT, TEST_STUB_VARIANT.to_string()),
        ];
        model_proto(graph, &entries)
    };
    let mut g = GraphBuilder::new(&no_weights, false);
    g.scalar("a", 0.75);
    g.scalar("b", 0.25);
    let ca = g.node("Mul", &[contract::HIDE_COVER, "a"], None, vec![]);
    let sb = g.node("Mul", &[contract::HIDE_SECRET, "b"], None, vec![]);
    g.node("Add", &[&ca, &sb], Some(contract::HIDE_CONTAINER), vec![]);
    let hide = stub(Role::Hide, g);
    let mut g = GraphBuilder::new(&no_weights, false);
    g.scalar("one", 1.0);
    g.node("Sub", &["one", contract::REVEAL_CONTAINER], Some(contract::REVEAL_REVEALED), vec![]);
    [hide, stub(Role::Reveal, g)]
}

/// Writes [`linear_test_models`] into `dir` as `hide.onnx` and `reveal.onnx`.
pub fn write_linear_test_models(dir: &Path) -> Result<Exported> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let [hide_m, reveal_m] = linear_test_models();
    let (hide, reveal) = (dir.join(contract::HIDE_FILE), dir.join(contract::REVEAL_FILE));
    write_model(&hide_m, &hide)?;
    write_model(&reveal_m, &reveal)?;
    Ok(Exported { hide, reveal })
}

/// `hide.onnx` as a message: prep + hide nets.
pub fn hide_model(weights: &HashMap<String, Tensor>, info: &ExportInfo) -> Result<ModelProto> {
    let mut g = GraphBuilder::new(weights, info.fp16);
    let cover = g.cast_to_work(contract::HIDE_COVER);
    let secret = g.cast_to_work(contract::HIDE_SECRET);
    if info.modular() && info.arch.nets() == Variant::Fast {
        nets::fast::onnx_hide_modular(&mut g, &cover, &secret, contract::HIDE_COVER, contract::HIDE_CONTAINER)?;
    } else {
        let z = match info.arch.nets() {
            Variant::Paper => nets::paper::onnx_hide(&mut g, &cover, &secret)?,
            _ => nets::fast::onnx_hide(&mut g, &cover, &secret)?,
        };
        let z = g.cast_to_f32(&z);
        // (Refuses a modular output for the paper nets.)
        g.hide_output(info.hide_output, contract::HIDE_COVER, &z, contract::HIDE_CONTAINER)?;
    }
    let graph = g.finish("stego_hide", Role::Hide.inputs(), Role::Hide.output());
    Ok(model(Role::Hide, graph, info))
}

/// `reveal.onnx` as a message: reveal net.
pub fn reveal_model(weights: &HashMap<String, Tensor>, info: &ExportInfo) -> Result<ModelProto> {
    let mut g = GraphBuilder::new(weights, info.fp16);
    let z = if info.modular() {
        if info.arch.nets() == Variant::Paper {
            anyhow::bail!("the modular output is the fast nets' digit code; the paper nets have none");
        }
        nets::fast::onnx_reveal_modular(&mut g, contract::REVEAL_CONTAINER)?
    } else {
        let container = g.cast_to_work(contract::REVEAL_CONTAINER);
        match info.arch.nets() {
            Variant::Paper => nets::paper::onnx_reveal(&mut g, &container)?,
            _ => nets::fast::onnx_reveal(&mut g, &container)?,
        }
    };
    let logits = g.cast_to_f32(&z);
    g.node("Sigmoid", &[&logits], Some(contract::REVEAL_REVEALED), vec![]);
    let graph = g.finish("stego_reveal", Role::Reveal.inputs(), Role::Reveal.output());
    Ok(model(Role::Reveal, graph, info))
}

fn write_model(m: &ModelProto, path: &Path) -> Result<()> {
    // Atomically, so readers never see half a file.
    let bytes = m.encode_to_vec();
    stego::fsio::write_output(path, |w| std::io::Write::write_all(w, &bytes)).with_context(|| format!("writing {}", path.display()))
}

/// The files [`export`] writes into `dir`: hide, reveal.
pub fn export_paths(dir: &Path, variant: Variant, fp16: bool) -> [PathBuf; 2] {
    let name = |role| if fp16 { variant.fp16_file_name(role) } else { variant.file_name(role).to_string() };
    [dir.join(name(Role::Hide)), dir.join(name(Role::Reveal))]
}

/// Writes `hide.onnx` and `reveal.onnx` (fast nets: `hide-fast.onnx`, `reveal-fast.onnx`)
/// into `dir` (created if needed).
pub fn export(weights: &HashMap<String, Tensor>, dir: &Path, info: &ExportInfo) -> Result<Exported> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let [hide, reveal] = export_paths(dir, info.variant(), info.fp16);
    write_model(&hide_model(weights, info)?, &hide)?;
    write_model(&reveal_model(weights, info)?, &reveal)?;
    Ok(Exported { hide, reveal })
}

/// Reads a file written by [`export`] back (for checks and tests).
pub fn read_model(path: &Path) -> Result<ModelProto> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(ModelProto::decode(bytes.as_slice())?)
}

/// The `metadata_props` of a model as a map.
pub fn metadata(m: &ModelProto) -> HashMap<String, String> {
    m.metadata_props
        .iter()
        .map(|e| (e.key.clone().unwrap_or_default(), e.value.clone().unwrap_or_default()))
        .collect()
}
