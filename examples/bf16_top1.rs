//! `--precision bf16` against fp32 on the REAL 0.25_128 weights and the 200 labelled photos (not
//! run by `make test`; the data stays outside the repository):
//! `cargo run --release --example bf16_top1 -- ../shared/testdata`.
//!
//! DATA must hold `weights/mobilenet_v1_0.25_128.tflite` and `imagenet-sample-200/{*.JPEG,
//! labels.tsv}`. Each photo goes through mnv1's TF-Slim eval preprocessing (as in
//! examples/real_check.rs) and then through both CPU networks: the fp32 one and the one with
//! bf16 products (AVX512_BF16 needed). Prints the top-1 agreement of the two, the top-1 accuracy
//! of each, and the largest logit difference.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use mnv1::testing::model::kernels::Isa;
use mnv1::testing::model::{CpuMobileNet, Head};
use mnv1::testing::preprocess::{self, Crop, Preprocess};
use mnv1::testing::weights;

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

fn main() -> Result<()> {
    let data = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: bf16_top1 DATA_DIR")?,
    );
    let w = weights::load(&data.join("weights/mobilenet_v1_0.25_128.tflite"))?;
    let isa = Isa::from_env()?;
    let fp32 = CpuMobileNet::from_tensors(&w.tensors, w.arch, Head::Logits, 1, isa)?;
    let bf16 = CpuMobileNet::from_tensors_bf16(&w.tensors, w.arch, Head::Logits, 1, isa)?;
    let sample = data.join("imagenet-sample-200");
    let tsv = std::fs::read_to_string(sample.join("labels.tsv"))?;
    let pre = Preprocess {
        size: (128, 128),
        crop: Crop::Central(0.875),
        max_pixels: u64::MAX,
    };
    let (mut n, mut agree, mut right_fp32, mut right_bf16) = (0, 0, 0, 0);
    let mut largest = 0f32;
    for line in tsv.lines().filter(|l| !l.trim().is_empty()) {
        let mut cols = line.split('\t');
        let (Some(file), Some(index)) = (cols.next(), cols.next()) else {
            bail!("bad labels.tsv line: {line}")
        };
        let index: usize = index.parse()?;
        let img = preprocess::preprocess_image(&std::fs::read(sample.join(file))?, &pre)?;
        let (h, wd) = (img.height, img.width);
        let a = fp32.logits(&img.data, 1, h, wd)?;
        let b = bf16.logits(&img.data, 1, h, wd)?;
        largest = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(largest, f32::max);
        let (ta, tb) = (argmax(&a), argmax(&b));
        n += 1;
        agree += usize::from(ta == tb);
        right_fp32 += usize::from(ta == index);
        right_bf16 += usize::from(tb == index);
    }
    println!(
        "imagenet-sample-200, 0.25_128 ({isa}): bf16 top-1 = fp32 top-1 on {agree}/{n} = {:.3}; \
         top-1 accuracy fp32 {right_fp32}/{n}, bf16 {right_bf16}/{n}; largest |logit bf16 - fp32| \
         {largest:.4}",
        agree as f64 / n as f64
    );
    Ok(())
}
