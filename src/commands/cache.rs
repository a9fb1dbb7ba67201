//! `mnv1 cache list|path|rm`: what the weights cache holds, where it is, and clearing it.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use super::Status;
use crate::cache::{cache_dir, weights_path_in};
use crate::cli::CacheCommand;
use crate::hub::{self, lock::CacheLock, Cached};
use crate::registry::{Head, Registry, RegistryError, Variant};
use crate::tempfiles;

pub fn run(cmd: &CacheCommand, quiet: bool) -> Result<Status> {
    let dir = cache_dir()?;
    let mut out = std::io::stdout().lock();
    match cmd {
        CacheCommand::Path { variant: None } => writeln!(out, "{}", dir.display())?,
        CacheCommand::Path {
            variant: Some(spec),
        } => writeln!(
            out,
            "{}",
            weights_path_in(&dir, &resolve(spec)?.checkpoint).display()
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
                hub::cached_files(&dir)
                    .with_context(|| format!("reading {}", dir.display()))?
                    .into_iter()
                    .map(|(c, _)| c)
                    .collect()
            } else {
                variant
                    .iter()
                    .map(|s| resolve(s).map(|v| v.checkpoint.clone()))
                    .collect::<Result<_, _>>()?
            };
            let mut failed = 0;
            for name in names {
                if let Err(e) = remove(&dir, &name, quiet) {
                    eprintln!("mnv1: {e:#}");
                    failed += 1;
                }
            }
            for p in tempfiles::clean_stale(&dir, &[tempfiles::DOWNLOAD, tempfiles::CONVERT]) {
                if !quiet {
                    eprintln!("mnv1: removed {} (left by a killed run)", p.display());
                }
            }
            if failed > 0 {
                return Ok(Status::SomeFailed);
            }
        }
    }
    Ok(Status::Ok)
}

/// Removes one checkpoint's file, under its lock so that no fetch is renaming a fresh file into
/// place meanwhile.
fn remove(dir: &Path, name: &str, quiet: bool) -> Result<()> {
    let path = weights_path_in(dir, name);
    if !dir.exists() {
        if !quiet {
            eprintln!("mnv1: {name} is not cached");
        }
        return Ok(());
    }
    let _lock = CacheLock::acquire(dir, name, quiet)
        .with_context(|| format!("locking {name} in {}", dir.display()))?;
    match fs::remove_file(&path) {
        Ok(()) if !quiet => eprintln!("mnv1: removed {}", path.display()),
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !quiet {
                eprintln!("mnv1: {name} is not cached");
            }
        }
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    Ok(())
}

fn resolve(spec: &str) -> Result<&'static Variant, RegistryError> {
    Registry::builtin().resolve(spec, Head::Features)
}
