//! The MobileNet V1 network: its layer table, TF SAME padding, and the candle implementation.

pub mod arch;
pub mod mobilenet;
pub mod padding;

pub use arch::{Arch, Layer, LayerKind, BN_EPSILON, NUM_CLASSES};
pub use mobilenet::{ModelError, MobileNetV1};
