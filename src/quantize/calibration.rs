//! Calibration: the fp32 network run over representative images, each activation tensor's
//! min and max recorded (TFLite's calibrator does the same, `MinMax::Update` over every
//! invocation). The ranges are of the tensors an int8 model stores: every body layer's output
//! (after its ReLU6) and the logits; the pool's output takes its input's parameters (TFLite
//! requires them equal), so its range is not needed.

use crate::model::kernels::Isa;
use crate::model::{Arch, CpuMobileNet, Head, ModelError};
use crate::weights::Weights;

/// The smallest and largest value a tensor took over the calibration images.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub min: f32,
    pub max: f32,
}

impl Range {
    const EMPTY: Range = Range {
        min: f32::INFINITY,
        max: f32::NEG_INFINITY,
    };

    fn widen(&mut self, values: &[f32]) {
        for &v in values {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
    }
}

/// The calibrated ranges of one network at one input size.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// The images' (height, width): the quantized model's fixed input size.
    pub input_size: (usize, usize),
    /// Conv2d_0 to Conv2d_13_pointwise's outputs.
    pub body: Vec<Range>,
    /// The logits, for weights with a classifier.
    pub logits: Option<Range>,
    /// How many images the ranges come from.
    pub images: usize,
    /// The first [`SAMPLE_IMAGES`] of them, `[n, h, w, 3]` in [0,1]: what bias correction
    /// measures the quantized network's shift on.
    pub samples: Vec<f32>,
}

/// Images kept for bias correction: enough for stable per-channel means, few enough to bound
/// memory (128 x 224 x 224 x 3 floats is 77 MB).
pub const SAMPLE_IMAGES: usize = 128;

/// Runs float weights' fp32 network over batches of images and keeps the ranges.
pub struct Calibrator {
    net: CpuMobileNet,
    arch: Arch,
    classifier: bool,
    input_size: (usize, usize),
    /// Body layers, then the pooled features (observed, unused), then the logits.
    ranges: Vec<Range>,
    images: usize,
    samples: Vec<f32>,
}

impl Calibrator {
    /// A calibrator for float `weights` at `input_size`, on `threads` threads.
    pub fn new(
        weights: &Weights,
        input_size: (usize, usize),
        threads: usize,
    ) -> Result<Self, ModelError> {
        let classifier = weights.has_logits();
        let head = if classifier {
            Head::Logits
        } else {
            Head::Features
        };
        let net = CpuMobileNet::from_tensors(
            &weights.tensors,
            weights.arch,
            head,
            threads,
            Isa::from_env()?,
        )?;
        let tensors = weights.arch.layers().len() + 1 + usize::from(classifier);
        Ok(Self {
            net,
            arch: weights.arch,
            classifier,
            input_size,
            ranges: vec![Range::EMPTY; tensors],
            images: 0,
            samples: Vec::new(),
        })
    }

    /// The images' side the calibrator takes.
    pub fn input_size(&self) -> (usize, usize) {
        self.input_size
    }

    /// Widens the ranges with `n` NHWC images `[n, h, w, 3]` in [0,1] at the input size.
    pub fn add(&mut self, images: &[f32], n: usize) -> Result<(), ModelError> {
        let (h, w) = self.input_size;
        let mut tensor = 0;
        let ranges = &mut self.ranges;
        self.net.observe(images, (n, h, w), &mut |values| {
            ranges[tensor].widen(values);
            tensor += 1;
        })?;
        debug_assert_eq!(tensor, ranges.len());
        let keep = n.min(SAMPLE_IMAGES.saturating_sub(self.images));
        self.samples.extend_from_slice(&images[..keep * h * w * 3]);
        self.images += n;
        Ok(())
    }

    /// How many images the ranges hold so far.
    pub fn images(&self) -> usize {
        self.images
    }

    /// The ranges, once at least one image has been added.
    pub fn finish(self) -> Option<Calibration> {
        if self.images == 0 {
            return None;
        }
        let body_len = self.arch.layers().len();
        Some(Calibration {
            input_size: self.input_size,
            body: self.ranges[..body_len].to_vec(),
            logits: self.classifier.then(|| self.ranges[body_len + 1]),
            images: self.images,
            samples: self.samples,
        })
    }
}
