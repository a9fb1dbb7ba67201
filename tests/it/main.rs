//! The integration tests, one binary with each suite a module: the crate and its dependencies
//! are linked once instead of once per suite (most of a cold CI run's build time was links).
//! `tests/decode_memory.rs` stays a binary of its own: it counts the process's allocations.
//!
//! One suite: `cargo test --test it fetch::`; one test: `cargo test --test it -- --exact NAME`.

mod common;

mod cli;
mod cpu_fast_path;
mod crafted;
mod export;
mod fetch;
mod finetune;
mod fuzz_regressions;
mod hardening;
mod parity;
mod ptq;
mod quant_parity;
mod report;
mod robustness;
mod scale;
mod train_parity;
