//! MobileNet V1 in train mode on the CPU, over NHWC activations with the kernels of
//! `kernels/`: the CPU path of `finetune --train-backbone` (the candle `network::TrainNet`
//! stays the reference and the path for other devices).
//!
//! Per layer the forward pass keeps what the backward pass reads and nothing else: the
//! convolution's output before BatchNorm (`z`), the layer's output after ReLU6 (`a`, which is
//! also the next layer's input and gives the ReLU6 mask) and the batch mean and 1/std per
//! channel; the first layer also keeps its input patches. Every buffer is sized once for the
//! run's batch and input size; two gradient buffers take turns through the backward pass.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::Rng;

use super::kernels::batchnorm::{self, Saved};
use super::kernels::conv0::{self, PATCH};
use super::kernels::depthwise::{self, Geometry};
use super::kernels::matmul::{rows_times, rows_times_transposed, transposed_times};
use super::kernels::Isa;
use super::kernels::{Pad, Shape};
use super::optimizer::{InPlace, Param};
use crate::model::arch::{Arch, Layer, LayerKind, BN_EPSILON, LOGITS_SCOPE};
use crate::model::padding::same_padding;
use crate::model::params::{train_params, MIN_INPUT};
use crate::model::ModelError;
use crate::weights::RawTensor;

/// How a forward pass normalises.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Batch statistics; moving averages updated.
    Train,
    /// Moving statistics.
    Eval,
    /// Moving statistics, after giving each folded layer the batch's (see `calibrate`).
    Calibrate,
}

/// One conv + BatchNorm + ReLU6 layer: parameters in TF's layouts (conv `[3, 3, 3, C]` =
/// `[27, C]`, depthwise `[3, 3, C]`, pointwise `[Cin, Cout]`), moving statistics, and what the
/// last forward pass kept.
struct TrainLayer {
    spec: Layer,
    /// The instruction-set level its kernels run at, chosen when the network is built.
    isa: Isa,
    weight: Param,
    gamma: Param,
    beta: Param,
    moving_mean: Vec<f32>,
    moving_variance: Vec<f32>,
    /// The source had folded this layer's BatchNorm away and `calibrate` has not run yet.
    folded: bool,
    z: Vec<f32>,
    a: Vec<f32>,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    /// Output shape of one image.
    out: Shape,
}

/// The new classifier on the pooled features: `[C, K]` weights and `[K]` biases (the 1x1
/// `Conv2d_1c_1x1` of TF-Slim on a 1x1 map).
pub struct Classifier {
    weight: Param,
    bias: Param,
    classes: usize,
}

/// Buffers of the batch besides the layers' own, sized once.
#[derive(Default)]
struct Workspace {
    /// Images the buffers hold, and their size.
    capacity: usize,
    height: usize,
    width: usize,
    patches: Vec<f32>,
    grads: [Vec<f32>; 2],
    features: Vec<f32>,
    /// Dropout's per-feature factor (0 or 1 / keep) of the last step.
    keep: Vec<f32>,
    logits: Vec<f32>,
    dlogits: Vec<f32>,
    dfeatures: Vec<f32>,
    matmul_scratch: Vec<f32>,
    depthwise_scratch: Vec<f32>,
    bn_scratch: Vec<f64>,
    moments: [Vec<f64>; 2],
}

/// Loss and accuracy count of one batch.
#[derive(Clone, Copy, Debug)]
pub struct BatchFigures {
    pub loss: f64,
    pub(crate) correct: usize,
}

/// Wall time of each layer's forward and backward pass, summed over the steps of a run (for
/// the training profile in bench/README.md).
#[derive(Default, Clone)]
pub struct LayerTimes {
    pub forward: Vec<(String, Duration)>,
    pub backward: Vec<(String, Duration)>,
}

/// The whole network and its new head in train mode on the CPU, with its own thread pool.
pub struct CpuTrainNet {
    arch: Arch,
    layers: Vec<TrainLayer>,
    classifier: Classifier,
    bn_momentum: f64,
    pool: rayon::ThreadPool,
    work: Workspace,
    times: Option<LayerTimes>,
}

impl Classifier {
    /// Glorot-uniform weights (Keras' Dense default) from the run's seeded generator, zero
    /// biases: the same draws as the candle head's, so both paths start from the same head.
    pub fn glorot(features: usize, classes: usize, rng: &mut StdRng) -> Self {
        let limit = (6.0 / (features + classes) as f64).sqrt();
        let w = (0..features * classes)
            .map(|_| rng.random_range(-limit..limit) as f32)
            .collect();
        Self::from_values(w, vec![0.0; classes])
    }

    /// A head with the given `[C, K]` weights and `[K]` biases.
    pub fn from_values(weights: Vec<f32>, biases: Vec<f32>) -> Self {
        let classes = biases.len();
        assert!(classes > 0 && weights.len().is_multiple_of(classes));
        Self {
            weight: Param::new(weights),
            bias: Param::new(biases),
            classes,
        }
    }
}

impl CpuTrainNet {
    /// Builds the network from canonical tensors (a folded `.tflite` layer starts as gamma 1,
    /// beta = bias, mean 0, variance 1 - eps, as `TrainNet::from_tensors`; `calibrate` before
    /// training), with `classifier` as its head, running on `threads` threads.
    pub fn from_tensors(
        w: &BTreeMap<String, RawTensor>,
        arch: Arch,
        classifier: Classifier,
        bn_momentum: f64,
        threads: usize,
    ) -> Result<Self, ModelError> {
        // MNV1_ISA or the widest level this CPU has, as the inference network takes it.
        let isa = Isa::from_env()?;
        let mut layers = Vec::new();
        for spec in arch.layers() {
            let c = spec.out_channels;
            let p = train_params(w, &spec)?;
            layers.push(TrainLayer {
                isa,
                weight: Param::new(p.filter),
                gamma: Param::new(p.gamma),
                beta: Param::new(p.beta),
                moving_mean: p.moving_mean,
                moving_variance: p.moving_variance,
                folded: p.folded,
                z: Vec::new(),
                a: Vec::new(),
                mean: vec![0.0; c],
                inv_std: vec![0.0; c],
                out: Shape {
                    height: 0,
                    width: 0,
                    channels: c,
                },
                spec,
            });
        }
        if classifier.weight.value.len() != arch.feature_dim() * classifier.classes {
            return Err(ModelError::Input(format!(
                "a head of {} weights for {} features and {} classes",
                classifier.weight.value.len(),
                arch.feature_dim(),
                classifier.classes
            )));
        }
        let pool = crate::model::backbone::thread_pool(threads, "train")?;
        Ok(Self {
            arch,
            layers,
            classifier,
            bn_momentum,
            pool,
            work: Workspace::default(),
            times: None,
        })
    }

    /// Whether some layer came with its BatchNorm folded away and still needs `calibrate`.
    pub(crate) fn needs_calibration(&self) -> bool {
        self.layers.iter().any(|l| l.folded)
    }

    /// Starts summing the time of each layer's forward and backward pass.
    pub fn record_times(&mut self) {
        self.times = Some(LayerTimes::default());
    }

    pub fn times(&self) -> Option<&LayerTimes> {
        self.times.as_ref()
    }

    /// Sizes every buffer for batches of up to `capacity` images of `height` x `width` (a
    /// no-op when they already are).
    pub fn reserve(
        &mut self,
        capacity: usize,
        height: usize,
        width: usize,
    ) -> Result<(), ModelError> {
        if height < MIN_INPUT || width < MIN_INPUT {
            return Err(ModelError::TooSmall { height, width });
        }
        let w = &mut self.work;
        if w.capacity >= capacity && w.height == height && w.width == width {
            return Ok(());
        }
        let capacity =
            capacity.max(w.capacity * usize::from(w.height == height && w.width == width));
        let (mut h, mut wd) = (height, width);
        let mut largest = 0;
        for layer in &mut self.layers {
            h = h.div_ceil(layer.spec.stride);
            wd = wd.div_ceil(layer.spec.stride);
            layer.out = Shape {
                height: h,
                width: wd,
                channels: layer.spec.out_channels,
            };
            let len = capacity * layer.out.len();
            largest = largest.max(len);
            layer.z = vec![0.0; len];
            layer.a = vec![0.0; len];
        }
        let first = self.layers[0].out;
        let c = self.arch.feature_dim();
        let k = self.classifier.classes;
        let widest = self
            .layers
            .iter()
            .map(|l| l.spec.out_channels)
            .max()
            .unwrap_or(0);
        *w = Workspace {
            capacity,
            height,
            width,
            patches: vec![0.0; capacity * first.height * first.width * PATCH],
            grads: [vec![0.0; largest], vec![0.0; largest]],
            features: vec![0.0; capacity * c],
            keep: vec![1.0; capacity * c],
            logits: vec![0.0; capacity * k],
            dlogits: vec![0.0; capacity * k],
            dfeatures: vec![0.0; capacity * c],
            moments: [vec![0.0; widest], vec![0.0; widest]],
            ..Workspace::default()
        };
        Ok(())
    }

    fn check_batch(&self, images: &[f32], n: usize) -> Result<(), ModelError> {
        let w = &self.work;
        if n == 0 || n > w.capacity || images.len() != n * w.height * w.width * 3 {
            return Err(ModelError::Input(format!(
                "{} values for {n} images of {}x{}x3 (room for {})",
                images.len(),
                w.height,
                w.width,
                w.capacity
            )));
        }
        Ok(())
    }

    /// Gives each folded layer the statistics of its convolution's output on `images` (NHWC,
    /// [0,1]), as `TrainNet::calibrate` does: moving mean `m` and (biased) variance `v`, gamma
    /// `sqrt(v + eps)`, beta `bias + m`, so that inference mode still computes `conv + bias`.
    pub(crate) fn calibrate(&mut self, images: &[f32], n: usize) -> Result<(), ModelError> {
        self.check_batch(images, n)?;
        self.forward(images, n, Mode::Calibrate);
        Ok(())
    }

    /// One training step on `n` images (NHWC, [0,1]) with `labels`: forward with batch
    /// statistics (moving averages updated), dropout of `rate` on the pooled features, softmax
    /// cross-entropy, backward, and `optimizer`'s update of every parameter.
    pub fn train_step(
        &mut self,
        images: &[f32],
        labels: &[usize],
        rate: f64,
        rng: &mut StdRng,
        optimizer: &mut InPlace,
    ) -> Result<BatchFigures, ModelError> {
        let n = labels.len();
        self.check_batch(images, n)?;
        if let Some(&bad) = labels.iter().find(|&&l| l >= self.classifier.classes) {
            return Err(ModelError::Input(format!(
                "label {bad} of {} classes",
                self.classifier.classes
            )));
        }
        self.forward(images, n, Mode::Train);
        self.dropout(n, rate, rng);
        let figures = self.head_forward_backward(n, Some(labels));
        self.backward(n);
        let Self {
            layers, classifier, ..
        } = self;
        let params = [&mut classifier.weight, &mut classifier.bias]
            .into_iter()
            .chain(
                layers
                    .iter_mut()
                    .flat_map(|l| [&mut l.weight, &mut l.gamma, &mut l.beta]),
            );
        optimizer.step(params);
        Ok(figures)
    }

    /// Logits `[n, K]` of images in inference mode (moving statistics), in batches of the
    /// reserved capacity.
    pub(crate) fn eval_logits(&mut self, images: &[f32], n: usize) -> Result<Vec<f32>, ModelError> {
        let image_len = self.work.height * self.work.width * 3;
        let k = self.classifier.classes;
        let mut out = Vec::with_capacity(n * k);
        for chunk in images.chunks(self.work.capacity.max(1) * image_len) {
            let m = chunk.len() / image_len.max(1);
            self.check_batch(chunk, m)?;
            self.forward(chunk, m, Mode::Eval);
            self.work.keep[..m * self.arch.feature_dim()].fill(1.0);
            self.head_forward_backward(m, None);
            out.extend_from_slice(&self.work.logits[..m * k]);
        }
        Ok(out)
    }

    /// The forward pass of every layer and the average pool, into `work.features`.
    fn forward(&mut self, images: &[f32], n: usize, mode: Mode) {
        let Self {
            layers,
            work,
            pool,
            bn_momentum,
            times,
            ..
        } = self;
        let input = Shape {
            height: work.height,
            width: work.width,
            channels: 3,
        };
        pool.install(|| {
            for l in 0..layers.len() {
                let start = Instant::now();
                let (before, rest) = layers.split_at_mut(l);
                let layer = &mut rest[0];
                let in_shape = before.last().map_or(input, |p| p.out);
                let len = n * layer.out.len();
                let pad = Pad {
                    top: same_padding(in_shape.height, 3, layer.spec.stride).1 .0,
                    left: same_padding(in_shape.width, 3, layer.spec.stride).1 .0,
                };
                let z = &mut layer.z[..len];
                match layer.spec.kind {
                    LayerKind::Conv => {
                        let patches =
                            &mut work.patches[..n * layer.out.height * layer.out.width * PATCH];
                        conv0::patches(images, input, layer.out, layer.spec.stride, pad, patches);
                        rows_times(patches, &layer.weight.value, PATCH, layer.out.channels, z);
                    }
                    LayerKind::Depthwise => {
                        let g = Geometry {
                            input: in_shape,
                            output: layer.out,
                            stride: layer.spec.stride,
                            pad,
                        };
                        let x = &before[l - 1].a[..n * in_shape.len()];
                        depthwise::forward(layer.isa, x, &layer.weight.value, &g, z);
                    }
                    LayerKind::Pointwise => {
                        let x = &before[l - 1].a[..n * in_shape.len()];
                        rows_times(
                            x,
                            &layer.weight.value,
                            in_shape.channels,
                            layer.out.channels,
                            z,
                        );
                    }
                }
                normalize(layer, n, mode, *bn_momentum, work);
                if let Some(t) = times.as_mut() {
                    add_time(&mut t.forward, &layer.spec.name, start.elapsed());
                }
            }
        });
        let last = layers.last().map_or(input, |l| l.out);
        let c = last.channels;
        let act = &layers[layers.len() - 1].a[..n * last.len()];
        // The pooling kernel is the inference path's, at the layers' level.
        let isa = layers[0].isa;
        for (img, f) in act
            .chunks_exact(last.len())
            .zip(work.features.chunks_exact_mut(c))
        {
            crate::model::kernels::pool::mean_pool(isa, img, f);
        }
    }

    /// Inverted dropout on the pooled features with the run's generator, drawn in the same order
    /// as the candle path's `head::dropout`.
    fn dropout(&mut self, n: usize, rate: f64, rng: &mut StdRng) {
        let keep = &mut self.work.keep[..n * self.arch.feature_dim()];
        if rate <= 0.0 {
            keep.fill(1.0);
            return;
        }
        let p = 1.0 - rate;
        for k in keep.iter_mut() {
            *k = if rng.random::<f64>() < p {
                (1.0 / p) as f32
            } else {
                0.0
            };
        }
    }

    /// Logits of the kept features; with `labels`, the mean softmax cross-entropy, the head's
    /// gradients and the gradient of the last layer's output (into `work.grads[0]`).
    fn head_forward_backward(&mut self, n: usize, labels: Option<&[usize]>) -> BatchFigures {
        let c = self.arch.feature_dim();
        let Classifier {
            weight,
            bias,
            classes: k,
        } = &mut self.classifier;
        let k = *k;
        let w = &mut self.work;
        for i in 0..n {
            let features = &w.features[i * c..][..c];
            let keep = &w.keep[i * c..][..c];
            let logits = &mut w.logits[i * k..][..k];
            logits.copy_from_slice(&bias.value);
            for ((&f, &m), wrow) in features.iter().zip(keep).zip(weight.value.chunks_exact(k)) {
                let x = f * m;
                for (l, &wv) in logits.iter_mut().zip(wrow) {
                    *l += x * wv;
                }
            }
        }
        let Some(labels) = labels else {
            return BatchFigures {
                loss: 0.0,
                correct: 0,
            };
        };
        let (loss, correct) = cross_entropy(&w.logits[..n * k], labels);
        // dlogits = (softmax - one-hot) / n.
        for (i, &label) in labels.iter().enumerate() {
            let logits = &w.logits[i * k..][..k];
            let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
            let sum: f64 = logits.iter().map(|&v| (v as f64 - max).exp()).sum();
            for (j, d) in w.dlogits[i * k..][..k].iter_mut().enumerate() {
                let p = (logits[j] as f64 - max).exp() / sum;
                *d = ((p - f64::from(u8::from(j == label))) / n as f64) as f32;
            }
        }
        // Head gradients: dW = (features * keep)^T dlogits, db = sum dlogits.
        weight.grad.fill(0.0);
        bias.grad.fill(0.0);
        for i in 0..n {
            let dl = &w.dlogits[i * k..][..k];
            for (b, &d) in bias.grad.iter_mut().zip(dl) {
                *b += d;
            }
            let f = &w.features[i * c..][..c];
            let keep = &w.keep[i * c..][..c];
            let df = &mut w.dfeatures[i * c..][..c];
            for (ch, grow) in weight.grad.chunks_exact_mut(k).enumerate() {
                let x = f[ch] * keep[ch];
                let wrow = &weight.value[ch * k..][..k];
                let mut back = 0f32;
                for ((g, &d), &wv) in grow.iter_mut().zip(dl).zip(wrow) {
                    *g += x * d;
                    back += d * wv;
                }
                df[ch] = back * keep[ch];
            }
        }
        // The average pool spreads each feature's gradient evenly over its pixels.
        let last = self.layers[self.layers.len() - 1].out;
        let inv = 1.0 / (last.height * last.width) as f32;
        let grad = &mut w.grads[0][..n * last.len()];
        for (img, df) in grad
            .chunks_exact_mut(last.len())
            .zip(w.dfeatures.chunks_exact(c))
        {
            for px in img.chunks_exact_mut(c) {
                for (g, &d) in px.iter_mut().zip(df) {
                    *g = d * inv;
                }
            }
        }
        BatchFigures { loss, correct }
    }

    /// Backward through every layer from `work.grads[0]` (the last output's gradient), filling
    /// each parameter's `grad`.
    fn backward(&mut self, n: usize) {
        let Self {
            layers,
            work,
            pool,
            times,
            ..
        } = self;
        let input = Shape {
            height: work.height,
            width: work.width,
            channels: 3,
        };
        let [mut grad, mut next] = std::mem::take(&mut work.grads);
        pool.install(|| {
            for l in (0..layers.len()).rev() {
                let start = Instant::now();
                let (before, rest) = layers.split_at_mut(l);
                let layer = &mut rest[0];
                let in_shape = before.last().map_or(input, |p| p.out);
                let len = n * layer.out.len();
                let dz = &mut grad[..len];
                let saved = Saved {
                    z: &layer.z[..len],
                    a: &layer.a[..len],
                    mean: &layer.mean,
                    inv_std: &layer.inv_std,
                    gamma: &layer.gamma.value,
                };
                batchnorm::backward(
                    layer.isa,
                    dz,
                    &saved,
                    &mut work.bn_scratch,
                    &mut layer.gamma.grad,
                    &mut layer.beta.grad,
                );
                let dz = &grad[..len];
                // The first layer's input, the image, needs no gradient (nor room for one).
                let dx_len = n * in_shape.len();
                let (cin, cout) = (in_shape.channels, layer.out.channels);
                match layer.spec.kind {
                    LayerKind::Conv => {
                        let patches =
                            &work.patches[..n * layer.out.height * layer.out.width * PATCH];
                        transposed_times(
                            patches,
                            dz,
                            PATCH,
                            cout,
                            &mut work.matmul_scratch,
                            &mut layer.weight.grad,
                        );
                    }
                    LayerKind::Depthwise => {
                        let pad = Pad {
                            top: same_padding(in_shape.height, 3, layer.spec.stride).1 .0,
                            left: same_padding(in_shape.width, 3, layer.spec.stride).1 .0,
                        };
                        let g = Geometry {
                            input: in_shape,
                            output: layer.out,
                            stride: layer.spec.stride,
                            pad,
                        };
                        let x = &before[l - 1].a[..n * in_shape.len()];
                        depthwise::filter_gradient(
                            layer.isa,
                            x,
                            dz,
                            &g,
                            &mut work.depthwise_scratch,
                            &mut layer.weight.grad,
                        );
                        depthwise::input_gradient(
                            layer.isa,
                            dz,
                            &layer.weight.value,
                            &g,
                            &mut next[..dx_len],
                        );
                    }
                    LayerKind::Pointwise => {
                        let x = &before[l - 1].a[..n * in_shape.len()];
                        transposed_times(
                            x,
                            dz,
                            cin,
                            cout,
                            &mut work.matmul_scratch,
                            &mut layer.weight.grad,
                        );
                        rows_times_transposed(
                            dz,
                            &layer.weight.value,
                            cin,
                            cout,
                            &mut next[..dx_len],
                        );
                    }
                }
                std::mem::swap(&mut grad, &mut next);
                if let Some(t) = times.as_mut() {
                    add_time(&mut t.backward, &layer.spec.name, start.elapsed());
                }
            }
        });
        // After an even number of swaps the buffers are back in place; either way both return.
        work.grads = [grad, next];
    }

    /// The whole network under canonical names (TF layouts, BatchNorm unfolded), the head as
    /// `Logits/Conv2d_1c_1x1`, ready for safetensors.
    pub fn to_tensors(&self) -> BTreeMap<String, RawTensor> {
        let mut out = BTreeMap::new();
        for l in &self.layers {
            let c = vec![l.spec.out_channels];
            out.insert(
                l.spec.weight_name(),
                RawTensor::new(l.spec.weight_shape(), l.weight.value.clone()),
            );
            for (leaf, v) in [
                ("gamma", &l.gamma.value),
                ("beta", &l.beta.value),
                ("moving_mean", &l.moving_mean),
                ("moving_variance", &l.moving_variance),
            ] {
                out.insert(l.spec.bn_name(leaf), RawTensor::new(c.clone(), v.clone()));
            }
        }
        let (c, k) = (self.arch.feature_dim(), self.classifier.classes);
        out.insert(
            format!("{LOGITS_SCOPE}/weights"),
            RawTensor::new(vec![1, 1, c, k], self.classifier.weight.value.clone()),
        );
        out.insert(
            format!("{LOGITS_SCOPE}/biases"),
            RawTensor::new(vec![k], self.classifier.bias.value.clone()),
        );
        out
    }
}

/// Mean softmax cross-entropy of `logits` (`[N, K]`) against `labels`, in f64, and how many
/// rows have their label as the (first) arg-max.
pub(crate) fn cross_entropy(logits: &[f32], labels: &[usize]) -> (f64, usize) {
    let n = labels.len();
    let k = logits.len() / n.max(1);
    let (mut loss, mut correct) = (0f64, 0);
    for (row, &label) in logits.chunks_exact(k.max(1)).zip(labels) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        loss += max + sum.ln() - row[label] as f64;
        let best = row
            .iter()
            .enumerate()
            .fold(0, |b, (j, &v)| if v > row[b] { j } else { b });
        correct += usize::from(best == label);
    }
    (loss / n.max(1) as f64, correct)
}

fn add_time(list: &mut Vec<(String, Duration)>, name: &str, d: Duration) {
    match list.iter_mut().find(|(n, _)| n == name) {
        Some((_, t)) => *t += d,
        None => list.push((name.to_string(), d)),
    }
}

/// BatchNorm + ReLU6 of `layer.z` into `layer.a` for `n` images: batch statistics (and the
/// moving averages' update, with the Bessel-corrected batch variance as TF's FusedBatchNorm
/// feeds them) in train mode, the moving statistics otherwise.
fn normalize(layer: &mut TrainLayer, n: usize, mode: Mode, momentum: f64, work: &mut Workspace) {
    let c = layer.spec.out_channels;
    let len = n * layer.out.len();
    let z = &layer.z[..len];
    let [mean, var] = &mut work.moments;
    let (mean, var) = (&mut mean[..c], &mut var[..c]);
    let batch = mode == Mode::Train || (mode == Mode::Calibrate && layer.folded);
    if batch {
        batchnorm::moments(layer.isa, z, c, &mut work.bn_scratch, mean, var);
    }
    if mode == Mode::Calibrate && layer.folded {
        for ch in 0..c {
            layer.gamma.value[ch] = ((var[ch] + BN_EPSILON).sqrt()) as f32;
            layer.beta.value[ch] += mean[ch] as f32;
            layer.moving_mean[ch] = mean[ch] as f32;
            layer.moving_variance[ch] = var[ch] as f32;
        }
        layer.folded = false;
    }
    if mode == Mode::Train {
        let count = len / c;
        // A single value per channel has no unbiased variance; TF would divide by zero.
        let correction = if count > 1 {
            count as f64 / (count - 1) as f64
        } else {
            1.0
        };
        for ch in 0..c {
            let (mm, mv) = (
                layer.moving_mean[ch] as f64,
                layer.moving_variance[ch] as f64,
            );
            layer.moving_mean[ch] = (mm - (mm - mean[ch]) * (1.0 - momentum)) as f32;
            layer.moving_variance[ch] =
                (mv - (mv - var[ch] * correction) * (1.0 - momentum)) as f32;
        }
    } else {
        for ch in 0..c {
            mean[ch] = layer.moving_mean[ch] as f64;
            var[ch] = layer.moving_variance[ch] as f64;
        }
    }
    let mut scale = vec![0f32; c];
    for ch in 0..c {
        let inv_std = 1.0 / (var[ch] + BN_EPSILON).sqrt();
        layer.mean[ch] = mean[ch] as f32;
        layer.inv_std[ch] = inv_std as f32;
        scale[ch] = (layer.gamma.value[ch] as f64 * inv_std) as f32;
    }
    let a = &mut layer.a[..len];
    batchnorm::scale_shift_relu6(layer.isa, z, &layer.mean, &scale, &layer.beta.value, a);
}
