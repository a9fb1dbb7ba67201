//! What can go wrong building or running the network, on any backend.

use super::arch::LOGITS_SCOPE;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the weights have no tensor '{0}'")]
    Missing(String),
    #[error("tensor '{name}' has shape {found:?}, expected {expected:?}")]
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error(
        "the weights are for depth multiplier {found} (Conv2d_0 has {filters} filters), \
         but the variant needs {wanted}: pick the matching --variant or other --weights"
    )]
    WrongMultiplier {
        found: String,
        filters: usize,
        wanted: f64,
    },
    #[error(
        "the weights have no logits layer ({LOGITS_SCOPE}); they can serve `mnv1 embed`, \
         not `mnv1 classify`"
    )]
    NoLogits,
    #[error("input of {height}x{width} is too small: the network needs at least 32x32")]
    TooSmall { height: usize, width: usize },
    /// Weights and settings that cannot go together (a quantized model on a GPU, ...): a usage
    /// error, exit 2.
    #[error("{0}")]
    Unsupported(String),
    #[error("bad input: {0}")]
    Input(String),
    #[error("cannot start the CPU threads: {0}")]
    Threads(String),
    #[error(transparent)]
    Isa(#[from] super::kernels::IsaError),
    /// `--precision bf16` where the CPU, or `MNV1_ISA`, rules out `vdpbf16ps`: exit 2.
    #[error(transparent)]
    Bf16(#[from] super::kernels::Bf16Error),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
