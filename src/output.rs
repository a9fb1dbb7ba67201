//! Result writers: one per format for `classify` (text, json, jsonl, tsv, csv) and `embed`
//! (npy + paths.txt, npz, jsonl). Files are written to a temporary sibling and renamed into
//! place only when complete, so an error never leaves a partial output file.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::ClassifyFormat;

/// A file that appears under its name only once `commit` succeeds.
pub struct AtomicFile {
    tmp: BufWriter<tempfile::NamedTempFile>,
    target: PathBuf,
}

impl AtomicFile {
    pub fn create(target: &Path) -> io::Result<Self> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".mnv1-")
            .suffix(".tmp")
            .tempfile_in(dir)?;
        // Uncommitted temporaries are deleted on drop, and on Ctrl-C by the handler.
        crate::interrupt::register(tmp.path());
        Ok(Self {
            tmp: BufWriter::new(tmp),
            target: target.to_path_buf(),
        })
    }

    pub fn commit(self) -> io::Result<()> {
        let tmp = self.tmp.into_inner().map_err(|e| e.into_error())?;
        let tmp_path = tmp.path().to_path_buf();
        tmp.as_file().sync_all()?;
        let result = tmp.persist(&self.target).map(drop).map_err(|e| e.error);
        crate::interrupt::unregister(&tmp_path);
        result
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

/// Stdout, or a file committed at the end.
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

/// A path as one unambiguous line of text: quoted and escaped when it holds control characters
/// (a newline in a file name would otherwise read as two results).
pub fn text_safe(path: &str) -> std::borrow::Cow<'_, str> {
    if path.chars().any(char::is_control) {
        format!("{path:?}").into()
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

/// Collects (or, for JSON lines, streams) feature vectors.
pub struct EmbedWriter {
    format: EmbedFormat,
    out: Option<PathBuf>,
    lines: Option<Sink>,
    dim: usize,
    paths: Vec<String>,
    features: Vec<f32>,
}

impl EmbedWriter {
    pub fn new(format: EmbedFormat, out: Option<&Path>, dim: usize) -> io::Result<Self> {
        let lines = (format == EmbedFormat::Jsonl)
            .then(|| Sink::open(out))
            .transpose()?;
        Ok(Self {
            format,
            out: out.map(Path::to_path_buf),
            lines,
            dim,
            paths: Vec::new(),
            features: Vec::new(),
        })
    }

    pub fn write(&mut self, path: &str, features: &[f32]) -> io::Result<()> {
        if let Some(sink) = &mut self.lines {
            serde_json::to_writer(&mut *sink, &Embedded { path, features })?;
            writeln!(sink)?;
            return sink.flush();
        }
        self.paths.push(path.to_string());
        self.features.extend_from_slice(features);
        Ok(())
    }

    pub fn finish(self) -> io::Result<()> {
        if let Some(sink) = self.lines {
            return sink.finish();
        }
        let out = self.out.expect("npy and npz always have an output path");
        let shape = [self.paths.len() as u64, self.dim as u64];
        match self.format {
            EmbedFormat::Npy => {
                let mut npy = AtomicFile::create(&out)?;
                write_npy_f32(&mut npy, &shape, &self.features)?;
                let mut txt_path = out.clone().into_os_string();
                txt_path.push(".paths.txt");
                let mut txt = AtomicFile::create(Path::new(&txt_path))?;
                for p in &self.paths {
                    writeln!(txt, "{p}")?;
                }
                txt.commit()?;
                npy.commit()
            }
            EmbedFormat::Npz => {
                let mut file = AtomicFile::create(&out)?;
                write_npz(&mut file, &shape, &self.features, &self.paths)?;
                file.commit()
            }
            EmbedFormat::Jsonl => unreachable!("handled above"),
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
