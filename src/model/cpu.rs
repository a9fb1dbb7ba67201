//! The CPU fast path: the same folded network as `mobilenet.rs`, run over NHWC activations by the
//! kernels in `kernels/` (first conv, depthwise and pointwise each their own register-tiled kernel,
//! bias and ReLU6 applied before the store). Threads take whole images when the batch has enough
//! of them (up to 8 at a time, whose late layers and logits run over the group), else split each
//! layer's rows; each thread's aligned activation buffers are reused across calls.
//! `mobilenet.rs` stays the reference and the path for other devices. In bf16
//! (`from_tensors_bf16`) the same network runs its pointwise layers and logits on bf16 products
//! (`kernels/bf16.rs`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::arch::{Arch, Head, LayerKind};
use super::backbone::{thread_pool, Backbone};
use super::kernels::conv0::{conv0_row, Conv0};
use super::kernels::depthwise::{depthwise_row, Depthwise};
use super::kernels::pointwise::{pointwise_rows, Pointwise};
use super::kernels::pool::mean_pool;
use super::kernels::{AlignedBuf, Bf16, Isa, Pad, Shape};
use super::padding::same_padding;
use super::params::{check_multiplier, fold, logits_layer, MIN_INPUT};
use super::ModelError;
use crate::weights::RawTensor;

enum Stage {
    Conv0(Conv0),
    Depthwise(Depthwise),
    Pointwise(Pointwise),
}

struct Step {
    /// Scope under `MobilenetV1/`, for profiles.
    name: String,
    stage: Stage,
    out_channels: usize,
}

/// Activations of the current batch size, kept between calls so a forward pass allocates nothing
/// but its result once they are big enough.
#[derive(Default)]
struct Workspace {
    ping: AlignedBuf,
    pong: AlignedBuf,
    /// A group's images at the first grouped layer (see `GROUP_IMAGES`).
    group: AlignedBuf,
    pooled: Vec<f32>,
}

/// MobileNet V1 on the CPU, NHWC, with its own thread pool.
pub struct CpuMobileNet {
    arch: Arch,
    /// What the `Backbone` forward pass returns.
    head: Head,
    steps: Vec<Step>,
    /// The logits layer, `[C, 1001]` (or K classes), on the pointwise kernel without ReLU6.
    logits: Option<Pointwise>,
    pool: rayon::ThreadPool,
    /// The instruction set every kernel runs with, chosen when the network is built.
    isa: Isa,
    /// Whether the pointwise layers and logits run on bf16 products.
    bf16: Option<Bf16>,
    /// One per pool thread (whole images per thread), and the last for the caller's thread.
    workspaces: Vec<Mutex<Workspace>>,
}

/// Wall time of each stage of one forward pass, for `mnv1 bench --profile`.
pub(crate) type Profile = Vec<(String, Duration)>;

impl Backbone for CpuMobileNet {
    fn arch(&self) -> Arch {
        self.arch
    }

    fn head(&self) -> Head {
        self.head
    }

    fn out_dim(&self) -> usize {
        match (self.head, &self.logits) {
            (Head::Logits, Some(l)) => l.cout(),
            _ => self.arch.feature_dim(),
        }
    }

    fn describe(&self) -> String {
        match self.bf16 {
            None => format!("cpu ({} threads, {})", self.threads(), self.isa),
            Some(_) => format!("cpu ({} threads, {}, bf16)", self.threads(), self.isa),
        }
    }

    fn thread_pool(&self) -> Option<&rayon::ThreadPool> {
        Some(&self.pool)
    }

    fn forward(
        &self,
        images: &[f32],
        n: usize,
        h: usize,
        w: usize,
        profile: Option<&mut Profile>,
    ) -> Result<Vec<f32>, ModelError> {
        self.run(images, n, h, w, self.head, profile)
    }
}

/// `n` NHWC images `[n, h, w, 3]` the network can take.
fn check_input(images: &[f32], n: usize, h: usize, w: usize) -> Result<(), ModelError> {
    if h < MIN_INPUT || w < MIN_INPUT {
        return Err(ModelError::TooSmall {
            height: h,
            width: w,
        });
    }
    if images.len() != n * h * w * 3 {
        return Err(ModelError::Input(format!(
            "{} values for {n} images of {h}x{w}x3",
            images.len()
        )));
    }
    Ok(())
}

/// Rows of at most this many pixels per pointwise block: the kernel walks the block once per
/// 32-channel weight panel, so the block (<= 1 MB at 1024 channels) should stay in L2.
const POINTWISE_BLOCK_ROWS: usize = 256;

/// When threads take whole images, each takes up to this many at a time: the early layers run
/// image by image (their activations stay in cache), the late ones over the group's images at
/// once, so that their large weights (4 MB for a 7x7 1024->1024 layer) and the logits' are read
/// once per group rather than once per image.
const GROUP_IMAGES: usize = 8;

impl CpuMobileNet {
    /// Builds the network from canonical tensors, like `MobileNetV1::from_tensors`, running on
    /// `threads` threads (at least 1) with the kernels for `isa` (`Isa::from_env()` is the
    /// usual choice).
    pub fn from_tensors(
        w: &BTreeMap<String, RawTensor>,
        arch: Arch,
        head: Head,
        threads: usize,
        isa: Isa,
    ) -> Result<Self, ModelError> {
        let layer_table = arch.layers();
        check_multiplier(w, &layer_table[0], arch)?;
        let mut steps = Vec::with_capacity(layer_table.len());
        for layer in &layer_table {
            // TF's layouts are already the ones the NHWC kernels want: HWIO, [3,3,C,1], [1,1,Cin,Cout].
            let (filter, bias) = fold(w, layer)?;
            let stage = match layer.kind {
                LayerKind::Conv => Stage::Conv0(Conv0::new(filter, bias, layer.stride, isa)),
                LayerKind::Depthwise => {
                    Stage::Depthwise(Depthwise::new(filter, bias, layer.stride, isa))
                }
                LayerKind::Pointwise => {
                    Stage::Pointwise(Pointwise::new(&filter, &bias, layer.in_channels, isa))
                }
            };
            steps.push(Step {
                name: layer.name.clone(),
                stage,
                out_channels: layer.out_channels,
            });
        }
        let logits = if head == Head::Logits {
            let (lw, lb) = logits_layer(w, arch)?;
            Some(Pointwise::linear(
                &lw.data,
                &lb.data,
                arch.feature_dim(),
                isa,
            ))
        } else {
            None
        };
        let pool = thread_pool(threads, "cpu")?;
        Ok(Self {
            arch,
            head,
            steps,
            logits,
            pool,
            isa,
            bf16: None,
            workspaces: (0..=threads.max(1))
                .map(|_| Mutex::new(Workspace::default()))
                .collect(),
        })
    }

    /// The same network with bf16 products in its pointwise layers and logits (filters rounded
    /// once, here; fp32 sums, bias and ReLU6): `Bf16Error` on a CPU without AVX512_BF16 or with
    /// `isa` below AVX-512. The first conv and the depthwise layers stay fp32: together about
    /// 5% of the multiply-adds, with 27 and 9 terms per sum, where pairing inputs for
    /// `vdpbf16ps` would gain little and the first conv's raw pixels would lose the most
    /// precision.
    pub fn from_tensors_bf16(
        w: &BTreeMap<String, RawTensor>,
        arch: Arch,
        head: Head,
        threads: usize,
        isa: Isa,
    ) -> Result<Self, ModelError> {
        let bf16 = Bf16::new(isa)?;
        let mut net = Self::from_tensors(w, arch, head, threads, isa)?;
        net.steps = std::mem::take(&mut net.steps)
            .into_iter()
            .map(|step| match step.stage {
                Stage::Pointwise(l) => Step {
                    stage: Stage::Pointwise(l.into_bf16(bf16)),
                    ..step
                },
                _ => step,
            })
            .collect();
        net.logits = net.logits.map(|l| l.into_bf16(bf16));
        net.bf16 = Some(bf16);
        Ok(net)
    }

    pub(crate) fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Pooled features `[N, C]`, row-major, of `n` NHWC images `[n, h, w, 3]` with values in [0,1].
    pub fn features(
        &self,
        images: &[f32],
        n: usize,
        h: usize,
        w: usize,
    ) -> Result<Vec<f32>, ModelError> {
        self.run(images, n, h, w, Head::Features, None)
    }

    /// Logits `[N, 1001]`, row-major (index 0 = background), of NHWC images in [0,1].
    pub fn logits(
        &self,
        images: &[f32],
        n: usize,
        h: usize,
        w: usize,
    ) -> Result<Vec<f32>, ModelError> {
        self.run(images, n, h, w, Head::Logits, None)
    }

    /// One forward pass over `n` images layer by layer, calling `seen` with each layer's output
    /// over the batch (`[n, h, w, c]`, the 27 body layers in order), then the pooled features
    /// `[n, C]` and, for a classifier, the logits `[n, K]`: what post-training quantization
    /// calibrates its ranges from.
    pub(crate) fn observe(
        &self,
        images: &[f32],
        (n, h, w): (usize, usize, usize),
        seen: &mut dyn FnMut(&[f32]),
    ) -> Result<(), ModelError> {
        check_input(images, n, h, w)?;
        let shapes = self.shapes(h, w);
        let mut pooled = vec![0f32; n * shapes.last().map_or(0, |s| s.channels)];
        let caller = &self.workspaces[self.threads()];
        let mut ws = caller.lock().unwrap_or_else(|e| e.into_inner());
        let (nhw, parallel) = ((n, h, w), true);
        self.forward_batch(
            images,
            nhw,
            &shapes,
            None,
            &mut ws,
            parallel,
            None,
            seen,
            &mut pooled,
        );
        seen(&pooled);
        if let Some(layer) = &self.logits {
            let mut logits = vec![0f32; n * layer.cout()];
            pointwise_rows(&pooled, layer, &mut logits);
            seen(&logits);
        }
        Ok(())
    }

    /// One forward pass up to `head`; with `profile`, the wall time of every stage is appended
    /// to it.
    fn run(
        &self,
        images: &[f32],
        n: usize,
        h: usize,
        w: usize,
        head: Head,
        profile: Option<&mut Profile>,
    ) -> Result<Vec<f32>, ModelError> {
        check_input(images, n, h, w)?;
        let logits = match (head, &self.logits) {
            (Head::Logits, None) => return Err(ModelError::NoLogits),
            (Head::Logits, Some(l)) => Some(l),
            (Head::Features, _) => None,
        };
        let shapes = self.shapes(h, w);
        let c = shapes.last().map_or(0, |s| s.channels);
        let out_len = logits.map_or(c, Pointwise::cout);
        let mut out = vec![0f32; n * out_len];
        let threads = self.threads();
        let caller = &self.workspaces[threads];
        if profile.is_some() || n == 1 || n < threads {
            // Layer by layer over the batch, threads over rows.
            let mut ws = caller.lock().unwrap_or_else(|e| e.into_inner());
            self.forward_batch(
                images,
                (n, h, w),
                &shapes,
                logits,
                &mut ws,
                true,
                profile,
                &mut |_| {},
                &mut out,
            );
            return Ok(out);
        }
        // Whole images per thread, a group at a time: an image's activations stay in cache
        // through the network, and no thread waits for the others between layers.
        let group_len = GROUP_IMAGES * h * w * 3;
        let one_group = |images: &[f32], out: &mut [f32], ws: &Mutex<Workspace>| {
            let mut ws = ws.lock().unwrap_or_else(|e| e.into_inner());
            self.forward_group(images, (h, w), &shapes, logits, &mut ws, out);
        };
        if threads == 1 {
            for (images, out) in images
                .chunks(group_len)
                .zip(out.chunks_mut(GROUP_IMAGES * out_len))
            {
                one_group(images, out, caller);
            }
        } else {
            // Groups shrink when the batch is too small to give every thread whole groups.
            let per_thread = n.div_ceil(threads).min(GROUP_IMAGES);
            self.pool.install(|| {
                images
                    .par_chunks(per_thread * h * w * 3)
                    .zip(out.par_chunks_mut(per_thread * out_len))
                    .for_each(|(images, out)| {
                        let index = rayon::current_thread_index().unwrap_or(threads);
                        one_group(images, out, &self.workspaces[index.min(threads)]);
                    });
            });
        }
        Ok(out)
    }

    /// The network on `n` images of `h` x `w` in `ws`, layer by layer (rows split over the pool's
    /// threads when `parallel`), into `out` (`[n, classes or channels]`).
    #[allow(clippy::too_many_arguments)]
    fn forward_batch(
        &self,
        images: &[f32],
        (n, h, w): (usize, usize, usize),
        shapes: &[Shape],
        logits: Option<&Pointwise>,
        ws: &mut Workspace,
        parallel: bool,
        mut profile: Option<&mut Profile>,
        seen: &mut dyn FnMut(&[f32]),
        out: &mut [f32],
    ) {
        let input_shape = Shape {
            height: h,
            width: w,
            channels: 3,
        };
        let Workspace {
            ping, pong, pooled, ..
        } = ws;
        let act = self.run_layers(
            images,
            n,
            (&self.steps, shapes, input_shape),
            (ping, pong),
            parallel,
            profile.as_deref_mut(),
            seen,
        );
        let last = shapes.last().copied().unwrap_or(input_shape);
        self.pool_and_classify(act, last, logits, pooled, profile, out);
    }

    /// The network on a group of whole images on this thread: the layers before the first
    /// grouped one image by image, the rest over the group (`GROUP_IMAGES`).
    fn forward_group(
        &self,
        images: &[f32],
        (h, w): (usize, usize),
        shapes: &[Shape],
        logits: Option<&Pointwise>,
        ws: &mut Workspace,
        out: &mut [f32],
    ) {
        let image_shape = Shape {
            height: h,
            width: w,
            channels: 3,
        };
        let n = images.len() / image_shape.len();
        let split = self.first_grouped_step(shapes, image_shape, n);
        let Workspace {
            ping,
            pong,
            group,
            pooled,
        } = ws;
        let (early_steps, late_steps) = self.steps.split_at(split);
        let (early_shapes, late_shapes) = shapes.split_at(split);
        // The early layers image by image, each result into its slot of the group's input.
        let (grouped, at_split) = match early_shapes.last() {
            None => (images, image_shape),
            Some(&at_split) => {
                if group.len() < n * at_split.len() {
                    *group = AlignedBuf::zeroed(n * at_split.len());
                }
                let slots = group.as_mut_slice().chunks_exact_mut(at_split.len());
                for (image, slot) in images.chunks_exact(image_shape.len()).zip(slots) {
                    let early = (early_steps, early_shapes, image_shape);
                    let act =
                        self.run_layers(image, 1, early, (ping, pong), false, None, &mut |_| {});
                    slot.copy_from_slice(act);
                }
                (&group.as_slice()[..n * at_split.len()], at_split)
            }
        };
        let act = if late_steps.is_empty() {
            grouped
        } else {
            let late = (late_steps, late_shapes, at_split);
            self.run_layers(grouped, n, late, (ping, pong), false, None, &mut |_| {})
        };
        let last = shapes.last().copied().unwrap_or(image_shape);
        self.pool_and_classify(act, last, logits, pooled, None, out);
    }

    /// The first layer run over a group of `n` images: the first whose weights outweigh the
    /// group's input (fewer pixels in the group than output channels), which every later layer
    /// then also does. `shapes.len()`, none, for a group of one.
    fn first_grouped_step(&self, shapes: &[Shape], image: Shape, n: usize) -> usize {
        if n <= 1 {
            return shapes.len();
        }
        let inputs = std::iter::once(image).chain(shapes.iter().copied());
        inputs
            .zip(shapes)
            .position(|(input, out)| n * input.height * input.width <= out.channels)
            .unwrap_or(shapes.len())
    }

    /// Runs `steps`, whose output shapes are `shapes` (and whose input has `in_shape`), over `n`
    /// images, ping-ponging between the two buffers, each step's output shown to `seen`;
    /// returns the last step's output.
    #[allow(clippy::too_many_arguments)]
    fn run_layers<'w>(
        &self,
        input: &[f32],
        n: usize,
        (steps, shapes, in_shape): (&[Step], &[Shape], Shape),
        (ping, pong): (&'w mut AlignedBuf, &'w mut AlignedBuf),
        parallel: bool,
        mut profile: Option<&mut Profile>,
        seen: &mut dyn FnMut(&[f32]),
    ) -> &'w [f32] {
        let largest = shapes.iter().map(Shape::len).max().unwrap_or(0) * n;
        for buf in [&mut *ping, &mut *pong] {
            if buf.len() < largest {
                *buf = AlignedBuf::zeroed(largest);
            }
        }
        let (mut src, mut dst) = (ping.as_mut_slice(), pong.as_mut_slice());
        let mut input_shape = in_shape;
        for (i, (step, &out_shape)) in steps.iter().zip(shapes).enumerate() {
            let start = Instant::now();
            let layer_input: &[f32] = if i == 0 {
                &input[..n * input_shape.len()]
            } else {
                &src[..n * input_shape.len()]
            };
            let step_out = &mut dst[..n * out_shape.len()];
            self.run_step(
                step,
                layer_input,
                input_shape,
                out_shape,
                parallel,
                step_out,
            );
            if let Some(p) = profile.as_deref_mut() {
                p.push((step.name.clone(), start.elapsed()));
            }
            seen(step_out);
            std::mem::swap(&mut src, &mut dst);
            input_shape = out_shape;
        }
        let result: &'w [f32] = src;
        &result[..n * input_shape.len()]
    }

    /// Mean pool and, with `logits`, the classifier, of the final activations `act` of images
    /// of `shape`.
    fn pool_and_classify(
        &self,
        act: &[f32],
        shape: Shape,
        logits: Option<&Pointwise>,
        pooled: &mut Vec<f32>,
        mut profile: Option<&mut Profile>,
        out: &mut [f32],
    ) {
        let start = Instant::now();
        let n = act.len() / shape.len();
        let c = shape.channels;
        if pooled.len() < n * c {
            pooled.resize(n * c, 0.0);
        }
        let pooled = &mut pooled[..n * c];
        for (img, out) in act
            .chunks_exact(shape.len())
            .zip(pooled.chunks_exact_mut(c))
        {
            mean_pool(self.isa, img, out);
        }
        if let Some(p) = profile.as_deref_mut() {
            p.push(("AvgPool".into(), start.elapsed()));
        }
        let Some(layer) = logits else {
            out.copy_from_slice(pooled);
            return;
        };
        let start = Instant::now();
        // 1001 for the ImageNet modules, K for a fine-tuned head.
        pointwise_rows(pooled, layer, out);
        if let Some(p) = profile {
            p.push(("Logits".into(), start.elapsed()));
        }
    }

    /// Output shape of every layer for an `h` x `w` input.
    fn shapes(&self, h: usize, w: usize) -> Vec<Shape> {
        let (mut h, mut w) = (h, w);
        self.steps
            .iter()
            .map(|s| {
                let stride = match &s.stage {
                    Stage::Conv0(l) => l.stride(),
                    Stage::Depthwise(l) => l.stride(),
                    Stage::Pointwise(_) => 1,
                };
                h = h.div_ceil(stride);
                w = w.div_ceil(stride);
                Shape {
                    height: h,
                    width: w,
                    channels: s.out_channels,
                }
            })
            .collect()
    }

    fn run_step(
        &self,
        step: &Step,
        input: &[f32],
        in_shape: Shape,
        out_shape: Shape,
        parallel: bool,
        out: &mut [f32],
    ) {
        let pad = |stride| Pad {
            top: same_padding(in_shape.height, 3, stride).1 .0,
            left: same_padding(in_shape.width, 3, stride).1 .0,
        };
        let image_len = in_shape.len();
        let oh = out_shape.height;
        match &step.stage {
            Stage::Conv0(layer) => {
                let pad = pad(layer.stride());
                self.for_each_block(out, out_shape.row_len(), parallel, |row, block| {
                    let img = &input[(row / oh) * image_len..][..image_len];
                    conv0_row(img, in_shape, row % oh, pad, layer, block);
                });
            }
            Stage::Depthwise(layer) => {
                let pad = pad(layer.stride());
                self.for_each_block(out, out_shape.row_len(), parallel, |row, block| {
                    let img = &input[(row / oh) * image_len..][..image_len];
                    depthwise_row(img, in_shape, row % oh, pad, layer, block);
                });
            }
            Stage::Pointwise(layer) => {
                // A pointwise layer is one GEMM over all pixels of all images: split the pixels.
                let cin = layer.cin();
                let pixels = input.len() / cin;
                let threads = if parallel { self.threads() } else { 1 };
                let per_thread = pixels.div_ceil(threads);
                let rows = per_thread.clamp(1, POINTWISE_BLOCK_ROWS);
                let cout = out_shape.channels;
                self.for_each_block(out, rows * cout, parallel, |block_index, block| {
                    let first = block_index * rows;
                    let count = block.len() / cout;
                    pointwise_rows(&input[first * cin..(first + count) * cin], layer, block);
                });
            }
        }
    }

    /// Calls `f(i, block)` for the i-th `block_len`-sized block of `out`, on the pool's threads
    /// when `parallel`.
    fn for_each_block(
        &self,
        out: &mut [f32],
        block_len: usize,
        parallel: bool,
        f: impl Fn(usize, &mut [f32]) + Sync,
    ) {
        if !parallel || self.threads() == 1 {
            out.chunks_mut(block_len)
                .enumerate()
                .for_each(|(i, b)| f(i, b));
        } else {
            self.pool.install(|| {
                out.par_chunks_mut(block_len)
                    .enumerate()
                    .for_each(|(i, b)| f(i, b))
            });
        }
    }
}
