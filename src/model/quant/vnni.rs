//! The AVX-512 VNNI kernels of the integer network: the pointwise layers (and logits) on
//! `vpdpbusd` (four u8 x i8 products summed into each 32-bit lane), the depthwise layers 16
//! channels at a time, and TFLite's requantization in 16 lanes. Every result equals the plain
//! kernels' (`kernels.rs`) bit for bit: the sums are exact integers whatever their order, and the
//! requantization below is gemmlowp's rounding, lane by lane.
//!
//! vpdpbusd multiplies unsigned by signed bytes, so a filter `v = w - filter zero point` (up to
//! 511 values wide for uint8 filters) is stored as `w' = v - c` in i8 with one constant `c` per
//! layer, and the input as its raw bytes:
//!
//! sum (x - zx)(w' + c) = sum x w'  +  c sum x  -  zx (sum w' + c cin)
//!
//! The first term is the dot product, the second one number per pixel, the last one number per
//! output channel (folded into the bias at load time).

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::kernels::Requant;

/// Whether this CPU runs these kernels.
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}

/// Output channels per vector.
const LANES: usize = 16;
/// Pixels per register tile.
const TILE_PIXELS: usize = 4;
/// Output blocks (of 16 channels) per register tile: 4 x 4 accumulators.
const TILE_BLOCKS: usize = 4;

/// A layer's requantization laid out in 16-lane blocks (channels padded with zero multipliers).
pub(crate) struct VecRequant {
    multiplier: Vec<i32>,
    left: Vec<i32>,
    right: Vec<i32>,
    /// The bias, and for pointwise layers the per-channel constant of the decomposition above.
    offset: Vec<i32>,
    output_zero_point: i32,
    act_min: i32,
    act_max: i32,
}

impl VecRequant {
    fn new(rq: &Requant, extra: impl Fn(usize) -> i32) -> Self {
        let n = rq.bias.len().div_ceil(LANES) * LANES;
        let mut v = VecRequant {
            multiplier: vec![0; n],
            left: vec![0; n],
            right: vec![0; n],
            offset: vec![0; n],
            output_zero_point: rq.output_zero_point,
            act_min: rq.act_min,
            act_max: rq.act_max,
        };
        for (i, m) in rq.multipliers.iter().enumerate() {
            v.multiplier[i] = m.multiplier;
            v.left[i] = m.shift.max(0);
            v.right[i] = (-m.shift).max(0);
            v.offset[i] = rq.bias[i].wrapping_add(extra(i));
        }
        v
    }
}

/// A pointwise layer packed for vpdpbusd.
pub(crate) struct VnniPointwise {
    cin: usize,
    cout: usize,
    /// `[cout/16][cin/4][16][4]` i8: block, group of four inputs, lane, input.
    packed: Vec<i8>,
    /// The constant `c` of the decomposition: `v = w' + c`.
    c: i32,
    rq: VecRequant,
}

impl VnniPointwise {
    /// `filter` is `[cout][cin]` with the filter zero point subtracted; None when the layer's
    /// shape does not suit these kernels (input channels not a multiple of 4).
    pub(crate) fn new(
        filter: &[i16],
        cin: usize,
        cout: usize,
        input_zero_point: i32,
        rq: &Requant,
    ) -> Option<Self> {
        if cin % 4 != 0 || cin == 0 {
            return None;
        }
        let (lo, hi) = filter.iter().fold((i32::MAX, i32::MIN), |(lo, hi), &v| {
            (lo.min(v as i32), hi.max(v as i32))
        });
        let c = if lo >= -128 && hi <= 127 { 0 } else { lo + 128 };
        if hi - c > 127 {
            return None;
        }
        let blocks = cout.div_ceil(LANES);
        let mut packed = vec![0i8; blocks * cin * LANES];
        let mut wsum = vec![0i32; cout];
        for oc in 0..cout {
            for ic in 0..cin {
                let w = filter[oc * cin + ic] as i32 - c;
                wsum[oc] += w;
                let (b, lane) = (oc / LANES, oc % LANES);
                packed[((b * (cin / 4) + ic / 4) * LANES + lane) * 4 + ic % 4] = w as i8;
            }
        }
        let cin_i = cin as i32;
        let rq = VecRequant::new(rq, |oc| -input_zero_point * (wsum[oc] + c * cin_i));
        Some(Self {
            cin,
            cout,
            packed,
            c,
            rq,
        })
    }

    /// `pixels` pixels of `cin` bytes in, of `cout` bytes out.
    pub(crate) fn run(&self, input: &[u8], pixels: usize, out: &mut [u8]) {
        assert!(input.len() >= pixels * self.cin && out.len() >= pixels * self.cout);
        assert!(available());
        // SAFETY: the CPU has the features (checked above; the layer was built only where
        // `available()`), and the slices hold what the kernel reads and writes (checked above).
        unsafe { self.run_unchecked(input, pixels, out) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn run_unchecked(&self, input: &[u8], pixels: usize, out: &mut [u8]) {
        let blocks = self.cout.div_ceil(LANES);
        let mut p = 0;
        while p < pixels {
            let np = (pixels - p).min(TILE_PIXELS);
            let sums: [i32; TILE_PIXELS] = std::array::from_fn(|i| {
                if i < np {
                    let px = &input[(p + i) * self.cin..][..self.cin];
                    self.c * px.iter().map(|&v| v as i32).sum::<i32>()
                } else {
                    0
                }
            });
            let mut b = 0;
            while b < blocks {
                let nb = (blocks - b).min(TILE_BLOCKS);
                // SAFETY: as for `run`: pixels p..p+np and blocks b..b+nb are in bounds.
                unsafe {
                    match (np, nb) {
                        (4, 4) => self.tile::<4, 4>(input, p, b, &sums, out),
                        (4, 3) => self.tile::<4, 3>(input, p, b, &sums, out),
                        (4, 2) => self.tile::<4, 2>(input, p, b, &sums, out),
                        (4, _) => self.tile::<4, 1>(input, p, b, &sums, out),
                        (3, _) => self.tile::<3, 1>(input, p, b, &sums, out),
                        (2, _) => self.tile::<2, 1>(input, p, b, &sums, out),
                        _ => self.tile::<1, 1>(input, p, b, &sums, out),
                    }
                }
                b += match (np, nb) {
                    (4, n) => n,
                    _ => 1,
                };
            }
            p += np;
        }
    }

    /// `P` pixels from `p` times `B` blocks of 16 outputs from block `b`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn tile<const P: usize, const B: usize>(
        &self,
        input: &[u8],
        p: usize,
        b: usize,
        sums: &[i32; TILE_PIXELS],
        out: &mut [u8],
    ) {
        let groups = self.cin / 4;
        let mut acc = [[_mm512_setzero_si512(); B]; P];
        let x0 = input[p * self.cin..].as_ptr();
        let w0 = self.packed[b * groups * LANES * 4..].as_ptr();
        for g in 0..groups {
            let mut w = [_mm512_setzero_si512(); B];
            for (j, wj) in w.iter_mut().enumerate() {
                // SAFETY: block b + j < blocks, group g < groups: inside `packed`.
                *wj = unsafe {
                    _mm512_loadu_si512(w0.add(((j * groups) + g) * LANES * 4) as *const _)
                };
            }
            for (i, row) in acc.iter_mut().enumerate() {
                // SAFETY: pixel p + i < pixels, bytes 4g..4g+4 < cin: inside `input`.
                let x = unsafe { (x0.add(i * self.cin + 4 * g) as *const i32).read_unaligned() };
                let xb = _mm512_set1_epi32(x);
                for (a, &wj) in row.iter_mut().zip(&w) {
                    *a = _mm512_dpbusd_epi32(*a, xb, wj);
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            let s = _mm512_set1_epi32(sums[i]);
            for (j, &a) in row.iter().enumerate() {
                let oc = (b + j) * LANES;
                let bytes = requant16(&self.rq, oc, _mm512_add_epi32(a, s));
                let dst = &mut out[(p + i) * self.cout + oc..];
                let n = (self.cout - oc).min(LANES);
                store(bytes, dst, n);
            }
        }
    }
}

/// A depthwise layer's filter widened to i32, 16 channels per vector.
pub(crate) struct VnniDepthwise {
    c: usize,
    /// `[9][c padded to 16]`.
    taps: Vec<i32>,
    rq: VecRequant,
}

impl VnniDepthwise {
    /// `filter` is `[3][3][c]`, filter zero point subtracted.
    pub(crate) fn new(filter: &[i16], c: usize, rq: &Requant) -> Self {
        let cp = c.div_ceil(LANES) * LANES;
        let mut taps = vec![0i32; 9 * cp];
        for t in 0..9 {
            for ch in 0..c {
                taps[t * cp + ch] = filter[t * c + ch] as i32;
            }
        }
        Self {
            c,
            taps,
            rq: VecRequant::new(rq, |_| 0),
        }
    }

    /// Output rows `rows` of a 3x3 SAME depthwise layer, as `kernels::depthwise3x3`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        &self,
        input: &[u8],
        (h, w): (usize, usize),
        input_zero_point: i32,
        stride: usize,
        rows: std::ops::Range<usize>,
        out: &mut [u8],
    ) {
        let (ow, _) = crate::model::padding::same_padding(w, 3, stride);
        assert!(input.len() >= h * w * self.c && out.len() >= rows.len() * ow * self.c);
        assert!(available());
        // SAFETY: the CPU has the features (checked), the slices are as large as the layer's
        // shapes say (checked), and every access below stays inside them.
        unsafe { self.run_unchecked(input, (h, w), input_zero_point, stride, rows, out) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn run_unchecked(
        &self,
        input: &[u8],
        (h, w): (usize, usize),
        input_zero_point: i32,
        stride: usize,
        rows: std::ops::Range<usize>,
        out: &mut [u8],
    ) {
        let c = self.c;
        let cp = self.taps.len() / 9;
        let (_, (top, _)) = crate::model::padding::same_padding(h, 3, stride);
        let (ow, (left, _)) = crate::model::padding::same_padding(w, 3, stride);
        let zx = _mm512_set1_epi32(input_zero_point);
        for (r, oy) in rows.enumerate() {
            for ox in 0..ow {
                let mut ch = 0;
                while ch < c {
                    let n = (c - ch).min(LANES);
                    let mask: __mmask16 = if n == LANES { 0xffff } else { (1u16 << n) - 1 };
                    let mut acc = _mm512_setzero_si512();
                    for ky in 0..3 {
                        let Some(y) = (oy * stride + ky).checked_sub(top).filter(|&y| y < h) else {
                            continue;
                        };
                        for kx in 0..3 {
                            let Some(x) = (ox * stride + kx).checked_sub(left).filter(|&x| x < w)
                            else {
                                continue;
                            };
                            let at = (y * w + x) * c + ch;
                            // SAFETY: the masked load reads n <= c - ch bytes of pixel (y, x).
                            let bytes = unsafe {
                                _mm_maskz_loadu_epi8(mask, input.as_ptr().add(at) as *const i8)
                            };
                            let xv = _mm512_sub_epi32(_mm512_cvtepu8_epi32(bytes), zx);
                            // SAFETY: tap t, channels ch..ch+16 < cp: inside `taps`.
                            let f = unsafe {
                                _mm512_loadu_si512(
                                    self.taps.as_ptr().add((ky * 3 + kx) * cp + ch) as *const _
                                )
                            };
                            acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(xv, f));
                        }
                    }
                    let bytes = requant16(&self.rq, ch, acc);
                    store(bytes, &mut out[(r * ow + ox) * c + ch..], n);
                    ch += LANES;
                }
            }
        }
    }
}

/// 16 accumulators of channels `oc..oc+16` to output bytes: bias, TFLite's
/// MultiplyByQuantizedMultiplier (gemmlowp's SaturatingRoundingDoublingHighMul, then
/// RoundingDivideByPOT), output zero point, clamp.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
fn requant16(rq: &VecRequant, oc: usize, acc: __m512i) -> __m128i {
    let load = |v: &[i32]| {
        let v: &[i32; 16] = v[oc..oc + 16].try_into().expect("padded to 16 lanes");
        // SAFETY: 16 i32 from a checked 16-element array.
        unsafe { _mm512_loadu_si512(v.as_ptr() as *const _) }
    };
    let x = _mm512_add_epi32(acc, load(&rq.offset));
    let x = _mm512_sllv_epi32(x, load(&rq.left));
    let m = load(&rq.multiplier);
    // SaturatingRoundingDoublingHighMul: 64-bit products of the even and the odd lanes, the
    // nudge (2^30, or 1 - 2^30 for a negative product), then a division by 2^31 that truncates
    // toward zero as C++'s does. The multipliers are in [0, 2^31), so the one saturating case
    // (both operands INT32_MIN) cannot occur.
    let high = |p: __m512i| {
        let neg = _mm512_srai_epi64(p, 63);
        let nudge = _mm512_add_epi64(
            _mm512_set1_epi64(1 << 30),
            _mm512_and_si512(neg, _mm512_set1_epi64(1 - (1i64 << 31))),
        );
        let t = _mm512_add_epi64(p, nudge);
        let t = _mm512_add_epi64(
            t,
            _mm512_and_si512(
                _mm512_srai_epi64(t, 63),
                _mm512_set1_epi64((1i64 << 31) - 1),
            ),
        );
        _mm512_srai_epi64(t, 31)
    };
    let even = high(_mm512_mul_epi32(x, m));
    let odd = high(_mm512_mul_epi32(
        _mm512_srli_epi64(x, 32),
        _mm512_srli_epi64(m, 32),
    ));
    let hm = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
    // RoundingDivideByPOT by each lane's exponent.
    let right = load(&rq.right);
    let one = _mm512_set1_epi32(1);
    let mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, right), one);
    let rem = _mm512_and_si512(hm, mask);
    let threshold = _mm512_sub_epi32(_mm512_srai_epi32(mask, 1), _mm512_srai_epi32(hm, 31));
    let up = _mm512_cmpgt_epi32_mask(rem, threshold);
    let q = _mm512_mask_add_epi32(
        _mm512_srav_epi32(hm, right),
        up,
        _mm512_srav_epi32(hm, right),
        one,
    );
    let q = _mm512_add_epi32(q, _mm512_set1_epi32(rq.output_zero_point));
    let q = _mm512_max_epi32(q, _mm512_set1_epi32(rq.act_min));
    let q = _mm512_min_epi32(q, _mm512_set1_epi32(rq.act_max));
    _mm512_cvtepi32_epi8(q)
}

/// The first `n` (<= 16) of 16 bytes into `dst`.
#[inline(always)]
fn store(bytes: __m128i, dst: &mut [u8], n: usize) {
    let mut tmp = [0u8; 16];
    // SAFETY: 16 bytes into a 16-byte array.
    unsafe { _mm_storeu_si128(tmp.as_mut_ptr() as *mut __m128i, bytes) };
    dst[..n].copy_from_slice(&tmp[..n]);
}
