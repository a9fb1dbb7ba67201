//! Result writers: one per format for `classify` (text, json, jsonl, tsv, csv, parquet) and
//! `embed` (npy + paths.txt, npz, jsonl, parquet). Every one streams: memory holds a few rows,
//! not the run. Files go through [`AtomicFile`] (see `atomic`): complete or not there, devices
//! and FIFOs written in place, symlinks written through. `parts` spreads a run over one file
//! per tar shard (`--out-dir`).

pub mod formats;
pub mod npy;
pub mod parquet;
pub mod parts;

use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use crate::atomic::commit_pair;
pub use crate::atomic::AtomicFile;
pub use formats::{ClassifyFormat, EmbedFormat};
use npy::{NpyStream, NpzStream};
use parquet::{ParquetClassify, ParquetEmbed};

/// A writer that ends by completing its output (committing a file, flushing stdout).
pub trait Finish {
    fn finish(self) -> io::Result<()>;
}

/// Stdout, or a file committed at the end (`finish`); dropped unfinished, a file is discarded.
pub enum Sink {
    Stdout(BufWriter<io::Stdout>),
    File(AtomicFile),
}

impl Sink {
    pub fn open(out: Option<&Path>) -> io::Result<Self> {
        Ok(match out {
            Some(p) => Sink::File(AtomicFile::create(p)?),
            None => Sink::Stdout(BufWriter::new(io::stdout())),
        })
    }

    pub fn finish(self) -> io::Result<()> {
        match self {
            Sink::Stdout(mut s) => s.flush(),
            Sink::File(f) => f.commit(),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Stdout(s) => s.write(buf),
            Sink::File(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(s) => s.flush(),
            Sink::File(f) => f.flush(),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Prediction<'l> {
    /// Index among the module's 1001 logits (0 = background).
    pub index: usize,
    pub label: &'l str,
    /// Softmax over all 1001 logits.
    pub probability: f32,
    pub logit: f32,
}

/// Softmax over all logits, then the `k` most likely, highest first (ties: lower index first).
pub fn top_k<'l>(logits: &[f32], k: usize, labels: &'l [String]) -> Vec<Prediction<'l>> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .map(|i| Prediction {
            index: i,
            label: labels.get(i).map(String::as_str).unwrap_or(""),
            probability: exp[i] / sum,
            logit: logits[i],
        })
        .collect()
}

/// A character a terminal or a line-based reader acts on: a control character (a newline, ESC),
/// or U+2028 / U+2029.
fn breaks_text(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// A path as one unambiguous line: as it is, unless it starts with `"` or holds a character
/// that ends a line for some reader (a control character such as a newline, U+2028, U+2029);
/// then as a JSON string. So a line starting with `"` is JSON, any other line the path itself
/// (how `.paths.txt` files and the text format are read back; README "Output files").
pub fn text_safe(path: &str) -> std::borrow::Cow<'_, str> {
    if path.starts_with('"') || path.chars().any(breaks_text) {
        // JSON leaves U+2028/U+2029 raw; escaped, the line holds no separator at all.
        serde_json::Value::from(path)
            .to_string()
            .replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029")
            .into()
    } else {
        path.into()
    }
}

/// A file's path as messages and results show it: its name ([`crate::inputs::name_of`]: bytes
/// that are not UTF-8 as `\xNN`), then [`text_safe`].
pub fn shown_path(path: &Path) -> String {
    text_safe(&crate::inputs::name_of(path)).into_owned()
}

/// Text for a diagnostic: control characters (and U+2028/U+2029) escaped as JSON escapes them
/// (`\u001b`, `\n`), the rest as it is. For messages that quote input data.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(breaks_text) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if breaks_text(c) => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.into()
}

#[derive(Serialize)]
struct Classified<'a> {
    path: &'a str,
    predictions: &'a [Prediction<'a>],
}

/// Writes classification results in one format as they come.
pub enum ClassifyWriter {
    Text(TextWriter),
    // Boxed: Arrow's writer state is large beside a text writer.
    Parquet(Box<ParquetClassify<AtomicFile>>),
}

impl ClassifyWriter {
    /// `out`: a file, or stdout (not for parquet: the command refuses that first).
    pub fn new(format: ClassifyFormat, out: Option<&Path>) -> io::Result<Self> {
        Ok(match (format, out) {
            (ClassifyFormat::Parquet, Some(p)) => {
                Self::Parquet(Box::new(ParquetClassify::new(AtomicFile::create(p)?)?))
            }
            (ClassifyFormat::Parquet, None) => {
                return Err(io::Error::other("parquet is written to a file (--out)"))
            }
            (format, out) => Self::Text(TextWriter::new(format, Sink::open(out)?)?),
        })
    }

    pub fn write(&mut self, path: &str, predictions: &[Prediction]) -> io::Result<()> {
        match self {
            Self::Text(w) => w.write(path, predictions),
            Self::Parquet(w) => w.write(path, predictions),
        }
    }
}

impl Finish for ClassifyWriter {
    fn finish(self) -> io::Result<()> {
        match self {
            Self::Text(w) => w.finish(),
            Self::Parquet(w) => w.finish()?.commit(),
        }
    }
}

/// The text formats: text, json, jsonl, tsv, csv.
pub struct TextWriter {
    format: ClassifyFormat,
    sink: Sink,
    /// `json` is one array, written element by element: whether one has been.
    json_started: bool,
}

impl TextWriter {
    fn new(format: ClassifyFormat, sink: Sink) -> io::Result<Self> {
        let mut writer = Self {
            format,
            sink,
            json_started: false,
        };
        writer.table_row(["path", "rank", "index", "label", "probability", "logit"])?;
        Ok(writer)
    }

    /// One CSV/TSV record (quoted where a field holds the delimiter, a quote or a newline).
    fn table_row<const N: usize>(&mut self, fields: [&str; N]) -> io::Result<()> {
        let delimiter = match self.format {
            ClassifyFormat::Csv => b',',
            ClassifyFormat::Tsv => b'\t',
            _ => return Ok(()),
        };
        let mut w = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .from_writer(&mut self.sink);
        w.write_record(fields)?;
        w.flush()
    }

    pub fn write(&mut self, path: &str, predictions: &[Prediction]) -> io::Result<()> {
        match self.format {
            ClassifyFormat::Text => {
                writeln!(self.sink, "{}", text_safe(path))?;
                for p in predictions {
                    writeln!(
                        self.sink,
                        "  {:.4}  {} ({})",
                        p.probability, p.label, p.index
                    )?;
                }
            }
            ClassifyFormat::Jsonl => {
                serde_json::to_writer(&mut self.sink, &Classified { path, predictions })?;
                writeln!(self.sink)?;
            }
            ClassifyFormat::Json => {
                let separator = if self.json_started { ",\n" } else { "[" };
                self.json_started = true;
                self.sink.write_all(separator.as_bytes())?;
                serde_json::to_writer_pretty(&mut self.sink, &Classified { path, predictions })?;
            }
            ClassifyFormat::Html | ClassifyFormat::Parquet => {
                return Err(io::Error::other(format!(
                    "{:?} is not a text format",
                    self.format
                )))
            }
            ClassifyFormat::Csv | ClassifyFormat::Tsv => {
                // A control character never goes out raw (a record stays one line, a terminal
                // shows no escape codes): such a path or label is a JSON string, as in text.
                let path = text_safe(path);
                for (rank, p) in predictions.iter().enumerate() {
                    self.table_row([
                        &path,
                        &(rank + 1).to_string(),
                        &p.index.to_string(),
                        &text_safe(p.label),
                        &p.probability.to_string(),
                        &p.logit.to_string(),
                    ])?;
                }
            }
        }
        // Results show up as they are made, also through pipes.
        self.sink.flush()
    }

    fn finish(mut self) -> io::Result<()> {
        if self.format == ClassifyFormat::Json {
            if !self.json_started {
                self.sink.write_all(b"[")?;
            }
            self.sink.write_all(b"]\n")?;
        }
        self.sink.finish()
    }
}

#[derive(Serialize)]
struct Embedded<'a> {
    path: &'a str,
    features: &'a [f32],
}

/// Streams feature vectors. The output files are opened when the writer is made, so a target
/// that cannot be written fails before any work.
pub struct EmbedWriter {
    out: Out,
}

enum Out {
    Lines(Sink),
    /// The array and its `.paths.txt`, committed together.
    Npy(NpyStream, AtomicFile),
    Npz(NpzStream),
    Parquet(Box<ParquetEmbed<AtomicFile>>),
}

/// `<out>.paths.txt`: the row names of an .npy, one [`text_safe`] line each.
pub fn paths_txt(npy: &Path) -> std::path::PathBuf {
    let mut p = npy.as_os_str().to_owned();
    p.push(".paths.txt");
    p.into()
}

impl EmbedWriter {
    /// `out`: a file, or stdout for JSON lines (the binary formats need a file: the command
    /// refuses that first).
    pub fn new(format: EmbedFormat, out: Option<&Path>, dim: usize) -> io::Result<Self> {
        let out = match (format, out) {
            (EmbedFormat::Jsonl, out) => Out::Lines(Sink::open(out)?),
            (EmbedFormat::Npy, Some(p)) => Out::Npy(
                NpyStream::new(AtomicFile::create(p)?, dim)?,
                AtomicFile::create(&paths_txt(p))?,
            ),
            (EmbedFormat::Npz, Some(p)) => Out::Npz(NpzStream::new(AtomicFile::create(p)?, dim)?),
            (EmbedFormat::Parquet, Some(p)) => {
                Out::Parquet(Box::new(ParquetEmbed::new(AtomicFile::create(p)?, dim)?))
            }
            (f, None) => {
                return Err(io::Error::other(format!(
                    "{f:?} is written to a file (--out)"
                )))
            }
        };
        Ok(Self { out })
    }

    pub fn write(&mut self, path: &str, features: &[f32]) -> io::Result<()> {
        match &mut self.out {
            Out::Lines(sink) => {
                serde_json::to_writer(&mut *sink, &Embedded { path, features })?;
                writeln!(sink)?;
                sink.flush()
            }
            Out::Npy(npy, txt) => {
                npy.write(features)?;
                writeln!(txt, "{}", text_safe(path))
            }
            Out::Npz(npz) => npz.write(path, features),
            Out::Parquet(p) => p.write(path, features),
        }
    }
}

impl Finish for EmbedWriter {
    fn finish(self) -> io::Result<()> {
        match self.out {
            Out::Lines(sink) => sink.finish(),
            Out::Npy(npy, txt) => commit_pair(npy.finish()?, txt),
            Out::Npz(npz) => npz.finish()?.commit(),
            Out::Parquet(p) => p.finish()?.commit(),
        }
    }
}
