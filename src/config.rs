//! Command-line flags resolved once into checked settings: the variant, its weights, the input
//! size, preprocessing and the device. Errors keep their types (a mistake in the flags is a
//! `UsageError`, a failed download a `HubError`, ...): `error::exit_code` decides from them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::Device;

use crate::cache;
use crate::cli::{ranges, CropArg, DeviceArg, ModelArgs, NetArgs};
use crate::engine::{default_threads, Engine, Head};
use crate::error::UsageError;
use crate::hub::{self, FetchOptions, HubError};
use crate::labels;
use crate::model::params::MIN_INPUT;
use crate::model::Precision;
use crate::preprocess::{Crop, Preprocess, DEFAULT_CENTRAL_FRACTION};
use crate::quantize::{self, Calibrator};
use crate::registry::{Registry, RegistryError, Variant};
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
    /// `--precision` (None: the weights' own) and `--calibrate`.
    pub precision: Option<Precision>,
    pub calibrate: Option<PathBuf>,
    /// No notes on stderr (errors still show).
    pub quiet: bool,
}

pub fn resolve_variant(arg: &str, module: Head) -> Result<Variant, RegistryError> {
    Ok(Registry::builtin().resolve(arg, module)?.clone())
}

/// `--weights`, or the variant's weights from the cache, fetched there on first use.
pub fn resolve_weights_path(
    variant: &Variant,
    weights: Option<&Path>,
    net: &NetArgs,
    quiet: bool,
) -> Result<PathBuf, HubError> {
    if let Some(p) = weights {
        return Ok(p.to_path_buf());
    }
    let opts = FetchOptions::from_env(net.offline, net.mirror.as_deref(), quiet)?;
    hub::ensure_weights(variant, &opts)
}

/// A fine-tuned model's manifest, with the values classify and embed act on checked: a crop mnv1
/// knows, a central fraction in (0, 1], classes that are one line each.
fn checked_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let m = Manifest::read(dir)?;
    let path = dir.join(crate::train::manifest::MANIFEST_FILE);
    let bad = |what: String| UsageError::new(format!("{}: {what}", path.display()));
    let p = &m.preprocessing;
    if p.crop != "central" && p.crop != "none" {
        return Err(bad(format!("crop is '{}', not 'central' or 'none'", p.crop)).into());
    }
    if !(p.central_fraction > 0.0 && p.central_fraction <= 1.0) {
        return Err(bad(format!(
            "central_fraction is {}, not in (0, 1]",
            p.central_fraction
        ))
        .into());
    }
    if m.classes.is_empty() {
        return Err(bad("lists no classes".into()).into());
    }
    if let Some(c) = m.classes.iter().find(|c| c.chars().any(char::is_control)) {
        return Err(bad(format!("class name {c:?} is not one line")).into());
    }
    Ok(m)
}

/// Checks an input side (from `what`: --size or a manifest) against [`ranges::SIZE`], and one
/// batch's pixels against [`ranges::BATCH_PIXELS`], so that no setting can ask for an
/// allocation the machine cannot make.
pub fn check_size(
    size: usize,
    batch: usize,
    what: &str,
    batch_flag: &str,
) -> Result<(), UsageError> {
    let (lo, hi) = (*ranges::SIZE.start(), *ranges::SIZE.end());
    if !(lo..=hi).contains(&(size as u64)) {
        return Err(UsageError::new(format!(
            "{what} {size} is out of range: the network runs at {lo}..={hi} pixels a side"
        )));
    }
    debug_assert!(MIN_INPUT as u64 <= lo);
    let pixels = (batch as u64).saturating_mul((size * size) as u64);
    if pixels > ranges::BATCH_PIXELS {
        let most = (ranges::BATCH_PIXELS / (size * size) as u64).max(1);
        return Err(UsageError::new(format!(
            "{batch_flag} {batch} at {size}x{size} is {pixels} pixels per batch, more than the \
             {} allowed: use {batch_flag} {most} or less at this size",
            ranges::BATCH_PIXELS
        )));
    }
    Ok(())
}

impl ModelConfig {
    /// Resolves the model flags; `quiet` silences the notes of a weights download (errors still
    /// show).
    pub fn resolve_quiet(args: &ModelArgs, module: Head, quiet: bool) -> anyhow::Result<Self> {
        // A fine-tuned model directory stands for --variant and --weights, and sets the defaults
        // of --size and --crop to what it was trained with.
        let manifest = match &args.model {
            Some(dir) => Some(checked_manifest(dir)?),
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
        let from = if args.size.is_some() {
            "--size"
        } else {
            "the model's input size"
        };
        check_size(size, args.batch_size, from, "--batch-size")?;
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
            precision: args.precision.precision.map(Precision::from),
            calibrate: args.precision.calibrate.clone(),
            quiet,
            variant,
            labels: manifest.map(|m| m.classes),
        })
    }

    /// The labels of the model's logits: a fine-tuned model's classes, else ImageNet's 1001.
    pub fn labels(&self) -> Vec<String> {
        self.labels.clone().unwrap_or_else(labels::owned_imagenet)
    }

    /// Loads the weights, checks they fit the variant, and puts the network on the device.
    pub fn load_engine(&self, head: Head) -> anyhow::Result<Engine> {
        let mut w = self.load_weights()?;
        if head == Head::Logits && !w.has_logits() {
            return Err(UsageError::new(format!(
                "{}: these weights have no logits layer (feature-vector only): use `mnv1 embed`",
                self.weights_path.display()
            ))
            .into());
        }
        if let Some(q) = &w.quantized {
            let (h, wd) = q.input_size;
            if self.preprocess.size != (h, wd) {
                return Err(UsageError::new(format!(
                    "{}: this quantized model takes {h}x{wd} images (its pool is fixed to that \
                     size), not {}x{}: use --variant {:03}_{h} or --size {h}",
                    self.weights_path.display(),
                    self.preprocess.size.0,
                    self.preprocess.size.1,
                    (q.arch.depth_multiplier * 100.0).round() as u32
                ))
                .into());
            }
        }
        let calibration = CalibrationSource {
            path: self.calibrate.as_deref(),
            preprocess: &self.preprocess,
            threads: self.threads,
            synthetic: false,
            quiet: self.quiet,
        };
        let precision = resolve_precision(
            &mut w,
            self.precision,
            &calibration,
            &self.device,
            &self.weights_path,
        )?;
        let engine = Engine::with_threads(&w, head, self.device.clone(), self.threads, precision)
            .with_context(|| format!("{}", self.weights_path.display()))?;
        if let Some(labels) = self.labels.as_ref().filter(|_| head == Head::Logits) {
            if engine.out_dim() != labels.len() {
                return Err(UsageError::new(format!(
                    "{}: the manifest lists {} classes but the weights' head has {} outputs; \
                     the model directory is inconsistent",
                    self.weights_path.display(),
                    labels.len(),
                    engine.out_dim()
                ))
                .into());
            }
        }
        Ok(engine)
    }

    fn load_weights(&self) -> anyhow::Result<Weights> {
        load_weights_for(&self.variant, &self.weights_path)
    }
}

/// Loads weights and checks that their depth multiplier is the variant's.
pub fn load_weights_for(variant: &Variant, path: &Path) -> anyhow::Result<Weights> {
    let w = weights::load(path)?;
    let want = variant.depth_multiplier;
    if w.arch.depth_multiplier != want {
        let found = w.arch.depth_multiplier;
        let code = format!("{:03}", (found * 100.0).round() as u32);
        // A quantized model's input size is fixed: suggest it.
        let resolution = w
            .quantized
            .as_ref()
            .map_or(variant.resolution, |q| q.input_size.0);
        return Err(UsageError::new(format!(
            "{}: these weights are for depth multiplier {found}, but --variant {} needs {want}; \
             use --variant {code}_{} (or another {code}_* resolution) with them",
            path.display(),
            variant.id,
            resolution
        ))
        .into());
    }
    Ok(w)
}

/// Refuses a quantized model where float weights are needed (`what`: "converted",
/// "fine-tuned"): its integer weights have no float form to start from.
pub fn require_float(w: &Weights, path: &Path, what: &str) -> Result<(), UsageError> {
    match &w.quantized {
        Some(q) => Err(UsageError::new(format!(
            "{}: a quantized model ({}) can be run (classify, embed, bench) but not {what}: \
             start from the float weights",
            path.display(),
            q.scheme()
        ))),
        None => Ok(()),
    }
}

/// Where `--precision int8` on float weights takes its calibration images from.
pub struct CalibrationSource<'a> {
    /// `--calibrate`.
    pub path: Option<&'a Path>,
    /// The run's preprocessing: the calibration images are prepared as its inputs are, and its
    /// size becomes the quantized model's fixed input size.
    pub preprocess: &'a Preprocess,
    /// Threads of the fp32 calibration run.
    pub threads: usize,
    /// Without `--calibrate`: calibrate on seeded synthetic images (`mnv1 bench`, whose
    /// timings do not depend on the ranges) instead of refusing.
    pub synthetic: bool,
    pub quiet: bool,
}

/// Synthetic calibration images of `mnv1 bench` without `--calibrate`.
const SYNTHETIC_IMAGES: usize = 8;

/// The precision the network runs in, from `--precision` (`asked`; None: the weights' own) and
/// the weights: a quantized model runs in int8 only; float weights run in fp32, bf16, or int8
/// once quantized with `calibration`'s images (`w.quantized` is set then). Refused: bf16 or fp32
/// for a quantized model, `--calibrate` without int8 on float weights, int8 off the CPU, int8 on
/// float weights without `--calibrate` (unless `calibration.synthetic`), calibration images of
/// which none can be read.
pub fn resolve_precision(
    w: &mut Weights,
    asked: Option<Precision>,
    calibration: &CalibrationSource<'_>,
    device: &Device,
    path: &Path,
) -> anyhow::Result<Precision> {
    let calibrate = calibration.path;
    let quantized = w.quantized.as_ref().map(|q| q.scheme());
    let precision = match (quantized, asked) {
        (Some(_), None | Some(Precision::Int8)) => Precision::Int8,
        (Some(scheme), Some(p)) => {
            return Err(UsageError::new(format!(
                "{}: a quantized model ({scheme}) runs in int8 only, not --precision {p}: \
                 drop --precision, or use the float model",
                path.display()
            ))
            .into())
        }
        (None, p) => p.unwrap_or(Precision::Fp32),
    };
    if calibrate.is_some() && (quantized.is_some() || precision != Precision::Int8) {
        return Err(UsageError::new(
            "--calibrate sets the ranges of --precision int8 on float weights; \
             it does nothing here: drop it, or add --precision int8",
        )
        .into());
    }
    if precision != Precision::Fp32 && !device.is_cpu() {
        return Err(UsageError::new(format!(
            "--precision {precision} runs on the CPU only, not on {:?}: drop --device, or use \
             --precision fp32",
            device.location()
        ))
        .into());
    }
    if precision == Precision::Int8 && quantized.is_none() {
        let net = quantize_float(w, calibration, path)?;
        w.quantized = Some(std::sync::Arc::new(net));
    }
    Ok(precision)
}

/// Float weights quantized to int8 on `source`'s calibration images.
fn quantize_float(
    w: &Weights,
    source: &CalibrationSource<'_>,
    path: &Path,
) -> anyhow::Result<crate::weights::tflite::QuantizedNet> {
    let size = source.preprocess.size;
    let mut calibrator =
        Calibrator::new(w, size, source.threads).with_context(|| format!("{}", path.display()))?;
    let from = match source.path {
        Some(images) => {
            let skipped = quantize::images::add_images(&mut calibrator, images, source.preprocess)?;
            if calibrator.images() == 0 {
                return Err(UsageError::new(format!(
                    "--calibrate {}: no image there could be read ({skipped} failed): \
                     int8 ranges need at least one",
                    images.display()
                ))
                .into());
            }
            images.display().to_string()
        }
        None if source.synthetic => {
            quantize::images::add_synthetic(&mut calibrator, SYNTHETIC_IMAGES, 1)?;
            String::from("seeded synthetic images (timing only: give --calibrate DIR for accuracy)")
        }
        None => {
            return Err(UsageError::new(format!(
                "{}: --precision int8 on float weights quantizes them, and needs --calibrate DIR: \
                 a few hundred images like the ones to classify (their ranges set the int8 scales)",
                path.display()
            ))
            .into())
        }
    };
    let n = calibrator.images();
    let calibration = calibrator
        .finish()
        .expect("checked above: at least one image");
    let net = quantize::quantize(w, &calibration).with_context(|| format!("{}", path.display()))?;
    if !source.quiet {
        eprintln!(
            "mnv1: quantized to int8 per channel at {}x{}, ranges from {n} image(s): {from}",
            size.0, size.1
        );
    }
    Ok(net)
}

/// `--weights` when given, else the variant's cache file when it is already there; never
/// fetches (`mnv1 bench` times random weights instead). `resolve_weights_path` is the one
/// that downloads.
pub fn find_weights(
    explicit: Option<&Path>,
    variant: &Variant,
) -> Result<Option<PathBuf>, cache::CacheDirError> {
    if let Some(p) = explicit {
        return Ok(Some(p.to_path_buf()));
    }
    let cached = cache::weights_path(&variant.checkpoint)?;
    Ok(cached.exists().then_some(cached))
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
