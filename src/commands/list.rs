//! `mnv1 list`: the 32 variants, one row each.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use super::Status;
use crate::cache;
use crate::cli::{ListArgs, ListFormat};
use crate::model::Arch;
use crate::registry::{Head, Registry};

#[derive(Serialize)]
struct Row<'a> {
    id: &'a str,
    module: &'a str,
    depth_multiplier: f64,
    resolution: usize,
    outputs: usize,
    /// Exact parameter count of this module (the feature_vector module has no logits layer).
    params: usize,
    /// Multiply-accumulates per image at the module's resolution, computed from the layer table.
    macs: u64,
    published_top1: f64,
    published_top5: f64,
    hub_handle: &'a str,
    /// Canonical weights in the cache.
    weights_local: bool,
}

pub fn run(args: &ListArgs) -> Result<Status> {
    let cache_dir = cache::cache_dir()?;
    let rows: Vec<Row> = Registry::builtin()
        .variants()
        .iter()
        .map(|v| {
            let arch = Arch::new(v.depth_multiplier);
            let head_params = arch.feature_dim() * 1001 + 1001;
            let head_macs = (arch.feature_dim() * 1001) as u64;
            let classification = v.module == Head::Logits;
            Row {
                id: &v.id,
                module: v.module.hub_module(),
                depth_multiplier: v.depth_multiplier,
                resolution: v.resolution,
                outputs: v.outputs,
                params: arch.trainable_params() - if classification { 0 } else { head_params },
                macs: arch.macs(v.resolution, v.resolution)
                    - if classification { 0 } else { head_macs },
                published_top1: v.published_top1,
                published_top5: v.published_top5,
                hub_handle: &v.hub_handle,
                weights_local: cache::weights_path_in(&cache_dir, &v.checkpoint).exists(),
            }
        })
        .collect();
    let mut out = std::io::stdout().lock();
    match args.format {
        ListFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &rows)?;
            writeln!(out)?;
        }
        ListFormat::Text => {
            writeln!(
                out,
                "{:<8} {:<15} {:>7} {:>10} {:>8} {:>6} {:>6}  weights",
                "variant", "module", "outputs", "params", "MACs", "top-1", "top-5"
            )?;
            for r in &rows {
                writeln!(
                    out,
                    "{:<8} {:<15} {:>7} {:>10} {:>7.1}M {:>6.1} {:>6.1}  {}",
                    r.id,
                    r.module,
                    r.outputs,
                    r.params,
                    r.macs as f64 / 1e6,
                    r.published_top1,
                    r.published_top5,
                    if r.weights_local { "cached" } else { "-" }
                )?;
            }
        }
    }
    Ok(Status::Ok)
}
