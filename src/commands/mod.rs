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

/// A progress bar on stderr for multi-file runs, only when stderr is a terminal.
pub fn progress(len: usize, quiet: bool) -> ProgressBar {
    if quiet || len < 2 || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {pos}/{len} images [{elapsed_precise}] {wide_bar} {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// One line per failed input, on stderr, above any progress bar.
pub fn report_failure(bar: &ProgressBar, path: &Path, reason: &str) {
    let name = path.display().to_string();
    bar.suspend(|| eprintln!("mnv1: {}: {reason}", crate::output::text_safe(&name)));
}
