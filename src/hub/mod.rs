//! Fetch-and-cache for the checkpoints: find a variant's canonical safetensors in the cache, or
//! download it (release tarball, then TF-Hub module, then Hugging Face), check it, convert it once
//! and rename it into place. Later runs memory-map the cached file and touch no network.
//!
//! Cache layout (`$MNV1_CACHE`, else `~/.cache/mnv1`): `<checkpoint>.safetensors` (with an xxh3
//! checksum in its metadata), `.locks/<checkpoint>.lock`, and `.download-*.part` / `.convert-*`
//! temporary files while a fetch runs.

pub(crate) mod download;
pub(crate) mod hf;
pub(crate) mod lock;
pub(crate) mod progress;
pub(crate) mod sources;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::atomic::AtomicFile;
use crate::cache;
use crate::registry::Variant;
use crate::tempfiles;
use crate::weights::{self, safetensors as st, Weights};
use download::DownloadError;
use hf::HfError;
use sources::Source;

/// Seconds to wait for a connection or for more data before giving up on a source.
pub(crate) const DEFAULT_TIMEOUT_S: f64 = 30.0;
/// Largest download accepted: ten times the largest release tarball (mobilenet_v1_1.0_224.tgz,
/// about 100 MB), so a misconfigured mirror cannot fill the disk.
pub(crate) const DEFAULT_MAX_DOWNLOAD_BYTES: u64 = 1 << 30;

/// How to fetch: where the cache is, which hosts to use, whether the network may be used.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    pub(crate) cache_dir: PathBuf,
    /// Never touch the network; fail when the weights are not cached.
    pub offline: bool,
    /// Replaces `https://download.tensorflow.org` in release URLs, keeping the path.
    pub mirror: Option<String>,
    /// Replaces `https://tfhub.dev` in TF-Hub handles, keeping the path.
    pub hub_base: Option<String>,
    /// Hugging Face endpoint; None: hf-hub's default (https://huggingface.co).
    pub hf_endpoint: Option<String>,
    /// hf-hub's cache directory; None: `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
    pub hf_cache: Option<PathBuf>,
    /// Limit on connecting and on each wait for data.
    pub timeout: Duration,
    /// Largest download accepted, in bytes.
    pub(crate) max_bytes: u64,
    /// Draw progress bars on stderr.
    pub(crate) progress: bool,
    /// No notes on stderr (errors still go there).
    pub(crate) quiet: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(
        "the weights of {checkpoint} are not in the cache ({path}) and mnv1 is offline \
         (--offline, MNV1_OFFLINE or HF_HUB_OFFLINE); fetch them with `mnv1 fetch --variant {id}` \
         where the network is reachable (and copy {path} here), or pass --weights PATH"
    )]
    Offline {
        checkpoint: String,
        id: String,
        path: PathBuf,
    },
    #[error("no source gave usable weights for {checkpoint}:\n{}", list(.attempts))]
    AllSourcesFailed {
        checkpoint: String,
        attempts: Vec<(String, String)>,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setting(String),
    #[error(transparent)]
    CacheDir(#[from] cache::CacheDirError),
}

fn list(attempts: &[(String, String)]) -> String {
    attempts
        .iter()
        .map(|(s, e)| format!("  - {s}: {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Why one source did not give weights.
#[derive(Debug, thiserror::Error)]
enum SourceError {
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error(transparent)]
    Hf(#[from] HfError),
    #[error("not usable weights: {0}")]
    Content(String),
}

fn truthy(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

fn non_empty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl FetchOptions {
    /// Defaults with the given cache and no environment: online, official hosts, no output.
    pub fn for_cache_dir(cache_dir: PathBuf) -> Self {
        Self {
            cache_dir,
            offline: false,
            mirror: None,
            hub_base: None,
            hf_endpoint: None,
            hf_cache: None,
            timeout: Duration::from_secs_f64(DEFAULT_TIMEOUT_S),
            max_bytes: DEFAULT_MAX_DOWNLOAD_BYTES,
            progress: false,
            quiet: true,
        }
    }

    /// Flags combined with the environment: `MNV1_CACHE`, `MNV1_OFFLINE` / `HF_HUB_OFFLINE`,
    /// `MNV1_MIRROR`, `MNV1_HUB_BASE`, `HF_ENDPOINT`, `HF_HOME`, `MNV1_HTTP_TIMEOUT` (seconds),
    /// `MNV1_MAX_DOWNLOAD_BYTES`.
    /// Flags win over the environment.
    pub(crate) fn from_env(
        offline: bool,
        mirror: Option<&str>,
        quiet: bool,
    ) -> Result<Self, HubError> {
        let timeout = match non_empty("MNV1_HTTP_TIMEOUT") {
            None => DEFAULT_TIMEOUT_S,
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or_else(|| {
                    HubError::Setting(format!(
                        "MNV1_HTTP_TIMEOUT={v}: expected a positive number of seconds"
                    ))
                })?,
        };
        let max_bytes = match non_empty("MNV1_MAX_DOWNLOAD_BYTES") {
            None => DEFAULT_MAX_DOWNLOAD_BYTES,
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    HubError::Setting(format!(
                        "MNV1_MAX_DOWNLOAD_BYTES={v}: expected a positive number of bytes"
                    ))
                })?,
        };
        Ok(Self {
            cache_dir: cache::cache_dir()?,
            offline: offline || truthy("MNV1_OFFLINE") || truthy("HF_HUB_OFFLINE"),
            mirror: mirror
                .map(str::to_string)
                .or_else(|| non_empty("MNV1_MIRROR")),
            hub_base: non_empty("MNV1_HUB_BASE"),
            hf_endpoint: non_empty("HF_ENDPOINT"),
            hf_cache: None,
            timeout: Duration::from_secs_f64(timeout),
            max_bytes,
            progress: progress::enabled(quiet),
            quiet,
        })
    }

    fn note(&self, msg: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("mnv1: {msg}");
        }
    }

    /// Where `checkpoint`'s canonical weights live in this cache.
    pub(crate) fn weights_path(&self, checkpoint: &str) -> PathBuf {
        cache::weights_path_in(&self.cache_dir, checkpoint)
    }
}

/// State of a cached file.
#[derive(Debug)]
pub(crate) enum Cached {
    Missing,
    Valid,
    /// Present but unreadable or failing its checksum (the reason).
    Damaged(String),
}

/// Checks a cached file's checksum (memory-mapped; xxh3 runs at GB/s, so this costs little).
pub(crate) fn check_cached(path: &Path) -> Cached {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Cached::Missing,
        Err(e) => return Cached::Damaged(e.to_string()),
    };
    // SAFETY: read-only; cache files are replaced by rename, never rewritten in place.
    match unsafe { memmap2::Mmap::map(&file) } {
        Ok(map) => match st::verify_checksum(&map) {
            Ok(()) => Cached::Valid,
            Err(e) => Cached::Damaged(e.to_string()),
        },
        Err(e) => Cached::Damaged(e.to_string()),
    }
}

/// The path of `variant`'s canonical weights in the cache, fetching and converting them first
/// when they are not there (or are damaged). Safe to call from concurrent processes: one fetches,
/// the others wait for it and use its result.
pub fn ensure_weights(variant: &Variant, opts: &FetchOptions) -> Result<PathBuf, HubError> {
    let path = opts.weights_path(&variant.checkpoint);
    if let Cached::Valid = check_cached(&path) {
        return Ok(path);
    }
    if opts.offline {
        return offline_fallback(variant, opts, &path);
    }
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| HubError::Io { path: p, source }
    };
    fs::create_dir_all(&opts.cache_dir).map_err(io_err(&opts.cache_dir))?;
    let _lock = lock::CacheLock::acquire(&opts.cache_dir, &variant.checkpoint, opts.quiet)
        .map_err(io_err(&opts.cache_dir.join(".locks")))?;
    // Downloads and conversions of killed runs (under the lock, no fetch of this one is live).
    tempfiles::clean_stale(&opts.cache_dir, &[tempfiles::DOWNLOAD, tempfiles::CONVERT]);
    // Another process may have fetched it (or found it damaged) while this one waited.
    match check_cached(&path) {
        Cached::Valid => return Ok(path),
        Cached::Damaged(why) => {
            opts.note(format_args!(
                "{} is damaged ({why}); fetching it again",
                path.display()
            ));
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
        Cached::Missing => {}
    }
    let mut attempts = Vec::new();
    for source in sources::sources_for(variant, opts) {
        match fetch_from(&source, variant, opts) {
            Ok((w, provenance)) => {
                store(&w, provenance, &path)?;
                opts.note(format_args!(
                    "cached {} from the {source} at {}",
                    variant.checkpoint,
                    path.display()
                ));
                return Ok(path);
            }
            Err(e) => {
                opts.note(format_args!("{source}: {e}"));
                attempts.push((source.to_string(), e.to_string()));
            }
        }
    }
    Err(HubError::AllSourcesFailed {
        checkpoint: variant.checkpoint.clone(),
        attempts,
    })
}

/// Offline: the only other local source is a Hugging Face repository already in hf-hub's cache.
fn offline_fallback(
    variant: &Variant,
    opts: &FetchOptions,
    path: &Path,
) -> Result<PathBuf, HubError> {
    let offline = || HubError::Offline {
        checkpoint: variant.checkpoint.clone(),
        id: variant.id.clone(),
        path: path.into(),
    };
    if let Cached::Damaged(why) = check_cached(path) {
        opts.note(format_args!("{} is damaged ({why})", path.display()));
    }
    let Some(Ok(files)) = variant
        .hf_repo
        .as_deref()
        .and_then(|repo| hf::cached(repo, opts))
    else {
        return Err(offline());
    };
    let w = checked(
        weights::load(&files.model).map_err(|e| e.to_string()),
        variant,
    )
    .map_err(|_| offline())?;
    fs::create_dir_all(&opts.cache_dir).map_err(|source| HubError::Io {
        path: opts.cache_dir.clone(),
        source,
    })?;
    let _lock = lock::CacheLock::acquire(&opts.cache_dir, &variant.checkpoint, opts.quiet)
        .map_err(|source| HubError::Io {
            path: opts.cache_dir.clone(),
            source,
        })?;
    store(
        &w,
        provenance_of("huggingface", &files.model.display().to_string(), None),
        path,
    )?;
    Ok(path.to_path_buf())
}

type Provenance = Vec<(&'static str, String)>;

fn provenance_of(kind: &str, from: &str, sha256: Option<&str>) -> Provenance {
    let mut p = vec![
        ("source", kind.to_string()),
        ("source_url", from.to_string()),
    ];
    if let Some(s) = sha256 {
        p.push(("source_sha256", s.to_string()));
    }
    p
}

/// Downloads from one source and checks what arrived: the pinned sha256 (release tarballs),
/// readable weights, the variant's depth multiplier, every tensor's name and shape.
fn fetch_from(
    source: &Source,
    variant: &Variant,
    opts: &FetchOptions,
) -> Result<(Weights, Provenance), SourceError> {
    match source {
        Source::Release { url } | Source::TfHub { url } => {
            opts.note(format_args!("fetching {url}"));
            let limits = download::Limits {
                timeout: opts.timeout,
                max_bytes: opts.max_bytes,
            };
            let d = download::download(url, &opts.cache_dir, limits, opts.progress)?;
            opts.note(format_args!(
                "downloaded {} bytes, sha256 {}",
                d.size, d.sha256
            ));
            if matches!(source, Source::Release { .. }) {
                d.verify_sha256(variant.sha256.as_deref())?;
            }
            let w = checked(
                weights::load(d.file.path()).map_err(|e| e.to_string()),
                variant,
            )?;
            let kind = if matches!(source, Source::Release { .. }) {
                "release"
            } else {
                "tfhub"
            };
            Ok((w, provenance_of(kind, url, Some(&d.sha256))))
        }
        Source::HuggingFace { repo } => {
            opts.note(format_args!("fetching {repo} from Hugging Face"));
            let files = hf::fetch(repo, opts)?;
            if let Some(m) = files
                .depth_multiplier
                .filter(|&m| m != variant.depth_multiplier)
            {
                return Err(SourceError::Content(format!(
                    "config.json declares depth multiplier {m}, the variant needs {}",
                    variant.depth_multiplier
                )));
            }
            let w = checked(
                weights::load(&files.model).map_err(|e| e.to_string()),
                variant,
            )?;
            Ok((w, provenance_of("huggingface", repo, None)))
        }
    }
}

fn checked(loaded: Result<Weights, String>, variant: &Variant) -> Result<Weights, SourceError> {
    let w = loaded.map_err(SourceError::Content)?;
    if w.arch.depth_multiplier != variant.depth_multiplier {
        return Err(SourceError::Content(format!(
            "the weights are for depth multiplier {}, {} needs {}",
            w.arch.depth_multiplier, variant.checkpoint, variant.depth_multiplier
        )));
    }
    w.check_complete().map_err(SourceError::Content)?;
    Ok(w)
}

/// Writes the canonical file (with its checksum) next to its final name, then renames it there.
fn store(w: &Weights, provenance: Provenance, path: &Path) -> Result<(), HubError> {
    let io_err = |source| HubError::Io {
        path: path.to_path_buf(),
        source,
    };
    let metadata = st::CanonicalMetadata {
        depth_multiplier: w.arch.depth_multiplier,
        source_format: w.format.to_string(),
        extra: provenance
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    };
    let bytes = st::canonical_bytes(&w.tensors, metadata)
        .map_err(|e| io_err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    let mut file = AtomicFile::create_as(path, tempfiles::CONVERT).map_err(io_err)?;
    file.write_all(&bytes).map_err(io_err)?;
    file.commit().map_err(io_err)?;
    Ok(())
}

/// The canonical files in the cache: (checkpoint name, path). Only mnv1's own names (the
/// registry's checkpoints) count: other files in the directory are not mnv1's to list or remove.
pub(crate) fn cached_files(cache_dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for v in crate::registry::Registry::builtin().checkpoints() {
        let path = cache::weights_path_in(cache_dir, &v.checkpoint);
        match fs::symlink_metadata(&path) {
            Ok(_) => out.push((v.checkpoint.clone(), path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}
