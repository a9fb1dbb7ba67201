//! Writes seeded random weights for one depth multiplier as canonical safetensors, e.g. to
//! measure `mnv1 classify`'s memory or speed without the real checkpoints (the values do not
//! change either). Run: `cargo run --release --example random_weights -- 1.0 /tmp/w100.safetensors`

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use mnv1::testing::model::arch::MULTIPLIERS;
use mnv1::testing::model::Arch;
use mnv1::testing::weights::random::random_weights;
use mnv1::testing::weights::safetensors::{write_canonical, CanonicalMetadata};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [multiplier, out] = args.as_slice() else {
        bail!("usage: random_weights MULTIPLIER OUT.safetensors")
    };
    let m: f64 = multiplier
        .parse()
        .context("MULTIPLIER: 0.25, 0.5, 0.75 or 1.0")?;
    if !MULTIPLIERS.contains(&m) {
        bail!("MULTIPLIER must be one of {MULTIPLIERS:?}");
    }
    let metadata = CanonicalMetadata {
        depth_multiplier: m,
        source_format: "random".to_string(),
        extra: Vec::new(),
    };
    write_canonical(
        &random_weights(Arch::new(m), 1),
        metadata,
        &PathBuf::from(out),
    )?;
    eprintln!("wrote {out}");
    Ok(())
}
