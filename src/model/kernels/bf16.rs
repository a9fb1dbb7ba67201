//! The pointwise GEMM with bfloat16 products (`--precision bf16`): AVX512_BF16's `vdpbf16ps`
//! multiplies pairs of bf16 values and adds both products to an fp32 lane, so a 32-channel
//! panel row holds the weights of two consecutive inputs per channel (`[Cin / 2, 32]` pairs) and
//! each row of the tile broadcasts one pair of its inputs. Weights are rounded to bf16 once when
//! the layer is built, activations per call (`vcvtne2ps2bf16`, a block of rows at a time), both
//! round-to-nearest-even; sums, bias and ReLU6 stay fp32. Pointwise layers and the logits are
//! about 95% of MobileNet V1's multiply-adds; the first conv and the depthwise layers stay fp32
//! (`cpu.rs` says why). Tiles and k-blocks are the fp32 kernel's (`pointwise.rs`).

use std::cell::RefCell;

use super::pointwise::{tiles, Pointwise, PANEL};
use super::simd::{Level, ISA_ENV};
use super::{AlignedBuf, Isa};

/// Proof that bf16 products may run: the CPU has AVX512_BF16 and the kernels' level is
/// AVX-512. Only `Bf16::new` makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bf16(());

#[derive(Debug, thiserror::Error)]
pub enum Bf16Error {
    #[error(
        "--precision bf16 needs AVX512_BF16 (vdpbf16ps), which this CPU lacks: use --precision \
         fp32"
    )]
    NotInCpu,
    #[error(
        "--precision bf16 needs AVX512_BF16 (vdpbf16ps), which {ISA_ENV}={0} excludes: set \
         {ISA_ENV}=avx512 or unset it"
    )]
    ExcludedByLevel(Isa),
}

impl Bf16 {
    /// bf16 with the kernels of `isa`: refused on a CPU without AVX512_BF16, or when `isa` is
    /// below AVX-512 (a forced `MNV1_ISA`).
    pub fn new(isa: Isa) -> Result<Bf16, Bf16Error> {
        if !cpu_has_bf16() {
            return Err(Bf16Error::NotInCpu);
        }
        if isa.level() < Level::Avx512 {
            return Err(Bf16Error::ExcludedByLevel(isa));
        }
        Ok(Bf16(()))
    }
}

fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
            && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `x` rounded to bf16 as `vcvtne2ps2bf16` does: to nearest, ties to even; zero and denormals
/// to a zero of the same sign (the instruction treats denormal inputs as zero); a NaN stays a
/// (quiet) NaN. The filters are rounded with this, and the tests' reference with it.
pub(crate) fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    if bits & 0x7f80_0000 == 0 {
        return ((bits >> 16) & 0x8000) as u16;
    }
    let lsb = (bits >> 16) & 1;
    ((bits + 0x7fff + lsb) >> 16) as u16
}

/// The fp32 value of a bf16 (exact).
#[cfg(test)]
pub(crate) fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// Inputs `2k, 2k + 1` as one `vdpbf16ps` operand lane: the even one in the low half.
fn pair(even: u16, odd: u16) -> u32 {
    u32::from(even) | (u32::from(odd) << 16)
}

/// A pointwise layer's weights as bf16 pairs: `ceil(Cout / 32)` panels of `[ceil(Cin / 2), 32]`
/// lanes, lane `c` of pair row `k` holding inputs `2k, 2k + 1` of the panel's channel `c` (zero
/// past Cin and Cout).
pub(crate) struct Bf16Panels {
    pairs: AlignedBuf<u32>,
}

impl Bf16Panels {
    /// From the fp32 kernel's `[Cin, 32]` panels.
    pub(super) fn pack(fp32_panels: &[f32], cin: usize) -> Self {
        let kp = cin.div_ceil(2);
        let panels = fp32_panels.len() / (cin * PANEL);
        let mut pairs = AlignedBuf::zeroed(panels * kp * PANEL);
        for (src, dst) in fp32_panels
            .chunks_exact(cin * PANEL)
            .zip(pairs.as_mut_slice().chunks_exact_mut(kp * PANEL))
        {
            for (k, row) in dst.chunks_exact_mut(PANEL).enumerate() {
                for (c, lane) in row.iter_mut().enumerate() {
                    let w = |i: usize| (i < cin).then(|| to_bf16(src[i * PANEL + c]));
                    *lane = pair(w(2 * k).unwrap_or(0), w(2 * k + 1).unwrap_or(0));
                }
            }
        }
        Self { pairs }
    }
}

thread_local! {
    /// The current block's activations as bf16 pairs, `[rows, ceil(Cin / 2)]`, kept per thread
    /// so that a call allocates nothing once it is large enough.
    static PAIRED_INPUT: RefCell<AlignedBuf<u32>> = RefCell::new(AlignedBuf::default());
}

/// `out[r, :] = relu6(bf16(input[r, :]) x bf16(weights) + bias)` in fp32 sums, for every row of
/// the block (without the ReLU6 for a `linear` layer). `Pointwise`'s caller checked the shapes.
pub(super) fn rows(
    _: Bf16,
    input: &[f32],
    layer: &Pointwise,
    panels: &Bf16Panels,
    out: &mut [f32],
) {
    let kp = layer.cin.div_ceil(2);
    let rows = out.len() / layer.cout;
    PAIRED_INPUT.with_borrow_mut(|paired| {
        if paired.len() < rows * kp {
            *paired = AlignedBuf::zeroed(rows * kp);
        }
        let paired = &mut paired.as_mut_slice()[..rows * kp];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Bf16` exists only where the CPU has AVX512_BF16 and AVX-512F
        // (`Bf16::new`); `input` holds `rows x Cin` values, `paired` `rows x ceil(Cin / 2)`,
        // `out` `rows x Cout` (checked by `pointwise_rows`, sized above).
        unsafe {
            avx512::pair_rows(input, layer.cin, paired);
            avx512::rows(paired, layer, panels, out);
        }
    });
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{tiles, Bf16Panels, Pointwise, PANEL};

    /// Input pairs per pass over a panel: 128 x 32 pair lanes (16 KB) stay in L1 while every
    /// tile of rows uses them (the fp32 kernel's 256 inputs).
    const K_BLOCK: usize = 128;

    /// Each row of `input` (`cin` values) as bf16 pairs into its row of `paired`.
    ///
    /// SAFETY (caller): the CPU has AVX512_BF16 and AVX-512F; `input` holds whole rows of `cin`
    /// values and `paired` as many rows of `ceil(cin / 2)`.
    #[target_feature(enable = "avx512bf16,avx512f")]
    pub unsafe fn pair_rows(input: &[f32], cin: usize, paired: &mut [u32]) {
        let kp = cin.div_ceil(2);
        for (row, dst) in input.chunks_exact(cin).zip(paired.chunks_exact_mut(kp)) {
            for k0 in (0..cin).step_by(32) {
                let left = cin - k0;
                let mask = |v: usize| ((1u32 << left.saturating_sub(16 * v).min(16)) - 1) as u16;
                let src = row[k0..].as_ptr();
                // SAFETY: the masks keep the lanes below `left`, values of this row; the
                // pointer past them is formed wrapping and never read through.
                let (lo, hi) = unsafe {
                    (
                        _mm512_maskz_loadu_ps(mask(0), src),
                        _mm512_maskz_loadu_ps(mask(1), src.wrapping_add(16)),
                    )
                };
                // Word j of the result is input k0 + j: the second operand gives words 0..16.
                let bf = _mm512_cvtne2ps_pbh(hi, lo);
                let lanes = ((1u32 << left.div_ceil(2).min(16)) - 1) as u16;
                // SAFETY: pairs k0 / 2 .. k0 / 2 + ceil(left / 2), within this row of `dst`.
                unsafe {
                    _mm512_mask_storeu_epi32(
                        dst[k0 / 2..].as_mut_ptr().cast(),
                        lanes,
                        std::mem::transmute::<__m512bh, __m512i>(bf),
                    )
                };
            }
        }
    }

    /// What one tile call reads and writes, apart from its rows.
    struct Pass {
        /// Pair rows of the tile's first panel and k-range, `[kc, 32]`; further panels
        /// `panel_stride` lanes apart.
        w: *const u32,
        panel_stride: usize,
        kc: usize,
        /// Row stride of the paired input (pairs) and of the output.
        lda: usize,
        ldo: usize,
        /// Bias of the first panel (padded to whole panels).
        bias: *const f32,
        first: bool,
        relu6: bool,
    }

    /// SAFETY (caller): the CPU has AVX512_BF16 and AVX-512F; `paired` holds `rows x
    /// ceil(Cin / 2)` pairs and `out` `rows x Cout`, rows = `out.len() / Cout`.
    #[target_feature(enable = "avx512bf16,avx512f")]
    pub unsafe fn rows(paired: &[u32], layer: &Pointwise, panels: &Bf16Panels, out: &mut [f32]) {
        let (kp, cout) = (layer.cin.div_ceil(2), layer.cout);
        let rows = out.len() / cout;
        let w = panels.pairs.as_slice();
        let panel_count = cout.div_ceil(PANEL);
        let stride = kp * PANEL;
        let pass_for = |p: usize, k0: usize, kc: usize, lda: usize| Pass {
            w: w[p * stride + k0 * PANEL..].as_ptr(),
            panel_stride: stride,
            kc,
            lda,
            ldo: cout,
            bias: layer.bias[p * PANEL..].as_ptr(),
            first: k0 == 0,
            relu6: layer.relu6 && k0 + kc == kp,
        };
        if rows == 1 {
            // One row (an image's logits): four panels at once over all inputs, for 8
            // accumulator chains; the same sums in the same order as the tiles below.
            let (a, o) = (paired.as_ptr(), out.as_mut_ptr());
            let wide = panel_count - panel_count % 4;
            for p in (0..wide).step_by(4) {
                let masks = std::array::from_fn(|i| masks(cout, p + i));
                // SAFETY: one row of `kp` pairs and `cout` outputs; panels p..p + 4 exist.
                unsafe {
                    tile::<1, 4>(a, o.wrapping_add(p * PANEL), &pass_for(p, 0, kp, kp), masks)
                };
            }
            for p in wide..panel_count {
                let m = [masks(cout, p)];
                // SAFETY: as above, panel p exists.
                unsafe { tile::<1, 1>(a, o.wrapping_add(p * PANEL), &pass_for(p, 0, kp, kp), m) };
            }
            return;
        }
        for p in 0..panel_count {
            let m = [masks(cout, p)];
            for k0 in (0..kp).step_by(K_BLOCK) {
                let pass = pass_for(p, k0, K_BLOCK.min(kp - k0), kp);
                for (r, t) in tiles(rows) {
                    let a = paired[r * kp + k0..].as_ptr();
                    let o = out[r * cout + p * PANEL..].as_mut_ptr();
                    // SAFETY: rows r..r + t exist in both buffers (the caller's contract); pairs
                    // k0..k0 + kc < kp of each, and the panel's output lanes below Cout, which
                    // the masks keep.
                    unsafe {
                        match t {
                            8 => tile::<8, 1>(a, o, &pass, m),
                            7 => tile::<7, 1>(a, o, &pass, m),
                            6 => tile::<6, 1>(a, o, &pass, m),
                            5 => tile::<5, 1>(a, o, &pass, m),
                            4 => tile::<4, 1>(a, o, &pass, m),
                            3 => tile::<3, 1>(a, o, &pass, m),
                            2 => tile::<2, 1>(a, o, &pass, m),
                            _ => tile::<1, 1>(a, o, &pass, m),
                        }
                    }
                }
            }
        }
    }

    /// The store masks of panel `p`'s two halves: its channels below `cout`.
    fn masks(cout: usize, p: usize) -> [__mmask16; 2] {
        let width = PANEL.min(cout - p * PANEL);
        let lanes = |v: usize| width.saturating_sub(16 * v).min(16);
        [0, 1].map(|v| ((1u32 << lanes(v)) - 1) as __mmask16)
    }

    /// `MR` rows x `NP` panels x one k-range: `out[r, lanes] (+)= a[r, k-range] x w (+ bias)`,
    /// ReLU6 on the last k-range of a layer that has it.
    ///
    /// SAFETY (caller): the CPU has AVX512_BF16 and AVX-512F; `a` points at `MR` rows
    /// `pass.lda` pairs apart with `pass.kc` readable pairs each; `out` at `MR` rows
    /// `pass.ldo` apart with the lanes of `masks` writable (and readable unless `pass.first`)
    /// in each of the `NP` panels; `pass.w` at `kc` pair rows of `NP` panels.
    #[inline]
    #[target_feature(enable = "avx512bf16,avx512f")]
    unsafe fn tile<const MR: usize, const NP: usize>(
        a: *const u32,
        out: *mut f32,
        pass: &Pass,
        masks: [[__mmask16; 2]; NP],
    ) {
        // Every read and write below stays within the caller's contract; pointers to
        // masked-off lanes past the end are formed wrapping and never dereferenced.
        let mut acc: [[[__m512; 2]; NP]; MR] = std::array::from_fn(|r| {
            std::array::from_fn(|p| {
                std::array::from_fn(|v| {
                    let m = masks[p][v];
                    // SAFETY: the panel's biases (padded to 32), or row r's unmasked lanes.
                    unsafe {
                        if pass.first {
                            _mm512_maskz_loadu_ps(m, pass.bias.add(p * PANEL + 16 * v))
                        } else {
                            let o = out.wrapping_add(r * pass.ldo + p * PANEL + 16 * v);
                            _mm512_maskz_loadu_ps(m, o)
                        }
                    }
                })
            })
        });
        for k in 0..pass.kc {
            let w: [[__m512bh; 2]; NP] = std::array::from_fn(|p| {
                let wk = pass.w.wrapping_add(p * pass.panel_stride + k * PANEL);
                // SAFETY: pair row k < kc of panel p (the contract).
                unsafe {
                    [0, 1].map(|v| {
                        let lanes = _mm512_loadu_si512(wk.add(16 * v).cast());
                        std::mem::transmute::<__m512i, __m512bh>(lanes)
                    })
                }
            });
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: pair k < kc of row r < MR (the contract).
                let x = _mm512_set1_epi32(unsafe { *a.add(r * pass.lda + k) } as i32);
                // SAFETY: a reinterpretation of 64 bytes.
                let x = unsafe { std::mem::transmute::<__m512i, __m512bh>(x) };
                for (acc, w) in acc.iter_mut().zip(&w) {
                    acc[0] = _mm512_dpbf16_ps(acc[0], x, w[0]);
                    acc[1] = _mm512_dpbf16_ps(acc[1], x, w[1]);
                }
            }
        }
        let (zero, six) = (_mm512_setzero_ps(), _mm512_set1_ps(6.0));
        for (r, acc) in acc.into_iter().enumerate() {
            for (p, halves) in acc.into_iter().enumerate() {
                for (v, y) in halves.into_iter().enumerate() {
                    // ReLU6 with the value second, so a NaN stays NaN (see `pointwise.rs`).
                    let y = if pass.relu6 {
                        _mm512_min_ps(six, _mm512_max_ps(zero, y))
                    } else {
                        y
                    };
                    let o = out.wrapping_add(r * pass.ldo + p * PANEL + 16 * v);
                    // SAFETY: row r's unmasked lanes of panel p (the contract).
                    unsafe { _mm512_mask_storeu_ps(o, masks[p][v], y) };
                }
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn to_bf16_rounds_as_vcvtne2ps2bf16_does() {
        // Ties both ways, the largest finite value (rounds to infinity), infinities, NaN,
        // signed zeros, denormals, and a sweep of bit patterns; lengths that leave every tail
        // of the 32-value conversion (and an odd one, whose last pair is half zero).
        if let Err(e) = Bf16::new(Isa::best()) {
            eprintln!("to_bf16: skipped: {e}");
            return;
        }
        let mut values = vec![
            1.0 + 1.0 / 256.0, // a tie to even (down)
            1.0 + 3.0 / 256.0, // a tie to even (up)
            -(1.0 + 3.0 / 256.0),
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            0.0,
            -0.0,
            f32::MIN_POSITIVE,
            f32::MIN_POSITIVE / 3.0,
            -f32::MIN_POSITIVE / 7.0,
        ];
        values.extend((0..4000u32).map(|i| f32::from_bits(i.wrapping_mul(2_654_435_761))));
        for cin in [1, 2, 15, 16, 17, 31, 32, 33, 63, values.len()] {
            let input = &values[..cin];
            let mut paired = vec![0u32; cin.div_ceil(2)];
            // SAFETY: the CPU has AVX512_BF16 (checked above); one row of `cin` values and
            // ceil(cin / 2) pairs.
            unsafe { avx512::pair_rows(input, cin, &mut paired) };
            for (k, &got) in paired.iter().enumerate() {
                let odd = input.get(2 * k + 1).map_or(0, |&v| to_bf16(v));
                let want = pair(to_bf16(input[2 * k]), odd);
                // Halves equal, or both NaN (the payload is not the point).
                let half = |v: u32, h: u32| (v >> (16 * h)) as u16;
                let same = (0..2).all(|h| {
                    let (g, w) = (half(got, h), half(want, h));
                    g == w || (bf16_to_f32(g).is_nan() && bf16_to_f32(w).is_nan())
                });
                assert!(
                    same,
                    "cin {cin} pair {k} of {:e}: {got:08x} vs {want:08x}",
                    input[2 * k]
                );
            }
        }
    }
}
