//! `cargo bench --bench forward`: the CPU fast path's forward pass on random weights (speed does
//! not depend on the values) for the smallest and the largest checkpoint, batch 1 on one thread
//! and batch 32 on every core; median of timed runs after warm-up. `mnv1 bench` measures any
//! variant, batch and thread count the same way. Under `cargo test` (no `--bench` argument) it
//! runs each case once, as a smoke test.

use std::time::{Duration, Instant};

use mnv1::default_threads;
use mnv1::testing::model::kernels::Isa;
use mnv1::testing::model::{Arch, CpuMobileNet, Head};
use mnv1::testing::weights::random::random_weights;

fn median(mut t: Vec<Duration>) -> Duration {
    t.sort_unstable();
    t[t.len() / 2]
}

fn main() {
    let timed = std::env::args().any(|a| a == "--bench");
    let (warmup, runs) = if timed { (5, 30) } else { (0, 1) };
    for (multiplier, size) in [(0.25, 128), (1.0, 224)] {
        let arch = Arch::new(multiplier);
        let tensors = random_weights(arch, 1);
        for (batch, threads) in [(1, 1), (32, default_threads())] {
            let isa = Isa::from_env().expect("MNV1_ISA");
            let model = CpuMobileNet::from_tensors(&tensors, arch, Head::Logits, threads, isa)
                .expect("model");
            let input: Vec<f32> = (0..batch * size * size * 3)
                .map(|i| (i % 255) as f32 / 255.0)
                .collect();
            let once = || {
                let start = Instant::now();
                std::hint::black_box(model.logits(&input, batch, size, size).expect("forward"));
                start.elapsed()
            };
            (0..warmup).for_each(|_| {
                once();
            });
            let t = median((0..runs).map(|_| once()).collect());
            println!(
                "forward {multiplier}_{size} batch {batch} threads {threads}: median {:.3} ms ({:.1} images/s)",
                t.as_secs_f64() * 1e3,
                batch as f64 / t.as_secs_f64()
            );
        }
    }
}
