//! Global average pooling of one NHWC image: `[H, W, C]` to `[C]`.

use super::simd::{dispatch, Target};
use super::Isa;

/// `out[c]` = the mean of channel `c` over the image's pixels, summed pixel by pixel in order
/// (so every level gives the same bits: only the loop over channels is vectorised).
pub fn mean_pool(isa: Isa, image: &[f32], out: &mut [f32]) {
    assert!(
        !out.is_empty() && image.len().is_multiple_of(out.len()),
        "pool shapes"
    );
    pool(isa, image, out);
}

dispatch!(fn pool(image: &[f32], out: &mut [f32]) => pool_body);

#[inline(always)]
fn pool_body<T: Target>(image: &[f32], out: &mut [f32]) {
    out.fill(0.0);
    let pixels = image.len() / out.len();
    for px in image.chunks_exact(out.len()) {
        for (o, &v) in out.iter_mut().zip(px) {
            *o += v;
        }
    }
    let inv = 1.0 / pixels as f32;
    for o in out.iter_mut() {
        *o *= inv;
    }
}
