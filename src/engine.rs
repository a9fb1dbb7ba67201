//! The model on its device: batches of preprocessed images in, rows of logits or features out.
//! On the CPU the fast path (`model::cpu`) runs; elsewhere the candle network does.

use candle_core::{Device, Tensor};

use crate::model::cpu::Profile;
use crate::model::kernels::Isa;
pub use crate::model::Head;
use crate::model::{Arch, CpuMobileNet, MobileNetV1, ModelError};
use crate::preprocess::Rgb32;
use crate::weights::Weights;

enum Backend {
    Cpu(CpuMobileNet),
    Candle { model: MobileNetV1, device: Device },
}

pub struct Engine {
    backend: Backend,
}

/// Every core the process may use: the default thread count of the CPU path.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl Engine {
    pub fn new(weights: &Weights, head: Head, device: Device) -> Result<Self, ModelError> {
        Self::with_threads(weights, head, device, default_threads())
    }

    /// Like `new`, with the CPU path on `threads` threads (ignored on other devices). The CPU
    /// path's instruction set is the widest the CPU has, or `MNV1_ISA`'s
    /// (`ModelError::Isa` when the CPU lacks it).
    pub(crate) fn with_threads(
        weights: &Weights,
        head: Head,
        device: Device,
        threads: usize,
    ) -> Result<Self, ModelError> {
        let backend = if device.is_cpu() {
            Backend::Cpu(CpuMobileNet::from_tensors(
                &weights.tensors,
                weights.arch,
                head,
                threads,
                Isa::from_env()?,
            )?)
        } else {
            Backend::Candle {
                model: MobileNetV1::from_tensors(&weights.tensors, weights.arch, head, &device)?,
                device,
            }
        };
        Ok(Self { backend })
    }

    pub(crate) fn arch(&self) -> Arch {
        match &self.backend {
            Backend::Cpu(m) => m.arch(),
            Backend::Candle { model, .. } => model.arch(),
        }
    }

    /// Runs `f` on the CPU path's thread pool (so its parallel work shares the network's
    /// threads instead of competing with them), or on the caller's pool for other devices.
    pub(crate) fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.backend {
            Backend::Cpu(m) => m.install(f),
            Backend::Candle { .. } => f(),
        }
    }

    /// `cpu (N threads)`, `cuda`, ... for reports.
    pub(crate) fn describe(&self) -> String {
        match &self.backend {
            Backend::Cpu(m) => format!("cpu ({} threads, {})", m.threads(), m.isa()),
            Backend::Candle { device, .. } => format!("{:?}", device.location()),
        }
    }

    /// Number of logits (1001, or K for a fine-tuned model).
    pub(crate) fn num_classes(&self) -> usize {
        match &self.backend {
            Backend::Cpu(m) => m.num_classes(),
            Backend::Candle { model, .. } => model.num_classes(),
        }
    }

    /// One forward pass over same-sized images; one row per image.
    pub fn run(&self, images: &[&Rgb32], head: Head) -> Result<Vec<Vec<f32>>, ModelError> {
        let Some(first) = images.first() else {
            return Ok(Vec::new());
        };
        let (h, w) = (first.height, first.width);
        let mut data = Vec::with_capacity(images.len() * h * w * 3);
        for img in images {
            debug_assert_eq!((img.height, img.width), (h, w));
            data.extend_from_slice(&img.data);
        }
        let flat = self.forward(&data, images.len(), h, w, head, None)?;
        let width = flat.len() / images.len();
        Ok(flat.chunks_exact(width).map(<[f32]>::to_vec).collect())
    }

    /// One forward pass over `n` NHWC images `[n, h, w, 3]` in [0,1]: `[n, D]` row-major. With
    /// `profile` (CPU path only), the time of every layer is appended to it.
    pub(crate) fn forward(
        &self,
        images: &[f32],
        n: usize,
        h: usize,
        w: usize,
        head: Head,
        profile: Option<&mut Profile>,
    ) -> Result<Vec<f32>, ModelError> {
        match &self.backend {
            Backend::Cpu(m) => m.forward(images, n, h, w, head, profile),
            Backend::Candle { model, device } => {
                let x = Tensor::from_slice(images, (n, h, w, 3), device)?;
                let y = match head {
                    Head::Logits => model.logits(&x)?,
                    Head::Features => model.features(&x)?,
                };
                Ok(y.flatten_all()?.to_vec1()?)
            }
        }
    }
}
