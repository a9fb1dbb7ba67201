//! Command-line flags resolved once into checked settings: the variant, its weights, the input
//! size, preprocessing and the device. Every mistake here is a `UsageError` (exit code 2).

use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::cache;
use crate::cli::{CropArg, DeviceArg, ModelArgs, NetArgs};
use crate::engine::{default_threads, Engine, Head};
use crate::error::UsageError;
use crate::hub::{self, FetchOptions};
use crate::labels;
use crate::model::mobilenet::MIN_INPUT;
use crate::model::ModelError;
use crate::preprocess::{Crop, Preprocess, DEFAULT_CENTRAL_FRACTION};
use crate::registry::{Registry, Variant};
use crate::train::manifest::{Manifest, WEIGHTS_FILE};
use crate::weights::{self, Weights};

pub struct ModelConfig {
    pub variant: Variant,
    pub weights_path: PathBuf,
    pub preprocess: Preprocess,
    pub batch_size: usize,
    pub device: Device,
    /// CPU threads of the network and of decoding.
    pub threads: usize,
    pub fail_fast: bool,
    /// Class names of a fine-tuned model (`--model`); None for the ImageNet modules.
    pub labels: Option<Vec<String>>,
}

pub fn resolve_variant(arg: &str, module: Head) -> Result<Variant, UsageError> {
    Ok(Registry::builtin()
        .resolve(arg, module)
        .map_err(|e| UsageError::new(e.to_string()))?
        .clone())
}

/// `--weights`, or the variant's weights from the cache, fetched there on first use.
pub fn resolve_weights_path(
    variant: &Variant,
    weights: Option<&Path>,
    net: &NetArgs,
    quiet: bool,
) -> Result<PathBuf, UsageError> {
    if let Some(p) = weights {
        return Ok(p.to_path_buf());
    }
    let opts = FetchOptions::from_env(net.offline, net.mirror.as_deref(), quiet)
        .map_err(|e| UsageError::new(e.to_string()))?;
    hub::ensure_weights(variant, &opts).map_err(|e| UsageError::new(e.to_string()))
}

impl ModelConfig {
    pub fn resolve(args: &ModelArgs, module: Head) -> Result<Self, UsageError> {
        Self::resolve_quiet(args, module, false)
    }

    /// As `resolve`; `quiet` silences the notes of a weights download (errors still show).
    pub fn resolve_quiet(args: &ModelArgs, module: Head, quiet: bool) -> Result<Self, UsageError> {
        // A fine-tuned model directory stands for --variant and --weights, and sets the defaults
        // of --size and --crop to what it was trained with.
        let manifest = match &args.model {
            Some(dir) => Some(Manifest::read(dir).map_err(|e| UsageError::new(e.to_string()))?),
            None => None,
        };
        let variant_arg = manifest
            .as_ref()
            .map_or(args.variant.as_str(), |m| m.variant.as_str());
        let variant = resolve_variant(variant_arg, module)?;
        let size = args
            .size
            .or(manifest.as_ref().map(|m| m.input_size))
            .unwrap_or(variant.resolution);
        if size < MIN_INPUT {
            return Err(UsageError::new(format!(
                "--size {size} is too small: the network needs at least {MIN_INPUT}"
            )));
        }
        if args.batch_size == 0 {
            return Err(UsageError::new("--batch-size must be at least 1"));
        }
        if args.threads == Some(0) {
            return Err(UsageError::new("--threads must be at least 1"));
        }
        let weights_path = match (&args.model, &args.weights) {
            (Some(dir), _) => dir.join(WEIGHTS_FILE),
            (None, w) => resolve_weights_path(&variant, w.as_deref(), &args.net, quiet)?,
        };
        let crop = match (args.crop, &manifest) {
            (Some(CropArg::Central), _) => Crop::Central(DEFAULT_CENTRAL_FRACTION),
            (Some(CropArg::None), _) => Crop::None,
            (None, Some(m)) if m.preprocessing.crop == "none" => Crop::None,
            (None, Some(m)) => Crop::Central(m.preprocessing.central_fraction as f32),
            (None, None) => Crop::Central(DEFAULT_CENTRAL_FRACTION),
        };
        Ok(Self {
            weights_path,
            preprocess: Preprocess {
                size: (size, size),
                crop,
                max_pixels: args.max_pixels,
            },
            batch_size: args.batch_size,
            device: select_device(args.device)?,
            threads: args.threads.unwrap_or_else(default_threads),
            fail_fast: args.fail_fast,
            variant,
            labels: manifest.map(|m| m.classes),
        })
    }

    /// The labels of the model's logits: a fine-tuned model's classes, else ImageNet's 1001.
    pub fn labels(&self) -> Vec<String> {
        self.labels.clone().unwrap_or_else(labels::owned_imagenet)
    }

    /// Loads the weights, checks they fit the variant, and puts the network on the device.
    pub fn load_engine(&self, head: Head) -> Result<Engine, UsageError> {
        let w = self.load_weights()?;
        if head == Head::Logits && !w.has_logits() {
            return Err(UsageError::new(format!(
                "{}: these weights have no logits layer (feature-vector only): use `mnv1 embed`",
                self.weights_path.display()
            )));
        }
        Engine::with_threads(&w, head, self.device.clone(), self.threads).map_err(|e| match e {
            ModelError::Isa(e) => UsageError::new(e.to_string()),
            e => UsageError::new(format!("{}: {e}", self.weights_path.display())),
        })
    }

    fn load_weights(&self) -> Result<Weights, UsageError> {
        load_weights_for(&self.variant, &self.weights_path)
    }
}

/// Loads weights and checks that their depth multiplier is the variant's.
pub fn load_weights_for(variant: &Variant, path: &Path) -> Result<Weights, UsageError> {
    let w = weights::load(path).map_err(|e| UsageError::new(e.to_string()))?;
    let want = variant.depth_multiplier;
    if w.arch.depth_multiplier != want {
        let found = w.arch.depth_multiplier;
        let code = format!("{:03}", (found * 100.0).round() as u32);
        return Err(UsageError::new(format!(
            "{}: these weights are for depth multiplier {found}, but --variant {} needs {want}; \
             use --variant {code}_{} (or another {code}_* resolution) with them",
            path.display(),
            variant.id,
            variant.resolution
        )));
    }
    Ok(w)
}

/// `--weights` when given, else the variant's cache file when it is already there; never
/// fetches (`mnv1 bench` times random weights instead). `resolve_weights_path` is the one
/// that downloads.
pub fn find_weights(explicit: Option<&Path>, variant: &Variant) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let cached = cache::weights_path(&variant.checkpoint);
    cached.exists().then_some(cached)
}

pub fn select_device(arg: DeviceArg) -> Result<Device, UsageError> {
    let err = |name: &str, e: candle_core::Error| {
        UsageError::new(format!("--device {name}: {e} (CUDA needs a build with `--features cuda`, Metal `--features metal`)"))
    };
    match arg {
        DeviceArg::Cpu => Ok(Device::Cpu),
        DeviceArg::Cuda => Device::new_cuda(0).map_err(|e| err("cuda", e)),
        DeviceArg::Metal => Device::new_metal(0).map_err(|e| err("metal", e)),
        DeviceArg::Auto => {
            if candle_core::utils::cuda_is_available() {
                Device::new_cuda(0).map_err(|e| err("cuda", e))
            } else if candle_core::utils::metal_is_available() {
                Device::new_metal(0).map_err(|e| err("metal", e))
            } else {
                Ok(Device::Cpu)
            }
        }
    }
}
