//! Post-training quantization of float weights into the int8 scheme TFLiteConverter's
//! full-integer quantization writes, so that `model::quant` runs it as it runs a converted
//! .tflite: int8 activations asymmetric per tensor (ranges from `calibration`), int8 filters
//! symmetric per output channel, int32 biases at input_scale x filter_scale, ReLU6 fused, the
//! pool at its input's parameters, and for a classifier the logits and TFLite's softmax
//! (output 1/256, zero point -128). BatchNorm is folded first (`model::params::fold`), as the
//! converter folds it. `rules.rs` holds the arithmetic, `calibration.rs` the ranges,
//! `images.rs` where the calibration images come from. Unlike the converter, the biases are
//! then corrected for the shift quantization causes (`bias_correction.rs`).

pub mod bias_correction;
pub mod calibration;
pub mod images;
pub mod rules;

pub use calibration::{Calibration, Calibrator, Range};

use crate::model::arch::LayerKind;
use crate::model::params::{fold, logits_layer};
use crate::model::ModelError;
use crate::weights::tflite::{QParams, QuantKind, QuantLayer, QuantSoftmax, QuantizedNet};
use crate::weights::Weights;
use rules::{activation_params, quantize_bias, quantize_filter};

/// The model's input is the [0,1] image as 2x - 1: its range is [-1, 1] whatever the images, so
/// that no pixel of any image clips.
const INPUT_RANGE: Range = Range {
    min: -1.0,
    max: 1.0,
};

#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(
        "the calibration has {found} body ranges{logits}, but the weights have {expected} layers{head}"
    )]
    Mismatch {
        found: usize,
        expected: usize,
        logits: &'static str,
        head: &'static str,
    },
}

/// Float `weights` (canonical tensors, BatchNorm separate or folded) quantized with the ranges
/// of `calibration` (made from the same weights, see [`Calibrator`]) into the network a
/// full-integer .tflite holds, at the calibration's input size.
pub fn quantize(
    weights: &Weights,
    calibration: &Calibration,
) -> Result<QuantizedNet, QuantizeError> {
    let layers = weights.arch.layers();
    let logits_tensors = if weights.has_logits() {
        Some(logits_layer(&weights.tensors, weights.arch)?)
    } else {
        None
    };
    if calibration.body.len() != layers.len()
        || calibration.logits.is_some() != logits_tensors.is_some()
    {
        let with = |b: bool| if b { " and logits" } else { "" };
        return Err(QuantizeError::Mismatch {
            found: calibration.body.len(),
            expected: layers.len(),
            logits: with(calibration.logits.is_some()),
            head: with(logits_tensors.is_some()),
        });
    }
    let input = activation_params(INPUT_RANGE.min, INPUT_RANGE.max);
    let mut body = Vec::with_capacity(layers.len());
    let mut prev = input;
    for (layer, range) in layers.iter().zip(&calibration.body) {
        let (filter, bias) = fold(&weights.tensors, layer)?;
        let kind = match layer.kind {
            LayerKind::Conv => QuantKind::Conv0,
            LayerKind::Depthwise => QuantKind::Depthwise,
            LayerKind::Pointwise => QuantKind::Pointwise,
        };
        let output = activation_params(range.min, range.max);
        let l = quantized_layer(
            kind,
            &filter,
            &bias,
            layer.in_channels,
            layer.out_channels,
            prev,
            output,
        );
        body.push(QuantLayer {
            stride: layer.stride,
            ..l
        });
        prev = output;
    }
    // AVERAGE_POOL_2D keeps its input's parameters.
    let pooled = prev;
    let (logits, softmax) = match (logits_tensors, calibration.logits) {
        (Some((w, b)), Some(range)) => {
            let classes = b.shape[0];
            let output = activation_params(range.min, range.max);
            let l = quantized_layer(
                QuantKind::Logits,
                &w.data,
                &b.data,
                weights.arch.feature_dim(),
                classes,
                pooled,
                output,
            );
            let softmax = QuantSoftmax {
                beta: 1.0,
                input: output,
                output: QParams {
                    scale: 1.0 / 256.0,
                    zero_point: -128,
                },
            };
            (Some(l), Some(softmax))
        }
        _ => (None, None),
    };
    let mut net = QuantizedNet {
        arch: weights.arch,
        signed: true,
        input,
        input_size: calibration.input_size,
        body,
        pooled,
        logits,
        softmax,
        // The [-1,1] image quantized as an int8 input; the exporter puts a uint8 QUANTIZE in
        // front when it writes the file.
        uint8_input: false,
    };
    bias_correction::correct_biases(&mut net, weights, &calibration.samples)?;
    Ok(net)
}

/// One layer from its folded float filter (TF layout, output channel last) and bias, in the
/// layout `QuantLayer` holds: HWIO for Conv2d_0, `[3][3][C]` for a depthwise layer (both as
/// TF stores them), `[out][in]` for pointwise and logits (TF's `[1,1,in,out]` transposed).
fn quantized_layer(
    kind: QuantKind,
    filter: &[f32],
    bias: &[f32],
    in_channels: usize,
    out_channels: usize,
    input: QParams,
    output: QParams,
) -> QuantLayer {
    let (q, filter_scales) = quantize_filter(filter, out_channels);
    let filter = match kind {
        QuantKind::Pointwise | QuantKind::Logits => {
            let mut t = vec![0; q.len()];
            for (i, row) in q.chunks_exact(out_channels).enumerate() {
                for (o, &v) in row.iter().enumerate() {
                    t[o * in_channels + i] = v;
                }
            }
            t
        }
        QuantKind::Conv0 | QuantKind::Depthwise => q,
    };
    QuantLayer {
        kind,
        stride: 1,
        in_channels,
        out_channels,
        filter,
        filter_zero_point: 0,
        bias: quantize_bias(bias, input.scale, &filter_scales),
        filter_scales,
        input,
        output,
        relu6: kind != QuantKind::Logits,
    }
}
