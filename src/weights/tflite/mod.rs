//! Float MobileNet V1 weights out of a TensorFlow Lite flatbuffer (`.tflite`).
//!
//! The reader walks the main subgraph's operators in order and maps the convolutions onto the
//! canonical TF-Slim names by position and shape; tensor names in the file are never used (they
//! differ between producers: TOCO 2018 keeps the TF-Slim scopes, newer converters invent their own).
//! The layer sequence and widths are `model::arch`'s. Expected operator sequence (anything else is an error saying what was found where):
//!
//! 1. `CONV_2D` 3x3 stride 2, 3 input channels -> `MobilenetV1/Conv2d_0`
//! 2. 13 x (`DEPTHWISE_CONV_2D` 3x3, strides 1,2,1,2,1,2,1,1,1,1,1,2,1 -> `Conv2d_{i}_depthwise`,
//!    `CONV_2D` 1x1 stride 1 -> `Conv2d_{i}_pointwise`), each reading the previous layer's output
//! 3. pooling / `MEAN` / `RESHAPE` / `SQUEEZE` (ignored, allowed only after the body)
//! 4. `CONV_2D` 1x1 with any number of outputs (1001 for ImageNet, K for a fine-tuned export), no
//!    activation -> `MobilenetV1/Logits/Conv2d_1c_1x1`; absent in a feature-vector model
//! 5. `RESHAPE` / `SQUEEZE` / `SOFTMAX` (ignored)
//!
//! A full-integer model may also have a `QUANTIZE` before step 1 and one after the last operator
//! (uint8 input and output around the int8 graph: `quant.rs`).
//!
//! All body layers must be SAME-padded, undilated and have ReLU6 fused; channel widths must be those
//! of one of the four depth multipliers (0.25, 0.5, 0.75, 1.0); all tensors float32. BatchNorm is
//! folded in a .tflite, so every layer yields `weights` (or `depthwise_weights`) plus `biases`.
//! TFLite layouts are transposed into TensorFlow's: CONV_2D `[out,kh,kw,in]` -> HWIO
//! `[kh,kw,in,out]`, DEPTHWISE_CONV_2D `[1,kh,kw,C]` -> `[kh,kw,C,1]`.
//!
//! The flatbuffer is read with explicit bounds checks on every access (no `unsafe`, no indexing
//! that can panic): a malformed or hostile file gives a [`TfliteError`], never a panic, and no
//! allocation is made larger than the data the file actually holds.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use thiserror::Error;

use crate::model::arch::{Arch, LayerKind, LOGITS_SCOPE, SCOPE};
use crate::weights::RawTensor;

pub(crate) mod flatbuffer;
mod model;
mod quant;
#[cfg(test)]
mod quant_tests;
pub(crate) mod schema;
#[cfg(test)]
mod tests;

use flatbuffer::Fb;
use model::{op_tensors, Model};
pub use quant::{QParams, QuantKind, QuantLayer, QuantSoftmax, QuantizedNet};
use schema::*;

/// What is wrong with a .tflite file.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TfliteError {
    /// The bytes are not a TFLite flatbuffer at all.
    #[error("not a TFLite model: {0}")]
    NotTflite(String),
    /// The flatbuffer structure is broken (an offset or length points outside the file, ...).
    #[error("malformed TFLite flatbuffer at byte {at}: {what}")]
    Malformed { at: usize, what: String },
    /// A valid TFLite file using a feature this reader does not handle.
    #[error("unsupported TFLite model: {0}")]
    Unsupported(String),
    /// Tensors that are not float32 (a quantised or float16 model).
    #[error(
        "operator #{op} ({layer}): tensor #{tensor} '{name}' is {dtype}, expected FLOAT32 \
         (quantised models are not supported; use the float .tflite)"
    )]
    NotFloat {
        op: usize,
        layer: String,
        tensor: i32,
        name: String,
        dtype: String,
    },
    /// A valid TFLite model that is not a float TF-Slim MobileNet V1.
    #[error("not a MobileNet V1 model: {0}")]
    Structure(String),
}

pub(super) type Result<T> = std::result::Result<T, TfliteError>;

/// True when bytes look like a TFLite flatbuffer (file identifier "TFL3" at bytes 4..8).
pub(crate) fn is_tflite(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(b"TFL3".as_slice())
}

/// What a MobileNet V1 .tflite holds: float tensors under canonical names, or a quantized
/// network (integer weights with their scales, run by `model::quant`).
pub enum TfliteWeights {
    Float(BTreeMap<String, RawTensor>),
    Quantized(QuantizedNet),
}

/// Canonical-named, TF-layout tensors of a float MobileNet V1 .tflite (a quantized one is
/// refused: `read` takes both).
pub fn read_tflite(bytes: &[u8]) -> Result<BTreeMap<String, RawTensor>> {
    match read(bytes)? {
        TfliteWeights::Float(t) => Ok(t),
        TfliteWeights::Quantized(_) => Err(TfliteError::Unsupported(
            "a quantized model where float weights are needed".into(),
        )),
    }
}

/// The weights of a float or quantized MobileNet V1 .tflite.
pub fn read(bytes: &[u8]) -> Result<TfliteWeights> {
    if bytes.len() < 8 {
        return Err(TfliteError::NotTflite(format!(
            "only {} bytes",
            bytes.len()
        )));
    }
    if !is_tflite(bytes) {
        return Err(TfliteError::NotTflite(format!(
            "file identifier at bytes 4..8 is {:?}, expected \"TFL3\"",
            String::from_utf8_lossy(&bytes[4..8])
        )));
    }
    let model = Model::parse(Fb(bytes))?;
    let mut convs: Vec<Conv> = Vec::new();
    // The operators after the body (pool, reshape, softmax): ignored for float weights, read for
    // a quantized network, whose pool and softmax have quantization of their own.
    let mut tail: Vec<(i32, usize, usize)> = Vec::new();
    // Names, kinds and strides are the same at every width; the widths are those of the
    // multiplier that Conv2d_0's output channels give.
    let mut all = layers(Arch::new(1.0));
    let mut step = 0usize;
    // Tensor id that the next layer must read: the previous layer's output, followed through the
    // ignored ops (pooling, reshape) that consume it.
    let mut flow: Option<i32> = None;
    let mut prev_channels = 3usize;
    let mut edges = quant::Edges::default();
    for k in 0..model.operators.len() {
        let op = model.operators.table(k, "operator")?;
        let code = model.opcode(&op, k)?;
        match code {
            CONV_2D | DEPTHWISE_CONV_2D => {
                if let Some(q) = edges.output {
                    return Err(TfliteError::Structure(format!(
                        "operator #{k} is {} after the output QUANTIZE (operator #{q})",
                        op_name(code)
                    )));
                }
                let Some(layer) = all.get(step) else {
                    return Err(TfliteError::Structure(format!(
                        "operator #{k} is {} after the logits layer; MobileNet V1 has 28 convolutions",
                        op_name(code)
                    )));
                };
                let conv = model.conv(&op, k, code, layer)?;
                if let Some(expected) = flow {
                    if conv.input != expected {
                        return Err(TfliteError::Structure(format!(
                            "operator #{k} ({} for {}) reads tensor #{}, not the output #{expected} of {}",
                            op_name(code),
                            layer.scope(),
                            conv.input,
                            all[step - 1].scope()
                        )));
                    }
                }
                if step == 0 {
                    let arch =
                        Arch::from_first_conv_filters(conv.out_channels()).ok_or_else(|| {
                            TfliteError::Structure(format!(
                            "operator #{k} (Conv2d_0) has {} output channels; MobileNet V1 has 8, \
                             16, 24 or 32 (depth multiplier 0.25, 0.5, 0.75, 1.0)",
                            conv.out_channels()
                        ))
                        })?;
                    all = layers(arch);
                }
                let layer = &all[step];
                check_layer(&conv, layer, k, prev_channels, layer.out_channels)?;
                prev_channels = conv.out_channels();
                flow = Some(conv.output);
                convs.push(conv);
                step += 1;
            }
            AVERAGE_POOL_2D | MEAN | RESHAPE | SQUEEZE | SOFTMAX => {
                if let Some(q) = edges.output {
                    return Err(TfliteError::Structure(format!(
                        "operator #{k} is {} after the output QUANTIZE (operator #{q})",
                        op_name(code)
                    )));
                }
                if step + 1 < all.len() {
                    return Err(TfliteError::Structure(format!(
                        "operator #{k} is {} before {}; MobileNet V1 only pools after Conv2d_13_pointwise",
                        op_name(code),
                        all[step].name
                    )));
                }
                let ins = op_tensors(&op, OP_INPUTS, "Operator.inputs")?;
                let outs = op_tensors(&op, OP_OUTPUTS, "Operator.outputs")?;
                if let (Some(f), Some(&first_in), Some(&first_out)) =
                    (flow, ins.first(), outs.first())
                {
                    if first_in == f {
                        flow = Some(first_out);
                        tail.push((code, k, step));
                    }
                }
            }
            // A full-integer model with uint8 input and output (TFLiteConverter's
            // `inference_input_type=tf.uint8`): a QUANTIZE before Conv2d_0, one at the end.
            QUANTIZE if step == 0 && edges.input.is_none() => {
                let outs = op_tensors(&op, OP_OUTPUTS, "Operator.outputs")?;
                edges.input = Some(k);
                flow = outs.first().copied();
            }
            QUANTIZE if step + 1 >= all.len() && edges.output.is_none() => {
                let ins = op_tensors(&op, OP_INPUTS, "Operator.inputs")?;
                let outs = op_tensors(&op, OP_OUTPUTS, "Operator.outputs")?;
                if flow.is_none() || ins.first().copied() != flow {
                    return Err(TfliteError::Structure(format!(
                        "operator #{k} (QUANTIZE) does not read the network's output"
                    )));
                }
                edges.output = Some(k);
                flow = outs.first().copied();
            }
            other => {
                let at = all.get(step).map_or("after the logits".to_string(), |l| {
                    format!("where {} ({}) was expected", l.scope(), op_name(l.code()))
                });
                let hint = match other {
                    QUANTIZE => {
                        " (mnv1 reads a QUANTIZE only before Conv2d_0 and after the last \
                         operator, as in a full-integer model with uint8 input and output)"
                    }
                    DEQUANTIZE => {
                        " (a float16 or float-output model? mnv1 reads float32 and \
                                   full-integer .tflite files)"
                    }
                    _ => "",
                };
                return Err(TfliteError::Structure(format!(
                    "operator #{k} is {} {at}{hint}",
                    op_name(other)
                )));
            }
        }
    }
    // Ending after the body is a feature-vector model (`mnv1 convert --head feature-vector`).
    if step + 1 < all.len() {
        return Err(TfliteError::Structure(format!(
            "the model ends after {} convolutions; {} is missing ({} operators in all)",
            convs.len(),
            all[step].scope(),
            model.operators.len()
        )));
    }
    let quantized = convs.iter().filter(|c| c.quant.is_some()).count();
    if quantized == 0 {
        if let Some(k) = edges.input.or(edges.output) {
            return Err(TfliteError::Unsupported(format!(
                "operator #{k} is QUANTIZE in a float model"
            )));
        }
        let mut out = BTreeMap::new();
        for (conv, layer) in convs.into_iter().zip(&all) {
            conv.emit(layer, &mut out);
        }
        return Ok(TfliteWeights::Float(out));
    }
    if quantized < convs.len() {
        return Err(TfliteError::Unsupported(format!(
            "{quantized} of the {} convolutions are quantized and the others float (a partly \
             quantized model); mnv1 runs float or fully integer models",
            convs.len()
        )));
    }
    quant::network(&model, convs, &all, &tail, edges).map(TfliteWeights::Quantized)
}

// ---------------------------------------------------------------------------------------------
// The expected network.

#[derive(Clone, Copy, PartialEq, Debug)]
pub(super) enum Kind {
    Conv0,
    Depthwise,
    Pointwise,
    Logits,
}

/// One expected convolution: a body layer of `model::arch`'s table, or the logits.
pub(super) struct Layer {
    /// Canonical scope, e.g. `Conv2d_3_depthwise`, `Logits/Conv2d_1c_1x1`.
    name: String,
    kind: Kind,
    stride: i32,
    kernel: usize,
    /// Output channels of the body layer at the file's width (None: the logits, any count).
    out_channels: Option<usize>,
}

impl Layer {
    pub(super) fn scope(&self) -> String {
        format!("{SCOPE}/{}", self.name)
    }
    pub(super) fn code(&self) -> i32 {
        if self.kind == Kind::Depthwise {
            DEPTHWISE_CONV_2D
        } else {
            CONV_2D
        }
    }
    pub(super) fn kernel(&self) -> usize {
        self.kernel
    }
}

/// The 28 convolutions of MobileNet V1 at `arch`'s width in network order: the 27 of
/// `Arch::layers` and the logits.
pub(super) fn layers(arch: Arch) -> Vec<Layer> {
    let mut v: Vec<Layer> = arch
        .layers()
        .into_iter()
        .map(|l| Layer {
            kind: match l.kind {
                LayerKind::Conv => Kind::Conv0,
                LayerKind::Depthwise => Kind::Depthwise,
                LayerKind::Pointwise => Kind::Pointwise,
            },
            stride: l.stride as i32,
            kernel: l.kernel(),
            out_channels: Some(l.out_channels),
            name: l.name,
        })
        .collect();
    v.push(Layer {
        name: LOGITS_SCOPE
            .strip_prefix("MobilenetV1/")
            .unwrap_or(LOGITS_SCOPE)
            .into(),
        kind: Kind::Logits,
        stride: 1,
        kernel: 1,
        out_channels: None,
    });
    v
}

/// One convolution operator with its constant filter and bias, in TFLite layout.
pub(super) struct Conv {
    code: i32,
    input: i32,
    output: i32,
    /// TFLite filter shape: CONV_2D [out,kh,kw,in], DEPTHWISE_CONV_2D [1,kh,kw,C].
    shape: [usize; 4],
    filter: Vec<f32>,
    bias: Vec<f32>,
    padding: u8,
    stride: (i32, i32),
    dilation: (i32, i32),
    activation: u8,
    depth_multiplier: i32,
    /// The integer filter, bias and scales of a quantized model (`filter` and `bias` are then
    /// empty).
    quant: Option<quant::QuantConv>,
}

impl Conv {
    pub(super) fn out_channels(&self) -> usize {
        if self.code == DEPTHWISE_CONV_2D {
            self.shape[3]
        } else {
            self.shape[0]
        }
    }
    pub(super) fn in_channels(&self) -> usize {
        self.shape[3]
    }
    fn bias_len(&self) -> usize {
        self.quant
            .as_ref()
            .map_or(self.bias.len(), |q| q.bias.len())
    }

    pub(super) fn emit(self, layer: &Layer, out: &mut BTreeMap<String, RawTensor>) {
        let scope = layer.scope();
        let [o, kh, kw, i] = self.shape;
        let (wname, tensor) = if self.code == DEPTHWISE_CONV_2D {
            // [1,kh,kw,C] and [kh,kw,C,1] have the same element order.
            (
                "depthwise_weights",
                RawTensor::new(vec![kh, kw, i, 1], self.filter),
            )
        } else {
            // [o][hw][i] -> [hw][i][o]
            let mut hwio = vec![0f32; self.filter.len()];
            for (oo, per_out) in self.filter.chunks_exact(kh * kw * i).enumerate() {
                for (hwi, &v) in per_out.iter().enumerate() {
                    hwio[hwi * o + oo] = v;
                }
            }
            ("weights", RawTensor::new(vec![kh, kw, i, o], hwio))
        };
        let c = self.bias.len();
        out.insert(format!("{scope}/{wname}"), tensor);
        out.insert(
            format!("{scope}/biases"),
            RawTensor::new(vec![c], self.bias),
        );
    }
}

pub(super) fn check_layer(
    conv: &Conv,
    layer: &Layer,
    k: usize,
    in_channels: usize,
    out_channels: Option<usize>,
) -> Result<()> {
    let fail = |what: String| {
        Err(TfliteError::Structure(format!(
            "operator #{k} ({} for {}): {what}",
            op_name(conv.code),
            layer.scope()
        )))
    };
    if conv.code != layer.code() {
        return fail(format!("expected {}", op_name(layer.code())));
    }
    let kk = layer.kernel();
    let [_, kh, kw, _] = conv.shape;
    if (kh, kw) != (kk, kk) {
        return fail(format!("kernel is {kh}x{kw}, expected {kk}x{kk}"));
    }
    let s = layer.stride;
    if conv.stride != (s, s) {
        return fail(format!(
            "stride is (h {}, w {}), expected {s}",
            conv.stride.1, conv.stride.0
        ));
    }
    if conv.dilation != (1, 1) {
        return fail(format!("dilation is {:?}, expected 1", conv.dilation));
    }
    if conv.padding != PADDING_SAME {
        return fail(format!(
            "padding is {}, expected SAME",
            padding_name(conv.padding)
        ));
    }
    let act = if layer.kind == Kind::Logits {
        ACT_NONE
    } else {
        ACT_RELU6
    };
    if conv.activation != act {
        return fail(format!(
            "fused activation is {}, expected {}",
            activation_name(conv.activation),
            activation_name(act)
        ));
    }
    if conv.code == DEPTHWISE_CONV_2D {
        if conv.shape[0] != 1 {
            return fail(format!(
                "filter shape {:?} does not start with 1",
                conv.shape
            ));
        }
        // depth_multiplier is 0 (absent) in newer converters' output; the shape decides.
        if !(0..=1).contains(&conv.depth_multiplier) {
            return fail(format!(
                "depth multiplier is {}, expected 1",
                conv.depth_multiplier
            ));
        }
    }
    if conv.in_channels() != in_channels {
        return fail(format!(
            "filter {:?} has {} input channels, but the previous layer gives {in_channels}",
            conv.shape,
            conv.in_channels()
        ));
    }
    if let Some(c) = out_channels {
        if conv.out_channels() != c {
            return fail(format!(
                "{} output channels, expected {c} for this width",
                conv.out_channels()
            ));
        }
    }
    if conv.bias_len() != conv.out_channels() {
        return fail(format!(
            "bias has {} values for {} output channels",
            conv.bias_len(),
            conv.out_channels()
        ));
    }
    Ok(())
}
