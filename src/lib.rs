//! mnv1: Google's MobileNet V1 image models on candle. The binary (`src/main.rs`) is a thin
//! shell over [`main`]; data flows one way: inputs -> preprocess -> model -> output.
//!
//! The library's surface is small: load weights ([`load_weights`]: any format mnv1 reads),
//! preprocess an image as TF-Slim's eval does ([`preprocess_image`]), and run the network on a
//! device ([`Engine`]) up to its logits or its features ([`Head`]). Everything else is the
//! command line's; tests, benches, examples and the fuzz targets reach it through the hidden
//! [`testing`] module.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let weights = mnv1::load_weights("mobilenet_v1_0.25_128.tflite".as_ref())?;
//! let engine = mnv1::Engine::new(&weights, mnv1::Head::Logits, candle_core::Device::Cpu)?;
//! let image = mnv1::preprocess_image(
//!     &std::fs::read("cat.jpg")?,
//!     &mnv1::Preprocess {
//!         size: (128, 128),
//!         crop: mnv1::Crop::Central(0.875),
//!         max_pixels: 1 << 26,
//!     },
//! )?;
//! let logits = &engine.run(&[&image])?[0]; // 1001 ImageNet logits
//! # Ok(())
//! # }
//! ```

// Every unsafe operation in its own block with a `// SAFETY:` argument, in `unsafe fn` too.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod atomic;
mod cache;
mod cli;
mod commands;
mod config;
mod engine;
mod error;
mod export;
mod hub;
mod inputs;
mod interrupt;
mod labels;
mod model;
mod output;
mod pipeline;
mod preprocess;
mod quantize;
mod registry;
mod report;
mod tempfiles;
mod train;
mod weights;

pub use engine::{default_threads, Engine, Head};
pub use error::UsageError;
pub use model::{Arch, ModelError, Precision};
pub use preprocess::{preprocess_image, Crop, Preprocess, PreprocessError, Rgb32};
pub use weights::{load as load_weights, Weights, WeightsError};

use std::process::ExitCode;

/// The command line: parses it, runs the command, and maps the outcome to the exit code (0 all
/// done, 1 some inputs or the run failed, 2 wrong usage; `error.rs`).
pub fn main() -> ExitCode {
    use clap::Parser;
    use cli::{Cli, Command};
    use commands::Status;
    use error::{exit_code, exit_codes, is_broken_pipe, message};

    let cli = Cli::parse();
    interrupt::install();
    let quiet = cli.quiet;
    let outcome = match &cli.command {
        Command::Classify(a) => commands::classify::run(a, quiet),
        Command::Embed(a) => commands::embed::run(a, quiet),
        Command::List(a) => commands::list::run(a),
        Command::Convert(a) => commands::convert::run(a, quiet),
        Command::Completions { shell } => commands::shell::completions(*shell),
        Command::Man => commands::shell::man(),
        Command::Fetch(a) => commands::fetch::run(a, quiet),
        Command::Cache(c) => commands::cache::run(c, quiet),
        Command::Finetune(a) => commands::finetune::run(a, quiet),
        Command::Bench(a) => commands::bench::run(a, quiet),
    };
    let code = match outcome {
        Ok(Status::Ok) => exit_codes::SUCCESS,
        Ok(Status::SomeFailed) => exit_codes::SOME_FAILED,
        Err(e) if is_broken_pipe(&e) => exit_codes::SUCCESS,
        Err(e) => {
            eprintln!("mnv1: {}", output::escape_controls(&message(&e)));
            exit_code(&e)
        }
    };
    ExitCode::from(code)
}

/// The internals, for the crate's own tests, benches, examples and fuzz targets (not a stable
/// interface): each module as it is inside the crate.
#[doc(hidden)]
pub mod testing {
    pub mod hub {
        pub use crate::hub::*;
    }
    pub mod inputs {
        pub use crate::inputs::*;
    }
    pub mod labels {
        pub use crate::labels::*;
    }
    pub mod model {
        pub use crate::model::*;
    }
    pub mod output {
        pub use crate::output::*;
    }
    pub mod preprocess {
        pub use crate::preprocess::*;
    }
    pub mod quantize {
        pub use crate::quantize::*;
    }
    pub mod registry {
        pub use crate::registry::*;
    }
    pub mod report {
        pub use crate::report::*;
    }
    pub mod train {
        pub use crate::train::*;
    }
    pub mod weights {
        pub use crate::weights::*;
    }
}
