//! `mnv1 embed`: feature vectors per image, to .npy / .npz / JSON lines / Parquet.

use anyhow::Result;

use std::io;
use std::path::Path;

use super::image_run::{ImageRun, Results};
use super::Status;
use crate::cli::EmbedArgs;
use crate::engine::Head;
use crate::error::UsageError;
use crate::output::parts::Parts;
use crate::output::EmbedFormat;
use crate::output::EmbedWriter;

pub fn run(args: &EmbedArgs, quiet: bool) -> Result<Status> {
    let scale = &args.scale;
    let format = match (args.format, &args.out) {
        (Some(f), _) => f,
        (None, Some(out)) => EmbedFormat::from_path(out).ok_or_else(|| {
            UsageError::new(format!(
                "--out {}: name it .npy, .npz, .jsonl or .parquet, or give --format",
                out.display()
            ))
        })?,
        (None, None) if scale.out_dir.is_some() => EmbedFormat::Parquet,
        (None, None) => EmbedFormat::Jsonl,
    };
    if format != EmbedFormat::Jsonl && args.out.is_none() && scale.out_dir.is_none() {
        return Err(UsageError::new(format!(
            "{} is written to a file: give --out or --out-dir",
            format.extension()
        ))
        .into());
    }
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
    if let Some(dir) = scale
        .out_dir
        .as_deref()
        .filter(|_| format == EmbedFormat::Npy)
    {
        // .npy outputs inside an input directory would be read as inputs by the next run.
        crate::inputs::refuse_dir_among_inputs(dir, &args.inputs)?;
    }
    let run = ImageRun::new(
        &args.model,
        Head::Features,
        scale,
        &args.inputs,
        &outputs,
        format.extension(),
        quiet,
    )?;
    let dim = run.engine.arch().feature_dim();
    let mut parts = match &run.out_dir {
        Some(dir) => Parts::per_shard(dir.clone(), move |p| EmbedWriter::new(format, Some(p), dim)),
        None => Parts::single(EmbedWriter::new(format, args.out.as_deref(), dim)?),
    };
    let summary = run.drive(&mut parts)?;
    parts.finish(summary.all_inputs(run.config.fail_fast))?;
    Ok(run.end(summary))
}

impl Results for Parts<EmbedWriter> {
    fn done(&mut self, name: &str, row: &[f32], shard: Option<&Path>) -> io::Result<()> {
        self.writer(shard)?.write(name, row)
    }

    fn failed(&mut self, path: &Path, _reason: &str) -> io::Result<()> {
        Parts::failed(self, path);
        Ok(())
    }

    fn end_shard(&mut self, shard: &Path) -> io::Result<()> {
        Parts::end_shard(self, shard)
    }
}
