//! The one interface every implementation of the network offers for inference: the CPU kernels
//! (`cpu.rs`), candle (`mobilenet.rs`: the reference, CUDA / Metal) and the integer network
//! (`quant/`). `engine.rs` holds one of them and knows nothing else about it; a new precision or
//! device is a new implementation of this trait and its kernels.

use super::arch::{Arch, Head};
use super::cpu::Profile;
use super::ModelError;

pub trait Backbone: Send + Sync {
    fn arch(&self) -> Arch;

    /// What `forward` returns, fixed when the network was built: a features-only network has
    /// no logits to give, and asking for them is refused at construction.
    fn head(&self) -> Head;

    /// The width of one output row: K logits (1001, or a fine-tuned head's), or the features.
    fn out_dim(&self) -> usize;

    /// `cpu (N threads, avx2)`, `cuda`, ... for reports.
    fn describe(&self) -> String;

    /// The thread pool the network runs on, for callers whose parallel work (decoding) should
    /// share its threads instead of competing with them; None where the device has its own.
    fn thread_pool(&self) -> Option<&rayon::ThreadPool> {
        None
    }

    /// One forward pass over `n` NHWC images `[n, h, w, 3]` with values in [0,1]: `[n, out_dim]`
    /// row-major. With `profile` (where the backend can time its layers), the wall time of
    /// every layer is appended to it.
    fn forward(
        &self,
        images: &[f32],
        n: usize,
        h: usize,
        w: usize,
        profile: Option<&mut Profile>,
    ) -> Result<Vec<f32>, ModelError>;
}

/// A network's own thread pool of `threads` threads (at least 1), named `mnv1-{role}-N` so
/// that profiles and `top` tell them apart.
pub(crate) fn thread_pool(
    threads: usize,
    role: &'static str,
) -> Result<rayon::ThreadPool, ModelError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(move |i| format!("mnv1-{role}-{i}"))
        .build()
        .map_err(|e| ModelError::Threads(e.to_string()))
}
