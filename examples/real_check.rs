//! The check against the REAL MobileNet V1 release (not run by `make test`; the data stays
//! outside the repository). Run: `make check-real DATA=../shared/testdata`.
//!
//! DATA must hold `weights/mobilenet_v1_0.25_128.tflite`, `golden/{cup,banana}_128.input` and
//! `golden/{cup,banana}_0.25_128.output` (TensorFlow's own float32 inputs in [-1,1] and softmax
//! outputs), and `imagenet-sample-200/{*.JPEG,labels.tsv}`. It prints, for each golden pair, the
//! max abs difference of mnv1's softmax from TensorFlow's (inputs go through the .npy path), and
//! top-1 / top-5 on the 200 photos with mnv1's own TF-Slim eval preprocessing.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Device;
use mnv1::testing::inputs::npy::read_npy_images;
use mnv1::testing::preprocess::{self, Crop, Preprocess};
use mnv1::testing::{labels, output, weights};
use mnv1::{Engine, Head};

fn read_f32(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Writes TensorFlow's [-1,1] input as the [0,1] float32 NHWC .npy that `mnv1` takes.
fn to_npy(input: &[f32], side: usize, out: &Path) -> Result<()> {
    use npyz::WriterBuilder;
    let file = std::fs::File::create(out)?;
    let shape = [1, side as u64, side as u64, 3];
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(file)
        .begin_nd()?;
    w.extend(input.iter().map(|v| (v + 1.0) / 2.0))?;
    w.finish()?;
    Ok(())
}

fn main() -> Result<()> {
    let data = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: real_check DATA_DIR")?,
    );
    let w = weights::load(&data.join("weights/mobilenet_v1_0.25_128.tflite"))?;
    let engine = Engine::new(&w, Head::Logits, Device::Cpu)?;
    let labels = labels::owned_imagenet();

    let tmp = tempfile::tempdir()?;
    for name in ["cup", "banana"] {
        let input = read_f32(&data.join(format!("golden/{name}_128.input")))?;
        let want = read_f32(&data.join(format!("golden/{name}_0.25_128.output")))?;
        let npy = tmp.path().join(format!("{name}.npy"));
        to_npy(&input, 128, &npy)?;
        let images = read_npy_images(&std::fs::read(&npy)?)?;
        let logits = engine.run(&[&images[0]])?.remove(0);
        let got = output::top_k(&logits, 1001, &labels);
        let mut probs = vec![0f32; 1001];
        for p in &got {
            probs[p.index] = p.probability;
        }
        let diff = probs
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let want_top = want
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap_or(0);
        println!(
            "golden {name}: max |softmax - TensorFlow| = {diff:.3e}; top-1 {} '{}' (TensorFlow: {want_top})",
            got[0].index, got[0].label
        );
    }

    let sample = data.join("imagenet-sample-200");
    let tsv = std::fs::read_to_string(sample.join("labels.tsv"))?;
    let pre = Preprocess {
        size: (128, 128),
        crop: Crop::Central(0.875),
        max_pixels: u64::MAX,
    };
    let (mut n, mut top1, mut top5) = (0, 0, 0);
    for line in tsv.lines().filter(|l| !l.trim().is_empty()) {
        let mut cols = line.split('\t');
        let (Some(file), Some(index)) = (cols.next(), cols.next()) else {
            bail!("bad labels.tsv line: {line}")
        };
        let index: usize = index.parse()?;
        let img = preprocess::preprocess_image(&std::fs::read(sample.join(file))?, &pre)?;
        let logits = engine.run(&[&img])?.remove(0);
        let best = output::top_k(&logits, 5, &labels);
        n += 1;
        top1 += usize::from(best[0].index == index);
        top5 += usize::from(best.iter().any(|p| p.index == index));
    }
    println!(
        "imagenet-sample-200: top-1 {top1}/{n} = {:.3}, top-5 {top5}/{n} = {:.3} (REFERENCE.md, TFLite: 0.505 / 0.760)",
        top1 as f64 / n as f64,
        top5 as f64 / n as f64
    );
    Ok(())
}
