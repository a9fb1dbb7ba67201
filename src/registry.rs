//! The 32 MobileNet V1 modules listed in `models.toml` (embedded at build time), and the ways a
//! user may name one: `050_160`, `mobilenet_v1_050_160`, `0.5_160`, or a TF-Hub handle URL.

use std::sync::OnceLock;

use serde::Deserialize;

pub use crate::model::Head;

/// One row of models.toml.
#[derive(Clone, Debug, Deserialize)]
pub struct Variant {
    /// `MMM_RRR`, e.g. `050_160`; shared by a checkpoint's two modules.
    pub(crate) id: String,
    pub(crate) module: Head,
    pub(crate) depth_multiplier: f64,
    pub(crate) resolution: usize,
    /// 1001 logits, or 256/512/768/1024 features.
    pub(crate) outputs: usize,
    pub(crate) hub_handle: String,
    /// Release checkpoint name, e.g. `mobilenet_v1_0.5_160`.
    pub(crate) checkpoint: String,
    pub(crate) release_url: String,
    #[serde(default)]
    pub hf_repo: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    pub(crate) published_top1: f64,
    pub(crate) published_top5: f64,
}

#[derive(Debug, Deserialize)]
pub struct Registry {
    #[serde(rename = "variant")]
    variants: Vec<Variant>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("unknown variant '{spec}'{}", suggest(.suggestions))]
    Unknown {
        spec: String,
        suggestions: Vec<String>,
    },
    #[error(
        "'{spec}' names the {found} module, but this command needs the {wanted} module \
         (the same checkpoint also serves it: try --variant {id})"
    )]
    WrongModule {
        spec: String,
        id: String,
        found: &'static str,
        wanted: &'static str,
    },
}

fn suggest(ids: &[String]) -> String {
    if ids.is_empty() {
        String::from("; `mnv1 list` shows all 32")
    } else {
        format!(
            "; did you mean {}? (`mnv1 list` shows all 32)",
            ids.join(", ")
        )
    }
}

/// Variant ids of the four multipliers and four resolutions, also in their long spellings.
const MULTIPLIERS: [(&str, &str); 4] = [
    ("025", "0.25"),
    ("050", "0.5"),
    ("075", "0.75"),
    ("100", "1.0"),
];

impl Registry {
    /// The registry compiled into the binary from models.toml.
    pub fn builtin() -> &'static Registry {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(|| {
            toml::from_str(include_str!("../models.toml")).expect("models.toml is checked by tests")
        })
    }

    pub(crate) fn variants(&self) -> &[Variant] {
        &self.variants
    }

    /// Resolves a user's spelling to the variant of `module`. A TF-Hub handle pins its module; a
    /// handle of the other module is an error, except that features may come from either module
    /// (the feature vector is the classifier's pooled layer).
    pub fn resolve(&self, spec: &str, module: Head) -> Result<&Variant, RegistryError> {
        let (id, pinned) = parse_spec(spec).ok_or_else(|| self.unknown(spec))?;
        if let Some(found) = pinned {
            if found != module && module == Head::Logits {
                return Err(RegistryError::WrongModule {
                    spec: spec.to_string(),
                    id,
                    found: found.hub_module(),
                    wanted: module.hub_module(),
                });
            }
        }
        self.variants
            .iter()
            .find(|v| v.id == id && v.module == module)
            .ok_or_else(|| self.unknown(spec))
    }

    /// The classification row of each checkpoint (16), in models.toml order.
    pub(crate) fn checkpoints(&self) -> impl Iterator<Item = &Variant> {
        self.variants.iter().filter(|v| v.module == Head::Logits)
    }

    /// The error for an unknown spelling, with the nearest ids: the same multiplier at the
    /// closest resolutions, or the same resolution at other multipliers, else by edit distance.
    fn unknown(&self, spec: &str) -> RegistryError {
        let wanted = spec.trim().to_ascii_lowercase();
        let short = wanted.strip_prefix("mobilenet_v1_").unwrap_or(&wanted);
        let (mult, res) = short.split_once('_').unwrap_or((short, ""));
        let code = MULTIPLIERS
            .iter()
            .find(|(c, l)| mult == *c || mult == *l)
            .map(|(c, _)| *c);
        let res: Option<usize> = res.parse().ok();
        let ids: Vec<&str> = self.checkpoints().map(|v| v.id.as_str()).collect();
        let mut scored: Vec<(f64, &str)> = ids
            .iter()
            .map(|&id| {
                let (m, r) = id.split_once('_').unwrap_or((id, ""));
                let r: usize = r.parse().unwrap_or(0);
                let score = match (code, res) {
                    (Some(c), Some(want)) if c == m => 2.0 - (r.abs_diff(want) as f64 / 1000.0),
                    (Some(c), None) if c == m => 2.0,
                    (None, Some(want)) if want == r => 1.5,
                    _ => strsim::normalized_damerau_levenshtein(&wanted, id),
                };
                (score, id)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let suggestions = scored
            .iter()
            .take(3)
            .filter(|(score, _)| *score >= 0.4)
            .map(|(_, id)| id.to_string())
            .collect();
        RegistryError::Unknown {
            spec: spec.to_string(),
            suggestions,
        }
    }
}

/// `MMM_RRR` plus the module a handle pins, or None when `spec` is no spelling of a variant.
fn parse_spec(spec: &str) -> Option<(String, Option<Head>)> {
    let s = spec.trim();
    if let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .map(|r| r.split(['?', '#']).next().unwrap_or(r))
    {
        // tfhub.dev/google/imagenet/mobilenet_v1_050_160/classification/3
        let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        let at = parts.iter().position(|p| p.starts_with("mobilenet_v1_"))?;
        let id = parse_id(parts[at])?;
        let module = match parts.get(at + 1).copied() {
            Some("classification") => Some(Head::Logits),
            Some("feature_vector") => Some(Head::Features),
            _ => return None,
        };
        return Some((id, module));
    }
    Some((parse_id(s)?, None))
}

/// `050_160`, `mobilenet_v1_050_160`, `0.5_160`, `mobilenet_v1_0.5_160` -> `050_160`.
fn parse_id(s: &str) -> Option<String> {
    let s = s.strip_prefix("mobilenet_v1_").unwrap_or(s);
    let (mult, res) = s.split_once('_')?;
    let code = MULTIPLIERS
        .iter()
        .find(|(code, long)| mult == *code || mult == *long)?
        .0;
    let res: usize = res.parse().ok()?;
    [128, 160, 192, 224]
        .contains(&res)
        .then(|| format!("{code}_{res}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_toml_lists_32_consistent_variants() {
        let r = Registry::builtin();
        assert_eq!(r.variants().len(), 32);
        assert_eq!(r.checkpoints().count(), 16);
        for v in r.variants() {
            let width = ((1024.0 * v.depth_multiplier) as usize).max(8);
            let outputs = if v.module == Head::Logits {
                1001
            } else {
                width
            };
            assert_eq!(v.outputs, outputs, "{}", v.id);
            assert!(v.hub_handle.ends_with(&format!(
                "mobilenet_v1_{}/{}/3",
                v.id,
                v.module.hub_module()
            )));
            assert!(v.release_url.ends_with(&format!("/{}.tgz", v.checkpoint)));
        }
    }

    #[test]
    fn every_spelling_resolves() {
        let r = Registry::builtin();
        for spec in [
            "050_160",
            "mobilenet_v1_050_160",
            "0.5_160",
            "mobilenet_v1_0.5_160",
            "https://tfhub.dev/google/imagenet/mobilenet_v1_050_160/classification/3",
            "https://tfhub.dev/google/imagenet/mobilenet_v1_050_160/classification/3?tf-hub-format=compressed",
        ] {
            let v = r.resolve(spec, Head::Logits).unwrap();
            assert_eq!((v.id.as_str(), v.module), ("050_160", Head::Logits), "{spec}");
        }
        let fv = "https://tfhub.dev/google/imagenet/mobilenet_v1_100_224/feature_vector/3";
        assert_eq!(r.resolve(fv, Head::Features).unwrap().outputs, 1024);
        assert!(matches!(
            r.resolve(fv, Head::Logits),
            Err(RegistryError::WrongModule { .. })
        ));
        // Features can come from a classification handle: same checkpoint.
        let cls = "https://tfhub.dev/google/imagenet/mobilenet_v1_025_128/classification/3";
        assert_eq!(r.resolve(cls, Head::Features).unwrap().outputs, 256);
    }

    #[test]
    fn unknown_ids_suggest_the_nearest() {
        let r = Registry::builtin();
        let err = r.resolve("050_150", Head::Logits).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("did you mean 050_160, 050_128, 050_192?"),
            "{msg}"
        );
        let msg = r.resolve("0.75_200", Head::Logits).unwrap_err().to_string();
        assert!(
            msg.contains("did you mean 075_192, 075_224, 075_160?"),
            "{msg}"
        );
        let msg = r.resolve("030_224", Head::Logits).unwrap_err().to_string();
        assert!(msg.contains("224"), "{msg}");
        assert!(r.resolve("0.3_128", Head::Logits).is_err());
        assert!(r.resolve("", Head::Logits).is_err());
    }
}
