//! The CPU training path of `--train-backbone` on the CPU: `CpuTrainNet` (NHWC kernels, buffers
//! sized once per run) and its in-place optimizer.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;

use super::cpu_net::{self, Classifier, CpuTrainNet};
use super::data;
use super::optimizer::InPlace;
use super::{predictions, Evaluation, Meter, Prepared, Settings, TrainError, Trainer};
use crate::weights::{RawTensor, Weights};

/// The CPU training network, its optimizer and the batch buffers reused by every step.
pub(super) struct CpuTrainer {
    net: CpuTrainNet,
    optimizer: InPlace,
    settings: Settings,
    pixels: Vec<f32>,
    labels: Vec<usize>,
}

impl CpuTrainer {
    /// The network (calibrated from the first training images where the weights have no
    /// BatchNorm statistics) and a new head, drawing from `rng` in the order the candle path
    /// does (calibration images, head).
    pub(super) fn new(
        weights: &Weights,
        data: &Prepared,
        s: &Settings,
        rng: &mut StdRng,
    ) -> Result<Self, TrainError> {
        let image_len = s.size * s.size * 3;
        let mut pixels = Vec::with_capacity(s.batch_size * image_len);
        let needs_calibration = weights
            .arch
            .layers()
            .iter()
            .any(|l| weights.tensors.contains_key(&l.bias_name()));
        // A .tflite has no BatchNorm statistics left: take them from the first training images.
        let first: Vec<usize> = (0..data.train.len().min(s.batch_size)).collect();
        if needs_calibration {
            fill_training_batch(&mut pixels, data, &first, s, rng);
        }
        let head = Classifier::glorot(weights.arch.feature_dim(), data.classes.len(), rng);
        let mut net = CpuTrainNet::from_tensors(
            &weights.tensors,
            weights.arch,
            head,
            s.bn_momentum,
            s.threads,
        )?;
        net.reserve(s.batch_size, s.size, s.size)?;
        if net.needs_calibration() {
            net.calibrate(&pixels, first.len())?;
        }
        Ok(Self {
            net,
            optimizer: InPlace::new(s.optimizer, s.learning_rate),
            settings: s.clone(),
            pixels,
            labels: Vec::with_capacity(s.batch_size),
        })
    }
}

impl Trainer for CpuTrainer {
    fn step(
        &mut self,
        data: &Prepared,
        batch: &[usize],
        rng: &mut StdRng,
    ) -> Result<(f64, usize), TrainError> {
        let s = &self.settings;
        fill_training_batch(&mut self.pixels, data, batch, s, rng);
        self.labels.clear();
        self.labels
            .extend(batch.iter().map(|&i| data.train[i].label));
        let step = self.net.train_step(
            &self.pixels,
            &self.labels,
            s.dropout,
            rng,
            &mut self.optimizer,
        )?;
        Ok((step.loss, step.correct))
    }

    fn evaluate(&mut self, data: &Prepared) -> Result<Option<Evaluation>, TrainError> {
        evaluate_cpu(&mut self.net, data, &self.settings, &mut self.pixels)
    }

    fn tensors(&self) -> Result<BTreeMap<String, RawTensor>, TrainError> {
        Ok(self.net.to_tensors())
    }
}

/// Loss and accuracy on the validation set in inference mode, a batch at a time.
fn evaluate_cpu(
    net: &mut CpuTrainNet,
    data: &Prepared,
    s: &Settings,
    pixels: &mut Vec<f32>,
) -> Result<Option<Evaluation>, TrainError> {
    if data.validation.is_empty() {
        return Ok(None);
    }
    let mut meter = Meter::default();
    let mut predictions = Vec::with_capacity(data.validation.len());
    for (images, examples) in data
        .validation_images
        .chunks(s.batch_size)
        .zip(data.validation.chunks(s.batch_size))
    {
        pixels.clear();
        images
            .iter()
            .for_each(|img| pixels.extend_from_slice(&img.data));
        let logits = net.eval_logits(pixels, images.len())?;
        let labels: Vec<usize> = examples.iter().map(|e| e.label).collect();
        let (loss, correct) = cpu_net::cross_entropy(&logits, &labels);
        meter.add_value(loss, correct, labels.len());
        let k = logits.len() / labels.len();
        let logits = Tensor::from_vec(logits, (labels.len(), k), &Device::Cpu)?;
        predictions.extend(predictions::from_logits(&logits, &labels)?);
    }
    Ok(Some(Evaluation {
        figures: meter.figures(),
        predictions,
    }))
}

/// The pixels of training images `batch` as the backbone sees them (augmented afresh, or as
/// prepared), NHWC, into `pixels`.
fn fill_training_batch(
    pixels: &mut Vec<f32>,
    data: &Prepared,
    batch: &[usize],
    s: &Settings,
    rng: &mut StdRng,
) {
    pixels.clear();
    for &i in batch {
        if s.augment {
            pixels.extend_from_slice(&data::augment(&data.train_images[i], s.size, rng).data);
        } else {
            pixels.extend_from_slice(&data.train_images[i].data);
        }
    }
}
