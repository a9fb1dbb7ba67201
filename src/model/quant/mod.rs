//! The integer network: a quantized .tflite (`weights::tflite::QuantizedNet`) run with TensorFlow
//! Lite's integer arithmetic, so that every layer's output bytes equal TFLite's reference
//! kernels' (`tests/it/quant_parity.rs`). `requant.rs` holds the fixed-point scaling,
//! `kernels.rs` the plain layers (every CPU), `vnni.rs` their AVX-512 VNNI forms, `avx2.rs` the
//! AVX2 ones for CPUs without VNNI (all the same bytes).
//!
//! Images come in as [0,1] floats like every backend's and are fed to the model's input as
//! pixels: a uint8 input takes 255 x rounded half to even (how an image classifier with a uint8
//! input is fed, Google's *_quant models included, and numpy's `np.round`: TF-Slim's bilinear
//! resize lands exactly on .5 for a few pixels of most photos, and half-up rounding would change
//! them), and so does an int8 model behind a uint8 input's QUANTIZE, which only moves the zero
//! point by 128 and so leaves the uint8-domain integers as they are; an int8 input takes the
//! [-1,1] image quantized with the input tensor's own scale and zero point as TFLite's QUANTIZE
//! rounds (half away from zero). Rows out are dequantized: the logits (scale x (q - zero
//! point)) for `Head::Logits`, the pooled features for `Head::Features`;
//! `forward_quantized` gives the model's own integer outputs.

#[cfg(target_arch = "x86_64")]
mod avx2;
pub(crate) mod kernels;
#[cfg(test)]
mod layer_tests;
mod lockstep;
pub(crate) mod requant;
#[cfg(target_arch = "x86_64")]
mod vnni;

use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::arch::{Arch, Head};
use super::backbone::{thread_pool, Backbone};
use super::cpu::Profile;
use super::kernels::Isa;
use super::padding::same_padding;
use super::ModelError;
use crate::weights::tflite::{QParams, QuantKind, QuantLayer, QuantizedNet};
use kernels::{Requant, Softmax};
use requant::{activation_range, quantize_multiplier};

/// Which kernels the integer network runs: the plain ones compiled for an instruction-set
/// level, the AVX2 ones (`vpmaddubsw` pointwise and first conv, `vpmaddwd` depthwise, where the level is avx2 or
/// avx512 without VNNI; the other layers plain at that level), or the AVX-512 VNNI ones (where
/// the CPU has VNNI and the level is avx512). Chosen once, when the network is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntKernels {
    Plain(Isa),
    Avx2(Isa),
    Avx512Vnni,
}

impl IntKernels {
    /// The widest kernels `isa` allows on this CPU.
    pub fn for_isa(isa: Isa) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use super::kernels::simd::Level;
            if isa == Isa::best() && isa.level() == Level::Avx512 && vnni::available() {
                return IntKernels::Avx512Vnni;
            }
            if isa.level() >= Level::Avx2 && avx2::available() {
                return IntKernels::Avx2(isa);
            }
        }
        IntKernels::Plain(isa)
    }

    /// Every choice this CPU runs, narrowest first: for tests.
    pub fn supported() -> Vec<Self> {
        let mut v: Vec<Self> = Isa::supported()
            .into_iter()
            .map(IntKernels::Plain)
            .collect();
        for k in Isa::supported().into_iter().map(IntKernels::for_isa) {
            if !v.contains(&k) {
                v.push(k);
            }
        }
        v
    }

    /// The level the plain kernels (the first conv, the pool, layers the VNNI kernels do not
    /// take) run at.
    fn isa(self) -> Isa {
        match self {
            IntKernels::Plain(isa) | IntKernels::Avx2(isa) => isa,
            IntKernels::Avx512Vnni => Isa::best(),
        }
    }
}

impl std::fmt::Display for IntKernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntKernels::Plain(isa) => write!(f, "{isa}"),
            IntKernels::Avx2(isa) if isa.level() == super::kernels::simd::Level::Avx2 => {
                f.write_str("avx2-int8")
            }
            IntKernels::Avx2(isa) => write!(f, "avx2-int8 ({isa} plain layers)"),
            IntKernels::Avx512Vnni => f.write_str("avx512-vnni"),
        }
    }
}

/// One layer ready to run: filter with its zero point subtracted, requantization per channel.
struct Layer {
    kind: QuantKind,
    stride: usize,
    cin: usize,
    cout: usize,
    filter: Vec<i16>,
    input_zero_point: i32,
    requant: Requant,
    /// The layer packed for the VNNI kernels, when the network runs them.
    #[cfg(target_arch = "x86_64")]
    vnni: Option<Vnni>,
    /// The layer packed for the AVX2 kernels, when the network runs them.
    #[cfg(target_arch = "x86_64")]
    avx2: Option<Avx2>,
}

#[cfg(target_arch = "x86_64")]
enum Vnni {
    Pointwise(vnni::VnniPointwise),
    Depthwise(vnni::VnniDepthwise),
    /// Conv2d_0 as a pointwise layer over each output pixel's 3x3x3 patch (27 bytes and one
    /// more that the zero weight ignores; taps outside the image are the input zero point, so
    /// that they add nothing, as TFLite skips them).
    Conv0(vnni::VnniPointwise),
}

#[cfg(target_arch = "x86_64")]
enum Avx2 {
    Pointwise(avx2::Avx2Pointwise),
    Depthwise(avx2::Avx2Depthwise),
    /// Conv2d_0 over its patches, as `Vnni::Conv0`.
    Conv0(avx2::Avx2Pointwise),
}

/// Input bytes per Conv2d_0 patch for the VNNI and AVX2 kernels: 27 padded to a multiple of 4.
#[cfg(target_arch = "x86_64")]
const PATCH: usize = 28;

impl Layer {
    /// Packs the layer for `kernels` (the VNNI form, where it applies).
    fn for_kernels(mut self, kernels: IntKernels) -> Self {
        #[cfg(target_arch = "x86_64")]
        if kernels == IntKernels::Avx512Vnni {
            self.vnni = match self.kind {
                QuantKind::Pointwise | QuantKind::Logits => vnni::VnniPointwise::new(
                    &self.filter,
                    self.cin,
                    self.cout,
                    self.input_zero_point,
                    &self.requant,
                )
                .map(Vnni::Pointwise),
                QuantKind::Depthwise => Some(Vnni::Depthwise(vnni::VnniDepthwise::new(
                    &self.filter,
                    self.cout,
                    self.input_zero_point,
                    &self.requant,
                ))),
                QuantKind::Conv0 if self.cin == 3 => vnni::VnniPointwise::new(
                    &self.patch_filter(),
                    PATCH,
                    self.cout,
                    self.input_zero_point,
                    &self.requant,
                )
                .map(Vnni::Conv0),
                QuantKind::Conv0 => None,
            };
        }
        #[cfg(target_arch = "x86_64")]
        if let IntKernels::Avx2(_) = kernels {
            let (filter, cin) = match self.kind {
                QuantKind::Conv0 if self.cin == 3 => (self.patch_filter(), PATCH),
                _ => (self.filter.clone(), self.cin),
            };
            self.avx2 = match self.kind {
                QuantKind::Depthwise => Some(Avx2::Depthwise(avx2::Avx2Depthwise::new(
                    &self.filter,
                    self.cout,
                    self.input_zero_point,
                    &self.requant,
                ))),
                _ => avx2::Avx2Pointwise::new(
                    &filter,
                    cin,
                    self.cout,
                    self.input_zero_point,
                    &self.requant,
                )
                .map(match self.kind {
                    QuantKind::Conv0 => Avx2::Conv0,
                    _ => Avx2::Pointwise,
                }),
            };
        }
        let _ = kernels;
        self
    }

    /// Conv2d_0's HWIO filter `[t][ci][oc]` as `[oc][t * 3 + ci]` with one zero weight at the
    /// end: a pointwise filter over `PATCH`-byte patches.
    #[cfg(target_arch = "x86_64")]
    fn patch_filter(&self) -> Vec<i16> {
        let mut f = vec![0i16; self.cout * PATCH];
        for (k, row) in self.filter.chunks_exact(self.cout).enumerate() {
            for (oc, &v) in row.iter().enumerate() {
                f[oc * PATCH + k] = v;
            }
        }
        f
    }

    /// The output's height and width for an `(h, w)` input.
    fn output_size(&self, (h, w): (usize, usize)) -> (usize, usize) {
        if self.stride == 2 {
            (h.div_ceil(2), w.div_ceil(2))
        } else {
            (h, w)
        }
    }

    /// The bytes of the layer's `(oh, ow)` output that thread `t` of `threads` writes: one
    /// contiguous band of rows (Conv2d_0, depthwise: their windows need whole rows) or of
    /// pixels (pointwise); empty for a thread left without work.
    fn band(&self, (oh, ow): (usize, usize), t: usize, threads: usize) -> std::ops::Range<usize> {
        let (unit, units) = match self.kind {
            QuantKind::Pointwise | QuantKind::Logits => (self.cout, oh * ow),
            QuantKind::Conv0 | QuantKind::Depthwise => (ow * self.cout, oh),
        };
        let per = units.div_ceil(threads);
        (t * per).min(units) * unit..((t + 1) * per).min(units) * unit
    }

    /// Output bytes `band` (from `band`) of the layer over its `(h, w)` input, into `out`.
    fn run_band(
        &self,
        isa: Isa,
        input: &[u8],
        (h, w): (usize, usize),
        band: std::ops::Range<usize>,
        out: &mut [u8],
    ) {
        let (_, ow) = self.output_size((h, w));
        match self.kind {
            QuantKind::Conv0 | QuantKind::Depthwise => {
                let row = ow * self.cout;
                let rows = band.start / row..band.end / row;
                if self.kind == QuantKind::Conv0 {
                    self.conv0(isa, input, (h, w), rows, out)
                } else {
                    self.depthwise(isa, input, (h, w), rows, out)
                }
            }
            QuantKind::Pointwise | QuantKind::Logits => {
                let pixels = band.start / self.cout..band.end / self.cout;
                let input = &input[pixels.start * self.cin..pixels.end * self.cin];
                self.pointwise(isa, input, pixels.len(), out)
            }
        }
    }

    /// Output rows `rows` of Conv2d_0 by a pointwise kernel over each row's patches
    /// (`run(patches, ow, out)`).
    #[cfg(target_arch = "x86_64")]
    fn conv0_patches(
        &self,
        input: &[u8],
        (h, w): (usize, usize),
        rows: std::ops::Range<usize>,
        out: &mut [u8],
        run: impl Fn(&[u8], usize, &mut [u8]),
    ) {
        let (_, (top, _)) = same_padding(h, 3, self.stride);
        let (ow, (left, _)) = same_padding(w, 3, self.stride);
        let zx = self.input_zero_point as u8;
        let mut patches = vec![zx; ow * PATCH];
        for (r, oy) in rows.enumerate() {
            let y0 = (oy * self.stride).checked_sub(top).filter(|&y| y + 3 <= h);
            for ox in 0..ow {
                let patch = &mut patches[ox * PATCH..][..PATCH];
                let x0 = (ox * self.stride).checked_sub(left).filter(|&x| x + 3 <= w);
                if let (Some(y0), Some(x0)) = (y0, x0) {
                    // All nine taps inside: each window row is 9 contiguous bytes.
                    for ky in 0..3 {
                        let at = ((y0 + ky) * w + x0) * 3;
                        patch[ky * 9..ky * 9 + 9].copy_from_slice(&input[at..at + 9]);
                    }
                    continue;
                }
                patch.fill(zx);
                for (t, y, x) in kernels::taps_inside((oy, ox), self.stride, (top, left), (h, w)) {
                    patch[t * 3..t * 3 + 3].copy_from_slice(&input[(y * w + x) * 3..][..3]);
                }
            }
            run(
                &patches,
                ow,
                &mut out[r * ow * self.cout..][..ow * self.cout],
            );
        }
    }

    /// Output rows `rows` of a 3x3 SAME convolution of a `(h, w, 3)` image (Conv2d_0).
    fn conv0(
        &self,
        isa: Isa,
        input: &[u8],
        (h, w): (usize, usize),
        rows: std::ops::Range<usize>,
        out: &mut [u8],
    ) {
        #[cfg(target_arch = "x86_64")]
        if let Some(Vnni::Conv0(k)) = &self.vnni {
            return self.conv0_patches(input, (h, w), rows, out, |p, n, o| k.run(p, n, o));
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(Avx2::Conv0(k)) = &self.avx2 {
            return self.conv0_patches(input, (h, w), rows, out, |p, n, o| k.run(p, n, o));
        }
        kernels::conv3x3(
            isa,
            input,
            (h, w, self.cin),
            self.input_zero_point,
            &self.filter,
            self.cout,
            self.stride,
            &self.requant,
            rows,
            out,
        )
    }

    fn pointwise(&self, isa: Isa, input: &[u8], pixels: usize, out: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(Vnni::Pointwise(k)) = &self.vnni {
            return k.run(input, pixels, out);
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(Avx2::Pointwise(k)) = &self.avx2 {
            return k.run(input, pixels, out);
        }
        kernels::pointwise(
            isa,
            input,
            pixels,
            self.cin,
            self.input_zero_point,
            &self.filter,
            self.cout,
            &self.requant,
            out,
        )
    }

    fn depthwise(
        &self,
        isa: Isa,
        input: &[u8],
        (h, w): (usize, usize),
        rows: std::ops::Range<usize>,
        out: &mut [u8],
    ) {
        #[cfg(target_arch = "x86_64")]
        if let Some(Vnni::Depthwise(k)) = &self.vnni {
            return k.run(input, (h, w), self.stride, rows, out);
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(Avx2::Depthwise(k)) = &self.avx2 {
            return k.run(input, (h, w), self.stride, rows, out);
        }
        kernels::depthwise3x3(
            isa,
            input,
            (h, w, self.cout),
            self.input_zero_point,
            &self.filter,
            self.stride,
            &self.requant,
            rows,
            out,
        )
    }
}

/// The model's integer outputs of one forward pass, one row per image.
pub struct QuantOutputs {
    /// Pooled Conv2d_13_pointwise features, `[n, C]`.
    pub pooled: Vec<u8>,
    /// Logits, `[n, K]` (classification models).
    pub logits: Vec<u8>,
    /// The softmax, `[n, K]` (models that end in one).
    pub probs: Vec<u8>,
}

pub struct QuantMobileNet {
    arch: Arch,
    head: Head,
    signed: bool,
    /// Fed pixels although int8 (`QuantizedNet::uint8_input`).
    uint8_input: bool,
    input: QParams,
    input_size: (usize, usize),
    layers: Vec<Layer>,
    pooled: QParams,
    logits: Option<(Layer, QParams)>,
    softmax: Option<Softmax>,
    scheme: &'static str,
    pool: rayon::ThreadPool,
    /// The kernels every layer runs, chosen when the network is built.
    kernels: IntKernels,
    /// The level of the plain kernels (`kernels.isa()`).
    isa: Isa,
    /// Pairs of activation buffers, each as large as the largest activation, kept between
    /// images (one pair per image in flight): every layer writes each byte of its output, so
    /// they are neither zeroed nor allocated per layer.
    buffers: std::sync::Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// The uint8 domain's zero point of a model's zero point.
fn shifted(zero_point: i32, signed: bool) -> i32 {
    if signed {
        zero_point + 128
    } else {
        zero_point
    }
}

fn prepare(l: &QuantLayer, signed: bool) -> Layer {
    let (qmin, qmax) = if signed { (-128, 127) } else { (0, 255) };
    let (act_min, act_max) =
        activation_range(l.relu6, l.output.scale, l.output.zero_point, qmin, qmax);
    let multipliers = l
        .filter_scales
        .iter()
        .map(|&fs| {
            // PopulateConvolutionQuantizationParams: in double, (input * filter) / output.
            quantize_multiplier(l.input.scale as f64 * fs as f64 / l.output.scale as f64)
        })
        .collect();
    Layer {
        kind: l.kind,
        stride: l.stride,
        cin: l.in_channels,
        cout: l.out_channels,
        filter: l
            .filter
            .iter()
            .map(|&v| (v - l.filter_zero_point) as i16)
            .collect(),
        input_zero_point: shifted(l.input.zero_point, signed),
        requant: Requant {
            multipliers,
            bias: l.bias.clone(),
            output_zero_point: shifted(l.output.zero_point, signed),
            act_min: shifted(act_min, signed),
            act_max: shifted(act_max, signed),
        },
        #[cfg(target_arch = "x86_64")]
        vnni: None,
        #[cfg(target_arch = "x86_64")]
        avx2: None,
    }
}

impl QuantMobileNet {
    /// The network up to `head` on `threads` threads with `kernels`
    /// (`ModelError::NoLogits` for logits of a feature-vector model).
    pub fn new(
        net: &QuantizedNet,
        head: Head,
        threads: usize,
        kernels: IntKernels,
    ) -> Result<Self, ModelError> {
        if head == Head::Logits && net.logits.is_none() {
            return Err(ModelError::NoLogits);
        }
        let logits = net
            .logits
            .as_ref()
            .map(|l| (prepare(l, net.signed).for_kernels(kernels), l.output));
        let pool = thread_pool(threads, "int8")?;
        Ok(Self {
            arch: net.arch,
            head,
            signed: net.signed,
            uint8_input: net.uint8_input,
            input: net.input,
            input_size: net.input_size,
            layers: net
                .body
                .iter()
                .map(|l| prepare(l, net.signed).for_kernels(kernels))
                .collect(),
            pooled: net.pooled,
            logits,
            softmax: net
                .softmax
                .as_ref()
                .map(|s| Softmax::new(s.input.scale, s.beta, net.signed)),
            scheme: net.scheme(),
            pool,
            kernels,
            isa: kernels.isa(),
            buffers: Default::default(),
        })
    }

    /// The bytes of the largest activation (the input included) of one image.
    fn largest_activation(&self) -> usize {
        let (mut h, mut w) = self.input_size;
        let mut largest = h * w * 3;
        for l in &self.layers {
            if l.stride == 2 {
                (h, w) = (h.div_ceil(2), w.div_ceil(2));
            }
            largest = largest.max(h * w * l.cout);
        }
        largest
    }

    /// The model's input tensor's side: a quantized model's pool is fixed to it.
    pub fn input_size(&self) -> (usize, usize) {
        self.input_size
    }

    /// [0,1] images to the model's uint8-domain input (see the module comment).
    pub(crate) fn quantize_input(&self, images: &[f32]) -> Vec<u8> {
        let mut out = vec![0u8; images.len()];
        // One band per thread (value by value: any split gives the same bytes).
        let band = images
            .len()
            .div_ceil(self.pool.current_num_threads())
            .max(1);
        self.pool.install(|| {
            out.par_chunks_mut(band)
                .zip(images.par_chunks(band))
                .for_each(|(out, images)| {
                    if self.signed && !self.uint8_input {
                        kernels::quantize_int8_input(self.isa, images, self.input, out);
                    } else {
                        kernels::quantize_uint8_input(self.isa, images, out);
                    }
                })
        });
        out
    }

    /// One forward pass over `n` images already in the model's input integers (uint8; an int8
    /// model's plus 128), `[n, h, w, 3]` at the model's input size.
    pub fn forward_quantized(&self, input: &[u8], n: usize) -> Result<QuantOutputs, ModelError> {
        let (h, w) = self.input_size;
        if input.len() != n * h * w * 3 {
            return Err(ModelError::Input(format!(
                "{} values for {n} images of {h}x{w}x3",
                input.len()
            )));
        }
        let (c, k) = (self.arch.feature_dim(), self.classes());
        let QuantOutputs {
            mut pooled,
            mut logits,
            mut probs,
        } = self.outputs(n);
        let one = |img: &[u8], pooled: &mut [u8], logits: &mut [u8], probs: &mut [u8]| {
            self.run_image(img, pooled, n == 1);
            self.classify(pooled, logits, probs);
        };
        self.pool.install(|| {
            let per = h * w * 3;
            let mut probs_rows: Vec<&mut [u8]> = if probs.is_empty() {
                (0..n).map(|_| &mut [][..]).collect()
            } else {
                probs.chunks_mut(k).collect()
            };
            let mut logit_rows: Vec<&mut [u8]> = if k == 0 {
                (0..n).map(|_| &mut [][..]).collect()
            } else {
                logits.chunks_mut(k).collect()
            };
            input
                .par_chunks(per)
                .zip(pooled.par_chunks_mut(c))
                .zip(logit_rows.par_iter_mut())
                .zip(probs_rows.par_iter_mut())
                .for_each(|(((img, p), l), s)| one(img, p, l, s));
        });
        Ok(QuantOutputs {
            pooled,
            logits,
            probs,
        })
    }

    /// Every body layer's output for one image, in order (run as an image alone is, in
    /// lockstep where the pool has more than one thread): for tests that report the first
    /// layer where two implementations part.
    #[doc(hidden)]
    pub fn trace(&self, img: &[u8]) -> Vec<Vec<u8>> {
        let mut outs = Vec::new();
        let mut pooled = vec![0u8; self.arch.feature_dim()];
        self.run_layers(img, &mut pooled, true, &mut |_, o| outs.push(o.to_vec()));
        outs
    }

    /// The 27 body layers and the pool over one image (`alone`: the only one of its pass).
    fn run_image(&self, img: &[u8], pooled: &mut [u8], alone: bool) {
        self.run_layers(img, pooled, alone, &mut |_, _| {});
    }

    /// `forward_quantized` one image after another, with the wall time of every stage summed
    /// over the batch and appended to `profile` (each layer still split over the threads).
    fn forward_profiled(&self, images: &[f32], n: usize, profile: &mut Profile) -> QuantOutputs {
        let (input, took) = self.pool.install(|| {
            let start = Instant::now();
            (self.quantize_input(images), start.elapsed())
        });
        profile.push(("Quantize".into(), took));
        let (c, k) = (self.arch.feature_dim(), self.classes());
        let mut out = self.outputs(n);
        let mut times = vec![Duration::ZERO; self.layers.len() + 2];
        self.pool.install(|| {
            for (i, img) in input.chunks_exact(input.len() / n.max(1)).enumerate() {
                let mut last = Instant::now();
                let pooled = &mut out.pooled[i * c..][..c];
                self.run_layers(img, pooled, true, &mut |l, _| {
                    times[l] += last.elapsed();
                    last = Instant::now();
                });
                times[self.layers.len()] += last.elapsed();
                let last = Instant::now();
                let probs = match self.softmax {
                    Some(_) => &mut out.probs[i * k..][..k],
                    None => &mut [][..],
                };
                self.classify(pooled, &mut out.logits[i * k..][..k], probs);
                times[self.layers.len() + 1] += last.elapsed();
            }
        });
        let names = (0..self.layers.len())
            .map(|i| match i {
                0 => "Conv2d_0".to_string(),
                i if i % 2 == 1 => format!("Conv2d_{}_depthwise", i.div_ceil(2)),
                i => format!("Conv2d_{}_pointwise", i / 2),
            })
            .chain(["AvgPool".to_string(), "Logits".to_string()]);
        profile.extend(names.zip(times));
        out
    }

    /// The classifier's width (0 for a feature-vector model).
    fn classes(&self) -> usize {
        self.logits.as_ref().map_or(0, |(l, _)| l.cout)
    }

    /// Zeroed integer outputs for `n` images.
    fn outputs(&self, n: usize) -> QuantOutputs {
        let k = self.classes();
        QuantOutputs {
            pooled: vec![0u8; n * self.arch.feature_dim()],
            logits: vec![0u8; n * k],
            probs: vec![0u8; if self.softmax.is_some() { n * k } else { 0 }],
        }
    }

    /// One image's logits from its pooled features and, for a model that ends in one, their
    /// softmax (`probs` is empty otherwise).
    fn classify(&self, pooled: &[u8], logits: &mut [u8], probs: &mut [u8]) {
        if let Some((l, _)) = &self.logits {
            l.pointwise(self.isa, pooled, 1, logits);
            if let Some(s) = &self.softmax {
                s.run(logits, probs);
            }
        }
    }

    /// The body layers over one image, `seen` called with each one's index and output, then
    /// the pool. Each layer runs in one contiguous band of rows (or pixels) per thread, the
    /// same band of the image on the same thread from layer to layer, so that a layer reads
    /// mostly what its own core wrote: finer work items, handed out as threads come free, cost
    /// more in cache lines moved between cores than they gain in balance. An image `alone` in
    /// its pass (batch 1) runs in lockstep (`lockstep.rs`); in a batch of more images than
    /// threads, each image runs on one thread (the split by image comes first), and these
    /// bands then run where their image does.
    fn run_layers(
        &self,
        img: &[u8],
        pooled: &mut [u8],
        alone: bool,
        seen: &mut (dyn FnMut(usize, &[u8]) + Send),
    ) {
        let taken = self.buffers.lock().ok().and_then(|mut b| b.pop());
        let (mut cur, mut next) = taken.unwrap_or_else(|| {
            let largest = self.largest_activation();
            (vec![0u8; largest], vec![0u8; largest])
        });
        cur[..img.len()].copy_from_slice(img);
        let threads = self.pool.current_num_threads();
        let (h, w, c) = if alone && threads > 1 {
            self.run_lockstep(&mut cur, &mut next, seen)
        } else {
            self.run_forked(&mut cur, &mut next, seen)
        };
        kernels::global_average(&cur[..h * w * c], h * w, c, self.signed, pooled);
        if let Ok(mut b) = self.buffers.lock() {
            b.push((cur, next));
        }
    }

    /// `run_layers` with a fork-join per layer; the last layer's output left in `cur`, its
    /// shape returned.
    fn run_forked(
        &self,
        cur: &mut Vec<u8>,
        next: &mut Vec<u8>,
        seen: &mut dyn FnMut(usize, &[u8]),
    ) -> (usize, usize, usize) {
        let (mut h, mut w) = self.input_size;
        let mut c = 3;
        let threads = self.pool.current_num_threads();
        for (index, l) in self.layers.iter().enumerate() {
            let (oh, ow) = l.output_size((h, w));
            let input = &cur[..h * w * c];
            let out = &mut next[..oh * ow * l.cout];
            let chunk = l.band((oh, ow), 0, threads).len().max(1);
            out.par_chunks_mut(chunk).enumerate().for_each(|(t, out)| {
                l.run_band(
                    self.isa,
                    input,
                    (h, w),
                    t * chunk..t * chunk + out.len(),
                    out,
                )
            });
            std::mem::swap(cur, next);
            (h, w, c) = (oh, ow, l.cout);
            seen(index, &cur[..h * w * c]);
        }
        (h, w, c)
    }

    /// `run_layers` with every thread of the pool on its own band of each layer at once and a
    /// barrier between layers; `seen` is called on the first thread.
    fn run_lockstep(
        &self,
        cur: &mut Vec<u8>,
        next: &mut Vec<u8>,
        seen: &mut (dyn FnMut(usize, &[u8]) + Send),
    ) -> (usize, usize, usize) {
        let threads = self.pool.current_num_threads();
        let barrier = lockstep::SpinBarrier::new(threads);
        let buffers = [
            lockstep::SharedBytes::new(cur),
            lockstep::SharedBytes::new(next),
        ];
        let seen = std::sync::Mutex::new(seen);
        let shapes = self.pool.broadcast(|ctx| {
            let _arrival = barrier.join();
            let t = ctx.index();
            let (mut h, mut w) = self.input_size;
            let mut c = 3;
            for (index, l) in self.layers.iter().enumerate() {
                let (oh, ow) = l.output_size((h, w));
                let (from, to) = (&buffers[index % 2], &buffers[(index + 1) % 2]);
                let band = l.band((oh, ow), t, threads);
                // SAFETY: during this layer every thread only reads `from` and writes its own
                // band of `to`; the barrier after it orders these against the next layer's
                // reads of `to` and writes of `from`.
                let (input, out) = unsafe { (from.read(h * w * c), to.band(band.clone())) };
                if !band.is_empty() {
                    l.run_band(self.isa, input, (h, w), band, out);
                }
                barrier.wait(index);
                (h, w, c) = (oh, ow, l.cout);
                if t == 0 {
                    // SAFETY: the layer is complete (the barrier), and nobody writes `to`
                    // before every thread, this one included, has passed the next barrier.
                    let done = unsafe { to.read(h * w * c) };
                    if let Ok(mut seen) = seen.lock() {
                        seen(index, done)
                    }
                }
            }
            (h, w, c)
        });
        if self.layers.len() % 2 == 1 {
            std::mem::swap(cur, next);
        }
        shapes[0]
    }
}

impl Backbone for QuantMobileNet {
    fn arch(&self) -> Arch {
        self.arch
    }

    fn head(&self) -> Head {
        self.head
    }

    fn out_dim(&self) -> usize {
        match (&self.logits, self.head) {
            (Some((l, _)), Head::Logits) => l.cout,
            _ => self.arch.feature_dim(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "cpu ({} threads, {}, {} integer kernels)",
            self.pool.current_num_threads(),
            self.kernels,
            self.scheme
        )
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
        if (h, w) != self.input_size {
            return Err(ModelError::Input(format!(
                "a {h}x{w} image for a quantized model whose input is {}x{} (its pool is fixed \
                 to that size)",
                self.input_size.0, self.input_size.1
            )));
        }
        let q = match profile {
            Some(p) => self.forward_profiled(images, n, p),
            // One hand-over to the pool for both steps (each installs again, which inside
            // the pool costs nothing): a second would add a thread wake-up to every call.
            None => self
                .pool
                .install(|| self.forward_quantized(&self.quantize_input(images), n))?,
        };
        let dequantize = |v: &[u8], p: QParams| -> Vec<f32> {
            let zp = shifted(p.zero_point, self.signed);
            v.iter()
                .map(|&x| p.scale * (x as i32 - zp) as f32)
                .collect()
        };
        Ok(match (&self.logits, self.head) {
            (Some((_, out)), Head::Logits) => dequantize(&q.logits, *out),
            _ => dequantize(&q.pooled, self.pooled),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorizable input conversions against libm's rounding, on every 1/65536 step of
    /// [0, 1] (ties included: 255 x k/510 lands on .5) and a little outside it.
    #[test]
    fn input_rounding_is_libms() {
        let xs: Vec<f32> = (-256..=65536 + 256)
            .map(|i| i as f32 / 65536.0)
            .chain((0..=510).map(|k| k as f32 / 510.0))
            .collect();
        for isa in Isa::supported() {
            check_input_rounding(isa, &xs);
        }
    }

    fn check_input_rounding(isa: Isa, xs: &[f32]) {
        let mut u = vec![0u8; xs.len()];
        kernels::quantize_uint8_input(isa, xs, &mut u);
        for (&x, &q) in xs.iter().zip(&u) {
            let want = (x * 255.0).clamp(0.0, 255.0).round_ties_even() as u8;
            assert_eq!(q, want, "{isa}: x = {x}");
        }
        for p in [
            QParams {
                scale: 1.0 / 128.0,
                zero_point: 0,
            },
            QParams {
                scale: 0.007_843_138,
                zero_point: -1,
            },
            QParams {
                scale: 0.02,
                zero_point: 5,
            },
        ] {
            let mut s = vec![0u8; xs.len()];
            kernels::quantize_int8_input(isa, xs, p, &mut s);
            for (&x, &q) in xs.iter().zip(&s) {
                let want =
                    (((2.0 * x - 1.0) / p.scale).round() as i32 + p.zero_point).clamp(-128, 127);
                assert_eq!(q as i32 - 128, want, "{isa}: x = {x}, {p:?}");
            }
        }
    }
}
