//! Training data: one sub-directory per class (the folder name is the label), a stratified seeded
//! split into train and validation, images decoded once, and the random crop + flip of `--augment`.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use rayon::prelude::*;

use crate::error::UsageError;
use crate::inputs::has_image_extension;
use crate::preprocess::{self, resize_bilinear_tf1, Crop, Preprocess, Rgb32};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Image { path: PathBuf, reason: String },
    /// A data folder that cannot be used as given: too few classes, an unusable class name.
    /// Its source is a `UsageError`, which is what makes it exit 2 (`error.rs`).
    #[error("{0}")]
    Usage(#[source] UsageError),
}

impl DataError {
    fn usage(path: &std::path::Path, reason: impl std::fmt::Display) -> Self {
        Self::Usage(UsageError::new(format!("{}: {reason}", path.display())))
    }
}

/// What `scan_all` found: classes, their images, and the files skipped (not images by name).
pub struct Scanned {
    pub classes: Vec<String>,
    pub examples: Vec<Example>,
    pub skipped: Vec<PathBuf>,
}

/// One image and its class index.
#[derive(Clone, Debug)]
pub struct Example {
    pub path: PathBuf,
    pub label: usize,
}

/// Class names (sorted folder names) and every image under them, in sorted order, and the files
/// skipped: only names with an image extension (the filter
/// `classify` uses in directories) are taken, so `Thumbs.db`, `.DS_Store` or `notes.txt` are not
/// decoded as images. A class name that `labels.txt` cannot hold as one line is refused.
pub fn scan_all(dir: &Path) -> Result<Scanned, DataError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DataError::Io { path, source }
    };
    let mut class_dirs: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(name, _)| !name.starts_with('.'))
        .collect();
    class_dirs.sort();
    let mut classes = Vec::new();
    let mut examples = Vec::new();
    let mut skipped = Vec::new();
    for (name, path) in class_dirs {
        let mut files: Vec<PathBuf> = Vec::new();
        for e in walkdir::WalkDir::new(&path)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
        {
            if has_image_extension(e.path()) && !e.file_name().to_string_lossy().starts_with('.') {
                files.push(e.into_path());
            } else {
                skipped.push(e.into_path());
            }
        }
        if files.is_empty() {
            continue;
        }
        if name
            .chars()
            .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
        {
            return Err(DataError::usage(
                &path,
                "a class folder name with a line break or control character cannot be a line \
                 of labels.txt: rename the folder",
            ));
        }
        files.sort();
        let label = classes.len();
        classes.push(name);
        examples.extend(files.into_iter().map(|path| Example { path, label }));
    }
    if classes.len() < 2 {
        return Err(DataError::usage(
            dir,
            format!(
                "needs at least two class sub-directories with images in them (found {})",
                classes.len()
            ),
        ));
    }
    Ok(Scanned {
        classes,
        examples,
        skipped,
    })
}

/// Per class, a seeded shuffle, then `round(n * fraction)` images to validation (at least one
/// when the fraction is positive and the class has two or more), so every class is in both sets.
pub fn split(
    examples: &[Example],
    classes: usize,
    fraction: f64,
    rng: &mut StdRng,
) -> (Vec<Example>, Vec<Example>) {
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    for c in 0..classes {
        let mut of_class: Vec<Example> =
            examples.iter().filter(|e| e.label == c).cloned().collect();
        of_class.shuffle(rng);
        let n = of_class.len();
        let mut v = (n as f64 * fraction).round() as usize;
        if fraction > 0.0 && n >= 2 {
            v = v.clamp(1, n - 1);
        }
        validation.extend(of_class.drain(..v.min(n)));
        train.extend(of_class);
    }
    (train, validation)
}

/// Decodes and preprocesses every image (in parallel), failing on the first unreadable one.
pub fn load_all(
    examples: &[Example],
    prep: &(impl Fn(&[u8]) -> Result<Rgb32, String> + Sync),
) -> Result<Vec<Rgb32>, DataError> {
    examples
        .par_iter()
        .map(|e| {
            let bytes = crate::inputs::read_input(&e.path).map_err(|reason| DataError::Image {
                path: e.path.clone(),
                reason,
            })?;
            prep(&bytes).map_err(|reason| DataError::Image {
                path: e.path.clone(),
                reason,
            })
        })
        .collect()
}

/// The eval preprocessing the model will see at inference (central crop, TF1 bilinear resize).
pub fn eval_image(bytes: &[u8], pre: &Preprocess) -> Result<Rgb32, String> {
    preprocess::preprocess_image(bytes, pre).map_err(|e| e.to_string())
}

/// What `--augment` crops from: the decoded image, shrunk so its shorter side is at most twice
/// the model's input (a bounded memory cost per image; crops are resized to the input anyway).
pub fn augment_source(bytes: &[u8], size: usize, max_pixels: u64) -> Result<Rgb32, String> {
    let img = preprocess::decode_image(bytes, max_pixels).map_err(|e| e.to_string())?;
    let short = img.height.min(img.width);
    let limit = 2 * size;
    if short <= limit {
        return Ok(img);
    }
    let scale = limit as f64 / short as f64;
    let (h, w) = (
        ((img.height as f64 * scale).round() as usize).max(1),
        ((img.width as f64 * scale).round() as usize).max(1),
    );
    Ok(resize_bilinear_tf1(&img, h, w))
}

/// Random crop keeping 70-100% of each axis (the eval crop, 87.5% centred, lies inside this
/// range), resized to `size` x `size`, mirrored left-right half of the time.
pub fn augment(img: &Rgb32, size: usize, rng: &mut StdRng) -> Rgb32 {
    let fraction: f64 = rng.random_range(0.7..=1.0);
    let ch = ((img.height as f64 * fraction).round() as usize).clamp(1, img.height);
    let cw = ((img.width as f64 * fraction).round() as usize).clamp(1, img.width);
    let top = rng.random_range(0..=img.height - ch);
    let left = rng.random_range(0..=img.width - cw);
    let mut data = Vec::with_capacity(ch * cw * 3);
    for y in top..top + ch {
        let row = (y * img.width + left) * 3;
        data.extend_from_slice(&img.data[row..row + cw * 3]);
    }
    let mut out = resize_bilinear_tf1(
        &Rgb32 {
            height: ch,
            width: cw,
            data,
        },
        size,
        size,
    );
    if rng.random_bool(0.5) {
        for y in 0..size {
            let row = &mut out.data[y * size * 3..(y + 1) * size * 3];
            for x in 0..size / 2 {
                for c in 0..3 {
                    row.swap(x * 3 + c, (size - 1 - x) * 3 + c);
                }
            }
        }
    }
    out
}

/// The eval preprocessing at the model's size: what classify and embed use on this model.
pub fn eval_preprocess(size: usize, max_pixels: u64) -> Preprocess {
    Preprocess {
        size: (size, size),
        crop: Crop::Central(preprocess::DEFAULT_CENTRAL_FRACTION),
        max_pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn examples(counts: &[usize]) -> Vec<Example> {
        counts
            .iter()
            .enumerate()
            .flat_map(|(label, &n)| {
                (0..n).map(move |i| Example {
                    path: format!("{label}/{i}").into(),
                    label,
                })
            })
            .collect()
    }

    #[test]
    fn split_is_stratified_and_seeded() {
        let all = examples(&[10, 5, 2]);
        let (train, val) = split(&all, 3, 0.2, &mut StdRng::seed_from_u64(3));
        let count = |v: &[Example], c| v.iter().filter(|e| e.label == c).count();
        // round(10 * 0.2) = 2, round(5 * 0.2) = 1, round(2 * 0.2) = 0 raised to 1.
        assert_eq!([count(&val, 0), count(&val, 1), count(&val, 2)], [2, 1, 1]);
        assert_eq!(train.len() + val.len(), all.len());
        let (_, val2) = split(&all, 3, 0.2, &mut StdRng::seed_from_u64(3));
        assert_eq!(
            val.iter().map(|e| &e.path).collect::<Vec<_>>(),
            val2.iter().map(|e| &e.path).collect::<Vec<_>>()
        );
    }

    #[test]
    fn augment_crops_resizes_and_flips() {
        // A left-to-right ramp: every output row must be monotonic, rising or (flipped) falling,
        // and both directions appear over a few seeds.
        let (h, w) = (40, 60);
        let data: Vec<f32> = (0..h * w)
            .flat_map(|i| [(i % w) as f32 / w as f32; 3])
            .collect();
        let img = Rgb32 {
            height: h,
            width: w,
            data,
        };
        let mut rng = StdRng::seed_from_u64(0);
        let (mut rising, mut falling) = (0, 0);
        for _ in 0..20 {
            let out = augment(&img, 32, &mut rng);
            assert_eq!((out.height, out.width), (32, 32));
            let (first, last) = (out.pixel(5, 0)[0], out.pixel(5, 31)[0]);
            if first < last {
                rising += 1
            } else {
                falling += 1
            }
        }
        assert!(
            rising > 0 && falling > 0,
            "{rising} rising, {falling} falling"
        );
    }
}
