//! The output formats `classify` and `embed` write, and which a file name's extension means:
//! defined here, beside their writers; the command line (`cli.rs`) takes them as its values.

use clap::ValueEnum;

/// What `classify` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClassifyFormat {
    Text,
    Json,
    Jsonl,
    Tsv,
    Csv,
    /// A contact sheet: thumbnails with their top-k labels (the default for --out *.html).
    Html,
    /// Apache Parquet: `path`, `predictions` (a list of {index, label, probability, logit}).
    Parquet,
}

impl ClassifyFormat {
    /// The format a file name's extension says, if any.
    pub fn from_extension(out: &std::path::Path) -> Option<Self> {
        match out.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "html" | "htm" => Some(Self::Html),
            "parquet" => Some(Self::Parquet),
            "json" => Some(Self::Json),
            "jsonl" | "ndjson" => Some(Self::Jsonl),
            "tsv" => Some(Self::Tsv),
            "csv" => Some(Self::Csv),
            "txt" => Some(Self::Text),
            _ => None,
        }
    }

    /// The extension of files of this format in `--out-dir`.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Text => "txt",
            Self::Json => "json",
            Self::Jsonl => "jsonl",
            Self::Tsv => "tsv",
            Self::Csv => "csv",
            Self::Html => "html",
            Self::Parquet => "parquet",
        }
    }
}

/// What `embed` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmbedFormat {
    /// float32 [N, D] plus `<out>.paths.txt`.
    Npy,
    /// `features` float32 [N, D] and `paths` unicode [N].
    Npz,
    /// `{"path", "features"}` per line (also what stdout gets).
    Jsonl,
    /// Apache Parquet: `path`, `features` (fixed-size list of float32).
    Parquet,
}

impl EmbedFormat {
    /// The format a file name's extension says, if any.
    pub fn from_path(out: &std::path::Path) -> Option<Self> {
        match out.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "npy" => Some(Self::Npy),
            "npz" => Some(Self::Npz),
            "jsonl" | "ndjson" => Some(Self::Jsonl),
            "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Npy => "npy",
            Self::Npz => "npz",
            Self::Jsonl => "jsonl",
            Self::Parquet => "parquet",
        }
    }
}
