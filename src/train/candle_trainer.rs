//! The candle training path (any device; the only one off the CPU): the new head on a frozen
//! backbone in inference mode (its features computed once where nothing changes them), or the
//! whole candle `TrainNet` with BatchNorm in train mode.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use rand::rngs::StdRng;

use super::data::{self, Example};
use super::head::{dropout, loss_and_correct, ClassifierHead};
use super::network::TrainNet;
use super::optimizer::Optimizer;
use super::{predictions, Evaluation, Meter, Prepared, Settings, TrainError, Trainer};
use crate::model::arch::LOGITS_SCOPE;
use crate::model::MobileNetV1;
use crate::preprocess::Rgb32;
use crate::weights::{RawTensor, Weights};

/// Evaluation batches: large, since nothing is kept for a backward pass.
const EVAL_BATCH: usize = 32;

fn batch_tensor(images: &[&Rgb32], size: usize, device: &Device) -> candle_core::Result<Tensor> {
    let mut data = Vec::with_capacity(images.len() * size * size * 3);
    for img in images {
        data.extend_from_slice(&img.data);
    }
    Tensor::from_vec(data, (images.len(), size, size, 3), device)
}

fn labels_tensor(examples: &[&Example], device: &Device) -> candle_core::Result<Tensor> {
    Tensor::from_vec(
        examples.iter().map(|e| e.label as u32).collect::<Vec<_>>(),
        examples.len(),
        device,
    )
}

/// The backbone as the run uses it.
enum Backbone {
    /// Inference mode, weights untouched; features computed once (validation always, training
    /// images when there is no augmentation).
    Frozen {
        net: MobileNetV1,
        train_features: Option<Tensor>,
        validation_features: Option<Tensor>,
    },
    Trained(TrainNet),
}

impl Backbone {
    fn eval_features(&self, images: &Tensor) -> Result<Tensor, TrainError> {
        Ok(match self {
            Backbone::Frozen { net, .. } => net.features(images)?,
            Backbone::Trained(net) => net.forward_eval(images)?,
        })
    }
}

fn features_of(
    backbone: &Backbone,
    images: &[Rgb32],
    size: usize,
    device: &Device,
) -> Result<Tensor, TrainError> {
    let mut parts = Vec::new();
    for chunk in images.chunks(EVAL_BATCH) {
        let refs: Vec<&Rgb32> = chunk.iter().collect();
        parts.push(backbone.eval_features(&batch_tensor(&refs, size, device)?)?);
    }
    Ok(Tensor::cat(&parts, 0)?)
}

fn evaluate(
    backbone: &Backbone,
    head: &ClassifierHead,
    data: &Prepared,
    s: &Settings,
    device: &Device,
) -> Result<Option<Evaluation>, TrainError> {
    if data.validation.is_empty() {
        return Ok(None);
    }
    let features = match backbone {
        Backbone::Frozen {
            validation_features: Some(f),
            ..
        } => f.clone(),
        _ => features_of(backbone, &data.validation_images, s.size, device)?,
    };
    let refs: Vec<&Example> = data.validation.iter().collect();
    let logits = head.forward(&features)?;
    let (loss, correct) = loss_and_correct(&logits, &labels_tensor(&refs, device)?)?;
    let mut m = Meter::default();
    m.add(&loss, correct, refs.len())?;
    let labels: Vec<usize> = refs.iter().map(|e| e.label).collect();
    Ok(Some(Evaluation {
        figures: m.figures(),
        predictions: predictions::from_logits(&logits, &labels)?,
    }))
}

/// The candle network, its new head and their optimizer.
pub(super) struct CandleTrainer<'a> {
    weights: &'a Weights,
    backbone: Backbone,
    head: ClassifierHead,
    optimizer: Optimizer,
    settings: Settings,
    device: Device,
}

impl<'a> CandleTrainer<'a> {
    /// The backbone (calibrated from the first training images where the weights have no
    /// BatchNorm statistics, frozen features computed once where they do not change) and a
    /// new head, drawing from `rng` in the order the CPU path does.
    pub(super) fn new(
        weights: &'a Weights,
        data: &Prepared,
        s: &Settings,
        device: &Device,
        rng: &mut StdRng,
    ) -> Result<Self, TrainError> {
        let backbone = if s.train_backbone {
            let mut net =
                TrainNet::from_tensors(&weights.tensors, weights.arch, s.bn_momentum, device)?;
            if net.needs_calibration() {
                // A .tflite has no BatchNorm statistics left: take them from the first training
                // images.
                let first: Vec<usize> = (0..data.train.len().min(EVAL_BATCH)).collect();
                net.calibrate(&training_images(data, &first, s, rng, device)?)?;
            }
            Backbone::Trained(net)
        } else {
            frozen(weights, data, s, device)?
        };
        let head = ClassifierHead::new(
            weights.arch.feature_dim(),
            data.classes.len(),
            DType::F32,
            device,
            rng,
        )?;
        let mut vars = head.vars();
        if let Backbone::Trained(net) = &backbone {
            vars.extend(net.vars());
        }
        let optimizer = Optimizer::new(s.optimizer, vars, s.learning_rate)?;
        Ok(Self {
            weights,
            backbone,
            head,
            optimizer,
            settings: s.clone(),
            device: device.clone(),
        })
    }
}

/// A frozen backbone in inference mode maps each image to the same features every epoch:
/// computing them once and training the head on them is exact, and many times faster.
fn frozen(
    weights: &Weights,
    data: &Prepared,
    s: &Settings,
    device: &Device,
) -> Result<Backbone, TrainError> {
    let net = MobileNetV1::from_tensors(
        &weights.tensors,
        weights.arch,
        crate::model::Head::Features,
        device,
    )?;
    let mut frozen = Backbone::Frozen {
        net,
        train_features: None,
        validation_features: None,
    };
    let train_f = if s.augment {
        None
    } else {
        Some(features_of(&frozen, &data.train_images, s.size, device)?)
    };
    let val_f = if data.validation.is_empty() {
        None
    } else {
        Some(features_of(
            &frozen,
            &data.validation_images,
            s.size,
            device,
        )?)
    };
    if let Backbone::Frozen {
        train_features,
        validation_features,
        ..
    } = &mut frozen
    {
        (*train_features, *validation_features) = (train_f, val_f);
    }
    Ok(frozen)
}

impl Trainer for CandleTrainer<'_> {
    fn step(
        &mut self,
        data: &Prepared,
        batch: &[usize],
        rng: &mut StdRng,
    ) -> Result<(f64, usize), TrainError> {
        let (s, device) = (&self.settings, &self.device);
        let examples: Vec<&Example> = batch.iter().map(|&i| &data.train[i]).collect();
        let labels = labels_tensor(&examples, device)?;
        let features = match &mut self.backbone {
            Backbone::Frozen {
                train_features: Some(f),
                ..
            } => {
                let idx = Tensor::from_vec(
                    batch.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                    batch.len(),
                    device,
                )?;
                f.index_select(&idx, 0)?
            }
            Backbone::Frozen {
                net,
                train_features: None,
                ..
            } => net.features(&augmented(data, batch, s, rng, device)?)?,
            Backbone::Trained(net) => {
                net.forward_train(&training_images(data, batch, s, rng, device)?)?
            }
        };
        let logits = self.head.forward(&dropout(&features, s.dropout, rng)?)?;
        let (loss, correct) = loss_and_correct(&logits, &labels)?;
        self.optimizer.step(&loss.backward()?)?;
        Ok((loss.to_dtype(DType::F64)?.to_scalar::<f64>()?, correct))
    }

    fn evaluate(&mut self, data: &Prepared) -> Result<Option<Evaluation>, TrainError> {
        evaluate(
            &self.backbone,
            &self.head,
            data,
            &self.settings,
            &self.device,
        )
    }

    fn tensors(&self) -> Result<BTreeMap<String, RawTensor>, TrainError> {
        let mut tensors = match &self.backbone {
            Backbone::Frozen { .. } => self.weights.tensors.clone(),
            Backbone::Trained(net) => net.to_tensors()?,
        };
        tensors.retain(|name, _| !name.starts_with(LOGITS_SCOPE));
        tensors.extend(self.head.to_tensors()?);
        Ok(tensors)
    }
}

/// The training images `batch` as the backbone sees them: augmented afresh, or as prepared.
fn training_images(
    data: &Prepared,
    batch: &[usize],
    s: &Settings,
    rng: &mut StdRng,
    device: &Device,
) -> candle_core::Result<Tensor> {
    if s.augment {
        augmented(data, batch, s, rng, device)
    } else {
        let refs: Vec<&Rgb32> = batch.iter().map(|&i| &data.train_images[i]).collect();
        batch_tensor(&refs, s.size, device)
    }
}

/// A batch of freshly augmented training images.
fn augmented(
    data: &Prepared,
    batch: &[usize],
    s: &Settings,
    rng: &mut StdRng,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let images: Vec<Rgb32> = batch
        .iter()
        .map(|&i| data::augment(&data.train_images[i], s.size, rng))
        .collect();
    let refs: Vec<&Rgb32> = images.iter().collect();
    batch_tensor(&refs, s.size, device)
}
