//! The three products of a layer that is a matrix product over pixel rows (the 1x1 layers, and
//! the first layer on its 27-value patches), on the `gemm` crate: forward `Z = X W`, input
//! gradient `dX = dZ W^T`, filter gradient `dW = X^T dZ`. The rows are split over the pool's
//! threads here (each part one single-threaded `gemm` call), so the split, and with it every
//! sum, is fixed by the thread count.

use rayon::prelude::*;

use super::split_rows;

/// A row-major matrix read in place: element `(i, j)` is `data[i * rs + j * cs]`, so a
/// transpose is the same data with the strides swapped.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl View<'_> {
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst[m, n] (+)= lhs[m, k] x rhs[k, n]`, `dst` row-major with row stride `n`, one thread.
fn product(m: usize, n: usize, k: usize, dst: &mut [f32], lhs: View, rhs: View, accumulate: bool) {
    assert!(
        dst.len() >= m * n && lhs.fits(m, k) && rhs.fits(k, n),
        "matrix product shapes"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: the assertion above keeps every element the strides address inside its slice; the
    // destination is written through the only (mutable) reference to it.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Rows per part of the row-split products: enough parts to balance the threads, each big
/// enough to amortise the call.
fn rows_per_part(rows: usize, threads: usize) -> usize {
    rows.div_ceil(threads.max(1) * 4).max(64)
}

/// `out[P, N] = x[P, K] x w[K, N]`.
pub fn rows_times(x: &[f32], w: &[f32], k: usize, n: usize, out: &mut [f32]) {
    let rows = out.len() / n;
    assert!(x.len() == rows * k && w.len() == k * n && out.len() == rows * n);
    let per = rows_per_part(rows, rayon::current_num_threads());
    out.par_chunks_mut(per * n)
        .zip(x.par_chunks(per * k))
        .for_each(|(out, x)| {
            let r = out.len() / n;
            let lhs = View {
                data: x,
                rs: k,
                cs: 1,
            };
            let rhs = View {
                data: w,
                rs: n,
                cs: 1,
            };
            product(r, n, k, out, lhs, rhs, false);
        });
}

/// `out[P, K] = dz[P, N] x w[K, N]^T`.
pub fn rows_times_transposed(dz: &[f32], w: &[f32], k: usize, n: usize, out: &mut [f32]) {
    let rows = out.len() / k;
    assert!(dz.len() == rows * n && w.len() == k * n && out.len() == rows * k);
    let per = rows_per_part(rows, rayon::current_num_threads());
    out.par_chunks_mut(per * k)
        .zip(dz.par_chunks(per * n))
        .for_each(|(out, dz)| {
            let r = out.len() / k;
            let lhs = View {
                data: dz,
                rs: n,
                cs: 1,
            };
            let rhs = View {
                data: w,
                rs: 1,
                cs: n,
            };
            product(r, k, n, out, lhs, rhs, false);
        });
}

/// `out[K, N] = x[P, K]^T x dz[P, N]`, a sum over all `P` rows: one partial product per
/// thread (into `scratch`, grown to `threads * K * N` once), added in order.
pub fn transposed_times(
    x: &[f32],
    dz: &[f32],
    k: usize,
    n: usize,
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) {
    let rows = x.len() / k;
    assert!(x.len() == rows * k && dz.len() == rows * n && out.len() == k * n);
    let threads = rayon::current_num_threads().max(1);
    // Below a few hundred rows per thread the partial sums cost more than they save.
    let parts: Vec<_> = split_rows(rows, threads.min(rows.div_ceil(256)).max(1)).collect();
    if parts.len() <= 1 {
        let lhs = View {
            data: x,
            rs: 1,
            cs: k,
        };
        let rhs = View {
            data: dz,
            rs: n,
            cs: 1,
        };
        product(k, n, rows, out, lhs, rhs, false);
        return;
    }
    if scratch.len() < parts.len() * k * n {
        scratch.resize(parts.len() * k * n, 0.0);
    }
    scratch[..parts.len() * k * n]
        .par_chunks_mut(k * n)
        .zip(parts.par_iter())
        .for_each(|(partial, r)| {
            let lhs = View {
                data: &x[r.start * k..r.end * k],
                rs: 1,
                cs: k,
            };
            let rhs = View {
                data: &dz[r.start * n..r.end * n],
                rs: n,
                cs: 1,
            };
            product(k, n, r.len(), partial, lhs, rhs, false);
        });
    let partials = &scratch[..parts.len() * k * n];
    out.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        row.copy_from_slice(&partials[i * n..][..n]);
        for p in 1..parts.len() {
            for (o, &v) in row.iter_mut().zip(&partials[p * k * n + i * n..][..n]) {
                *o += v;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|l| a[i * k + l] as f64 * b[l * n + j] as f64)
                    .sum();
            }
        }
        out
    }

    fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        (0..cols * rows)
            .map(|i| a[(i % rows) * cols + i / rows])
            .collect()
    }

    fn close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
        }
    }

    #[test]
    fn the_three_products_match_a_naive_product_on_odd_shapes() {
        let mut rng = StdRng::seed_from_u64(3);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for (p, k, n) in [
            (1, 1, 1),
            (7, 3, 5),
            (300, 27, 8),
            (1001, 13, 17),
            (2000, 40, 3),
        ] {
            let mut r = |len: usize| {
                (0..len)
                    .map(|_| rng.random_range(-1f32..1.0))
                    .collect::<Vec<_>>()
            };
            let (x, w, dz) = (r(p * k), r(k * n), r(p * n));
            pool.install(|| {
                let mut out = vec![f32::NAN; p * n];
                rows_times(&x, &w, k, n, &mut out);
                close(&out, &naive(&x, &w, p, k, n));

                let mut dx = vec![f32::NAN; p * k];
                rows_times_transposed(&dz, &w, k, n, &mut dx);
                close(&dx, &naive(&dz, &transpose(&w, k, n), p, n, k));

                let mut dw = vec![f32::NAN; k * n];
                rows_times(&x, &w, k, n, &mut out);
                transposed_times(&x, &dz, k, n, &mut Vec::new(), &mut dw);
                close(&dw, &naive(&transpose(&x, p, k), &dz, k, p, n));
            });
        }
    }
}
