//! Every kernel at every level this CPU supports (`Isa::supported`), against a plain reference
//! in f64, over channel counts that reach each path (8 and 24: no 16-channel blocks; 16, 40:
//! a masked tail; 1024), widths 1 to 5 and odd sizes. Inputs are deterministic ramps with prime
//! strides, of both signs and past 6 after the layer, so ReLU6 clamps both ways.

use super::bf16::{bf16_to_f32, to_bf16};
use super::conv0::{conv0_row, Conv0};
use super::depthwise::{depthwise_row, Depthwise};
use super::pointwise::{pointwise_rows, Pointwise};
use super::pool::mean_pool;
use super::{relu6, Bf16, Isa, Pad, Shape};
use crate::model::padding::same_padding;

const CHANNELS: [usize; 5] = [8, 16, 24, 40, 1024];

/// `n` values in [lo, lo + span), a ramp with a prime stride.
fn ramp(n: usize, stride: usize, lo: f32, span: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * stride) % 1009) as f32 / 1009.0 * span + lo)
        .collect()
}

/// A reference value: the exact sum (f64) and the sum of its terms' magnitudes, which bounds
/// the rounding error any f32 summation order may make.
#[derive(Clone, Copy)]
struct Exact {
    sum: f64,
    magnitude: f64,
}

impl Exact {
    fn new(bias: f32) -> Self {
        Self {
            sum: bias as f64,
            magnitude: (bias as f64).abs(),
        }
    }

    fn add(&mut self, a: f32, b: f32) {
        let p = a as f64 * b as f64;
        self.sum += p;
        self.magnitude += p.abs();
    }
}

/// Checks `got` against `want` within f32 rounding of each sum (after ReLU6 when `relu`).
fn check(got: &[f32], want: &[Exact], relu: bool, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, w)) in got.iter().zip(want).enumerate() {
        let v = w.sum as f32;
        let v = if relu { relu6(v) } else { v };
        let tol = 1e-5 * w.magnitude as f32 + 1e-6;
        assert!(
            (g - v).abs() <= tol,
            "{what} [{i}]: {g} vs {v} (tolerance {tol})"
        );
    }
}

fn pad(shape: Shape, stride: usize) -> Pad {
    Pad {
        top: same_padding(shape.height, 3, stride).1 .0,
        left: same_padding(shape.width, 3, stride).1 .0,
    }
}

/// Input sizes: 1 to 5, and odd ones past the kernels' tiles (12 and 6 pixels for conv0, 8 and
/// 4 for depthwise).
const SIZES: [usize; 8] = [1, 2, 3, 4, 5, 9, 13, 27];

#[test]
fn conv0_matches_the_reference_at_every_level() {
    for isa in Isa::supported() {
        for cout in CHANNELS.into_iter().chain([32]) {
            let filter = ramp(27 * cout, 53, -0.5, 1.0);
            let bias = ramp(cout, 31, -1.0, 2.0);
            for stride in [1, 2] {
                let layer = Conv0::new(filter.clone(), bias.clone(), stride, isa);
                for (h, w) in [(1, 1), (2, 5), (3, 4), (5, 3), (4, 9), (3, 13), (2, 27)] {
                    let shape = Shape {
                        height: h,
                        width: w,
                        channels: 3,
                    };
                    let image = ramp(shape.len(), 37, 0.0, 1.0);
                    let (oh, ow) = (h.div_ceil(stride), w.div_ceil(stride));
                    let pad = pad(shape, stride);
                    for oy in 0..oh {
                        let mut want = vec![Exact::new(0.0); ow * cout];
                        for ox in 0..ow {
                            for co in 0..cout {
                                let mut e = Exact::new(bias[co]);
                                for ky in 0..3 {
                                    for kx in 0..3 {
                                        let iy = (oy * stride + ky).checked_sub(pad.top);
                                        let ix = (ox * stride + kx).checked_sub(pad.left);
                                        let (Some(iy), Some(ix)) = (iy, ix) else {
                                            continue;
                                        };
                                        if iy >= h || ix >= w {
                                            continue;
                                        }
                                        for ci in 0..3 {
                                            let x = image[(iy * w + ix) * 3 + ci] * 2.0 - 1.0;
                                            e.add(x, filter[((ky * 3 + kx) * 3 + ci) * cout + co]);
                                        }
                                    }
                                }
                                want[ox * cout + co] = e;
                            }
                        }
                        let mut got = vec![f32::NAN; ow * cout];
                        conv0_row(&image, shape, oy, pad, &layer, &mut got);
                        let what = format!("{isa} conv0 {h}x{w} stride {stride} C {cout} row {oy}");
                        check(&got, &want, true, &what);
                    }
                }
            }
        }
    }
}

#[test]
fn depthwise_matches_the_reference_at_every_level() {
    for isa in Isa::supported() {
        for c in CHANNELS {
            let taps = ramp(9 * c, 71, -1.0, 2.0);
            let bias = ramp(c, 29, -1.0, 2.0);
            for stride in [1, 2] {
                let layer = Depthwise::new(taps.clone(), bias.clone(), stride, isa);
                for h in [1, 2, 3, 5, 9] {
                    for w in SIZES {
                        let shape = Shape {
                            height: h,
                            width: w,
                            channels: c,
                        };
                        let input = ramp(shape.len(), 97, -2.0, 6.0);
                        let (oh, ow) = (h.div_ceil(stride), w.div_ceil(stride));
                        let pad = pad(shape, stride);
                        for oy in 0..oh {
                            let mut want = vec![Exact::new(0.0); ow * c];
                            for ox in 0..ow {
                                for ch in 0..c {
                                    let mut e = Exact::new(bias[ch]);
                                    for ky in 0..3 {
                                        for kx in 0..3 {
                                            let iy = (oy * stride + ky).checked_sub(pad.top);
                                            let ix = (ox * stride + kx).checked_sub(pad.left);
                                            let (Some(iy), Some(ix)) = (iy, ix) else {
                                                continue;
                                            };
                                            if iy < h && ix < w {
                                                let x = input[(iy * w + ix) * c + ch];
                                                e.add(x, taps[(ky * 3 + kx) * c + ch]);
                                            }
                                        }
                                    }
                                    want[ox * c + ch] = e;
                                }
                            }
                            let mut got = vec![f32::NAN; ow * c];
                            depthwise_row(&input, shape, oy, pad, &layer, &mut got);
                            let what =
                                format!("{isa} depthwise {h}x{w} stride {stride} C {c} row {oy}");
                            check(&got, &want, true, &what);
                        }
                    }
                }
            }
        }
    }
}

/// Inputs `[rows, cin]`, weights `[cin, cout]` and biases for the pointwise kernel.
fn pointwise_problem(rows: usize, cin: usize, cout: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    (
        ramp(rows * cin, 7919, -2.0, 4.0),
        ramp(cin * cout, 104729, -0.5, 1.0),
        ramp(cout, 13, -0.3, 1.0),
    )
}

fn pointwise_reference(input: &[f32], w: &[f32], bias: &[f32], cin: usize) -> Vec<Exact> {
    let cout = bias.len();
    input
        .chunks_exact(cin)
        .flat_map(|row| {
            (0..cout).map(move |j| {
                let mut e = Exact::new(bias[j]);
                for (k, &x) in row.iter().enumerate() {
                    e.add(x, w[k * cout + j]);
                }
                e
            })
        })
        .collect()
}

#[test]
fn pointwise_and_linear_match_the_reference_at_every_level() {
    // Cout with each remainder mod 32 MobileNet has (8, 16, 24, 0), ragged ones (37; 150: a
    // single row takes four panels at a time, then one; 1001, the logits); Cin past the 256 of
    // one pass (300, 1024). Rows 1 to 5 and ones that give every tile size.
    let shapes = [
        (3, 8),
        (8, 16),
        (24, 24),
        (16, 40),
        (40, 1024),
        (1024, 8),
        (1024, 1024),
        (33, 37),
        (300, 37),
        (24, 150),
        (256, 1001),
    ];
    for isa in Isa::supported() {
        for (cin, cout) in shapes {
            for rows in [1, 2, 3, 4, 5, 7, 8, 9, 17] {
                let (input, w, bias) = pointwise_problem(rows, cin, cout);
                let want = pointwise_reference(&input, &w, &bias, cin);
                // With ReLU6 (every layer) and without (the logits).
                for relu in [true, false] {
                    let layer = if relu {
                        Pointwise::new(&w, &bias, cin, isa)
                    } else {
                        Pointwise::linear(&w, &bias, cin, isa)
                    };
                    let mut got = vec![f32::NAN; rows * cout];
                    pointwise_rows(&input, &layer, &mut got);
                    let what = format!("{isa} pointwise {cin}x{cout} rows {rows} relu {relu}");
                    check(&got, &want, relu, &what);
                }
            }
        }
    }
}

/// bf16 where this CPU has it, else None with a note (the bf16 tests then check nothing).
fn bf16_here(test: &str) -> Option<Bf16> {
    match Bf16::new(Isa::best()) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("{test}: skipped: {e}");
            None
        }
    }
}

#[test]
fn bf16_pointwise_matches_a_reference_on_bf16_operands() {
    // The reference rounds inputs and weights to bf16 as the kernel does (to_bf16: nearest,
    // ties to even, as vcvtne2ps2bf16) and sums their exact products in f64. A product of two
    // bf16 values is exact in f32, so the kernel's only error is its f32 summation of Cin
    // products and the bias; vdpbf16ps adds each pair (odd input first) in its own order, so the
    // bound is the one for any order: (Cin + 2) * 2^-24 * sum |terms|. Cin odd (1, 3, 33: a
    // zero-padded pair) and past one k-block of 128 pairs (257, 1024); Couts and rows as above.
    let Some(bf16) = bf16_here("bf16_pointwise") else {
        return;
    };
    let round = |v: f32| bf16_to_f32(to_bf16(v));
    let shapes = [
        (1, 16),
        (3, 8),
        (8, 16),
        (24, 24),
        (33, 37),
        (40, 1024),
        (257, 37),
        (24, 150),
        (1024, 40),
        (256, 1001),
    ];
    for (cin, cout) in shapes {
        for rows in [1, 2, 3, 5, 7, 8, 9, 17] {
            let (input, w, bias) = pointwise_problem(rows, cin, cout);
            let input_b: Vec<f32> = input.iter().map(|&v| round(v)).collect();
            let w_b: Vec<f32> = w.iter().map(|&v| round(v)).collect();
            let want = pointwise_reference(&input_b, &w_b, &bias, cin);
            for relu in [true, false] {
                let layer = if relu {
                    Pointwise::new(&w, &bias, cin, Isa::best())
                } else {
                    Pointwise::linear(&w, &bias, cin, Isa::best())
                }
                .into_bf16(bf16);
                let mut got = vec![f32::NAN; rows * cout];
                pointwise_rows(&input, &layer, &mut got);
                for (i, (&g, e)) in got.iter().zip(&want).enumerate() {
                    let v = e.sum as f32;
                    let v = if relu { relu6(v) } else { v };
                    let tol = (cin + 2) as f32 * f32::EPSILON / 2.0 * e.magnitude as f32;
                    assert!(
                        (g - v).abs() <= tol,
                        "bf16 pointwise {cin}x{cout} rows {rows} relu {relu} [{i}]: {g} vs {v} \
                         (tolerance {tol})"
                    );
                }
            }
        }
    }
}

#[test]
fn a_pointwise_row_gives_the_same_bits_alone_as_in_a_tile() {
    // One row takes its own kernel (several panels at once); the sums must not change, so an
    // image's logits do not depend on the batch it came in.
    let (cin, cout, rows) = (600, 1001, 9);
    let (input, w, bias) = pointwise_problem(rows, cin, cout);
    let bf16 = bf16_here("bf16 a row alone");
    for isa in Isa::supported() {
        let mut layers = vec![
            Pointwise::new(&w, &bias, cin, isa),
            Pointwise::linear(&w, &bias, cin, isa),
        ];
        if let (Some(bf16), true) = (bf16, isa == Isa::best()) {
            layers.push(Pointwise::new(&w, &bias, cin, isa).into_bf16(bf16));
            layers.push(Pointwise::linear(&w, &bias, cin, isa).into_bf16(bf16));
        }
        for layer in layers {
            let mut batch = vec![0f32; rows * cout];
            pointwise_rows(&input, &layer, &mut batch);
            for (row, want) in input.chunks_exact(cin).zip(batch.chunks_exact(cout)) {
                let mut alone = vec![0f32; cout];
                pointwise_rows(row, &layer, &mut alone);
                assert!(
                    alone
                        .iter()
                        .zip(want)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{isa}"
                );
            }
        }
    }
}

#[test]
fn nan_stays_nan_through_relu6_at_every_level() {
    for isa in Isa::supported() {
        let layer = Pointwise::new(&[1.0; 16], &[0.0; 16], 1, isa);
        let mut out = vec![0f32; 16];
        pointwise_rows(&[f32::NAN], &layer, &mut out);
        assert!(out.iter().all(|v| v.is_nan()), "{isa} pointwise: {out:?}");
        if let (Ok(bf16), true) = (Bf16::new(isa), isa == Isa::best()) {
            let layer = Pointwise::new(&[1.0; 16], &[0.0; 16], 1, isa).into_bf16(bf16);
            let mut out = vec![0f32; 16];
            pointwise_rows(&[f32::NAN], &layer, &mut out);
            assert!(out.iter().all(|v| v.is_nan()), "bf16 pointwise: {out:?}");
        }

        let layer = Depthwise::new(vec![1.0; 9 * 16], vec![0.0; 16], 1, isa);
        let shape = Shape {
            height: 3,
            width: 3,
            channels: 16,
        };
        let mut out = vec![0f32; 3 * 16];
        let pad = Pad { top: 1, left: 1 };
        depthwise_row(
            &vec![f32::NAN; shape.len()],
            shape,
            1,
            pad,
            &layer,
            &mut out,
        );
        assert!(out.iter().all(|v| v.is_nan()), "{isa} depthwise: {out:?}");
    }
}

#[test]
fn mean_pool_matches_the_reference_at_every_level() {
    for isa in Isa::supported() {
        for c in CHANNELS {
            for pixels in [1, 2, 3, 4, 5, 49] {
                let image = ramp(pixels * c, 43, 0.0, 6.0);
                let want: Vec<Exact> = (0..c)
                    .map(|ch| {
                        let mut e = Exact::new(0.0);
                        for p in 0..pixels {
                            e.add(image[p * c + ch], 1.0 / pixels as f32);
                        }
                        e
                    })
                    .collect();
                let mut got = vec![f32::NAN; c];
                mean_pool(isa, &image, &mut got);
                check(
                    &got,
                    &want,
                    false,
                    &format!("{isa} pool C {c} pixels {pixels}"),
                );
            }
        }
    }
}
