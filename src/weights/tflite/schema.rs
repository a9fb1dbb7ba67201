//! The TFLite schema (tensorflow/lite/schema/schema.fbs): builtin operator codes, the field ids
//! of the tables mnv1 reads and writes (`export::tflite_writer`), and the names of enum values
//! for messages. Field ids are the declaration order in schema.fbs, checked against the
//! generated `schema_py_generated.py` of TensorFlow 2.21.

pub(crate) const CONV_2D: i32 = 3;
pub(crate) const DEPTHWISE_CONV_2D: i32 = 4;
pub(crate) const AVERAGE_POOL_2D: i32 = 1;
pub(crate) const DEQUANTIZE: i32 = 6;
pub(crate) const RESHAPE: i32 = 22;
pub(crate) const SOFTMAX: i32 = 25;
pub(crate) const MEAN: i32 = 40;
pub(crate) const SQUEEZE: i32 = 43;
pub(crate) const CUSTOM: i32 = 32;
pub(crate) const QUANTIZE: i32 = 114;

pub(crate) const PADDING_SAME: u8 = 0;
pub(crate) const PADDING_VALID: u8 = 1;
pub(crate) const ACT_NONE: u8 = 0;
pub(crate) const ACT_RELU6: u8 = 3;

pub(crate) const TFLITE_FILE_IDENTIFIER: &str = "TFL3";

// Model
pub(crate) const MODEL_VERSION: usize = 0;
pub(crate) const MODEL_OPERATOR_CODES: usize = 1;
pub(crate) const MODEL_SUBGRAPHS: usize = 2;
pub(crate) const MODEL_DESCRIPTION: usize = 3;
pub(crate) const MODEL_BUFFERS: usize = 4;
pub(crate) const MODEL_METADATA: usize = 6;
// Metadata
pub(crate) const METADATA_NAME: usize = 0;
pub(crate) const METADATA_BUFFER: usize = 1;
// SubGraph
pub(crate) const SUBGRAPH_TENSORS: usize = 0;
pub(crate) const SUBGRAPH_INPUTS: usize = 1;
pub(crate) const SUBGRAPH_OUTPUTS: usize = 2;
pub(crate) const SUBGRAPH_OPERATORS: usize = 3;
pub(crate) const SUBGRAPH_NAME: usize = 4;
// Tensor
pub(crate) const TENSOR_SHAPE: usize = 0;
pub(crate) const TENSOR_TYPE: usize = 1;
pub(crate) const TENSOR_BUFFER: usize = 2;
pub(crate) const TENSOR_NAME: usize = 3;
pub(crate) const TENSOR_QUANTIZATION: usize = 4;
pub(crate) const TENSOR_SHAPE_SIGNATURE: usize = 7;

// table QuantizationParameters
pub(crate) const QUANT_SCALE: usize = 2;
pub(crate) const QUANT_ZERO_POINT: usize = 3;
pub(crate) const QUANT_DIMENSION: usize = 6;
// Buffer
pub(crate) const BUFFER_DATA: usize = 0;
pub(crate) const BUFFER_OFFSET: usize = 1;
pub(crate) const BUFFER_SIZE: usize = 2;
// Operator
pub(crate) const OP_OPCODE_INDEX: usize = 0;
pub(crate) const OP_INPUTS: usize = 1;
pub(crate) const OP_OUTPUTS: usize = 2;
pub(crate) const OP_OPTIONS_TYPE: usize = 3;
pub(crate) const OP_OPTIONS: usize = 4;
// OperatorCode
pub(crate) const OPCODE_DEPRECATED_BUILTIN: usize = 0;
pub(crate) const OPCODE_CUSTOM: usize = 1;
pub(crate) const OPCODE_VERSION: usize = 2;
pub(crate) const OPCODE_BUILTIN: usize = 3;
// BuiltinOptions union tags
pub(crate) const OPTIONS_CONV_2D: u8 = 1;
pub(crate) const OPTIONS_DEPTHWISE_CONV_2D: u8 = 2;
pub(crate) const OPTIONS_POOL_2D: u8 = 5;
pub(crate) const OPTIONS_SOFTMAX: u8 = 9;
pub(crate) const OPTIONS_SQUEEZE: u8 = 30;
// Conv2DOptions
pub(crate) const CONV_PADDING: usize = 0;
pub(crate) const CONV_STRIDE_W: usize = 1;
pub(crate) const CONV_STRIDE_H: usize = 2;
pub(crate) const CONV_ACTIVATION: usize = 3;
pub(crate) const CONV_DILATION_W: usize = 4;
pub(crate) const CONV_DILATION_H: usize = 5;
// DepthwiseConv2DOptions
pub(crate) const DW_PADDING: usize = 0;
pub(crate) const DW_STRIDE_W: usize = 1;
pub(crate) const DW_STRIDE_H: usize = 2;
pub(crate) const DW_DEPTH_MULTIPLIER: usize = 3;
pub(crate) const DW_ACTIVATION: usize = 4;
pub(crate) const DW_DILATION_W: usize = 5;
pub(crate) const DW_DILATION_H: usize = 6;

// Pool2DOptions
pub(crate) const POOL_PADDING: usize = 0;
pub(crate) const POOL_STRIDE_W: usize = 1;
pub(crate) const POOL_STRIDE_H: usize = 2;
pub(crate) const POOL_FILTER_W: usize = 3;
pub(crate) const POOL_FILTER_H: usize = 4;
pub(crate) const POOL_ACTIVATION: usize = 5;
// SoftmaxOptions
pub(crate) const SOFTMAX_BETA: usize = 0;
// SqueezeOptions
pub(crate) const SQUEEZE_DIMS: usize = 0;

pub(crate) const TENSOR_FLOAT32: u8 = 0;
pub(crate) const TENSOR_INT32: u8 = 2;
pub(crate) const TENSOR_UINT8: u8 = 3;
pub(crate) const TENSOR_INT8: u8 = 9;
pub(crate) const SCHEMA_VERSION: u32 = 3;

pub(crate) fn op_name(code: i32) -> String {
    const NAMES: [&str; 44] = [
        "ADD",
        "AVERAGE_POOL_2D",
        "CONCATENATION",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "DEPTH_TO_SPACE",
        "DEQUANTIZE",
        "EMBEDDING_LOOKUP",
        "FLOOR",
        "FULLY_CONNECTED",
        "HASHTABLE_LOOKUP",
        "L2_NORMALIZATION",
        "L2_POOL_2D",
        "LOCAL_RESPONSE_NORMALIZATION",
        "LOGISTIC",
        "LSH_PROJECTION",
        "LSTM",
        "MAX_POOL_2D",
        "MUL",
        "RELU",
        "RELU_N1_TO_1",
        "RELU6",
        "RESHAPE",
        "RESIZE_BILINEAR",
        "RNN",
        "SOFTMAX",
        "SPACE_TO_DEPTH",
        "SVDF",
        "TANH",
        "CONCAT_EMBEDDINGS",
        "SKIP_GRAM",
        "CALL",
        "CUSTOM",
        "EMBEDDING_LOOKUP_SPARSE",
        "PAD",
        "UNIDIRECTIONAL_SEQUENCE_RNN",
        "GATHER",
        "BATCH_TO_SPACE_ND",
        "SPACE_TO_BATCH_ND",
        "TRANSPOSE",
        "MEAN",
        "SUB",
        "DIV",
        "SQUEEZE",
    ];
    match code {
        QUANTIZE => "QUANTIZE".to_string(),
        c => usize::try_from(c)
            .ok()
            .and_then(|i| NAMES.get(i))
            .map_or_else(|| format!("builtin op {c}"), |n| n.to_string()),
    }
}

pub(crate) fn dtype_name(t: u8) -> String {
    const NAMES: [&str; 19] = [
        "FLOAT32",
        "FLOAT16",
        "INT32",
        "UINT8",
        "INT64",
        "STRING",
        "BOOL",
        "INT16",
        "COMPLEX64",
        "INT8",
        "FLOAT64",
        "COMPLEX128",
        "UINT64",
        "RESOURCE",
        "VARIANT",
        "UINT32",
        "UINT16",
        "INT4",
        "BFLOAT16",
    ];
    NAMES
        .get(t as usize)
        .map_or_else(|| format!("tensor type {t}"), |n| n.to_string())
}

pub(crate) fn padding_name(p: u8) -> String {
    match p {
        0 => "SAME".into(),
        1 => "VALID".into(),
        p => format!("padding {p}"),
    }
}

pub(crate) fn activation_name(a: u8) -> String {
    const NAMES: [&str; 6] = ["NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT"];
    NAMES
        .get(a as usize)
        .map_or_else(|| format!("activation {a}"), |n| n.to_string())
}
