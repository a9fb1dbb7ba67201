//! Kernels of the CPU training path over NHWC activations (`[N, H, W, C]`, so a batch is a
//! `[N * H * W, C]` matrix of pixel rows): each layer's forward pass and the two halves of its
//! backward pass (gradient of the input, gradient of the filter), train-mode BatchNorm with
//! ReLU6, and the GEMMs the 1x1 and first layers are made of. Every kernel splits its work over
//! the rayon pool it is called in; reductions over the batch sum fixed parts in a fixed order, so
//! a run gives the same numbers every time.

pub mod batchnorm;
pub mod conv0;
pub mod depthwise;
pub mod matmul;

use std::ops::Range;

pub(crate) use crate::model::kernels::{Pad, Shape};

/// Parts a reduction over pixel rows is split into (its partial sums are added in this order).
pub const REDUCE_PARTS: usize = 32;

/// `parts` contiguous ranges covering `0..rows` (fewer, none empty, when `rows < parts`).
pub fn split_rows(rows: usize, parts: usize) -> impl Iterator<Item = Range<usize>> + Clone {
    let per = rows.div_ceil(parts.max(1)).max(1);
    (0..rows.div_ceil(per)).map(move |i| i * per..((i + 1) * per).min(rows))
}

/// Compiles `$body::<true>` with AVX-512 (or AVX2) and FMA enabled and picks it at run time,
/// like the inference kernels do, so the channel loops of the hand-written kernels vectorise.
macro_rules! simd_dispatch {
    ($vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:ident) => {
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) { $body::<true>($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) { $body::<true>($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU reported AVX-512F (and so AVX2 and FMA) at run time.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU reported AVX2 and FMA at run time.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body::<false>($($arg),*)
        }
    };
}
pub(crate) use simd_dispatch;

/// `a * b + c`, fused where the body was compiled with FMA.
#[inline(always)]
pub(crate) fn mul_add<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

#[cfg(test)]
mod tests {
    use super::split_rows;

    #[test]
    fn split_rows_covers_every_row_once() {
        for (rows, parts) in [
            (0, 4),
            (1, 4),
            (7, 4),
            (8, 4),
            (100, 32),
            (31, 32),
            (33, 32),
        ] {
            let ranges: Vec<_> = split_rows(rows, parts).collect();
            assert!(ranges.len() <= parts.max(1));
            assert!(ranges.iter().all(|r| !r.is_empty()));
            let flat: Vec<usize> = ranges.into_iter().flatten().collect();
            assert_eq!(
                flat,
                (0..rows).collect::<Vec<_>>(),
                "{rows} rows in {parts}"
            );
        }
    }
}
