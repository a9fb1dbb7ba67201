//! The MobileNet V1 network: its layer table, TF SAME padding, the candle implementation (the
//! reference, and the path for CUDA / Metal) and the CPU fast path with its kernels.

pub mod arch;
pub(crate) mod backbone;
pub(crate) mod cpu;
mod error;
pub mod kernels;
pub(crate) mod mobilenet;
pub(crate) mod padding;
pub(crate) mod params;
pub mod precision;
pub mod quant;

pub(crate) use arch::NUM_CLASSES;
pub use arch::{Arch, Head};
pub use backbone::Backbone;
pub use cpu::CpuMobileNet;
pub use error::ModelError;
pub use mobilenet::MobileNetV1;
pub use precision::Precision;
