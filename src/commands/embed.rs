//! `mnv1 embed`: feature vectors per image, to .npy / .npz / JSON lines / Parquet.

use anyhow::Result;

use super::{input_stream, progress, report_failure, report_skipped, Status};
use crate::cli::EmbedArgs;
use crate::config::ModelConfig;
use crate::engine::Head;
use crate::error::UsageError;
use crate::output::parts::Parts;
use crate::output::EmbedFormat;
use crate::output::EmbedWriter;
use crate::pipeline::{Outcome, Pipeline};

pub fn run(args: &EmbedArgs, quiet: bool) -> Result<Status> {
    let scale = &args.scale;
    let format = match (args.format, &args.out) {
        (Some(f), _) => f,
        (None, Some(out)) => EmbedFormat::from_path(out).ok_or_else(|| {
            UsageError::new(format!(
                "--out {}: name it .npy, .npz, .jsonl or .parquet, or give --format",
                out.display()
            ))
        })?,
        (None, None) if scale.out_dir.is_some() => EmbedFormat::Parquet,
        (None, None) => EmbedFormat::Jsonl,
    };
    if format != EmbedFormat::Jsonl && args.out.is_none() && scale.out_dir.is_none() {
        return Err(UsageError::new(format!(
            "{} is written to a file: give --out or --out-dir",
            format.extension()
        ))
        .into());
    }
    let txt = args
        .out
        .as_deref()
        .filter(|_| format == EmbedFormat::Npy)
        .map(crate::output::paths_txt);
    let outputs: Vec<&std::path::Path> = args
        .out
        .as_deref()
        .into_iter()
        .chain(txt.as_deref())
        .collect();
    crate::inputs::refuse_outputs_among_inputs(&outputs, &args.inputs)?;
    super::check_out_dir(scale)?;
    if let Some(dir) = scale
        .out_dir
        .as_deref()
        .filter(|_| format == EmbedFormat::Npy)
    {
        // .npy outputs inside an input directory would be read as inputs by the next run.
        crate::inputs::refuse_dir_among_inputs(dir, &args.inputs)?;
    }
    let config = ModelConfig::resolve_quiet(&args.model, Head::Features, quiet)?;
    let engine = config.load_engine(Head::Features)?;
    let dim = engine.arch().feature_dim();
    let (part, out_dir) = super::scale_out(scale, format.extension())?;
    let mut parts = match &out_dir {
        Some(dir) => Parts::per_shard(dir.clone(), move |p| EmbedWriter::new(format, Some(p), dim)),
        None => Parts::single(EmbedWriter::new(format, args.out.as_deref(), dim)?),
    };
    let (items, len) = input_stream(&args.inputs, &outputs, part, out_dir.as_ref());
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
                parts.writer(shard)?.write(name, row)
            }
            Outcome::Failed { path, reason } => {
                bar.inc(1);
                report_failure(&bar, path, reason);
                parts.failed(path);
                Ok(())
            }
            Outcome::ShardEnd(shard) => parts.end_shard(shard),
        }
    })?;
    bar.finish_and_clear();
    parts.finish(summary.all_inputs(config.fail_fast))?;
    report_skipped(out_dir.as_ref(), quiet);
    Ok(summary.into())
}
