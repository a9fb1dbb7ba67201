//! `mnv1 convert`: any supported weights to the canonical safetensors form.

use anyhow::Result;

use super::Status;
use crate::cli::ConvertArgs;
use crate::error::UsageError;
use crate::weights::safetensors::{write_canonical, CanonicalMetadata};
use crate::weights::{self};

pub fn run(args: &ConvertArgs, quiet: bool) -> Result<Status> {
    let w = weights::load(&args.input).map_err(|e| UsageError::new(e.to_string()))?;
    let metadata = CanonicalMetadata {
        depth_multiplier: w.arch.depth_multiplier,
        source_format: w.format.to_string(),
        extra: Vec::new(),
    };
    write_canonical(&w.tensors, metadata, &args.out)?;
    if !quiet {
        eprintln!(
            "mnv1: wrote {} ({} tensors, depth multiplier {}, from a {}{})",
            args.out.display(),
            w.tensors.len(),
            w.arch.depth_multiplier,
            w.format,
            if w.has_logits() {
                ""
            } else {
                ", no logits layer"
            }
        );
    }
    Ok(Status::Ok)
}
