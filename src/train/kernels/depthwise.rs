//! 3x3 depthwise convolution (channel multiplier 1) for training, TF SAME padding, stride 1 or
//! 2, any input size, over NHWC: forward, the input's gradient and the filter's gradient. Each
//! works on whole channel vectors of a pixel, so the vectorised loop runs over channels. The
//! input gradient is gathered (each input row sums the output rows and taps that read it), so
//! threads own disjoint rows and write no partial sums; the filter gradient, a sum over the
//! batch, is summed per fixed part of the output rows, then the parts in order.

use std::ops::Range;

use rayon::prelude::*;

use super::{dispatch, mul_add, split_rows, Isa, Pad, Shape, Target, REDUCE_PARTS};

/// Shapes of one depthwise layer for one input size.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    pub input: Shape,
    pub output: Shape,
    pub stride: usize,
    pub pad: Pad,
}

impl Geometry {
    /// Input coordinate read by output coordinate `o` through tap `k` along an axis of `size`
    /// with `pad` before it; `None` in the padding.
    #[inline(always)]
    fn source(&self, o: usize, k: usize, pad: usize, size: usize) -> Option<usize> {
        (o * self.stride + k).checked_sub(pad).filter(|&i| i < size)
    }

    /// Output coordinate that reads input coordinate `i` through tap `k`, if any.
    #[inline(always)]
    fn reader(&self, i: usize, k: usize, pad: usize, size: usize) -> Option<usize> {
        (i + pad)
            .checked_sub(k)
            .filter(|t| t % self.stride == 0)
            .map(|t| t / self.stride)
            .filter(|&o| o < size)
    }
}

/// `z = depthwise(x, taps)`: `x` `[N, H, W, C]`, `taps` `[3, 3, C]`, `z` `[N, OH, OW, C]`.
pub fn forward(isa: Isa, x: &[f32], taps: &[f32], g: &Geometry, z: &mut [f32]) {
    let (il, ol, rl) = (g.input.len(), g.output.len(), g.output.row_len());
    let n = x.len() / il;
    assert!(x.len() == n * il && z.len() == n * ol && taps.len() == 9 * g.input.channels);
    z.par_chunks_mut(rl).enumerate().for_each(|(row, out)| {
        let (img, oy) = (row / g.output.height, row % g.output.height);
        forward_row(isa, &x[img * il..][..il], taps, g, oy, out);
    });
}

dispatch!(fn forward_row(x: &[f32], taps: &[f32], g: &Geometry, oy: usize, out: &mut [f32]) => forward_row_body);

#[inline(always)]
fn forward_row_body<T: Target>(x: &[f32], taps: &[f32], g: &Geometry, oy: usize, out: &mut [f32]) {
    let c = g.input.channels;
    out.fill(0.0);
    for ky in 0..3 {
        let Some(iy) = g.source(oy, ky, g.pad.top, g.input.height) else {
            continue;
        };
        let x_row = &x[iy * g.input.row_len()..][..g.input.row_len()];
        for (ox, o) in out.chunks_exact_mut(c).enumerate() {
            for kx in 0..3 {
                let Some(ix) = g.source(ox, kx, g.pad.left, g.input.width) else {
                    continue;
                };
                let (xs, ws) = (&x_row[ix * c..][..c], &taps[(ky * 3 + kx) * c..][..c]);
                for ((o, &xv), &wv) in o.iter_mut().zip(xs).zip(ws) {
                    *o = mul_add::<T>(xv, wv, *o);
                }
            }
        }
    }
}

/// `dx` `[N, H, W, C]`: the gradient of the input, given `dz` `[N, OH, OW, C]`.
pub fn input_gradient(isa: Isa, dz: &[f32], taps: &[f32], g: &Geometry, dx: &mut [f32]) {
    let (il, ol, rl) = (g.input.len(), g.output.len(), g.input.row_len());
    let n = dz.len() / ol;
    assert!(dz.len() == n * ol && dx.len() == n * il && taps.len() == 9 * g.input.channels);
    dx.par_chunks_mut(rl).enumerate().for_each(|(row, dx_row)| {
        let (img, iy) = (row / g.input.height, row % g.input.height);
        input_gradient_row(isa, &dz[img * ol..][..ol], taps, g, iy, dx_row);
    });
}

dispatch!(fn input_gradient_row(dz: &[f32], taps: &[f32], g: &Geometry, iy: usize, dx: &mut [f32]) => input_gradient_row_body);

#[inline(always)]
fn input_gradient_row_body<T: Target>(
    dz: &[f32],
    taps: &[f32],
    g: &Geometry,
    iy: usize,
    dx: &mut [f32],
) {
    let c = g.input.channels;
    dx.fill(0.0);
    for ky in 0..3 {
        let Some(oy) = g.reader(iy, ky, g.pad.top, g.output.height) else {
            continue;
        };
        let dz_row = &dz[oy * g.output.row_len()..][..g.output.row_len()];
        for (ix, d) in dx.chunks_exact_mut(c).enumerate() {
            for kx in 0..3 {
                let Some(ox) = g.reader(ix, kx, g.pad.left, g.output.width) else {
                    continue;
                };
                let (gs, ws) = (&dz_row[ox * c..][..c], &taps[(ky * 3 + kx) * c..][..c]);
                for ((d, &gv), &wv) in d.iter_mut().zip(gs).zip(ws) {
                    *d = mul_add::<T>(gv, wv, *d);
                }
            }
        }
    }
}

/// `dtaps` `[3, 3, C]`: the gradient of the filter, a sum over every output pixel of the batch;
/// `scratch` holds the parts' sums (grown once).
pub fn filter_gradient(
    isa: Isa,
    x: &[f32],
    dz: &[f32],
    g: &Geometry,
    scratch: &mut Vec<f32>,
    dtaps: &mut [f32],
) {
    let (il, ol, c) = (g.input.len(), g.output.len(), g.input.channels);
    let n = dz.len() / ol;
    assert!(x.len() == n * il && dz.len() == n * ol && dtaps.len() == 9 * c);
    let rows = n * g.output.height;
    let parts: Vec<Range<usize>> = split_rows(rows, REDUCE_PARTS).collect();
    if scratch.len() < parts.len() * 9 * c {
        scratch.resize(parts.len() * 9 * c, 0.0);
    }
    let sums = &mut scratch[..parts.len() * 9 * c];
    sums.par_chunks_mut(9 * c)
        .zip(parts.par_iter())
        .for_each(|(acc, rows)| {
            acc.fill(0.0);
            for row in rows.clone() {
                let (img, oy) = (row / g.output.height, row % g.output.height);
                let dz_row = &dz[img * ol + oy * g.output.row_len()..][..g.output.row_len()];
                filter_gradient_row(isa, &x[img * il..][..il], dz_row, g, oy, acc);
            }
        });
    dtaps.copy_from_slice(&sums[..9 * c]);
    for part in sums.chunks_exact(9 * c).skip(1) {
        for (d, &s) in dtaps.iter_mut().zip(part) {
            *d += s;
        }
    }
}

dispatch!(fn filter_gradient_row(x: &[f32], dz_row: &[f32], g: &Geometry, oy: usize, acc: &mut [f32]) => filter_gradient_row_body);

#[inline(always)]
fn filter_gradient_row_body<T: Target>(
    x: &[f32],
    dz_row: &[f32],
    g: &Geometry,
    oy: usize,
    acc: &mut [f32],
) {
    let c = g.input.channels;
    for ky in 0..3 {
        let Some(iy) = g.source(oy, ky, g.pad.top, g.input.height) else {
            continue;
        };
        let x_row = &x[iy * g.input.row_len()..][..g.input.row_len()];
        for (ox, gs) in dz_row.chunks_exact(c).enumerate() {
            for kx in 0..3 {
                let Some(ix) = g.source(ox, kx, g.pad.left, g.input.width) else {
                    continue;
                };
                let (xs, a) = (&x_row[ix * c..][..c], &mut acc[(ky * 3 + kx) * c..][..c]);
                for ((a, &xv), &gv) in a.iter_mut().zip(xs).zip(gs) {
                    *a = mul_add::<T>(xv, gv, *a);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::padding::same_padding;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn geometry(h: usize, w: usize, c: usize, stride: usize) -> Geometry {
        let (oh, (top, _)) = same_padding(h, 3, stride);
        let (ow, (left, _)) = same_padding(w, 3, stride);
        Geometry {
            input: Shape {
                height: h,
                width: w,
                channels: c,
            },
            output: Shape {
                height: oh,
                width: ow,
                channels: c,
            },
            stride,
            pad: Pad { top, left },
        }
    }

    /// Direct definition in f64: z[n, oy, ox, c] = sum over taps of x[.., oy*s+ky-top, ox*s+kx-left, c] * w.
    fn reference(x: &[f64], taps: &[f64], g: &Geometry, n: usize) -> Vec<f64> {
        let c = g.input.channels;
        let mut z = vec![0f64; n * g.output.len()];
        for img in 0..n {
            for oy in 0..g.output.height {
                for ox in 0..g.output.width {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (Some(iy), Some(ix)) = (
                                g.source(oy, ky, g.pad.top, g.input.height),
                                g.source(ox, kx, g.pad.left, g.input.width),
                            ) else {
                                continue;
                            };
                            for ch in 0..c {
                                z[((img * g.output.height + oy) * g.output.width + ox) * c + ch] +=
                                    x[((img * g.input.height + iy) * g.input.width + ix) * c + ch]
                                        * taps[(ky * 3 + kx) * c + ch];
                            }
                        }
                    }
                }
            }
        }
        z
    }

    #[test]
    fn forward_and_gradients_match_the_definition_and_finite_differences() {
        // Loss = sum(z * r) for a fixed random r: dz = r; the gradients of a linear map are
        // exact, so central differences in f64 of the reference check the kernels' gradients.
        let mut rng = StdRng::seed_from_u64(11);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for (h, w, c, stride) in [
            (7, 9, 3, 1),
            (7, 9, 5, 2),
            (8, 6, 17, 2),
            (5, 5, 16, 1),
            (1, 2, 4, 2),
        ] {
            let g = geometry(h, w, c, stride);
            let n = 2;
            let mut draw = |len| {
                (0..len)
                    .map(|_| rng.random_range(-1.0..1.0))
                    .collect::<Vec<f64>>()
            };
            let (x, taps, r) = (
                draw(n * g.input.len()),
                draw(9 * c),
                draw(n * g.output.len()),
            );
            let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let loss = |x: &[f64], taps: &[f64]| -> f64 {
                reference(x, taps, &g, n)
                    .iter()
                    .zip(&r)
                    .map(|(z, r)| z * r)
                    .sum()
            };
            // Every level this CPU has: each compiled body checked, not only the widest.
            for isa in Isa::supported() {
                pool.install(|| {
                    let mut z = vec![0f32; n * g.output.len()];
                    forward(isa, &f32s(&x), &f32s(&taps), &g, &mut z);
                    for (a, b) in z.iter().zip(reference(&x, &taps, &g, n)) {
                        assert!((*a as f64 - b).abs() < 1e-5, "forward {a} vs {b}");
                    }
                    let mut dx = vec![0f32; n * g.input.len()];
                    input_gradient(isa, &f32s(&r), &f32s(&taps), &g, &mut dx);
                    let mut dtaps = vec![0f32; 9 * c];
                    filter_gradient(isa, &f32s(&x), &f32s(&r), &g, &mut Vec::new(), &mut dtaps);
                    let eps = 1e-3;
                    for i in 0..x.len() {
                        let (mut p, mut m) = (x.clone(), x.clone());
                        p[i] += eps;
                        m[i] -= eps;
                        let numeric = (loss(&p, &taps) - loss(&m, &taps)) / (2.0 * eps);
                        assert!(
                            (numeric - dx[i] as f64).abs() < 1e-4,
                            "dx[{i}] {numeric} vs {}",
                            dx[i]
                        );
                    }
                    for i in 0..taps.len() {
                        let (mut p, mut m) = (taps.clone(), taps.clone());
                        p[i] += eps;
                        m[i] -= eps;
                        let numeric = (loss(&x, &p) - loss(&x, &m)) / (2.0 * eps);
                        assert!(
                            (numeric - dtaps[i] as f64).abs() < 1e-4,
                            "dtaps[{i}] {numeric} vs {}",
                            dtaps[i]
                        );
                    }
                });
            }
        }
    }
}
