//! 3x3 depthwise convolution (channel multiplier 1), TF SAME padding, stride 1 or 2, any input
//! size, over NHWC: each output pixel reads at most nine input pixels' channel vectors, so the
//! loop over channels is the vectorised one and needs no transposes or shifted copies.

use super::simd::{dispatch, mul_add};
use super::{relu6, Pad, Shape};

/// A folded depthwise layer: taps `[3, 3, C]` (TF's `[kh, kw, C, 1]` as stored), bias `[C]`.
pub struct Depthwise {
    pub taps: Vec<f32>,
    pub bias: Vec<f32>,
    pub stride: usize,
}

dispatch!(pub fn depthwise_row(input: &[f32], shape: Shape, oy: usize, pad: Pad, layer: &Depthwise, out: &mut [f32]) => row_body);

/// Output row `oy` (`out`: `[OW, C]`) of one image `input` (`[H, W, C]`).
#[inline(always)]
fn row_body<const FMA: bool>(
    input: &[f32],
    shape: Shape,
    oy: usize,
    pad: Pad,
    layer: &Depthwise,
    out: &mut [f32],
) {
    let c = shape.channels;
    let (h, w) = (shape.height as isize, shape.width as isize);
    let s = layer.stride as isize;
    let iy0 = oy as isize * s - pad.top as isize;
    // (input offset, tap offset) of the taps that fall inside the image; the rest read padding.
    let mut taps = [(0usize, 0usize); 9];
    for (ox, o) in out.chunks_exact_mut(c).enumerate() {
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
        pixel::<FMA>(input, &layer.taps, &layer.bias, &taps[..n], o);
    }
}

#[inline(always)]
fn pixel<const FMA: bool>(
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
        block::<32, FMA>(input, weights, bias, taps, out, k);
        k += 32;
    }
    while k + 8 <= c {
        block::<8, FMA>(input, weights, bias, taps, out, k);
        k += 8;
    }
    while k < c {
        block::<1, FMA>(input, weights, bias, taps, out, k);
        k += 1;
    }
}

#[inline(always)]
fn block<const B: usize, const FMA: bool>(
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
            acc[j] = mul_add::<FMA>(x[j], wt[j], acc[j]);
        }
    }
    for (o, a) in out[k..k + B].iter_mut().zip(acc) {
        *o = relu6(a);
    }
}
