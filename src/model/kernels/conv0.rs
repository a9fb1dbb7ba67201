//! Conv2d_0: the full 3x3 stride-2 convolution on the RGB image, TF SAME padding, over NHWC.
//! It also maps the hub signature's [0,1] input to the graph's [-1,1] on the fly: padding is
//! zero in [-1,1], so the affine map cannot be folded into the filter.

use super::simd::{dispatch, mul_add};
use super::{relu6, Pad, Shape};

/// The folded first layer: filter `[3, 3, 3, Cout]` (TF's HWIO as stored), bias `[Cout]`.
pub struct Conv0 {
    pub filter: Vec<f32>,
    pub bias: Vec<f32>,
    pub stride: usize,
}

dispatch!(pub fn conv0_row(image: &[f32], shape: Shape, oy: usize, pad: Pad, layer: &Conv0, out: &mut [f32]) => row_body);

/// Output row `oy` (`out`: `[OW, Cout]`) of one image (`[H, W, 3]`, values in [0,1]).
#[inline(always)]
fn row_body<const FMA: bool>(
    image: &[f32],
    shape: Shape,
    oy: usize,
    pad: Pad,
    layer: &Conv0,
    out: &mut [f32],
) {
    let cout = layer.bias.len();
    let (h, w) = (shape.height as isize, shape.width as isize);
    let s = layer.stride as isize;
    let iy0 = oy as isize * s - pad.top as isize;
    for (ox, o) in out.chunks_exact_mut(cout).enumerate() {
        let ix0 = ox as isize * s - pad.left as isize;
        o.copy_from_slice(&layer.bias);
        for ky in 0..3 {
            let iy = iy0 + ky;
            if iy < 0 || iy >= h {
                continue;
            }
            for kx in 0..3 {
                let ix = ix0 + kx;
                if ix < 0 || ix >= w {
                    continue;
                }
                let px = ((iy * w + ix) * 3) as usize;
                for ci in 0..3 {
                    let x = image[px + ci] * 2.0 - 1.0;
                    let tap = ((ky * 3 + kx) as usize * 3 + ci) * cout;
                    for (acc, &f) in o.iter_mut().zip(&layer.filter[tap..tap + cout]) {
                        *acc = mul_add::<FMA>(x, f, *acc);
                    }
                }
            }
        }
        for v in o.iter_mut() {
            *v = relu6(*v);
        }
    }
}
