use std::process::ExitCode;

use clap::Parser;

use mnv1::cli::{Cli, Command};
use mnv1::commands::{self, Status};
use mnv1::error::{exit_code, exit_codes, is_broken_pipe, message};

fn run(cli: &Cli) -> anyhow::Result<Status> {
    match &cli.command {
        Command::Classify(a) => commands::classify::run(a, cli.quiet),
        Command::Embed(a) => commands::embed::run(a, cli.quiet),
        Command::List(a) => commands::list::run(a),
        Command::Convert(a) => commands::convert::run(a, cli.quiet),
        Command::Completions { shell } => commands::shell::completions(*shell),
        Command::Man => commands::shell::man(),
        Command::Fetch(a) => commands::fetch::run(a, cli.quiet),
        Command::Cache(c) => commands::cache::run(c, cli.quiet),
        Command::Finetune(a) => commands::finetune::run(a, cli.quiet),
        Command::Bench(a) => commands::bench::run(a, cli.quiet),
    }
}

/// Parses the command line, runs the command, and maps the outcome to the exit code.
fn main() -> ExitCode {
    let cli = Cli::parse();
    mnv1::interrupt::install();
    let code = match run(&cli) {
        Ok(Status::Ok) => exit_codes::SUCCESS,
        Ok(Status::SomeFailed) => exit_codes::SOME_FAILED,
        Err(e) if is_broken_pipe(&e) => exit_codes::SUCCESS,
        Err(e) => {
            eprintln!("mnv1: {}", mnv1::output::escape_controls(&message(&e)));
            exit_code(&e)
        }
    };
    ExitCode::from(code)
}
