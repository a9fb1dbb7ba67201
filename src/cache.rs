//! Where converted weights live: `$MNV1_CACHE`, else the platform cache directory
//! (`~/.cache/mnv1` on Linux), one canonical safetensors file per checkpoint.

use std::path::PathBuf;

pub fn cache_dir() -> PathBuf {
    match std::env::var_os("MNV1_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => dirs::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("mnv1"),
    }
}

/// The canonical weights of `checkpoint` (e.g. `mobilenet_v1_0.5_160`) in the cache.
pub fn weights_path(checkpoint: &str) -> PathBuf {
    cache_dir().join(format!("{checkpoint}.safetensors"))
}
