//! Command-line definitions (clap derive) and their help texts; nothing is resolved here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "mnv1",
    version,
    about = "Google's 32 TF-Hub MobileNet V1 image models: classify images, embed them, faithfully to TensorFlow",
    after_help = "Examples:\n  mnv1 classify cat.jpg --variant 050_160\n  mnv1 embed photos/ --out feats.npy\n  find . -name '*.jpg' | mnv1 classify - --format jsonl\n  mnv1 list"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print nothing but results and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Top-k ImageNet labels of images (the classification modules).
    #[command(
        after_help = "Examples:\n  mnv1 classify cat.jpg\n  mnv1 classify photos/ --variant 025_128 -k 1 --format tsv\n  ls *.png | mnv1 classify - --format jsonl\n  mnv1 classify tensor.npy --weights mobilenet_v1_0.25_128.tflite --variant 025_128"
    )]
    Classify(ClassifyArgs),
    /// Feature vectors of images (the feature_vector modules: 256 to 1024 values each).
    #[command(
        after_help = "Examples:\n  mnv1 embed photos/ --out feats.npy      (also writes feats.npy.paths.txt)\n  mnv1 embed a.jpg b.jpg --out feats.npz   (arrays `features` and `paths`)\n  mnv1 embed photos/ --variant 100_224 > feats.jsonl"
    )]
    Embed(EmbedArgs),
    /// The 32 variants with their size, cost, published accuracy and local weights.
    #[command(after_help = "Examples:\n  mnv1 list\n  mnv1 list --format json")]
    List(ListArgs),
    /// Rewrite weights (checkpoint, archive, .tflite) as mnv1's canonical safetensors.
    #[command(
        after_help = "Examples:\n  mnv1 convert mobilenet_v1_0.25_128.tgz --out mnv1_025.safetensors\n  mnv1 convert ckpt/mobilenet_v1_1.0_224.ckpt --out w.safetensors"
    )]
    Convert(ConvertArgs),
    /// Time the network alone (no decoding), like TensorFlow Lite's benchmark_model.
    #[command(
        after_help = "Examples:\n  mnv1 bench --variant 025_128 --threads 1\n  mnv1 bench --batch 32 --runs 20 --json\n  mnv1 bench --profile    (time per layer)\n\nWithout --weights and without cached weights it runs on random weights (speed does not depend\non the values) and says so on stderr."
    )]
    Bench(BenchArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CropArg {
    /// TF-Slim eval: central 87.5% crop, then resize (what the published accuracy used).
    Central,
    /// Resize the whole image to the model's size (the modules' "bring an RxR image" contract).
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    Auto,
    Cpu,
    Cuda,
    Metal,
}

/// What every model-running command shares.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Which model: 050_160, mobilenet_v1_050_160, 0.5_160, or a TF-Hub handle URL.
    #[arg(short = 'm', long, default_value = "100_224")]
    pub variant: String,
    /// Weights file or directory: TF checkpoint (prefix, .index, dir), release .tgz, hub .tar.gz,
    /// float .tflite, or mnv1 safetensors. Recognised by content.
    #[arg(short, long, value_name = "PATH")]
    pub weights: Option<PathBuf>,
    /// Run at NxN instead of the variant's resolution (any N >= 32).
    #[arg(long, value_name = "N")]
    pub size: Option<usize>,
    /// How images are fitted to the model's input.
    #[arg(long, value_enum, default_value_t = CropArg::Central)]
    pub crop: CropArg,
    /// Images per forward pass.
    #[arg(short, long, default_value_t = 16, value_name = "B")]
    pub batch_size: usize,
    /// Where the network runs.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Refuse images with more pixels than this (decompression bombs).
    #[arg(long, default_value_t = 178_956_970, value_name = "N")]
    pub max_pixels: u64,
    /// Stop at the first input that fails instead of reporting it and going on.
    #[arg(long)]
    pub fail_fast: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClassifyFormat {
    Text,
    Json,
    Jsonl,
    Tsv,
    Csv,
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Image files, directories (searched recursively, sorted), .npy tensors, or - to read paths
    /// from stdin, one per line.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// How many labels per image (1..=1001).
    #[arg(short = 'k', long, default_value_t = 5)]
    pub top_k: usize,
    #[arg(short, long, value_enum, default_value_t = ClassifyFormat::Text)]
    pub format: ClassifyFormat,
    /// Write results to this file (atomically) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Image files, directories (searched recursively, sorted), .npy tensors, or - for paths on stdin.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// F.npy (float32 [N, D], plus F.npy.paths.txt), F.npz (`features`, `paths`) or F.jsonl;
    /// without it, JSON lines on stdout.
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(short, long, value_enum, default_value_t = ListFormat::Text)]
    pub format: ListFormat,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Weights to read (any format --weights takes).
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Canonical safetensors file to write.
    #[arg(short, long, value_name = "OUT")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which model: 050_160, mobilenet_v1_050_160, 0.5_160, or a TF-Hub handle URL.
    #[arg(short = 'm', long, default_value = "100_224")]
    pub variant: String,
    /// Weights file (any format `classify` takes); default: the cache, else random weights.
    #[arg(short, long, value_name = "PATH")]
    pub weights: Option<PathBuf>,
    /// Images per forward pass.
    #[arg(short, long, default_value_t = 1, value_name = "B")]
    pub batch: usize,
    /// CPU threads (default: every core).
    #[arg(short, long, value_name = "T")]
    pub threads: Option<usize>,
    /// Timed runs (the median and p90 are over these).
    #[arg(short, long, default_value_t = 50, value_name = "N")]
    pub runs: usize,
    /// Untimed runs first (caches, thread start-up, buffer allocation).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub warmup: usize,
    /// Run at NxN instead of the variant's resolution (any N >= 32).
    #[arg(long, value_name = "N")]
    pub size: Option<usize>,
    /// Where the network runs.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also time every layer (CPU path): median per layer and its share.
    #[arg(long)]
    pub profile: bool,
}
