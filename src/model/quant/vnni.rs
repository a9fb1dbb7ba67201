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

use super::kernels::{acc_bound, Requant, VecRequant};

/// Whether this CPU runs these kernels.
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}

/// Output channels per vector.
const LANES: usize = 16;
/// Depthwise maps at most this wide run framed (`VnniDepthwise::run_unchecked`).
const FRAMED_WIDTH: usize = 64;
/// Pixels per register tile.
const TILE_PIXELS: usize = 4;
/// Output blocks (of 16 channels) per register tile: 4 x 4 accumulators.
const TILE_BLOCKS: usize = 4;

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
        if !cin.is_multiple_of(4) || cin == 0 {
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
        let rq = VecRequant::new(
            rq,
            |oc| -input_zero_point * (wsum[oc] + c * cin_i),
            acc_bound(filter, cin),
        );
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
            // The c x (sum of the pixel's inputs) term; none for int8 filters (c = 0).
            let sums: [i32; TILE_PIXELS] = std::array::from_fn(|i| {
                if i < np && self.c != 0 {
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
        // Block by block, so that each block's requantization constants load once per tile.
        for j in 0..B {
            let oc = (b + j) * LANES;
            let rq = Rq16::load(&self.rq, oc);
            let n = (self.cout - oc).min(LANES);
            for (i, row) in acc.iter().enumerate() {
                let a = if self.c == 0 {
                    row[j]
                } else {
                    _mm512_add_epi32(row[j], _mm512_set1_epi32(sums[i]))
                };
                let bytes = rq.bytes(a);
                let dst = &mut out[(p + i) * self.cout + oc..][..n];
                // SAFETY: dst holds n bytes.
                unsafe { store(bytes, dst.as_mut_ptr(), n) };
            }
        }
    }
}

/// A depthwise layer, 16 channels per vector: each tap's (input - zero point) times its filter
/// on `vpdpwssd` (the filter in the low 16 bits of each lane, zero above, so the lane's one
/// product is the 16-bit one).
pub(crate) struct VnniDepthwise {
    c: usize,
    input_zero_point: i32,
    /// `[9][c padded to 16]`, each `w & 0xffff`.
    taps: Vec<i32>,
    /// Where every filter value fits i8 and the CPU has AVX512_VBMI: `[3][c padded to 16]`,
    /// window column kx's three taps of each channel as bytes (ky = 0, 1, 2, then a zero), so
    /// that one vpdpbusd takes a whole window column of pixels inside the image.
    columns: Option<Vec<i32>>,
    rq: VecRequant,
    /// For pixels whose nine taps are all inside the image: the zero point's share
    /// (-zx * sum of the taps) folded into the offset, so the input goes in as it is.
    rq_inside: VecRequant,
}

impl VnniDepthwise {
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
        let fits_i8 = filter.iter().all(|&v| (-128..=127).contains(&v));
        let columns = (fits_i8 && is_x86_feature_detected!("avx512vbmi")).then(|| {
            let mut columns = vec![0i32; 3 * cp];
            for kx in 0..3 {
                for ch in 0..c {
                    let byte = |ky: usize| filter[(ky * 3 + kx) * c + ch] as u8 as i32;
                    columns[kx * cp + ch] = byte(0) | byte(1) << 8 | byte(2) << 16;
                }
            }
            columns
        });
        Self {
            c,
            input_zero_point,
            taps,
            columns,
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
        // SAFETY: the CPU has the features (checked), the slices are as large as the layer's
        // shapes say (checked), and every access below stays inside them.
        unsafe { self.run_unchecked(input, (h, w), stride, rows, out) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
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
        let zx = _mm512_set1_epi32(self.input_zero_point);
        // Maps up to FRAMED_WIDTH wide: the input rows these output rows read, copied once
        // inside a one-pixel frame of the input zero point, so that every window is inside and
        // takes the column kernel (a tap on the frame adds zero once the zero point's share is
        // taken back, as TFLite's skipping it does). One by one, border pixels cost three
        // times the others, and on the 14x14 and 7x7 layers a third to half of them touch the
        // border; wider maps (112x112) gain less than the copy costs.
        if let (Some(columns), true, false) = (&self.columns, w <= FRAMED_WIDTH, rows.is_empty()) {
            let (fw, zp) = (w + 2, self.input_zero_point as u8);
            // Framed row 0 is input row `first` (-1: the frame above the image).
            let first = (rows.start * stride) as isize - top as isize;
            let framed_rows = (rows.len() - 1) * stride + 3;
            let mut framed = vec![zp; framed_rows * fw * c];
            for fy in 0..framed_rows {
                let y = first + fy as isize;
                if y >= 0 && (y as usize) < h {
                    let src = &input[y as usize * w * c..][..w * c];
                    framed[(fy * fw + 1) * c..][..w * c].copy_from_slice(src);
                }
            }
            let mut ch = 0;
            while ch < c {
                let n = (c - ch).min(LANES);
                let rq_inside = Rq16::load(&self.rq_inside, ch);
                for r in 0..rows.len() {
                    // SAFETY: the CPU has AVX512_VBMI (`columns` is built only then); every
                    // window of the row lies inside the framed rows, the outputs inside `out`.
                    unsafe {
                        self.inside_by_columns(
                            columns,
                            &framed,
                            fw,
                            stride,
                            (r * stride, 1 - left),
                            (ch, n),
                            &rq_inside,
                            &mut out[r * ow * c..(r + 1) * ow * c],
                            ow,
                        )
                    }
                }
                ch += LANES;
            }
            return;
        }
        // Block by block of 16 channels, and within a block row by row: a block's filter and
        // requantization constants load once per task (a few rows), not once per row.
        let mut ch = 0;
        while ch < c {
            for (r, oy) in rows.clone().enumerate() {
                let y0 = (oy * stride) as isize - top as isize;
                let rows_inside = y0 >= 0 && y0 + 2 < h as isize;
                let n = (c - ch).min(LANES);
                let mask: __mmask16 = if n == LANES { 0xffff } else { (1u16 << n) - 1 };
                // The n <= c - ch bytes of channels ch.. of pixel `at`'s, widened to i32.
                let load = |at: usize| {
                    // SAFETY: callers pass in-image pixels; a full block is 16 bytes inside the
                    // pixel, a partial one is masked to its n bytes.
                    let bytes = unsafe {
                        if n == LANES {
                            _mm_loadu_si128(input.as_ptr().add(at) as *const __m128i)
                        } else {
                            _mm_maskz_loadu_epi8(mask, input.as_ptr().add(at) as *const i8)
                        }
                    };
                    _mm512_cvtepu8_epi32(bytes)
                };
                let taps: [__m512i; 9] = std::array::from_fn(|t| {
                    // SAFETY: tap t, channels ch..ch+16 <= cp: inside `taps`.
                    unsafe { _mm512_loadu_si512(self.taps.as_ptr().add(t * cp + ch) as *const _) }
                });
                let rq = Rq16::load(&self.rq, ch);
                let rq_inside = Rq16::load(&self.rq_inside, ch);
                // The pixels whose windows lie inside the image, by window columns where the
                // layer has them; the others (and every pixel without them) one by one below.
                let mut by_columns = 0..0;
                if let (Some(columns), true) = (&self.columns, rows_inside) {
                    // ox * stride - left >= 0 and ox * stride - left + 2 < w.
                    let first = left.div_ceil(stride);
                    let end = (w + left)
                        .checked_sub(3)
                        .map_or(0, |x| (x / stride + 1).min(ow));
                    if first < end {
                        by_columns = first..end;
                        // SAFETY: the CPU has AVX512_VBMI (`columns` is built only then); the
                        // windows of pixels first..end of row oy lie inside the image, and their
                        // outputs inside `out`.
                        unsafe {
                            self.inside_by_columns(
                                columns,
                                input,
                                w,
                                stride,
                                (y0 as usize, first * stride - left),
                                (ch, n),
                                &rq_inside,
                                &mut out[(r * ow + first) * c..(r * ow + end) * c],
                                end - first,
                            )
                        }
                    }
                }
                for ox in 0..ow {
                    if by_columns.contains(&ox) {
                        continue;
                    }
                    let x0 = (ox * stride) as isize - left as isize;
                    let inside = rows_inside && x0 >= 0 && x0 + 2 < w as isize;
                    let mut acc = _mm512_setzero_si512();
                    if inside {
                        let base = (y0 as usize * w + x0 as usize) * c + ch;
                        // One accumulator per window row: three short dependency chains
                        // instead of one of nine vpdpwssd.
                        let mut rows_acc = [_mm512_setzero_si512(); 3];
                        for (t, &f) in taps.iter().enumerate() {
                            let at = base + ((t / 3) * w + t % 3) * c;
                            rows_acc[t / 3] = _mm512_dpwssd_epi32(rows_acc[t / 3], load(at), f);
                        }
                        acc = _mm512_add_epi32(
                            _mm512_add_epi32(rows_acc[0], rows_acc[1]),
                            rows_acc[2],
                        );
                    } else {
                        for (t, &f) in taps.iter().enumerate() {
                            let (y, x) = (y0 + (t / 3) as isize, x0 + (t % 3) as isize);
                            if y < 0 || y >= h as isize || x < 0 || x >= w as isize {
                                continue;
                            }
                            let at = (y as usize * w + x as usize) * c + ch;
                            let xv = _mm512_sub_epi32(load(at), zx);
                            acc = _mm512_dpwssd_epi32(acc, xv, f);
                        }
                    }
                    let bytes = if inside {
                        rq_inside.bytes(acc)
                    } else {
                        rq.bytes(acc)
                    };
                    let dst = &mut out[(r * ow + ox) * c + ch..][..n];
                    // SAFETY: dst holds n bytes.
                    unsafe { store(bytes, dst.as_mut_ptr(), n) };
                }
            }
            ch += LANES;
        }
    }

    /// `count` consecutive output pixels of channels `ch..ch + n`, all of whose windows lie
    /// inside the image, the first window's top-left input pixel at `(y0, x0)`: each window
    /// column's three input bytes per channel gathered into one 32-bit lane (one vpermb), and
    /// each column, loaded once, shared by the windows that cover it (three at stride 1, two at
    /// stride 2). `out` holds the pixels' `c` bytes each.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn inside_by_columns(
        &self,
        columns: &[i32],
        input: &[u8],
        w: usize,
        stride: usize,
        (y0, x0): (usize, usize),
        (ch, n): (usize, usize),
        rq: &Rq16,
        out: &mut [u8],
        count: usize,
    ) {
        let c = self.c;
        let cp = columns.len() / 3;
        let mask: __mmask16 = if n == LANES { 0xffff } else { (1u16 << n) - 1 };
        let row = |ky: usize, x: usize| {
            let at = ((y0 + ky) * w + x) * c + ch;
            assert!(at + n <= input.len());
            // SAFETY: n bytes from `at`, inside `input` (checked); a partial block is masked.
            unsafe { _mm_maskz_loadu_epi8(mask, input.as_ptr().add(at) as *const i8) }
        };
        // Byte 4i + ky of the result is byte i of row ky (bytes 16 ky + i of the three rows
        // side by side); byte 4i + 3 is zeroed.
        let gather = _mm512_set_epi8(
            0, 47, 31, 15, 0, 46, 30, 14, 0, 45, 29, 13, 0, 44, 28, 12, 0, 43, 27, 11, 0, 42, 26,
            10, 0, 41, 25, 9, 0, 40, 24, 8, 0, 39, 23, 7, 0, 38, 22, 6, 0, 37, 21, 5, 0, 36, 20, 4,
            0, 35, 19, 3, 0, 34, 18, 2, 0, 33, 17, 1, 0, 32, 16, 0,
        );
        let column = |x: usize| {
            let three = _mm512_inserti32x4(
                _mm512_inserti32x4(_mm512_castsi128_si512(row(0, x)), row(1, x), 1),
                row(2, x),
                2,
            );
            _mm512_maskz_permutexvar_epi8(0x7777_7777_7777_7777, gather, three)
        };
        let filter: [__m512i; 3] = std::array::from_fn(|kx| {
            // SAFETY: column kx, channels ch..ch+16 <= cp: inside `columns`.
            unsafe { _mm512_loadu_si512(columns.as_ptr().add(kx * cp + ch) as *const _) }
        });
        let (mut a, mut b) = (column(x0), column(x0 + 1));
        for i in 0..count {
            let x = x0 + i * stride;
            let next = column(x + 2);
            let acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), a, filter[0]);
            let acc = _mm512_dpbusd_epi32(acc, b, filter[1]);
            let acc = _mm512_dpbusd_epi32(acc, next, filter[2]);
            let bytes = rq.bytes(acc);
            let dst = &mut out[i * c + ch..][..n];
            // SAFETY: dst holds n bytes.
            unsafe { store(bytes, dst.as_mut_ptr(), n) };
            if i + 1 < count {
                (a, b) = if stride == 1 {
                    (b, next)
                } else {
                    (next, column(x + 3))
                };
            }
        }
    }
}

/// One 16-channel block's requantization constants in registers, loaded once for a run of
/// pixels. `apply` is 16 accumulators of channels `oc..oc+16` to the clamped output values:
/// bias, TFLite's MultiplyByQuantizedMultiplier (gemmlowp's SaturatingRoundingDoublingHighMul,
/// then RoundingDivideByPOT), output zero point, clamp.
#[derive(Clone, Copy)]
struct Rq16 {
    /// `Relu64`'s constants where the layer has them: then `apply` is that form alone.
    relu: Option<Relu16>,
    offset: __m512i,
    left: __m512i,
    /// Whether any lane shifts left (a multiplier above 1; rare): the shift is skipped if not.
    any_left: bool,
    multiplier: __m512i,
    /// The multipliers of the odd lanes, moved to the even positions for `vpmuldq`.
    multiplier_odd: __m512i,
    right: __m512i,
    /// 2^right - 1, and half of it: RoundingDivideByPOT's mask and threshold.
    mask: __m512i,
    half: __m512i,
    zero_point: __m512i,
    min: __m512i,
    max: __m512i,
}

impl Rq16 {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    fn load(rq: &VecRequant, oc: usize) -> Self {
        let load = |v: &[i32]| {
            let v: &[i32; 16] = v[oc..oc + 16].try_into().expect("padded to 16 lanes");
            // SAFETY: 16 i32 from a checked 16-element array.
            unsafe { _mm512_loadu_si512(v.as_ptr() as *const _) }
        };
        let multiplier = load(&rq.multiplier);
        let right = load(&rq.right);
        let left = load(&rq.left);
        let one = _mm512_set1_epi32(1);
        let mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, right), one);
        let relu = rq.relu64.as_ref().map(|r| {
            let load64 = |v: &[i64], half: usize| {
                let v: &[i64; 8] = v[oc + 8 * half..][..8].try_into().expect("16 per block");
                // SAFETY: 8 i64 from a checked 8-element array.
                unsafe { _mm512_loadu_si512(v.as_ptr() as *const _) }
            };
            Relu16 {
                saturating: r.saturating,
                nudge_even: load64(&r.nudge, 0),
                nudge_odd: load64(&r.nudge, 1),
                shift_even: load64(&r.shift, 0),
                shift_odd: load64(&r.shift, 1),
            }
        });
        Rq16 {
            relu,
            offset: load(&rq.offset),
            left,
            any_left: _mm512_test_epi32_mask(left, left) != 0,
            multiplier,
            multiplier_odd: _mm512_srli_epi64(multiplier, 32),
            right,
            mask,
            half: _mm512_srai_epi32(mask, 1),
            zero_point: _mm512_set1_epi32(rq.output_zero_point),
            min: _mm512_set1_epi32(rq.act_min),
            max: _mm512_set1_epi32(rq.act_max),
        }
    }

    /// `acc` requantized and narrowed to 16 bytes.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    fn bytes(&self, acc: __m512i) -> __m128i {
        match &self.relu {
            Some(r) if r.saturating => {
                // int8-domain results: the saturating narrow clamps, the xor moves to uint8.
                let q = self.relu64(r, acc);
                _mm_xor_si128(_mm512_cvtsepi32_epi8(q), _mm_set1_epi8(-128))
            }
            _ => _mm512_cvtepi32_epi8(self.apply(acc)),
        }
    }

    /// `Relu64`'s 64-bit products, each plus its lane's nudge and shifted: the even lanes'
    /// results in their low halves, the odd lanes' (shifted 32 less) in their high halves,
    /// which one blend interleaves.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    fn relu64(&self, r: &Relu16, acc: __m512i) -> __m512i {
        let even = _mm512_mul_epi32(acc, self.multiplier);
        let odd = _mm512_mul_epi32(_mm512_srli_epi64(acc, 32), self.multiplier_odd);
        let even = _mm512_srav_epi64(_mm512_add_epi64(even, r.nudge_even), r.shift_even);
        let odd = _mm512_srav_epi64(_mm512_add_epi64(odd, r.nudge_odd), r.shift_odd);
        _mm512_mask_blend_epi32(0xAAAA, even, odd)
    }

    /// `acc` requantized, in the uint8 domain. Not for `Relu64`'s saturating form, whose
    /// results are the int8 domain's: `bytes` narrows those itself.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    fn apply(&self, acc: __m512i) -> __m512i {
        if let Some(r) = &self.relu {
            debug_assert!(!r.saturating, "the saturating form goes through `bytes`");
            let q = self.relu64(r, acc);
            return _mm512_min_epi32(_mm512_max_epi32(q, self.min), self.max);
        }
        let mut x = _mm512_add_epi32(acc, self.offset);
        if self.any_left {
            x = _mm512_sllv_epi32(x, self.left);
        }
        // SaturatingRoundingDoublingHighMul: gemmlowp adds a nudge (2^30, or 1 - 2^30 for a
        // negative product) and divides by 2^31 truncating toward zero, as C++ does; for every
        // product p that equals floor((p + 2^30) / 2^31), one add and one arithmetic shift here
        // (the unit test below checks the identity against the scalar form). The multipliers
        // are in [0, 2^31), so the one saturating case (both operands INT32_MIN) cannot occur.
        let high =
            |p: __m512i| _mm512_srai_epi64(_mm512_add_epi64(p, _mm512_set1_epi64(1 << 30)), 31);
        let even = high(_mm512_mul_epi32(x, self.multiplier));
        let odd = high(_mm512_mul_epi32(
            _mm512_srli_epi64(x, 32),
            self.multiplier_odd,
        ));
        let hm = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
        // RoundingDivideByPOT by each lane's exponent: up by one where the remainder passes
        // half the divisor (a negative value needs one more, so ties go away from zero).
        let rem = _mm512_and_si512(hm, self.mask);
        let threshold = _mm512_sub_epi32(self.half, _mm512_srai_epi32(hm, 31));
        let up = _mm512_cmpgt_epi32_mask(rem, threshold);
        let q = _mm512_srav_epi32(hm, self.right);
        let q = _mm512_mask_add_epi32(q, up, q, _mm512_set1_epi32(1));
        let q = _mm512_add_epi32(q, self.zero_point);
        _mm512_min_epi32(_mm512_max_epi32(q, self.min), self.max)
    }
}

/// `Relu64`'s nudges and shifts of one block, 64-bit lanes: the even channels', the odd ones'.
#[derive(Clone, Copy)]
struct Relu16 {
    saturating: bool,
    nudge_even: __m512i,
    nudge_odd: __m512i,
    shift_even: __m512i,
    shift_odd: __m512i,
}

/// The first `n` (<= 16) of 16 bytes to `dst`.
///
/// # Safety
/// `dst` must be valid for `n` bytes of writes, and the CPU must have AVX-512BW and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
unsafe fn store(bytes: __m128i, dst: *mut u8, n: usize) {
    let mask: __mmask16 = if n >= LANES { 0xffff } else { (1u16 << n) - 1 };
    // SAFETY: the masked store writes only the first n bytes, which the caller vouches for.
    unsafe { _mm_mask_storeu_epi8(dst as *mut i8, mask, bytes) }
}

#[cfg(test)]
mod tests {
    use super::super::kernels::Requant;
    use super::super::layer_tests::{check_depthwise, check_pointwise};
    use super::super::requant::{multiply_by_quantized_multiplier, quantize_multiplier};
    use super::*;

    /// The 16-lane requantization against the scalar one (TFLite's formula) on accumulators
    /// over the whole int32 range, ties included, and multipliers with left and right shifts.
    #[test]
    fn vector_requantization_is_tflites() {
        if !available() {
            eprintln!("note: no AVX-512 VNNI here; skipping");
            return;
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..2000 {
            let reals: Vec<f64> = (0..16)
                .map(|i| {
                    let e = (next() % 40) as i32 - 34; // 2^-34 .. 2^5
                    (1.0 + (next() % 1000) as f64 / 1000.0)
                        * 2f64.powi(e)
                        * if i == 0 { 0.5 } else { 1.0 }
                })
                .collect();
            let multipliers: Vec<_> = reals.iter().map(|&r| quantize_multiplier(r)).collect();
            let acc: Vec<i32> = (0..16)
                .map(|i| match (round + i) % 4 {
                    0 => next() as i32,
                    1 => (next() as i32) >> 16,
                    // Exact ties of the high multiply and of the shift.
                    2 => ((next() % 64) as i32 - 32) << (next() % 20),
                    _ => (next() % 2000) as i32 - 1000,
                })
                .collect();
            let rq = Requant {
                multipliers: multipliers.clone(),
                bias: vec![0; 16],
                output_zero_point: (next() % 256) as i32 - 128,
                act_min: i32::MIN,
                act_max: i32::MAX,
            };
            let v = VecRequant::new(&rq, |_| 0, 1 << 30);
            // Compare the int32 results before the byte conversion: requantize with the clamp
            // wide open and read the lanes back.
            // SAFETY: the CPU has the features (checked above).
            let got: [i32; 16] = unsafe { requant16_i32(&v, 0, &acc) };
            for i in 0..16 {
                let want =
                    multiply_by_quantized_multiplier(acc[i], multipliers[i]) + rq.output_zero_point;
                assert_eq!(
                    got[i], want,
                    "acc {} real {} {:?}",
                    acc[i], reals[i], multipliers[i]
                );
            }
        }
    }

    /// Random pointwise layers against the plain kernel (`layer_tests`), those whose filter
    /// values fit the kernel's one-constant decomposition.
    #[test]
    fn pointwise_equals_the_plain_kernel() {
        if !available() {
            eprintln!("note: no AVX-512 VNNI here; skipping");
            return;
        }
        let mut relu = [0; 3];
        check_pointwise(0x243f_6a88_85a3_08d3, 48, |l| {
            let k = VnniPointwise::new(&l.filter, l.cin, l.cout, l.zx, &l.rq)?;
            relu[requant_form(&k.rq)] += 1;
            let mut got = vec![0u8; l.pixels * l.cout];
            k.run(&l.input, l.pixels, &mut got);
            Some(got)
        });
        assert!(
            relu.iter().all(|&n| n > 3),
            "each requantization tested: {relu:?}"
        );
    }

    #[test]
    fn depthwise_equals_the_plain_kernel() {
        if !available() {
            eprintln!("note: no AVX-512 VNNI here; skipping");
            return;
        }
        let (mut relu, mut columns) = ([0; 3], [0; 2]);
        check_depthwise(0x1319_8a2e_0370_7344, 48, |l| {
            let (ow, _) = crate::model::padding::same_padding(l.w, 3, l.stride);
            let mut got = vec![0u8; l.rows.len() * ow * l.c];
            let k = VnniDepthwise::new(&l.filter, l.c, l.zx, &l.rq);
            relu[requant_form(&k.rq)] += 1;
            columns[k.columns.is_some() as usize] += 1;
            k.run(&l.input, (l.h, l.w), l.stride, l.rows.clone(), &mut got);
            got
        });
        assert!(relu.iter().all(|&n| n > 3), "each requantization: {relu:?}");
        let vbmi = is_x86_feature_detected!("avx512vbmi");
        assert!(
            columns[0] > 5 && (columns[1] > 5 || !vbmi),
            "both forms: {columns:?}"
        );
    }

    /// 0: the general requantization, 1: `Relu64`, 2: its saturating form.
    fn requant_form(rq: &VecRequant) -> usize {
        rq.relu64.as_ref().map_or(0, |r| 1 + r.saturating as usize)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn requant16_i32(rq: &VecRequant, oc: usize, acc: &[i32]) -> [i32; 16] {
        // SAFETY: 16 i32 read from a 16-element slice.
        let a = unsafe { _mm512_loadu_si512(acc.as_ptr() as *const _) };
        let q = Rq16::load(rq, oc).apply(a);
        let mut out = [0i32; 16];
        // SAFETY: 16 i32 into a 16-element array.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr() as *mut _, q) };
        out
    }
}
