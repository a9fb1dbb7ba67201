//! One module per subcommand; each returns whether every input succeeded.

pub mod bench;
pub mod cache;
pub mod classify;
pub mod convert;
pub mod embed;
pub mod fetch;
pub mod finetune;
pub mod image_run;
pub mod list;
pub mod shell;

use std::io::IsTerminal;
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

use std::sync::Arc;

use crate::inputs::split::Part;
use crate::inputs::tar_shard::is_tar;
use crate::inputs::{InputItem, Inputs, Listed};
use crate::output::parts::OutDir;
use crate::pipeline::Summary;

/// How a run ended: every input done, or some failed (their errors already on stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    SomeFailed,
}

impl From<Summary> for Status {
    fn from(s: Summary) -> Self {
        if s.failed == 0 {
            Status::Ok
        } else {
            Status::SomeFailed
        }
    }
}

/// A progress bar on stderr for multi-file runs, only when stderr is a terminal; `len` is None
/// while the inputs are still arriving (paths on stdin): then a running count.
pub fn progress(len: Option<usize>, quiet: bool) -> ProgressBar {
    if quiet || len.is_some_and(|n| n < 2) || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(n) => (
            ProgressBar::new(n as u64),
            "{spinner} {pos}/{len} images [{elapsed_precise}] {wide_bar} {per_sec} eta {eta}",
        ),
        None => (
            ProgressBar::no_length(),
            "{spinner} {pos} images [{elapsed_precise}] {per_sec}",
        ),
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// This run's `--shard` part and, with `--out-dir`, the directory its outputs (`.ext`) go to.
pub fn scale_out(
    scale: &crate::cli::ScaleArgs,
    ext: &'static str,
) -> std::io::Result<(Part, Option<Arc<OutDir>>)> {
    let part = scale.shard.unwrap_or(Part::ALL);
    let out_dir = scale
        .out_dir
        .as_deref()
        .map(|dir| OutDir::new(dir, ext, part, scale.overwrite).map(Arc::new))
        .transpose()?;
    Ok((part, out_dir))
}

/// `--out-dir` naming something that is not a directory: a usage error, before any work
/// (creating the directory would only say "File exists", after the model had loaded).
pub fn check_out_dir(scale: &crate::cli::ScaleArgs) -> anyhow::Result<()> {
    match scale.out_dir.as_deref() {
        Some(dir) if dir.exists() && !dir.is_dir() => Err(crate::error::UsageError::new(format!(
            "--out-dir {}: not a directory",
            crate::output::shown_path(dir)
        ))
        .into()),
        _ => Ok(()),
    }
}

/// The INPUT arguments as a stream of work: listed (any of `outputs` among them fails), cut to
/// this `--shard` part, without the inputs of complete `--out-dir` outputs, and tar shards
/// opened into their members. Without `-` the listing is made up front (its length drives the
/// progress bar, unless tar shards make the count of images unknown); with `-`, stdin's paths
/// are taken as they arrive.
pub fn input_stream(
    args: &[std::path::PathBuf],
    outputs: &[&Path],
    part: Part,
    out_dir: Option<&Arc<OutDir>>,
) -> (Box<dyn Iterator<Item = InputItem> + Send>, Option<usize>) {
    let stdin = std::io::BufReader::new(std::io::stdin());
    let listed = part.select(Inputs::new(args, stdin, outputs));
    let listed: Box<dyn Iterator<Item = Listed> + Send> = match out_dir {
        Some(dir) => Box::new(dir.pending(listed)),
        None => Box::new(listed),
    };
    if args.iter().any(|a| a.as_os_str() == "-") {
        (Box::new(crate::inputs::items(listed)), None)
    } else {
        let all: Vec<Listed> = listed.collect();
        let shards = all.iter().any(|l| matches!(l, Ok(p) if is_tar(p)));
        let n = (!shards).then_some(all.len());
        (Box::new(crate::inputs::items(all.into_iter())), n)
    }
}

/// With `--out-dir`, how many outputs were already complete (on stderr, so that a resumed run
/// says why it did less).
pub fn report_skipped(out_dir: Option<&Arc<OutDir>>, quiet: bool) {
    if let Some(dir) = out_dir.filter(|d| d.skipped() > 0 && !quiet) {
        eprintln!(
            "mnv1: {} output(s) in {} were already complete: their inputs were skipped \
             (--overwrite redoes them)",
            dir.skipped(),
            dir.dir().display()
        );
    }
}

/// One line per failed input, on stderr, above any progress bar.
/// The reason may quote the input's own bytes (a damaged tar header, a decoder's message): its
/// control characters are escaped, so no input can write raw escape codes to a terminal.
pub fn report_failure(bar: &ProgressBar, path: &Path, reason: &str) {
    let name = path.display().to_string();
    bar.suspend(|| {
        eprintln!(
            "mnv1: {}: {}",
            crate::output::text_safe(&name),
            crate::output::escape_controls(reason)
        )
    });
}
