//! Seeded random weights in canonical form, with BatchNorm statistics and logits, for benchmarks
//! (speed does not depend on the values) and for checking one implementation against another.

use std::collections::BTreeMap;

use super::RawTensor;
use crate::model::arch::{Arch, LayerKind, LOGITS_SCOPE, NUM_CLASSES};

/// SplitMix64: a few lines, fully determined by the seed, plenty for test weights.
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }

    /// `n` values uniform in [lo, hi).
    pub(crate) fn uniform(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| lo + (hi - lo) * self.next_f32()).collect()
    }
}

/// Every tensor of the classification model for `arch`: He-uniform filters and BatchNorm
/// statistics near identity, so activations stay in ReLU6's working range through all 27 layers.
pub fn random_weights(arch: Arch, seed: u64) -> BTreeMap<String, RawTensor> {
    let mut rng = SplitMix(seed);
    let mut out = BTreeMap::new();
    for layer in arch.layers() {
        let shape = layer.weight_shape();
        let fan_in = layer.kernel()
            * layer.kernel()
            * if layer.kind == LayerKind::Depthwise {
                1
            } else {
                layer.in_channels
            };
        let a = (6.0 / fan_in as f32).sqrt();
        let n: usize = shape.iter().product();
        out.insert(
            layer.weight_name(),
            RawTensor::new(shape, rng.uniform(n, -a, a)),
        );
        let c = layer.out_channels;
        for (leaf, lo, hi) in [
            ("gamma", 0.8, 1.2),
            ("beta", -0.1, 0.3),
            ("moving_mean", -0.1, 0.1),
            ("moving_variance", 0.5, 1.5),
        ] {
            out.insert(
                layer.bn_name(leaf),
                RawTensor::new(vec![c], rng.uniform(c, lo, hi)),
            );
        }
    }
    let f = arch.feature_dim();
    let a = (3.0 / f as f32).sqrt();
    out.insert(
        format!("{LOGITS_SCOPE}/weights"),
        RawTensor::new(
            vec![1, 1, f, NUM_CLASSES],
            rng.uniform(f * NUM_CLASSES, -a, a),
        ),
    );
    out.insert(
        format!("{LOGITS_SCOPE}/biases"),
        RawTensor::new(vec![NUM_CLASSES], rng.uniform(NUM_CLASSES, -0.1, 0.1)),
    );
    out
}
