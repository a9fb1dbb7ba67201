//! The MobileNet V1 network: its layer table, TF SAME padding, the candle implementation (the
//! reference, and the path for CUDA / Metal) and the CPU fast path with its kernels.

pub mod arch;
pub mod cpu;
pub mod kernels;
pub mod mobilenet;
pub mod padding;

pub use arch::{Arch, Head, Layer, LayerKind, BN_EPSILON, NUM_CLASSES};
pub use cpu::CpuMobileNet;
pub use mobilenet::{MobileNetV1, ModelError};
