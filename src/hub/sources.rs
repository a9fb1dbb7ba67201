//! Where a checkpoint can be fetched from, in the order tried: the official release tarball, the
//! TF-Hub compressed module, and (for two checkpoints) the Hugging Face transformers repository.

use std::fmt;

use super::FetchOptions;
use crate::registry::Variant;

/// Host of the release tarballs in models.toml; `MNV1_MIRROR` / `--mirror` replaces it.
pub const RELEASE_HOST: &str = "https://download.tensorflow.org";
/// Host of the TF-Hub handles in models.toml; `MNV1_HUB_BASE` replaces it.
pub const HUB_HOST: &str = "https://tfhub.dev";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `mobilenet_v1_{M}_{R}.tgz`: checkpoint, frozen graph, .tflite.
    Release { url: String },
    /// The TF1 hub module as a .tar.gz: `variables/variables.*`, names prefixed `module/`.
    TfHub { url: String },
    /// A transformers repository holding `model.safetensors` and `config.json`.
    HuggingFace { repo: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Release { url } => write!(f, "release tarball {url}"),
            Source::TfHub { url } => write!(f, "TF-Hub module {url}"),
            Source::HuggingFace { repo } => write!(f, "Hugging Face repository {repo}"),
        }
    }
}

/// The sources of `variant`'s checkpoint with the user's mirrors applied, in the order to try.
pub fn sources_for(variant: &Variant, opts: &FetchOptions) -> Vec<Source> {
    let mut out = vec![
        Source::Release {
            url: rebase(&variant.release_url, RELEASE_HOST, opts.mirror.as_deref()),
        },
        Source::TfHub {
            url: format!(
                "{}?tf-hub-format=compressed",
                rebase(&variant.hub_handle, HUB_HOST, opts.hub_base.as_deref())
            ),
        },
    ];
    if let Some(repo) = &variant.hf_repo {
        out.push(Source::HuggingFace { repo: repo.clone() });
    }
    out
}

/// `url` with its `host` prefix replaced by `base` (keeping the path), when a base is given.
fn rebase(url: &str, host: &str, base: Option<&str>) -> String {
    match (base, url.strip_prefix(host)) {
        (Some(base), Some(path)) => format!("{}{path}", base.trim_end_matches('/')),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Head, Registry};

    #[test]
    fn mirrors_keep_the_path() {
        let v = Registry::builtin()
            .resolve("025_192", Head::Logits)
            .unwrap();
        let mut opts = FetchOptions::for_cache_dir("/unused".into());
        opts.mirror = Some("https://mirror.example/tf/".into());
        opts.hub_base = Some("http://127.0.0.1:9".into());
        assert_eq!(
            sources_for(v, &opts),
            vec![
                Source::Release {
                    url: "https://mirror.example/tf/models/mobilenet_v1_2018_02_22/mobilenet_v1_0.25_192.tgz".into()
                },
                Source::TfHub {
                    url: "http://127.0.0.1:9/google/imagenet/mobilenet_v1_025_192/classification/3?tf-hub-format=compressed"
                        .into()
                },
            ]
        );
        let hf = Registry::builtin()
            .resolve("075_192", Head::Features)
            .unwrap();
        let sources = sources_for(hf, &FetchOptions::for_cache_dir("/unused".into()));
        assert_eq!(
            sources[0],
            Source::Release {
                url: hf.release_url.clone()
            }
        );
        assert_eq!(
            sources[2],
            Source::HuggingFace {
                repo: "google/mobilenet_v1_0.75_192".into()
            }
        );
    }
}
