//! `mnv1 classify`: top-k ImageNet labels per image.

use anyhow::Result;

use std::io;
use std::path::Path;

use super::image_run::{ImageRun, Results};
use super::Status;
use crate::cli::ClassifyArgs;
use crate::engine::{Engine, Head};
use crate::error::UsageError;
use crate::model::NUM_CLASSES;
use crate::output::parts::Parts;
use crate::output::ClassifyFormat;
use crate::output::{top_k, ClassifyWriter, Sink};
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
    let run = ImageRun::new(
        &args.model,
        Head::Logits,
        scale,
        &args.inputs,
        &outputs,
        format.extension(),
        quiet,
    )?;
    let (config, engine, len) = (&run.config, &run.engine, run.len);
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
    let writer = match format {
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
        f => Writer::Table(match &run.out_dir {
            Some(dir) => Parts::per_shard(dir.clone(), move |p| ClassifyWriter::new(f, Some(p))),
            None => Parts::single(ClassifyWriter::new(f, args.out.as_deref())?),
        }),
    };
    let mut results = Classified {
        writer,
        engine,
        labels: &labels,
        k,
    };
    let summary = run.drive(&mut results)?;
    match results.writer {
        Writer::Table(parts) => parts.finish(summary.all_inputs(config.fail_fast))?,
        Writer::Sheet(s) => engine.install(|| s.finish())?,
    }
    Ok(run.end(summary))
}

/// The table formats and Parquet (one output, or one per tar shard), or the HTML contact sheet.
enum Writer {
    Table(Parts<ClassifyWriter>),
    Sheet(ContactSheet),
}

/// Each result's top `k` to the writer.
struct Classified<'a> {
    writer: Writer,
    engine: &'a Engine,
    labels: &'a [String],
    k: usize,
}

impl Results for Classified<'_> {
    fn done(&mut self, name: &str, row: &[f32], shard: Option<&Path>) -> io::Result<()> {
        let top = top_k(row, self.k, self.labels);
        match &mut self.writer {
            Writer::Table(parts) => parts.writer(shard)?.write(name, &top),
            // Thumbnails are made on the engine's threads, not a second pool.
            Writer::Sheet(s) => self.engine.install(|| s.done(name, &top)),
        }
    }

    fn failed(&mut self, path: &Path, reason: &str) -> io::Result<()> {
        match &mut self.writer {
            Writer::Table(parts) => {
                parts.failed(path);
                Ok(())
            }
            Writer::Sheet(s) => s.failed(path, reason),
        }
    }

    fn end_shard(&mut self, shard: &Path) -> io::Result<()> {
        match &mut self.writer {
            Writer::Table(parts) => parts.end_shard(shard),
            Writer::Sheet(_) => Ok(()),
        }
    }
}
