//! `mnv1 embed`: feature vectors per image, to .npy / .npz / JSON lines.

use anyhow::Result;

use super::{input_stream, progress, report_failure, Status};
use crate::cli::EmbedArgs;
use crate::config::ModelConfig;
use crate::engine::Head;
use crate::error::UsageError;
use crate::output::{EmbedFormat, EmbedWriter};
use crate::pipeline::{Outcome, Pipeline};

pub fn run(args: &EmbedArgs, quiet: bool) -> Result<Status> {
    let format = match &args.out {
        None => EmbedFormat::Jsonl,
        Some(out) => EmbedFormat::from_path(out).ok_or_else(|| {
            UsageError::new(format!(
                "--out {}: name it .npy, .npz or .jsonl to choose the format",
                out.display()
            ))
        })?,
    };
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
    let config = ModelConfig::resolve_quiet(&args.model, Head::Features, quiet)?;
    let engine = config.load_engine(Head::Features)?;
    let mut writer = EmbedWriter::new(format, args.out.as_deref(), engine.arch().feature_dim())?;
    let (items, len) = input_stream(&args.inputs, &outputs);
    let bar = progress(len, quiet);
    let pipeline = Pipeline {
        engine: &engine,
        preprocess: &config.preprocess,
        head: Head::Features,
        batch_size: config.batch_size,
        fail_fast: config.fail_fast,
    };
    let summary = pipeline.run(items, |outcome| -> std::io::Result<()> {
        bar.inc(1);
        match outcome {
            Outcome::Done { name, row } => writer.write(name, row),
            Outcome::Failed { path, reason } => {
                report_failure(&bar, path, reason);
                Ok(())
            }
        }
    })?;
    bar.finish_and_clear();
    writer.finish()?;
    Ok(summary.into())
}
