//! TFLiteConverter's full-integer quantization rules, one function each: how a calibrated range
//! becomes an int8 scale and zero point, how a filter is quantized symmetric per output channel,
//! and how a bias becomes int32. Followed from TensorFlow's MLIR quantizer
//! (compiler/mlir/lite/quantization: `ConvertStatsToQDQs`, `fakeQuantAttrsToType`'s
//! `getNudgedScaleAndZeroPoint`, `GetUniformQuantizedPerAxisTypeForWeight`,
//! `ExpandVerySmallRange`, `GetUniformQuantizedTypeForBias`).

use crate::weights::tflite::QParams;

/// int8 storage.
const QMIN: i32 = -128;
const QMAX: i32 = 127;
/// Filters use the narrow range [-127, 127], so that the zero point of a symmetric range is 0.
const FILTER_QMAX: i32 = 127;
/// A weight range narrower than this is widened to [-0.5, 0.5] (`ExpandVerySmallRange`): a
/// channel of zeros still gets a positive scale.
const NEAR_ZERO: f64 = 1e-6;

/// An activation's asymmetric int8 parameters from its calibrated `[min, max]`: the range is
/// first widened to hold 0 (so that 0, ReLU's floor and the zero padding, is exact), then
/// scale = (max - min) / 255 and the zero point is solved from the end with the smaller rounding
/// error, rounded half away from zero and clamped to [-128, 127]. An empty range (all zeros)
/// gets scale 1 and zero point -128.
pub fn activation_params(min: f32, max: f32) -> QParams {
    let (rmin, rmax) = ((min as f64).min(0.0), (max as f64).max(0.0));
    let (qmin, qmax) = (QMIN as f64, QMAX as f64);
    if (rmax - rmin).abs() < f64::EPSILON {
        return QParams {
            scale: 1.0,
            zero_point: QMIN,
        };
    }
    let scale = (rmax - rmin) / (qmax - qmin);
    let from_min = qmin - rmin / scale;
    let from_max = qmax - rmax / scale;
    let zero = if qmin.abs() + (rmin / scale).abs() < qmax.abs() + (rmax / scale).abs() {
        from_min
    } else {
        from_max
    };
    QParams {
        scale: scale as f32,
        // f64::round rounds half away from zero, as C's round.
        zero_point: zero.round().clamp(qmin, qmax) as i32,
    }
}

/// Per-channel symmetric int8 of a filter whose output channel is the fastest-varying index of
/// `filter` (TF layouts: HWIO, `[kh,kw,C,1]`, `[1,1,in,out]`) with `channels` of them: one scale
/// per channel, max|w| / 127, and the integers round(w / scale) in [-127, 127], in the same
/// layout.
pub fn quantize_filter(filter: &[f32], channels: usize) -> (Vec<i32>, Vec<f32>) {
    let mut bound = vec![0f64; channels];
    let mut lo = vec![0f64; channels];
    let mut hi = vec![0f64; channels];
    for (i, &v) in filter.iter().enumerate() {
        let c = i % channels;
        lo[c] = lo[c].min(v as f64);
        hi[c] = hi[c].max(v as f64);
    }
    for c in 0..channels {
        let (l, h) = if hi[c] - lo[c] > NEAR_ZERO {
            (lo[c], hi[c])
        } else {
            (lo[c].min(-0.5), hi[c].max(0.5))
        };
        bound[c] = l.abs().max(h.abs());
    }
    let scales: Vec<f32> = bound
        .iter()
        .map(|&b| (b / FILTER_QMAX as f64) as f32)
        .collect();
    let q = filter
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let s = scales[i % channels] as f64;
            (v as f64 / s)
                .round()
                .clamp(-FILTER_QMAX as f64, FILTER_QMAX as f64) as i32
        })
        .collect();
    (q, scales)
}

/// A bias as int32 at scale input_scale x filter_scale (per channel), rounded half away from
/// zero and saturated: the accumulator's own scale, so that it adds to the products as is.
pub fn quantize_bias(bias: &[f32], input_scale: f32, filter_scales: &[f32]) -> Vec<i32> {
    bias.iter()
        .zip(filter_scales)
        .map(|(&b, &fs)| {
            let scale = input_scale as f64 * fs as f64;
            (b as f64 / scale)
                .round()
                .clamp(i32::MIN as f64, i32::MAX as f64) as i32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-worked: [-1, 1] (the model's input) has scale 2/255; the zero point from the max,
    /// 127 - 127.5 = -0.5 (its error, 254.5, is the smaller), rounds away from zero to -1.
    #[test]
    fn input_range() {
        let q = activation_params(-1.0, 1.0);
        assert_eq!(q.scale, (2.0f64 / 255.0) as f32);
        assert_eq!(q.zero_point, -1);
    }

    /// A ReLU6 output starts at 0: zero point -128, scale max / 255.
    #[test]
    fn relu_range() {
        let q = activation_params(0.0, 6.0);
        assert_eq!(q.scale, (6.0f64 / 255.0) as f32);
        assert_eq!(q.zero_point, -128);
    }

    /// A range that misses 0 is widened to hold it: [2, 5] is [0, 5]; [-3, -1] is [-3, 0],
    /// zero point 127.
    #[test]
    fn range_widened_to_zero() {
        assert_eq!(activation_params(2.0, 5.0), activation_params(0.0, 5.0));
        let q = activation_params(-3.0, -1.0);
        assert_eq!(q.scale, (3.0f64 / 255.0) as f32);
        assert_eq!(q.zero_point, 127);
    }

    /// Logits-like [-10, 20]: scale 30/255, zero point -128 + 10 / (30/255) = -43.
    #[test]
    fn asymmetric_range() {
        let q = activation_params(-10.0, 20.0);
        assert_eq!(q.zero_point, -43);
        // Zero is exact: it dequantizes to 0 and -10, 20 land within half a step of the ends.
        let real = |x: i32| q.scale as f64 * (x - q.zero_point) as f64;
        assert!((real(-128) + 10.0).abs() < q.scale as f64 / 2.0 + 1e-6);
        assert!((real(127) - 20.0).abs() < q.scale as f64 / 2.0 + 1e-6);
    }

    #[test]
    fn empty_range() {
        assert_eq!(
            activation_params(0.0, 0.0),
            QParams {
                scale: 1.0,
                zero_point: -128
            }
        );
    }

    /// Two channels interleaved (channel last): channel 0's bound 31.75 gives scale 0.25,
    /// channel 1's 63.5 scale 0.5 (exact in binary); half steps round away from zero.
    #[test]
    fn per_channel_filter() {
        let (q, s) = quantize_filter(&[31.75, -63.5, 0.125, 10.0, -0.375, -0.25], 2);
        assert_eq!(s, vec![0.25, 0.5]);
        assert_eq!(q, vec![127, -127, 1, 20, -2, -1]);
    }

    /// A channel of zeros gets the scale of [-0.5, 0.5], not 0.
    #[test]
    fn zero_channel() {
        let (q, s) = quantize_filter(&[0.0, 1.0, 0.0, -1.0], 2);
        assert_eq!(s[0], (0.5f64 / 127.0) as f32);
        assert_eq!(q, vec![0, 127, 0, -127]);
    }

    /// Bias scale 0.5 x 0.25 = 0.125: 0.3125 is 2.5 steps, away from zero 3; -0.3125 is -3;
    /// a huge bias saturates.
    #[test]
    fn bias_rounding() {
        assert_eq!(
            quantize_bias(&[0.3125, -0.3125, 1e9], 0.5, &[0.25, 0.25, 0.25]),
            vec![3, -3, i32::MAX]
        );
    }
}
