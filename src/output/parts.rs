//! `--out-dir`: one output per input tar shard, `DIR/<shard stem>.<ext>`, and one for the other
//! files of this `--shard` part, `DIR/part-KKKKK-of-NNNNN.<ext>`. Each is written atomically
//! once its last row is in, so an output that exists is complete: a rerun skips the inputs of
//! complete outputs (`--overwrite` redoes them), and a run killed at any moment and rerun ends
//! with the same files as one that was not (the killed run's temporary file is removed by the
//! next write in DIR, see `tempfiles`).

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{paths_txt, Finish};
use crate::inputs::split::Part;
use crate::inputs::tar_shard::is_tar;
use crate::inputs::{InputFailure, Listed};

/// The output directory of a run and how its files are named.
#[derive(Debug)]
pub struct OutDir {
    dir: PathBuf,
    ext: &'static str,
    part: Part,
    overwrite: bool,
    /// Outputs found complete and skipped, counted as the listing is read.
    skipped: AtomicUsize,
}

impl OutDir {
    /// Creates `dir` where missing.
    pub fn new(dir: &Path, ext: &'static str, part: Part, overwrite: bool) -> io::Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| crate::atomic::named(dir, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            ext,
            part,
            overwrite,
            skipped: AtomicUsize::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn shard_output(&self, shard: &Path) -> PathBuf {
        let mut name = shard.file_stem().unwrap_or_default().to_owned();
        name.push(".");
        name.push(self.ext);
        self.dir.join(name)
    }

    /// Where the files that are not tar shards go.
    pub fn plain_output(&self) -> PathBuf {
        self.dir.join(format!(
            "part-{:05}-of-{:05}.{}",
            self.part.index, self.part.count, self.ext
        ))
    }

    /// An output is complete when it exists (with its `.paths.txt`, for an .npy): it is only
    /// ever renamed into place whole.
    fn complete(&self, out: &Path) -> bool {
        out.is_file() && (self.ext != "npy" || paths_txt(out).is_file())
    }

    /// How many outputs were found complete and their inputs skipped.
    pub fn skipped(&self) -> usize {
        self.skipped.load(Ordering::Relaxed)
    }

    /// The listed inputs whose output is still to be written. A tar shard whose output name an
    /// earlier shard already took (`a/0001.tar`, `b/0001.tar`) fails instead of overwriting it.
    pub fn pending(
        self: &Arc<Self>,
        listed: impl Iterator<Item = Listed> + Send + 'static,
    ) -> impl Iterator<Item = Listed> + Send + 'static {
        let this = self.clone();
        let mut stems: HashMap<OsString, PathBuf> = HashMap::new();
        let mut plain: Option<bool> = None;
        listed.filter_map(move |item| {
            let Ok(path) = &item else {
                return Some(item);
            };
            if !is_tar(path) {
                let done = *plain.get_or_insert_with(|| {
                    let done = !this.overwrite && this.complete(&this.plain_output());
                    if done {
                        this.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    done
                });
                return (!done).then_some(item);
            }
            let out = this.shard_output(path);
            let stem = out.file_name().unwrap_or_default().to_owned();
            if let Some(first) = stems.get(&stem) {
                return Some(Err(InputFailure {
                    path: path.clone(),
                    reason: format!(
                        "its output {} is already that of {}: rename one of the shards",
                        out.display(),
                        first.display()
                    ),
                }));
            }
            stems.insert(stem, path.clone());
            if !this.overwrite && this.complete(&out) {
                this.skipped.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Some(item)
        })
    }
}

/// Makes the writer of one output file.
type OpenOutput<W> = Box<dyn FnMut(&Path) -> io::Result<W>>;

/// Where a run's rows go: one writer (`--out`, stdout), or with `--out-dir` one per tar shard
/// plus one for the other files.
pub struct Parts<W: Finish> {
    dir: Option<Arc<OutDir>>,
    open: OpenOutput<W>,
    /// The one writer; in `--out-dir`, that of the files that are not tar shards.
    main: Option<W>,
    /// In `--out-dir`: the tar shard being written (shards' rows come one shard after another).
    shard: Option<(PathBuf, W)>,
    /// A tar shard reported damaged: its output is not written, so that a rerun reads it
    /// again and reports it again rather than take its first images for the whole shard.
    damaged: Option<PathBuf>,
}

impl<W: Finish> Parts<W> {
    pub fn single(writer: W) -> Self {
        Self {
            dir: None,
            open: Box::new(|_: &Path| Err(io::Error::other("one output only"))),
            main: Some(writer),
            shard: None,
            damaged: None,
        }
    }

    /// `open` makes the writer of one output file.
    pub fn per_shard(dir: Arc<OutDir>, open: impl FnMut(&Path) -> io::Result<W> + 'static) -> Self {
        Self {
            dir: Some(dir),
            open: Box::new(open),
            main: None,
            shard: None,
            damaged: None,
        }
    }

    /// The writer for a row of `shard` (or of a file that is not in one).
    pub fn writer(&mut self, shard: Option<&Path>) -> io::Result<&mut W> {
        let Some(dir) = &self.dir else {
            return Ok(self.main.as_mut().expect("the single writer"));
        };
        let Some(shard) = shard else {
            if self.main.is_none() {
                self.main = Some((self.open)(&dir.plain_output())?);
            }
            return Ok(self.main.as_mut().expect("opened above"));
        };
        if self
            .shard
            .as_ref()
            .is_none_or(|(s, _)| s.as_path() != shard)
        {
            if let Some((_, w)) = self.shard.take() {
                w.finish()?;
            }
            let w = (self.open)(&dir.shard_output(shard))?;
            self.shard = Some((shard.to_path_buf(), w));
        }
        Ok(&mut self.shard.as_mut().expect("opened above").1)
    }

    /// An input failed; a tar shard failing as a whole (damaged, truncated, no images) gets no
    /// output.
    pub fn failed(&mut self, path: &Path) {
        if self.dir.is_some() && is_tar(path) {
            self.damaged = Some(path.to_path_buf());
        }
    }

    /// The last row of `shard` is in: its output is complete (empty when none of its images
    /// decoded, so that a rerun does not read it again), unless the shard itself was damaged.
    pub fn end_shard(&mut self, shard: &Path) -> io::Result<()> {
        if self.dir.is_none() {
            return Ok(());
        }
        if self.damaged.as_deref() == Some(shard) {
            self.damaged = None;
            self.shard = None; // dropped uncommitted: its temporary file goes
            return Ok(());
        }
        self.writer(Some(shard))?;
        match self.shard.take() {
            Some((_, w)) => w.finish(),
            None => Ok(()),
        }
    }

    /// Completes the outputs. `all_inputs`: the run went through every input; when it stopped
    /// early (--fail-fast), an --out-dir part still open is left unwritten, to be redone.
    pub fn finish(self, all_inputs: bool) -> io::Result<()> {
        if self.dir.is_some() && !all_inputs {
            return Ok(());
        }
        match self.main {
            Some(w) => w.finish(),
            None => Ok(()),
        }
    }
}
