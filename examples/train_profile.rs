//! Per-layer profile of the CPU training path: forward and backward time of every layer, summed
//! over training steps on random images with seeded random weights (bench/README.md, "Training").
//! Run: `cargo run --release --example train_profile -- 1.0 224 16 2 [STEPS]`
//! (multiplier, input size, batch, threads; STEPS defaults to 6, the first is not counted).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mnv1::testing::model::arch::MULTIPLIERS;
use mnv1::testing::model::Arch;
use mnv1::testing::train::cpu_net::{Classifier, CpuTrainNet};
use mnv1::testing::train::optimizer::{InPlace, OptimizerKind};
use mnv1::testing::weights::random::random_weights;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        bail!("usage: train_profile MULTIPLIER SIZE BATCH THREADS [STEPS]");
    }
    let m: f64 = args[0].parse().context("MULTIPLIER")?;
    if !MULTIPLIERS.contains(&m) {
        bail!("MULTIPLIER must be one of {MULTIPLIERS:?}");
    }
    let size: usize = args[1].parse().context("SIZE")?;
    let batch: usize = args[2].parse().context("BATCH")?;
    let threads: usize = args[3].parse().context("THREADS")?;
    let steps: usize = args.get(4).map_or(Ok(6), |s| s.parse()).context("STEPS")?;
    let arch = Arch::new(m);
    let mut rng = StdRng::seed_from_u64(0);
    let head = Classifier::glorot(arch.feature_dim(), 4, &mut rng);
    let mut net = CpuTrainNet::from_tensors(&random_weights(arch, 1), arch, head, 0.99, threads)?;
    net.reserve(batch, size, size)?;
    let images: Vec<f32> = (0..batch * size * size * 3)
        .map(|_| rng.random::<f32>())
        .collect();
    let labels: Vec<usize> = (0..batch).map(|i| i % 4).collect();
    let mut optimizer = InPlace::new(OptimizerKind::Sgd { momentum: 0.9 }, 0.005);
    net.train_step(&images, &labels, 0.0, &mut rng, &mut optimizer)?;
    net.record_times();
    let start = Instant::now();
    for _ in 1..steps {
        net.train_step(&images, &labels, 0.0, &mut rng, &mut optimizer)?;
    }
    let per_step = start.elapsed() / (steps - 1).max(1) as u32;
    let times = net.times().cloned().unwrap_or_default();
    let per = |d: Duration| d.as_secs_f64() * 1e3 / (steps - 1).max(1) as f64;
    println!("| layer | forward ms | backward ms |");
    println!("|---|---|---|");
    let (mut f_total, mut b_total) = (0.0, 0.0);
    for (name, f) in &times.forward {
        let b = times
            .backward
            .iter()
            .find(|(n, _)| n == name)
            .map_or(Duration::ZERO, |(_, d)| *d);
        f_total += per(*f);
        b_total += per(b);
        println!("| {name} | {:.2} | {:.2} |", per(*f), per(b));
    }
    println!("| all layers | {f_total:.1} | {b_total:.1} |");
    println!(
        "step: {:.1} ms for {batch} images ({:.1} images/s); the rest of the step (pool, head, update) {:.1} ms",
        per_step.as_secs_f64() * 1e3,
        batch as f64 / per_step.as_secs_f64(),
        per_step.as_secs_f64() * 1e3 - f_total - b_total
    );
    Ok(())
}
