//! The model on its device: batches of preprocessed images in, rows of logits or features out.

use candle_core::{Device, Tensor};

use crate::model::{Arch, ModelError, MobileNetV1};
use crate::preprocess::Rgb32;
use crate::weights::Weights;

/// Which output of the network a command wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    /// 1001 logits (index 0 = background).
    Logits,
    /// The pooled feature vector.
    Features,
}

pub struct Engine {
    model: MobileNetV1,
    device: Device,
}

impl Engine {
    pub fn new(weights: &Weights, head: Head, device: Device) -> Result<Self, ModelError> {
        let model = MobileNetV1::from_tensors(&weights.tensors, weights.arch, head == Head::Logits, &device)?;
        Ok(Self { model, device })
    }

    pub fn arch(&self) -> Arch {
        self.model.arch()
    }

    /// Number of logits (1001, or K for a fine-tuned model).
    pub fn num_classes(&self) -> usize {
        self.model.num_classes()
    }

    /// One forward pass over same-sized images; one row per image.
    pub fn run(&self, images: &[&Rgb32], head: Head) -> Result<Vec<Vec<f32>>, ModelError> {
        let Some(first) = images.first() else { return Ok(Vec::new()) };
        let (h, w) = (first.height, first.width);
        let mut data = Vec::with_capacity(images.len() * h * w * 3);
        for img in images {
            debug_assert_eq!((img.height, img.width), (h, w));
            data.extend_from_slice(&img.data);
        }
        let x = Tensor::from_vec(data, (images.len(), h, w, 3), &self.device)?;
        let y = match head {
            Head::Logits => self.model.logits(&x)?,
            Head::Features => self.model.features(&x)?,
        };
        Ok(y.to_vec2()?)
    }
}
