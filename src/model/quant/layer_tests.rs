//! Random layers for the vector kernels' tests (`avx2.rs`, `vnni.rs`): each kernel against the
//! plain one (`kernels.rs`) on the same filter, input and requantization.

use super::kernels::{self, Requant};
use super::requant::quantize_multiplier;
use crate::model::kernels::Isa;
use crate::model::padding::same_padding;

pub(super) fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// A random layer's requantization: real multipliers around the models' (input x filter /
/// output scale), biases of both signs, and either a ReLU-like clamp at the zero point (every
/// body layer's, which `Relu64` takes; a third of them over the whole uint8 range, its
/// saturating form) or one below it (which it does not).
pub(super) fn random_requant(next: &mut impl FnMut() -> u64, cout: usize) -> Requant {
    let whole_range = next().is_multiple_of(3);
    let output_zero_point = if whole_range { 0 } else { (next() % 64) as i32 };
    Requant {
        multipliers: (0..cout)
            .map(|_| quantize_multiplier((1 + next() % 1000) as f64 * 2e-6))
            .collect(),
        bias: (0..cout).map(|_| (next() % 20001) as i32 - 10000).collect(),
        output_zero_point,
        act_min: if next().is_multiple_of(2) {
            output_zero_point
        } else {
            (next() % 8) as i32
        },
        act_max: if whole_range {
            255
        } else {
            255 - (next() % 8) as i32
        },
    }
}

/// One random pointwise layer and its input.
pub(super) struct PointwiseCase {
    pub(super) cin: usize,
    pub(super) cout: usize,
    pub(super) pixels: usize,
    pub(super) filter: Vec<i16>,
    pub(super) zx: i32,
    pub(super) rq: Requant,
    pub(super) input: Vec<u8>,
}

/// `rounds` random pointwise layers, each `run` (None: a layer the kernel does not take) against
/// the plain kernel: int8 filters at the
/// extremes (+-127 pairs against inputs of 255), uint8-model filters (-255..255), small ones,
/// a narrow range far from zero, odd output channel counts and pixel counts (every tile shape).
pub(super) fn check_pointwise(
    seed: u64,
    rounds: usize,
    mut run: impl FnMut(&PointwiseCase) -> Option<Vec<u8>>,
) {
    let mut next = xorshift(seed);
    for round in 0..rounds {
        let cin = 4 * (1 + (next() % 40) as usize);
        // Up to 150: whole groups of four 16-channel blocks and a tail.
        let cout = 1 + (next() % 150) as usize;
        let pixels = 1 + (next() % 75) as usize;
        let filter: Vec<i16> = (0..cin * cout)
            .map(|_| match round % 4 {
                0 => [127, -127, 127, 127, -128, -128][(next() % 6) as usize],
                1 => (next() % 511) as i16 - 255 + (next() % 2) as i16,
                2 => (next() % 129) as i16 - 64,
                _ => (next() % 120) as i16 + 100,
            })
            .collect();
        let zx = (next() % 256) as i32;
        let rq = random_requant(&mut next, cout);
        let input: Vec<u8> = (0..pixels * cin)
            .map(|i| {
                if i % 3 == 0 {
                    255
                } else {
                    (next() % 256) as u8
                }
            })
            .collect();
        let case = PointwiseCase {
            cin,
            cout,
            pixels,
            filter,
            zx,
            rq,
            input,
        };
        let mut want = vec![0u8; pixels * cout];
        kernels::pointwise(
            Isa::portable(),
            &case.input,
            pixels,
            cin,
            zx,
            &case.filter,
            cout,
            &case.rq,
            &mut want,
        );
        if let Some(got) = run(&case) {
            assert_eq!(got, want, "cin {cin} cout {cout} pixels {pixels}");
        }
    }
}

/// One random depthwise layer, its input and the output rows asked for.
pub(super) struct DepthwiseCase {
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) c: usize,
    pub(super) stride: usize,
    pub(super) filter: Vec<i16>,
    pub(super) zx: i32,
    pub(super) rq: Requant,
    pub(super) input: Vec<u8>,
    pub(super) rows: std::ops::Range<usize>,
}

/// `rounds` random depthwise layers, each `run` against the plain kernel: both strides, odd
/// sizes and channel counts (a tail block), uint8- and int8-model filters, a split of the rows.
pub(super) fn check_depthwise(
    seed: u64,
    rounds: usize,
    mut run: impl FnMut(&DepthwiseCase) -> Vec<u8>,
) {
    let mut next = xorshift(seed);
    for round in 0..rounds {
        // Every third map wider than 64: the VNNI kernel frames narrower ones (its
        // FRAMED_WIDTH), these take its border path.
        let wide = if round % 3 == 0 { 64 } else { 0 };
        let (h, w) = (
            1 + (next() % 11) as usize,
            wide + 1 + (next() % 11) as usize,
        );
        let c = 1 + (next() % 37) as usize;
        let stride = 1 + round % 2;
        let filter: Vec<i16> = (0..9 * c)
            .map(|_| match round % 4 {
                // A uint8 model's (w - zero point).
                0 | 1 => (next() % 511) as i16 - 255,
                // An int8 model's, its extremes included.
                2 => (next() % 256) as i16 - 128,
                _ => [127, -128, 0][(next() % 3) as usize],
            })
            .collect();
        let zx = (next() % 256) as i32;
        let rq = random_requant(&mut next, c);
        let input: Vec<u8> = (0..h * w * c).map(|_| (next() % 256) as u8).collect();
        let (oh, _) = same_padding(h, 3, stride);
        let (ow, _) = same_padding(w, 3, stride);
        let first = (next() % oh as u64) as usize;
        let rows = first..oh;
        let mut want = vec![0u8; rows.len() * ow * c];
        kernels::depthwise3x3(
            Isa::portable(),
            &input,
            (h, w, c),
            zx,
            &filter,
            stride,
            &rq,
            rows.clone(),
            &mut want,
        );
        let case = DepthwiseCase {
            h,
            w,
            c,
            stride,
            filter,
            zx,
            rq,
            input,
            rows,
        };
        assert_eq!(run(&case), want, "{h}x{w}x{c} stride {stride}");
    }
}
