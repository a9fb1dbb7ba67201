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

// Each kernel body is compiled once per instruction-set level (`dispatch!`, as the inference
// kernels are) and runs at the level its layer was built with: `MNV1_ISA` or the widest the CPU
// has, chosen once when the network is built (`CpuTrainNet::from_tensors`).
pub(crate) use crate::model::kernels::simd::{dispatch, mul_add, Target};
pub(crate) use crate::model::kernels::Isa;

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
