//! Where converted weights live: `$MNV1_CACHE`, else the platform cache directory
//! (`~/.cache/mnv1` on Linux), one canonical safetensors file per checkpoint. The one place that
//! decides the directory; everything else takes it from here.

use std::path::{Path, PathBuf};

/// `MNV1_CACHE` names something that cannot be the cache directory (a configuration error).
#[derive(Debug, thiserror::Error)]
#[error("MNV1_CACHE={}: {reason}", .path.display())]
pub struct CacheDirError {
    pub path: PathBuf,
    pub reason: &'static str,
}

/// The cache directory (not created here). `MNV1_CACHE` naming an existing non-directory is
/// refused rather than failing later with "not a directory" on every file inside it.
pub fn cache_dir() -> Result<PathBuf, CacheDirError> {
    let dir = match std::env::var_os("MNV1_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => dirs::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("mnv1"),
    };
    match std::fs::metadata(&dir) {
        Ok(m) if !m.is_dir() => Err(CacheDirError {
            path: dir,
            reason: "exists and is not a directory; point it at a directory",
        }),
        _ => Ok(dir),
    }
}

/// The canonical weights of `checkpoint` (e.g. `mobilenet_v1_0.5_160`) in cache directory `dir`.
pub fn weights_path_in(dir: &Path, checkpoint: &str) -> PathBuf {
    dir.join(format!("{checkpoint}.safetensors"))
}

/// The canonical weights of `checkpoint` in [`cache_dir`].
pub fn weights_path(checkpoint: &str) -> Result<PathBuf, CacheDirError> {
    Ok(weights_path_in(&cache_dir()?, checkpoint))
}
