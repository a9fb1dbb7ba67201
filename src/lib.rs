//! mnv1: Google's MobileNet V1 image models on candle. The binary (`src/main.rs`) is a thin
//! shell over these modules; data flows one way: inputs -> preprocess -> model -> output.

// Every unsafe operation in its own block with a `// SAFETY:` argument, in `unsafe fn` too.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub(crate) mod atomic;
pub(crate) mod cache;
pub mod cli;
pub mod commands;
pub(crate) mod config;
pub mod engine;
pub mod error;
pub(crate) mod export;
pub mod hub;
pub mod inputs;
pub mod interrupt;
pub mod labels;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod preprocess;
pub mod quantize;
pub mod registry;
pub mod report;
pub(crate) mod tempfiles;
pub mod train;
pub mod weights;
