//! Global average pooling of one NHWC image: `[H, W, C]` to `[C]`.

pub fn mean_pool(image: &[f32], channels: usize, out: &mut [f32]) {
    out.fill(0.0);
    let pixels = image.len() / channels;
    for px in image.chunks_exact(channels) {
        for (o, &v) in out.iter_mut().zip(px) {
            *o += v;
        }
    }
    let inv = 1.0 / pixels as f32;
    for o in out.iter_mut() {
        *o *= inv;
    }
}
