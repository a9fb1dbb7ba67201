//! TensorFlow Lite's fixed-point requantization, exactly: a real multiplier (input scale x
//! filter scale / output scale) becomes an int32 mantissa and a power-of-two exponent
//! (`QuantizeMultiplier`), and an int32 accumulator is scaled by them with gemmlowp's
//! rounding-doubling high multiply and rounding right shift (`MultiplyByQuantizedMultiplier`,
//! the default double-rounding form; TFLITE_SINGLE_ROUNDING is not set in TFLite's builds).
//! Sources: tensorflow/lite/kernels/internal/quantization_util.cc and common.h; gemmlowp's
//! fixedpoint.h.

/// `real ~= multiplier * 2^(shift - 31)`, multiplier in [2^30, 2^31) (or 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Multiplier {
    pub(crate) multiplier: i32,
    pub(crate) shift: i32,
}

/// `QuantizeMultiplier`: frexp, round the mantissa to 31 bits (half away from zero), carry a
/// mantissa that rounded up to 2^31 into the exponent, and flush exponents below -31 to zero.
pub(crate) fn quantize_multiplier(real: f64) -> Multiplier {
    if real == 0.0 || !real.is_finite() {
        return Multiplier {
            multiplier: 0,
            shift: 0,
        };
    }
    let (mantissa, mut shift) = frexp(real);
    let mut q = (mantissa * (1i64 << 31) as f64).round() as i64;
    if q == 1i64 << 31 {
        q /= 2;
        shift += 1;
    }
    if shift < -31 {
        shift = 0;
        q = 0;
    }
    Multiplier {
        multiplier: q as i32,
        shift,
    }
}

/// C's frexp for finite non-zero `x`: `x = m * 2^e` with |m| in [0.5, 1).
fn frexp(x: f64) -> (f64, i32) {
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // Subnormal: scale into the normal range first.
        let (m, e) = frexp(x * (1u64 << 54) as f64);
        return (m, e - 54);
    }
    let m = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (m, exp - 1022)
}

/// gemmlowp `SaturatingRoundingDoublingHighMul`: the high 32 bits of 2ab, rounded to nearest
/// with ties upward (gemmlowp's nudge, then C++'s truncating division: 1.5 -> 2, -1.5 -> -1),
/// saturating the one overflow case.
#[inline(always)]
pub(crate) fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge = if ab >= 0 {
        1i64 << 30
    } else {
        1 - (1i64 << 30)
    };
    // C++ integer division truncates toward zero, as Rust's does.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp `RoundingDivideByPOT`: x / 2^exponent rounded to nearest, ties away from zero.
#[inline(always)]
pub(crate) fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    let mask = (1i32 << exponent).wrapping_sub(1);
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// TFLite `MultiplyByQuantizedMultiplier(x, multiplier, shift)`.
#[inline(always)]
pub(crate) fn multiply_by_quantized_multiplier(x: i32, m: Multiplier) -> i32 {
    let left = m.shift.max(0);
    let right = (-m.shift).max(0);
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x.wrapping_mul(1 << left), m.multiplier),
        right,
    )
}

/// TFLite's `CalculateActivationRangeQuantized`: the clamp of a layer's output in its integer
/// domain `[qmin, qmax]`, ReLU6 as quantize(0) and quantize(6) (f32 division, rounded half away
/// from zero), no activation as the whole range.
pub(crate) fn activation_range(
    relu6: bool,
    scale: f32,
    zero_point: i32,
    qmin: i32,
    qmax: i32,
) -> (i32, i32) {
    if !relu6 {
        return (qmin, qmax);
    }
    let quantize = |f: f32| zero_point + (f / scale).round() as i32;
    (qmin.max(quantize(0.0)), qmax.min(quantize(6.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipliers_match_tflite_conventions() {
        // 0.5 = 2^30 * 2^(0-31)... frexp(0.5) = (0.5, 0): mantissa 2^30, shift 0.
        assert_eq!(
            quantize_multiplier(0.5),
            Multiplier {
                multiplier: 1 << 30,
                shift: 0
            }
        );
        assert_eq!(quantize_multiplier(1.0).shift, 1);
        // A mantissa that rounds up to 2^31 moves into the exponent.
        let m = quantize_multiplier(1.0 - 1e-12);
        assert_eq!((m.multiplier, m.shift), (1 << 30, 1));
        // Too small to matter: flushed to zero.
        assert_eq!(quantize_multiplier(1e-12).multiplier, 0);
        for real in [0.000996, 0.0123, 0.37, 0.999, 1.7, 3.2] {
            let m = quantize_multiplier(real);
            let back = m.multiplier as f64 * 2f64.powi(m.shift - 31);
            assert!((back - real).abs() <= real * 1e-9, "{real}: {m:?}");
        }
    }

    #[test]
    fn rounding_is_gemmlowps() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3); // 2.5 -> 3
        assert_eq!(rounding_divide_by_pot(-5, 1), -3); // -2.5 -> -3
        assert_eq!(rounding_divide_by_pot(7, 2), 2); // 1.75 -> 2
        assert_eq!(rounding_divide_by_pot(-6, 2), -2); // -1.5 -> -2
        assert_eq!(rounding_divide_by_pot(-5, 2), -1); // -1.25 -> -1
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(1 << 30, 1 << 30),
            1 << 29
        );
        // x * 0.5 with multiplier 2^30, shift 0 (the high multiply alone): ties upward,
        // 1.5 -> 2, -1.5 -> -1, -2.5 -> -2.
        let half = quantize_multiplier(0.5);
        assert_eq!(multiply_by_quantized_multiplier(3, half), 2);
        assert_eq!(multiply_by_quantized_multiplier(-3, half), -1);
        assert_eq!(multiply_by_quantized_multiplier(-5, half), -2);
        // With a right shift, the shift's rounding (ties away from zero) decides: x * 0.25.
        let quarter = quantize_multiplier(0.25);
        assert_eq!(quarter.shift, -1);
        assert_eq!(multiply_by_quantized_multiplier(-6, quarter), -2);
        assert_eq!(
            multiply_by_quantized_multiplier(1000, quantize_multiplier(2.0)),
            2000
        );
    }

    #[test]
    fn relu6_range_of_googles_activations() {
        // Every activation of mobilenet_v1_0.25_128_quant: scale 6/255, zero point 0.
        assert_eq!(activation_range(true, 0.023528483, 0, 0, 255), (0, 255));
        assert_eq!(activation_range(true, 0.05, 10, 0, 255), (10, 130));
        assert_eq!(activation_range(false, 0.05, 10, 0, 255), (0, 255));
    }
}
