//! `mnv1 cache list|path|rm`: what the weights cache holds, where it is, and clearing it.

use std::fs;
use std::io::Write;

use anyhow::{Context, Result};

use super::Status;
use crate::cache::cache_dir;
use crate::cli::CacheCommand;
use crate::error::UsageError;
use crate::hub::{self, lock::CacheLock, Cached};
use crate::registry::{Head, Registry, Variant};

pub fn run(cmd: &CacheCommand, quiet: bool) -> Result<Status> {
    let dir = cache_dir();
    let mut out = std::io::stdout().lock();
    match cmd {
        CacheCommand::Path { variant: None } => writeln!(out, "{}", dir.display())?,
        CacheCommand::Path {
            variant: Some(spec),
        } => writeln!(
            out,
            "{}",
            crate::cache::weights_path(&resolve(spec)?.checkpoint).display()
        )?,
        CacheCommand::List => {
            let files =
                hub::cached_files(&dir).with_context(|| format!("reading {}", dir.display()))?;
            let mut damaged = 0;
            for (checkpoint, path) in files {
                let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                let state = match hub::check_cached(&path) {
                    Cached::Valid => "ok".to_string(),
                    Cached::Missing => continue,
                    Cached::Damaged(why) => {
                        damaged += 1;
                        format!("damaged ({why})")
                    }
                };
                writeln!(out, "{checkpoint}\t{size}\t{state}\t{}", path.display())?;
            }
            if damaged > 0 {
                return Ok(Status::SomeFailed);
            }
        }
        CacheCommand::Rm { variant, all } => {
            let names: Vec<String> = if *all {
                hub::cached_files(&dir)?
                    .into_iter()
                    .map(|(c, _)| c)
                    .collect()
            } else {
                variant
                    .iter()
                    .map(|s| resolve(s).map(|v| v.checkpoint.clone()))
                    .collect::<Result<_, _>>()?
            };
            for name in names {
                let path = crate::cache::weights_path(&name);
                // Under the lock, so that no fetch is renaming a fresh file into place meanwhile.
                let _lock = CacheLock::acquire(&dir, &name, quiet)?;
                match fs::remove_file(&path) {
                    Ok(()) if !quiet => eprintln!("mnv1: removed {}", path.display()),
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        if !quiet {
                            eprintln!("mnv1: {name} is not cached");
                        }
                    }
                    Err(e) => {
                        return Err(e).with_context(|| format!("removing {}", path.display()))
                    }
                }
            }
        }
    }
    Ok(Status::Ok)
}

fn resolve(spec: &str) -> Result<&'static Variant, UsageError> {
    Registry::builtin()
        .resolve(spec, Head::Features)
        .map_err(|e| UsageError::new(e.to_string()))
}
