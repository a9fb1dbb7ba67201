//! The TFLite schema (tensorflow/lite/schema/schema.fbs): builtin operator codes, the field ids
//! of the tables mnv1 reads, and the names of enum values for messages.

pub(super) const CONV_2D: i32 = 3;
pub(super) const DEPTHWISE_CONV_2D: i32 = 4;
pub(super) const AVERAGE_POOL_2D: i32 = 1;
pub(super) const DEQUANTIZE: i32 = 6;
pub(super) const RESHAPE: i32 = 22;
pub(super) const SOFTMAX: i32 = 25;
pub(super) const MEAN: i32 = 40;
pub(super) const SQUEEZE: i32 = 43;
pub(super) const CUSTOM: i32 = 32;
pub(super) const QUANTIZE: i32 = 114;

pub(super) const PADDING_SAME: u8 = 0;
pub(super) const ACT_NONE: u8 = 0;
pub(super) const ACT_RELU6: u8 = 3;


// Model
pub(super) const MODEL_VERSION: usize = 0;
pub(super) const MODEL_OPERATOR_CODES: usize = 1;
pub(super) const MODEL_SUBGRAPHS: usize = 2;
pub(super) const MODEL_BUFFERS: usize = 4;
// SubGraph
pub(super) const SUBGRAPH_TENSORS: usize = 0;
pub(super) const SUBGRAPH_OPERATORS: usize = 3;
// Tensor
pub(super) const TENSOR_SHAPE: usize = 0;
pub(super) const TENSOR_TYPE: usize = 1;
pub(super) const TENSOR_BUFFER: usize = 2;
pub(super) const TENSOR_NAME: usize = 3;
// Buffer
pub(super) const BUFFER_DATA: usize = 0;
pub(super) const BUFFER_OFFSET: usize = 1;
// Operator
pub(super) const OP_OPCODE_INDEX: usize = 0;
pub(super) const OP_INPUTS: usize = 1;
pub(super) const OP_OUTPUTS: usize = 2;
pub(super) const OP_OPTIONS_TYPE: usize = 3;
pub(super) const OP_OPTIONS: usize = 4;
// OperatorCode
pub(super) const OPCODE_DEPRECATED_BUILTIN: usize = 0;
pub(super) const OPCODE_CUSTOM: usize = 1;
pub(super) const OPCODE_BUILTIN: usize = 3;
// BuiltinOptions union tags
pub(super) const OPTIONS_CONV_2D: u8 = 1;
pub(super) const OPTIONS_DEPTHWISE_CONV_2D: u8 = 2;
// Conv2DOptions
pub(super) const CONV_PADDING: usize = 0;
pub(super) const CONV_STRIDE_W: usize = 1;
pub(super) const CONV_STRIDE_H: usize = 2;
pub(super) const CONV_ACTIVATION: usize = 3;
pub(super) const CONV_DILATION_W: usize = 4;
pub(super) const CONV_DILATION_H: usize = 5;
// DepthwiseConv2DOptions
pub(super) const DW_PADDING: usize = 0;
pub(super) const DW_STRIDE_W: usize = 1;
pub(super) const DW_STRIDE_H: usize = 2;
pub(super) const DW_DEPTH_MULTIPLIER: usize = 3;
pub(super) const DW_ACTIVATION: usize = 4;
pub(super) const DW_DILATION_W: usize = 5;
pub(super) const DW_DILATION_H: usize = 6;

pub(super) const TENSOR_FLOAT32: u8 = 0;
pub(super) const SCHEMA_VERSION: u32 = 3;

pub(super) fn op_name(code: i32) -> String {
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

pub(super) fn dtype_name(t: u8) -> String {
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

pub(super) fn padding_name(p: u8) -> String {
    match p {
        0 => "SAME".into(),
        1 => "VALID".into(),
        p => format!("padding {p}"),
    }
}

pub(super) fn activation_name(a: u8) -> String {
    const NAMES: [&str; 6] = ["NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT"];
    NAMES
        .get(a as usize)
        .map_or_else(|| format!("activation {a}"), |n| n.to_string())
}

