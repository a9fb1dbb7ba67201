//! The network to export: MobileNet V1's layer table (`model::arch`) with every BatchNorm folded
//! into its convolution exactly as mnv1 runs it (`model::params::fold`), and the classifier.

use crate::model::arch::{Arch, Layer};
use crate::model::params::{fold, logits_layer};
use crate::model::{Head, ModelError};
use crate::weights::Weights;

/// One conv + BN + ReLU6 layer, BN folded: the filter in TensorFlow layout (HWIO, or
/// [kh, kw, C, 1] for depthwise) and the bias.
pub struct FoldedLayer {
    pub layer: Layer,
    pub filter: Vec<f32>,
    pub bias: Vec<f32>,
}

/// The classifier: weights [C, K] (row-major, the `[1,1,C,K]` filter) and biases [K].
pub struct Classifier {
    pub weights: Vec<f32>,
    pub biases: Vec<f32>,
}

impl Classifier {
    pub fn classes(&self) -> usize {
        self.biases.len()
    }
}

pub struct FoldedNetwork {
    pub arch: Arch,
    pub layers: Vec<FoldedLayer>,
    /// None: the export ends at the pooled features.
    pub classifier: Option<Classifier>,
}

impl FoldedNetwork {
    /// Folds `w` up to `head` (`Head::Logits`: an error when `w` has no logits layer).
    pub fn new(w: &Weights, head: Head) -> Result<Self, ModelError> {
        let layers = w
            .arch
            .layers()
            .into_iter()
            .map(|layer| {
                let (filter, bias) = fold(&w.tensors, &layer)?;
                Ok(FoldedLayer {
                    layer,
                    filter,
                    bias,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let classifier = if head == Head::Logits {
            let (weights, biases) = logits_layer(&w.tensors, w.arch)?;
            Some(Classifier {
                weights: weights.data.clone(),
                biases: biases.data.clone(),
            })
        } else {
            None
        };
        Ok(Self {
            arch: w.arch,
            layers,
            classifier,
        })
    }

    pub fn feature_dim(&self) -> usize {
        self.arch.feature_dim()
    }
}
