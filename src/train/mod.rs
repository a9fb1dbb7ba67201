//! `mnv1 finetune`: a new K-way head on a MobileNet V1 backbone, trained on class folders, with
//! the backbone either frozen in inference mode (default) or trained with BatchNorm in train mode
//! (the TF-Hub modules' `trainable=True`). The inference network (`crate::model`) folds BatchNorm;
//! training needs it unfolded: on the CPU `cpu_net::CpuTrainNet` (NHWC kernels, buffers sized
//! once per run), on other devices the candle `network::TrainNet`.

pub mod cpu_net;
pub(crate) mod data;
pub mod head;
pub(crate) mod kernels;
pub(crate) mod manifest;
pub mod network;
pub mod optimizer;
pub(crate) mod predictions;

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use self::cpu_net::{Classifier, CpuTrainNet};
use self::data::{DataError, Example};
use self::head::{dropout, loss_and_correct, ClassifierHead};
use self::manifest::{EpochFigures, Figures};
use self::network::TrainNet;
use self::optimizer::{InPlace, Optimizer, OptimizerKind};
use self::predictions::Predicted;
use crate::model::arch::LOGITS_SCOPE;
use crate::model::{MobileNetV1, ModelError};
use crate::preprocess::Rgb32;
use crate::weights::{RawTensor, Weights};

/// A validation loss this many times the untrained head's (at least 1) has diverged: a
/// cross-entropy in the thousands means logits blown up, not overfitting.
const EXPLODED: f64 = 1000.0;

fn exploded(loss: f64, initial: Option<Figures>) -> bool {
    !loss.is_finite() || initial.is_some_and(|i| loss > EXPLODED * i.loss.max(1.0))
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(
        "the training set is empty: every class went to validation (lower --validation-split)"
    )]
    NoTrainingImages,
    #[error("the loss became {0} at epoch {1}: lower --learning-rate")]
    Diverged(f64, usize),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The checked settings of one run.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) epochs: usize,
    pub(crate) batch_size: usize,
    pub(crate) learning_rate: f64,
    pub optimizer: OptimizerKind,
    pub(crate) bn_momentum: f64,
    pub(crate) train_backbone: bool,
    pub(crate) dropout: f64,
    pub(crate) augment: bool,
    /// Threads of the CPU training path.
    pub(crate) threads: usize,
    /// Square input side of the model.
    pub(crate) size: usize,
    pub(crate) max_pixels: u64,
}

/// Split and decoded data. Training images are eval-preprocessed, or, with `--augment`, kept
/// larger so each epoch can crop them afresh.
pub(crate) struct Prepared {
    pub(crate) classes: Vec<String>,
    pub(crate) train: Vec<Example>,
    pub(crate) validation: Vec<Example>,
    train_images: Vec<Rgb32>,
    validation_images: Vec<Rgb32>,
}

impl Prepared {
    pub(crate) fn load(
        classes: Vec<String>,
        train: Vec<Example>,
        validation: Vec<Example>,
        s: &Settings,
    ) -> Result<Self, TrainError> {
        if train.is_empty() {
            return Err(TrainError::NoTrainingImages);
        }
        let eval = data::eval_preprocess(s.size, s.max_pixels);
        let eval_fn = |b: &[u8]| data::eval_image(b, &eval);
        let train_images = if s.augment {
            data::load_all(&train, &|b: &[u8]| {
                data::augment_source(b, s.size, s.max_pixels)
            })?
        } else {
            data::load_all(&train, &eval_fn)?
        };
        let validation_images = data::load_all(&validation, &eval_fn)?;
        Ok(Self {
            classes,
            train,
            validation,
            train_images,
            validation_images,
        })
    }
}

/// What the caller shows while training runs.
pub(crate) enum Event<'a> {
    EpochStart { epoch: usize, batches: usize },
    Batch { loss: f64, accuracy: f64 },
    EpochEnd(&'a EpochFigures),
}

pub(crate) struct Trained {
    /// The whole network under canonical names, the new head as `Logits/Conv2d_1c_1x1`.
    pub(crate) tensors: BTreeMap<String, RawTensor>,
    pub(crate) history: Vec<EpochFigures>,
    pub(crate) initial_validation: Option<Figures>,
    pub(crate) final_validation: Option<Figures>,
    /// Per validation image (in `Prepared::validation` order), what the final model predicts.
    pub(crate) validation_predictions: Vec<Predicted>,
}

/// Figures over the validation set and the prediction for each of its images.
struct Evaluation {
    figures: Figures,
    predictions: Vec<Predicted>,
}

/// The end of one epoch, the same for both training paths: a validation loss that blew up stops
/// the run, else the epoch's figures are reported and kept with the latest predictions.
struct EpochEnd {
    epoch: usize,
    started: Instant,
    train: Figures,
}

impl EpochEnd {
    fn close(
        self,
        evaluation: Option<Evaluation>,
        initial_validation: Option<Figures>,
        last_predictions: &mut Vec<Predicted>,
        history: &mut Vec<EpochFigures>,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<(), TrainError> {
        let validation = evaluation.as_ref().map(|e| e.figures);
        if let Some(v) = validation.filter(|v| exploded(v.loss, initial_validation)) {
            return Err(TrainError::Diverged(v.loss, self.epoch));
        }
        if let Some(e) = evaluation {
            *last_predictions = e.predictions;
        }
        let figures = EpochFigures {
            epoch: self.epoch,
            train: self.train,
            validation,
            seconds: self.started.elapsed().as_secs_f64(),
        };
        on_event(Event::EpochEnd(&figures));
        history.push(figures);
        Ok(())
    }
}

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

/// Running sums of one epoch's loss and accuracy.
#[derive(Default)]
struct Meter {
    loss: f64,
    correct: usize,
    seen: usize,
}

impl Meter {
    fn add(&mut self, loss: &Tensor, correct: usize, n: usize) -> candle_core::Result<()> {
        self.loss += loss.to_dtype(DType::F64)?.to_scalar::<f64>()? * n as f64;
        self.correct += correct;
        self.seen += n;
        Ok(())
    }
    fn add_value(&mut self, loss: f64, correct: usize, n: usize) {
        self.loss += loss * n as f64;
        self.correct += correct;
        self.seen += n;
    }
    fn figures(&self) -> Figures {
        let n = self.seen.max(1) as f64;
        Figures {
            loss: self.loss / n,
            accuracy: self.correct as f64 / n,
        }
    }
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

/// Trains the new head (and, with `train_backbone`, the whole network) on `data`.
pub(crate) fn fine_tune(
    weights: &Weights,
    data: &Prepared,
    s: &Settings,
    device: &Device,
    rng: &mut StdRng,
    on_event: &mut dyn FnMut(Event),
) -> Result<Trained, TrainError> {
    if s.train_backbone && device.is_cpu() {
        return fine_tune_cpu(weights, data, s, rng, on_event);
    }
    let mut backbone = if s.train_backbone {
        let mut net =
            TrainNet::from_tensors(&weights.tensors, weights.arch, s.bn_momentum, device)?;
        if net.needs_calibration() {
            // A .tflite has no BatchNorm statistics left: take them from the first training images.
            let first: Vec<usize> = (0..data.train.len().min(EVAL_BATCH)).collect();
            net.calibrate(&training_images(data, &first, s, rng, device)?)?;
        }
        Backbone::Trained(net)
    } else {
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
        // A frozen backbone in inference mode maps each image to the same features every epoch:
        // computing them once and training the head on them is exact, and many times faster.
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
        frozen
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
    let mut optimizer = Optimizer::new(s.optimizer, vars, s.learning_rate)?;
    let initial = evaluate(&backbone, &head, data, s, device)?;
    let initial_validation = initial.as_ref().map(|e| e.figures);
    let mut last_predictions = initial.map(|e| e.predictions).unwrap_or_default();

    let mut history = Vec::new();
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    for epoch in 1..=s.epochs {
        let started = Instant::now();
        order.shuffle(rng);
        let batches = epoch_batches(&order, s);
        on_event(Event::EpochStart {
            epoch,
            batches: batches.len(),
        });
        let mut meter = Meter::default();
        for batch in batches {
            let examples: Vec<&Example> = batch.iter().map(|&i| &data.train[i]).collect();
            let labels = labels_tensor(&examples, device)?;
            let features = match &mut backbone {
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
            let logits = head.forward(&dropout(&features, s.dropout, rng)?)?;
            let (loss, correct) = loss_and_correct(&logits, &labels)?;
            optimizer.step(&loss.backward()?)?;
            meter.add(&loss, correct, batch.len())?;
            let f = meter.figures();
            if !f.loss.is_finite() {
                return Err(TrainError::Diverged(f.loss, epoch));
            }
            on_event(Event::Batch {
                loss: f.loss,
                accuracy: f.accuracy,
            });
        }
        let evaluation = evaluate(&backbone, &head, data, s, device)?;
        let end = EpochEnd {
            epoch,
            started,
            train: meter.figures(),
        };
        end.close(
            evaluation,
            initial_validation,
            &mut last_predictions,
            &mut history,
            on_event,
        )?;
    }

    let mut tensors = match &backbone {
        Backbone::Frozen { .. } => weights.tensors.clone(),
        Backbone::Trained(net) => net.to_tensors()?,
    };
    tensors.retain(|name, _| !name.starts_with(LOGITS_SCOPE));
    tensors.extend(head.to_tensors()?);
    let final_validation = history
        .last()
        .and_then(|e: &EpochFigures| e.validation)
        .or(initial_validation);
    Ok(Trained {
        tensors,
        history,
        initial_validation,
        final_validation,
        validation_predictions: last_predictions,
    })
}

/// One epoch's batches of `order`. BatchNorm in train mode cannot normalise a batch of one image
/// (its variance is 0): a last batch of one is dropped.
fn epoch_batches<'a>(order: &'a [usize], s: &Settings) -> Vec<&'a [usize]> {
    let mut batches: Vec<&[usize]> = order.chunks(s.batch_size).collect();
    if s.train_backbone && batches.len() > 1 && batches.last().is_some_and(|b| b.len() < 2) {
        batches.pop();
    }
    batches
}

/// `fine_tune` with the whole network trained by the CPU training path. The run's generator is
/// drawn in the same order as on the candle path (calibration images, head, then per epoch the
/// shuffle and per batch augmentation and dropout).
fn fine_tune_cpu(
    weights: &Weights,
    data: &Prepared,
    s: &Settings,
    rng: &mut StdRng,
    on_event: &mut dyn FnMut(Event),
) -> Result<Trained, TrainError> {
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
    let mut optimizer = InPlace::new(s.optimizer, s.learning_rate);
    let initial = evaluate_cpu(&mut net, data, s, &mut pixels)?;
    let initial_validation = initial.as_ref().map(|e| e.figures);
    let mut last_predictions = initial.map(|e| e.predictions).unwrap_or_default();

    let mut history = Vec::new();
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    let mut labels = Vec::with_capacity(s.batch_size);
    for epoch in 1..=s.epochs {
        let started = Instant::now();
        order.shuffle(rng);
        let batches = epoch_batches(&order, s);
        on_event(Event::EpochStart {
            epoch,
            batches: batches.len(),
        });
        let mut meter = Meter::default();
        for batch in batches {
            fill_training_batch(&mut pixels, data, batch, s, rng);
            labels.clear();
            labels.extend(batch.iter().map(|&i| data.train[i].label));
            let step = net.train_step(&pixels, &labels, s.dropout, rng, &mut optimizer)?;
            meter.add_value(step.loss, step.correct, batch.len());
            let f = meter.figures();
            if !f.loss.is_finite() {
                return Err(TrainError::Diverged(f.loss, epoch));
            }
            on_event(Event::Batch {
                loss: f.loss,
                accuracy: f.accuracy,
            });
        }
        let evaluation = evaluate_cpu(&mut net, data, s, &mut pixels)?;
        let end = EpochEnd {
            epoch,
            started,
            train: meter.figures(),
        };
        end.close(
            evaluation,
            initial_validation,
            &mut last_predictions,
            &mut history,
            on_event,
        )?;
    }
    let final_validation = history
        .last()
        .and_then(|e: &EpochFigures| e.validation)
        .or(initial_validation);
    Ok(Trained {
        tensors: net.to_tensors(),
        history,
        initial_validation,
        final_validation,
        validation_predictions: last_predictions,
    })
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
