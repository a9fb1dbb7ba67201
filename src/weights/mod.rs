//! Weights from every supported source, reduced to one canonical form: TF-Slim tensor names
//! (`MobilenetV1/Conv2d_3_depthwise/depthwise_weights`, no `module/` prefix) in TensorFlow layouts
//! (HWIO conv filters, [kh,kw,C,1] depthwise filters). A layer carries either its
//! `BatchNorm/{gamma,beta,moving_mean,moving_variance}` or, when the source had them folded
//! (.tflite), a `biases` tensor. Sources are recognised by content, not by file name.

pub(crate) mod archive;
pub mod checkpoint;
pub mod random;
pub mod safetensors;
pub mod tflite;
pub(crate) mod transformers;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::model::arch::{Arch, LOGITS_SCOPE};

/// A float32 tensor as a weights file stores it (TensorFlow layout, row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct RawTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl RawTensor {
    pub(crate) fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self { shape, data }
    }
}

/// Canonical tensors of one checkpoint, and what they were read from.
#[derive(Debug)]
pub struct Weights {
    pub tensors: BTreeMap<String, RawTensor>,
    pub arch: Arch,
    /// `TF checkpoint`, `.tflite`, `safetensors`, ... for messages and manifests.
    pub format: &'static str,
    /// A quantized .tflite's integer network (`tensors` is then empty): run by
    /// `model::quant`, not convertible or trainable.
    pub quantized: Option<std::sync::Arc<tflite::QuantizedNet>>,
}

impl Weights {
    pub(crate) fn has_logits(&self) -> bool {
        if let Some(q) = &self.quantized {
            return q.logits.is_some();
        }
        self.tensors
            .contains_key(&format!("{LOGITS_SCOPE}/weights"))
    }

    /// Checks that every tensor of the architecture is present with its exact shape (each layer
    /// with its BatchNorm or its folded bias) and the 1001-way logits: what a download must hold
    /// before it may enter the cache.
    pub fn check_complete(&self) -> Result<(), String> {
        let check = |name: &str, shape: &[usize]| match self.tensors.get(name) {
            None => Err(format!("no tensor {name}")),
            Some(t) if t.shape != shape => Err(format!(
                "tensor {name} has shape {:?}, expected {shape:?}",
                t.shape
            )),
            Some(_) => Ok(()),
        };
        for layer in self.arch.layers() {
            check(&layer.weight_name(), &layer.weight_shape())?;
            let c = [layer.out_channels];
            if self.tensors.contains_key(&layer.bias_name()) {
                check(&layer.bias_name(), &c)?;
            } else {
                for leaf in ["gamma", "beta", "moving_mean", "moving_variance"] {
                    check(&layer.bn_name(leaf), &c)?;
                }
            }
        }
        let classes = crate::model::arch::NUM_CLASSES;
        check(
            &format!("{LOGITS_SCOPE}/weights"),
            &[1, 1, self.arch.feature_dim(), classes],
        )?;
        check(&format!("{LOGITS_SCOPE}/biases"), &[classes])
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{0}: not a weights file mnv1 knows (expected a TF checkpoint prefix, .index or .data file, \
         a hub module or release directory, a .tgz/.tar.gz archive, a float .tflite or a safetensors file)"
    )]
    Unrecognised(PathBuf),
    #[error("{0}: holds no TF checkpoint and no .tflite")]
    NothingInside(PathBuf),
    #[error(
        "{path}: no MobileNet V1 weights inside ({detail}); expected tensors named like \
         MobilenetV1/Conv2d_0/weights"
    )]
    NotMobileNet { path: PathBuf, detail: String },
    /// Read from files: the message names the file already.
    #[error(transparent)]
    CheckpointFiles(checkpoint::CheckpointError),
    /// Read from inside an archive.
    #[error("{path}: {source}")]
    Checkpoint {
        path: PathBuf,
        source: checkpoint::CheckpointError,
    },
    #[error("{path}: {source}")]
    Tflite {
        path: PathBuf,
        source: tflite::TfliteError,
    },
    #[error("{path}: {source}")]
    Safetensors {
        path: PathBuf,
        source: safetensors::SafetensorsError,
    },
    #[error("{path}: {source}")]
    Archive {
        path: PathBuf,
        source: archive::ArchiveError,
    },
    #[error("{path}: tensor {tensor} holds NaN or infinite values; these weights are broken")]
    NonFinite { path: PathBuf, tensor: String },
}

impl WeightsError {
    /// Reading failed (as opposed to: what was read is not usable weights).
    pub(crate) fn is_io(&self) -> bool {
        matches!(self, WeightsError::Io { .. })
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WeightsError + '_ {
    move |source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Loads weights from a checkpoint prefix, `.index`/`.data-*` file, directory, archive,
/// `.tflite` or safetensors file, and reduces them to the canonical form.
pub fn load(path: &Path) -> Result<Weights, WeightsError> {
    let (raw, format) = match read_any(path)? {
        Raw::Tensors(t, format) => (t, format),
        Raw::Quantized(q) => {
            return Ok(Weights {
                tensors: BTreeMap::new(),
                arch: q.arch,
                format: "quantized .tflite",
                quantized: Some(std::sync::Arc::new(q)),
            })
        }
    };
    let w = canonicalize(raw, format).map_err(|detail| WeightsError::NotMobileNet {
        path: path.to_path_buf(),
        detail,
    })?;
    // A NaN or infinity would turn every output into NaN without a word.
    if let Some((name, _)) = w
        .tensors
        .iter()
        .find(|(_, t)| t.data.iter().any(|v| !v.is_finite()))
    {
        return Err(WeightsError::NonFinite {
            path: path.to_path_buf(),
            tensor: name.clone(),
        });
    }
    Ok(w)
}

/// What a source holds: float tensors to canonicalize, or a quantized network (whose integer
/// weights have no canonical float form), and the format's name.
enum Raw {
    Tensors(BTreeMap<String, RawTensor>, &'static str),
    Quantized(tflite::QuantizedNet),
}

/// A .tflite file's contents, float or quantized.
fn read_tflite_bytes(path: &Path, bytes: &[u8]) -> Result<Raw, WeightsError> {
    let t = tflite::read(bytes).map_err(|source| WeightsError::Tflite {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(match t {
        tflite::TfliteWeights::Float(t) => Raw::Tensors(t, ".tflite"),
        tflite::TfliteWeights::Quantized(q) => Raw::Quantized(q),
    })
}

fn read_any(path: &Path) -> Result<Raw, WeightsError> {
    if path.is_dir() {
        return read_dir(path);
    }
    if !path.exists() {
        // A checkpoint prefix such as `dir/mobilenet_v1_0.25_128.ckpt` names no file itself.
        let index = with_suffix(path, ".index");
        if index.is_file() {
            return read_checkpoint_files(path);
        }
        return Err(WeightsError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        });
    }
    let file = fs::File::open(path).map_err(io(path))?;
    // SAFETY: the file is only read; a concurrent truncation is the usual mmap caveat and the
    // caches that mnv1 maps are replaced by rename, never rewritten in place.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io(path))?;
    let bytes: &[u8] = &map;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if archive::is_gzip(bytes) {
        let members =
            archive::read_weight_members(bytes).map_err(|source| WeightsError::Archive {
                path: path.to_path_buf(),
                source,
            })?;
        read_members(path, members)
    } else if tflite::is_tflite(bytes) {
        read_tflite_bytes(path, bytes)
    } else if safetensors::is_safetensors(bytes) {
        let t =
            safetensors::read_safetensors(bytes).map_err(|source| WeightsError::Safetensors {
                path: path.to_path_buf(),
                source,
            })?;
        if transformers::is_transformers_layout(&t) {
            let t = transformers::to_canonical(t).map_err(|detail| WeightsError::NotMobileNet {
                path: path.to_path_buf(),
                detail,
            })?;
            return Ok(Raw::Tensors(t, "transformers safetensors"));
        }
        let t =
            safetensors::read_safetensors(bytes).map_err(|source| WeightsError::Safetensors {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Raw::Tensors(t, "safetensors"))
    } else if checkpoint::is_bundle_index(bytes) {
        let prefix = name
            .strip_suffix(".index")
            .ok_or_else(|| WeightsError::Unrecognised(path.to_path_buf()))?;
        read_checkpoint_files(&path.with_file_name(prefix))
    } else if let Some((prefix, _)) = name.split_once(".data-") {
        read_checkpoint_files(&path.with_file_name(prefix))
    } else {
        Err(WeightsError::Unrecognised(path.to_path_buf()))
    }
}

/// A directory: an unpacked hub module (`variables/variables.index`), a release directory
/// (`*.ckpt.index`), or one holding a `.tflite` / safetensors file. Checkpoints win: they keep
/// the BatchNorm statistics that a `.tflite` has folded away.
fn read_dir(dir: &Path) -> Result<Raw, WeightsError> {
    let hub = dir.join("variables").join("variables");
    if with_suffix(&hub, ".index").is_file() {
        return read_checkpoint_files(&hub);
    }
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let ends = |p: &PathBuf, s: &str| p.to_string_lossy().ends_with(s);
    if let Some(index) = files.iter().find(|p| ends(p, ".index")) {
        let prefix = index.to_string_lossy();
        return read_checkpoint_files(Path::new(prefix.trim_end_matches(".index")));
    }
    for suffix in [".tflite", ".safetensors"] {
        if let Some(f) = files.iter().find(|p| ends(p, suffix)) {
            return read_any(f);
        }
    }
    Err(WeightsError::NothingInside(dir.to_path_buf()))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn read_checkpoint_files(prefix: &Path) -> Result<Raw, WeightsError> {
    let t = checkpoint::read_checkpoint(prefix).map_err(WeightsError::CheckpointFiles)?;
    Ok(Raw::Tensors(t, "TF checkpoint"))
}

/// An archive's checkpoint (the first `.index` with its shards) or, failing that, its `.tflite`.
fn read_members(path: &Path, m: archive::WeightMembers) -> Result<Raw, WeightsError> {
    let ckpt_err = |source| WeightsError::Checkpoint {
        path: path.to_path_buf(),
        source,
    };
    if let Some((prefix, index)) = m.indexes.iter().next() {
        let bundle = checkpoint::Bundle::parse_index(index).map_err(ckpt_err)?;
        let n = bundle.num_shards();
        let shards: Vec<&[u8]> = (0..n)
            .map(|i| {
                let key = format!("{prefix}.data-{i:05}-of-{n:05}");
                m.shards
                    .get(&key)
                    .map(Vec::as_slice)
                    .ok_or_else(|| WeightsError::Archive {
                        path: path.to_path_buf(),
                        source: archive::ArchiveError::Read(std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            format!("the archive has '{prefix}.index' but not its shard '{key}'"),
                        )),
                    })
            })
            .collect::<Result<_, _>>()?;
        let mut tensors = BTreeMap::new();
        for (name, entry) in bundle.entries() {
            if entry.dtype == checkpoint::DT_FLOAT && is_model_tensor(name) {
                let shard = shards.get(entry.shard_id).copied().unwrap_or_default();
                tensors.insert(
                    name.to_string(),
                    bundle.read_f32(name, shard).map_err(ckpt_err)?,
                );
            }
        }
        return Ok(Raw::Tensors(tensors, "TF checkpoint"));
    }
    if let Some(bytes) = m.tflites.values().next() {
        return read_tflite_bytes(path, bytes);
    }
    Err(WeightsError::NothingInside(path.to_path_buf()))
}

/// Skips what checkpoints carry besides the model: optimizer slots, EMA shadows, global_step.
fn is_model_tensor(name: &str) -> bool {
    let name = name.strip_prefix("module/").unwrap_or(name);
    name.starts_with("MobilenetV1/")
        && !name.ends_with("/RMSProp")
        && !name.ends_with("/RMSProp_1")
        && !name.ends_with("/ExponentialMovingAverage")
}

/// Keeps exactly the tensors of the detected architecture under their canonical names.
pub(crate) fn canonicalize(
    raw: BTreeMap<String, RawTensor>,
    format: &'static str,
) -> Result<Weights, String> {
    let mut by_name: BTreeMap<String, RawTensor> = raw
        .into_iter()
        .filter(|(k, _)| is_model_tensor(k))
        .map(|(k, v)| {
            (
                k.strip_prefix("module/").map(str::to_string).unwrap_or(k),
                v,
            )
        })
        .collect();
    let first = "MobilenetV1/Conv2d_0/weights";
    let conv0 = by_name
        .get(first)
        .ok_or_else(|| format!("no tensor {first}"))?;
    let filters = conv0.shape.last().copied().unwrap_or(0);
    let arch = Arch::from_first_conv_filters(filters)
        .filter(|_| conv0.shape.len() == 4)
        .ok_or_else(|| {
            format!(
                "{first} has shape {:?}, which fits no depth multiplier",
                conv0.shape
            )
        })?;
    let mut wanted: Vec<String> = Vec::new();
    for layer in arch.layers() {
        wanted.push(layer.weight_name());
        wanted.push(layer.bias_name());
        for leaf in ["gamma", "beta", "moving_mean", "moving_variance"] {
            wanted.push(layer.bn_name(leaf));
        }
    }
    wanted.push(format!("{LOGITS_SCOPE}/weights"));
    wanted.push(format!("{LOGITS_SCOPE}/biases"));
    let tensors = wanted
        .into_iter()
        .filter_map(|k| by_name.remove(&k).map(|v| (k, v)))
        .collect();
    Ok(Weights {
        tensors,
        arch,
        format,
        quantized: None,
    })
}
