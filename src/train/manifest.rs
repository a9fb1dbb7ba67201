//! `manifest.json` of a fine-tuned model directory: what `classify --model` / `embed --model` need
//! (variant, input size, preprocessing, classes) and the figures of the run that made it.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::atomic::AtomicFile;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const LABELS_FILE: &str = "labels.txt";
/// Marks the JSON as ours, so another tool's manifest is refused with a clear message.
pub const FORMAT: &str = "mnv1-finetuned";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// Registry id of the base checkpoint, e.g. `025_128`.
    pub variant: String,
    pub depth_multiplier: f64,
    pub input_size: usize,
    pub classes: Vec<String>,
    pub preprocessing: Preprocessing,
    pub training: Training,
    pub history: Vec<EpochFigures>,
    /// Validation before the first step (the new head untrained) and after the last epoch.
    pub initial_validation: Option<Figures>,
    pub final_validation: Option<Figures>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// `central` (TF-Slim eval crop) or `none`.
    pub crop: String,
    pub central_fraction: f64,
    pub resize: String,
    /// What the network receives: images in [0,1], mapped inside to x*2-1.
    pub input_range: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Training {
    pub weights_source: String,
    pub weights_format: String,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub optimizer: String,
    pub momentum: Option<f64>,
    pub bn_momentum: f64,
    pub train_backbone: bool,
    pub dropout: f64,
    pub validation_split: f64,
    pub augment: bool,
    pub seed: u64,
    pub train_images: usize,
    pub validation_images: usize,
    pub seconds: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub loss: f64,
    pub accuracy: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochFigures {
    pub epoch: usize,
    pub train: Figures,
    pub validation: Option<Figures>,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not an mnv1 fine-tuned model manifest: {reason}")]
    Invalid { path: String, reason: String },
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Self, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let p = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Io {
            path: p.clone(),
            source,
        })?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| ManifestError::Invalid {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        if m.format != FORMAT {
            return Err(ManifestError::Invalid {
                path: p,
                reason: format!("format is '{}', not '{FORMAT}'", m.format),
            });
        }
        Ok(m)
    }

    /// Writes the manifest atomically.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let mut f = AtomicFile::create(&dir.join(MANIFEST_FILE))?;
        serde_json::to_writer_pretty(&mut f, self)?;
        writeln!(f)?;
        f.commit()
    }
}

/// `labels.txt`: one class name per line, in logit order.
pub fn write_labels(dir: &Path, classes: &[String]) -> std::io::Result<()> {
    let mut f = AtomicFile::create(&dir.join(LABELS_FILE))?;
    for c in classes {
        writeln!(f, "{c}")?;
    }
    f.commit()
}
