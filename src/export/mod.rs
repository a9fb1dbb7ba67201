//! Export for phones, boards and other runtimes: the network with BatchNorm folded, as a float32
//! TensorFlow Lite model with Model Maker style metadata (`.tflite`) or as ONNX (`.onnx`); a
//! quantized network as a full-integer `.tflite` with uint8 input and output and the same
//! metadata.
//! Chosen by the output's extension; the file is written atomically.

pub mod network;
pub mod onnx;
pub mod onnx_proto;
#[cfg(test)]
mod tests;
pub mod tflite;
pub mod tflite_metadata;
pub mod tflite_writer;

use std::io::Write;
use std::path::Path;

use crate::error::UsageError;
use crate::model::ModelError;
use crate::output::AtomicFile;
use crate::weights::Weights;

pub use network::FoldedNetwork;

/// What an export file is, by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Tflite,
    Onnx,
    /// mnv1's canonical weights (not an export: `mnv1 convert`'s original output).
    Safetensors,
}

impl Format {
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "tflite" => Some(Format::Tflite),
            "onnx" => Some(Format::Onnx),
            "safetensors" => Some(Format::Safetensors),
            _ => None,
        }
    }
}

/// Where an exported network ends: the classifier (probabilities in a .tflite, as the release
/// files have; logits in an .onnx) or the pooled feature vector.
pub use crate::model::Head;

/// What the export says about the model, and its input size.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportInfo {
    pub name: String,
    pub description: String,
    pub version: String,
    pub author: String,
    pub license: String,
    /// `Model.description` of a .tflite: who wrote the file.
    pub producer: String,
    /// Class names in output order.
    pub labels: Vec<String>,
    /// (height, width) of the input.
    pub size: (usize, usize),
}

/// Checks an output path before any work: a known extension and an existing directory. The
/// message is what the user sees (exit code 2).
pub fn check_target(path: &Path, allowed: &[Format]) -> Result<Format, UsageError> {
    let names = |fs: &[Format]| {
        fs.iter()
            .map(|f| match f {
                Format::Tflite => ".tflite",
                Format::Onnx => ".onnx",
                Format::Safetensors => ".safetensors",
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let format = Format::from_path(path)
        .filter(|f| allowed.contains(f))
        .ok_or_else(|| {
            UsageError::new(format!(
                "{}: unknown output type; the file name must end in {}",
                path.display(),
                names(allowed)
            ))
        })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(UsageError::new(format!(
            "{}: the directory {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    if path.is_dir() {
        return Err(UsageError::new(format!(
            "{}: is a directory, not a file name",
            path.display()
        )));
    }
    Ok(format)
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Model(#[from] crate::model::ModelError),
    #[error("{0}")]
    Invalid(String),
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The bytes of `weights` exported as `format` (Tflite or Onnx). Quantized weights
/// (`weights.quantized`) are written as a uint8-io full-integer .tflite.
pub fn to_bytes(
    weights: &Weights,
    head: Head,
    info: &ExportInfo,
    format: Format,
) -> Result<Vec<u8>, ExportError> {
    if let Some(q) = &weights.quantized {
        let classes = match head {
            Head::Logits => Some(q.logits.as_ref().ok_or(ModelError::NoLogits)?.out_channels),
            Head::Features => None,
        };
        check_labels(info, classes)?;
        return match format {
            Format::Tflite => tflite::quantized_to_bytes(q, head, info),
            _ => Err(ExportError::Invalid(
                "a quantized model is exported as .tflite only (ONNX export is float)".into(),
            )),
        };
    }
    let net = FoldedNetwork::new(weights, head)?;
    check_labels(info, net.classifier.as_ref().map(|c| c.classes()))?;
    match format {
        Format::Tflite => tflite::to_bytes(&net, info).map_err(|source| ExportError::Io {
            path: "the .tflite zip".into(),
            source,
        }),
        Format::Onnx => Ok(onnx::to_bytes(&net, info)),
        Format::Safetensors => Err(ExportError::Invalid(
            "safetensors is not an export format".into(),
        )),
    }
}

/// One label per class (`classes`: None for a feature vector), each fit for labels.txt.
fn check_labels(info: &ExportInfo, classes: Option<usize>) -> Result<(), ExportError> {
    let Some(k) = classes else {
        return Ok(());
    };
    if info.labels.len() != k {
        return Err(ExportError::Invalid(format!(
            "{} labels for {k} classes",
            info.labels.len()
        )));
    }
    // labels.txt holds one label per line.
    if let Some(bad) = info.labels.iter().find(|l| l.contains(['\n', '\r'])) {
        return Err(ExportError::Invalid(format!(
            "the label {bad:?} contains a line break, which labels.txt cannot hold"
        )));
    }
    Ok(())
}

/// Exports to `path`, atomically: nothing appears there unless the whole file was written.
pub fn export(
    weights: &Weights,
    head: Head,
    info: &ExportInfo,
    format: Format,
    path: &Path,
) -> Result<usize, ExportError> {
    let bytes = to_bytes(weights, head, info, format)?;
    let io = |source| ExportError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut f = AtomicFile::create(path).map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    f.commit().map_err(io)?;
    Ok(bytes.len())
}
