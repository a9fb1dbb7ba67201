//! Command-line flags resolved once into checked settings: the variant, its weights, the input
//! size, preprocessing and the device. Every mistake here is a `UsageError` (exit code 2).

use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::cache;
use crate::cli::{CropArg, DeviceArg, ModelArgs};
use crate::engine::{Engine, Head};
use crate::error::UsageError;
use crate::model::mobilenet::MIN_INPUT;
use crate::preprocess::{Crop, Preprocess};
use crate::registry::{Module, Registry, Variant};
use crate::weights::{self, Weights};

pub struct ModelConfig {
    pub variant: Variant,
    pub weights_path: PathBuf,
    pub preprocess: Preprocess,
    pub batch_size: usize,
    pub device: Device,
    pub fail_fast: bool,
}

impl ModelConfig {
    pub fn resolve(args: &ModelArgs, module: Module) -> Result<Self, UsageError> {
        let variant = Registry::builtin()
            .resolve(&args.variant, module)
            .map_err(|e| UsageError::new(e.to_string()))?
            .clone();
        let size = args.size.unwrap_or(variant.resolution);
        if size < MIN_INPUT {
            return Err(UsageError::new(format!(
                "--size {size} is too small: the network needs at least {MIN_INPUT}"
            )));
        }
        if args.batch_size == 0 {
            return Err(UsageError::new("--batch-size must be at least 1"));
        }
        let Some(weights_path) = find_weights(args.weights.as_deref(), &variant) else {
            return Err(UsageError::new(format!(
                "no weights for {} at hand: pass --weights PATH (a release .tgz, TF checkpoint, \
                 .tflite or safetensors file), or convert them into the cache with \
                 `mnv1 convert PATH --out {}`",
                variant.checkpoint,
                cache::weights_path(&variant.checkpoint).display()
            )));
        };
        let crop = match args.crop {
            CropArg::Central => Crop::Central(0.875),
            CropArg::None => Crop::None,
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
            fail_fast: args.fail_fast,
            variant,
        })
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
        Engine::new(&w, head, self.device.clone())
            .map_err(|e| UsageError::new(format!("{}: {e}", self.weights_path.display())))
    }

    fn load_weights(&self) -> Result<Weights, UsageError> {
        let w = weights::load(&self.weights_path).map_err(|e| UsageError::new(e.to_string()))?;
        let want = self.variant.depth_multiplier;
        if w.arch.depth_multiplier != want {
            let found = w.arch.depth_multiplier;
            let code = format!("{:03}", (found * 100.0).round() as u32);
            return Err(UsageError::new(format!(
                "{}: these weights are for depth multiplier {found}, but --variant {} needs {want}; \
                 use --variant {code}_{} (or another {code}_* resolution) with them",
                self.weights_path.display(),
                self.variant.id,
                self.variant.resolution
            )));
        }
        Ok(w)
    }
}

/// Where the weights of `variant` are: `--weights` when given, else the cache file when present.
/// The one place that decides it, so other sources (downloads) slot in here.
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
