//! Decoded pixels at their own depth (8-bit, 16-bit or float RGB) and their conversion to
//! [0, 1] floats as `tf.image.convert_image_dtype` makes them: what both decoders
//! (`decode.rs`, every format but JPEG, and `jpeg.rs`) produce.

use image::DynamicImage;

use super::{PreprocessError, Rgb32, U16_SCALE, U8_SCALE};

pub(super) fn check_pixels(
    width: u32,
    height: u32,
    max_pixels: u64,
) -> Result<(), PreprocessError> {
    let (w, h) = (u64::from(width), u64::from(height));
    if w == 0 || h == 0 {
        return Err(PreprocessError::ZeroSize {
            width: w,
            height: h,
        });
    }
    let pixels = w * h; // u32 x u32 fits in u64
    if pixels > max_pixels {
        return Err(PreprocessError::TooManyPixels {
            width: w,
            height: h,
            pixels,
            max: max_pixels,
        });
    }
    Ok(())
}

/// Decoded pixels before crop and resize: 8-bit RGB straight from the JPEG decoder, converted
/// to float only where the resize reads them (most of a photo is cropped or skipped), or
/// [0,1] floats from every other path.
pub(super) enum Pixels {
    Rgb8 {
        height: usize,
        width: usize,
        data: Vec<u8>,
    },
    Rgb16 {
        height: usize,
        width: usize,
        data: Vec<u16>,
    },
    Rgb32(Rgb32),
}

impl Pixels {
    pub(super) fn dims(&self) -> (usize, usize) {
        match self {
            Pixels::Rgb8 { height, width, .. } | Pixels::Rgb16 { height, width, .. } => {
                (*height, *width)
            }
            Pixels::Rgb32(img) => (img.height, img.width),
        }
    }

    pub(super) fn into_rgb32(self) -> Rgb32 {
        match self {
            Pixels::Rgb8 {
                height,
                width,
                data,
            } => from_channels(width as u32, height as u32, &data, 3, u8_value),
            Pixels::Rgb16 {
                height,
                width,
                data,
            } => from_channels(width as u32, height as u32, &data, 3, u16_value),
            Pixels::Rgb32(img) => img,
        }
    }
}

/// An 8-bit value as `tf.image.convert_image_dtype` makes it a float.
pub(super) fn u8_value(v: u8) -> f32 {
    f32::from(v) * U8_SCALE
}

/// Decoded pixels at their own depth, as RGB: 8-bit images as 8-bit (grey replicated, alpha
/// dropped), 16-bit as 16-bit, converted to float only where the resize reads them; float
/// images as floats. One image of N pixels then takes 3N or 6N bytes beside the decoder's
/// own buffer, not 12N more for a float copy.
pub(super) fn pixels_of(img: DynamicImage) -> Pixels {
    let (width, height) = (img.width() as usize, img.height() as usize);
    match img {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_) => Pixels::Rgb8 {
            height,
            width,
            data: img.into_rgb8().into_raw(),
        },
        DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA16(_)
        | DynamicImage::ImageRgb16(_)
        | DynamicImage::ImageRgba16(_) => Pixels::Rgb16 {
            height,
            width,
            data: img.into_rgb16().into_raw(),
        },
        other => Pixels::Rgb32(to_rgb32(&other)),
    }
}

/// A 16-bit value as `tf.image.convert_image_dtype` makes it a float.
pub(super) fn u16_value(v: u16) -> f32 {
    f32::from(v) * U16_SCALE
}

fn from_channels<T: Copy>(
    w: u32,
    h: u32,
    raw: &[T],
    channels: usize,
    convert: impl Fn(T) -> f32,
) -> Rgb32 {
    let mut data = Vec::with_capacity(w as usize * h as usize * 3);
    for px in raw.chunks_exact(channels) {
        if channels < 3 {
            let v = convert(px[0]);
            data.extend_from_slice(&[v, v, v]);
        } else {
            data.extend_from_slice(&[convert(px[0]), convert(px[1]), convert(px[2])]);
        }
    }
    Rgb32 {
        height: h as usize,
        width: w as usize,
        data,
    }
}

fn clamp01(v: f32) -> f32 {
    // NaN fails both comparisons and lands on 0.
    if v >= 1.0 {
        1.0
    } else if v > 0.0 {
        v
    } else {
        0.0
    }
}

fn to_rgb32(img: &DynamicImage) -> Rgb32 {
    let (w, h) = (img.width(), img.height());
    let u8f = u8_value;
    let u16f = u16_value;
    match img {
        DynamicImage::ImageLuma8(b) => from_channels(w, h, b.as_raw(), 1, u8f),
        DynamicImage::ImageLumaA8(b) => from_channels(w, h, b.as_raw(), 2, u8f),
        DynamicImage::ImageRgb8(b) => from_channels(w, h, b.as_raw(), 3, u8f),
        DynamicImage::ImageRgba8(b) => from_channels(w, h, b.as_raw(), 4, u8f),
        DynamicImage::ImageLuma16(b) => from_channels(w, h, b.as_raw(), 1, u16f),
        DynamicImage::ImageLumaA16(b) => from_channels(w, h, b.as_raw(), 2, u16f),
        DynamicImage::ImageRgb16(b) => from_channels(w, h, b.as_raw(), 3, u16f),
        DynamicImage::ImageRgba16(b) => from_channels(w, h, b.as_raw(), 4, u16f),
        DynamicImage::ImageRgb32F(b) => from_channels(w, h, b.as_raw(), 3, clamp01),
        DynamicImage::ImageRgba32F(b) => from_channels(w, h, b.as_raw(), 4, clamp01),
        // DynamicImage is non-exhaustive: anything newer goes through float RGB.
        other => from_channels(w, h, other.to_rgb32f().as_raw(), 3, clamp01),
    }
}
