//! `mnv1 convert`: any supported weights, a cached variant or a fine-tuned model directory to the
//! canonical safetensors form, or exported as TensorFlow Lite (with metadata) or ONNX.

use std::path::{Path, PathBuf};

use anyhow::Result;
use candle_core::Device;

use super::Status;
use crate::cli::{ConvertArgs, ExportHeadArg, QuantizeArg, QuantizeArgs};
use crate::config::{
    load_weights_for, require_float, resolve_precision, resolve_variant, resolve_weights_path,
    CalibrationSource,
};
use crate::engine::default_threads;
use crate::error::UsageError;
use crate::export::{self, ExportError, ExportInfo, Format, Head};
use crate::labels;
use crate::model::params::MIN_INPUT;
use crate::model::Precision;
use crate::preprocess::{Crop, Preprocess};
use crate::registry::Variant;
use crate::train::manifest::{Manifest, WEIGHTS_FILE};
use crate::weights::safetensors::{write_canonical, CanonicalMetadata};
use crate::weights::{self, Weights};

/// Weights resolved from IN, `--variant` or `--model`, with what an export needs to know.
struct Source {
    weights: Weights,
    path: PathBuf,
    variant: Option<Variant>,
    /// A fine-tuned model's manifest.
    manifest: Option<Manifest>,
}

fn resolve(args: &ConvertArgs, format: Format, quiet: bool) -> Result<Source> {
    if let Some(dir) = &args.model {
        let manifest = Manifest::read(dir)?;
        let variant = resolve_variant(&manifest.variant, Head::Logits)?;
        let path = dir.join(WEIGHTS_FILE);
        let weights = load_weights_for(&variant, &path)?;
        return Ok(Source {
            weights,
            path,
            variant: Some(variant),
            manifest: Some(manifest),
        });
    }
    let variant = args
        .variant
        .as_deref()
        .map(|v| resolve_variant(v, Head::Logits))
        .transpose()?;
    let path = match (&args.input, &variant) {
        (Some(p), _) => p.clone(),
        (None, Some(v)) => resolve_weights_path(v, None, &args.net, quiet)?,
        (None, None) => return Err(UsageError::new("give IN, --variant or --model").into()),
    };
    let weights = match &variant {
        Some(v) => load_weights_for(v, &path)?,
        None => weights::load(&path)?,
    };
    // A full-integer model is re-exported as a quantized .tflite (uint8 input and output, with
    // metadata); everything else needs float weights.
    if format != Format::Tflite {
        require_float(&weights, &path, "converted to this format")?;
    }
    Ok(Source {
        weights,
        path,
        variant,
        manifest: None,
    })
}

fn export_info(src: &Source, size: usize, head: Head) -> ExportInfo {
    let m = src.weights.arch.depth_multiplier;
    let license = "Apache License. Version 2.0 http://www.apache.org/licenses/LICENSE-2.0.";
    let producer = format!("mnv1 {} export", env!("CARGO_PKG_VERSION"));
    let what = match head {
        Head::Logits => "classifier",
        Head::Features => "feature vector",
    };
    let (name, description, labels) = match &src.manifest {
        Some(man) => (
            format!("mobilenet_v1_{m}_{size}_finetuned_{}", man.classes.len()),
            format!(
                "MobileNet V1 (depth multiplier {m}, {size}x{size}) {what} fine-tuned by mnv1 on {} \
                 classes from {} ({}); BatchNorm folded.",
                man.classes.len(),
                man.variant,
                man.training.weights_source
            ),
            man.classes.clone(),
        ),
        None => (
            match &src.weights.quantized {
                Some(_) => format!("mobilenet_v1_{m}_{size}_quant"),
                None => format!("mobilenet_v1_{m}_{size}"),
            },
            format!(
                "MobileNet V1 (depth multiplier {m}, {size}x{size}) ImageNet {what}, 1001 classes \
                 (index 0 is background), converted by mnv1 from {} ({}); BatchNorm folded.",
                src.path.display(),
                src.weights.format
            ),
            labels::owned_imagenet(),
        ),
    };
    ExportInfo {
        name,
        description,
        version: "v1".into(),
        author: "mnv1".into(),
        license: license.into(),
        producer,
        labels,
        size: (size, size),
    }
}

pub fn run(args: &ConvertArgs, quiet: bool) -> Result<Status> {
    let format = export::check_target(
        &args.out,
        &[Format::Safetensors, Format::Tflite, Format::Onnx],
    )?;
    if format == Format::Safetensors && args.head != ExportHeadArg::Classification {
        return Err(UsageError::new(
            "--head applies to .tflite and .onnx exports only (safetensors keeps every tensor)",
        )
        .into());
    }
    if let Some(n) = args.size {
        if format == Format::Safetensors {
            return Err(UsageError::new("--size applies to .tflite and .onnx exports only").into());
        }
        if n < MIN_INPUT {
            return Err(UsageError::new(format!(
                "--size {n} is too small: the network needs at least {MIN_INPUT}"
            ))
            .into());
        }
    }
    if args.quantize.quantize.is_some() && format != Format::Tflite {
        return Err(UsageError::new(
            "--quantize int8 writes a full-integer .tflite: give --out FILE.tflite",
        )
        .into());
    }
    let mut src = resolve(args, format, quiet)?;
    let w = &src.weights;
    if format == Format::Safetensors {
        let metadata = CanonicalMetadata {
            depth_multiplier: w.arch.depth_multiplier,
            source_format: w.format.to_string(),
            extra: Vec::new(),
        };
        write_canonical(&w.tensors, metadata, &args.out)?;
        if !quiet {
            eprintln!(
                "mnv1: wrote {} ({} tensors, depth multiplier {}, from a {}{})",
                args.out.display(),
                w.tensors.len(),
                w.arch.depth_multiplier,
                w.format,
                if w.has_logits() {
                    ""
                } else {
                    ", no logits layer"
                }
            );
        }
        return Ok(Status::Ok);
    }

    let size = args
        .size
        .or(w.quantized.as_ref().map(|q| q.input_size.0))
        .or(src.manifest.as_ref().map(|m| m.input_size))
        .or(src.variant.as_ref().map(|v| v.resolution))
        .ok_or_else(|| {
            UsageError::new(format!(
                "{}: the input size of the export is unknown: add --variant (e.g. --variant 025_128) \
                 or --size N",
                src.path.display()
            ))
        })?;
    let head = match args.head {
        ExportHeadArg::Classification => Head::Logits,
        ExportHeadArg::FeatureVector => Head::Features,
    };
    if head == Head::Logits && !w.has_logits() {
        return Err(UsageError::new(format!(
            "{}: these weights have no logits layer: export them with --head feature-vector",
            src.path.display()
        ))
        .into());
    }
    if let Some(calibrate) = &args.quantize.calibrate {
        quantize_for_export(&mut src, calibrate, size, quiet)?;
    }
    let w = &src.weights;
    let info = export_info(&src, size, head);
    let bytes = export::export(w, head, &info, format, &args.out).map_err(|e| match e {
        ExportError::Io { .. } => anyhow::Error::new(e),
        other => UsageError::new(format!("{}: {other}", src.path.display())).into(),
    })?;
    if !quiet {
        eprintln!(
            "mnv1: wrote {} ({bytes} bytes; {}, input {size}x{size}, output {})",
            args.out.display(),
            info.name,
            match (head, format) {
                (Head::Features, _) => format!("{} features", w.arch.feature_dim()),
                (Head::Logits, Format::Onnx) => format!("{} logits", info.labels.len()),
                _ => format!("{} probabilities", info.labels.len()),
            }
        );
    }
    Ok(Status::Ok)
}

/// Float weights quantized to int8 for a full-integer export, calibrated on `calibrate`'s
/// images prepared as the exported model's inputs are (its size, and a fine-tuned model's crop).
fn quantize_for_export(src: &mut Source, calibrate: &Path, size: usize, quiet: bool) -> Result<()> {
    if let Some(q) = &src.weights.quantized {
        return Err(UsageError::new(format!(
            "{}: already quantized ({}): drop --quantize to re-export it",
            src.path.display(),
            q.scheme()
        ))
        .into());
    }
    let mut preprocess = Preprocess::new(size, size);
    if let Some(m) = &src.manifest {
        preprocess.crop = match m.preprocessing.crop.as_str() {
            "none" => Crop::None,
            _ => Crop::Central(m.preprocessing.central_fraction as f32),
        };
    }
    let source = CalibrationSource {
        path: Some(calibrate),
        preprocess: &preprocess,
        threads: default_threads(),
        synthetic: false,
        quiet,
    };
    resolve_precision(
        &mut src.weights,
        Some(Precision::Int8),
        &source,
        &Device::Cpu,
        &src.path,
    )?;
    Ok(())
}

/// Exports a fine-tuned model (the directory `finetune` just wrote) for `finetune --export`;
/// with `calibrate`, full-integer, calibrated on those images.
pub(crate) fn export_finetuned(
    model_dir: &std::path::Path,
    out: &std::path::Path,
    calibrate: Option<&Path>,
    quiet: bool,
) -> Result<()> {
    let args = ConvertArgs {
        input: None,
        model: Some(model_dir.to_path_buf()),
        variant: None,
        out: out.to_path_buf(),
        head: ExportHeadArg::Classification,
        size: None,
        quantize: QuantizeArgs {
            quantize: calibrate.map(|_| QuantizeArg::Int8),
            calibrate: calibrate.map(Path::to_path_buf),
        },
        net: crate::cli::NetArgs {
            offline: true,
            mirror: None,
        },
    };
    run(&args, quiet).map(drop)
}
