//! The calibration images: `--calibrate PATH` read and preprocessed exactly as the run's own
//! inputs (the same listing, tar shards and .npy included, and the same `pipeline::load`), or
//! seeded synthetic images where only speed matters (`mnv1 bench`).

use std::path::Path;

use rayon::prelude::*;

use super::calibration::Calibrator;
use crate::inputs::{self, InputItem};
use crate::model::ModelError;
use crate::pipeline;
use crate::preprocess::Preprocess;
use crate::weights::random::SplitMix;

/// Images decoded at a time: enough to keep the threads busy, few enough to bound memory.
const CHUNK: usize = 32;

/// Feeds the images under `path` (a directory, recursively, or one file), preprocessed with
/// `pre`, to `calibrator`. An image that cannot be read, or whose size is not the calibrator's
/// (a .npy of another size), is reported on stderr and skipped, as classify does. Returns how
/// many were skipped.
pub fn add_images(
    calibrator: &mut Calibrator,
    path: &Path,
    pre: &Preprocess,
) -> Result<usize, ModelError> {
    let listed = inputs::expand(&[path.to_path_buf()], &mut std::io::empty());
    let mut items = inputs::items(listed.into_iter()).peekable();
    let size = calibrator.input_size();
    let mut skipped = 0;
    let bar = indicatif::ProgressBar::hidden();
    while items.peek().is_some() {
        let chunk: Vec<InputItem> = items.by_ref().take(CHUNK).collect();
        let decoded: Vec<(String, pipeline::Loaded)> = chunk
            .into_par_iter()
            .filter_map(|item| match item {
                InputItem::Image(input) => Some((input.name.clone(), pipeline::load(&input, pre))),
                InputItem::Failed(f) => Some((inputs::name_of(&f.path), Err(f.reason))),
                InputItem::ShardEnd(_) => None,
            })
            .collect();
        let mut batch = Vec::new();
        let mut n = 0;
        for (name, loaded) in decoded {
            let images = loaded.and_then(|images| {
                match images.iter().find(|(_, i)| (i.height, i.width) != size) {
                    Some((_, i)) => Err(format!(
                        "{}x{} is not the calibration's {}x{}",
                        i.height, i.width, size.0, size.1
                    )),
                    None => Ok(images),
                }
            });
            match images {
                Ok(images) => {
                    for (_, img) in images {
                        batch.extend_from_slice(&img.data);
                        n += 1;
                    }
                }
                Err(reason) => {
                    skipped += 1;
                    crate::commands::report_failure(&bar, Path::new(&name), &reason);
                }
            }
        }
        if n > 0 {
            calibrator.add(&batch, n)?;
        }
    }
    Ok(skipped)
}

/// Feeds `count` seeded images of uniform noise in [0,1]: ranges for timing a quantized
/// network, whose speed does not depend on them; useless for accuracy.
pub fn add_synthetic(
    calibrator: &mut Calibrator,
    count: usize,
    seed: u64,
) -> Result<(), ModelError> {
    let (h, w) = calibrator.input_size();
    let images = SplitMix(seed).uniform(count * h * w * 3, 0.0, 1.0);
    calibrator.add(&images, count)
}
