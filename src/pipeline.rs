//! Inputs -> preprocessing -> batched inference -> one row per image, in input order.
//! A failing input is reported and skipped; the others still get their results.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;

use rayon::prelude::*;

use crate::engine::Engine;
use crate::inputs::{Input, InputItem};
use crate::model::params::MIN_INPUT;
use crate::preprocess::{self, Preprocess, Rgb32};

/// What happened to one image, or where a tar shard ended.
pub enum Outcome<'a> {
    /// `name` is the input's name, with `[i]` appended for the i-th image of a multi-image .npy;
    /// `shard` the tar shard it came from.
    Done {
        name: &'a str,
        row: &'a [f32],
        shard: Option<&'a Path>,
    },
    Failed {
        path: &'a Path,
        reason: &'a str,
    },
    /// Every outcome of this tar shard has been given.
    ShardEnd(&'a Path),
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub done: usize,
    pub failed: usize,
}

impl Summary {
    /// Whether the run went through every input: only `--fail-fast` stops at a failure.
    pub fn all_inputs(&self, fail_fast: bool) -> bool {
        !(fail_fast && self.failed > 0)
    }
}

pub struct Pipeline<'a> {
    pub engine: &'a Engine,
    pub preprocess: &'a Preprocess,
    pub batch_size: usize,
    pub fail_fast: bool,
}

/// One decoded input file: its images, or why it has none.
pub(crate) type Loaded = Result<Vec<(String, Rgb32)>, String>;

pub(crate) fn load(input: &Input, pre: &Preprocess) -> Loaded {
    let bytes = input.bytes()?;
    let images = if preprocess::is_npy(&bytes) {
        let images = preprocess::read_npy_images(&bytes).map_err(|e| e.to_string())?;
        let name = &input.name;
        if images.len() == 1 {
            images.into_iter().map(|i| (name.clone(), i)).collect()
        } else {
            images
                .into_iter()
                .enumerate()
                .map(|(k, i)| (format!("{name}[{k}]"), i))
                .collect()
        }
    } else {
        let img = preprocess::preprocess_image(&bytes, pre).map_err(|e| e.to_string())?;
        vec![(input.name.clone(), img)]
    };
    for (_, img) in &images {
        if img.height < MIN_INPUT || img.width < MIN_INPUT {
            return Err(format!(
                "{}x{} is smaller than the network's {MIN_INPUT}x{MIN_INPUT} minimum",
                img.height, img.width
            ));
        }
    }
    Ok(images)
}

/// One item of a chunk after decoding.
enum Decoded {
    Input {
        /// The input's name, for a failure.
        name: String,
        shard: Option<Arc<Path>>,
        loaded: Loaded,
    },
    ShardEnd(Arc<Path>),
}

/// The decoded images of one item (none for a failure or a shard's end).
fn images_of(d: &Decoded) -> &[(String, Rgb32)] {
    match d {
        Decoded::Input { loaded: Ok(v), .. } => v.as_slice(),
        _ => &[],
    }
}

/// Decodes one chunk of inputs in parallel (on the current rayon pool), in input order. The
/// chunk is consumed: a tar member's bytes are freed once decoded.
fn decode(chunk: Vec<InputItem>, pre: &Preprocess) -> Vec<Decoded> {
    chunk
        .into_par_iter()
        .map(|item| match item {
            InputItem::Image(input) => Decoded::Input {
                loaded: load(&input, pre),
                name: input.name,
                shard: input.shard,
            },
            InputItem::Failed(f) => Decoded::Input {
                name: crate::inputs::name_of(&f.path),
                shard: None,
                loaded: Err(f.reason),
            },
            InputItem::ShardEnd(shard) => Decoded::ShardEnd(shard),
        })
        .collect()
}

/// Whether the run goes on after a chunk.
#[derive(PartialEq)]
enum Flow {
    Continue,
    Stop,
}

impl Pipeline<'_> {
    /// Runs every item, calling `sink` once per image or failure, in input order. Stops early
    /// when `sink` fails (e.g. a closed stdout) or, with `fail_fast`, at the first failure.
    ///
    /// Items are taken as they come (paths on stdin start running before stdin ends): a chunk is
    /// the next item plus whatever else is already waiting, up to the batch size. The next chunk
    /// decodes while this one is in inference, so decoding and the network overlap; at most one
    /// decoded chunk waits, which bounds memory. Both run on the engine's thread pool:
    /// work-stealing shares its threads between them, where two pools of all cores each would
    /// oversubscribe the machine.
    pub fn run<E>(
        &self,
        items: impl IntoIterator<Item = InputItem, IntoIter: Send + 'static>,
        mut sink: impl FnMut(Outcome<'_>) -> Result<(), E>,
    ) -> Result<Summary, E> {
        let batch = self.batch_size.max(1);
        let (pre, engine) = (self.preprocess, self.engine);
        let items = items.into_iter();
        // Set when the consumer is done: the decoder then stops waiting for items that a
        // stalled stdin may never bring.
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let (listed, incoming) = std::sync::mpsc::sync_channel::<InputItem>(batch);
            // Not scoped: a read of stdin can block for ever, and an early stop must not wait
            // for it (the thread ends at its next item, or with the process).
            std::thread::spawn(move || {
                for item in items {
                    if listed.send(item).is_err() {
                        break;
                    }
                }
            });
            let (decoded, chunks) = std::sync::mpsc::sync_channel(1);
            let stop = &stop;
            scope.spawn(move || {
                let next = || loop {
                    match incoming.recv_timeout(std::time::Duration::from_millis(100)) {
                        Ok(item) => return Some(item),
                        Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => {}
                        Err(_) => return None,
                    }
                };
                while let Some(first) = next() {
                    let mut chunk = vec![first];
                    while chunk.len() < batch {
                        match incoming.try_recv() {
                            Ok(item) => chunk.push(item),
                            Err(_) => break,
                        }
                    }
                    let loaded = engine.install(|| decode(chunk, pre));
                    // A closed channel means the consumer stopped early: decode no further.
                    if decoded.send(loaded).is_err() {
                        break;
                    }
                }
            });
            let mut summary = Summary::default();
            let result = (|| {
                for loaded in chunks {
                    if self.infer_and_emit(&loaded, &mut summary, &mut sink)? == Flow::Stop {
                        break;
                    }
                }
                Ok(())
            })();
            stop.store(true, Ordering::Relaxed);
            result.map(|()| summary)
        })
    }

    /// Runs one decoded chunk through the network and hands its outcomes to `sink` in order.
    fn infer_and_emit<E>(
        &self,
        loaded: &[Decoded],
        summary: &mut Summary,
        sink: &mut impl FnMut(Outcome<'_>) -> Result<(), E>,
    ) -> Result<Flow, E> {
        let batch = self.batch_size.max(1);
        // Same-sized images share forward passes; order is restored when emitting.
        let mut rows: Vec<Vec<Result<Vec<f32>, String>>> = loaded
            .iter()
            .map(|d| Vec::with_capacity(images_of(d).len()))
            .collect();
        let images: Vec<(usize, &Rgb32)> = loaded
            .iter()
            .enumerate()
            .flat_map(|(i, d)| images_of(d).iter().map(move |(_, img)| (i, img)))
            .collect();
        let mut start = 0;
        while start < images.len() {
            let size = (images[start].1.height, images[start].1.width);
            let mut end = start;
            while end < images.len()
                && end - start < batch
                && (images[end].1.height, images[end].1.width) == size
            {
                end += 1;
            }
            let group: Vec<&Rgb32> = images[start..end].iter().map(|(_, img)| *img).collect();
            match self.engine.run(&group) {
                Ok(out) => {
                    for ((i, _), row) in images[start..end].iter().zip(out) {
                        rows[*i].push(Ok(row));
                    }
                }
                Err(e) => {
                    for (i, _) in &images[start..end] {
                        rows[*i].push(Err(e.to_string()));
                    }
                }
            }
            start = end;
        }
        for (decoded, file_rows) in loaded.iter().zip(rows) {
            let (name, shard, l) = match decoded {
                Decoded::ShardEnd(shard) => {
                    sink(Outcome::ShardEnd(shard))?;
                    continue;
                }
                Decoded::Input {
                    name,
                    shard,
                    loaded,
                } => (name, shard.as_deref(), loaded),
            };
            let result = match l {
                Err(reason) => Err(reason.clone()),
                Ok(images) => file_rows
                    .iter()
                    .find_map(|r| r.as_ref().err().cloned())
                    .map_or(Ok(images), Err),
            };
            match result {
                Ok(images) => {
                    for ((name, _), row) in images.iter().zip(&file_rows) {
                        let row = row.as_ref().map(Vec::as_slice).unwrap_or_default();
                        sink(Outcome::Done { name, row, shard })?;
                        summary.done += 1;
                    }
                }
                Err(reason) => {
                    summary.failed += 1;
                    sink(Outcome::Failed {
                        path: Path::new(name),
                        reason: &reason,
                    })?;
                    if self.fail_fast {
                        return Ok(Flow::Stop);
                    }
                }
            }
        }
        Ok(Flow::Continue)
    }
}
