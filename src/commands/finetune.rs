//! `mnv1 finetune`: trains a new head (optionally the whole network) on class folders and writes a
//! model directory that `classify --model` and `embed --model` read.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::Status;
use crate::cli::{FinetuneArgs, OptimizerArg};
use crate::config::{
    load_weights_for, require_float, resolve_variant, resolve_weights_path, select_device,
};
use crate::error::UsageError;
use crate::export;
use crate::model::params::MIN_INPUT;
use crate::preprocess::DEFAULT_CENTRAL_FRACTION;
use crate::registry::Head;
use crate::report::summaries::TrainingSummaries;
use crate::report::training::{self as report, ReportInput};
use crate::tempfiles;
use crate::train::manifest::{
    self, Figures, Manifest, Preprocessing, Training, FORMAT, MANIFEST_FILE, WEIGHTS_FILE,
};
use crate::train::optimizer::OptimizerKind;
use crate::train::{data, fine_tune, Event, Prepared, Settings};
use crate::weights::safetensors::{write_canonical, CanonicalMetadata};

/// Below this, batch statistics are too noisy for batch norm in train mode.
const SMALL_BATCH: usize = 8;

fn check(args: &FinetuneArgs) -> Result<(), UsageError> {
    let bad = |msg: String| Err(UsageError::new(msg));
    if args.epochs == 0 {
        return bad("--epochs must be at least 1".into());
    }
    if args.batch_size == 0 {
        return bad("--batch-size must be at least 1".into());
    }
    if !(args.learning_rate > 0.0 && args.learning_rate.is_finite()) {
        return bad(format!(
            "--learning-rate must be positive, not {}",
            args.learning_rate
        ));
    }
    if !(0.0..1.0).contains(&args.momentum) {
        return bad(format!(
            "--momentum must be in [0, 1), not {}",
            args.momentum
        ));
    }
    if !(0.0..1.0).contains(&args.bn_momentum) {
        return bad(format!(
            "--bn-momentum must be in [0, 1) (TF meaning, e.g. 0.99 or 0.997), not {}",
            args.bn_momentum
        ));
    }
    if !(0.0..1.0).contains(&args.dropout) {
        return bad(format!("--dropout must be in [0, 1), not {}", args.dropout));
    }
    if args.threads == Some(0) {
        return bad("--threads must be at least 1".into());
    }
    if !(0.0..1.0).contains(&args.validation_split) {
        return bad(format!(
            "--validation-split must be in [0, 1), not {}",
            args.validation_split
        ));
    }
    if let Some(x) = args.assert_accuracy_at_least {
        if !(0.0..=1.0).contains(&x) {
            return bad(format!(
                "--assert-accuracy-at-least is a fraction in [0, 1], not {x}"
            ));
        }
    }
    Ok(())
}

fn epoch_bar(batches: usize, epoch: usize, epochs: usize, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(batches as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "epoch {prefix} {wide_bar} {pos}/{len} batches [{elapsed_precise}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

fn show(f: Option<Figures>) -> String {
    f.map_or_else(
        || "n/a".to_string(),
        |f| format!("loss {:.4} accuracy {:.4}", f.loss, f.accuracy),
    )
}

/// `--out` is usable before any training: an existing directory or a name whose nearest existing
/// ancestor is a directory, where a file can be created (checked with a temporary one).
fn check_out(out: &Path) -> Result<()> {
    let mut dir = out;
    loop {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(UsageError::new(format!(
                    "--out {}: {} exists and is not a directory",
                    out.display(),
                    dir.display()
                ))
                .into())
            }
            Err(_) => match dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => dir = p,
                _ => {
                    dir = Path::new(".");
                    break;
                }
            },
        }
    }
    tempfiles::create_in(dir, tempfiles::OUTPUT)
        .map(drop)
        .with_context(|| format!("--out {}: cannot write in {}", out.display(), dir.display()))
}

/// Checks, loads the weights and the images, trains, writes the model directory (and the
/// export), then the checks that can only come after.
pub fn run(args: &FinetuneArgs, quiet: bool) -> Result<Status> {
    check(args)?;
    check_out(&args.out)?;
    check_export(args)?;
    let started = Instant::now();
    let variant = resolve_variant(&args.variant, Head::Logits)?;
    let size = variant.resolution.max(MIN_INPUT);
    let weights_path = resolve_weights_path(&variant, args.weights.as_deref(), &args.net, quiet)?;
    let weights = load_weights_for(&variant, &weights_path)?;
    require_float(&weights, &weights_path, "fine-tuned")?;
    let device = select_device(args.device)?;
    if args.train_backbone && args.batch_size < SMALL_BATCH && !quiet {
        eprintln!(
            "mnv1: warning: --batch-size {} with --train-backbone: batch norm normalises with the statistics of \
             each batch, which are noisy below {SMALL_BATCH} images",
            args.batch_size
        );
    }
    let settings = settings(args, size);
    let mut rng = StdRng::seed_from_u64(args.seed);
    let (classes, train, validation) = scan_data(args, &mut rng, quiet)?;
    if !quiet {
        eprintln!(
            "mnv1: {} classes, {} training and {} validation images; {} {} from {} ({}){}",
            classes.len(),
            train.len(),
            validation.len(),
            variant.id,
            if args.train_backbone {
                "trained whole (batch norm in train mode)"
            } else {
                "frozen, new head only"
            },
            weights_path.display(),
            weights.format,
            if args.augment { ", augmented" } else { "" }
        );
    }
    let prepared = Prepared::load(classes, train, validation, &settings)?;

    // Created before training, so an unwritable directory fails the run at once.
    let summaries = match &args.summaries_dir {
        Some(dir) => Some(
            TrainingSummaries::create(dir)
                .with_context(|| format!("--summaries-dir {}", dir.display()))?,
        ),
        None => None,
    };
    let mut log = EpochLog {
        bar: ProgressBar::hidden(),
        summaries,
        error: None,
        epochs: args.epochs,
        quiet,
    };
    // The model directory is written next to its place and moved there whole at the end, so
    // that an interrupted or failed run leaves no half-written model behind.
    let staging = ModelDirStaging::new(&args.out)?;
    let trained = fine_tune(
        &weights,
        &prepared,
        &settings,
        &device,
        &mut rng,
        &mut |e| log.event(e),
    )?;
    if let (Some(s), Some(v)) = (log.summaries.as_mut(), trained.initial_validation) {
        if let Err(err) = s.initial(v) {
            log.error.get_or_insert(err);
        }
    }

    let source = Source {
        variant: &variant,
        weights_path: &weights_path,
        weights_format: weights.format,
        depth_multiplier: weights.arch.depth_multiplier,
        size,
    };
    let seconds = started.elapsed().as_secs_f64();
    let m = write_model_dir(staging.path(), args, &source, &prepared, &trained, seconds)?;
    staging.commit()?;
    if !quiet {
        eprintln!(
            "mnv1: wrote {} (validation before: {}; after: {})",
            args.out.display(),
            show(m.initial_validation),
            show(m.final_validation)
        );
    }
    if let Some(path) = &args.export {
        // A quantized export is calibrated on the training images.
        let calibrate = args.quantize.map(|_| args.data.as_path());
        super::convert::export_finetuned(&args.out, path, calibrate, quiet)?;
    }
    check_after(args, &m, log.error)?;
    Ok(Status::Ok)
}

/// The model directory's files in `dir`: the weights, labels, the training report and the
/// manifest (last: a directory with a manifest is a complete model).
fn write_model_dir(
    dir: &Path,
    args: &FinetuneArgs,
    source: &Source,
    prepared: &Prepared,
    trained: &crate::train::Trained,
    seconds: f64,
) -> Result<Manifest> {
    let metadata = CanonicalMetadata {
        depth_multiplier: source.depth_multiplier,
        source_format: "mnv1 finetune".to_string(),
        extra: vec![("classes".to_string(), prepared.classes.len().to_string())],
    };
    write_canonical(&trained.tensors, metadata, &dir.join(WEIGHTS_FILE))?;
    manifest::write_labels(dir, &prepared.classes)?;
    let m = manifest(args, source, prepared, trained, seconds);
    report::write(
        dir,
        &ReportInput {
            manifest: &m,
            validation: &prepared.validation,
            predictions: &trained.validation_predictions,
            max_pixels: args.max_pixels,
        },
    )
    .with_context(|| format!("writing {}", args.out.join(report::REPORT_FILE).display()))?;
    m.write(dir)?;
    Ok(m)
}

/// `--export`'s format, and `--quantize` only with a .tflite.
fn check_export(args: &FinetuneArgs) -> Result<()> {
    if let Some(path) = &args.export {
        let format = export::check_target(path, &[export::Format::Tflite, export::Format::Onnx])?;
        if args.quantize.is_some() && format != export::Format::Tflite {
            return Err(UsageError::new(
                "--quantize int8 writes a full-integer .tflite: give --export FILE.tflite",
            )
            .into());
        }
    }
    Ok(())
}

/// The training settings the flags give, at input side `size`.
fn settings(args: &FinetuneArgs, size: usize) -> Settings {
    Settings {
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        optimizer: match args.optimizer {
            OptimizerArg::Sgd => OptimizerKind::Sgd {
                momentum: args.momentum,
            },
            OptimizerArg::Adam => OptimizerKind::Adam,
        },
        bn_momentum: args.bn_momentum,
        train_backbone: args.train_backbone,
        dropout: args.dropout,
        augment: args.augment,
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        size,
        max_pixels: args.max_pixels,
    }
}

/// The class folders' images, split into training and validation (files without an image
/// extension reported, on stderr).
fn scan_data(
    args: &FinetuneArgs,
    rng: &mut StdRng,
    quiet: bool,
) -> Result<(Vec<String>, Vec<data::Example>, Vec<data::Example>)> {
    let data::Scanned {
        classes,
        examples,
        skipped,
    } = data::scan_all(&args.data)?;
    if let (Some(first), false) = (skipped.first(), quiet) {
        eprintln!(
            "mnv1: skipped {} file(s) in {} without an image extension ({}), e.g. {}",
            skipped.len(),
            crate::output::shown_path(&args.data),
            crate::inputs::EXTENSIONS.join(", "),
            crate::output::shown_path(first)
        );
    }
    let (train, validation) = data::split(&examples, classes.len(), args.validation_split, rng);
    Ok((classes, train, validation))
}

/// What training shows as it goes: a progress bar per epoch, a line per epoch, and the
/// TensorBoard summaries (a failure to write them is kept for the end: training goes on).
struct EpochLog {
    bar: ProgressBar,
    summaries: Option<TrainingSummaries>,
    error: Option<std::io::Error>,
    epochs: usize,
    quiet: bool,
}

impl EpochLog {
    fn event(&mut self, event: Event) {
        match event {
            Event::EpochStart { epoch, batches } => {
                self.bar = epoch_bar(batches, epoch, self.epochs, self.quiet)
            }
            Event::Batch { loss, accuracy } => {
                self.bar
                    .set_message(format!("loss {loss:.4} accuracy {accuracy:.4}"));
                self.bar.inc(1);
            }
            Event::EpochEnd(e) => {
                self.bar.finish_and_clear();
                if let Some(s) = self.summaries.as_mut() {
                    if let Err(err) = s.epoch(e) {
                        self.error.get_or_insert(err);
                        self.summaries = None;
                    }
                }
                if !self.quiet {
                    eprintln!(
                        "epoch {}/{}: train {}; validation {} ({:.2} s)",
                        e.epoch,
                        self.epochs,
                        show(Some(e.train)),
                        show(e.validation),
                        e.seconds
                    );
                }
            }
        }
    }
}

/// Where the fine-tuned weights came from, for the manifest.
struct Source<'a> {
    variant: &'a crate::registry::Variant,
    weights_path: &'a Path,
    weights_format: &'a str,
    depth_multiplier: f64,
    size: usize,
}

/// The model directory's manifest.json.
fn manifest(
    args: &FinetuneArgs,
    source: &Source,
    prepared: &Prepared,
    trained: &crate::train::Trained,
    seconds: f64,
) -> Manifest {
    Manifest {
        format: FORMAT.to_string(),
        variant: source.variant.id.clone(),
        depth_multiplier: source.depth_multiplier,
        input_size: source.size,
        classes: prepared.classes.clone(),
        preprocessing: Preprocessing {
            crop: "central".into(),
            central_fraction: DEFAULT_CENTRAL_FRACTION as f64,
            resize: "TF1 resize_bilinear (align_corners=False, half_pixel_centers=False)".into(),
            input_range: "[0,1], mapped to x*2-1 inside the network".into(),
        },
        training: Training {
            weights_source: source.weights_path.display().to_string(),
            weights_format: source.weights_format.to_string(),
            epochs: args.epochs,
            batch_size: args.batch_size,
            learning_rate: args.learning_rate,
            optimizer: format!("{:?}", args.optimizer).to_lowercase(),
            momentum: (args.optimizer == OptimizerArg::Sgd).then_some(args.momentum),
            bn_momentum: args.bn_momentum,
            train_backbone: args.train_backbone,
            dropout: args.dropout,
            validation_split: args.validation_split,
            augment: args.augment,
            seed: args.seed,
            train_images: prepared.train.len(),
            validation_images: prepared.validation.len(),
            seconds,
        },
        history: trained.history.clone(),
        initial_validation: trained.initial_validation,
        final_validation: trained.final_validation,
    }
}

/// What fails a run whose model is written: summaries that could not be written, and
/// `--assert-accuracy-at-least`.
fn check_after(
    args: &FinetuneArgs,
    m: &Manifest,
    summaries_error: Option<std::io::Error>,
) -> Result<()> {
    if let Some(err) = summaries_error {
        bail!(
            "writing TensorBoard summaries to {}: {err}",
            args.summaries_dir
                .as_deref()
                .unwrap_or(Path::new(""))
                .display()
        );
    }
    if let Some(min) = args.assert_accuracy_at_least {
        match m.final_validation {
            None => bail!("--assert-accuracy-at-least {min}: there is no validation set (--validation-split 0)"),
            Some(f) if f.accuracy < min => {
                bail!("final validation accuracy {:.4} is below --assert-accuracy-at-least {min}", f.accuracy)
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A model directory being written: a hidden temporary directory beside `MODEL_DIR`, removed
/// if the run fails or is interrupted, renamed into place by `commit`.
struct ModelDirStaging {
    target: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl ModelDirStaging {
    fn new(target: &Path) -> Result<Self> {
        if target.exists() && !is_replaceable(target) {
            return Err(UsageError::new(format!(
                "{} exists and is not an mnv1 model directory (no {MANIFEST_FILE}); refusing to replace it",
                target.display()
            ))
            .into());
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        let name = target
            .file_name()
            .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{name}.partial-"))
            .tempdir_in(&parent)
            .with_context(|| format!("creating a directory in {}", parent.display()))?;
        crate::interrupt::register(dir.path());
        Ok(Self {
            target: target.to_path_buf(),
            dir: Some(dir),
        })
    }

    fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(self.target.as_path(), |d| d.path())
    }

    /// Moves the finished directory to `MODEL_DIR`, replacing an earlier model there.
    fn commit(mut self) -> Result<()> {
        let Some(dir) = self.dir.take() else {
            return Ok(());
        };
        // Still registered with the interrupt handler until it has been moved.
        let staged = dir.keep();
        let mut old = None;
        if self.target.exists() {
            let aside = staged.with_extension("old");
            std::fs::rename(&self.target, &aside)
                .with_context(|| format!("moving the earlier {} aside", self.target.display()))?;
            old = Some(aside);
        }
        if let Err(e) = std::fs::rename(&staged, &self.target) {
            if let Some(aside) = &old {
                let _ = std::fs::rename(aside, &self.target);
            }
            let _ = std::fs::remove_dir_all(&staged);
            crate::interrupt::unregister(&staged);
            return Err(e)
                .with_context(|| format!("moving the model to {}", self.target.display()));
        }
        crate::interrupt::unregister(&staged);
        if let Some(aside) = old {
            let _ = std::fs::remove_dir_all(aside);
        }
        Ok(())
    }
}

impl Drop for ModelDirStaging {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            crate::interrupt::unregister(d.path());
        }
    }
}

/// An existing `MODEL_DIR` may be replaced when it is an empty directory or an earlier model.
fn is_replaceable(dir: &Path) -> bool {
    dir.is_dir()
        && (dir.join(MANIFEST_FILE).is_file()
            || std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none()))
}
