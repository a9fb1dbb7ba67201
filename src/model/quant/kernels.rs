//! The integer layers of a quantized MobileNet V1, as TensorFlow Lite's reference kernels define
//! them (reference_ops::Conv / DepthwiseConv for uint8, reference_integer_ops::*PerChannel for
//! int8): int32 accumulators of (filter - filter zero point) x (input - input zero point) over
//! the taps that fall inside the image (SAME padding reads nothing outside it), plus the int32
//! bias, requantized per output channel, plus the output zero point, clamped to the activation
//! range. Activations are uint8 here: an int8 model's are shifted by 128 when it is built, which
//! leaves every (value - zero point) and so every result unchanged.
//!
//! The pointwise layers (most of the work) multiply 16-bit operands into 32-bit sums, which the
//! compiler turns into `vpmaddwd`; integer sums are exact in any order, so every kernel here gives
//! the same bits as TFLite's whatever its loop order.

// The kernels take what TFLite's take (shapes, zero points, filter, requantization, output).
#![allow(clippy::too_many_arguments)]

use super::requant::{multiply_by_quantized_multiplier, Multiplier};
use crate::model::kernels::simd::{dispatch, Target};
use crate::model::padding::same_padding;
use crate::weights::tflite::QParams;

// Each kernel's body is compiled once per instruction-set level and run at the level its layer
// was built with (`simd::dispatch!`, as the float kernels are): the loops are plain Rust, which
// the compiler vectorizes with the widest registers the level allows.
dispatch!(pub(crate) fn conv3x3(input: &[u8], dims: (usize, usize, usize), input_zero_point: i32, filter: &[i16], cout: usize, stride: usize, rq: &Requant, rows: std::ops::Range<usize>, out: &mut [u8]) => conv3x3_body);
dispatch!(pub(crate) fn depthwise3x3(input: &[u8], dims: (usize, usize, usize), input_zero_point: i32, filter: &[i16], stride: usize, rq: &Requant, rows: std::ops::Range<usize>, out: &mut [u8]) => depthwise3x3_body);
dispatch!(pub(crate) fn pointwise(input: &[u8], pixels: usize, cin: usize, input_zero_point: i32, filter: &[i16], cout: usize, rq: &Requant, out: &mut [u8]) => pointwise_body);

dispatch!(pub(crate) fn quantize_uint8_input(images: &[f32], out: &mut [u8]) => quantize_uint8_body);
dispatch!(pub(crate) fn quantize_int8_input(images: &[f32], input: QParams, out: &mut [u8]) => quantize_int8_body);

// The input conversions avoid libm's rounding calls (the baseline x86-64 target has no rounding
// instruction), so that they vectorize: they run over every value of every batch.

/// [0,1] pixels to uint8: 255 x rounded half to even. For y in [0, 255], y + 2^23 rounds (ties
/// to even, the default mode) to the float whose low mantissa bits are that integer.
#[inline(always)]
fn quantize_uint8_body<T: Target>(images: &[f32], out: &mut [u8]) {
    for (o, &x) in out.iter_mut().zip(images) {
        // max/min rather than clamp: a NaN becomes 0 instead of staying NaN.
        #[allow(clippy::manual_clamp)]
        let y = (x * 255.0).max(0.0).min(255.0);
        *o = ((y + 8_388_608.0).to_bits() & 0xff) as u8;
    }
}

/// [0,1] pixels to the model's [-1,1] input quantized as TFLite's QUANTIZE does (round(v /
/// scale) half away from zero, plus the zero point, clamped), plus 128 (the uint8 domain). The
/// rounding is exact for |v| < 2^23; larger values are clamped to the int8 range anyway.
#[inline(always)]
fn quantize_int8_body<T: Target>(images: &[f32], input: QParams, out: &mut [u8]) {
    let QParams { scale, zero_point } = input;
    for (o, &x) in out.iter_mut().zip(images) {
        // Clamped first (NaN to the low end), so that the cast is a plain truncation.
        #[allow(clippy::manual_clamp)]
        let v = ((2.0 * x - 1.0) / scale).max(-8_388_608.0).min(8_388_608.0);
        // SAFETY: v is finite and within i32 (clamped above).
        let t: i32 = unsafe { v.to_int_unchecked() };
        let frac = v - t as f32;
        let q = t + (frac >= 0.5) as i32 - (frac <= -0.5) as i32 + zero_point;
        *o = (q.clamp(-128, 127) + 128) as u8;
    }
}

/// Everything a layer needs to turn its int32 accumulators into output bytes.
pub(crate) struct Requant {
    /// Per output channel.
    pub(crate) multipliers: Vec<Multiplier>,
    pub(crate) bias: Vec<i32>,
    pub(crate) output_zero_point: i32,
    pub(crate) act_min: i32,
    pub(crate) act_max: i32,
}

impl Requant {
    #[inline(always)]
    fn store(&self, acc: &[i32], out: &mut [u8]) {
        for (((o, &a), &b), &m) in out
            .iter_mut()
            .zip(acc)
            .zip(&self.bias)
            .zip(&self.multipliers)
        {
            let v = multiply_by_quantized_multiplier(a.wrapping_add(b), m) + self.output_zero_point;
            *o = v.clamp(self.act_min, self.act_max) as u8;
        }
    }
}

/// A layer's requantization laid out for the vector kernels (`vnni.rs`, 16 lanes; `avx2.rs`,
/// 8): one entry per output channel, padded to a multiple of 16 with zero multipliers.
pub(crate) struct VecRequant {
    pub(crate) multiplier: Vec<i32>,
    pub(crate) left: Vec<i32>,
    pub(crate) right: Vec<i32>,
    /// The bias plus `extra`'s per-channel constant (the kernels' decompositions).
    pub(crate) offset: Vec<i32>,
    pub(crate) output_zero_point: i32,
    pub(crate) act_min: i32,
    pub(crate) act_max: i32,
    /// The same requantization as one 64-bit multiply-add and shift, where it is exact.
    pub(crate) relu64: Option<Relu64>,
}

impl VecRequant {
    /// `acc_bound` bounds |accumulator| as the kernel passes it to the requantization (before
    /// `offset` is added).
    pub(crate) fn new(rq: &Requant, extra: impl Fn(usize) -> i32, acc_bound: i64) -> Self {
        let n = rq.bias.len().div_ceil(16) * 16;
        let mut v = VecRequant {
            multiplier: vec![0; n],
            left: vec![0; n],
            right: vec![0; n],
            offset: vec![0; n],
            output_zero_point: rq.output_zero_point,
            act_min: rq.act_min,
            act_max: rq.act_max,
            relu64: None,
        };
        for (i, m) in rq.multipliers.iter().enumerate() {
            v.multiplier[i] = m.multiplier;
            v.left[i] = m.shift.max(0);
            v.right[i] = (-m.shift).max(0);
            v.offset[i] = rq.bias[i].wrapping_add(extra(i));
        }
        v.relu64 = Relu64::new(&v, acc_bound);
        v
    }
}

/// A bound on |sum of `terms` products| of a filter value from `filter` and an input byte minus
/// its zero point (either in [-255, 255]): what `VecRequant::new` takes.
pub(crate) fn acc_bound(filter: &[i16], terms: usize) -> i64 {
    let widest = filter.iter().map(|&v| (v as i64).abs()).max().unwrap_or(0);
    terms as i64 * 255 * widest
}

/// TFLite's requantization of a layer that clamps at or above its output zero point (ReLU and
/// ReLU6: every body layer) in one step per lane:
///
/// out = clamp((acc * M + nudge) >> (31 + s)), nudge = offset * M + 2^30 + [s > 0] 2^(30 + s)
/// + zero_point * 2^(31 + s)
///
/// For acc + offset >= 0 this is MultiplyByQuantizedMultiplier exactly: gemmlowp's high multiply
/// is floor((x M + 2^30) / 2^31) there, RoundingDivideByPOT is floor((v + 2^(s-1)) / 2^s), and
/// floor(floor(a / 2^31) / 2^s) = floor(a / 2^(31+s)). For acc + offset < 0 both forms give at
/// most the zero point, which the clamp raises to the same act_min; the sign-dependent rounding
/// of negative values, a third of the general form's work, is never seen. Built only where no
/// multiplier shifts left, s >= 1, and every sum stays inside i64 (and acc + offset inside i32,
/// as TFLite's own int32 arithmetic assumes).
///
/// Laid out for `vnni.rs`'s 64-bit products: the odd channels' shifts are 32 less, so that the
/// result lands in the high half of the lane, where one blend takes it. Where the clamp is the
/// whole uint8 range (`saturating`), the nudges also subtract 128 x 2^(31 + s): the results
/// are then the int8 domain's, and a signed saturating narrow to bytes is the clamp.
pub(crate) struct Relu64 {
    /// Per 16-channel block, the 8 even channels' values, then the 8 odd channels'.
    pub(crate) nudge: Vec<i64>,
    pub(crate) shift: Vec<i64>,
    pub(crate) saturating: bool,
}

impl Relu64 {
    fn new(v: &VecRequant, acc_bound: i64) -> Option<Self> {
        if v.act_min < v.output_zero_point || v.left.iter().any(|&l| l != 0) {
            return None;
        }
        let saturating = v.act_min == 0 && v.act_max == 255;
        let n = v.multiplier.len();
        let (mut nudge, mut shift) = (vec![0i64; n], vec![0i64; n]);
        for ch in 0..n {
            let (m, s, o) = (
                v.multiplier[ch] as i128,
                v.right[ch] as i128,
                v.offset[ch] as i128,
            );
            let rounding = (1i128 << 30) + if s > 0 { 1i128 << (30 + s) } else { 0 };
            let zero_point = v.output_zero_point - if saturating { 128 } else { 0 };
            let total = o * m + rounding + zero_point as i128 * (1i128 << (31 + s));
            let reach = acc_bound as i128 * m + total.abs();
            // A zero multiplier (the padding lanes) needs no shift of its own.
            let s_ok = (1..=31).contains(&s) || m == 0;
            if !s_ok || acc_bound as i128 + o.abs() >= 1 << 31 || reach >= 1 << 62 {
                return None;
            }
            let at = Self::slot(ch);
            nudge[at] = total as i64;
            shift[at] = (31 + s.max(1)) as i64 - Self::high(ch);
        }
        Some(Relu64 {
            nudge,
            shift,
            saturating,
        })
    }

    /// Where channel `ch`'s values sit: within its 16-channel block, in the lane order of
    /// `vnni.rs`'s even / odd 64-bit products.
    fn slot(ch: usize) -> usize {
        let (block, lane) = (ch / 16, ch % 16);
        block * 16 + (lane % 2) * 8 + lane / 2
    }

    /// 32 for a channel whose result is read from the high half of its 64-bit lane (the odd
    /// ones), 0 otherwise.
    fn high(ch: usize) -> i64 {
        32 * (ch % 2) as i64
    }

    /// The scalar form, for tests: channel `ch` of the layer.
    #[cfg(test)]
    pub(crate) fn apply(&self, v: &VecRequant, ch: usize, acc: i32) -> i32 {
        let at = Self::slot(ch);
        let x = acc as i64 * v.multiplier[ch] as i64 + self.nudge[at];
        let q = ((x >> self.shift[at]) >> Self::high(ch)) as i32;
        if self.saturating {
            q.clamp(-128, 127) + 128
        } else {
            q.clamp(v.act_min, v.act_max)
        }
    }
}

/// The taps of the 3x3 SAME window of output pixel (`oy`, `ox`) that fall inside an `h` x `w`
/// image whose padding before is (`top`, `left`): (tap index ky * 3 + kx, y, x). TFLite skips the
/// others, which is what a zero (input - zero point) would give.
#[inline(always)]
pub(crate) fn taps_inside(
    (oy, ox): (usize, usize),
    stride: usize,
    (top, left): (usize, usize),
    (h, w): (usize, usize),
) -> impl Iterator<Item = (usize, usize, usize)> {
    (0..9).filter_map(move |t| {
        let y = (oy * stride + t / 3).checked_sub(top).filter(|&y| y < h)?;
        let x = (ox * stride + t % 3).checked_sub(left).filter(|&x| x < w)?;
        Some((t, y, x))
    })
}

/// Output rows `rows` of a 3x3 SAME convolution (Conv2d_0: stride 2, 3 input channels) over
/// one NHWC image. `filter` is HWIO `[3][3][cin][cout]` with the filter zero point subtracted.
#[inline(always)]
fn conv3x3_body<T: Target>(
    input: &[u8],
    (h, w, cin): (usize, usize, usize),
    input_zero_point: i32,
    filter: &[i16],
    cout: usize,
    stride: usize,
    rq: &Requant,
    rows: std::ops::Range<usize>,
    out: &mut [u8],
) {
    let (_, (top, _)) = same_padding(h, 3, stride);
    let (ow, (left, _)) = same_padding(w, 3, stride);
    let mut acc = vec![0i32; cout];
    for (r, oy) in rows.enumerate() {
        for ox in 0..ow {
            acc.fill(0);
            for (t, y, x) in taps_inside((oy, ox), stride, (top, left), (h, w)) {
                let px = &input[(y * w + x) * cin..][..cin];
                for (ci, &v) in px.iter().enumerate() {
                    let xv = v as i32 - input_zero_point;
                    let taps = &filter[(t * cin + ci) * cout..][..cout];
                    for (a, &f) in acc.iter_mut().zip(taps) {
                        *a += f as i32 * xv;
                    }
                }
            }
            rq.store(&acc, &mut out[(r * ow + ox) * cout..][..cout]);
        }
    }
}

/// A 3x3 SAME depthwise convolution (channel multiplier 1) over output rows `rows` of one NHWC
/// image; `out` holds those rows. `filter` is `[3][3][c]`, filter zero point subtracted.
#[inline(always)]
fn depthwise3x3_body<T: Target>(
    input: &[u8],
    (h, w, c): (usize, usize, usize),
    input_zero_point: i32,
    filter: &[i16],
    stride: usize,
    rq: &Requant,
    rows: std::ops::Range<usize>,
    out: &mut [u8],
) {
    let (_, (top, _)) = same_padding(h, 3, stride);
    let (ow, (left, _)) = same_padding(w, 3, stride);
    let mut acc = vec![0i32; c];
    let mut centred = vec![0i16; c];
    for (r, oy) in rows.enumerate() {
        for ox in 0..ow {
            acc.fill(0);
            for (t, y, x) in taps_inside((oy, ox), stride, (top, left), (h, w)) {
                let px = &input[(y * w + x) * c..][..c];
                for (d, &v) in centred.iter_mut().zip(px) {
                    *d = (v as i32 - input_zero_point) as i16;
                }
                let taps = &filter[t * c..][..c];
                for ((a, &f), &xv) in acc.iter_mut().zip(taps).zip(&centred) {
                    *a += f as i32 * xv as i32;
                }
            }
            rq.store(&acc, &mut out[(r * ow + ox) * c..][..c]);
        }
    }
}

/// A 1x1 convolution over `pixels` pixels of `cin` channels: `filter` is `[cout][cin]`, filter
/// zero point subtracted.
#[inline(always)]
fn pointwise_body<T: Target>(
    input: &[u8],
    pixels: usize,
    cin: usize,
    input_zero_point: i32,
    filter: &[i16],
    cout: usize,
    rq: &Requant,
    out: &mut [u8],
) {
    let mut centred = vec![0i16; cin];
    let mut acc = vec![0i32; cout];
    for p in 0..pixels {
        for (d, &v) in centred.iter_mut().zip(&input[p * cin..][..cin]) {
            *d = (v as i32 - input_zero_point) as i16;
        }
        for (a, row) in acc.iter_mut().zip(filter.chunks_exact(cin)) {
            *a = dot_i16(row, &centred);
        }
        rq.store(&acc, &mut out[p * cout..][..cout]);
    }
}

#[inline(always)]
fn dot_i16(a: &[i16], b: &[i16]) -> i32 {
    // Eight independent lanes so the compiler keeps a vector accumulator.
    let mut lanes = [0i32; 8];
    let (ac, at) = a.split_at(a.len() / 8 * 8);
    let (bc, bt) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(8).zip(bc.chunks_exact(8)) {
        for i in 0..8 {
            lanes[i] += x[i] as i32 * y[i] as i32;
        }
    }
    let mut sum: i32 = lanes.iter().sum();
    for (&x, &y) in at.iter().zip(bt) {
        sum += x as i32 * y as i32;
    }
    sum
}

/// TFLite's quantized AVERAGE_POOL_2D over the whole map of one image: the sum of every pixel
/// divided by their count, rounded half away from zero in the model's own integer domain
/// (`signed`: int8, whose values are these minus 128), clamped to the activation range (the
/// whole range: the pool has no activation).
pub(crate) fn global_average(input: &[u8], pixels: usize, c: usize, signed: bool, out: &mut [u8]) {
    let n = pixels as i32;
    // Pixel by pixel into one sum per channel: contiguous, so that it vectorizes.
    let mut sums = vec![0i32; c];
    for px in input[..pixels * c].chunks_exact(c) {
        for (s, &v) in sums.iter_mut().zip(px) {
            *s += v as i32;
        }
    }
    for (o, mut sum) in out.iter_mut().zip(sums) {
        if signed {
            sum -= 128 * n;
        }
        // reference_ops (uint8): (acc + n/2) / n; reference_integer_ops (int8): away from zero.
        let avg = if sum >= 0 {
            (sum + n / 2) / n
        } else {
            (sum - n / 2) / n
        };
        let avg = if signed { avg + 128 } else { avg };
        *o = avg.clamp(0, 255) as u8;
    }
}

/// TFLite's quantized SOFTMAX (uint8 / int8 in and out, the table form of optimized_ops that
/// both its builtin and reference resolvers run): `table[d] = exp(-input_scale * beta * d)` in
/// f32 for every distance d from the row's maximum, the row's sum in f32 in index order, each
/// probability `table * (1 / (sum * 1/256))` rounded to the output: `(p + 0.5) as int` for
/// uint8, round-half-away then minus 128 for int8 (its zero point).
pub(crate) struct Softmax {
    table: [f32; 256],
    signed: bool,
}

impl Softmax {
    pub(crate) fn new(input_scale: f32, beta: f32, signed: bool) -> Self {
        let scale = -input_scale * beta;
        let mut table = [0f32; 256];
        for (d, t) in table.iter_mut().enumerate() {
            *t = (scale * d as f32).exp();
        }
        Self { table, signed }
    }

    pub(crate) fn run(&self, input: &[u8], out: &mut [u8]) {
        let max = input.iter().copied().max().unwrap_or(0);
        let exp = |v: u8| self.table[(max - v) as usize];
        let mut sum = 0f32;
        for &v in input {
            sum += exp(v);
        }
        let inv = 1.0f32 / (sum * (1.0 / 256.0));
        for (o, &v) in out.iter_mut().zip(input) {
            let p = exp(v) * inv;
            // In the uint8 domain int8's `round(p) - 128` is `round(p)`.
            let q = if self.signed {
                p.round() as i32
            } else {
                (p + 0.5) as i32
            };
            *o = q.clamp(0, 255) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::requant::{multiply_by_quantized_multiplier, quantize_multiplier};
    use super::*;

    /// The one-step requantization against TFLite's two-step one, on accumulators across the
    /// whole allowed range, exact ties of both roundings included, for multipliers from 2^-22
    /// to just under 1/2 (real layers' are about 2^-4 to 2^-12), offsets of both signs, zero
    /// points across the uint8 range, and the saturating form (the whole uint8 range).
    #[test]
    fn relu64_is_tflites_requantization() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut checked, mut saturating) = (0, 0);
        for _ in 0..400 {
            // Zero point 0 with act_max 255 is the whole uint8 range: the saturating form.
            let zp = if next() % 3 == 0 {
                0
            } else {
                (next() % 256) as i32
            };
            let bound = 1i64 << (next() % 27);
            let rq = Requant {
                multipliers: (0..32)
                    .map(|_| {
                        let e = -((next() % 21) as i32) - 2;
                        quantize_multiplier((1.0 + (next() % 1000) as f64 / 1000.0) * 2f64.powi(e))
                    })
                    .collect(),
                bias: (0..32)
                    .map(|_| (next() % (2 * bound as u64 + 1)) as i32 - bound as i32)
                    .collect(),
                output_zero_point: zp,
                act_min: zp,
                act_max: if next() % 2 == 0 {
                    255
                } else {
                    (zp + 40).min(255)
                },
            };
            let v = VecRequant::new(&rq, |_| 0, bound);
            let fast = v.relu64.as_ref().expect("in range");
            saturating += fast.saturating as usize;
            for ch in 0..32 {
                let m = rq.multipliers[ch];
                for k in 0..64 {
                    let acc = match k % 3 {
                        0 => (next() % (2 * bound as u64 + 1)) as i64 - bound,
                        // Values whose scaled result lands near a tie of either rounding.
                        1 => {
                            let unit = 1i64 << (-m.shift).clamp(0, 26);
                            ((next() % 64) as i64 - 32) * unit / 2 - rq.bias[ch] as i64
                        }
                        _ => -(rq.bias[ch] as i64) + (next() % 5) as i64 - 2,
                    }
                    .clamp(-bound, bound) as i32;
                    let want = (multiply_by_quantized_multiplier(acc + rq.bias[ch], m) + zp)
                        .clamp(rq.act_min, rq.act_max);
                    assert_eq!(fast.apply(&v, ch, acc), want, "acc {acc} ch {ch} {m:?}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 400 * 32 * 64);
        assert!(
            saturating > 50 && saturating < 350,
            "{saturating} of 400 saturating"
        );
    }

    /// Not built where it would be wrong or could overflow.
    #[test]
    fn relu64_only_where_exact() {
        let rq = |act_min, shift| Requant {
            multipliers: vec![super::super::requant::Multiplier {
                multiplier: 1 << 30,
                shift,
            }],
            bias: vec![0],
            output_zero_point: 10,
            act_min,
            act_max: 255,
        };
        assert!(VecRequant::new(&rq(10, -3), |_| 0, 1 << 20)
            .relu64
            .is_some());
        // Values below the zero point are seen: their rounding matters.
        assert!(VecRequant::new(&rq(0, -3), |_| 0, 1 << 20).relu64.is_none());
        // A left shift, or none (the odd lanes' result is read 32 bits up).
        assert!(VecRequant::new(&rq(10, 1), |_| 0, 1 << 20).relu64.is_none());
        assert!(VecRequant::new(&rq(10, 0), |_| 0, 1 << 20).relu64.is_none());
        // Sums that would leave i32, or i64 (a zero point times 2^(31 + 40)).
        assert!(VecRequant::new(&rq(10, -3), |_| 0, 1 << 31)
            .relu64
            .is_none());
        assert!(VecRequant::new(&rq(10, -40), |_| 0, 1 << 20)
            .relu64
            .is_none());
    }
}
