//! BatchNorm in train mode followed by ReLU6, over `[P, C]` pixel rows. Forward: per-channel
//! batch mean and biased variance (two passes, f64 sums), then `a = relu6(z * scale + shift)`
//! with `scale = gamma / sqrt(var + eps)`, `shift = beta - mean * scale`. Backward keeps nothing
//! but the layer's pre-BatchNorm `z`, its output `a` and the per-channel mean and 1/std: the
//! ReLU6 mask is `0 < a < 6` (exactly where `0 < y < 6`), the normalised `x^ = (z - mean) / std`
//! is recomputed, and, as TF's FusedBatchNormGrad,
//! `dz = gamma / std * (dy - mean(dy) - x^ * mean(dy * x^))`, `dgamma = sum(dy * x^)`,
//! `dbeta = sum(dy)`.

use std::ops::Range;

use rayon::prelude::*;

use super::{dispatch, mul_add, split_rows, Isa, Target, REDUCE_PARTS};

/// Per-fixed-part sums over rows of `f(row, sums)`, added in order into `out` (`width` f64
/// values per part in `scratch`, grown once).
fn part_sums(
    rows: usize,
    width: usize,
    scratch: &mut Vec<f64>,
    out: &mut [f64],
    f: impl Fn(Range<usize>, &mut [f64]) + Sync,
) {
    let parts: Vec<Range<usize>> = split_rows(rows, REDUCE_PARTS).collect();
    if scratch.len() < parts.len() * width {
        scratch.resize(parts.len() * width, 0.0);
    }
    let sums = &mut scratch[..parts.len() * width];
    sums.par_chunks_mut(width)
        .zip(parts.par_iter())
        .for_each(|(acc, r)| {
            acc.fill(0.0);
            f(r.clone(), acc);
        });
    out.fill(0.0);
    for part in sums.chunks_exact(width) {
        for (o, &s) in out.iter_mut().zip(part) {
            *o += s;
        }
    }
}

/// Rows summed in f32 before their sum is added to the part's f64 total: short enough to keep
/// f32's rounding far below the tests' tolerances, long enough for the vector loop.
const BLOCK_ROWS: usize = 64;

/// Per-channel mean and biased variance of `z` (`[P, C]`) into `mean` and `var`.
pub fn moments(
    isa: Isa,
    z: &[f32],
    c: usize,
    scratch: &mut Vec<f64>,
    mean: &mut [f64],
    var: &mut [f64],
) {
    let rows = z.len() / c;
    assert!(z.len() == rows * c && mean.len() == c && var.len() == c && rows > 0);
    let zeros = vec![0f32; c];
    part_sums(rows, c, scratch, mean, |r, acc| {
        let mut block = vec![0f32; c];
        for rows in z[r.start * c..r.end * c].chunks(BLOCK_ROWS * c) {
            block.fill(0.0);
            centred_sums(isa, rows, &zeros, false, &mut block);
            acc.iter_mut()
                .zip(&block)
                .for_each(|(a, &b)| *a += b as f64);
        }
    });
    mean.iter_mut().for_each(|m| *m /= rows as f64);
    let centre: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
    part_sums(rows, c, scratch, var, |r, acc| {
        let mut block = vec![0f32; c];
        for rows in z[r.start * c..r.end * c].chunks(BLOCK_ROWS * c) {
            block.fill(0.0);
            centred_sums(isa, rows, &centre, true, &mut block);
            acc.iter_mut()
                .zip(&block)
                .for_each(|(a, &b)| *a += b as f64);
        }
    });
    // The f32 centre differs from the exact mean by `delta`: sum (v - m)^2 = sum (v - mean)^2 + n delta^2.
    for ((v, &m), &cm) in var.iter_mut().zip(mean.iter()).zip(&centre) {
        let delta = cm as f64 - m;
        *v = (*v / rows as f64 - delta * delta).max(0.0);
    }
}

dispatch!(fn centred_sums(rows: &[f32], centre: &[f32], square: bool, acc: &mut [f32]) => centred_sums_body);

/// `acc += sum over rows of (v - centre)` or, with `square`, of `(v - centre)^2`.
#[inline(always)]
fn centred_sums_body<T: Target>(rows: &[f32], centre: &[f32], square: bool, acc: &mut [f32]) {
    let c = centre.len();
    for row in rows.chunks_exact(c) {
        if square {
            for ((a, &v), &m) in acc.iter_mut().zip(row).zip(centre) {
                let d = v - m;
                *a = mul_add::<T>(d, d, *a);
            }
        } else {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v;
            }
        }
    }
}

/// `a = relu6((z - mean) * scale + beta)` per channel, `[P, C]`. (Centred first: with a mean
/// large against the spread, `z * scale + (beta - mean * scale)` would cancel digits.)
pub fn scale_shift_relu6(
    isa: Isa,
    z: &[f32],
    mean: &[f32],
    scale: &[f32],
    beta: &[f32],
    a: &mut [f32],
) {
    let c = scale.len();
    assert!(z.len() == a.len() && z.len().is_multiple_of(c) && beta.len() == c && mean.len() == c);
    let chunk = rows_per_chunk(z.len() / c) * c;
    let per_channel = PerChannel { mean, scale, beta };
    a.par_chunks_mut(chunk)
        .zip(z.par_chunks(chunk))
        .for_each(|(a, z)| scale_shift_relu6_rows(isa, z, &per_channel, a));
}

/// The per-channel values of `scale_shift_relu6`.
struct PerChannel<'a> {
    mean: &'a [f32],
    scale: &'a [f32],
    beta: &'a [f32],
}

dispatch!(fn scale_shift_relu6_rows(z: &[f32], p: &PerChannel, a: &mut [f32]) => scale_shift_relu6_body);

#[inline(always)]
fn scale_shift_relu6_body<T: Target>(z: &[f32], p: &PerChannel, a: &mut [f32]) {
    let c = p.scale.len();
    for (a, z) in a.chunks_exact_mut(c).zip(z.chunks_exact(c)) {
        let per_channel = p.mean.iter().zip(p.scale).zip(p.beta);
        for ((a, &z), ((&m, &s), &b)) in a.iter_mut().zip(z).zip(per_channel) {
            // clamp keeps a NaN a NaN, so a diverging run is seen in its loss.
            *a = mul_add::<T>(z - m, s, b).clamp(0.0, 6.0);
        }
    }
}

fn rows_per_chunk(rows: usize) -> usize {
    rows.div_ceil(4 * rayon::current_num_threads().max(1))
        .max(16)
}

/// What the backward pass of one BatchNorm + ReLU6 layer reads.
pub struct Saved<'a> {
    /// Pre-BatchNorm values `[P, C]`.
    pub z: &'a [f32],
    /// Layer output `relu6(y)` `[P, C]`.
    pub a: &'a [f32],
    pub mean: &'a [f32],
    pub inv_std: &'a [f32],
    pub gamma: &'a [f32],
}

/// Turns `grad` from the gradient of the layer's output `a` into that of `z`, in place, and
/// writes the gradients of gamma and beta.
pub fn backward(
    isa: Isa,
    grad: &mut [f32],
    s: &Saved,
    scratch: &mut Vec<f64>,
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let c = s.mean.len();
    let rows = grad.len() / c;
    assert!(grad.len() == rows * c && s.z.len() == grad.len() && s.a.len() == grad.len());
    // Pass 1: ReLU6 mask applied in place; sums of dy and dy * x^ per channel.
    let mut sums = vec![0f64; 2 * c];
    {
        let grad_ptr = SyncPtr(grad.as_mut_ptr());
        part_sums(rows, 2 * c, scratch, &mut sums, |r, acc| {
            // SAFETY: the parts' row ranges are disjoint, so each writes its own rows of `grad`.
            let g = unsafe {
                std::slice::from_raw_parts_mut(grad_ptr.get().add(r.start * c), r.len() * c)
            };
            let (z, a) = (&s.z[r.start * c..r.end * c], &s.a[r.start * c..r.end * c]);
            let mut block = vec![0f32; 2 * c];
            for ((g, z), a) in g
                .chunks_mut(BLOCK_ROWS * c)
                .zip(z.chunks(BLOCK_ROWS * c))
                .zip(a.chunks(BLOCK_ROWS * c))
            {
                block.fill(0.0);
                let (sum_dy, sum_dyx) = block.split_at_mut(c);
                mask_and_sums(isa, g, z, a, s.mean, s.inv_std, sum_dy, sum_dyx);
                acc.iter_mut()
                    .zip(&block)
                    .for_each(|(a, &b)| *a += b as f64);
            }
        });
    }
    let (sum_dy, sum_dyx) = sums.split_at(c);
    for (((db, dg), &sdy), &sdyx) in dbeta
        .iter_mut()
        .zip(dgamma.iter_mut())
        .zip(sum_dy)
        .zip(sum_dyx)
    {
        *db = sdy as f32;
        *dg = sdyx as f32;
    }
    let mean_dy: Vec<f32> = sum_dy.iter().map(|&v| (v / rows as f64) as f32).collect();
    let mean_dyx: Vec<f32> = sum_dyx.iter().map(|&v| (v / rows as f64) as f32).collect();
    let k: Vec<f32> = s.gamma.iter().zip(s.inv_std).map(|(g, i)| g * i).collect();
    // Pass 2: dz = gamma / std * (dy - mean(dy) - x^ * mean(dy x^)).
    let chunk = rows_per_chunk(rows) * c;
    let means = Means {
        mean: s.mean,
        inv_std: s.inv_std,
        k: &k,
        mean_dy: &mean_dy,
        mean_dyx: &mean_dyx,
    };
    grad.par_chunks_mut(chunk)
        .zip(s.z.par_chunks(chunk))
        .for_each(|(g, z)| input_gradient_rows(isa, g, z, &means));
}

dispatch!(fn mask_and_sums(g: &mut [f32], z: &[f32], a: &[f32], mean: &[f32], inv_std: &[f32], sum_dy: &mut [f32], sum_dyx: &mut [f32]) => mask_and_sums_body);

/// `g = g * (0 < a < 6)`, and the sums of `g` and `g * x^` per channel, over a block of rows.
#[inline(always)]
fn mask_and_sums_body<T: Target>(
    g: &mut [f32],
    z: &[f32],
    a: &[f32],
    mean: &[f32],
    inv_std: &[f32],
    sum_dy: &mut [f32],
    sum_dyx: &mut [f32],
) {
    let c = mean.len();
    for ((g, z), a) in g
        .chunks_exact_mut(c)
        .zip(z.chunks_exact(c))
        .zip(a.chunks_exact(c))
    {
        let lanes = g.iter_mut().zip(z).zip(a).zip(mean).zip(inv_std);
        for (((((g, &z), &a), &m), &is), (sdy, sdyx)) in
            lanes.zip(sum_dy.iter_mut().zip(sum_dyx.iter_mut()))
        {
            let dy = if a > 0.0 && a < 6.0 { *g } else { 0.0 };
            *g = dy;
            *sdy += dy;
            *sdyx = mul_add::<T>(dy, (z - m) * is, *sdyx);
        }
    }
}

/// Per-channel values of the second backward pass.
struct Means<'a> {
    mean: &'a [f32],
    inv_std: &'a [f32],
    /// gamma / std.
    k: &'a [f32],
    mean_dy: &'a [f32],
    mean_dyx: &'a [f32],
}

dispatch!(fn input_gradient_rows(g: &mut [f32], z: &[f32], m: &Means) => input_gradient_body);

#[inline(always)]
fn input_gradient_body<T: Target>(g: &mut [f32], z: &[f32], m: &Means) {
    let c = m.mean.len();
    for (g, z) in g.chunks_exact_mut(c).zip(z.chunks_exact(c)) {
        let per_channel = m
            .mean
            .iter()
            .zip(m.inv_std)
            .zip(m.k)
            .zip(m.mean_dy)
            .zip(m.mean_dyx);
        for ((g, &z), ((((&mean, &is), &k), &mdy), &mdyx)) in g.iter_mut().zip(z).zip(per_channel) {
            let xhat = (z - mean) * is;
            *g = k * (*g - mdy - xhat * mdyx);
        }
    }
}

/// A raw pointer that closures on other threads may carry; each use says why it is sound.
#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: only used to hand disjoint ranges of one buffer to the pool's threads (see `backward`).
unsafe impl Send for SyncPtr {}
// SAFETY: as above.
unsafe impl Sync for SyncPtr {}

impl SyncPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const EPS: f64 = 1e-3;

    /// Loss sum(relu6(bn(z)) * r) in f64, straight from the definition.
    fn loss(z: &[f64], gamma: &[f64], beta: &[f64], r: &[f64], c: usize) -> f64 {
        let rows = z.len() / c;
        let mut total = 0.0;
        for ch in 0..c {
            let col: Vec<f64> = (0..rows).map(|i| z[i * c + ch]).collect();
            let mean = col.iter().sum::<f64>() / rows as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / rows as f64;
            for (i, v) in col.iter().enumerate() {
                let y = (v - mean) / (var + EPS).sqrt() * gamma[ch] + beta[ch];
                total += y.clamp(0.0, 6.0) * r[i * c + ch];
            }
        }
        total
    }

    #[test]
    fn moments_and_backward_match_the_definition_and_finite_differences() {
        let mut rng = StdRng::seed_from_u64(5);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for (rows, c) in [(2, 1), (37, 3), (150, 17)] {
            let z: Vec<f64> = (0..rows * c).map(|_| rng.random_range(-3.0..3.0)).collect();
            let gamma: Vec<f64> = (0..c).map(|_| rng.random_range(0.5..3.0)).collect();
            let beta: Vec<f64> = (0..c).map(|_| rng.random_range(0.0..3.0)).collect();
            let r: Vec<f64> = (0..rows * c).map(|_| rng.random_range(-1.0..1.0)).collect();
            let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let zf = f32s(&z);
            // Every level this CPU has: each compiled body checked, not only the widest.
            for isa in Isa::supported() {
                pool.install(|| {
                    let (mut mean, mut var) = (vec![0f64; c], vec![0f64; c]);
                    moments(isa, &zf, c, &mut Vec::new(), &mut mean, &mut var);
                    let inv_std: Vec<f32> = var
                        .iter()
                        .map(|v| (1.0 / (v + EPS).sqrt()) as f32)
                        .collect();
                    let scale: Vec<f32> = (0..c).map(|i| gamma[i] as f32 * inv_std[i]).collect();
                    let centre: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
                    let mut a = vec![0f32; rows * c];
                    scale_shift_relu6(isa, &zf, &centre, &scale, &f32s(&beta), &mut a);
                    let mut grad = f32s(&r);
                    let (mut dgamma, mut dbeta) = (vec![0f32; c], vec![0f32; c]);
                    let saved = Saved {
                        z: &zf,
                        a: &a,
                        mean: &mean.iter().map(|&m| m as f32).collect::<Vec<_>>(),
                        inv_std: &inv_std,
                        gamma: &f32s(&gamma),
                    };
                    backward(
                        isa,
                        &mut grad,
                        &saved,
                        &mut Vec::new(),
                        &mut dgamma,
                        &mut dbeta,
                    );
                    let h = 1e-6;
                    let check = |name: &str, i: usize, numeric: f64, got: f32| {
                        assert!(
                            (numeric - got as f64).abs() < 1e-3 * (1.0 + numeric.abs()),
                            "{name}[{i}] {numeric} vs {got}"
                        );
                    };
                    for i in 0..z.len() {
                        let (mut p, mut m) = (z.clone(), z.clone());
                        p[i] += h;
                        m[i] -= h;
                        check(
                            "dz",
                            i,
                            (loss(&p, &gamma, &beta, &r, c) - loss(&m, &gamma, &beta, &r, c))
                                / (2.0 * h),
                            grad[i],
                        );
                    }
                    for i in 0..c {
                        let (mut p, mut m) = (gamma.clone(), gamma.clone());
                        p[i] += h;
                        m[i] -= h;
                        check(
                            "dgamma",
                            i,
                            (loss(&z, &p, &beta, &r, c) - loss(&z, &m, &beta, &r, c)) / (2.0 * h),
                            dgamma[i],
                        );
                        let (mut p, mut m) = (beta.clone(), beta.clone());
                        p[i] += h;
                        m[i] -= h;
                        check(
                            "dbeta",
                            i,
                            (loss(&z, &gamma, &p, &r, c) - loss(&z, &gamma, &m, &r, c)) / (2.0 * h),
                            dbeta[i],
                        );
                    }
                });
            }
        }
    }
}
