//! The MobileNet V1 layer table (MOBILENET_V1.md, "Architecture") for one depth multiplier, with
//! the canonical TF-Slim tensor names and shapes every weights source is checked against.

/// BatchNorm epsilon of every TF-Slim MobileNet V1 layer (not candle's usual 1e-5).
pub(crate) const BN_EPSILON: f64 = 1e-3;
/// Number of ImageNet logits: index 0 is `background`.
pub(crate) const NUM_CLASSES: usize = 1001;
pub(crate) const SCOPE: &str = "MobilenetV1";
pub const LOGITS_SCOPE: &str = "MobilenetV1/Logits/Conv2d_1c_1x1";

const DEPTHWISE_STRIDES: [usize; 13] = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1];
const POINTWISE_DEPTHS: [usize; 13] = [
    64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024,
];
pub const MULTIPLIERS: [f64; 4] = [0.25, 0.5, 0.75, 1.0];

/// Where the network ends: TF-Hub's `classification` module (the classifier's logits) or its
/// `feature_vector` module (the pooled features). One enum for the registry's modules, the
/// engine's outputs and the exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub enum Head {
    /// 1001 logits (index 0 = background), or K for a fine-tuned head.
    #[serde(rename = "classification")]
    Logits,
    /// The pooled feature vector.
    #[serde(rename = "feature_vector")]
    Features,
}

impl Head {
    /// The TF-Hub module name: `classification` or `feature_vector`.
    pub(crate) fn hub_module(self) -> &'static str {
        match self {
            Head::Logits => "classification",
            Head::Features => "feature_vector",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LayerKind {
    /// Conv2d_0: 3x3 full convolution on the RGB input.
    Conv,
    /// Conv2d_i_depthwise: 3x3, channel multiplier 1.
    Depthwise,
    /// Conv2d_i_pointwise: 1x1 convolution.
    Pointwise,
}

/// One conv + BN + ReLU6 layer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Layer {
    /// Scope under `MobilenetV1/`, e.g. `Conv2d_3_depthwise`.
    pub(crate) name: String,
    pub(crate) kind: LayerKind,
    pub(crate) in_channels: usize,
    pub(crate) out_channels: usize,
    pub(crate) stride: usize,
}

impl Layer {
    pub(crate) fn kernel(&self) -> usize {
        if self.kind == LayerKind::Pointwise {
            1
        } else {
            3
        }
    }

    /// Canonical name of the filter: `weights`, or `depthwise_weights` for depthwise layers.
    pub(crate) fn weight_name(&self) -> String {
        let leaf = if self.kind == LayerKind::Depthwise {
            "depthwise_weights"
        } else {
            "weights"
        };
        format!("{SCOPE}/{}/{leaf}", self.name)
    }

    /// The filter's shape in TensorFlow layout: HWIO, or [kh, kw, C, 1] for depthwise.
    pub(crate) fn weight_shape(&self) -> Vec<usize> {
        let k = self.kernel();
        match self.kind {
            LayerKind::Depthwise => vec![k, k, self.in_channels, 1],
            _ => vec![k, k, self.in_channels, self.out_channels],
        }
    }

    /// `MobilenetV1/<layer>/BatchNorm/<leaf>` for gamma, beta, moving_mean, moving_variance.
    pub(crate) fn bn_name(&self, leaf: &str) -> String {
        format!("{SCOPE}/{}/BatchNorm/{leaf}", self.name)
    }

    /// Bias of a layer whose BatchNorm was folded away by the source (.tflite).
    pub(crate) fn bias_name(&self) -> String {
        format!("{SCOPE}/{}/biases", self.name)
    }
}

/// The network for one depth multiplier; any input resolution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arch {
    pub depth_multiplier: f64,
}

impl Arch {
    pub fn new(depth_multiplier: f64) -> Self {
        Self { depth_multiplier }
    }

    /// TF-Slim's `depth(d) = max(int(d * multiplier), 8)`.
    pub(crate) fn depth(&self, d: usize) -> usize {
        ((d as f64 * self.depth_multiplier) as usize).max(8)
    }

    /// Conv2d_0, then Conv2d_1..13 as depthwise/pointwise pairs: 27 layers.
    pub(crate) fn layers(&self) -> Vec<Layer> {
        let mut channels = self.depth(32);
        let mut layers = vec![Layer {
            name: "Conv2d_0".into(),
            kind: LayerKind::Conv,
            in_channels: 3,
            out_channels: channels,
            stride: 2,
        }];
        for (i, (&stride, &d)) in DEPTHWISE_STRIDES.iter().zip(&POINTWISE_DEPTHS).enumerate() {
            let out = self.depth(d);
            layers.push(Layer {
                name: format!("Conv2d_{}_depthwise", i + 1),
                kind: LayerKind::Depthwise,
                in_channels: channels,
                out_channels: channels,
                stride,
            });
            layers.push(Layer {
                name: format!("Conv2d_{}_pointwise", i + 1),
                kind: LayerKind::Pointwise,
                in_channels: channels,
                out_channels: out,
                stride: 1,
            });
            channels = out;
        }
        layers
    }

    /// Length of the feature vector (pooled Conv2d_13_pointwise): 256 / 512 / 768 / 1024.
    pub fn feature_dim(&self) -> usize {
        self.depth(1024)
    }

    /// Multiplier whose Conv2d_0 has `filters` output channels (8/16/24/32).
    pub(crate) fn from_first_conv_filters(filters: usize) -> Option<Arch> {
        MULTIPLIERS
            .iter()
            .map(|&m| Arch::new(m))
            .find(|a| a.depth(32) == filters)
    }

    /// Trainable parameters: conv weights, BN gamma and beta, logits weights and biases.
    pub(crate) fn trainable_params(&self) -> usize {
        let layers: usize = self
            .layers()
            .iter()
            .map(|l| l.weight_shape().iter().product::<usize>() + 2 * l.out_channels)
            .sum();
        layers + self.feature_dim() * NUM_CLASSES + NUM_CLASSES
    }

    /// Multiply-accumulates of one image at `h` x `w`, logits included.
    pub(crate) fn macs(&self, h: usize, w: usize) -> u64 {
        let (mut h, mut w) = (h, w);
        let mut total = 0u64;
        for l in self.layers() {
            h = h.div_ceil(l.stride);
            w = w.div_ceil(l.stride);
            let per_pixel = l.weight_shape().iter().product::<usize>();
            total += (h * w * per_pixel) as u64;
        }
        total + (self.feature_dim() * NUM_CLASSES) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trainable_parameter_counts_match_the_published_exact_figures() {
        // Exact counts from ../shared/MOBILENET_V1.md (published table rounds to 0.47/1.34/2.59/4.24 M);
        // resolution-independent by construction (no layer's weights depend on the input size).
        let expected = [470_329, 1_332_105, 2_586_329, 4_233_001];
        for (m, want) in MULTIPLIERS.iter().zip(expected) {
            assert_eq!(Arch::new(*m).trainable_params(), want, "multiplier {m}");
        }
    }

    #[test]
    fn widths_follow_depth_rule() {
        for (m, first, last) in [
            (0.25, 8, 256),
            (0.5, 16, 512),
            (0.75, 24, 768),
            (1.0, 32, 1024),
        ] {
            let a = Arch::new(m);
            let layers = a.layers();
            assert_eq!(layers.len(), 27);
            assert_eq!(layers[0].out_channels, first);
            assert_eq!(layers[26].out_channels, last);
            assert_eq!(a.feature_dim(), last);
            assert_eq!(Arch::from_first_conv_filters(first), Some(a));
            for pair in layers.windows(2) {
                assert_eq!(pair[0].out_channels, pair[1].in_channels);
            }
        }
    }

    #[test]
    fn macs_match_the_published_base_network() {
        // MOBILENET_V1.md: base 1.0_224 network alone 567,716,352 MACs; the table's 569 M adds logits.
        let a = Arch::new(1.0);
        assert_eq!(a.macs(224, 224) - 1024 * 1001, 567_716_352);
        assert_eq!(a.macs(224, 224) / 1_000_000, 568); // published rounds up: 569
    }
}
