//! `mnv1 convert`: any supported weights to the canonical safetensors form.

use std::collections::HashMap;

use anyhow::Result;

use super::Status;
use crate::cli::ConvertArgs;
use crate::weights::{self, safetensors::write_safetensors};

pub fn run(args: &ConvertArgs, quiet: bool) -> Result<Status> {
    let w = weights::load(&args.input)?;
    let metadata = HashMap::from([
        ("format".to_string(), "mnv1".to_string()),
        (
            "depth_multiplier".to_string(),
            w.arch.depth_multiplier.to_string(),
        ),
        ("source_format".to_string(), w.format.to_string()),
    ]);
    write_safetensors(&w.tensors, metadata, &args.out)?;
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
