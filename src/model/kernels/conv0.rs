//! Conv2d_0: the full 3x3 stride-2 convolution on the RGB image, TF SAME padding, over NHWC.
//! It also maps the hub signature's [0,1] input to the graph's [-1,1] on the fly: padding is
//! zero in [-1,1], so the affine map cannot be folded into the filter.
//!
//! Each output row first copies the three input rows it reads into a zero-padded scratch buffer
//! (already mapped to [-1,1]), so the loop over pixels has no bounds cases; then tiles of
//! several pixels x one block of output channels accumulate in registers over the 27 taps.

use std::cell::RefCell;

use super::simd::{dispatch, mul_add, Target};
use super::{relu6, Isa, Pad, Shape};

/// The folded first layer: filter `[3, 3, 3, Cout]` (TF's HWIO as stored), bias `[Cout]`.
/// The fields are private so that the lengths `new` checks hold for the AVX-512 kernel's raw
/// reads.
pub struct Conv0 {
    filter: Vec<f32>,
    bias: Vec<f32>,
    stride: usize,
    isa: Isa,
}

impl Conv0 {
    /// The layer, run with `isa`. Panics unless `filter` holds `27 * Cout` values for `Cout =
    /// bias.len() > 0` and the stride is 1 or 2.
    pub fn new(filter: Vec<f32>, bias: Vec<f32>, stride: usize, isa: Isa) -> Self {
        let cout = bias.len();
        assert!(cout > 0, "conv0 without output channels");
        assert_eq!(filter.len(), 27 * cout, "conv0 filter [3, 3, 3, Cout]");
        assert!(matches!(stride, 1 | 2), "conv0 stride {stride}");
        Self {
            filter,
            bias,
            stride,
            isa,
        }
    }

    pub fn stride(&self) -> usize {
        self.stride
    }
}

thread_local! {
    /// The padded input rows of the output row being computed, reused by every call on a thread.
    static ROWS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Output row `oy` (`out`: `[OW, Cout]`, OW >= 1) of one image (`[H, W, 3]`, values in [0,1]).
pub fn conv0_row(image: &[f32], shape: Shape, oy: usize, pad: Pad, layer: &Conv0, out: &mut [f32]) {
    let cout = layer.bias.len();
    assert!(
        shape.channels == 3
            && image.len() >= shape.len()
            && !out.is_empty()
            && out.len().is_multiple_of(cout),
        "conv0 row shapes"
    );
    row(layer.isa, image, shape, oy, pad, layer, out);
}

dispatch!(fn row(image: &[f32], shape: Shape, oy: usize, pad: Pad, layer: &Conv0, out: &mut [f32]) => row_body);

#[inline(always)]
fn row_body<T: Target>(
    image: &[f32],
    shape: Shape,
    oy: usize,
    pad: Pad,
    layer: &Conv0,
    out: &mut [f32],
) {
    let cout = layer.bias.len();
    let ow = out.len() / cout;
    let s = layer.stride;
    // Columns the row's windows cover, padding included.
    let cols = (ow - 1) * s + 3;
    // The scratch is taken out of the thread-local rather than used in a `with` closure: a
    // closure is compiled without the caller's target features, and its FMAs would become
    // calls to a software fma.
    let mut rows = ROWS.with(|r| std::mem::take(&mut *r.borrow_mut()));
    rows.clear();
    rows.resize(3 * cols * 3, 0.0);
    for ky in 0..3 {
        let Some(iy) = (oy * s + ky).checked_sub(pad.top) else {
            continue;
        };
        if iy >= shape.height {
            continue;
        }
        let src = &image[iy * shape.width * 3..][..shape.width * 3];
        // Input column ix lands at scratch column ix + pad.left, as far as the row reaches.
        let n = shape.width.min(cols - pad.left);
        let dst = &mut rows[(ky * cols + pad.left) * 3..][..n * 3];
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = v * 2.0 - 1.0;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if T::AVX512 {
        // SAFETY: `T::AVX512` holds only in the copy `dispatch!` runs for an `Isa` of level
        // Avx512, which exists only where the CPU has AVX-512F.
        unsafe { avx512::row(&rows, cols, s, layer, out) };
        ROWS.with(|r| *r.borrow_mut() = rows);
        return;
    }
    portable_row::<T>(&rows, cols, s, layer, out);
    ROWS.with(|r| *r.borrow_mut() = rows);
}

/// The row from the padded scratch in plain Rust (levels below AVX-512).
#[inline(always)]
fn portable_row<T: Target>(rows: &[f32], cols: usize, s: usize, layer: &Conv0, out: &mut [f32]) {
    let cout = layer.bias.len();
    let mut c = 0;
    while c < cout {
        c += match cout - c {
            32.. => channel_block::<32, 6, T>(rows, cols, s, layer, c, out),
            16.. => channel_block::<16, 8, T>(rows, cols, s, layer, c, out),
            8.. => channel_block::<8, 8, T>(rows, cols, s, layer, c, out),
            _ => channel_block::<1, 8, T>(rows, cols, s, layer, c, out),
        };
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::Conv0;

    /// Every output pixel of the row: blocks of 32 channels (two registers) six pixels at a
    /// time; a block of at most 16 channels (8, 16 and the rest of 24) twelve pixels at a time.
    ///
    /// SAFETY (caller): the CPU has AVX-512F. (`tile` checks the bounds of what it reads from
    /// `rows` and writes to `out`; `Conv0::new` those of the filter and bias.)
    #[target_feature(enable = "avx512f")]
    pub unsafe fn row(rows: &[f32], cols: usize, s: usize, layer: &Conv0, out: &mut [f32]) {
        let cout = layer.bias.len();
        let ow = out.len() / cout;
        let mut c = 0;
        while c < cout {
            let width = (cout - c).min(32);
            let mask = |v: usize| -> __mmask16 {
                let lanes = width.saturating_sub(16 * v).min(16);
                ((1u32 << lanes) - 1) as __mmask16
            };
            let masks = [mask(0), mask(1)];
            let mut ox = 0;
            if width > 16 {
                while ox + 6 <= ow {
                    // SAFETY: AVX-512F (our caller's contract); `tile` checks its bounds.
                    unsafe { tile::<2, 6>(rows, cols, s, layer, c, masks, ox, out) };
                    ox += 6;
                }
                while ox < ow {
                    // SAFETY: as above.
                    unsafe { tile::<2, 1>(rows, cols, s, layer, c, masks, ox, out) };
                    ox += 1;
                }
            } else {
                while ox + 12 <= ow {
                    // SAFETY: as above.
                    unsafe { tile::<1, 12>(rows, cols, s, layer, c, masks, ox, out) };
                    ox += 12;
                }
                while ox < ow {
                    // SAFETY: as above.
                    unsafe { tile::<1, 1>(rows, cols, s, layer, c, masks, ox, out) };
                    ox += 1;
                }
            }
            c += width;
        }
    }

    /// Pixels `ox..ox+P` x channels `c..c+16V` (lanes past `masks` neither read nor written).
    ///
    /// SAFETY (caller): the CPU has AVX-512F; `masks` cover only channels below `Cout`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const V: usize, const P: usize>(
        rows: &[f32],
        cols: usize,
        s: usize,
        layer: &Conv0,
        c: usize,
        masks: [__mmask16; 2],
        ox: usize,
        out: &mut [f32],
    ) {
        let cout = layer.bias.len();
        // Bounds of everything the raw reads below touch.
        assert!(
            (ox + P - 1) * s * 3 + 9 <= cols * 3
                && rows.len() >= 3 * cols * 3
                && out.len() >= (ox + P) * cout,
            "conv0 tile out of range"
        );
        // Pointers to lanes that `masks` leave out are formed with wrapping_add: they may lie
        // past the end, and are never dereferenced.
        let filter = layer.filter.as_ptr();
        let bias: [__m512; V] = std::array::from_fn(|v| {
            // SAFETY: the unmasked lanes are channels c + 16v.. below Cout = bias.len().
            unsafe { _mm512_maskz_loadu_ps(masks[v], layer.bias.as_ptr().wrapping_add(c + 16 * v)) }
        });
        let mut acc = [bias; P];
        for ky in 0..3 {
            let row = rows.as_ptr().wrapping_add((ky * cols + ox * s) * 3);
            for j in 0..9 {
                let tap = filter.wrapping_add((ky * 9 + j) * cout + c);
                let w: [__m512; V] = std::array::from_fn(|v| {
                    // SAFETY: the filter holds 27 x Cout values (`Conv0::new`) and the unmasked
                    // lanes are channels below Cout of tap ky * 9 + j < 27.
                    unsafe { _mm512_maskz_loadu_ps(masks[v], tap.wrapping_add(16 * v)) }
                });
                for (p, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: value (ky * cols + (ox + p) * s) * 3 + j < 3 * cols * 3, within
                    // `rows` by the assert above.
                    let x = _mm512_set1_ps(unsafe { *row.add(p * s * 3 + j) });
                    for v in 0..V {
                        acc[v] = _mm512_fmadd_ps(x, w[v], acc[v]);
                    }
                }
            }
        }
        // ReLU6 with the value second, so a NaN stays NaN (see pointwise.rs).
        let (zero, six) = (_mm512_setzero_ps(), _mm512_set1_ps(6.0));
        for (p, acc) in acc.iter().enumerate() {
            let o = out.as_mut_ptr().wrapping_add((ox + p) * cout + c);
            for v in 0..V {
                let y = _mm512_min_ps(six, _mm512_max_ps(zero, acc[v]));
                // SAFETY: pixel ox + p < out.len() / Cout by the assert above; the unmasked
                // lanes are channels below Cout.
                unsafe { _mm512_mask_storeu_ps(o.wrapping_add(16 * v), masks[v], y) };
            }
        }
    }
}

/// Output channels `c..c+B` of every pixel of the row, `P` pixels at a time; returns `B`.
#[inline(always)]
fn channel_block<const B: usize, const P: usize, T: Target>(
    rows: &[f32],
    cols: usize,
    s: usize,
    layer: &Conv0,
    c: usize,
    out: &mut [f32],
) -> usize {
    let cout = layer.bias.len();
    let ow = out.len() / cout;
    let mut ox = 0;
    while ox + P <= ow {
        tile::<B, P, T>(rows, cols, s, layer, c, ox, out);
        ox += P;
    }
    while ox < ow {
        tile::<B, 1, T>(rows, cols, s, layer, c, ox, out);
        ox += 1;
    }
    B
}

/// Pixels `ox..ox+P` x channels `c..c+B`, accumulated in registers over the 27 taps.
#[inline(always)]
fn tile<const B: usize, const P: usize, T: Target>(
    rows: &[f32],
    cols: usize,
    s: usize,
    layer: &Conv0,
    c: usize,
    ox: usize,
    out: &mut [f32],
) {
    let cout = layer.bias.len();
    let bias: &[f32; B] = layer.bias[c..c + B].try_into().expect("block of B");
    let mut acc = [*bias; P];
    // The P windows of one scratch row: 9 values (3 pixels x RGB) every 3 * s.
    let span = ((P - 1) * s + 3) * 3;
    for ky in 0..3 {
        let row = &rows[(ky * cols + ox * s) * 3..][..span];
        for j in 0..9 {
            let w: &[f32; B] = layer.filter[(ky * 9 + j) * cout + c..][..B]
                .try_into()
                .expect("block of B");
            for (p, acc) in acc.iter_mut().enumerate() {
                let x = row[p * s * 3 + j];
                for (a, &w) in acc.iter_mut().zip(w) {
                    *a = mul_add::<T>(x, w, *a);
                }
            }
        }
    }
    for (p, acc) in acc.iter().enumerate() {
        for (o, &a) in out[(ox + p) * cout + c..][..B].iter_mut().zip(acc) {
            *o = relu6(a);
        }
    }
}
