//! The AVX2 kernels of the integer network, for CPUs without AVX-512 VNNI: the pointwise layers
//! (and logits, and Conv2d_0 as a pointwise layer over its 28-byte patches) in register tiles of
//! 4 pixels x 16 output channels, the depthwise layers 8 channels at a time, and TFLite's
//! requantization in 8 lanes. Every result equals
//! the plain kernels' (`kernels.rs`) bit for bit.
//!
//! A layer's products take one of two forms, chosen when it is packed:
//!
//! - `Products::Bytes`: `vpmaddubsw` (u8 input x i8 filter, adjacent pairs summed into i16),
//!   then `vpmaddwd` by ones into i32: 32 products in three instructions. The filter is stored
//!   as `w' = v - c` in i8 with one constant `c` per layer, as vnni.rs does (the same
//!   decomposition: `c sum x` per pixel, `-zx (sum w' + c cin)` per channel in the bias).
//!   vpmaddubsw *saturates* its i16 pair sums, so this form is taken only where no pair can
//!   saturate whatever the input: for every output channel and adjacent pair (w'0, w'1),
//!   255 (max(w'0, 0) + max(w'1, 0)) <= 32767 and 255 (max(-w'0, 0) + max(-w'1, 0)) <= 32768,
//!   i.e. both sums at most 128 (255 x 129 = 32895 overflows). Trained filters mostly fit;
//!   int8 per-channel filters that reach +-127 in both of a pair do not.
//! - `Products::Words`: `vpmaddwd` on the input widened to i16 and the filter as i16 (`v` itself,
//!   -255..255, so uint8 filters of any range fit): exact for every layer, 16 products per
//!   instruction. Splitting the input into 7-bit halves would keep vpmaddubsw exact too, but
//!   costs two of it and two vpmaddwd per 32 products, no fewer instructions than this form.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::kernels::{acc_bound, Requant, VecRequant};

/// Whether this CPU runs these kernels.
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx2")
}

/// Output channels per vector.
const LANES: usize = 8;
/// Pixels per register tile.
const TILE_PIXELS: usize = 4;
/// Output blocks (of 8 channels) per register tile: 4 x 2 accumulators of 16 registers.
const TILE_BLOCKS: usize = 2;
/// Pixels per chunk, over which each pair of blocks' filter is reused from cache.
const CHUNK_PIXELS: usize = 32;

/// How a layer's products are formed (see the module comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Products {
    Bytes,
    Words,
}

/// A pointwise layer packed for these kernels.
pub(crate) struct Avx2Pointwise {
    cin: usize,
    cout: usize,
    products: Products,
    /// Four bytes of filter per output channel and group of inputs (four i8 weights, or two i16
    /// ones), `[cout/8][groups][8]`: block, group, lane.
    packed: Vec<u32>,
    /// The constant `c` of the decomposition (0 for `Products::Words`).
    c: i32,
    rq: VecRequant,
}

/// Whether `vpmaddubsw` sums every adjacent pair of `row` (as i8 `w - c`) without saturating
/// for any u8 input (see the module comment).
fn pairs_fit(row: &[i16], c: i32) -> bool {
    row.chunks_exact(2).all(|p| {
        let (a, b) = (p[0] as i32 - c, p[1] as i32 - c);
        a.max(0) + b.max(0) <= 128 && (-a).max(0) + (-b).max(0) <= 128
    })
}

impl Avx2Pointwise {
    /// `filter` is `[cout][cin]` with the filter zero point subtracted; None when the layer's
    /// shape does not suit these kernels (input channels not a multiple of 4).
    pub(crate) fn new(
        filter: &[i16],
        cin: usize,
        cout: usize,
        input_zero_point: i32,
        rq: &Requant,
    ) -> Option<Self> {
        if !cin.is_multiple_of(4) || cin == 0 {
            return None;
        }
        let (lo, hi) = filter.iter().fold((i32::MAX, i32::MIN), |(lo, hi), &v| {
            (lo.min(v as i32), hi.max(v as i32))
        });
        // `c`: none where the filter is i8 already, else (and where pairs saturate without it)
        // the middle of its range, which keeps the pair sums smallest.
        let centred = lo + (hi - lo + 1) / 2;
        let fits = |c: i32| {
            lo - c >= -128 && hi - c <= 127 && filter.chunks_exact(cin).all(|row| pairs_fit(row, c))
        };
        let (products, c, per_group) = match [0, centred].into_iter().find(|&c| fits(c)) {
            Some(c) => (Products::Bytes, c, 4),
            None => (Products::Words, 0, 2),
        };
        let groups = cin / per_group;
        let blocks = cout.div_ceil(LANES);
        let mut packed = vec![0u32; blocks * groups * LANES];
        let mut wsum = vec![0i32; cout];
        for (oc, row) in filter.chunks_exact(cin).enumerate() {
            let (b, lane) = (oc / LANES, oc % LANES);
            for (g, ws) in row.chunks_exact(per_group).enumerate() {
                let ws = ws.iter().map(|&v| v as i32 - c);
                wsum[oc] += ws.clone().sum::<i32>();
                packed[(b * groups + g) * LANES + lane] = match products {
                    Products::Bytes => ws.rev().fold(0, |acc, w| acc << 8 | (w as u8 as u32)),
                    Products::Words => ws.rev().fold(0, |acc, w| acc << 16 | (w as u16 as u32)),
                };
            }
        }
        let cin_i = cin as i32;
        let rq = VecRequant::new(
            rq,
            |oc| -input_zero_point * (wsum[oc] + c * cin_i),
            acc_bound(filter, cin),
        );
        Some(Self {
            cin,
            cout,
            products,
            packed,
            c,
            rq,
        })
    }

    /// The form the layer's products take.
    #[cfg(test)]
    fn products(&self) -> Products {
        self.products
    }

    /// `pixels` pixels of `cin` bytes in, of `cout` bytes out.
    pub(crate) fn run(&self, input: &[u8], pixels: usize, out: &mut [u8]) {
        assert!(input.len() >= pixels * self.cin && out.len() >= pixels * self.cout);
        assert!(available());
        // SAFETY: the CPU has AVX2 (checked above), and the slices hold what the kernel reads
        // and writes (checked above).
        unsafe {
            match self.products {
                Products::Bytes => self.run_unchecked::<true>(input, pixels, out),
                Products::Words => self.run_unchecked::<false>(input, pixels, out),
            }
        }
    }

    /// `BYTES`: the form of the products (`Products::Bytes`).
    #[target_feature(enable = "avx2")]
    unsafe fn run_unchecked<const BYTES: bool>(&self, input: &[u8], pixels: usize, out: &mut [u8]) {
        let blocks = self.cout.div_ceil(LANES);
        // Products::Words reads a chunk's pixels widened to i16.
        let mut wide = vec![0i16; if BYTES { 0 } else { CHUNK_PIXELS * self.cin }];
        let mut sums = [0i32; CHUNK_PIXELS];
        let mut p0 = 0;
        while p0 < pixels {
            let chunk = (pixels - p0).min(CHUNK_PIXELS);
            let chunk_input = &input[p0 * self.cin..][..chunk * self.cin];
            if BYTES && self.c != 0 {
                for (s, px) in sums.iter_mut().zip(chunk_input.chunks_exact(self.cin)) {
                    *s = self.c * px.iter().map(|&v| v as i32).sum::<i32>();
                }
            }
            let (x0, stride) = if BYTES {
                (chunk_input.as_ptr(), self.cin)
            } else {
                for (d, &v) in wide.iter_mut().zip(chunk_input) {
                    *d = v as i16;
                }
                (wide.as_ptr() as *const u8, 2 * self.cin)
            };
            // Blocks outer: a pair of blocks' filter stays in cache over the chunk's pixels.
            let mut b = 0;
            while b < blocks {
                let nb = (blocks - b).min(TILE_BLOCKS);
                let mut i = 0;
                while i < chunk {
                    let np = (chunk - i).min(TILE_PIXELS);
                    let (x, s, p) = (x0.wrapping_add(i * stride), &sums[i..], p0 + i);
                    // SAFETY: as for `run`: the tile's np pixels (at `x`, `stride` bytes apart)
                    // are inside the chunk, blocks b..b+nb inside the layer.
                    unsafe {
                        match (np, nb) {
                            (4, 2) => self.tile::<4, 2, BYTES>(x, stride, p, b, s, out),
                            (3, 2) => self.tile::<3, 2, BYTES>(x, stride, p, b, s, out),
                            (2, 2) => self.tile::<2, 2, BYTES>(x, stride, p, b, s, out),
                            (1, 2) => self.tile::<1, 2, BYTES>(x, stride, p, b, s, out),
                            (4, _) => self.tile::<4, 1, BYTES>(x, stride, p, b, s, out),
                            (3, _) => self.tile::<3, 1, BYTES>(x, stride, p, b, s, out),
                            (2, _) => self.tile::<2, 1, BYTES>(x, stride, p, b, s, out),
                            _ => self.tile::<1, 1, BYTES>(x, stride, p, b, s, out),
                        }
                    }
                    i += np;
                }
                b += nb;
            }
            p0 += chunk;
        }
    }

    /// `P` pixels from `p` (their inputs at `x0`, `stride` bytes apart) times `B` blocks of 8
    /// outputs from block `b`.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn tile<const P: usize, const B: usize, const BYTES: bool>(
        &self,
        x0: *const u8,
        stride: usize,
        p: usize,
        b: usize,
        sums: &[i32],
        out: &mut [u8],
    ) {
        let groups = self.packed.len() / (self.cout.div_ceil(LANES) * LANES);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); B]; P];
        let w0 = self.packed[b * groups * LANES..].as_ptr();
        for g in 0..groups {
            let mut w = [_mm256_setzero_si256(); B];
            for (j, wj) in w.iter_mut().enumerate() {
                // SAFETY: block b + j < blocks, group g < groups: inside `packed`.
                *wj = unsafe { _mm256_loadu_si256(w0.add((j * groups + g) * LANES) as *const _) };
            }
            for (i, row) in acc.iter_mut().enumerate() {
                // SAFETY: pixel p + i is in the tile, bytes 4g..4g+4 are inside its input.
                let x = unsafe { (x0.add(i * stride + 4 * g) as *const i32).read_unaligned() };
                let xb = _mm256_set1_epi32(x);
                for (a, &wj) in row.iter_mut().zip(&w) {
                    let pairs = if BYTES {
                        _mm256_madd_epi16(_mm256_maddubs_epi16(xb, wj), ones)
                    } else {
                        _mm256_madd_epi16(xb, wj)
                    };
                    *a = _mm256_add_epi32(*a, pairs);
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            let s = _mm256_set1_epi32(sums[i]);
            for (j, &a) in row.iter().enumerate() {
                let oc = (b + j) * LANES;
                let q = Rq8::load(&self.rq, oc).apply(_mm256_add_epi32(a, s));
                let n = (self.cout - oc).min(LANES);
                out[(p + i) * self.cout + oc..][..n].copy_from_slice(&to_bytes(q)[..n]);
            }
        }
    }
}

/// A depthwise layer, 8 channels per vector, channels outermost as vnni.rs's: each tap's input
/// times its filter on `vpmaddwd` (the filter in the low 16 bits of each lane, zero above, so the
/// lane's one product is the 16-bit one).
pub(crate) struct Avx2Depthwise {
    c: usize,
    input_zero_point: i32,
    /// `[9][c padded to 8]`, each `w & 0xffff`.
    taps: Vec<i32>,
    rq: VecRequant,
    /// For pixels whose nine taps are all inside the image: the zero point's share
    /// (-zx * sum of the taps) folded into the offset, so the input goes in as it is.
    rq_inside: VecRequant,
}

impl Avx2Depthwise {
    /// `filter` is `[3][3][c]`, filter zero point subtracted.
    pub(crate) fn new(filter: &[i16], c: usize, input_zero_point: i32, rq: &Requant) -> Self {
        let cp = c.div_ceil(LANES) * LANES;
        let mut taps = vec![0i32; 9 * cp];
        let mut sums = vec![0i32; c];
        for t in 0..9 {
            for ch in 0..c {
                let v = filter[t * c + ch];
                taps[t * cp + ch] = v as u16 as i32;
                sums[ch] += v as i32;
            }
        }
        Self {
            c,
            input_zero_point,
            taps,
            rq: VecRequant::new(rq, |_| 0, acc_bound(filter, 9)),
            rq_inside: VecRequant::new(rq, |ch| -input_zero_point * sums[ch], acc_bound(filter, 9)),
        }
    }

    /// Output rows `rows` of a 3x3 SAME depthwise layer, as `kernels::depthwise3x3`.
    pub(crate) fn run(
        &self,
        input: &[u8],
        (h, w): (usize, usize),
        stride: usize,
        rows: std::ops::Range<usize>,
        out: &mut [u8],
    ) {
        let (ow, _) = crate::model::padding::same_padding(w, 3, stride);
        assert!(input.len() >= h * w * self.c && out.len() >= rows.len() * ow * self.c);
        assert!(available());
        // SAFETY: the CPU has AVX2 (checked above); every access below is a checked slice.
        unsafe { self.run_unchecked(input, (h, w), stride, rows, out) }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn run_unchecked(
        &self,
        input: &[u8],
        (h, w): (usize, usize),
        stride: usize,
        rows: std::ops::Range<usize>,
        out: &mut [u8],
    ) {
        let c = self.c;
        let cp = self.taps.len() / 9;
        let (_, (top, _)) = crate::model::padding::same_padding(h, 3, stride);
        let (ow, (left, _)) = crate::model::padding::same_padding(w, 3, stride);
        let zx = _mm256_set1_epi32(self.input_zero_point);
        // Eight channels' bytes of pixel (y, x) widened to i32 (a tail block's through a copy,
        // so that no read passes the end of the input).
        let pixel = |y: usize, x: usize, ch: usize, n: usize| {
            let at = (y * w + x) * c + ch;
            let mut bytes = [0u8; LANES];
            bytes[..n].copy_from_slice(&input[at..at + n]);
            _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(i64::from_le_bytes(bytes)))
        };
        let mut ch = 0;
        while ch < c {
            let n = (c - ch).min(LANES);
            let taps: [__m256i; 9] = std::array::from_fn(|t| {
                let v: &[i32; 8] = self.taps[t * cp + ch..][..8].try_into().expect("8 lanes");
                // SAFETY: 8 i32 from a checked 8-element array.
                unsafe { _mm256_loadu_si256(v.as_ptr() as *const _) }
            });
            let rq_border = Rq8::load(&self.rq, ch);
            let rq_inside = Rq8::load(&self.rq_inside, ch);
            for (r, oy) in rows.clone().enumerate() {
                let y0 = (oy * stride) as isize - top as isize;
                let rows_inside = y0 >= 0 && y0 + 2 < h as isize;
                for ox in 0..ow {
                    let x0 = (ox * stride) as isize - left as isize;
                    let inside = rows_inside && x0 >= 0 && x0 + 2 < w as isize;
                    let mut acc = _mm256_setzero_si256();
                    for (t, &f) in taps.iter().enumerate() {
                        let (y, x) = (y0 + (t / 3) as isize, x0 + (t % 3) as isize);
                        if inside {
                            let xv = pixel(y as usize, x as usize, ch, n);
                            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(xv, f));
                        } else if y >= 0 && y < h as isize && x >= 0 && x < w as isize {
                            let xv = _mm256_sub_epi32(pixel(y as usize, x as usize, ch, n), zx);
                            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(xv, f));
                        }
                    }
                    let rq = if inside { &rq_inside } else { &rq_border };
                    let bytes = to_bytes(rq.apply(acc));
                    out[(r * ow + ox) * c + ch..][..n].copy_from_slice(&bytes[..n]);
                }
            }
            ch += LANES;
        }
    }
}

/// Eight clamped int32 outputs (0..=255) to their bytes.
#[target_feature(enable = "avx2")]
#[inline]
fn to_bytes(v: __m256i) -> [u8; 8] {
    // Per 128-bit half: i32 -> i16 -> u8, then the two halves' first four bytes together.
    let w = _mm256_packs_epi32(v, v);
    let b = _mm256_packus_epi16(w, w);
    let lo = _mm256_castsi256_si128(b);
    let hi = _mm256_extracti128_si256(b, 1);
    (_mm_cvtsi128_si64(_mm_unpacklo_epi32(lo, hi)) as u64).to_le_bytes()
}

/// One 8-channel block's requantization constants in registers: vnni.rs's `Rq16` in 256 bits.
#[derive(Clone, Copy)]
struct Rq8 {
    offset: __m256i,
    left: __m256i,
    multiplier: __m256i,
    /// The multipliers of the odd lanes, moved to the even positions for `vpmuldq`.
    multiplier_odd: __m256i,
    right: __m256i,
    /// 2^right - 1, and half of it: RoundingDivideByPOT's mask and threshold.
    mask: __m256i,
    half: __m256i,
    zero_point: __m256i,
    min: __m256i,
    max: __m256i,
}

impl Rq8 {
    #[target_feature(enable = "avx2")]
    #[inline]
    fn load(rq: &VecRequant, oc: usize) -> Self {
        let load = |v: &[i32]| {
            let v: &[i32; 8] = v[oc..oc + 8].try_into().expect("padded to 8 lanes");
            // SAFETY: 8 i32 from a checked 8-element array.
            unsafe { _mm256_loadu_si256(v.as_ptr() as *const _) }
        };
        let multiplier = load(&rq.multiplier);
        let right = load(&rq.right);
        let one = _mm256_set1_epi32(1);
        let mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one);
        Rq8 {
            offset: load(&rq.offset),
            left: load(&rq.left),
            multiplier,
            multiplier_odd: _mm256_srli_epi64(multiplier, 32),
            right,
            mask,
            half: _mm256_srai_epi32(mask, 1),
            zero_point: _mm256_set1_epi32(rq.output_zero_point),
            min: _mm256_set1_epi32(rq.act_min),
            max: _mm256_set1_epi32(rq.act_max),
        }
    }

    /// Bias, TFLite's MultiplyByQuantizedMultiplier (gemmlowp's
    /// SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT), output zero point, clamp.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn apply(&self, acc: __m256i) -> __m256i {
        let x = _mm256_add_epi32(acc, self.offset);
        let x = _mm256_sllv_epi32(x, self.left);
        // SaturatingRoundingDoublingHighMul as floor((p + 2^30) / 2^31) (vnni.rs says why that
        // is gemmlowp's for every product of these multipliers). AVX2 has no 64-bit arithmetic
        // shift, but the quotient fits in 32 bits, which are bits 31..62 of p + 2^30 whatever
        // the shift fills above: a logical shift right by 31 puts the even lanes' in place, a
        // shift left by 1 the odd lanes' (in the high half of their 64 bits).
        let nudge = _mm256_set1_epi64x(1 << 30);
        let even = _mm256_add_epi64(_mm256_mul_epi32(x, self.multiplier), nudge);
        let odd = _mm256_add_epi64(
            _mm256_mul_epi32(_mm256_srli_epi64(x, 32), self.multiplier_odd),
            nudge,
        );
        let hm = _mm256_blend_epi32(
            _mm256_srli_epi64(even, 31),
            _mm256_slli_epi64(odd, 1),
            0b1010_1010,
        );
        // RoundingDivideByPOT by each lane's exponent: up by one where the remainder passes
        // half the divisor (a negative value needs one more, so ties go away from zero); the
        // comparison's -1 is the one added.
        let rem = _mm256_and_si256(hm, self.mask);
        let threshold = _mm256_sub_epi32(self.half, _mm256_srai_epi32(hm, 31));
        let up = _mm256_cmpgt_epi32(rem, threshold);
        let q = _mm256_sub_epi32(_mm256_srav_epi32(hm, self.right), up);
        let q = _mm256_add_epi32(q, self.zero_point);
        _mm256_min_epi32(_mm256_max_epi32(q, self.min), self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernels::Requant;
    use super::super::layer_tests::{check_depthwise, check_pointwise, xorshift};
    use super::super::requant::{multiply_by_quantized_multiplier, quantize_multiplier};
    use super::*;

    /// The 8-lane requantization against the scalar one (TFLite's formula) on accumulators over
    /// the whole int32 range, ties included, and multipliers with left and right shifts.
    #[test]
    fn vector_requantization_is_tflites() {
        if !available() {
            eprintln!("note: no AVX2 here; skipping");
            return;
        }
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        for round in 0..4000 {
            let multipliers: Vec<_> = (0..8)
                .map(|_| {
                    let e = (next() % 40) as i32 - 34; // 2^-34 .. 2^5
                    quantize_multiplier((1.0 + (next() % 1000) as f64 / 1000.0) * 2f64.powi(e))
                })
                .collect();
            let acc: Vec<i32> = (0..8)
                .map(|i| match (round + i) % 5 {
                    0 => next() as i32,
                    1 => (next() as i32) >> 16,
                    // Exact ties of the high multiply and of the shift.
                    2 => ((next() % 64) as i32 - 32) << (next() % 20),
                    3 => [i32::MIN, i32::MAX, i32::MIN + 1, -1][i % 4],
                    _ => (next() % 2000) as i32 - 1000,
                })
                .collect();
            let rq = Requant {
                multipliers: multipliers.clone(),
                bias: vec![0; 8],
                output_zero_point: (next() % 256) as i32 - 128,
                act_min: i32::MIN,
                act_max: i32::MAX,
            };
            let v = VecRequant::new(&rq, |_| 0, 1 << 30);
            // SAFETY: the CPU has AVX2 (checked above).
            let got = unsafe { requant8_i32(&v, &acc) };
            for i in 0..8 {
                let want =
                    multiply_by_quantized_multiplier(acc[i], multipliers[i]) + rq.output_zero_point;
                assert_eq!(got[i], want, "acc {} {:?}", acc[i], multipliers[i]);
            }
        }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn requant8_i32(rq: &VecRequant, acc: &[i32]) -> [i32; 8] {
        // SAFETY: 8 i32 read from an 8-element slice.
        let a = unsafe { _mm256_loadu_si256(acc.as_ptr() as *const _) };
        let q = Rq8::load(rq, 0).apply(a);
        let mut out = [0i32; 8];
        // SAFETY: 8 i32 into an 8-element array.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr() as *mut _, q) };
        out
    }

    /// Random pointwise layers against the plain kernel (`layer_tests`), in both product forms.
    #[test]
    fn pointwise_equals_the_plain_kernel() {
        if !available() {
            eprintln!("note: no AVX2 here; skipping");
            return;
        }
        let mut seen = [false; 2];
        check_pointwise(0x2545_f491_4f6c_dd1d, 48, |l| {
            let k = Avx2Pointwise::new(&l.filter, l.cin, l.cout, l.zx, &l.rq).unwrap();
            seen[(k.products() == Products::Bytes) as usize] = true;
            let mut got = vec![0u8; l.pixels * l.cout];
            k.run(&l.input, l.pixels, &mut got);
            Some(got)
        });
        assert_eq!(seen, [true, true], "both product forms tested");
    }

    #[test]
    fn depthwise_equals_the_plain_kernel() {
        if !available() {
            eprintln!("note: no AVX2 here; skipping");
            return;
        }
        check_depthwise(0x6a09_e667_f3bc_c908, 24, |l| {
            let (ow, _) = crate::model::padding::same_padding(l.w, 3, l.stride);
            let mut got = vec![0u8; l.rows.len() * ow * l.c];
            Avx2Depthwise::new(&l.filter, l.c, l.zx, &l.rq).run(
                &l.input,
                (l.h, l.w),
                l.stride,
                l.rows.clone(),
                &mut got,
            );
            got
        });
    }

    #[test]
    fn saturating_pairs_take_the_exact_form() {
        let rq = Requant {
            multipliers: vec![quantize_multiplier(0.5)],
            bias: vec![0],
            output_zero_point: 0,
            act_min: 0,
            act_max: 255,
        };
        let layer = |f: &[i16]| Avx2Pointwise::new(f, 4, 1, 0, &rq).unwrap().products();
        // 255 x 128 = 32640 fits an i16, 255 x 129 does not.
        assert_eq!(layer(&[64, 64, -128, 0]), Products::Bytes);
        assert_eq!(layer(&[100, -100, 127, -127]), Products::Bytes);
        // (Ranges symmetric about zero, so that no constant `c` helps.)
        assert_eq!(layer(&[65, 64, -65, 0]), Products::Words);
        assert_eq!(layer(&[65, 0, -65, -64]), Products::Words);
        // A uint8 model's range off zero: `c`, the middle, brings the pairs inside the bound.
        assert_eq!(layer(&[190, 180, 70, 80]), Products::Bytes);
        // Not a multiple of four inputs: not these kernels'.
        assert!(Avx2Pointwise::new(&[1, 2, 3], 3, 1, 0, &rq).is_none());
    }
}
