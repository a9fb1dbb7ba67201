//! The model on its device: batches of preprocessed images in, rows of logits or features out.
//! Which implementation of the network runs (`model::Backbone`) is decided here, once: the
//! integer kernels for a quantized model, the CPU kernels on the CPU, candle elsewhere.

use candle_core::Device;

use crate::model::cpu::Profile;
use crate::model::kernels::Isa;
use crate::model::quant::{IntKernels, QuantMobileNet};
pub use crate::model::Head;
use crate::model::{Arch, Backbone, CpuMobileNet, MobileNetV1, ModelError, Precision};
use crate::preprocess::Rgb32;
use crate::weights::Weights;

pub struct Engine {
    backbone: Box<dyn Backbone>,
}

/// Every core the process may use: the default thread count of the CPU path.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl Engine {
    /// The network up to `head`, on `device`: what every `run` returns is fixed here
    /// (`ModelError::NoLogits` now, not at the first batch, for weights without a classifier).
    pub fn new(weights: &Weights, head: Head, device: Device) -> Result<Self, ModelError> {
        let precision = if weights.quantized.is_some() {
            Precision::Int8
        } else {
            Precision::Fp32
        };
        Self::with_threads(weights, head, device, default_threads(), precision)
    }

    /// Like `new`, with the CPU path on `threads` threads (ignored on other devices), in
    /// `precision` (int8: the weights must be quantized; bf16: the CPU must have AVX512_BF16;
    /// `config::resolve_precision` decides).
    /// The CPU path's instruction set is the widest the CPU has, or `MNV1_ISA`'s
    /// (`ModelError::Isa` when the CPU lacks it).
    pub(crate) fn with_threads(
        weights: &Weights,
        head: Head,
        device: Device,
        threads: usize,
        precision: Precision,
    ) -> Result<Self, ModelError> {
        let quantized = match (precision, &weights.quantized) {
            (Precision::Int8, None) => {
                return Err(ModelError::Unsupported(
                    "int8 needs quantized weights (a quantized .tflite, or float weights \
                     quantized with --calibrate)"
                        .into(),
                ))
            }
            (Precision::Int8, q) => q.as_ref(),
            (_, Some(q)) => {
                return Err(ModelError::Unsupported(format!(
                    "a quantized model ({}) runs in int8 only, not {precision}",
                    q.scheme()
                )))
            }
            (_, None) => None,
        };
        let backbone: Box<dyn Backbone> = if let Some(q) = quantized {
            if !device.is_cpu() {
                return Err(ModelError::Unsupported(format!(
                    "a quantized model ({}) runs on the CPU's integer kernels only, not on {:?}: \
                     drop --device, or use the float model",
                    q.scheme(),
                    device.location()
                )));
            }
            Box::new(QuantMobileNet::new(
                q,
                head,
                threads,
                IntKernels::for_isa(Isa::from_env()?),
            )?)
        } else if device.is_cpu() {
            // bf16 is the CPU network with its pointwise layers packed for vdpbf16ps.
            let build = match precision {
                Precision::Bf16 => CpuMobileNet::from_tensors_bf16,
                _ => CpuMobileNet::from_tensors,
            };
            Box::new(build(
                &weights.tensors,
                weights.arch,
                head,
                threads,
                Isa::from_env()?,
            )?)
        } else if precision == Precision::Bf16 {
            return Err(ModelError::Unsupported(format!(
                "bf16 runs on the CPU only, not on {:?}",
                device.location()
            )));
        } else {
            Box::new(MobileNetV1::from_tensors(
                &weights.tensors,
                weights.arch,
                head,
                &device,
            )?)
        };
        Ok(Self { backbone })
    }

    pub(crate) fn arch(&self) -> Arch {
        self.backbone.arch()
    }

    /// Runs `f` on the network's thread pool (so its parallel work shares the network's
    /// threads instead of competing with them), or on the caller's pool for other devices.
    pub(crate) fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match self.backbone.thread_pool() {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// `cpu (N threads, avx512)`, `cuda`, ... for reports.
    pub(crate) fn describe(&self) -> String {
        self.backbone.describe()
    }

    /// The width of one output row: the number of logits (1001, or K for a fine-tuned model)
    /// or of features.
    pub(crate) fn out_dim(&self) -> usize {
        self.backbone.out_dim()
    }

    /// One forward pass over same-sized images; one row per image.
    pub fn run(&self, images: &[&Rgb32]) -> Result<Vec<Vec<f32>>, ModelError> {
        let Some(first) = images.first() else {
            return Ok(Vec::new());
        };
        let (h, w) = (first.height, first.width);
        let mut data = Vec::with_capacity(images.len() * h * w * 3);
        for img in images {
            debug_assert_eq!((img.height, img.width), (h, w));
            data.extend_from_slice(&img.data);
        }
        let flat = self.forward(&data, images.len(), h, w, None)?;
        let width = flat.len() / images.len();
        Ok(flat.chunks_exact(width).map(<[f32]>::to_vec).collect())
    }

    /// One forward pass over `n` NHWC images `[n, h, w, 3]` in [0,1]: `[n, out_dim]` row-major.
    /// With `profile` (CPU path only), the time of every layer is appended to it.
    pub(crate) fn forward(
        &self,
        images: &[f32],
        n: usize,
        h: usize,
        w: usize,
        profile: Option<&mut Profile>,
    ) -> Result<Vec<f32>, ModelError> {
        self.backbone.forward(images, n, h, w, profile)
    }
}
