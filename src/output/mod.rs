//! Result writers: one per format for `classify` (text, json, jsonl, tsv, csv) and `embed`
//! (npy + paths.txt, npz, jsonl). Files go through [`AtomicFile`] (see `atomic`): complete or
//! not there, devices and FIFOs written in place, symlinks written through.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use crate::atomic::commit_pair;
pub use crate::atomic::AtomicFile;
use crate::cli::ClassifyFormat;

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

/// A path as one unambiguous line: as it is, unless it starts with `"` or holds a character
/// that ends a line for some reader (a control character such as a newline, U+2028, U+2029);
/// then as a JSON string. So a line starting with `"` is JSON, any other line the path itself
/// (how `.paths.txt` files and the text format are read back; README "Output files").
pub fn text_safe(path: &str) -> std::borrow::Cow<'_, str> {
    let breaks = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if path.starts_with('"') || path.chars().any(breaks) {
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

#[derive(Serialize)]
struct Classified<'a> {
    path: &'a str,
    predictions: &'a [Prediction<'a>],
}

/// Writes classification results in one format as they come.
pub struct ClassifyWriter {
    format: ClassifyFormat,
    sink: Sink,
    /// `json` is one array: its elements are kept (serialized) until the end.
    json: Vec<String>,
}

impl ClassifyWriter {
    pub fn new(format: ClassifyFormat, sink: Sink) -> io::Result<Self> {
        let mut writer = Self {
            format,
            sink,
            json: Vec::new(),
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
                // Serialized now, so numbers read exactly as in the jsonl format.
                self.json.push(serde_json::to_string_pretty(&Classified {
                    path,
                    predictions,
                })?);
            }
            ClassifyFormat::Html => {
                return Err(io::Error::other(
                    "the html contact sheet is written by report::contact_sheet",
                ))
            }
            ClassifyFormat::Csv | ClassifyFormat::Tsv => {
                for (rank, p) in predictions.iter().enumerate() {
                    self.table_row([
                        path,
                        &(rank + 1).to_string(),
                        &p.index.to_string(),
                        p.label,
                        &p.probability.to_string(),
                        &p.logit.to_string(),
                    ])?;
                }
            }
        }
        // Results show up as they are made, also through pipes.
        self.sink.flush()
    }

    pub fn finish(mut self) -> io::Result<()> {
        if self.format == ClassifyFormat::Json {
            writeln!(self.sink, "[{}]", self.json.join(",\n"))?;
        }
        self.sink.finish()
    }
}

/// Where `embed` writes, chosen by the `--out` file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedFormat {
    /// float32 [N, D] plus `<out>.paths.txt`.
    Npy,
    /// `features` float32 [N, D] and `paths` unicode [N].
    Npz,
    /// `{"path", "features"}` per line (also what stdout gets).
    Jsonl,
}

impl EmbedFormat {
    pub fn from_path(out: &Path) -> Option<Self> {
        match out.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "npy" => Some(Self::Npy),
            "npz" => Some(Self::Npz),
            "jsonl" | "ndjson" => Some(Self::Jsonl),
            _ => None,
        }
    }
}

#[derive(Serialize)]
struct Embedded<'a> {
    path: &'a str,
    features: &'a [f32],
}

/// Collects (or, for JSON lines, streams) feature vectors. The output files are opened when the
/// writer is made, so a target that cannot be written fails before any work.
pub struct EmbedWriter {
    format: EmbedFormat,
    out: Out,
    dim: usize,
    paths: Vec<String>,
    features: Vec<f32>,
}

enum Out {
    Lines(Sink),
    /// The array and its `.paths.txt`, committed together.
    Npy(AtomicFile, AtomicFile),
    Npz(AtomicFile),
}

/// `<out>.paths.txt`: the row names of an .npy, one [`text_safe`] line each.
pub fn paths_txt(npy: &Path) -> std::path::PathBuf {
    let mut p = npy.as_os_str().to_owned();
    p.push(".paths.txt");
    p.into()
}

impl EmbedWriter {
    pub fn new(format: EmbedFormat, out: Option<&Path>, dim: usize) -> io::Result<Self> {
        let out = match (format, out) {
            (EmbedFormat::Npy, Some(p)) => {
                Out::Npy(AtomicFile::create(p)?, AtomicFile::create(&paths_txt(p))?)
            }
            (EmbedFormat::Npz, Some(p)) => Out::Npz(AtomicFile::create(p)?),
            (_, out) => Out::Lines(Sink::open(out)?),
        };
        Ok(Self {
            format,
            out,
            dim,
            paths: Vec::new(),
            features: Vec::new(),
        })
    }

    pub fn format(&self) -> EmbedFormat {
        self.format
    }

    pub fn write(&mut self, path: &str, features: &[f32]) -> io::Result<()> {
        if let Out::Lines(sink) = &mut self.out {
            serde_json::to_writer(&mut *sink, &Embedded { path, features })?;
            writeln!(sink)?;
            return sink.flush();
        }
        self.paths.push(path.to_string());
        self.features.extend_from_slice(features);
        Ok(())
    }

    pub fn finish(self) -> io::Result<()> {
        let shape = [self.paths.len() as u64, self.dim as u64];
        match self.out {
            Out::Lines(sink) => sink.finish(),
            Out::Npy(mut npy, mut txt) => {
                write_npy_f32(&mut npy, &shape, &self.features)?;
                for p in &self.paths {
                    writeln!(txt, "{}", text_safe(p))?;
                }
                commit_pair(npy, txt)
            }
            Out::Npz(mut file) => {
                write_npz(&mut file, &shape, &self.features, &self.paths)?;
                file.commit()
            }
        }
    }
}

fn write_npy_f32(w: impl Write, shape: &[u64], data: &[f32]) -> io::Result<()> {
    use npyz::WriterBuilder;
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(w)
        .begin_nd()?;
    writer.extend(data.iter().copied())?;
    writer.finish()
}

fn write_npz(
    file: &mut AtomicFile,
    shape: &[u64],
    data: &[f32],
    paths: &[String],
) -> io::Result<()> {
    use npyz::WriterBuilder;
    // The zip writer needs Seek: build the archive in memory (features are small next to images).
    let mut npz = npyz::npz::NpzWriter::new(io::Cursor::new(Vec::new()));
    let options =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut w = npz
        .array::<f32>("features", options)?
        .default_dtype()
        .shape(shape)
        .begin_nd()?;
    w.extend(data.iter().copied())?;
    w.finish()?;
    // numpy's own dtype for Python str: '<U{longest}' (code points).
    let longest = paths
        .iter()
        .map(|p| p.chars().count())
        .max()
        .unwrap_or(1)
        .max(1);
    let dtype = npyz::DType::Plain(
        format!("<U{longest}")
            .parse()
            .map_err(|e| io::Error::other(format!("{e}")))?,
    );
    let mut w = npz
        .array::<String>("paths", options)?
        .dtype(dtype)
        .shape(&[paths.len() as u64])
        .begin_nd()?;
    w.extend(paths.iter().cloned())?;
    w.finish()?;
    let bytes = npz.zip_writer().finish()?.into_inner();
    file.write_all(&bytes)
}
