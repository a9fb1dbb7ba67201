//! `finetune --summaries-dir DIR`: TensorBoard scalars laid out as TF-Hub's
//! make_image_classifier (Keras' TensorBoard callback) lays them out: `DIR/train/` and
//! `DIR/validation/`, each with `epoch_loss` and `epoch_accuracy`, so `tensorboard --logdir DIR`
//! shows the two runs on one chart per tag.

use std::io;
use std::path::Path;

use super::tfevents::EventWriter;
use crate::train::manifest::{EpochFigures, Figures};

pub const LOSS_TAG: &str = "epoch_loss";
pub const ACCURACY_TAG: &str = "epoch_accuracy";

pub struct TrainingSummaries {
    train: EventWriter,
    validation: EventWriter,
}

fn scalars(f: Figures) -> [(&'static str, f64); 2] {
    [(LOSS_TAG, f.loss), (ACCURACY_TAG, f.accuracy)]
}

impl TrainingSummaries {
    pub fn create(dir: &Path) -> io::Result<Self> {
        Ok(Self {
            train: EventWriter::create(&dir.join("train"))?,
            validation: EventWriter::create(&dir.join("validation"))?,
        })
    }

    /// Validation of the untrained head, at step 0 (before the first epoch).
    pub fn initial(&mut self, validation: Figures) -> io::Result<()> {
        self.validation.scalars(0, &scalars(validation))
    }

    /// One epoch's figures, at step = the epoch number (1-based, as in manifest.json).
    pub fn epoch(&mut self, e: &EpochFigures) -> io::Result<()> {
        let step = e.epoch as i64;
        self.train.scalars(step, &scalars(e.train))?;
        if let Some(v) = e.validation {
            self.validation.scalars(step, &scalars(v))?;
        }
        Ok(())
    }
}
