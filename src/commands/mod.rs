//! One module per subcommand; each returns whether every input succeeded.

pub mod bench;
pub mod cache;
pub mod classify;
pub mod convert;
pub mod embed;
pub mod fetch;
pub mod finetune;
pub mod list;
pub mod shell;

use std::io::IsTerminal;
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

use crate::inputs::{InputItem, Inputs};
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

/// The INPUT arguments as a stream of files (any of `outputs` among them fails). Without `-` the
/// list is made up front (its length drives the progress bar); with `-`, stdin's paths are taken
/// as they arrive.
pub fn input_stream(
    args: &[std::path::PathBuf],
    outputs: &[&Path],
) -> (Box<dyn Iterator<Item = InputItem> + Send>, Option<usize>) {
    let stdin = std::io::BufReader::new(std::io::stdin());
    let items = Inputs::new(args, stdin, outputs);
    if args.iter().any(|a| a.as_os_str() == "-") {
        (Box::new(items), None)
    } else {
        let all: Vec<InputItem> = items.collect();
        let n = all.len();
        (Box::new(all.into_iter()), Some(n))
    }
}

/// One line per failed input, on stderr, above any progress bar.
pub fn report_failure(bar: &ProgressBar, path: &Path, reason: &str) {
    let name = path.display().to_string();
    bar.suspend(|| eprintln!("mnv1: {}: {reason}", crate::output::text_safe(&name)));
}
