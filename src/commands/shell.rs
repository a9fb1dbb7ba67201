//! `mnv1 completions SHELL` and `mnv1 man`: generated from the clap definitions.

use std::io::Write;

use anyhow::Result;
use clap::CommandFactory;

use super::Status;
use crate::cli::Cli;

pub fn completions(shell: clap_complete::Shell) -> Result<Status> {
    // clap_complete panics when its writer fails (a closed pipe): it writes to memory here, and
    // the write to stdout reports its error like every other command.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "mnv1", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(Status::Ok)
}

pub fn man() -> Result<Status> {
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    out.flush()?;
    Ok(Status::Ok)
}
