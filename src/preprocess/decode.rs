//! Every format but JPEG (the `image` crate) and the EXIF orientation; JPEG goes to `jpeg.rs`.
//! Both give `pixels::Pixels`.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits};

use super::pixels::{check_pixels, pixels_of, Pixels};
use super::{jpeg, PreprocessError, Rgb32};

fn image_error(e: ImageError) -> PreprocessError {
    match e {
        ImageError::Unsupported(_) => PreprocessError::Unsupported(e),
        ImageError::Limits(_) => PreprocessError::Limits(e),
        _ => PreprocessError::Decode(e),
    }
}

/// Decodes an image file's bytes by content (not extension): JPEG, PNG, WebP, GIF
/// (first frame), BMP, TIFF (first page) and the other formats of the `image` crate's
/// default features.
///
/// JPEG is decoded as `tf.io.decode_jpeg(channels=3)` does (see [`mod@jpeg`]), CMYK
/// included. Applies the EXIF orientation (TF's decoders ignore it); grey becomes 3
/// equal channels; alpha is dropped, not composited (as `decode_png(channels=3)`). 8-bit
/// values become `v as f32 * (1/255 as f32)` and 16-bit ones `v as f32 * (1/65535 as
/// f32)`, as `tf.image.convert_image_dtype`; float images are clamped to [0, 1] (NaN
/// to 0).
///
/// The dimensions are read from the header and checked against `max_pixels` before
/// any pixel is decoded, and the decoder's allocations are capped in proportion.
pub(crate) fn decode_image(bytes: &[u8], max_pixels: u64) -> Result<Rgb32, PreprocessError> {
    decode_pixels(bytes, max_pixels).map(Pixels::into_rgb32)
}

/// `decode_image` without the conversion of every pixel to float.
pub(super) fn decode_pixels(bytes: &[u8], max_pixels: u64) -> Result<Pixels, PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty);
    }
    // The decoders are third-party code fed untrusted bytes: a panic in one of them is
    // reported as an error for this input rather than taking the whole run down.
    match catch_unwind(AssertUnwindSafe(|| decode_image_inner(bytes, max_pixels))) {
        Ok(result) => result,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_string());
            Err(PreprocessError::DecoderPanic(msg))
        }
    }
}

fn decode_image_inner(bytes: &[u8], max_pixels: u64) -> Result<Pixels, PreprocessError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PreprocessError::Decode(ImageError::IoError(e)))?;
    match reader.format() {
        None => return Err(PreprocessError::UnknownFormat),
        Some(image::ImageFormat::Jpeg) => return jpeg::decode(bytes, max_pixels),
        Some(_) => {}
    }
    // Width/height limits are left unset so that an oversized header gets the
    // --max-pixels message below; the allocation cap still stops decompression bombs
    // in decoders that allocate from header fields. 16 bytes is the widest pixel
    // (RGBA float32) and the 64 MiB covers metadata and codec state.
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(16).saturating_add(64 << 20));
    reader.limits(limits);

    let mut decoder = reader.into_decoder().map_err(image_error)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, max_pixels)?;
    // A broken EXIF block is not worth refusing the image for.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(image_error)?;
    img.apply_orientation(orientation);
    Ok(pixels_of(img))
}

#[cfg(test)]
mod tests {
    use super::super::{U16_SCALE, U8_SCALE};
    use super::*;
    use crate::preprocess::testutil::{decode, encode, rgb_test_image, u8v};
    use crate::preprocess::DEFAULT_MAX_PIXELS;
    use image::{ImageBuffer, ImageFormat, Luma, LumaA, Rgb, Rgba};

    #[test]
    fn u8_scale_is_tf_float32_constant() {
        // Python's 1/255 rounded to float32 is also the float32 division's result.
        assert_eq!(U8_SCALE, 1.0f32 / 255.0);
        assert_eq!(U8_SCALE.to_bits(), 0x3B80_8081);
        assert_eq!(U16_SCALE, 1.0f32 / 65535.0);
    }

    #[test]
    fn decodes_grey_png_to_three_equal_channels() {
        let img = ImageBuffer::from_fn(3, 2, |x, y| Luma([(x * 100 + y * 7) as u8]));
        let out = decode(&encode(&DynamicImage::ImageLuma8(img), ImageFormat::Png));
        assert_eq!((out.height, out.width), (2, 3));
        let v = u8v(207);
        assert_eq!(out.pixel(1, 2), [v, v, v]);
    }

    #[test]
    fn drops_alpha_without_compositing() {
        // A fully transparent pixel keeps its colour, as decode_png(channels=3).
        let la = ImageBuffer::from_fn(2, 1, |x, _| LumaA([100 + x as u8, 0]));
        let out = decode(&encode(&DynamicImage::ImageLumaA8(la), ImageFormat::Png));
        assert_eq!(out.pixel(0, 1), [u8v(101); 3]);
        let rgba = ImageBuffer::from_fn(2, 2, |x, y| Rgba([200, 100, x as u8 * 50, y as u8]));
        let out = decode(&encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png));
        assert_eq!(out.pixel(1, 1), [u8v(200), u8v(100), u8v(50)]);
    }

    #[test]
    fn sixteen_bit_png_scales_by_65535() {
        let img = ImageBuffer::from_fn(4, 1, |x, _| {
            Rgb([[0u16, 1, 257, 65535][x as usize], 32768, 65535])
        });
        let out = decode(&encode(&DynamicImage::ImageRgb16(img), ImageFormat::Png));
        let s = |v: u16| f32::from(v) * U16_SCALE;
        assert_eq!(out.pixel(0, 0), [0.0, s(32768), s(65535)]);
        assert_eq!(out.pixel(0, 2), [s(257), s(32768), s(65535)]);
        assert_eq!(out.pixel(0, 1)[0], s(1));
    }

    fn assert_is_rgb_test_image(out: &Rgb32) {
        assert_eq!((out.height, out.width), (3, 5));
        for y in 0..3 {
            for x in 0..5 {
                let want = [u8v(x as u8 * 50), u8v(y as u8 * 100), u8v(255 - x as u8)];
                assert_eq!(out.pixel(y, x), want, "at ({y}, {x})");
            }
        }
    }

    #[test]
    fn decodes_lossless_formats_exactly() {
        for format in [
            ImageFormat::Png,
            ImageFormat::Bmp,
            ImageFormat::Tiff,
            ImageFormat::WebP,
        ] {
            let bytes = encode(&rgb_test_image(), format);
            assert_is_rgb_test_image(&decode(&bytes));
        }
    }

    #[test]
    fn decodes_webp_lossless_with_alpha() {
        let img = ImageBuffer::from_fn(3, 2, |x, _| Rgba([10, 20 * x as u8, 30, 0]));
        let bytes = encode(&DynamicImage::ImageRgba8(img), ImageFormat::WebP);
        assert_eq!(&bytes[8..12], b"WEBP");
        assert_eq!(decode(&bytes).pixel(1, 2), [u8v(10), u8v(40), u8v(30)]);
    }

    #[test]
    fn gif_gives_the_first_frame() {
        use image::codecs::gif::GifEncoder;
        use image::{Delay, Frame};
        let frame = |c: [u8; 4]| {
            Frame::from_parts(
                ImageBuffer::from_pixel(4, 3, Rgba(c)),
                0,
                0,
                Delay::from_numer_denom_ms(10, 1),
            )
        };
        let mut bytes = Vec::new();
        {
            let mut enc = GifEncoder::new(&mut bytes);
            enc.encode_frames([frame([255, 0, 0, 255]), frame([0, 255, 0, 255])])
                .unwrap();
        }
        let out = decode(&bytes);
        assert_eq!((out.height, out.width), (3, 4));
        assert!(
            out.data.chunks(3).all(|p| p == [1.0, 0.0, 0.0]),
            "{:?}",
            out.pixel(0, 0)
        );
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A real PNG whose IHDR then claims `w` x `h` (CRC fixed up).
    fn png_claiming(w: u32, h: u32) -> Vec<u8> {
        let mut png = encode(&rgb_test_image(), ImageFormat::Png);
        // signature (8), IHDR length (4), "IHDR" (4), width, height, ...
        png[16..20].copy_from_slice(&w.to_be_bytes());
        png[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        png
    }

    #[test]
    fn max_pixels_is_checked_before_decoding() {
        let img = DynamicImage::ImageRgb8(ImageBuffer::from_pixel(100, 100, Rgb([1u8, 2, 3])));
        let png = encode(&img, ImageFormat::Png);
        let err = decode_image(&png, 9_999).unwrap_err();
        assert_eq!(
            err.to_string(),
            "100 x 100 = 10000 pixels exceeds --max-pixels 9999"
        );
        assert!(decode_image(&png, 10_000).is_ok());

        // Decompression bombs: headers claiming huge images over a few bytes of data.
        let err = decode_image(&png_claiming(100_000, 100_000), DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(
            matches!(
                err,
                PreprocessError::TooManyPixels {
                    pixels: 10_000_000_000,
                    ..
                }
            ),
            "{err}"
        );
        let mut jpeg = encode(&rgb_test_image(), ImageFormat::Jpeg);
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        jpeg[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0x00, 0xFF, 0x00]);
        let err = decode_image(&jpeg, DEFAULT_MAX_PIXELS).unwrap_err();
        assert_eq!(
            err.to_string(),
            "65280 x 65280 = 4261478400 pixels exceeds --max-pixels 178956970"
        );
        // Under the pixel limit but with no data behind it: an error, not a crash.
        assert!(decode_image(&png_claiming(5_000, 5_000), DEFAULT_MAX_PIXELS).is_err());
    }

    #[test]
    fn rejects_empty_unknown_and_zero_sized() {
        assert!(matches!(
            decode_image(b"", 100),
            Err(PreprocessError::Empty)
        ));
        assert!(matches!(
            decode_image(b"hello, world", 100),
            Err(PreprocessError::UnknownFormat)
        ));
        assert!(decode_image(&png_claiming(0, 5), 100).is_err());
    }
}
