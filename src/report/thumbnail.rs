//! Small JPEG thumbnails for the HTML pages, embedded as `data:` URIs.

use std::io::Cursor;

use base64::Engine;
use image::codecs::jpeg::JpegEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

use crate::inputs::npy;
use crate::preprocess::Rgb32;

/// JPEG quality of thumbnails: small files, no visible blocking at ~100 px.
const QUALITY: u8 = 80;

/// The image in `bytes` (any format classify reads; a .npy tensor's image `index`) shrunk to fit
/// `side` x `side`, as JPEG.
pub fn from_file_bytes(
    bytes: &[u8],
    index: usize,
    side: u32,
    max_pixels: u64,
) -> Result<Vec<u8>, String> {
    if npy::is_npy(bytes) {
        let images = npy::read_npy_images(bytes).map_err(|e| e.to_string())?;
        let img = images
            .get(index)
            .ok_or_else(|| format!("the tensor has no image {index}"))?;
        return from_rgb32(img, side);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(16).saturating_add(64 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(format!("{w}x{h} is more than --max-pixels {max_pixels}"));
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    img.apply_orientation(orientation);
    encode(&img.thumbnail(side, side).to_rgb8())
}

/// A preprocessed image (values in [0, 1]) shrunk to fit `side` x `side`, as JPEG.
pub fn from_rgb32(img: &Rgb32, side: u32) -> Result<Vec<u8>, String> {
    let rgb = RgbImage::from_fn(img.width as u32, img.height as u32, |x, y| {
        let p = img.pixel(y as usize, x as usize);
        image::Rgb(p.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8))
    });
    encode(&DynamicImage::ImageRgb8(rgb).thumbnail(side, side).to_rgb8())
}

fn encode(img: &RgbImage) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode_image(img)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// `data:image/jpeg;base64,...` (base64 has no character that needs escaping in an attribute).
pub fn data_uri(jpeg: &[u8]) -> String {
    format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(jpeg)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_fit_the_box_and_keep_the_aspect() {
        let img = RgbImage::from_fn(300, 150, |x, _| image::Rgb([(x % 256) as u8, 0, 0]));
        let mut png = Vec::new();
        img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let jpeg = from_file_bytes(&png, 0, 100, 1 << 20).unwrap();
        let t = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((t.width(), t.height()), (100, 50));
        assert!(data_uri(&jpeg).starts_with("data:image/jpeg;base64,/9j/"));
        assert!(from_file_bytes(&png, 0, 100, 1000)
            .unwrap_err()
            .contains("max-pixels"));
        assert!(from_file_bytes(b"not an image", 0, 100, 1 << 20).is_err());
    }
}
