//! `mnv1 completions SHELL` and `mnv1 man`: generated from the clap definitions.

use anyhow::Result;
use clap::CommandFactory;

use super::Status;
use crate::cli::Cli;

pub fn completions(shell: clap_complete::Shell) -> Result<Status> {
    clap_complete::generate(shell, &mut Cli::command(), "mnv1", &mut std::io::stdout());
    Ok(Status::Ok)
}

pub fn man() -> Result<Status> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
    Ok(Status::Ok)
}
