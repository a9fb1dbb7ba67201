//! What `classify` and `embed` share: the outputs checked against the inputs and `--out-dir`,
//! the model resolved and loaded, the inputs as a stream for this `--shard` part, and the
//! pipeline driven under a progress bar, each failure reported on stderr. A command brings
//! only its writer ([`Results`]).

use std::cell::Cell;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;

use super::{check_out_dir, input_stream, progress, report_failure, report_skipped, Status};
use crate::cli::{ModelArgs, ScaleArgs};
use crate::config::ModelConfig;
use crate::engine::{Engine, Head};
use crate::inputs::InputItem;
use crate::output::parts::OutDir;
use crate::pipeline::{Outcome, Pipeline, Summary};

type Items = Box<dyn Iterator<Item = InputItem> + Send>;

/// Where a command's results go, one call per outcome.
pub trait Results {
    /// An input's row (logits or features); `shard` the tar shard it came from.
    fn done(&mut self, name: &str, row: &[f32], shard: Option<&Path>) -> io::Result<()>;
    /// An input that failed (already reported on stderr).
    fn failed(&mut self, path: &Path, reason: &str) -> io::Result<()>;
    /// Every outcome of tar shard `shard` has been given.
    fn end_shard(&mut self, shard: &Path) -> io::Result<()>;
}

/// A run over images, set up and ready to drive.
pub struct ImageRun {
    pub config: ModelConfig,
    pub engine: Engine,
    /// With `--out-dir`, where the outputs go (one per tar shard or part).
    pub out_dir: Option<Arc<OutDir>>,
    /// How many images, where known before the run (not for stdin or tar shards).
    pub len: Option<usize>,
    /// Taken by `drive` (a Cell, so that results may borrow the engine meanwhile).
    items: Cell<Option<Items>>,
    quiet: bool,
}

impl ImageRun {
    /// Refuses `outputs` among `inputs` and an `--out-dir` that is not a directory (before
    /// the model loads), then loads the model up to `head` and lists the inputs; `ext` is the
    /// extension of `--out-dir`'s files.
    pub fn new(
        model: &ModelArgs,
        head: Head,
        scale: &ScaleArgs,
        inputs: &[PathBuf],
        outputs: &[&Path],
        ext: &'static str,
        quiet: bool,
    ) -> Result<Self> {
        crate::inputs::refuse_outputs_among_inputs(outputs, inputs)?;
        check_out_dir(scale)?;
        let config = ModelConfig::resolve_quiet(model, head, quiet)?;
        let engine = config.load_engine(head)?;
        let (part, out_dir) = super::scale_out(scale, ext)?;
        let (items, len) = input_stream(inputs, outputs, part, out_dir.as_ref());
        Ok(Self {
            config,
            engine,
            out_dir,
            len,
            items: Cell::new(Some(items)),
            quiet,
        })
    }

    /// Runs every input through the model into `results`, under a progress bar.
    pub fn drive(&self, results: &mut impl Results) -> io::Result<Summary> {
        let bar = progress(self.len, self.quiet);
        let pipeline = Pipeline {
            engine: &self.engine,
            preprocess: &self.config.preprocess,
            batch_size: self.config.batch_size,
            fail_fast: self.config.fail_fast,
        };
        let items: Items = self
            .items
            .take()
            .unwrap_or_else(|| Box::new(std::iter::empty()));
        let summary = pipeline.run(items, |outcome| match outcome {
            Outcome::Done { name, row, shard } => {
                bar.inc(1);
                results.done(name, row, shard)
            }
            Outcome::Failed { path, reason } => {
                bar.inc(1);
                report_failure(&bar, path, reason);
                results.failed(path, reason)
            }
            Outcome::ShardEnd(shard) => results.end_shard(shard),
        })?;
        bar.finish_and_clear();
        Ok(summary)
    }

    /// The run's status, once its outputs are complete; says how many `--out-dir` outputs
    /// were already complete.
    pub fn end(&self, summary: Summary) -> Status {
        report_skipped(self.out_dir.as_ref(), self.quiet);
        summary.into()
    }
}
