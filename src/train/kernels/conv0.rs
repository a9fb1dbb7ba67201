//! Conv2d_0 for training: the 3x3 stride-2 convolution on the RGB image as a matrix product
//! over patches. `patches` lays each output pixel's 27 input values out in the filter's HWIO
//! order (ky, kx, channel), mapped from the hub signature's [0,1] to the graph's [-1,1], with
//! TF SAME padding as zeros (in [-1,1]); forward is `patches x filter[27, C]` and the filter's
//! gradient `patches^T x dZ`. The image needs no gradient, and the patches are what the
//! backward pass keeps of the input.

use rayon::prelude::*;

use super::{Pad, Shape};

/// Values per patch: 3 x 3 taps x 3 channels.
pub const PATCH: usize = 27;

/// Patches `[N * OH * OW, 27]` of `n` images `[H, W, 3]` with values in [0,1].
pub fn patches(images: &[f32], input: Shape, out: Shape, stride: usize, pad: Pad, dst: &mut [f32]) {
    let n = images.len() / input.len();
    assert!(input.channels == 3 && images.len() == n * input.len());
    assert_eq!(dst.len(), n * out.height * out.width * PATCH);
    dst.par_chunks_mut(out.width * PATCH)
        .enumerate()
        .for_each(|(row, dst)| {
            let (img, oy) = (row / out.height, row % out.height);
            let image = &images[img * input.len()..][..input.len()];
            for (ox, patch) in dst.chunks_exact_mut(PATCH).enumerate() {
                for ky in 0..3 {
                    let iy = (oy * stride + ky) as isize - pad.top as isize;
                    for kx in 0..3 {
                        let ix = (ox * stride + kx) as isize - pad.left as isize;
                        let to = &mut patch[(ky * 3 + kx) * 3..][..3];
                        if iy < 0
                            || ix < 0
                            || iy as usize >= input.height
                            || ix as usize >= input.width
                        {
                            to.fill(0.0);
                        } else {
                            let from = &image[(iy as usize * input.width + ix as usize) * 3..][..3];
                            for (t, &f) in to.iter_mut().zip(from) {
                                *t = f * 2.0 - 1.0;
                            }
                        }
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::padding::same_padding;
    use crate::train::kernels::matmul::rows_times;

    #[test]
    fn patches_times_filter_is_tf_same_convolution_on_odd_sizes() {
        // Direct 3x3 stride-2 SAME convolution of x*2-1 against the patch product, 9 x 12 input.
        let (h, w, cout) = (9, 12, 5);
        let input = Shape {
            height: h,
            width: w,
            channels: 3,
        };
        let (oh, (top, _)) = same_padding(h, 3, 2);
        let (ow, (left, _)) = same_padding(w, 3, 2);
        let out = Shape {
            height: oh,
            width: ow,
            channels: cout,
        };
        let images: Vec<f32> = (0..2 * input.len())
            .map(|i| ((i * 37) % 101) as f32 / 100.0)
            .collect();
        let filter: Vec<f32> = (0..PATCH * cout)
            .map(|i| ((i * 13) % 7) as f32 / 7.0 - 0.4)
            .collect();
        let mut p = vec![0f32; 2 * oh * ow * PATCH];
        patches(&images, input, out, 2, Pad { top, left }, &mut p);
        let mut z = vec![0f32; 2 * oh * ow * cout];
        rows_times(&p, &filter, PATCH, cout, &mut z);
        for n in 0..2 {
            for oy in 0..oh {
                for ox in 0..ow {
                    for co in 0..cout {
                        let mut want = 0f64;
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let iy = (oy * 2 + ky) as isize - top as isize;
                                let ix = (ox * 2 + kx) as isize - left as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                for ci in 0..3 {
                                    let x =
                                        images[((n * h + iy as usize) * w + ix as usize) * 3 + ci];
                                    let f = filter[((ky * 3 + kx) * 3 + ci) * cout + co];
                                    want += (x as f64 * 2.0 - 1.0) * f as f64;
                                }
                            }
                        }
                        let got = z[((n * oh + oy) * ow + ox) * cout + co] as f64;
                        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
                    }
                }
            }
        }
    }
}
