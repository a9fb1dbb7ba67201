//! 1x1 convolution over NHWC as one GEMM, `[rows, Cin] x [Cin, Cout]`, with the `gemm` crate
//! (its AVX-512 / AVX2 micro-kernels are chosen at run time), then bias and ReLU6 in one pass
//! over the block while it is still in cache. Callers hand each thread its own block of rows,
//! so the GEMM itself runs single-threaded.

use super::relu6;
use super::simd::dispatch;

/// A folded pointwise layer: weights `[Cin, Cout]` (TF's `[1, 1, Cin, Cout]` as stored).
pub struct Pointwise {
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
    pub cin: usize,
}

/// `out[r, :] = relu6(input[r, :] x weights + bias)` for every row `r` of the block.
pub fn pointwise_rows(input: &[f32], layer: &Pointwise, out: &mut [f32]) {
    let cout = layer.bias.len();
    matmul(input, &layer.weights, layer.cin, cout, out);
    bias_relu6(out, &layer.bias);
}

/// `out = a x b` for row-major `a: [m, k]`, `b: [k, n]`, `out: [m, n]`, on this thread.
pub fn matmul(a: &[f32], b: &[f32], k: usize, n: usize, out: &mut [f32]) {
    let m = out.len() / n;
    assert!(
        a.len() == m * k && b.len() == k * n && out.len() == m * n,
        "matmul shapes"
    );
    if m == 0 {
        return;
    }
    // SAFETY: the three buffers hold exactly the row-major matrices the strides describe (checked
    // above), and `out` is borrowed mutably so nothing else reads or writes it.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

dispatch!(fn bias_relu6(out: &mut [f32], bias: &[f32]) => bias_relu6_body);

#[inline(always)]
fn bias_relu6_body<const FMA: bool>(out: &mut [f32], bias: &[f32]) {
    for row in out.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v = relu6(*v + b);
        }
    }
}

/// `out[r, :] += bias` for every row (the logits layer has no activation).
pub fn add_bias(out: &mut [f32], bias: &[f32]) {
    for row in out.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}
