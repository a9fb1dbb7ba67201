//! `tf.image.central_crop` and TF1 `resize_bilinear`, bit for bit as TensorFlow's CPU kernels.

use super::Rgb32;

/// Start and length of `tf.image.central_crop` along an axis of `n` pixels.
///
/// TensorFlow (image_ops_impl.py) computes `start = int((n - n * fraction) / 2)` in
/// float64 and `size = n - 2 * start`. With the dynamic shapes of a decoded image
/// (TF-Slim's eval graph) the fraction is first made a float32 tensor and then cast to
/// float64, which is what taking an `f32` here reproduces; for 0.875 (exact in both)
/// eager mode's plain Python double gives the same answer.
pub(crate) fn central_crop_window(n: usize, fraction: f32) -> (usize, usize) {
    if fraction >= 1.0 {
        return (0, n); // TF returns the image unchanged for 1.0
    }
    let f = if fraction > 0.0 {
        f64::from(fraction)
    } else {
        f64::from(f32::MIN_POSITIVE)
    };
    let nd = n as f64;
    // Non-negative, so the truncating cast is TF's int32 cast. The min keeps at least
    // one pixel where a tiny fraction rounds `n * f` away (TF would crop to nothing).
    let start = (((nd - nd * f) / 2.0) as usize).min(n.saturating_sub(1) / 2);
    (start, n - 2 * start)
}

/// Source rows (or columns) and weight for each output index, as TF's
/// `compute_interpolation_weights` with the legacy scaler.
fn interpolation_weights(out_size: usize, in_size: usize) -> Vec<(usize, usize, f32)> {
    // CalculateResizeScale: in_size / static_cast<float>(out_size), in float32.
    let scale = in_size as f32 / out_size as f32;
    (0..out_size)
        .map(|i| {
            let src = i as f32 * scale; // LegacyScaler
            let src_floor = src.floor();
            // TF clamps only `upper`; `lower` cannot pass in_size - 1 for any size
            // TF accepts, the min only keeps indexing safe.
            let lower = (src_floor as usize).min(in_size - 1);
            let upper = (src.ceil() as usize).min(in_size - 1);
            (lower, upper, src - src_floor)
        })
        .collect()
}

/// TF1 `resize_bilinear(align_corners=False, half_pixel_centers=False)`, bit for bit
/// as TensorFlow's CPU kernel (tensorflow/core/kernels/image/resize_bilinear_op.cc).
///
/// float32 `scale = in / out`; `src = dst as f32 * scale`; `top = floor(src)`,
/// `bottom = min(ceil(src), in - 1)`, `lerp = src - floor(src)`; then
/// `top_row = tl + (tr - tl) * xl`, `bottom_row = bl + (br - bl) * xl`,
/// `out = top_row + (bottom_row - top_row) * yl`, each step rounded to float32 (no
/// fused multiply-add, as TF's SSE path). Same-size "resizes" copy the input, as TF's
/// kernel does. An empty input gives a black output; an empty output size, an empty
/// image.
pub(crate) fn resize_bilinear_tf1(img: &Rgb32, out_h: usize, out_w: usize) -> Rgb32 {
    img.check_len();
    let whole = Window {
        top: 0,
        left: 0,
        height: img.height,
        width: img.width,
    };
    resize_window(&img.data, img.width, whole, out_h, out_w, |v| v)
}

/// A rectangle of an image, in pixels.
#[derive(Clone, Copy)]
pub(super) struct Window {
    pub(super) top: usize,
    pub(super) left: usize,
    pub(super) height: usize,
    pub(super) width: usize,
}

/// `resize_bilinear_tf1` of the `window` of an interleaved RGB image `image_width` pixels wide
/// whose values become floats through `value` (so a crop needs no copy, and 8-bit pixels are
/// converted only where they are read; the floats, and so the result, are the same).
pub(super) fn resize_window<T: Copy>(
    data: &[T],
    image_width: usize,
    window: Window,
    out_h: usize,
    out_w: usize,
    value: impl Fn(T) -> f32,
) -> Rgb32 {
    let Window {
        top: y0,
        left: x0,
        height,
        width,
    } = window;
    if out_h == 0 || out_w == 0 || height == 0 || width == 0 {
        return Rgb32::zeros(out_h, out_w);
    }
    let row_len = image_width * 3;
    let mut data_out = Vec::with_capacity(out_h * out_w * 3);
    if out_h == height && out_w == width {
        // TF's kernel copies a same-size input.
        for y in y0..y0 + height {
            let row = &data[y * row_len + x0 * 3..][..width * 3];
            data_out.extend(row.iter().map(|&v| value(v)));
        }
    } else {
        let ys = interpolation_weights(out_h, height);
        let xs = interpolation_weights(out_w, width);
        // `top_row` / `bottom_row` of TF's kernel depend only on the source row, so each source
        // row is interpolated along x once, into `lerped`, and reused by the next output row
        // when it needs it too (the same float operations, so the same result).
        let lerp_x = |y: usize, out: &mut [f32]| {
            let row = &data[(y0 + y) * row_len + x0 * 3..][..width * 3];
            for (o, &(x_left, x_right, xl)) in out.chunks_exact_mut(3).zip(&xs) {
                let (l, r) = (x_left * 3, x_right * 3);
                for c in 0..3 {
                    let (left, right) = (value(row[l + c]), value(row[r + c]));
                    o[c] = left + (right - left) * xl;
                }
            }
        };
        // The source rows whose x-interpolations `lerped` holds.
        let mut lerped = [vec![0f32; out_w * 3], vec![0f32; out_w * 3]];
        let mut held = [usize::MAX; 2];
        for &(y_top, y_bottom, yl) in &ys {
            if held[0] != y_top {
                if held[1] == y_top {
                    lerped.swap(0, 1);
                    held.swap(0, 1);
                } else {
                    lerp_x(y_top, &mut lerped[0]);
                    held[0] = y_top;
                }
            }
            if held[1] != y_bottom {
                let [top, bottom] = &mut lerped;
                if y_bottom == y_top {
                    bottom.copy_from_slice(top);
                } else {
                    lerp_x(y_bottom, bottom);
                }
                held[1] = y_bottom;
            }
            let [top, bottom] = &lerped;
            data_out.extend(
                top.iter()
                    .zip(bottom)
                    .map(|(&top, &bottom)| top + (bottom - top) * yl),
            );
        }
    }
    Rgb32 {
        height: out_h,
        width: out_w,
        data: data_out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::npy::read_npy_images;
    use crate::preprocess::testutil::{compare_bits, read_fixture};
    use crate::preprocess::U8_SCALE;

    /// `tf.image.central_crop` as a copy (`preprocess_image` reads the same window in place).
    /// A fraction of 1 or more returns the image unchanged (as TF does for 1.0); 0, negative
    /// or NaN keep the central 1 or 2 pixels per axis (TF refuses them).
    fn central_crop(img: &Rgb32, fraction: f32) -> Rgb32 {
        img.check_len();
        let (top, h) = central_crop_window(img.height, fraction);
        let (left, w) = central_crop_window(img.width, fraction);
        let mut data = Vec::with_capacity(h * w * 3);
        for y in top..top + h {
            let row = (y * img.width + left) * 3;
            data.extend_from_slice(&img.data[row..row + w * 3]);
        }
        Rgb32 {
            height: h,
            width: w,
            data,
        }
    }

    /// A 3-channel image from a per-pixel function.
    fn image_from(h: usize, w: usize, f: impl Fn(usize, usize) -> [f32; 3]) -> Rgb32 {
        let mut data = Vec::with_capacity(h * w * 3);
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&f(y, x));
            }
        }
        Rgb32 {
            height: h,
            width: w,
            data,
        }
    }

    fn channel(img: &Rgb32, c: usize) -> Vec<Vec<f32>> {
        (0..img.height)
            .map(|y| (0..img.width).map(|x| img.pixel(y, x)[c]).collect())
            .collect()
    }

    // ---- resize: hand-computed cases ----------------------------------------------

    #[test]
    fn resize_3x3_to_2x2() {
        // scale = 3/2 = 1.5: output 0 reads source 0 (lerp 0), output 1 reads source
        // 1.5, i.e. between 1 and 2 with lerp 0.5.
        // in:  0 1 2 / 3 4 5 / 6 7 8
        // (0,0) = 0; (0,1) = 1 + (2-1)*0.5 = 1.5; (1,0) = 3 + (6-3)*0.5 = 4.5;
        // (1,1): top 4 + 0.5 = 4.5, bottom 7 + 0.5 = 7.5, 4.5 + 3*0.5 = 6.
        let img = image_from(3, 3, |y, x| {
            let v = (y * 3 + x) as f32;
            [v, v / 8.0, 1.0 - v / 8.0]
        });
        let out = resize_bilinear_tf1(&img, 2, 2);
        assert_eq!(channel(&out, 0), vec![vec![0.0, 1.5], vec![4.5, 6.0]]);
        assert_eq!(
            channel(&out, 1),
            vec![vec![0.0, 0.1875], vec![0.5625, 0.75]]
        );
        assert_eq!(
            channel(&out, 2),
            vec![vec![1.0, 0.8125], vec![0.4375, 0.25]]
        );
    }

    #[test]
    fn resize_4x4_to_3x3_ramps_give_the_float32_source_coordinate() {
        // scale = 4/3 = 1.33333337 in float32; sources 0, 1.33333337, 2.66666675.
        // On a ramp v = x the lerp gives lower + (1 * (src - lower)) = src exactly, so
        // the output is the float32 source coordinate itself.
        let img = image_from(4, 4, |y, x| [x as f32, y as f32, 0.5]);
        let out = resize_bilinear_tf1(&img, 3, 3);
        let s = 4.0f32 / 3.0;
        let want = [0.0, s, 2.0 * s];
        assert_eq!(want, [0.0, 1.333_333_4, 2.666_666_7]);
        for y in 0..3 {
            for x in 0..3 {
                assert_eq!(out.pixel(y, x), [want[x], want[y], 0.5], "at ({y}, {x})");
            }
        }
    }

    #[test]
    fn resize_5x7_to_3x4() {
        // Rows: scale 5/3 = 1.6666666 (f32), sources 0, 1.6666666, 3.3333333.
        // Columns: scale 7/4 = 1.75 (exact), sources 0, 1.75, 3.5, 5.25.
        // Channel 2 alternates 0, 1, 0, 1, ... along x:
        //   x=0: column 0 -> 0; x=1: cols 1,2 (1, 0), lerp .75 -> 1 - .75 = 0.25;
        //   x=2: cols 3,4 (1, 0), lerp .5 -> 0.5; x=3: cols 5,6 (1, 0), lerp .25 -> 0.75.
        let img = image_from(5, 7, |y, x| [x as f32, y as f32, (x % 2) as f32]);
        let out = resize_bilinear_tf1(&img, 3, 4);
        let sy = 5.0f32 / 3.0;
        let rows = [0.0, sy, 2.0 * sy];
        let cols = [0.0, 1.75, 3.5, 5.25];
        let alternating = [0.0, 0.25, 0.5, 0.75];
        for (y, &row) in rows.iter().enumerate() {
            for (x, &col) in cols.iter().enumerate() {
                assert_eq!(out.pixel(y, x), [col, row, alternating[x]], "at ({y}, {x})");
            }
        }
    }

    #[test]
    fn resize_2x2_up_to_5x5_replicates_the_last_pixel() {
        // scale = 2/5 = 0.4 (f32); sources 0, 0.4, 0.8, 1.2, 1.6. From 1.2 on, floor is
        // 1 and ceil is clamped to 1: TF legacy upscaling repeats the last row/column
        // instead of extrapolating, and never reaches the far edge's centre early.
        let img = image_from(2, 2, |y, x| [x as f32, y as f32, 0.25]);
        let out = resize_bilinear_tf1(&img, 5, 5);
        let s = 2.0f32 / 5.0;
        let want = [0.0, s, 2.0 * s, 1.0, 1.0];
        assert_eq!(want[1], 0.4);
        for y in 0..5 {
            for x in 0..5 {
                assert_eq!(out.pixel(y, x), [want[x], want[y], 0.25], "at ({y}, {x})");
            }
        }
    }

    #[test]
    fn resize_7x5_to_3x3_odd_sizes() {
        // Rows: 7/3 = 2.3333333 -> sources 0, 2.3333333, 4.6666665;
        // columns: 5/3 = 1.6666666 -> 0, 1.6666666, 3.3333333. Ramps again give the
        // float32 sources.
        let img = image_from(7, 5, |y, x| [x as f32, y as f32, 1.0]);
        let out = resize_bilinear_tf1(&img, 3, 3);
        let (sy, sx) = (7.0f32 / 3.0, 5.0f32 / 3.0);
        for y in 0..3 {
            for x in 0..3 {
                let want = [x as f32 * sx, y as f32 * sy, 1.0];
                assert_eq!(out.pixel(y, x), want, "at ({y}, {x})");
            }
        }
    }

    #[test]
    fn resize_integer_downscale_subsamples() {
        // 1x6 -> 1x3: scale 2, sources 0, 2, 4 with lerp 0: TF legacy bilinear picks
        // every other pixel, no averaging.
        let img = image_from(1, 6, |_, x| [x as f32 / 8.0, 0.0, 1.0]);
        let out = resize_bilinear_tf1(&img, 1, 3);
        assert_eq!(channel(&out, 0), vec![vec![0.0, 0.25, 0.5]]);
    }

    #[test]
    fn resize_one_pixel_edges() {
        // 1x1 -> 3x2: every source index is 0.
        let one = image_from(1, 1, |_, _| [0.1, 0.2, 0.3]);
        let out = resize_bilinear_tf1(&one, 3, 2);
        assert!(out.data.chunks(3).all(|p| p == [0.1, 0.2, 0.3]));
        // 3x1 -> 2x4: columns all read column 0; rows 0 and 1.5.
        let col = image_from(3, 1, |y, _| [y as f32, 0.0, 0.0]);
        let out = resize_bilinear_tf1(&col, 2, 4);
        assert_eq!(channel(&out, 0), vec![vec![0.0; 4], vec![1.5; 4]]);
        // Down to 1x1: source 0 only (the top-left pixel, not the mean).
        let img = image_from(4, 4, |y, x| [(y * 4 + x) as f32, 0.0, 0.0]);
        assert_eq!(resize_bilinear_tf1(&img, 1, 1).pixel(0, 0), [0.0, 0.0, 0.0]);
    }

    #[test]
    fn resize_same_size_copies_and_empty_sizes() {
        let img = image_from(3, 4, |y, x| [y as f32, x as f32, 0.5]);
        assert_eq!(resize_bilinear_tf1(&img, 3, 4), img);
        assert_eq!(resize_bilinear_tf1(&img, 0, 4).data.len(), 0);
        let empty = Rgb32::zeros(0, 0);
        assert_eq!(resize_bilinear_tf1(&empty, 2, 2), Rgb32::zeros(2, 2));
    }

    // ---- central crop ----------------------------------------------------------------

    #[test]
    fn central_crop_windows() {
        // start = int((n - n * f) / 2) in float64, size = n - 2 * start.
        assert_eq!(central_crop_window(13, 0.875), (0, 13)); // (13 - 11.375) / 2 = 0.8125
        assert_eq!(central_crop_window(17, 0.875), (1, 15)); // 2.125 / 2 = 1.0625
        assert_eq!(central_crop_window(16, 0.875), (1, 14)); // 2 / 2 = 1
        assert_eq!(central_crop_window(9, 0.875), (0, 9)); // 0.5625
        assert_eq!(central_crop_window(1, 0.875), (0, 1));
        assert_eq!(central_crop_window(224, 0.875), (14, 196));
        assert_eq!(central_crop_window(256, 0.875), (16, 224));
        assert_eq!(central_crop_window(375, 0.875), (23, 329)); // 46.875 / 2 = 23.4375
        assert_eq!(central_crop_window(500, 0.875), (31, 438)); // 62.5 / 2 = 31.25
        assert_eq!(central_crop_window(5, 0.5), (1, 3)); // 2.5 / 2 = 1.25
        assert_eq!(central_crop_window(3, 0.5), (0, 3)); // 1.5 / 2 = 0.75: no crop
        assert_eq!(central_crop_window(7, 1.0), (0, 7));
        // 0.8 as float32 is 0.800000011920929: 20 - 16.0000002 = 3.9999998, start 1.
        // (TF eager with a Python double 0.8 would say start 2; TF-Slim's graph, with a
        // dynamic image shape, goes through float32 like this; see the gray_10x20
        // fixture.)
        assert_eq!(central_crop_window(20, 0.8), (1, 18));
        assert_eq!(central_crop_window(10, 0.8), (0, 10));
        // Out-of-range fractions stay total: the central 1 or 2 pixels.
        assert_eq!(central_crop_window(10, 0.0), (4, 2));
        assert_eq!(central_crop_window(9, f32::NAN), (4, 1));
        assert_eq!(central_crop_window(0, 0.875), (0, 0));
    }

    #[test]
    fn central_crop_tf_docs_example() {
        // tf.image.central_crop's docstring: a 4x4x3 image with values 1..48, fraction
        // 0.5 -> [[16,17,18],[19,20,21]], [[28,29,30],[31,32,33]].
        let img = image_from(4, 4, |y, x| {
            let b = ((y * 4 + x) * 3 + 1) as f32;
            [b, b + 1.0, b + 2.0]
        });
        let out = central_crop(&img, 0.5);
        assert_eq!((out.height, out.width), (2, 2));
        assert_eq!(
            out.data,
            [16., 17., 18., 19., 20., 21., 28., 29., 30., 31., 32., 33.]
        );
    }

    #[test]
    fn central_crop_odd_and_even() {
        let img = image_from(17, 16, |y, x| [y as f32, x as f32, 0.0]);
        let out = central_crop(&img, 0.875);
        assert_eq!((out.height, out.width), (15, 14));
        assert_eq!(out.pixel(0, 0), [1.0, 1.0, 0.0]);
        assert_eq!(out.pixel(14, 13), [15.0, 14.0, 0.0]);
        assert_eq!(central_crop(&img, 1.0), img);
    }

    #[test]
    fn resize_matches_tensorflow_on_a_larger_pattern() {
        // The input is rebuilt here from the formula in tools/make_preprocess_fixtures.py.
        let img = image_from(300, 257, |y, x| {
            let v = |c: usize| ((y * 31 + x * 17 + c * 101 + (y * x) % 7) % 256) as u8;
            [0, 1, 2].map(|c| f32::from(v(c)) * U8_SCALE)
        });
        for (h, w) in [(31, 29), (224, 3)] {
            let want = read_npy_images(&read_fixture(&format!("pattern_300x257_to_{h}x{w}.npy")))
                .unwrap()
                .remove(0);
            let (bad, max) = compare_bits(&resize_bilinear_tf1(&img, h, w), &want);
            assert_eq!(bad, 0, "{h}x{w}: {bad} values differ, max abs diff {max}");
        }
    }
}
