//! The CPU fast path's kernels over NHWC activations, one concern per file. Each layer kernel
//! writes its output with the folded-BatchNorm bias added and ReLU6 applied, so no pass over an
//! activation is spent on either.

pub mod conv0;
pub mod depthwise;
pub mod pointwise;
pub mod pool;
mod simd;

/// One NHWC image's activation: `height` rows of `width * channels` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

impl Shape {
    pub fn len(&self) -> usize {
        self.height * self.width * self.channels
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn row_len(&self) -> usize {
        self.width * self.channels
    }
}

/// TF SAME padding before the first row and column of a 3x3 layer (the odd one goes after).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pad {
    pub top: usize,
    pub left: usize,
}

/// ReLU6, written so that a NaN stays NaN (as in TensorFlow) instead of turning into 0 or 6.
#[inline(always)]
pub(crate) fn relu6(v: f32) -> f32 {
    if v < 0.0 {
        0.0
    } else if v > 6.0 {
        6.0
    } else {
        v
    }
}
