//! `mnv1 bench`: the network alone, timed like TensorFlow Lite's benchmark_model: warm-up runs,
//! then timed runs on one fixed input; median, p90, images/s and peak memory.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use super::Status;
use crate::cli::BenchArgs;
use crate::config::{
    check_size, find_weights, load_weights_for, resolve_precision, select_device, CalibrationSource,
};
use crate::engine::{default_threads, Engine, Head};
use crate::model::cpu::Profile;
use crate::model::{Arch, Precision};
use crate::preprocess::Preprocess;
use crate::registry::Registry;
use crate::weights::{random::random_weights, Weights};

#[derive(Serialize)]
struct Report {
    variant: String,
    batch: usize,
    threads: usize,
    size: usize,
    /// fp32, bf16 or int8.
    precision: String,
    ms_median: f64,
    ms_p90: f64,
    images_per_s: f64,
    /// None where the OS does not say (the figure comes from /proc on Linux).
    peak_rss_mb: Option<f64>,
    /// The weights file, or `random`.
    weights: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    layers: Option<Vec<LayerTime>>,
}

#[derive(Serialize)]
struct LayerTime {
    layer: String,
    ms_median: f64,
}

pub fn run(args: &BenchArgs, quiet: bool) -> Result<Status> {
    let variant = Registry::builtin()
        .resolve(&args.variant, Head::Logits)?
        .clone();
    let size = args.size.unwrap_or(variant.resolution);
    check_size(size, args.batch, "--size", "--batch")?;
    let threads = args.threads.unwrap_or_else(default_threads);
    let arch = Arch::new(variant.depth_multiplier);
    let (mut weights, source) = match find_weights(args.weights.as_deref(), &variant)? {
        Some(path) => {
            // The same width check as classify: the variant reported is the one that runs.
            let w = load_weights_for(&variant, &path)?;
            (w, path.display().to_string())
        }
        None => {
            if !quiet {
                eprintln!("mnv1: no weights for {} at hand: timing random weights (speed does not depend on them)", variant.id);
            }
            (
                Weights {
                    tensors: random_weights(arch, 1),
                    arch,
                    format: "random",
                    quantized: None,
                },
                String::from("random"),
            )
        }
    };
    let device = select_device(args.device)?;
    // The images a --calibrate directory gives are prepared as classify prepares its inputs.
    let preprocess = Preprocess::new(size, size);
    let calibration = CalibrationSource {
        path: args.precision.calibrate.as_deref(),
        preprocess: &preprocess,
        threads,
        synthetic: true,
        quiet,
    };
    let precision = resolve_precision(
        &mut weights,
        args.precision.precision.map(Precision::from),
        &calibration,
        &device,
        Path::new(&source),
    )?;
    let engine = Engine::with_threads(&weights, Head::Logits, device, threads, precision)
        .with_context(|| source.clone())?;
    drop(weights);
    if !quiet {
        eprintln!(
            "mnv1: {} at {size}x{size}, batch {}, {}",
            variant.id,
            args.batch,
            engine.describe()
        );
    }

    // A fixed input in [0,1]; the values do not matter for speed.
    let n = args.batch;
    let input: Vec<f32> = (0..n * size * size * 3)
        .map(|i| ((i * 7919) % 256) as f32 / 255.0)
        .collect();
    let once = |profile: Option<&mut Profile>| engine.forward(&input, n, size, size, profile);
    for _ in 0..args.warmup {
        once(None)?;
    }
    let mut times = Vec::with_capacity(args.runs);
    let mut profiles: Vec<Profile> = Vec::new();
    for _ in 0..args.runs {
        let mut profile = Profile::new();
        let start = Instant::now();
        once(args.profile.then_some(&mut profile))?;
        times.push(start.elapsed());
        if args.profile {
            profiles.push(profile);
        }
    }
    let ms_median = ms(percentile(&mut times, 0.5));
    let report = Report {
        variant: variant.id.clone(),
        batch: n,
        threads,
        size,
        precision: precision.to_string(),
        ms_median,
        ms_p90: ms(percentile(&mut times, 0.9)),
        images_per_s: n as f64 * 1e3 / ms_median,
        peak_rss_mb: peak_rss_mb(),
        weights: source,
        layers: args.profile.then(|| layer_medians(&profiles)),
    };
    print(&report, args.json)?;
    Ok(Status::Ok)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `q` quantile (nearest rank) of non-empty `times`.
fn percentile(times: &mut [Duration], q: f64) -> Duration {
    times.sort_unstable();
    let rank = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len());
    times[rank - 1]
}

/// Median time of each layer over all profiled runs, in network order.
fn layer_medians(profiles: &[Profile]) -> Vec<LayerTime> {
    let Some(first) = profiles.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|i| {
            let mut t: Vec<Duration> = profiles.iter().map(|p| p[i].1).collect();
            LayerTime {
                layer: first[i].0.clone(),
                ms_median: ms(percentile(&mut t, 0.5)),
            }
        })
        .collect()
}

fn print(r: &Report, json: bool) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(r)?)?;
        return Ok(());
    }
    let rss = r
        .peak_rss_mb
        .map_or_else(|| String::from("n/a"), |m| format!("{m:.1} MB"));
    writeln!(
        out,
        "{} {}x{} {} batch {} threads {}: median {:.3} ms, p90 {:.3} ms, {:.1} images/s, peak RSS {rss}, weights {}",
        r.variant, r.size, r.size, r.precision, r.batch, r.threads, r.ms_median, r.ms_p90, r.images_per_s, r.weights
    )?;
    if let Some(layers) = &r.layers {
        let total: f64 = layers.iter().map(|l| l.ms_median).sum();
        writeln!(out, "{:<24} {:>10} {:>7}", "layer", "median ms", "share")?;
        for l in layers {
            writeln!(
                out,
                "{:<24} {:>10.3} {:>6.1}%",
                l.layer,
                l.ms_median,
                100.0 * l.ms_median / total
            )?;
        }
    }
    Ok(())
}

/// The process's peak resident set (VmHWM), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
