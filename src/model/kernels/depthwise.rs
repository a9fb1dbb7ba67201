//! 3x3 depthwise convolution (channel multiplier 1), TF SAME padding, stride 1 or 2, any input
//! size, over NHWC: each output pixel reads at most nine input pixels' channel vectors, so the
//! loop over channels is the vectorised one and needs no transposes or shifted copies.
//!
//! The interior of an output row (windows wholly inside the image), where C is a multiple of 16
//! and the level is AVX-512, goes 16 channels at a time with their taps held in registers over
//! tiles of 8 pixels, either stride. Otherwise (8 and 24 channels), with stride 1 the interior is
//! one flat run of `pixels x C` values whose every tap is the same run of input shifted by a
//! constant, so it is computed 32 values at a time whatever C is, with the weights repeated
//! along the run (`ext`); stride 2 goes pixel by pixel with fixed tap offsets. The borders use
//! the taps that fall inside the image.

use super::simd::{dispatch, mul_add, Target};
use super::{relu6, Isa, Pad, Shape};

/// Values per step of the flat stride-1 run.
const RUN: usize = 32;

/// A folded depthwise layer.
pub struct Depthwise {
    /// Taps `[3, 3, C]` (TF's `[kh, kw, C, 1]` as stored).
    taps: Vec<f32>,
    bias: Vec<f32>,
    stride: usize,
    /// Per tap, its `C` weights repeated to `C + RUN` values, so the weights of flat positions
    /// `f..f+RUN` are `ext_taps[t][f % C..][..RUN]`; `ext_bias` likewise.
    ext_taps: Vec<f32>,
    ext_bias: Vec<f32>,
    isa: Isa,
}

impl Depthwise {
    /// The layer, run with `isa`. Panics unless `taps` holds `9 * C` values for `C =
    /// bias.len() > 0` and the stride is 1 or 2.
    pub fn new(taps: Vec<f32>, bias: Vec<f32>, stride: usize, isa: Isa) -> Self {
        let c = bias.len();
        assert!(c > 0, "depthwise without channels");
        assert_eq!(taps.len(), 9 * c, "depthwise taps [3, 3, C]");
        assert!(matches!(stride, 1 | 2), "depthwise stride {stride}");
        let repeat = |v: &[f32]| (0..c + RUN).map(|j| v[j % c]).collect::<Vec<_>>();
        let ext_taps = taps.chunks_exact(c).flat_map(repeat).collect();
        let ext_bias = repeat(&bias);
        Self {
            taps,
            bias,
            stride,
            ext_taps,
            ext_bias,
            isa,
        }
    }

    pub fn stride(&self) -> usize {
        self.stride
    }
}

/// Output row `oy` (`out`: `[OW, C]`) of one image `input` (`[H, W, C]`).
pub fn depthwise_row(
    input: &[f32],
    shape: Shape,
    oy: usize,
    pad: Pad,
    layer: &Depthwise,
    out: &mut [f32],
) {
    // The AVX-512 paths read the layer's weights at offsets computed from C; they check the
    // rest of their bounds themselves.
    assert!(
        shape.channels == layer.bias.len() && out.len().is_multiple_of(shape.channels),
        "depthwise row shapes"
    );
    row(layer.isa, input, shape, oy, pad, layer, out);
}

dispatch!(fn row(input: &[f32], shape: Shape, oy: usize, pad: Pad, layer: &Depthwise, out: &mut [f32]) => row_body);

#[inline(always)]
fn row_body<T: Target>(
    input: &[f32],
    shape: Shape,
    oy: usize,
    pad: Pad,
    layer: &Depthwise,
    out: &mut [f32],
) {
    let c = shape.channels;
    let ow = out.len() / c;
    let (h, w) = (shape.height as isize, shape.width as isize);
    let s = layer.stride as isize;
    let iy0 = oy as isize * s - pad.top as isize;
    // (offset of the window's left column from the pixel's first input value, tap index) of
    // the taps whose input row exists; a missing row (top or bottom padding) drops its three.
    let mut row_taps = [(0usize, 0usize); 9];
    let mut n = 0;
    for ky in 0..3 {
        let iy = iy0 + ky;
        if (0..h).contains(&iy) {
            for kx in 0..3 {
                row_taps[n] = (
                    iy as usize * shape.row_len() + kx as usize * c,
                    (ky * 3 + kx) as usize,
                );
                n += 1;
            }
        }
    }
    // Output columns whose windows lie wholly inside the image horizontally: ix0 = ox * s -
    // left >= 0 and ix0 + 2 < w.
    let (inner_lo, inner_hi) = if n > 0 && w >= 3 {
        let lo = pad.left.div_ceil(layer.stride);
        let hi = (w as usize + pad.left - 3) / layer.stride + 1;
        (lo, hi.min(ow).max(lo))
    } else {
        (0, 0)
    };
    if inner_lo < inner_hi {
        let row_taps = &row_taps[..n];
        if !interior_blocks::<T>(input, row_taps, pad, layer, c, inner_lo, inner_hi, out) {
            if layer.stride == 1 {
                flat_run::<T>(input, shape, row_taps, pad, layer, inner_lo, inner_hi, out);
            } else {
                inner_pixels::<T>(input, shape, row_taps, pad, layer, inner_lo, inner_hi, out);
            }
        }
    }
    // (input offset, tap offset) of the taps that fall inside the image; the rest read padding.
    let mut taps = [(0usize, 0usize); 9];
    for (ox, o) in out.chunks_exact_mut(c).enumerate() {
        if (inner_lo..inner_hi).contains(&ox) {
            continue;
        }
        let ix0 = ox as isize * s - pad.left as isize;
        let mut n = 0;
        for ky in 0..3 {
            let iy = iy0 + ky;
            if iy < 0 || iy >= h {
                continue;
            }
            for kx in 0..3 {
                let ix = ix0 + kx;
                if ix < 0 || ix >= w {
                    continue;
                }
                taps[n] = (((iy * w + ix) as usize) * c, (ky * 3 + kx) as usize * c);
                n += 1;
            }
        }
        any_pixel::<T>(input, &layer.taps, &layer.bias, &taps[..n], o);
    }
}

/// Output columns `lo..hi` of a row with the taps `row_taps` (see `row_body`) by
/// `avx512::interior`, either stride, at level AVX-512 when C is a multiple of 16 (all layers
/// but the 8- and 24-channel ones); false, having done nothing, otherwise.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
#[inline(always)]
fn interior_blocks<T: Target>(
    input: &[f32],
    row_taps: &[(usize, usize)],
    pad: Pad,
    layer: &Depthwise,
    c: usize,
    lo: usize,
    hi: usize,
    out: &mut [f32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if T::AVX512 && c.is_multiple_of(16) {
        let last = ((hi - 1) * layer.stride - pad.left) * c + c;
        let fits = row_taps
            .iter()
            .all(|&(off, t)| off + last <= input.len() && (t + 1) * c <= layer.taps.len());
        assert!(
            fits && lo * layer.stride >= pad.left && hi * c <= out.len() && layer.bias.len() == c,
            "depthwise interior out of range"
        );
        let run = avx512::Interior {
            row_taps,
            c,
            stride: layer.stride,
            left: pad.left,
        };
        // SAFETY: `T::AVX512` holds only in the copy `dispatch!` runs for an `Isa` of level
        // Avx512, which exists only where the CPU has AVX-512F; every value read or written is
        // in range (checked just above); there are 3, 6 or 9 taps (three per input row that
        // exists).
        unsafe {
            match row_taps.len() {
                9 => avx512::interior::<9>(input, &run, layer, lo, hi, out),
                6 => avx512::interior::<6>(input, &run, layer, lo, hi, out),
                _ => avx512::interior::<3>(input, &run, layer, lo, hi, out),
            }
        }
        return true;
    }
    false
}

/// Stride 1, output columns `lo..hi` of a row with the taps `row_taps` (see `row_body`): the
/// output values `lo*C..hi*C` as one run, each tap reading the input run shifted by its offset.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn flat_run<T: Target>(
    input: &[f32],
    shape: Shape,
    row_taps: &[(usize, usize)],
    pad: Pad,
    layer: &Depthwise,
    lo: usize,
    hi: usize,
    out: &mut [f32],
) {
    let c = shape.channels;
    let ext = c + RUN;
    // Input index of output value f for a tap: f - shift + its offset, where f >= lo * C >=
    // shift.
    let shift = pad.left * c;
    #[cfg(target_arch = "x86_64")]
    if T::AVX512 {
        let (first, end) = (lo * c, hi * c);
        let fits = row_taps.iter().all(|&(off, t)| {
            end - shift + off <= input.len() && (t + 1) * ext <= layer.ext_taps.len()
        });
        assert!(fits && end <= out.len(), "depthwise run out of range");
        // SAFETY: AVX-512F as in `interior_blocks`; the last value read per tap and the last
        // written are in range (checked just above), and phases stay below C.
        unsafe { avx512::flat_run(input, row_taps, shift, layer, c, first, end, out) };
        return;
    }
    let (mut f, end) = (lo * c, hi * c);
    // The channel of value f, kept without a division per step.
    let (mut phase, step) = (0, RUN % c);
    while f + RUN <= end {
        let mut acc: [f32; RUN] = layer.ext_bias[phase..phase + RUN].try_into().expect("run");
        for &(off, t) in row_taps {
            let i = f - shift + off;
            let x: &[f32; RUN] = input[i..i + RUN].try_into().expect("run");
            let wt: &[f32; RUN] = layer.ext_taps[t * ext + phase..][..RUN]
                .try_into()
                .expect("run");
            for j in 0..RUN {
                acc[j] = mul_add::<T>(x[j], wt[j], acc[j]);
            }
        }
        for (o, a) in out[f..f + RUN].iter_mut().zip(acc) {
            *o = relu6(a);
        }
        f += RUN;
        phase += step;
        if phase >= c {
            phase -= c;
        }
    }
    for f in f..end {
        let phase = f % c;
        let mut acc = layer.bias[phase];
        for &(off, t) in row_taps {
            acc = mul_add::<T>(input[f - shift + off], layer.taps[t * c + phase], acc);
        }
        out[f] = relu6(acc);
    }
}

/// Output columns `lo..hi` (windows inside horizontally) of a row with the taps `row_taps`,
/// pixel by pixel at fixed offsets (stride 2: pixels are not one run).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn inner_pixels<T: Target>(
    input: &[f32],
    shape: Shape,
    row_taps: &[(usize, usize)],
    pad: Pad,
    layer: &Depthwise,
    lo: usize,
    hi: usize,
    out: &mut [f32],
) {
    let c = shape.channels;
    let mut at = [(0usize, 0usize); 9];
    for ox in lo..hi {
        let base = (ox * layer.stride - pad.left) * c;
        for (a, &(off, t)) in at.iter_mut().zip(row_taps) {
            *a = (off + base, t * c);
        }
        any_pixel::<T>(
            input,
            &layer.taps,
            &layer.bias,
            &at[..row_taps.len()],
            &mut out[ox * c..][..c],
        );
    }
}

/// One output pixel from the given taps: AVX-512 registers at that level (plain Rust leaves the
/// ReLU6 of the blocks scalar), else the portable blocks.
#[inline(always)]
fn any_pixel<T: Target>(
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    taps: &[(usize, usize)],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if T::AVX512 {
        let c = out.len();
        let fits = taps
            .iter()
            .all(|&(i, t)| i + c <= input.len() && t + c <= weights.len());
        assert!(fits && bias.len() >= c, "depthwise taps out of range");
        // SAFETY: AVX-512F as in `interior_blocks`; every read is in range (checked just
        // above).
        unsafe { avx512::pixel(input, weights, bias, taps, out) };
        return;
    }
    pixel::<T>(input, weights, bias, taps, out);
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Depthwise, RUN};

    /// Output pixels per tile of `interior`.
    const PIXEL_TILE: usize = 8;

    /// The interior of an output row (windows wholly inside the image horizontally).
    pub struct Interior<'a> {
        /// (offset of the window's left column from the pixel's first input value, tap index)
        /// of the taps whose input row exists.
        pub row_taps: &'a [(usize, usize)],
        pub c: usize,
        pub stride: usize,
        /// Padding columns before the first input column.
        pub left: usize,
    }

    /// Output columns `lo..hi` of a row, for `C` a multiple of 16: 16 channels at a time, whose
    /// `NT` tap weights stay in registers while the loop walks a tile's pixels, four at a time
    /// (four independent accumulator chains): about half the loads of reading the weights
    /// again for every pixel.
    ///
    /// SAFETY (caller): the CPU has AVX-512F; `NT == run.row_taps.len()`; `C % 16 == 0`;
    /// `layer` has C channels; for every tap, the input
    /// values of columns `lo..hi` and its `C` weights are in range; `hi * C <= out.len()`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn interior<const NT: usize>(
        input: &[f32],
        run: &Interior,
        layer: &Depthwise,
        lo: usize,
        hi: usize,
        out: &mut [f32],
    ) {
        let c = run.c;
        let (x, o) = (input.as_ptr(), out.as_mut_ptr());
        let offsets: [usize; NT] = std::array::from_fn(|i| run.row_taps[i].0);
        let (zero, six) = (_mm512_setzero_ps(), _mm512_set1_ps(6.0));
        // Input offset of output column ox's window, channel block cb.
        let at = |ox: usize, cb: usize| (ox * run.stride - run.left) * c + cb;
        // Tiles of a few pixels, whose inputs (3 rows x 10 columns x C) stay in L1 while
        // every channel block passes over them.
        for tile in (lo..hi).step_by(PIXEL_TILE) {
            let tile_end = (tile + PIXEL_TILE).min(hi);
            for cb in (0..c).step_by(16) {
                // The caller's contract (checked by `interior_blocks`) covers every access
                // below: channels cb..cb + 16 <= C of the taps and the bias, and the input and
                // output pixels of columns lo..hi.
                let w: [__m512; NT] = std::array::from_fn(|i| {
                    let tap = layer.taps.as_ptr().wrapping_add(run.row_taps[i].1 * c + cb);
                    // SAFETY: channels cb..cb + 16 of a tap (the contract).
                    unsafe { _mm512_loadu_ps(tap) }
                });
                // SAFETY: channels cb..cb + 16 of the bias (the contract).
                let bias = unsafe { _mm512_loadu_ps(layer.bias.as_ptr().add(cb)) };
                let mut ox = tile;
                while ox + 4 <= tile_end {
                    let base: [usize; 4] = std::array::from_fn(|p| at(ox + p, cb));
                    let mut acc = [bias; 4];
                    for t in 0..NT {
                        for p in 0..4 {
                            // SAFETY: a tap of a column in lo..hi (the contract).
                            let v = unsafe { _mm512_loadu_ps(x.add(base[p] + offsets[t])) };
                            acc[p] = _mm512_fmadd_ps(v, w[t], acc[p]);
                        }
                    }
                    for (p, acc) in acc.into_iter().enumerate() {
                        // ReLU6 with the value second, so a NaN stays NaN (see pointwise.rs).
                        let y = _mm512_min_ps(six, _mm512_max_ps(zero, acc));
                        // SAFETY: column ox + p < hi, channels below C (the contract).
                        unsafe { _mm512_storeu_ps(o.add((ox + p) * c + cb), y) };
                    }
                    ox += 4;
                }
                for ox in ox..tile_end {
                    let base = at(ox, cb);
                    let mut acc = bias;
                    for t in 0..NT {
                        // SAFETY: a tap of a column in lo..hi (the contract).
                        let v = unsafe { _mm512_loadu_ps(x.add(base + offsets[t])) };
                        acc = _mm512_fmadd_ps(v, w[t], acc);
                    }
                    let y = _mm512_min_ps(six, _mm512_max_ps(zero, acc));
                    // SAFETY: column ox < hi, channels below C (the contract).
                    unsafe { _mm512_storeu_ps(o.add(ox * c + cb), y) };
                }
            }
        }
    }

    /// `flat_run` in AVX-512 registers: 32 values per step, the last step masked.
    ///
    /// SAFETY (caller): the CPU has AVX-512F; for every tap, `end - shift + off <=
    /// input.len()` and its extended weights exist; `end <= out.len()`; `first` a multiple of
    /// `c`, the layer's channel count.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn flat_run(
        input: &[f32],
        row_taps: &[(usize, usize)],
        shift: usize,
        layer: &Depthwise,
        c: usize,
        first: usize,
        end: usize,
        out: &mut [f32],
    ) {
        let ext = c + RUN;
        let (x, o) = (input.as_ptr(), out.as_mut_ptr());
        let (wt, bias) = (layer.ext_taps.as_ptr(), layer.ext_bias.as_ptr());
        let (zero, six) = (_mm512_setzero_ps(), _mm512_set1_ps(6.0));
        let (mut f, mut phase, step) = (first, 0, RUN % c);
        while f < end {
            let left = end - f;
            let m0: __mmask16 = if left >= 16 {
                0xffff
            } else {
                ((1u32 << left) - 1) as __mmask16
            };
            let m1: __mmask16 = if left >= 32 {
                0xffff
            } else if left > 16 {
                ((1u32 << (left - 16)) - 1) as __mmask16
            } else {
                0
            };
            // Pointers past the end are only formed (wrapping) for fully masked lanes, never
            // dereferenced. The extended weights and biases hold C + 32 values per tap, and
            // phase < C.
            // SAFETY: ext_bias[phase..phase + 32] exists (C + 32 values, phase < C).
            let (mut a0, mut a1) = unsafe {
                (
                    _mm512_loadu_ps(bias.add(phase)),
                    _mm512_loadu_ps(bias.add(phase + 16)),
                )
            };
            for &(off, t) in row_taps {
                let xi = x.wrapping_add(f - shift + off);
                let wi = wt.wrapping_add(t * ext + phase);
                // SAFETY: the unmasked input values lie below `end - shift + off` (the
                // contract); the tap's 32 extended weights from `phase` exist.
                let (x0, x1, w0, w1) = unsafe {
                    (
                        _mm512_maskz_loadu_ps(m0, xi),
                        _mm512_maskz_loadu_ps(m1, xi.wrapping_add(16)),
                        _mm512_loadu_ps(wi),
                        _mm512_loadu_ps(wi.add(16)),
                    )
                };
                a0 = _mm512_fmadd_ps(x0, w0, a0);
                a1 = _mm512_fmadd_ps(x1, w1, a1);
            }
            // ReLU6 with the value second, so a NaN stays NaN (see pointwise.rs).
            let y0 = _mm512_min_ps(six, _mm512_max_ps(zero, a0));
            let y1 = _mm512_min_ps(six, _mm512_max_ps(zero, a1));
            // SAFETY: the unmasked output values lie below `end <= out.len()` (the contract).
            unsafe {
                _mm512_mask_storeu_ps(o.wrapping_add(f), m0, y0);
                _mm512_mask_storeu_ps(o.wrapping_add(f + 16), m1, y1);
            }
            f += RUN;
            phase += step;
            if phase >= c {
                phase -= c;
            }
        }
    }

    /// `out[k] = relu6(bias[k] + sum over taps of input[i + k] * weights[t + k])`, 16 channels
    /// per register, the tail masked.
    ///
    /// SAFETY (caller): the CPU has AVX-512F; `i + out.len() <= input.len()` and `t +
    /// out.len() <= weights.len()` for every tap, `bias.len() >= out.len()`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn pixel(
        input: &[f32],
        weights: &[f32],
        bias: &[f32],
        taps: &[(usize, usize)],
        out: &mut [f32],
    ) {
        let c = out.len();
        let (x, w, o) = (input.as_ptr(), weights.as_ptr(), out.as_mut_ptr());
        let (zero, six) = (_mm512_setzero_ps(), _mm512_set1_ps(6.0));
        let mut k = 0;
        while k < c {
            let mask: __mmask16 = if c - k >= 16 {
                0xffff
            } else {
                ((1u32 << (c - k)) - 1) as __mmask16
            };
            // SAFETY: k < c, and the unmasked lanes k..min(k + 16, c) of the bias are in range
            // (the caller's contract).
            let mut acc = unsafe { _mm512_maskz_loadu_ps(mask, bias.as_ptr().add(k)) };
            for &(i, t) in taps {
                // SAFETY: as for the bias, for the tap's input and weights.
                let (xv, wv) = unsafe {
                    (
                        _mm512_maskz_loadu_ps(mask, x.add(i + k)),
                        _mm512_maskz_loadu_ps(mask, w.add(t + k)),
                    )
                };
                acc = _mm512_fmadd_ps(xv, wv, acc);
            }
            // ReLU6 with the value second, so a NaN stays NaN (see pointwise.rs).
            let y = _mm512_min_ps(six, _mm512_max_ps(zero, acc));
            // SAFETY: as for the bias, for `out`.
            unsafe { _mm512_mask_storeu_ps(o.add(k), mask, y) };
            k += 16;
        }
    }
}

#[inline(always)]
fn pixel<T: Target>(
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    taps: &[(usize, usize)],
    out: &mut [f32],
) {
    let c = out.len();
    let mut k = 0;
    // Wide blocks keep several independent accumulator registers in flight.
    while k + 32 <= c {
        block::<32, T>(input, weights, bias, taps, out, k);
        k += 32;
    }
    while k + 16 <= c {
        block::<16, T>(input, weights, bias, taps, out, k);
        k += 16;
    }
    while k + 8 <= c {
        block::<8, T>(input, weights, bias, taps, out, k);
        k += 8;
    }
    while k < c {
        block::<1, T>(input, weights, bias, taps, out, k);
        k += 1;
    }
}

#[inline(always)]
fn block<const B: usize, T: Target>(
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    taps: &[(usize, usize)],
    out: &mut [f32],
    k: usize,
) {
    let mut acc: [f32; B] = bias[k..k + B].try_into().expect("block of B");
    for &(i, t) in taps {
        let x: &[f32; B] = input[i + k..i + k + B].try_into().expect("block of B");
        let wt: &[f32; B] = weights[t + k..t + k + B].try_into().expect("block of B");
        for j in 0..B {
            acc[j] = mul_add::<T>(x[j], wt[j], acc[j]);
        }
    }
    for (o, a) in out[k..k + B].iter_mut().zip(acc) {
        *o = relu6(a);
    }
}
