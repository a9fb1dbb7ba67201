//! A quantized MobileNet V1 .tflite: the same operator sequence as a float one (`mod.rs` walks
//! it), with integer tensors and their quantization parameters. Two schemes are read, the two
//! that TensorFlow Lite's converters write for this network:
//!
//! - uint8 asymmetric per-tensor (Google's `mobilenet_v1_*_quant.tflite`, quantization-aware
//!   training): uint8 activations and filters, each with one scale and zero point;
//! - int8 full-integer (TFLiteConverter's post-training quantization, Model Maker): int8
//!   activations with a zero point, int8 filters symmetric (zero point 0) per output channel
//!   (axis 0 of a CONV_2D filter `[out,kh,kw,in]`, axis 3 of a DEPTHWISE_CONV_2D `[1,kh,kw,C]`).
//!
//! Biases are int32 at scale input_scale * filter_scale. Anything else (int16 activations,
//! asymmetric int8 filters, per-channel on another axis, a tensor without a scale) is refused
//! with the tensor's name. Nothing is computed here: `model::quant` turns the scales into
//! TFLite's fixed-point multipliers.

use super::flatbuffer::Table;
use super::model::{op_tensors, Model};
use super::schema::*;
use super::{Conv, Kind, Layer, Result, TfliteError};
use crate::model::arch::{Arch, LayerKind};

/// One scale and zero point: how an activation tensor's integers map to reals,
/// real = scale * (q - zero_point).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    pub scale: f32,
    pub zero_point: i32,
}

/// What `Model::conv` reads of a quantized convolution.
pub(super) struct QuantConv {
    pub(super) in_shape: Vec<i32>,
    /// TFLite filter shape: CONV_2D [out,kh,kw,in], DEPTHWISE_CONV_2D [1,kh,kw,C].
    pub(super) shape: [usize; 4],
    input: QParams,
    output: QParams,
    /// The stored integers (0..=255 for uint8, -128..=127 for int8), TFLite layout.
    filter: Vec<i32>,
    filter_zero_point: i32,
    /// One scale (per-tensor) or one per output channel.
    filter_scales: Vec<f32>,
    pub(super) bias: Vec<i32>,
    signed: bool,
}

/// One quantized convolution, laid out for `model::quant`'s kernels.
#[derive(Debug)]
pub struct QuantLayer {
    pub kind: QuantKind,
    pub stride: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    /// Conv2d_0: HWIO `[3][3][3][out]`. Depthwise: `[3][3][C]`. Pointwise and logits:
    /// `[out][in]`. Stored integers, zero point not subtracted.
    pub filter: Vec<i32>,
    pub filter_zero_point: i32,
    /// One per output channel (a per-tensor scale repeated).
    pub filter_scales: Vec<f32>,
    pub bias: Vec<i32>,
    pub input: QParams,
    pub output: QParams,
    /// ReLU6 fused (every body layer); the logits have no activation.
    pub relu6: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantKind {
    Conv0,
    Depthwise,
    Pointwise,
    Logits,
}

/// The SOFTMAX at the end of a quantized classifier.
#[derive(Debug)]
pub struct QuantSoftmax {
    pub beta: f32,
    pub input: QParams,
    pub output: QParams,
}

/// A quantized MobileNet V1, as read from a .tflite.
#[derive(Debug)]
pub struct QuantizedNet {
    pub arch: Arch,
    /// int8 activations (else uint8).
    pub signed: bool,
    /// An int8 network whose file takes uint8 pixels: a QUANTIZE before Conv2d_0 that only
    /// shifts the zero point by 128 (TFLiteConverter's `inference_input_type=tf.uint8`). Fed
    /// pixels, like a uint8 model, rather than the [-1, 1] image quantized.
    pub uint8_input: bool,
    /// Conv2d_0's input quantization (int8 for an int8 network, also behind a uint8 input's
    /// QUANTIZE) and the fixed spatial size (height, width).
    pub input: QParams,
    pub input_size: (usize, usize),
    /// Conv2d_0 to Conv2d_13_pointwise.
    pub body: Vec<QuantLayer>,
    /// The AVERAGE_POOL_2D's output (TFLite requires it equal to its input's).
    pub pooled: QParams,
    pub logits: Option<QuantLayer>,
    pub softmax: Option<QuantSoftmax>,
}

impl QuantizedNet {
    /// A short description for messages: `uint8 per-tensor` or `int8 per-channel`.
    pub fn scheme(&self) -> &'static str {
        if self.signed {
            "int8 per-channel"
        } else {
            "uint8 per-tensor"
        }
    }
}

impl<'a> Model<'a> {
    fn dtype(&self, t: &Table<'a>) -> Result<u8> {
        t.u8_or(TENSOR_TYPE, 0)
    }

    /// The scales, zero points and quantized dimension of tensor `t` (#`id`), which must have
    /// at least one scale.
    fn quantization(
        &self,
        t: &Table<'a>,
        id: i32,
        k: usize,
        layer: &Layer,
        what: &str,
    ) -> Result<(Vec<f32>, Vec<i64>, i32)> {
        let fail = |msg: &str| {
            TfliteError::Unsupported(format!(
                "operator #{k} ({}): {what} tensor #{id} '{}' {msg}",
                layer.scope(),
                self.tensor_name(t)
            ))
        };
        let Some(q) = t.table_field(TENSOR_QUANTIZATION, "QuantizationParameters")? else {
            return Err(fail("has no quantization parameters"));
        };
        let scales = match q.vector(QUANT_SCALE, 4, "QuantizationParameters.scale")? {
            Some(v) => (0..v.len()).map(|i| v.f32(i)).collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        if scales.is_empty() {
            return Err(fail("has no quantization scale"));
        }
        if let Some(bad) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(fail(&format!(
                "has the scale {bad}; scales must be positive"
            )));
        }
        let zero_points =
            match q.vector(QUANT_ZERO_POINT, 8, "QuantizationParameters.zero_point")? {
                Some(v) => (0..v.len()).map(|i| v.i64(i)).collect::<Result<Vec<_>>>()?,
                None => Vec::new(),
            };
        if !zero_points.is_empty() && zero_points.len() != scales.len() {
            return Err(fail(&format!(
                "has {} scales but {} zero points",
                scales.len(),
                zero_points.len()
            )));
        }
        let axis = q.i32_or(QUANT_DIMENSION, 0)?;
        Ok((scales, zero_points, axis))
    }

    /// An activation tensor's one scale and zero point, checked against its type's range.
    fn activation_params(
        &self,
        t: &Table<'a>,
        id: i32,
        k: usize,
        layer: &Layer,
        what: &str,
        signed: bool,
    ) -> Result<QParams> {
        let (scales, zps, _) = self.quantization(t, id, k, layer, what)?;
        let fail = |msg: String| {
            TfliteError::Unsupported(format!(
                "operator #{k} ({}): {what} tensor #{id} '{}' {msg}",
                layer.scope(),
                self.tensor_name(t)
            ))
        };
        if scales.len() != 1 {
            return Err(fail(format!(
                "has {} scales; activations must be quantized per tensor",
                scales.len()
            )));
        }
        let zp = zps.first().copied().unwrap_or(0);
        let range = if signed { -128..=127 } else { 0..=255 };
        if !range.contains(&zp) {
            return Err(fail(format!("has the zero point {zp}, outside {range:?}")));
        }
        Ok(QParams {
            scale: scales[0],
            zero_point: zp as i32,
        })
    }

    /// The integer data of a quantized convolution: input, output, filter and bias tensors.
    pub(super) fn quant_conv(
        &self,
        ins: &[i32],
        out: i32,
        k: usize,
        code: i32,
        layer: &Layer,
    ) -> Result<QuantConv> {
        let input = self.tensor(ins[0], k)?;
        let unsupported = |t: &Table<'a>, id: i32, what: &str, msg: String| {
            TfliteError::Unsupported(format!(
                "operator #{k} ({}): {what} tensor #{id} '{}' {msg}",
                layer.scope(),
                self.tensor_name(t)
            ))
        };
        let signed = match self.dtype(&input)? {
            TENSOR_UINT8 => false,
            TENSOR_INT8 => true,
            other => {
                return Err(unsupported(
                    &input,
                    ins[0],
                    "input",
                    format!(
                        "is {}; mnv1 runs float32 models and uint8 or int8 quantized ones",
                        dtype_name(other)
                    ),
                ))
            }
        };
        let in_q = self.activation_params(&input, ins[0], k, layer, "input", signed)?;
        let in_shape = match input.vector(TENSOR_SHAPE, 4, "Tensor.shape")? {
            Some(v) => (0..v.len()).map(|i| v.i32(i)).collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        let output = self.tensor(out, k)?;
        if self.dtype(&output)? != self.dtype(&input)? {
            return Err(unsupported(
                &output,
                out,
                "output",
                format!(
                    "is {} but the input is {}",
                    dtype_name(self.dtype(&output)?),
                    dtype_name(self.dtype(&input)?)
                ),
            ));
        }
        let out_q = self.activation_params(&output, out, k, layer, "output", signed)?;

        let ftensor = self.tensor(ins[1], k)?;
        let fsigned = match self.dtype(&ftensor)? {
            TENSOR_UINT8 if !signed => false,
            TENSOR_INT8 => true,
            other => {
                return Err(unsupported(
                    &ftensor,
                    ins[1],
                    "filter",
                    format!(
                        "is {} with {} activations; expected uint8 filters with uint8 \
                         activations or int8 filters",
                        dtype_name(other),
                        if signed { "int8" } else { "uint8" }
                    ),
                ))
            }
        };
        let (fshape, bytes) = self.constant_bytes(&ftensor, ins[1], k, layer, "filter", 4, 1)?;
        let shape = [fshape[0], fshape[1], fshape[2], fshape[3]];
        let filter: Vec<i32> = if fsigned {
            bytes.iter().map(|&b| b as i8 as i32).collect()
        } else {
            bytes.iter().map(|&b| b as i32).collect()
        };
        let out_channels = if code == DEPTHWISE_CONV_2D {
            shape[3]
        } else {
            shape[0]
        };
        let (scales, zps, axis) = self.quantization(&ftensor, ins[1], k, layer, "filter")?;
        let filter_zero_point = if fsigned {
            if let Some(zp) = zps.iter().find(|&&z| z != 0) {
                return Err(unsupported(
                    &ftensor,
                    ins[1],
                    "filter",
                    format!(
                        "has the zero point {zp}: int8 filters must be symmetric (zero point 0), \
                         as TFLite's int8 kernels require"
                    ),
                ));
            }
            0
        } else {
            if scales.len() != 1 {
                return Err(unsupported(
                    &ftensor,
                    ins[1],
                    "filter",
                    format!(
                        "is uint8 with {} scales; uint8 filters are per-tensor",
                        scales.len()
                    ),
                ));
            }
            zps.first().copied().unwrap_or(0) as i32
        };
        let filter_scales = if scales.len() == 1 {
            vec![scales[0]; out_channels]
        } else {
            let want_axis = if code == DEPTHWISE_CONV_2D { 3 } else { 0 };
            if axis != want_axis || scales.len() != out_channels {
                return Err(unsupported(
                    &ftensor,
                    ins[1],
                    "filter",
                    format!(
                        "has {} scales along axis {axis}; per-channel filters need one scale per \
                         output channel ({out_channels}) along axis {want_axis}",
                        scales.len()
                    ),
                ));
            }
            scales
        };

        let bias = match ins.get(2) {
            Some(&b) if b >= 0 => {
                let t = self.tensor(b, k)?;
                if self.dtype(&t)? != TENSOR_INT32 {
                    return Err(unsupported(
                        &t,
                        b,
                        "bias",
                        format!("is {}, expected INT32", dtype_name(self.dtype(&t)?)),
                    ));
                }
                let (_, bytes) = self.constant_bytes(&t, b, k, layer, "bias", 1, 4)?;
                bytes
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            }
            _ => vec![0; out_channels],
        };
        Ok(QuantConv {
            in_shape,
            shape,
            input: in_q,
            output: out_q,
            filter,
            filter_zero_point,
            filter_scales,
            bias,
            signed,
        })
    }

    /// The one-input, one-output quantized operator #`k` after the body: its input and output
    /// tensors' parameters.
    fn passthrough(
        &self,
        k: usize,
        layer: &Layer,
        signed: bool,
    ) -> Result<(QParams, QParams, Table<'a>)> {
        let op = self.operators.table(k, "operator")?;
        let ins = op_tensors(&op, OP_INPUTS, "Operator.inputs")?;
        let outs = op_tensors(&op, OP_OUTPUTS, "Operator.outputs")?;
        let (Some(&i), Some(&o)) = (ins.first(), outs.first()) else {
            return Err(TfliteError::Structure(format!(
                "operator #{k} has no input or output"
            )));
        };
        let (ti, to) = (self.tensor(i, k)?, self.tensor(o, k)?);
        let a = self.activation_params(&ti, i, k, layer, "input", signed)?;
        let b = self.activation_params(&to, o, k, layer, "output", signed)?;
        Ok((a, b, op))
    }
}

/// The QUANTIZE operators at the ends of a full-integer model with uint8 input and output (their
/// operator indices).
#[derive(Default)]
pub(super) struct Edges {
    pub(super) input: Option<usize>,
    pub(super) output: Option<usize>,
}

impl<'a> Model<'a> {
    /// The uint8 / int8 sides of QUANTIZE operator #`k` (`layer`: the convolution it feeds or
    /// follows, for messages), checked to be the zero-point shift TFLiteConverter writes: the
    /// same scale, the uint8 zero point 128 above the int8 one. TFLite then flips the top bit
    /// (quantize.cc, `Requantize`'s same-scale path), which is the identity in mnv1's
    /// uint8-domain integers; other scales need a rescaling mnv1 does not run.
    fn zero_point_shift(
        &self,
        k: usize,
        layer: &Layer,
        uint8_in: bool,
    ) -> Result<(QParams, QParams)> {
        let op = self.operators.table(k, "operator")?;
        let ins = op_tensors(&op, OP_INPUTS, "Operator.inputs")?;
        let outs = op_tensors(&op, OP_OUTPUTS, "Operator.outputs")?;
        let (Some(&i), Some(&o)) = (ins.first(), outs.first()) else {
            return Err(TfliteError::Structure(format!(
                "operator #{k} (QUANTIZE) has no input or output"
            )));
        };
        let (ti, to) = (self.tensor(i, k)?, self.tensor(o, k)?);
        let (u_id, u, s_id, s) = if uint8_in {
            (i, &ti, o, &to)
        } else {
            (o, &to, i, &ti)
        };
        for (id, t, want, what) in [
            (u_id, u, TENSOR_UINT8, "uint8"),
            (s_id, s, TENSOR_INT8, "int8"),
        ] {
            let got = self.dtype(t)?;
            if got != want {
                return Err(TfliteError::Unsupported(format!(
                    "operator #{k} (QUANTIZE): tensor #{id} '{}' is {}; mnv1 reads a QUANTIZE \
                     between a {} {} and the int8 network",
                    self.tensor_name(t),
                    dtype_name(got),
                    what,
                    if uint8_in { "input" } else { "output" },
                )));
            }
        }
        let uq = self.activation_params(u, u_id, k, layer, "QUANTIZE's uint8", false)?;
        let sq = self.activation_params(s, s_id, k, layer, "QUANTIZE's int8", true)?;
        if uq.scale != sq.scale || uq.zero_point != sq.zero_point + 128 {
            return Err(TfliteError::Unsupported(format!(
                "operator #{k} (QUANTIZE): uint8 tensor #{u_id} '{}' {uq:?} and int8 tensor \
                 #{s_id} '{}' {sq:?}; mnv1 runs a QUANTIZE that only shifts the zero point by 128 \
                 at the same scale (as TFLiteConverter writes uint8 input and output)",
                self.tensor_name(u),
                self.tensor_name(s)
            )));
        }
        Ok((uq, sq))
    }
}

/// The quantized network from the walk's convolutions (`convs`, in order, one per entry of
/// `layers`), the operators after the body (`tail`: code, operator index, and how many
/// convolutions preceded it) and the QUANTIZE at either end (`edges`).
pub(super) fn network(
    model: &Model<'_>,
    convs: Vec<Conv>,
    layers: &[Layer],
    tail: &[(i32, usize, usize)],
    edges: Edges,
) -> Result<QuantizedNet> {
    let body_len = layers.len() - 1;
    let first = convs[0]
        .quant
        .as_ref()
        .expect("checked by the caller: all quantized");
    let signed = first.signed;
    let input = first.input;
    let input_size = match first.in_shape.as_slice() {
        [_, h, w, _] if *h > 0 && *w > 0 => (*h as usize, *w as usize),
        other => {
            return Err(TfliteError::Structure(format!(
                "the quantized model's input has shape {other:?}, expected [1, H, W, 3]"
            )))
        }
    };
    let arch = crate::model::arch::Arch::from_first_conv_filters(convs[0].out_channels())
        .ok_or_else(|| TfliteError::Structure("unknown width".into()))?;
    let arch_layers = arch.layers();
    let mut body = Vec::with_capacity(body_len);
    let mut logits = None;
    let mut prev_out = input;
    for (i, conv) in convs.into_iter().enumerate() {
        let layer = &layers[i];
        let q = conv.quant.expect("checked by the caller: all quantized");
        if q.signed != signed {
            return Err(TfliteError::Unsupported(format!(
                "operator for {} mixes uint8 and int8 activations",
                layer.scope()
            )));
        }
        if q.input != prev_out && i > 0 {
            return Err(TfliteError::Structure(format!(
                "{} reads its input at {:?}, but the previous layer writes {:?}",
                layer.scope(),
                q.input,
                prev_out
            )));
        }
        prev_out = q.output;
        let [o, kh, kw, cin] = q.shape;
        let (kind, in_channels, out_channels, filter) = match layer.kind {
            Kind::Conv0 => {
                // [o][kh][kw][i] -> HWIO
                let mut hwio = vec![0; q.filter.len()];
                for (oo, per_out) in q.filter.chunks_exact(kh * kw * cin).enumerate() {
                    for (hwi, &v) in per_out.iter().enumerate() {
                        hwio[hwi * o + oo] = v;
                    }
                }
                (QuantKind::Conv0, cin, o, hwio)
            }
            // [1][kh][kw][C] is already [3][3][C].
            Kind::Depthwise => (QuantKind::Depthwise, cin, cin, q.filter),
            Kind::Pointwise => (QuantKind::Pointwise, cin, o, q.filter),
            Kind::Logits => (QuantKind::Logits, cin, o, q.filter),
        };
        let ql = QuantLayer {
            kind,
            stride: layer.stride as usize,
            in_channels,
            out_channels,
            filter,
            filter_zero_point: q.filter_zero_point,
            filter_scales: q.filter_scales,
            bias: q.bias,
            input: q.input,
            output: q.output,
            relu6: kind != QuantKind::Logits,
        };
        if kind == QuantKind::Logits {
            logits = Some(ql);
        } else {
            debug_assert_eq!(
                arch_layers[i].kind == LayerKind::Depthwise,
                kind == QuantKind::Depthwise
            );
            body.push(ql);
        }
    }
    let body_out = body[body_len - 1].output;

    // After the body: one AVERAGE_POOL_2D over the whole map (then, without logits, a RESHAPE /
    // SQUEEZE to [N, C]). After the logits: RESHAPE / SQUEEZE (same parameters) and SOFTMAX.
    let mut pooled = None;
    let mut softmax = None;
    let mut flow_q = body_out;
    let mut after_logits = false;
    for &(code, k, step) in tail {
        let layer = &layers[step.min(layers.len() - 1)];
        if step > body_len && !after_logits {
            after_logits = true;
            if let Some(l) = &logits {
                flow_q = l.output;
            }
        }
        let (a, b, op) = model.passthrough(k, layer, signed)?;
        let name = op_name(code);
        if a != flow_q {
            return Err(TfliteError::Structure(format!(
                "operator #{k} ({name}) reads its input at {a:?}, but the layer before writes {flow_q:?}"
            )));
        }
        match (code, step == body_len) {
            (AVERAGE_POOL_2D, true) if pooled.is_none() => {
                if a != b {
                    return Err(TfliteError::Unsupported(format!(
                        "operator #{k} (AVERAGE_POOL_2D) has output {b:?} for input {a:?}; \
                         TFLite requires them equal"
                    )));
                }
                let o = op
                    .table_field(OP_OPTIONS, "Pool2DOptions")?
                    .ok_or_else(|| {
                        TfliteError::Structure(format!("operator #{k} has no Pool2DOptions"))
                    })?;
                let fh = o.i32_or(POOL_FILTER_H, 0)?;
                let fw = o.i32_or(POOL_FILTER_W, 0)?;
                let (h, w) = final_size(input_size);
                if (fh as usize, fw as usize) != (h, w) || o.u8_or(POOL_ACTIVATION, 0)? != ACT_NONE
                {
                    return Err(TfliteError::Unsupported(format!(
                        "operator #{k} (AVERAGE_POOL_2D) pools {fh}x{fw}; the last feature map is \
                         {h}x{w}, and mnv1 runs a quantized model's pool as a global average"
                    )));
                }
                pooled = Some(b);
            }
            // After the logits, or after the pool of a feature-vector model (to [N, C]).
            (RESHAPE | SQUEEZE, at_pool) if !at_pool || (pooled.is_some() && logits.is_none()) => {
                if a != b {
                    return Err(TfliteError::Unsupported(format!(
                        "operator #{k} ({name}) changes the quantization ({a:?} to {b:?})"
                    )));
                }
            }
            (SOFTMAX, false) if softmax.is_none() => {
                let beta = match op.table_field(OP_OPTIONS, "SoftmaxOptions")? {
                    Some(o) => o.scalar::<4>(SOFTMAX_BETA)?.map_or(1.0, f32::from_le_bytes),
                    None => 1.0,
                };
                let want = QParams {
                    scale: 1.0 / 256.0,
                    zero_point: if signed { -128 } else { 0 },
                };
                if b != want {
                    return Err(TfliteError::Unsupported(format!(
                        "operator #{k} (SOFTMAX) has output {b:?}; TFLite's quantized softmax \
                         writes {want:?}"
                    )));
                }
                softmax = Some(QuantSoftmax {
                    beta,
                    input: a,
                    output: b,
                });
            }
            _ => {
                return Err(TfliteError::Unsupported(format!(
                    "operator #{k} ({name}) where a quantized MobileNet V1 has {}",
                    if step == body_len {
                        "one AVERAGE_POOL_2D (and, without logits, a RESHAPE / SQUEEZE)"
                    } else {
                        "RESHAPE / SQUEEZE and SOFTMAX"
                    }
                )))
            }
        }
        flow_q = b;
        if code == AVERAGE_POOL_2D {
            if let Some(l) = logits.as_ref().filter(|l| l.input != b) {
                return Err(TfliteError::Structure(format!(
                    "the logits read {:?}, but the pool writes {b:?}",
                    l.input
                )));
            }
        }
    }
    if (edges.input.is_some() || edges.output.is_some()) && !signed {
        return Err(TfliteError::Unsupported(
            "a uint8 model with QUANTIZE operators; mnv1 reads QUANTIZE only around an int8 \
             network"
                .into(),
        ));
    }
    if let Some(k) = edges.input {
        // The walk checked that Conv2d_0 reads the QUANTIZE's output.
        let (_, int8) = model.zero_point_shift(k, &layers[0], true)?;
        if int8 != input {
            return Err(TfliteError::Structure(format!(
                "operator #{k} (QUANTIZE) writes {int8:?}, but Conv2d_0 reads {input:?}"
            )));
        }
    }
    if let Some(k) = edges.output {
        let (_, int8) = model.zero_point_shift(k, &layers[layers.len() - 1], false)?;
        if int8 != flow_q {
            return Err(TfliteError::Structure(format!(
                "operator #{k} (QUANTIZE) reads {int8:?}, but the operator before writes {flow_q:?}"
            )));
        }
    }
    let Some(pooled) = pooled else {
        return Err(TfliteError::Unsupported(
            "the quantized model has no AVERAGE_POOL_2D after Conv2d_13_pointwise (a MEAN, or \
             none); mnv1 runs Google's and TFLiteConverter's AVERAGE_POOL_2D form"
                .into(),
        ));
    };
    Ok(QuantizedNet {
        arch,
        signed,
        uint8_input: edges.input.is_some(),
        input,
        input_size,
        body,
        pooled,
        logits,
        softmax,
    })
}

/// The spatial size of Conv2d_13_pointwise's output for an input of `size`: five SAME stride-2
/// layers, each rounding up.
fn final_size((h, w): (usize, usize)) -> (usize, usize) {
    let down = |mut x: usize| {
        for _ in 0..5 {
            x = x.div_ceil(2);
        }
        x
    };
    (down(h), down(w))
}
