//! `mnv1 fetch`: put variants' weights into the cache ahead of use (e.g. before going offline).

use anyhow::Result;

use super::Status;
use crate::cli::FetchArgs;
use crate::hub::{self, FetchOptions};
use crate::registry::{Head, Registry, Variant};

pub fn run(args: &FetchArgs, quiet: bool) -> Result<Status> {
    let registry = Registry::builtin();
    let mut wanted: Vec<&Variant> = if args.all {
        registry.checkpoints().collect()
    } else {
        args.variant
            .iter()
            .map(|spec| {
                // Either module's spelling names the checkpoint they share.
                registry.resolve(spec, Head::Features)
            })
            .collect::<Result<_, _>>()?
    };
    wanted.dedup_by(|a, b| a.checkpoint == b.checkpoint);
    let opts = FetchOptions::from_env(args.net.offline, args.net.mirror.as_deref(), quiet)?;
    let mut failed = 0;
    for v in wanted {
        match hub::ensure_weights(v, &opts) {
            Ok(path) => {
                if !quiet {
                    eprintln!("mnv1: {} ready: {}", v.checkpoint, path.display());
                }
            }
            Err(e) => {
                eprintln!("mnv1: {}: {e}", v.checkpoint);
                failed += 1;
            }
        }
    }
    Ok(if failed == 0 {
        Status::Ok
    } else {
        Status::SomeFailed
    })
}
