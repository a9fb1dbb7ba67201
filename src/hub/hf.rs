//! The Hugging Face source, through the `hf-hub` crate: its cache (`HF_HOME`, default
//! `~/.cache/huggingface/hub`) and endpoint (`HF_ENDPOINT`) are the ones the Python tools use.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::api::Progress;
use hf_hub::{Cache, Repo};
use indicatif::ProgressBar;

use super::FetchOptions;

/// The weights file and config of a transformers repository.
pub const MODEL_FILE: &str = "model.safetensors";
pub const CONFIG_FILE: &str = "config.json";

#[derive(Debug, thiserror::Error)]
pub enum HfError {
    #[error("{file}: {message}")]
    Api { file: String, message: String },
    #[error("{file}: the server sent nothing for {timeout:?} (stalled); MNV1_HTTP_TIMEOUT sets this limit in seconds")]
    Stalled { file: String, timeout: Duration },
    #[error("config.json: {0}")]
    Config(String),
    #[error("{file}: larger than the {limit}-byte limit (MNV1_MAX_DOWNLOAD_BYTES sets it)")]
    TooLarge { file: String, limit: u64 },
}

/// The worker thread that runs hf-hub: its panics (hf-hub and ureq 2 unwrap on some server
/// replies, e.g. a redirect to a `file://` URL) become a failed source, not a crash message.
const WORKER: &str = "mnv1-hf-hub";

fn silence_worker_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some(WORKER) {
                previous(info);
            }
        }));
    });
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".into());
    format!("the Hugging Face client failed on the server's reply ({what})")
}

/// What a repository holds for mnv1: the weights, and the depth multiplier its config declares.
pub struct HfFiles {
    pub model: PathBuf,
    pub depth_multiplier: Option<f64>,
}

fn cache(opts: &FetchOptions) -> Cache {
    opts.hf_cache
        .clone()
        .map(Cache::new)
        .unwrap_or_else(Cache::from_env)
}

/// The repository's files when hf-hub's cache already has them (no network).
pub fn cached(repo: &str, opts: &FetchOptions) -> Option<Result<HfFiles, HfError>> {
    let c = cache(opts).repo(Repo::model(repo.to_string()));
    let (model, config) = (c.get(MODEL_FILE)?, c.get(CONFIG_FILE)?);
    Some(read_config(&config).map(|depth_multiplier| HfFiles {
        model,
        depth_multiplier,
    }))
}

/// Fetches `config.json` and `model.safetensors` of `repo` into hf-hub's cache (or finds them there).
pub fn fetch(repo: &str, opts: &FetchOptions) -> Result<HfFiles, HfError> {
    let config = get(repo, CONFIG_FILE, opts)?;
    let depth_multiplier = read_config(&config)?;
    let model = get(repo, MODEL_FILE, opts)?;
    Ok(HfFiles {
        model,
        depth_multiplier,
    })
}

fn get(repo: &str, file: &str, opts: &FetchOptions) -> Result<PathBuf, HfError> {
    if let Some(path) = cache(opts).repo(Repo::model(repo.to_string())).get(file) {
        return Ok(path);
    }
    let api_err = |message: String| HfError::Api {
        file: file.to_string(),
        message,
    };
    let mut builder = ApiBuilder::from_cache(cache(opts)).with_progress(false);
    if let Some(endpoint) = &opts.hf_endpoint {
        builder = builder.with_endpoint(endpoint.trim_end_matches('/').to_string());
    }
    let api = builder
        .build()
        .map_err(|e| api_err(e.to_string()))?
        .model(repo.to_string());
    // hf-hub sets no time-outs: the transfer runs on a worker thread, and a watchdog gives up
    // once nothing has arrived for `opts.timeout` (the worker is left behind; the process ends).
    let start = Instant::now();
    let last_activity = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let watch = Watch {
        start,
        last_activity: Arc::clone(&last_activity),
        bytes: Arc::clone(&bytes),
        received: 0,
        bar: super::progress::bytes_bar(None, file, opts.progress),
    };
    let (tx, rx) = mpsc::channel();
    let name = file.to_string();
    silence_worker_panics();
    std::thread::Builder::new()
        .name(WORKER.into())
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                api.download_with_progress(&name, watch)
            }));
            let _ = tx.send(result.map_err(panic_message));
        })
        .map_err(|e| api_err(e.to_string()))?;
    loop {
        if bytes.load(Ordering::Relaxed) > opts.max_bytes {
            return Err(HfError::TooLarge {
                file: file.to_string(),
                limit: opts.max_bytes,
            });
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Ok(result)) => return result.map_err(|e| api_err(e.to_string())),
            Ok(Err(panicked)) => return Err(api_err(panicked)),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let idle = start
                    .elapsed()
                    .saturating_sub(Duration::from_millis(last_activity.load(Ordering::Relaxed)));
                if idle > opts.timeout {
                    return Err(HfError::Stalled {
                        file: file.to_string(),
                        timeout: opts.timeout,
                    });
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(api_err("the download thread stopped".into()))
            }
        }
    }
}

/// hf-hub's progress callbacks: they feed the watchdog and the bar.
struct Watch {
    start: Instant,
    last_activity: Arc<AtomicU64>,
    /// Announced size, then bytes received: over the limit, the wait gives up.
    bytes: Arc<AtomicU64>,
    received: u64,
    bar: ProgressBar,
}

impl Watch {
    fn touch(&self) {
        self.last_activity
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl Progress for Watch {
    fn init(&mut self, size: usize, _filename: &str) {
        self.touch();
        self.bytes.store(size as u64, Ordering::Relaxed);
        self.bar.set_length(size as u64);
        self.bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    }

    fn update(&mut self, size: usize) {
        self.touch();
        self.received += size as u64;
        self.bytes.fetch_max(self.received, Ordering::Relaxed);
        self.bar.inc(size as u64);
    }

    fn finish(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// Checks the config names a MobileNet V1 and returns its depth multiplier, when given.
fn read_config(path: &PathBuf) -> Result<Option<f64>, HfError> {
    let text = std::fs::read_to_string(path).map_err(|e| HfError::Config(e.to_string()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| HfError::Config(e.to_string()))?;
    match json.get("model_type").and_then(|v| v.as_str()) {
        Some("mobilenet_v1") => Ok(json.get("depth_multiplier").and_then(|v| v.as_f64())),
        other => Err(HfError::Config(format!(
            "model_type is {other:?}, not \"mobilenet_v1\""
        ))),
    }
}
