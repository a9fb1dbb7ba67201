//! A TFLite model as plain data, encoded with the `flatbuffers` runtime: the writer half of
//! `weights::tflite` (same field ids, `weights::tflite::schema`). The exporter describes MobileNet
//! with it, and the reader's tests describe their odd and broken models with it, so what the
//! reader accepts is checked against files built by the flatbuffers crate, not by a second
//! hand-rolled encoder.

use flatbuffers::{FlatBufferBuilder, TableFinishedWIPOffset, VOffsetT, WIPOffset};

use crate::weights::tflite::schema::*;

/// How operator codes are recorded: TOCO (2018) wrote only the deprecated byte, TF 2.x writes
/// both, and codes above 127 exist only as `builtin_code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpcodeStyle {
    DeprecatedOnly,
    Both,
    BuiltinOnly,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Buffer {
    /// Bytes inside the flatbuffer; empty: no data (buffer 0, activations).
    Data(Vec<u8>),
    /// Data outside the flatbuffer (the >2 GB layout), as offset and size.
    // Only the reader's tests (weights/tflite/tests.rs) build files in this layout.
    #[cfg_attr(not(test), allow(dead_code))]
    External { offset: u64, size: u64 },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<i32>,
    /// The shape with -1 for dynamic dimensions (the batch), when there are any.
    pub shape_signature: Option<Vec<i32>>,
    pub dtype: u8,
    pub buffer: u32,
    /// The integers' scales and zero points (quantized tensors only).
    pub quantization: Option<Quantization>,
}

/// `QuantizationParameters`: real = scale * (q - zero_point), one pair for the tensor or one per
/// index along `quantized_dimension` (per-channel filters and their biases).
#[derive(Clone, Debug, PartialEq)]
pub struct Quantization {
    pub scales: Vec<f32>,
    pub zero_points: Vec<i64>,
    pub quantized_dimension: i32,
}

impl Quantization {
    /// One scale and zero point for the whole tensor (activations).
    pub fn per_tensor(scale: f32, zero_point: i32) -> Self {
        Self {
            scales: vec![scale],
            zero_points: vec![zero_point as i64],
            quantized_dimension: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Options {
    // Only the reader's tests (weights/tflite/tests.rs) write operators without options.
    #[cfg_attr(not(test), allow(dead_code))]
    None,
    Conv2D {
        padding: u8,
        stride: (i32, i32),
        activation: u8,
        dilation: (i32, i32),
    },
    DepthwiseConv2D {
        padding: u8,
        stride: (i32, i32),
        /// None: the field is left out, as newer converters do.
        depth_multiplier: Option<i32>,
        activation: u8,
        dilation: (i32, i32),
    },
    Pool2D {
        padding: u8,
        stride: (i32, i32),
        filter: (i32, i32),
        activation: u8,
    },
    Squeeze {
        squeeze_dims: Vec<i32>,
    },
    Softmax {
        beta: f32,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Operator {
    /// Index into `TfliteModel::operator_codes`.
    pub opcode_index: u32,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub options: Options,
}

/// One model with one subgraph.
#[derive(Clone, Debug, PartialEq)]
pub struct TfliteModel {
    pub version: u32,
    pub description: Option<String>,
    pub opcode_style: OpcodeStyle,
    pub subgraph_name: Option<String>,
    /// Builtin operator codes with their versions; operators refer to them by index.
    pub operator_codes: Vec<(i32, i32)>,
    pub tensors: Vec<Tensor>,
    /// Buffer 0 is TFLite's empty sentinel: keep it `Data(vec![])`.
    pub buffers: Vec<Buffer>,
    pub operators: Vec<Operator>,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    /// `Model.metadata`: (name, buffer index), e.g. `TFLITE_METADATA`.
    pub metadata: Vec<(String, u32)>,
}

/// Vtable slot of field `id` (flatbuffers: 4 bytes of vtable header, then 2 bytes per field).
fn slot(id: usize) -> VOffsetT {
    (4 + 2 * id) as VOffsetT
}

type Table = WIPOffset<TableFinishedWIPOffset>;

impl TfliteModel {
    /// An empty model at the current schema version, with the sentinel buffer.
    pub fn new() -> Self {
        Self {
            version: SCHEMA_VERSION,
            description: None,
            opcode_style: OpcodeStyle::Both,
            subgraph_name: None,
            operator_codes: Vec::new(),
            tensors: Vec::new(),
            buffers: vec![Buffer::Data(Vec::new())],
            operators: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            metadata: Vec::new(),
        }
    }

    /// Adds a buffer and returns its index.
    pub fn buffer(&mut self, b: Buffer) -> u32 {
        self.buffers.push(b);
        (self.buffers.len() - 1) as u32
    }

    /// Adds a tensor and returns its id.
    pub fn tensor(&mut self, t: Tensor) -> i32 {
        self.tensors.push(t);
        (self.tensors.len() - 1) as i32
    }

    /// The index of builtin operator `code` (version 1) in `operator_codes`, added on first use.
    // Only the reader's tests (weights/tflite/tests.rs) build operators at version 1 this way.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn opcode(&mut self, code: i32) -> u32 {
        self.opcode_version(code, 1)
    }

    /// The index of builtin operator `code` at `version`, added on first use.
    pub fn opcode_version(&mut self, code: i32, version: i32) -> u32 {
        let key = (code, version);
        let i = match self.operator_codes.iter().position(|&c| c == key) {
            Some(i) => i,
            None => {
                self.operator_codes.push(key);
                self.operator_codes.len() - 1
            }
        };
        i as u32
    }

    /// The index of `code` in `operator_codes`, 0 when absent.
    #[cfg(test)]
    pub fn opcode_index_of(&self, code: i32) -> u32 {
        self.operator_codes
            .iter()
            .position(|&(c, _)| c == code)
            .unwrap_or(0) as u32
    }

    /// Appends an operator running builtin `code` at `version` (the integer kernels' versions).
    pub fn op_version(
        &mut self,
        code: i32,
        version: i32,
        inputs: Vec<i32>,
        outputs: Vec<i32>,
        options: Options,
    ) {
        let opcode_index = self.opcode_version(code, version);
        self.operators.push(Operator {
            opcode_index,
            inputs,
            outputs,
            options,
        });
    }

    /// The flatbuffer, file identifier `TFL3`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let data: usize = self
            .buffers
            .iter()
            .map(|b| match b {
                Buffer::Data(d) => d.len(),
                Buffer::External { .. } => 0,
            })
            .sum();
        let mut fbb = FlatBufferBuilder::with_capacity(data + 64 * 1024);
        // Big buffers first: the builder writes back to front, so they end up at the file's end.
        let buffers: Vec<Table> = self
            .buffers
            .iter()
            .map(|b| write_buffer(&mut fbb, b))
            .collect();
        let opcodes: Vec<Table> = self
            .operator_codes
            .iter()
            .map(|&(c, v)| write_opcode(&mut fbb, c, v, self.opcode_style))
            .collect();
        let tensors: Vec<Table> = self
            .tensors
            .iter()
            .map(|t| write_tensor(&mut fbb, t))
            .collect();
        let operators: Vec<Table> = self
            .operators
            .iter()
            .map(|op| write_operator(&mut fbb, op))
            .collect();

        let tensors = fbb.create_vector(&tensors);
        let inputs = fbb.create_vector(&self.inputs);
        let outputs = fbb.create_vector(&self.outputs);
        let operators = fbb.create_vector(&operators);
        let sg_name = self.subgraph_name.as_deref().map(|n| fbb.create_string(n));
        let start = fbb.start_table();
        fbb.push_slot_always(slot(SUBGRAPH_TENSORS), tensors);
        fbb.push_slot_always(slot(SUBGRAPH_INPUTS), inputs);
        fbb.push_slot_always(slot(SUBGRAPH_OUTPUTS), outputs);
        fbb.push_slot_always(slot(SUBGRAPH_OPERATORS), operators);
        if let Some(n) = sg_name {
            fbb.push_slot_always(slot(SUBGRAPH_NAME), n);
        }
        let subgraph = fbb.end_table(start);

        let metadata: Vec<Table> = self
            .metadata
            .iter()
            .map(|(name, buffer)| {
                let name = fbb.create_string(name);
                let start = fbb.start_table();
                fbb.push_slot_always(slot(METADATA_NAME), name);
                fbb.push_slot(slot(METADATA_BUFFER), *buffer, 0);
                fbb.end_table(start)
            })
            .collect();
        let opcodes = fbb.create_vector(&opcodes);
        let subgraphs = fbb.create_vector(&[subgraph]);
        let buffers = fbb.create_vector(&buffers);
        let description = self.description.as_deref().map(|d| fbb.create_string(d));
        let metadata = (!metadata.is_empty()).then(|| fbb.create_vector(&metadata));
        let start = fbb.start_table();
        fbb.push_slot(slot(MODEL_VERSION), self.version, 0);
        fbb.push_slot_always(slot(MODEL_OPERATOR_CODES), opcodes);
        fbb.push_slot_always(slot(MODEL_SUBGRAPHS), subgraphs);
        if let Some(d) = description {
            fbb.push_slot_always(slot(MODEL_DESCRIPTION), d);
        }
        fbb.push_slot_always(slot(MODEL_BUFFERS), buffers);
        if let Some(m) = metadata {
            fbb.push_slot_always(slot(MODEL_METADATA), m);
        }
        let model = fbb.end_table(start);
        fbb.finish(model, Some(TFLITE_FILE_IDENTIFIER));
        fbb.finished_data().to_vec()
    }
}

impl Default for TfliteModel {
    fn default() -> Self {
        Self::new()
    }
}

fn write_buffer(fbb: &mut FlatBufferBuilder, b: &Buffer) -> Table {
    match b {
        Buffer::Data(d) if !d.is_empty() => {
            let data = fbb.create_vector(d);
            let start = fbb.start_table();
            fbb.push_slot_always(slot(BUFFER_DATA), data);
            fbb.end_table(start)
        }
        Buffer::Data(_) => {
            let start = fbb.start_table();
            fbb.end_table(start)
        }
        Buffer::External { offset, size } => {
            let start = fbb.start_table();
            fbb.push_slot(slot(BUFFER_OFFSET), *offset, 0);
            fbb.push_slot(slot(BUFFER_SIZE), *size, 0);
            fbb.end_table(start)
        }
    }
}

fn write_opcode(fbb: &mut FlatBufferBuilder, code: i32, version: i32, style: OpcodeStyle) -> Table {
    let start = fbb.start_table();
    // The deprecated byte saturates at 127 (PLACEHOLDER_FOR_GREATER_OP_CODES) for newer ops.
    let deprecated = code.clamp(0, 127) as i8;
    if style != OpcodeStyle::BuiltinOnly {
        fbb.push_slot(slot(OPCODE_DEPRECATED_BUILTIN), deprecated, 0);
    }
    fbb.push_slot(slot(OPCODE_VERSION), version, 1);
    if style != OpcodeStyle::DeprecatedOnly {
        fbb.push_slot(slot(OPCODE_BUILTIN), code, 0);
    }
    fbb.end_table(start)
}

fn write_tensor(fbb: &mut FlatBufferBuilder, t: &Tensor) -> Table {
    let shape = fbb.create_vector(&t.shape);
    let signature = t.shape_signature.as_ref().map(|s| fbb.create_vector(s));
    let name = fbb.create_string(&t.name);
    let quantization = t.quantization.as_ref().map(|q| {
        let scales = fbb.create_vector(&q.scales);
        let zero_points = fbb.create_vector(&q.zero_points);
        let start = fbb.start_table();
        fbb.push_slot_always(slot(QUANT_SCALE), scales);
        fbb.push_slot_always(slot(QUANT_ZERO_POINT), zero_points);
        fbb.push_slot(slot(QUANT_DIMENSION), q.quantized_dimension, 0);
        fbb.end_table(start)
    });
    let start = fbb.start_table();
    fbb.push_slot_always(slot(TENSOR_SHAPE), shape);
    if let Some(q) = quantization {
        fbb.push_slot_always(slot(TENSOR_QUANTIZATION), q);
    }
    fbb.push_slot(slot(TENSOR_TYPE), t.dtype, 0);
    fbb.push_slot(slot(TENSOR_BUFFER), t.buffer, 0);
    fbb.push_slot_always(slot(TENSOR_NAME), name);
    if let Some(s) = signature {
        fbb.push_slot_always(slot(TENSOR_SHAPE_SIGNATURE), s);
    }
    fbb.end_table(start)
}

fn write_operator(fbb: &mut FlatBufferBuilder, op: &Operator) -> Table {
    let inputs = fbb.create_vector(&op.inputs);
    let outputs = fbb.create_vector(&op.outputs);
    let options: Option<(u8, Table)> = match &op.options {
        Options::None => None,
        Options::Conv2D {
            padding,
            stride,
            activation,
            dilation,
        } => {
            let start = fbb.start_table();
            fbb.push_slot(slot(CONV_PADDING), *padding, 0);
            fbb.push_slot(slot(CONV_STRIDE_W), stride.0, 0);
            fbb.push_slot(slot(CONV_STRIDE_H), stride.1, 0);
            fbb.push_slot(slot(CONV_ACTIVATION), *activation, 0);
            fbb.push_slot(slot(CONV_DILATION_W), dilation.0, 1);
            fbb.push_slot(slot(CONV_DILATION_H), dilation.1, 1);
            Some((OPTIONS_CONV_2D, fbb.end_table(start)))
        }
        Options::DepthwiseConv2D {
            padding,
            stride,
            depth_multiplier,
            activation,
            dilation,
        } => {
            let start = fbb.start_table();
            fbb.push_slot(slot(DW_PADDING), *padding, 0);
            fbb.push_slot(slot(DW_STRIDE_W), stride.0, 0);
            fbb.push_slot(slot(DW_STRIDE_H), stride.1, 0);
            if let Some(m) = depth_multiplier {
                fbb.push_slot_always(slot(DW_DEPTH_MULTIPLIER), *m);
            }
            fbb.push_slot(slot(DW_ACTIVATION), *activation, 0);
            fbb.push_slot(slot(DW_DILATION_W), dilation.0, 1);
            fbb.push_slot(slot(DW_DILATION_H), dilation.1, 1);
            Some((OPTIONS_DEPTHWISE_CONV_2D, fbb.end_table(start)))
        }
        Options::Pool2D {
            padding,
            stride,
            filter,
            activation,
        } => {
            let start = fbb.start_table();
            fbb.push_slot(slot(POOL_PADDING), *padding, 0);
            fbb.push_slot(slot(POOL_STRIDE_W), stride.0, 0);
            fbb.push_slot(slot(POOL_STRIDE_H), stride.1, 0);
            fbb.push_slot(slot(POOL_FILTER_W), filter.0, 0);
            fbb.push_slot(slot(POOL_FILTER_H), filter.1, 0);
            fbb.push_slot(slot(POOL_ACTIVATION), *activation, 0);
            Some((OPTIONS_POOL_2D, fbb.end_table(start)))
        }
        Options::Squeeze { squeeze_dims } => {
            let v = fbb.create_vector(squeeze_dims);
            let start = fbb.start_table();
            fbb.push_slot_always(slot(SQUEEZE_DIMS), v);
            Some((OPTIONS_SQUEEZE, fbb.end_table(start)))
        }
        Options::Softmax { beta } => {
            let start = fbb.start_table();
            fbb.push_slot(slot(SOFTMAX_BETA), *beta, 0.0);
            Some((OPTIONS_SOFTMAX, fbb.end_table(start)))
        }
    };
    let start = fbb.start_table();
    fbb.push_slot(slot(OP_OPCODE_INDEX), op.opcode_index, 0);
    fbb.push_slot_always(slot(OP_INPUTS), inputs);
    fbb.push_slot_always(slot(OP_OUTPUTS), outputs);
    if let Some((tag, table)) = options {
        fbb.push_slot(slot(OP_OPTIONS_TYPE), tag, 0);
        fbb.push_slot_always(slot(OP_OPTIONS), table);
    }
    fbb.end_table(start)
}
