//! Command-line definitions (clap derive) and their help texts; nothing is resolved here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::output::{ClassifyFormat, EmbedFormat};

/// The allowed values of the numeric options. clap checks them while parsing, so a value out of
/// range ends the run before any work with exit code 2 and the range in the message; negative
/// values reach the check too (`allow_negative_numbers`) instead of reading as unknown flags.
pub mod ranges {
    use std::ops::RangeInclusive;

    /// Input side: the network's minimum, up to 4.5x its largest trained resolution.
    pub const SIZE: RangeInclusive<u64> = 32..=1024;
    pub const BATCH: RangeInclusive<u64> = 1..=1024;
    /// Training keeps every layer's activations of a batch.
    pub const TRAIN_BATCH: RangeInclusive<u64> = 1..=512;
    pub const THREADS: RangeInclusive<u64> = 1..=1024;
    pub const TOP_K: RangeInclusive<u64> = 1..=1001;
    pub const EPOCHS: RangeInclusive<u64> = 1..=100_000;
    pub const RUNS: RangeInclusive<u64> = 1..=1_000_000;
    pub const WARMUP: RangeInclusive<u64> = 0..=1_000_000;
    /// About 3 GB of 8-bit RGB once decoded.
    pub const MAX_PIXELS: RangeInclusive<u64> = 1..=1 << 30;
    /// Pixels of one batch's input (batch x size x size): 64 images at 1024x1024, 1337 at 224.
    pub const BATCH_PIXELS: u64 = 64 << 20;
}

/// A parser of whole numbers in `range` whose error names the range, also for negative or huge
/// values (clap's own integer parsers say "invalid digit" for `-1`).
fn ranged<T: TryFrom<u64>>(
    range: std::ops::RangeInclusive<u64>,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
    move |s: &str| {
        let (lo, hi) = (*range.start(), *range.end());
        let v: i128 = s
            .trim()
            .parse()
            .map_err(|_| format!("not a whole number in {lo}..={hi}"))?;
        if v < i128::from(lo) || v > i128::from(hi) {
            return Err(format!("{v} is not in {lo}..={hi}"));
        }
        T::try_from(v as u64).map_err(|_| format!("{v} does not fit on this machine"))
    }
}

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
        after_help = "Examples:\n  mnv1 classify cat.jpg\n  mnv1 classify photos/ --variant 025_128 -k 1 --format tsv\n  ls *.png | mnv1 classify - --format jsonl\n  mnv1 classify tensor.npy --weights mobilenet_v1_0.25_128.tflite --variant 025_128\n  mnv1 classify shards/ --out-dir labels/ --shard 3/8   (labels/<shard>.parquet, resumable)"
    )]
    Classify(ClassifyArgs),
    /// Feature vectors of images (the feature_vector modules: 256 to 1024 values each).
    #[command(
        after_help = "Examples:\n  mnv1 embed photos/ --out feats.npy      (also writes feats.npy.paths.txt)\n  mnv1 embed a.jpg b.jpg --out feats.npz   (arrays `features` and `paths`)\n  mnv1 embed photos/ --variant 100_224 > feats.jsonl\n  mnv1 embed shards/*.tar --out feats.parquet\n  mnv1 embed shards/ --out-dir feats/ --shard $JOB_COMPLETION_INDEX/16   (resumable)"
    )]
    Embed(EmbedArgs),
    /// The 32 variants with their size, cost, published accuracy and local weights.
    #[command(after_help = "Examples:\n  mnv1 list\n  mnv1 list --format json")]
    List(ListArgs),
    /// Rewrite weights as mnv1's canonical safetensors, or export a model as TensorFlow Lite (with
    /// metadata) or ONNX.
    #[command(
        after_help = "The output's extension picks the format: .safetensors (canonical weights), .tflite (float32\nTFLite with Model Maker metadata and labels, for the TFLite Task Library and MediaPipe) or\n.onnx (opset 13, NHWC input in [0,1]).\n\nExamples:\n  mnv1 convert mobilenet_v1_0.25_128.tgz --out mnv1_025.safetensors\n  mnv1 convert mobilenet_v1_0.25_128.tgz --variant 025_128 --out mobilenet_025_128.tflite\n  mnv1 convert --variant 050_160 --head feature-vector --out features_050_160.onnx\n  mnv1 convert --model flowers-model --out flowers.tflite"
    )]
    Convert(ConvertArgs),
    /// Shell completions on stdout.
    #[command(
        after_help = "Examples:\n  mnv1 completions bash > /etc/bash_completion.d/mnv1\n  mnv1 completions zsh > ~/.zfunc/_mnv1\n  mnv1 completions fish > ~/.config/fish/completions/mnv1.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The man page (roff) on stdout.
    #[command(
        after_help = "Examples:\n  mnv1 man > /usr/local/share/man/man1/mnv1.1\n  mnv1 man | man -l -"
    )]
    Man,
    /// Train a new classifier head (and optionally the whole network) on folders of images.
    #[command(
        after_help = "DATA_DIR holds one sub-directory per class; the folder names become the labels.\n\nExamples:\n  mnv1 finetune flowers/ --variant 025_128 --weights mobilenet_v1_0.25_128.tgz --out flowers-model\n  mnv1 finetune data/ --variant 050_160 --train-backbone --bn-momentum 0.997 --augment --epochs 10 --out m\n  mnv1 classify --model flowers-model rose.jpg"
    )]
    Finetune(FinetuneArgs),
    /// Download variants' weights into the cache (release tarball, TF-Hub module or Hugging Face).
    #[command(
        after_help = "Examples:\n  mnv1 fetch --variant 050_160\n  mnv1 fetch --variant 025_128 --variant 100_224\n  mnv1 fetch --all --mirror https://mirror.example/tf\n\nSources are tried in order: the release tarball (MNV1_MIRROR / --mirror replaces\nhttps://download.tensorflow.org), the TF-Hub module (MNV1_HUB_BASE replaces https://tfhub.dev),\nthen Hugging Face where the checkpoint is hosted there (HF_ENDPOINT, HF_HOME).\nMNV1_HTTP_TIMEOUT (seconds, default 30) bounds each wait for the network."
    )]
    Fetch(FetchArgs),
    /// Inspect or clear the weights cache ($MNV1_CACHE, else ~/.cache/mnv1).
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Time the network alone (no decoding), like TensorFlow Lite's benchmark_model.
    #[command(
        after_help = "Examples:\n  mnv1 bench --variant 025_128 --threads 1\n  mnv1 bench --batch 32 --runs 20 --json\n  mnv1 bench --profile    (time per layer)\n\nWithout --weights and without cached weights it runs on random weights (speed does not depend\non the values) and says so on stderr."
    )]
    Bench(BenchArgs),
}

/// Network settings of commands that may download weights.
#[derive(Debug, Args)]
pub struct NetArgs {
    /// Never use the network (also MNV1_OFFLINE=1 or HF_HUB_OFFLINE=1): weights must be cached.
    #[arg(long)]
    pub offline: bool,
    /// Base URL replacing https://download.tensorflow.org in release URLs (also MNV1_MIRROR).
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
}

/// The arithmetic the network runs in.
#[derive(Debug, Args)]
pub struct PrecisionArgs {
    /// fp32; bf16 (float weights with bfloat16 products, on CPUs with AVX512_BF16); int8 (float
    /// weights quantized per channel, calibrated on --calibrate's images) [default: the weights'
    /// own: int8 for a quantized .tflite, else fp32].
    #[arg(long, value_enum)]
    pub precision: Option<PrecisionArg>,
    /// Images (a directory, recursively, or one file) whose activations set the int8 ranges of
    /// --precision int8 on float weights.
    #[arg(long, value_name = "PATH")]
    pub calibrate: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrecisionArg {
    Fp32,
    Bf16,
    Int8,
}

impl From<PrecisionArg> for crate::model::Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::Fp32 => Self::Fp32,
            PrecisionArg::Bf16 => Self::Bf16,
            PrecisionArg::Int8 => Self::Int8,
        }
    }
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Variants whose checkpoints to fetch (repeatable); any spelling --variant takes.
    #[arg(
        short = 'm',
        long,
        value_name = "VARIANT",
        required_unless_present = "all"
    )]
    pub variant: Vec<String>,
    /// Fetch all 16 checkpoints (the 32 variants).
    #[arg(long, conflicts_with = "variant")]
    pub all: bool,
    #[command(flatten)]
    pub net: NetArgs,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// The cached checkpoints, their size and whether their checksum holds.
    List,
    /// The cache directory, or the file a variant's weights are cached in.
    Path {
        #[arg(short = 'm', long, value_name = "VARIANT")]
        variant: Option<String>,
    },
    /// Remove cached weights of some variants, or everything mnv1 cached.
    Rm {
        #[arg(
            short = 'm',
            long,
            value_name = "VARIANT",
            required_unless_present = "all"
        )]
        variant: Vec<String>,
        #[arg(long, conflicts_with = "variant")]
        all: bool,
    },
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
    /// A fine-tuned model directory written by `mnv1 finetune` (its manifest gives the variant,
    /// size, preprocessing and labels).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["variant", "weights"])]
    pub model: Option<PathBuf>,
    /// Weights file or directory: TF checkpoint (prefix, .index, dir), release .tgz, hub .tar.gz,
    /// float .tflite, mnv1 or transformers safetensors. Recognised by content. Without it, the
    /// variant's weights come from the cache, fetched there on first use (see `mnv1 fetch`).
    #[arg(short, long, value_name = "PATH")]
    pub weights: Option<PathBuf>,
    /// Run at NxN instead of the variant's resolution (32..=1024).
    #[arg(long, value_name = "N", value_parser = ranged::<usize>(ranges::SIZE), allow_negative_numbers = true)]
    pub size: Option<usize>,
    /// How images are fitted to the model's input [default: central, or what --model's manifest says].
    #[arg(long, value_enum)]
    pub crop: Option<CropArg>,
    /// Images per forward pass (1..=1024).
    #[arg(short, long, default_value_t = 16, value_name = "B", value_parser = ranged::<usize>(ranges::BATCH), allow_negative_numbers = true)]
    pub batch_size: usize,
    /// Where the network runs.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// CPU threads for the network and for decoding images (1..=1024; default: every core).
    #[arg(long, value_name = "N", value_parser = ranged::<usize>(ranges::THREADS), allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Refuse images with more pixels than this (decompression bombs; up to 2^30).
    #[arg(long, default_value_t = 178_956_970, value_name = "N", value_parser = ranged::<u64>(ranges::MAX_PIXELS), allow_negative_numbers = true)]
    pub max_pixels: u64,
    /// Stop at the first input that fails instead of reporting it and going on.
    #[arg(long)]
    pub fail_fast: bool,
    #[command(flatten)]
    pub precision: PrecisionArgs,
    #[command(flatten)]
    pub net: NetArgs,
}

/// Running over collections larger than one machine: tar shards, parts, resumable outputs.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// One output per input tar shard in DIR (DIR/<shard stem>.<ext>; other files go to
    /// DIR/part-K-of-N.<ext>), each written atomically when complete; a rerun skips outputs
    /// that are complete. Format: --format, default parquet.
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    pub out_dir: Option<PathBuf>,
    /// Keep only the K-th of N parts of the inputs (0-based; e.g. $JOB_COMPLETION_INDEX/8).
    /// Tar shards are split by file, so a worker never reads another worker's shards.
    #[arg(long, value_name = "K/N", allow_hyphen_values = true)]
    pub shard: Option<crate::inputs::split::Part>,
    /// With --out-dir: redo outputs that are already complete.
    #[arg(long, requires = "out_dir")]
    pub overwrite: bool,
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Image files, directories (searched recursively, sorted), .npy tensors, .tar shards of
    /// images, or - to read paths from stdin, one per line.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub scale: ScaleArgs,
    /// How many labels per image (1..=1001, or up to a fine-tuned model's classes) [default: 5,
    /// or all classes of a fine-tuned model with fewer].
    #[arg(short = 'k', long, value_parser = ranged::<usize>(ranges::TOP_K), allow_negative_numbers = true)]
    pub top_k: Option<usize>,
    /// [default: what the --out file's extension says; parquet with --out-dir; else text]
    #[arg(short, long, value_enum)]
    pub format: Option<ClassifyFormat>,
    /// Write results to this file (atomically) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Contact sheet (--format html): thumbnails embedded in the page for the first N images;
    /// the cards after link to the original files, relative to the page.
    #[arg(long, default_value_t = crate::report::contact_sheet::DEFAULT_EMBED_LIMIT, value_name = "N")]
    pub sheet_embed: usize,
}

impl ClassifyArgs {
    /// `--format`, or what the `--out` file's extension says, or parquet for `--out-dir`.
    pub fn format(&self) -> ClassifyFormat {
        let from_out = self.out.as_deref().and_then(ClassifyFormat::from_extension);
        match (self.format, from_out) {
            (Some(f), _) | (None, Some(f)) => f,
            _ if self.scale.out_dir.is_some() => ClassifyFormat::Parquet,
            _ => ClassifyFormat::Text,
        }
    }
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Image files, directories (searched recursively, sorted), .npy tensors, .tar shards of
    /// images, or - for paths on stdin.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub scale: ScaleArgs,
    /// F.npy (float32 [N, D], plus F.npy.paths.txt), F.npz (`features`, `paths`), F.jsonl or
    /// F.parquet; without it, JSON lines on stdout.
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// [default: what the --out file's extension says; parquet with --out-dir; else jsonl]
    #[arg(short, long, value_enum)]
    pub format: Option<EmbedFormat>,
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
    #[arg(
        value_name = "IN",
        required_unless_present_any = ["model", "variant"],
        conflicts_with = "model"
    )]
    pub input: Option<PathBuf>,
    /// A fine-tuned model directory (`mnv1 finetune --out`) instead of IN.
    #[arg(long, value_name = "DIR", conflicts_with = "variant")]
    pub model: Option<PathBuf>,
    /// The variant (050_160, 0.5_160, ...): with IN, names its input size and checks its width;
    /// alone, its weights come from the cache (fetched there on first use).
    #[arg(short = 'm', long)]
    pub variant: Option<String>,
    /// OUT.safetensors, OUT.tflite or OUT.onnx (written atomically).
    #[arg(short, long, value_name = "OUT")]
    pub out: PathBuf,
    /// Where an exported network ends: the classifier (TFLite: probabilities, ONNX: logits) or
    /// the pooled feature vector.
    #[arg(long, value_enum, default_value_t = ExportHeadArg::Classification)]
    pub head: ExportHeadArg,
    /// Input size NxN of an exported model [default: the variant's resolution, or the fine-tuned
    /// model's].
    #[arg(long, value_name = "N", value_parser = ranged::<usize>(ranges::SIZE), allow_negative_numbers = true)]
    pub size: Option<usize>,
    #[command(flatten)]
    pub quantize: QuantizeArgs,
    #[command(flatten)]
    pub net: NetArgs,
}

/// Post-training quantization of a .tflite export.
#[derive(Debug, Args, Clone, Default)]
pub struct QuantizeArgs {
    /// Write a full-integer .tflite (uint8 input and output, int8 inside, per-channel filters),
    /// its ranges calibrated on --calibrate's images.
    #[arg(long, value_enum, requires = "calibrate")]
    pub quantize: Option<QuantizeArg>,
    /// Images (a directory, recursively, or one file) whose activations set the int8 ranges of
    /// --quantize.
    #[arg(long, value_name = "PATH", requires = "quantize")]
    pub calibrate: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QuantizeArg {
    Int8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportHeadArg {
    /// Class probabilities (.tflite) or logits (.onnx), with the labels in the file.
    #[value(alias = "logits")]
    Classification,
    /// The pooled Conv2d_13_pointwise features (the TF-Hub feature_vector module).
    #[value(alias = "features")]
    FeatureVector,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerArg {
    /// SGD with momentum (--momentum).
    Sgd,
    Adam,
}

#[derive(Debug, Args)]
pub struct FinetuneArgs {
    /// Directory with one sub-directory of images per class.
    #[arg(value_name = "DATA_DIR")]
    pub data: PathBuf,
    /// Base model: 050_160, 0.5_160, mobilenet_v1_050_160 or a TF-Hub handle.
    #[arg(short = 'm', long, default_value = "100_224")]
    pub variant: String,
    /// Weights to start from (any format `classify --weights` takes); default: the cache,
    /// fetched there on first use.
    #[arg(short, long, value_name = "PATH")]
    pub weights: Option<PathBuf>,
    #[command(flatten)]
    pub net: NetArgs,
    /// Model directory to write (model.safetensors, labels.txt, manifest.json, report.html).
    #[arg(short, long, value_name = "MODEL_DIR")]
    pub out: PathBuf,
    /// Also write TensorBoard event files here (train/ and validation/ runs, per-epoch loss and
    /// accuracy, as make_image_classifier's --summaries_dir): `tensorboard --logdir DIR`.
    #[arg(long, value_name = "DIR")]
    pub summaries_dir: Option<PathBuf>,
    /// Also export the trained classifier: FILE.tflite (with metadata and labels) or FILE.onnx.
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,
    /// With --export FILE.tflite: write it full-integer (uint8 input and output), its int8
    /// ranges calibrated on the training images.
    #[arg(long, value_enum, requires = "export")]
    pub quantize: Option<QuantizeArg>,
    /// Passes over the training images (1..=100000).
    #[arg(long, default_value_t = 5, value_parser = ranged::<usize>(ranges::EPOCHS), allow_negative_numbers = true)]
    pub epochs: usize,
    /// Images per training step (1..=512; at least 8 advised when batch norm trains).
    #[arg(short, long, default_value_t = 32, value_parser = ranged::<usize>(ranges::TRAIN_BATCH), allow_negative_numbers = true)]
    pub batch_size: usize,
    /// Step size (positive).
    #[arg(
        long,
        default_value_t = 0.005,
        value_name = "LR",
        allow_negative_numbers = true
    )]
    pub learning_rate: f64,
    #[arg(long, value_enum, default_value_t = OptimizerArg::Sgd)]
    pub optimizer: OptimizerArg,
    /// Momentum of --optimizer sgd, in [0, 1).
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub momentum: f64,
    /// Decay of batch norm's moving averages, TF meaning: moving = m*moving + (1-m)*batch; in [0, 1).
    #[arg(
        long,
        default_value_t = 0.99,
        value_name = "M",
        allow_negative_numbers = true
    )]
    pub bn_momentum: f64,
    /// Train every weight, batch norm in train mode (the modules' trainable=True); default:
    /// backbone frozen in inference mode, only the new head trained.
    #[arg(long)]
    pub train_backbone: bool,
    /// Dropout rate before the new head, in [0, 1).
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "RATE",
        allow_negative_numbers = true
    )]
    pub dropout: f64,
    /// Fraction of each class held out for validation, in [0, 1).
    #[arg(
        long,
        default_value_t = 0.2,
        value_name = "F",
        allow_negative_numbers = true
    )]
    pub validation_split: f64,
    /// Random crop (70-100% of each side) and left-right flip of training images.
    #[arg(long)]
    pub augment: bool,
    /// Seed of the split, head initialisation, shuffling, dropout and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Exit non-zero when the final validation accuracy (0..1) is below this.
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub assert_accuracy_at_least: Option<f64>,
    /// Where the network runs.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// CPU threads of --train-backbone on the CPU (1..=1024; default: every core).
    #[arg(long, value_name = "N", value_parser = ranged::<usize>(ranges::THREADS), allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Refuse images with more pixels than this (decompression bombs; up to 2^30).
    #[arg(long, default_value_t = 178_956_970, value_name = "N", value_parser = ranged::<u64>(ranges::MAX_PIXELS), allow_negative_numbers = true)]
    pub max_pixels: u64,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which model: 050_160, mobilenet_v1_050_160, 0.5_160, or a TF-Hub handle URL.
    #[arg(short = 'm', long, default_value = "100_224")]
    pub variant: String,
    /// Weights file (any format `classify` takes); default: the cache, else random weights.
    #[arg(short, long, value_name = "PATH")]
    pub weights: Option<PathBuf>,
    /// Images per forward pass (1..=1024).
    #[arg(short, long, default_value_t = 1, value_name = "B", value_parser = ranged::<usize>(ranges::BATCH), allow_negative_numbers = true)]
    pub batch: usize,
    /// CPU threads (1..=1024; default: every core).
    #[arg(short, long, value_name = "T", value_parser = ranged::<usize>(ranges::THREADS), allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Timed runs (the median and p90 are over these; 1..=1000000).
    #[arg(short, long, default_value_t = 50, value_name = "N", value_parser = ranged::<usize>(ranges::RUNS), allow_negative_numbers = true)]
    pub runs: usize,
    /// Untimed runs first (caches, thread start-up, buffer allocation; 0..=1000000).
    #[arg(long, default_value_t = 5, value_name = "N", value_parser = ranged::<usize>(ranges::WARMUP), allow_negative_numbers = true)]
    pub warmup: usize,
    /// Run at NxN instead of the variant's resolution (32..=1024).
    #[arg(long, value_name = "N", value_parser = ranged::<usize>(ranges::SIZE), allow_negative_numbers = true)]
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
    #[command(flatten)]
    pub precision: PrecisionArgs,
}
