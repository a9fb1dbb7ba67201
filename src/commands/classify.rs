//! `mnv1 classify`: top-k ImageNet labels per image.

use anyhow::Result;

use super::{input_stream, progress, report_failure, report_skipped, Status};
use crate::cli::ClassifyArgs;
use crate::config::ModelConfig;
use crate::engine::Head;
use crate::error::UsageError;
use crate::model::NUM_CLASSES;
use crate::output::parts::Parts;
use crate::output::ClassifyFormat;
use crate::output::{top_k, ClassifyWriter, Sink};
use crate::pipeline::{Outcome, Pipeline};
use crate::report::contact_sheet::{ContactSheet, SheetOptions};

const DEFAULT_TOP_K: usize = 5;

pub fn run(args: &ClassifyArgs, quiet: bool) -> Result<Status> {
    if let Some(k) = args.top_k.filter(|&k| k == 0 || k > NUM_CLASSES) {
        return Err(UsageError::new(format!(
            "--top-k must be between 1 and {NUM_CLASSES}, not {k}"
        ))
        .into());
    }
    let format = args.format();
    let scale = &args.scale;
    if scale.out_dir.is_some() && format == ClassifyFormat::Html {
        return Err(UsageError::new(
            "the html contact sheet is one page: write it with --out, not --out-dir",
        )
        .into());
    }
    if format == ClassifyFormat::Parquet && args.out.is_none() && scale.out_dir.is_none() {
        return Err(UsageError::new(
            "parquet is written to a file: give --out FILE.parquet or --out-dir DIR",
        )
        .into());
    }
    let outputs: Vec<&std::path::Path> = args.out.as_deref().into_iter().collect();
    crate::inputs::refuse_outputs_among_inputs(&outputs, &args.inputs)?;
    super::check_out_dir(scale)?;
    let config = ModelConfig::resolve_quiet(&args.model, Head::Logits, quiet)?;
    let engine = config.load_engine(Head::Logits)?;
    let labels = config.labels();
    // A fine-tuned model may have fewer classes than the default 5.
    let classes = engine.out_dim();
    let k = match args.top_k {
        Some(k) if k > classes => {
            return Err(UsageError::new(format!(
                "--top-k must be between 1 and {classes} for this model, not {k}"
            ))
            .into())
        }
        Some(k) => k,
        None => DEFAULT_TOP_K.min(classes),
    };
    let (part, out_dir) = super::scale_out(scale, format.extension())?;
    let (items, len) = input_stream(&args.inputs, &outputs, part, out_dir.as_ref());
    let mut writer = match format {
        ClassifyFormat::Html => Writer::Sheet(ContactSheet::new(
            Sink::open(args.out.as_deref())?,
            SheetOptions {
                title: match len {
                    Some(n) => format!("mnv1 classify: {n} images"),
                    None => "mnv1 classify: images listed on stdin".to_string(),
                },
                subtitle: format!(
                    "MobileNet V1 {}{} · top {k}",
                    config.variant.id,
                    args.model
                        .model
                        .as_deref()
                        .map(|m| format!(" fine-tuned ({})", m.display()))
                        .unwrap_or_default()
                ),
                embed_limit: args.sheet_embed,
                max_pixels: args.model.max_pixels,
                page_dir: args
                    .out
                    .as_deref()
                    .and_then(|p| p.parent())
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new("."))
                    .to_path_buf(),
            },
        )?),
        f => Writer::Table(match &out_dir {
            Some(dir) => Parts::per_shard(dir.clone(), move |p| ClassifyWriter::new(f, Some(p))),
            None => Parts::single(ClassifyWriter::new(f, args.out.as_deref())?),
        }),
    };
    let bar = progress(len, quiet);
    let pipeline = Pipeline {
        engine: &engine,
        preprocess: &config.preprocess,
        batch_size: config.batch_size,
        fail_fast: config.fail_fast,
    };
    let summary = pipeline.run(items, |outcome| -> std::io::Result<()> {
        match outcome {
            Outcome::Done { name, row, shard } => {
                bar.inc(1);
                let top = top_k(row, k, &labels);
                match &mut writer {
                    Writer::Table(parts) => parts.writer(shard)?.write(name, &top),
                    // Thumbnails are made on the engine's threads, not a second pool.
                    Writer::Sheet(s) => engine.install(|| s.done(name, &top)),
                }
            }
            Outcome::Failed { path, reason } => {
                bar.inc(1);
                report_failure(&bar, path, reason);
                match &mut writer {
                    Writer::Table(parts) => {
                        parts.failed(path);
                        Ok(())
                    }
                    Writer::Sheet(s) => s.failed(path, reason),
                }
            }
            Outcome::ShardEnd(shard) => match &mut writer {
                Writer::Table(parts) => parts.end_shard(shard),
                Writer::Sheet(_) => Ok(()),
            },
        }
    })?;
    bar.finish_and_clear();
    match writer {
        Writer::Table(parts) => parts.finish(summary.all_inputs(config.fail_fast))?,
        Writer::Sheet(s) => engine.install(|| s.finish())?,
    }
    report_skipped(out_dir.as_ref(), quiet);
    Ok(summary.into())
}

/// The table formats and Parquet (one output, or one per tar shard), or the HTML contact sheet.
enum Writer {
    Table(Parts<ClassifyWriter>),
    Sheet(ContactSheet),
}
