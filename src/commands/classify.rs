//! `mnv1 classify`: top-k ImageNet labels per image.

use anyhow::Result;

use super::{progress, report_failure, Status};
use crate::cli::ClassifyArgs;
use crate::config::ModelConfig;
use crate::engine::Head;
use crate::error::UsageError;
use crate::inputs;
use crate::model::NUM_CLASSES;
use crate::output::{top_k, ClassifyWriter, Sink};
use crate::pipeline::{Outcome, Pipeline};

const DEFAULT_TOP_K: usize = 5;

pub fn run(args: &ClassifyArgs, quiet: bool) -> Result<Status> {
    if let Some(k) = args.top_k.filter(|&k| k == 0 || k > NUM_CLASSES) {
        return Err(UsageError::new(format!(
            "--top-k must be between 1 and {NUM_CLASSES}, not {k}"
        ))
        .into());
    }
    let config = ModelConfig::resolve_quiet(&args.model, Head::Logits, quiet)?;
    let engine = config.load_engine(Head::Logits)?;
    let labels = config.labels();
    // A fine-tuned model may have fewer classes than the default 5.
    let classes = engine.num_classes();
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
    let items = inputs::expand(&args.inputs, &mut std::io::stdin().lock());
    let mut writer = ClassifyWriter::new(args.format, Sink::open(args.out.as_deref())?)?;
    let bar = progress(items.len(), quiet);
    let pipeline = Pipeline {
        engine: &engine,
        preprocess: &config.preprocess,
        head: Head::Logits,
        batch_size: config.batch_size,
        fail_fast: config.fail_fast,
    };
    let summary = pipeline.run(&items, |outcome| -> std::io::Result<()> {
        match outcome {
            Outcome::Done { name, row } => {
                bar.inc(1);
                writer.write(name, &top_k(row, k, &labels))
            }
            Outcome::Failed { path, reason } => {
                bar.inc(1);
                report_failure(&bar, path, reason);
                Ok(())
            }
        }
    })?;
    bar.finish_and_clear();
    writer.finish()?;
    Ok(summary.into())
}
