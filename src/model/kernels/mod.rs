//! The CPU fast path's kernels over NHWC activations, one concern per file. Each layer kernel
//! writes its output with the folded-BatchNorm bias added and ReLU6 applied, so no pass over an
//! activation is spent on either. Each layer keeps the instruction set it was built for
//! (`simd::Isa`), and a pointwise layer the arithmetic of its products (fp32, or bf16 in
//! `bf16.rs`); the tests at the end run every kernel at every level the CPU supports.

pub(crate) mod bf16;
pub(crate) mod conv0;
pub(crate) mod depthwise;
pub(crate) mod pointwise;
pub(crate) mod pool;
pub(crate) mod simd;

pub use bf16::{Bf16, Bf16Error};
pub use simd::Isa;
pub(crate) use simd::IsaError;

#[cfg(test)]
mod tests;

/// One NHWC image's activation: `height` rows of `width * channels` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) height: usize,
    pub(crate) width: usize,
    pub(crate) channels: usize,
}

impl Shape {
    pub(crate) fn len(&self) -> usize {
        self.height * self.width * self.channels
    }

    pub(crate) fn row_len(&self) -> usize {
        self.width * self.channels
    }
}

/// A zeroed buffer of `f32` (or of `u32`: bf16 pairs) whose first value sits on a 64-byte
/// boundary, so that 16-lane loads of rows that are multiples of 16 values never straddle two
/// cache lines (a large `Vec` from the allocator starts 16 bytes past a page boundary).
#[derive(Default)]
pub(crate) struct AlignedBuf<T = f32> {
    buf: Vec<T>,
    offset: usize,
    len: usize,
}

impl<T: Copy + Default> AlignedBuf<T> {
    const ALIGN_VALUES: usize = 64 / std::mem::size_of::<T>();

    pub(crate) fn zeroed(len: usize) -> Self {
        let buf = vec![T::default(); len + Self::ALIGN_VALUES];
        let misalign = (buf.as_ptr() as usize % 64) / std::mem::size_of::<T>();
        let offset = (Self::ALIGN_VALUES - misalign) % Self::ALIGN_VALUES;
        Self { buf, offset, len }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        &self.buf[self.offset..self.offset + self.len]
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.buf[self.offset..self.offset + self.len]
    }
}

/// TF SAME padding before the first row and column of a 3x3 layer (the odd one goes after).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pad {
    pub(crate) top: usize,
    pub(crate) left: usize,
}

/// ReLU6. `f32::clamp` keeps a NaN a NaN (as TensorFlow does), where `max(0).min(6)` would not.
#[inline(always)]
pub(crate) fn relu6(v: f32) -> f32 {
    v.clamp(0.0, 6.0)
}
