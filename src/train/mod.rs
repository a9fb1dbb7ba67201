//! `mnv1 finetune`: a new K-way head on a MobileNet V1 backbone, trained on class folders, with
//! the backbone either frozen in inference mode (default) or trained with BatchNorm in train mode
//! (the TF-Hub modules' `trainable=True`). The inference network (`crate::model`) folds BatchNorm;
//! training needs it unfolded: on the CPU `cpu_net::CpuTrainNet` (NHWC kernels, buffers sized
//! once per run; `cpu_trainer.rs`), on other devices the candle `network::TrainNet`
//! (`candle_trainer.rs`, which also trains a head on a frozen backbone). Both are a `Trainer`
//! to the one epoch loop here (`train`).

mod candle_trainer;
pub mod cpu_net;
mod cpu_trainer;
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

use self::candle_trainer::CandleTrainer;
use self::cpu_trainer::CpuTrainer;
use self::data::{DataError, Example};
use self::manifest::{EpochFigures, Figures};
use self::optimizer::OptimizerKind;
use self::predictions::Predicted;
use crate::model::ModelError;
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

/// What the epoch loop needs of a training path: the candle one (`candle_trainer.rs`, any
/// device, frozen or trained backbone) or the CPU one (`cpu_trainer.rs`, `--train-backbone` on
/// the CPU). A new path is one more implementation; the loop stays one.
trait Trainer {
    /// One optimizer step on training examples `batch` (indices into `data.train`), drawing
    /// augmentation and then dropout from `rng`: the batch's mean loss and how many it got right.
    fn step(
        &mut self,
        data: &Prepared,
        batch: &[usize],
        rng: &mut StdRng,
    ) -> Result<(f64, usize), TrainError>;
    /// Loss, accuracy and predictions on the validation set in inference mode (None without one).
    fn evaluate(&mut self, data: &Prepared) -> Result<Option<Evaluation>, TrainError>;
    /// The whole network under canonical names, the new head as `Logits/Conv2d_1c_1x1`.
    fn tensors(&self) -> Result<BTreeMap<String, RawTensor>, TrainError>;
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
        let mut trainer = CpuTrainer::new(weights, data, s, rng)?;
        return train(&mut trainer, data, s, rng, on_event);
    }
    let mut trainer = CandleTrainer::new(weights, data, s, device, rng)?;
    train(&mut trainer, data, s, rng, on_event)
}

/// The epochs: per epoch a shuffle, the batches' steps (a loss that is no longer finite stops
/// the run), then the validation figures; the run's generator is drawn in this order on every
/// path, so the same seed gives the same run.
fn train(
    trainer: &mut dyn Trainer,
    data: &Prepared,
    s: &Settings,
    rng: &mut StdRng,
    on_event: &mut dyn FnMut(Event),
) -> Result<Trained, TrainError> {
    let initial = trainer.evaluate(data)?;
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
            let (loss, correct) = trainer.step(data, batch, rng)?;
            meter.add_value(loss, correct, batch.len());
            let f = meter.figures();
            if !f.loss.is_finite() {
                return Err(TrainError::Diverged(f.loss, epoch));
            }
            on_event(Event::Batch {
                loss: f.loss,
                accuracy: f.accuracy,
            });
        }
        let evaluation = trainer.evaluate(data)?;
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
        tensors: trainer.tensors()?,
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
