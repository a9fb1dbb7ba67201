//! 1x1 convolution over NHWC, `[rows, Cin] x [Cin, Cout]`, by a register-blocked kernel over
//! weights packed once at load time: panels of 32 output channels, `[Cin, 32]` each, so the inner
//! loop reads one panel row (two AVX-512 registers) and broadcasts one input value per row of the
//! tile. Bias and ReLU6 are applied to the accumulators before the single store. The logits
//! layer is the same product without ReLU6. (The `gemm` crate packed the `[Cin, Cout]` weights
//! again on every call, which cost more than the arithmetic on the small late layers, and kept
//! its packing buffers per thread.) Callers hand each thread its own block of rows. A layer
//! turned to bf16 (`Pointwise::into_bf16`) keeps its shape, bias and ReLU6 and runs its
//! products in `bf16.rs` instead.

use super::bf16::{self, Bf16, Bf16Panels};
use super::simd::{dispatch, mul_add, Target};
use super::{relu6, AlignedBuf, Isa};

/// Output channels per packed panel: two 16-lane AVX-512 registers.
pub(super) const PANEL: usize = 32;
/// Rows per register tile: 8 x 32 accumulators fill 16 of the 32 AVX-512 registers. (12 rows,
/// 24 registers, measured no faster.)
const TILE_ROWS: usize = 8;

/// A folded pointwise layer with its weights packed into panels.
pub struct Pointwise {
    filter: Filter,
    /// `[Cout]` padded with zeros to whole panels.
    pub(super) bias: Vec<f32>,
    pub(super) cin: usize,
    pub(super) cout: usize,
    /// ReLU6 on the output (every layer but the logits).
    pub(super) relu6: bool,
    isa: Isa,
}

/// The packed weights, in the arithmetic the layer's products run in, fixed when it is built.
enum Filter {
    /// `ceil(Cout / 32)` panels of `[Cin, 32]`, zero past `Cout`; each panel row one cache line
    /// pair.
    Fp32(AlignedBuf),
    /// The same panels rounded to bf16 once, inputs paired (`bf16.rs`).
    Bf16(Bf16Panels, Bf16),
}

impl Pointwise {
    /// Packs TF's `[1, 1, Cin, Cout]` filter (row-major `[Cin, Cout]`) and bias `[Cout]`, for a
    /// layer followed by ReLU6, run with `isa`. Panics unless `Cin, Cout > 0` and the weights
    /// hold `Cin x Cout` values.
    pub fn new(weights: &[f32], bias: &[f32], cin: usize, isa: Isa) -> Self {
        Self::pack(weights, bias, cin, true, isa)
    }

    /// The same for a layer without activation: the logits, `[C, classes]` weights.
    pub fn linear(weights: &[f32], bias: &[f32], cin: usize, isa: Isa) -> Self {
        Self::pack(weights, bias, cin, false, isa)
    }

    fn pack(weights: &[f32], bias: &[f32], cin: usize, relu6: bool, isa: Isa) -> Self {
        let cout = bias.len();
        assert!(cin > 0 && cout > 0, "pointwise without channels");
        assert_eq!(weights.len(), cin * cout, "pointwise weights [Cin, Cout]");
        let panels = cout.div_ceil(PANEL);
        let mut packed = AlignedBuf::zeroed(panels * cin * PANEL);
        for (p, panel) in packed
            .as_mut_slice()
            .chunks_exact_mut(cin * PANEL)
            .enumerate()
        {
            let first = p * PANEL;
            let width = PANEL.min(cout - first);
            for (k, row) in panel.chunks_exact_mut(PANEL).enumerate() {
                row[..width].copy_from_slice(&weights[k * cout + first..][..width]);
            }
        }
        let mut padded = bias.to_vec();
        padded.resize(panels * PANEL, 0.0);
        Self {
            filter: Filter::Fp32(packed),
            bias: padded,
            cin,
            cout,
            relu6,
            isa,
        }
    }

    /// The same layer with its products in bf16 (vdpbf16ps): the weights rounded to bf16 once,
    /// here; sums, bias and ReLU6 stay fp32.
    pub fn into_bf16(self, bf16: Bf16) -> Self {
        let filter = match self.filter {
            Filter::Fp32(packed) => {
                Filter::Bf16(Bf16Panels::pack(packed.as_slice(), self.cin), bf16)
            }
            same @ Filter::Bf16(..) => same,
        };
        Self { filter, ..self }
    }

    pub fn cin(&self) -> usize {
        self.cin
    }

    /// The fp32 panels; `pointwise_rows` sends a bf16 layer to `bf16::rows` before anything
    /// asks for them.
    fn fp32_panels(&self) -> &[f32] {
        match &self.filter {
            Filter::Fp32(packed) => packed.as_slice(),
            Filter::Bf16(..) => unreachable!("a bf16 layer runs in bf16::rows"),
        }
    }

    /// `(first output channel, channels that exist, [Cin, 32] weights)` of each fp32 panel.
    fn panels(&self) -> impl Iterator<Item = (usize, usize, &[f32])> {
        let cout = self.cout;
        self.fp32_panels()
            .chunks_exact(self.cin * PANEL)
            .enumerate()
            .map(move |(p, panel)| (p * PANEL, PANEL.min(cout - p * PANEL), panel))
    }

    pub fn cout(&self) -> usize {
        self.cout
    }
}

/// `out[r, :] = relu6(input[r, :] x weights + bias)` for every row `r` of the block (without
/// the ReLU6 for a `linear` layer).
pub fn pointwise_rows(input: &[f32], layer: &Pointwise, out: &mut [f32]) {
    let rows = out.len() / layer.cout;
    assert!(
        input.len() == rows * layer.cin && out.len() == rows * layer.cout,
        "pointwise block shapes"
    );
    match &layer.filter {
        Filter::Fp32(_) => dispatch_rows(layer.isa, input, layer, out),
        Filter::Bf16(panels, bf16) => bf16::rows(*bf16, input, layer, panels, out),
    }
}

dispatch!(fn dispatch_rows(input: &[f32], layer: &Pointwise, out: &mut [f32]) => rows_body);

/// The hand-written AVX-512 kernel at that level, else the same tiles in plain Rust (compiled
/// for AVX2+FMA at that level).
#[inline(always)]
fn rows_body<T: Target>(input: &[f32], layer: &Pointwise, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if T::AVX512 {
        // SAFETY: `T::AVX512` holds only in the copy `dispatch!` runs for an `Isa` of level
        // Avx512, which exists only where the CPU has AVX-512F; `pointwise_rows` checked the
        // shapes.
        unsafe { avx512::rows(input, layer, out) };
        return;
    }
    portable_body::<T>(input, layer, out);
}

/// `(first row, rows)` of the register tiles covering `rows`: as few tiles as `TILE_ROWS`
/// allows, of equal size give or take one (49 rows: seven tiles of 7, not six of 8 and a 1-row
/// tile that would stream the whole panel for one row).
pub(super) fn tiles(rows: usize) -> impl Iterator<Item = (usize, usize)> {
    let n = rows.div_ceil(TILE_ROWS);
    let (base, extra) = (rows / n.max(1), rows % n.max(1));
    (0..n).map(move |t| (t * base + t.min(extra), base + usize::from(t < extra)))
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{tiles, Pointwise, PANEL};

    /// Inputs per pass over a panel: 256 x 32 weights (32 KB) stay in L1 while every tile of
    /// rows uses them; longer inputs (512, 1024) accumulate in `out` over several passes.
    const K_BLOCK: usize = 256;

    /// What one tile call reads and writes, apart from its rows.
    struct Pass {
        /// Weights of this panel and k-range, `[kc, 32]`.
        w: *const f32,
        kc: usize,
        /// Row stride of the input and of the output.
        lda: usize,
        ldo: usize,
        bias: *const f32,
        /// Output lanes of the panel that exist (Cout may end mid-panel).
        masks: [__mmask16; 2],
        /// First k-range: start from the bias. `relu6`: the last k-range of a layer with ReLU6.
        first: bool,
        relu6: bool,
    }

    /// SAFETY (caller): the CPU has AVX-512F; `input` holds `rows x Cin` values and `out`
    /// `rows x Cout` (checked by `pointwise_rows`).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn rows(input: &[f32], layer: &Pointwise, out: &mut [f32]) {
        let (cin, cout) = (layer.cin, layer.cout);
        let rows = out.len() / cout;
        if rows == 1 {
            let (a, o) = (input.as_ptr(), out.as_mut_ptr());
            let panels = cout.div_ceil(PANEL);
            let wide = panels - panels % 4;
            for p in (0..wide).step_by(4) {
                // SAFETY: one row of `cin` inputs and `cout` outputs (our caller's contract),
                // and panels p..p + 4 <= `panels` exist.
                unsafe { one_row::<4>(a, layer, p, o) };
            }
            for p in wide..panels {
                // SAFETY: as above, panel p < `panels`.
                unsafe { one_row::<1>(a, layer, p, o) };
            }
            return;
        }
        for (first, width, panel) in layer.panels() {
            let masks = panel_masks(width);
            for k0 in (0..cin).step_by(K_BLOCK) {
                let kc = K_BLOCK.min(cin - k0);
                let pass = Pass {
                    w: panel[k0 * PANEL..].as_ptr(),
                    kc,
                    lda: cin,
                    ldo: cout,
                    bias: layer.bias[first..].as_ptr(),
                    masks,
                    first: k0 == 0,
                    relu6: layer.relu6 && k0 + kc == cin,
                };
                for (r, tile) in tiles(rows) {
                    let a = input[r * cin + k0..].as_ptr();
                    let o = out[r * cout + first..].as_mut_ptr();
                    // SAFETY: rows r..r + tile exist in both buffers (our caller's contract);
                    // inputs k0..k0 + kc < Cin of each, and the panel's output lanes below
                    // Cout, which `masks` keeps.
                    unsafe {
                        match tile {
                            8 => tile_kernel::<8>(a, o, &pass),
                            7 => tile_kernel::<7>(a, o, &pass),
                            6 => tile_kernel::<6>(a, o, &pass),
                            5 => tile_kernel::<5>(a, o, &pass),
                            4 => tile_kernel::<4>(a, o, &pass),
                            3 => tile_kernel::<3>(a, o, &pass),
                            2 => tile_kernel::<2>(a, o, &pass),
                            _ => tile_kernel::<1>(a, o, &pass),
                        }
                    }
                }
            }
        }
    }

    /// The store masks of a panel with `width` output channels that exist.
    fn panel_masks(width: usize) -> [__mmask16; 2] {
        let lanes = |v: usize| width.saturating_sub(16 * v).min(16);
        [0, 1].map(|v| ((1u32 << lanes(v)) - 1) as __mmask16)
    }

    /// A single row (the logits of one image) against panels `first..first + NP`, all inputs
    /// at once: `2 * NP` accumulator chains hide the FMA latency that a one-row tile's two
    /// could not. Each output sums the same products in the same order as `tile_kernel`, so a
    /// result does not depend on how many images were in the batch.
    ///
    /// SAFETY (caller): the CPU has AVX-512F; `a` points at `layer.cin` readable values, `out`
    /// at the layer's `cout` writable ones; panels `first..first + NP` exist.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn one_row<const NP: usize>(
        a: *const f32,
        layer: &Pointwise,
        first: usize,
        out: *mut f32,
    ) {
        let cin = layer.cin;
        let w = layer.fp32_panels()[first * cin * PANEL..].as_ptr();
        let masks: [[__mmask16; 2]; NP] =
            std::array::from_fn(|p| panel_masks(PANEL.min(layer.cout - (first + p) * PANEL)));
        let mut acc: [[__m512; 2]; NP] = std::array::from_fn(|p| {
            let b = layer.bias[(first + p) * PANEL..][..PANEL].as_ptr();
            // SAFETY: the bias is padded to whole panels, and panel first + p exists.
            unsafe {
                [
                    _mm512_maskz_loadu_ps(masks[p][0], b),
                    _mm512_maskz_loadu_ps(masks[p][1], b.add(16)),
                ]
            }
        });
        for k in 0..cin {
            // SAFETY: k < Cin values readable at `a` (the caller's contract).
            let x = _mm512_set1_ps(unsafe { *a.add(k) });
            for (p, [lo, hi]) in acc.iter_mut().enumerate() {
                // SAFETY: row k < Cin of panel first + p, which exists (`packed` holds whole
                // `[Cin, 32]` panels).
                let (w0, w1) = unsafe {
                    let wk = w.add(p * cin * PANEL + k * PANEL);
                    (_mm512_loadu_ps(wk), _mm512_loadu_ps(wk.add(16)))
                };
                *lo = _mm512_fmadd_ps(x, w0, *lo);
                *hi = _mm512_fmadd_ps(x, w1, *hi);
            }
        }
        let (zero, six) = (_mm512_setzero_ps(), _mm512_set1_ps(6.0));
        for (p, (halves, masks)) in acc.into_iter().zip(masks).enumerate() {
            let o = out.wrapping_add((first + p) * PANEL);
            for (v, half) in halves.into_iter().enumerate() {
                // ReLU6 with the value second, so a NaN stays NaN (see `tile_kernel`).
                let y = if layer.relu6 {
                    _mm512_min_ps(six, _mm512_max_ps(zero, half))
                } else {
                    half
                };
                // SAFETY: the unmasked lanes are output channels below Cout, writable (the
                // caller's contract); the pointer is formed wrapping, as lanes 16.. of the last
                // panel may lie past the end when masked off.
                unsafe { _mm512_mask_storeu_ps(o.wrapping_add(16 * v), masks[v], y) };
            }
        }
    }

    /// `MR` rows x one panel x one k-range: `out[r, lanes] (+)= a[r, k-range] x w (+ bias)`,
    /// ReLU6 on the last k-range of a layer that has it.
    ///
    /// SAFETY (caller): the CPU has AVX-512F; `a` points at `MR` rows `pass.lda` apart with
    /// `pass.kc` readable values each; `out` at `MR` rows `pass.ldo` apart with the lanes of
    /// `pass.masks` writable (and readable unless `pass.first`); `pass.w` at `kc` panel rows.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn tile_kernel<const MR: usize>(a: *const f32, out: *mut f32, pass: &Pass) {
        let [mask_lo, mask_hi] = pass.masks;
        // Every read and write below stays within the `MR` rows, `kc` inputs and unmasked
        // lanes of the caller's contract; the panel's weights and biases are padded to 32
        // lanes. Pointers to masked-off lanes past the end are formed wrapping and never
        // dereferenced.
        let (mut lo, mut hi) = if pass.first {
            // SAFETY: the panel's 32 biases (padded).
            let (b0, b1) = unsafe {
                (
                    _mm512_maskz_loadu_ps(mask_lo, pass.bias),
                    _mm512_maskz_loadu_ps(mask_hi, pass.bias.add(16)),
                )
            };
            ([b0; MR], [b1; MR])
        } else {
            (
                std::array::from_fn(|r| {
                    // SAFETY: row r < MR, unmasked lanes (the contract).
                    unsafe { _mm512_maskz_loadu_ps(mask_lo, out.wrapping_add(r * pass.ldo)) }
                }),
                std::array::from_fn(|r| {
                    let o = out.wrapping_add(r * pass.ldo + 16);
                    // SAFETY: row r < MR, unmasked lanes (the contract).
                    unsafe { _mm512_maskz_loadu_ps(mask_hi, o) }
                }),
            )
        };
        let w = pass.w;
        for k in 0..pass.kc {
            // SAFETY: panel row k < kc (the contract).
            let (w0, w1) = unsafe {
                (
                    _mm512_loadu_ps(w.add(k * PANEL)),
                    _mm512_loadu_ps(w.add(k * PANEL + 16)),
                )
            };
            for r in 0..MR {
                // SAFETY: input k < kc of row r < MR (the contract).
                let x = _mm512_set1_ps(unsafe { *a.add(r * pass.lda + k) });
                lo[r] = _mm512_fmadd_ps(x, w0, lo[r]);
                hi[r] = _mm512_fmadd_ps(x, w1, hi[r]);
            }
        }
        if pass.relu6 {
            // ReLU6 as max then min with the value second: MAXPS/MINPS return the second operand
            // when one is NaN, so a NaN stays NaN as in TensorFlow.
            let (zero, six) = (_mm512_setzero_ps(), _mm512_set1_ps(6.0));
            for r in 0..MR {
                lo[r] = _mm512_min_ps(six, _mm512_max_ps(zero, lo[r]));
                hi[r] = _mm512_min_ps(six, _mm512_max_ps(zero, hi[r]));
            }
        }
        for r in 0..MR {
            let o = out.wrapping_add(r * pass.ldo);
            // SAFETY: row r < MR, unmasked lanes (the contract).
            unsafe {
                _mm512_mask_storeu_ps(o, mask_lo, lo[r]);
                _mm512_mask_storeu_ps(o.wrapping_add(16), mask_hi, hi[r]);
            }
        }
    }
}

/// The tiles in plain Rust.
#[inline(always)]
fn portable_body<T: Target>(input: &[f32], layer: &Pointwise, out: &mut [f32]) {
    let (cin, cout) = (layer.cin, layer.cout);
    let rows = out.len() / cout;
    for (first, width, panel) in layer.panels() {
        let bias: &[f32; PANEL] = layer.bias[first..first + PANEL].try_into().expect("panel");
        for (r, tile) in tiles(rows) {
            let mut acc = [*bias; TILE_ROWS];
            for (k, w) in panel.chunks_exact(PANEL).enumerate() {
                for (t, acc) in acc[..tile].iter_mut().enumerate() {
                    let x = input[(r + t) * cin + k];
                    for (a, &w) in acc.iter_mut().zip(w) {
                        *a = mul_add::<T>(x, w, *a);
                    }
                }
            }
            for (t, acc) in acc[..tile].iter().enumerate() {
                let o = &mut out[(r + t) * cout + first..][..width];
                for (o, &a) in o.iter_mut().zip(acc) {
                    *o = if layer.relu6 { relu6(a) } else { a };
                }
            }
        }
    }
}
