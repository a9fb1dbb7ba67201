//! Images (and `.npy` tensors) to model input: TF-Slim's evaluation preprocessing.
//!
//! The pipeline is the one MobileNet V1's published accuracy used
//! (`inception_preprocessing.preprocess_for_eval`): decode to RGB in [0, 1],
//! `tf.image.central_crop(0.875)`, then TF1 `resize_bilinear` with
//! `align_corners=False, half_pixel_centers=False`. The model maps `x` to `x * 2 - 1`
//! itself (TF-Slim writes `(x - 0.5) * 2`, which is the same float32 value: scaling
//! by 2 is exact).
//!
//! Crop and resize reproduce TensorFlow's CPU kernels bit for bit (checked against
//! fixtures made by `tools/make_preprocess_fixtures.py`). JPEG goes through
//! libjpeg-turbo's decoder (vendored by `mozjpeg-sys`) with `tf.io.decode_jpeg`'s
//! settings (integer-fast IDCT, fancy upsampling, TF's own CMYK conversion), so it gives
//! TensorFlow's pixels exactly; the image crate's pure-Rust JPEG decoder (zune-jpeg)
//! matched only about 30% of TF's values on ImageNet photos. The other formats go
//! through the `image` crate; PNG, BMP, GIF, TIFF and lossless WebP give TensorFlow's
//! values exactly.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits};

/// TF-Slim's evaluation crop: the central 87.5% of each axis.
pub const DEFAULT_CENTRAL_FRACTION: f32 = 0.875;

/// Default `--max-pixels`: where Pillow refuses an image as a decompression bomb
/// (twice its warning limit of 89,478,485 pixels).
pub const DEFAULT_MAX_PIXELS: u64 = 178_956_970;

/// `tf.image.convert_image_dtype` from uint8: cast, then multiply by the float32
/// constant `1 / 255` (Python's double, rounded once to float32).
const U8_SCALE: f32 = (1.0f64 / 255.0) as f32;
/// The same for uint16: `1 / 65535` rounded once to float32.
const U16_SCALE: f32 = (1.0f64 / 65535.0) as f32;

/// HWC float32 RGB image, values in [0,1] (row-major, 3 channels).
///
/// `data.len()` must be `height * width * 3`; the functions here panic otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct Rgb32 {
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

impl Rgb32 {
    /// A black image.
    pub fn zeros(height: usize, width: usize) -> Self {
        Rgb32 {
            height,
            width,
            data: vec![0.0; height * width * 3],
        }
    }

    /// The three channels of pixel (`y`, `x`).
    pub fn pixel(&self, y: usize, x: usize) -> [f32; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    fn check_len(&self) {
        assert_eq!(
            self.data.len(),
            self.height * self.width * 3,
            "Rgb32 data length does not match {} x {} x 3",
            self.height,
            self.width
        );
    }
}

/// How much of the decoded image to keep before resizing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Crop {
    /// `tf.image.central_crop` with this fraction of each axis, in (0, 1].
    Central(f32),
    /// Resize the whole image.
    None,
}

impl Default for Crop {
    fn default() -> Self {
        Crop::Central(DEFAULT_CENTRAL_FRACTION)
    }
}

/// Settings for [`preprocess_image`].
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// Target (height, width).
    pub size: (usize, usize),
    pub crop: Crop,
    /// Images with more pixels (width x height, read from the header) are refused
    /// before decoding.
    pub max_pixels: u64,
}

impl Preprocess {
    /// TF-Slim's evaluation preprocessing to `height` x `width`.
    pub fn new(height: usize, width: usize) -> Self {
        Preprocess {
            size: (height, width),
            crop: Crop::default(),
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }

    /// Checks the settings: a non-empty target and a crop fraction in (0, 1].
    pub fn validate(&self) -> Result<(), PreprocessError> {
        if self.size.0 == 0 || self.size.1 == 0 {
            return Err(PreprocessError::InvalidSize {
                height: self.size.0,
                width: self.size.1,
            });
        }
        if let Crop::Central(f) = self.crop {
            // Written so that NaN is refused too.
            if !(f > 0.0 && f <= 1.0) {
                return Err(PreprocessError::InvalidCrop(f));
            }
        }
        Ok(())
    }
}

/// Why an input could not be turned into a model input.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("empty input (0 bytes)")]
    Empty,
    #[error(
        "unknown image format: the content is not JPEG, PNG, WebP, GIF, BMP, TIFF \
         or another format the image crate reads"
    )]
    UnknownFormat,
    #[error("unsupported image: {0}")]
    Unsupported(#[source] ImageError),
    #[error("cannot decode image: {0}")]
    Decode(#[source] ImageError),
    #[error("cannot decode JPEG: {0}")]
    Jpeg(String),
    #[error("image decoder failed unexpectedly: {0}")]
    DecoderPanic(String),
    #[error("image refused by the decoder's memory limits: {0}")]
    Limits(#[source] ImageError),
    #[error("{width} x {height} = {pixels} pixels exceeds --max-pixels {max}")]
    TooManyPixels {
        width: u64,
        height: u64,
        pixels: u64,
        max: u64,
    },
    #[error("image has no pixels ({width} x {height})")]
    ZeroSize { width: u64, height: u64 },
    #[error("invalid target size {height} x {width}: both must be at least 1")]
    InvalidSize { height: usize, width: usize },
    #[error("invalid central crop fraction {0}: it must be in (0, 1]")]
    InvalidCrop(f32),
    #[error("invalid .npy input: {0}")]
    Npy(String),
}

fn image_error(e: ImageError) -> PreprocessError {
    match e {
        ImageError::Unsupported(_) => PreprocessError::Unsupported(e),
        ImageError::Limits(_) => PreprocessError::Limits(e),
        _ => PreprocessError::Decode(e),
    }
}

fn check_pixels(width: u32, height: u32, max_pixels: u64) -> Result<(), PreprocessError> {
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
pub fn decode_image(bytes: &[u8], max_pixels: u64) -> Result<Rgb32, PreprocessError> {
    decode_pixels(bytes, max_pixels).map(Pixels::into_rgb32)
}

/// Decoded pixels before crop and resize: 8-bit RGB straight from the JPEG decoder, converted
/// to float only where the resize reads them (most of a photo is cropped or skipped), or
/// [0,1] floats from every other path.
enum Pixels {
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
    fn dims(&self) -> (usize, usize) {
        match self {
            Pixels::Rgb8 { height, width, .. } | Pixels::Rgb16 { height, width, .. } => {
                (*height, *width)
            }
            Pixels::Rgb32(img) => (img.height, img.width),
        }
    }

    fn into_rgb32(self) -> Rgb32 {
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
fn u8_value(v: u8) -> f32 {
    f32::from(v) * U8_SCALE
}

/// `decode_image` without the conversion of every pixel to float.
fn decode_pixels(bytes: &[u8], max_pixels: u64) -> Result<Pixels, PreprocessError> {
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

/// Decoded pixels at their own depth, as RGB: 8-bit images as 8-bit (grey replicated, alpha
/// dropped), 16-bit as 16-bit, converted to float only where the resize reads them; float
/// images as floats. One image of N pixels then takes 3N or 6N bytes beside the decoder's
/// own buffer, not 12N more for a float copy.
fn pixels_of(img: DynamicImage) -> Pixels {
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
fn u16_value(v: u16) -> f32 {
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

/// JPEG as `tf.io.decode_jpeg(contents, channels=3)` decodes it: libjpeg-turbo with
/// the integer-fast IDCT (TF's default `dct_method`), fancy upsampling, and CMYK/YCCK
/// converted to RGB by TF's formula (tensorflow/core/lib/jpeg/jpeg_mem.cc). A truncated
/// file is an error, as in TF (which does not try to recover truncated JPEGs by default).
mod jpeg {
    use std::ffi::CStr;
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

    use image::metadata::Orientation;
    use image::{DynamicImage, ImageBuffer};
    use mozjpeg_sys::*;

    use super::{check_pixels, pixels_of, Pixels, PreprocessError};

    /// What the markers before the first scan say about colour and orientation.
    #[derive(Debug, Default, PartialEq)]
    pub(super) struct Markers<'a> {
        /// An APP14 "Adobe" segment long enough for libjpeg to accept it
        /// (libjpeg's `saw_Adobe_marker`, which picks TF's CMYK formula).
        pub adobe: bool,
        /// The first APP1 Exif payload, from its TIFF header on.
        pub exif: Option<&'a [u8]>,
    }

    pub(super) fn scan_markers(b: &[u8]) -> Markers<'_> {
        let mut found = Markers::default();
        if !b.starts_with(&[0xFF, 0xD8]) {
            return found;
        }
        let mut i = 2;
        loop {
            while b.get(i) == Some(&0xFF) && b.get(i + 1) == Some(&0xFF) {
                i += 1; // fill bytes
            }
            let (Some(&0xFF), Some(&marker)) = (b.get(i), b.get(i + 1)) else {
                break;
            };
            match marker {
                0xDA | 0xD9 => break, // start of scan, end of image
                0x01 | 0xD0..=0xD7 => {
                    i += 2; // no length field
                    continue;
                }
                _ => {}
            }
            let Some(len) = b
                .get(i + 2..i + 4)
                .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
            else {
                break;
            };
            let Some(data) = len.checked_sub(2).and_then(|n| b.get(i + 4..i + 4 + n)) else {
                break;
            };
            if marker == 0xEE && data.len() >= 12 && data.starts_with(b"Adobe") {
                found.adobe = true;
            }
            if marker == 0xE1 && found.exif.is_none() && data.starts_with(b"Exif\0\0") {
                found.exif = Some(&data[6..]);
            }
            i += 2 + len;
        }
        found
    }

    /// Carries libjpeg's message out of its error handler.
    struct JpegFailure(String);

    /// libjpeg's `format_message` as C declares it: it writes into the buffer. (mozjpeg-sys
    /// declares the buffer `&[u8; 80]`, and writing through a shared reference is undefined
    /// behaviour.)
    type FormatMessage =
        unsafe extern "C-unwind" fn(cinfo: &mut jpeg_common_struct, buffer: *mut [u8; 80]);

    fn message(cinfo: &mut jpeg_common_struct) -> String {
        let mut buf = [0u8; 80];
        // SAFETY: `err` is the manager installed in `decode_rgb8`, which outlives `cinfo`.
        let format = unsafe { (*cinfo.err).format_message };
        if let Some(format) = format {
            // SAFETY: the two signatures differ only in `&[u8; 80]` against `*mut [u8; 80]`,
            // which have the same ABI (a thin pointer); the function is libjpeg's own.
            let format: FormatMessage = unsafe { std::mem::transmute(format) };
            // SAFETY: format_message writes a NUL-terminated string of at most 80 bytes
            // (JMSG_LENGTH_MAX) into the buffer, which is ours and writable.
            unsafe { format(cinfo, &mut buf) };
        }
        CStr::from_bytes_until_nul(&buf)
            .map(|m| m.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown libjpeg error".into())
    }

    /// libjpeg's error_exit must not return: unwind to `decode_rgb8`'s catch_unwind
    /// (mozjpeg-sys builds the C code with -fexceptions for this). resume_unwind skips
    /// the panic hook, so nothing is printed.
    ///
    /// SAFETY (caller): libjpeg, with the error manager `decode_rgb8` installs.
    unsafe extern "C-unwind" fn error_exit(cinfo: &mut jpeg_common_struct) {
        let msg = message(cinfo);
        resume_unwind(Box::new(JpegFailure(msg)));
    }

    /// Warnings are counted, not printed; running out of data is an error as in TF.
    ///
    /// SAFETY (caller): libjpeg, with the error manager `decode_rgb8` installs.
    unsafe extern "C-unwind" fn emit_message(cinfo: &mut jpeg_common_struct, level: c_int) {
        if level < 0 {
            // SAFETY: `err` is the manager installed in `decode_rgb8`, which outlives `cinfo`,
            // and nothing else refers to it while libjpeg calls us.
            let err = unsafe { &mut *cinfo.err };
            err.num_warnings += 1;
            if err.msg_code == JWRN_JPEG_EOF as c_int {
                // SAFETY: called from inside libjpeg (our caller's contract), as libjpeg would.
                unsafe { error_exit(cinfo) };
            }
        }
    }

    /// SAFETY (caller): none; it does nothing (messages are not printed).
    unsafe extern "C-unwind" fn output_message(_cinfo: &mut jpeg_common_struct) {}

    /// Destroys the decompressor however `decode_rgb8` is left.
    struct Decompressor(jpeg_decompress_struct);

    impl Drop for Decompressor {
        fn drop(&mut self) {
            // SAFETY: created by jpeg_create_decompress; destroying is valid in any
            // state, and libjpeg's own errors cannot happen here.
            unsafe { jpeg_destroy_decompress(&mut self.0) };
        }
    }

    /// Decodes to 8-bit RGB: (width, height, pixels).
    fn decode_rgb8(
        bytes: &[u8],
        adobe: bool,
        max_pixels: u64,
    ) -> Result<(u32, u32, Vec<u8>), PreprocessError> {
        // SAFETY: the structs are plain C data that libjpeg initialises (zeroed is how
        // libjpeg's own examples start); `err` is declared before the decompressor so it
        // is dropped after it, and both stay on this frame while libjpeg uses them. The
        // input buffer outlives the decompressor.
        unsafe {
            let mut err: jpeg_error_mgr = std::mem::zeroed();
            jpeg_std_error(&mut err);
            err.error_exit = Some(error_exit);
            err.emit_message = Some(emit_message);
            err.output_message = Some(output_message);
            let mut d = Decompressor(std::mem::zeroed());
            d.0.common.err = &mut err;
            jpeg_create_decompress(&mut d.0);
            let c = &mut d.0;
            jpeg_mem_src(c, bytes.as_ptr(), bytes.len() as c_ulong);
            jpeg_read_header(c, 1);
            check_pixels(c.image_width, c.image_height, max_pixels)?;
            let cmyk = matches!(c.jpeg_color_space, JCS_CMYK | JCS_YCCK);
            c.out_color_space = if cmyk { JCS_CMYK } else { JCS_RGB };
            c.dct_method = J_DCT_METHOD::JDCT_IFAST;
            c.do_fancy_upsampling = 1;
            jpeg_start_decompress(c);
            let (w, h) = (c.output_width as usize, c.output_height as usize);
            let channels = if cmyk { 4 } else { 3 };
            if c.output_components != channels as c_int {
                return Err(PreprocessError::Jpeg(format!(
                    "{} output components where {channels} were asked for",
                    c.output_components
                )));
            }
            let mut rgb = vec![0u8; w * h * 3];
            let mut line = vec![0u8; w * channels];
            while (c.output_scanline as usize) < h {
                let y = c.output_scanline as usize;
                let mut row = line.as_mut_ptr();
                if jpeg_read_scanlines(c, &mut row, 1) != 1 {
                    return Err(PreprocessError::Jpeg("premature end of JPEG data".into()));
                }
                let out = &mut rgb[y * w * 3..(y + 1) * w * 3];
                if cmyk {
                    for (o, p) in out.chunks_exact_mut(3).zip(line.chunks_exact(4)) {
                        let k = u32::from(p[3]);
                        for ch in 0..3 {
                            let v = u32::from(p[ch]);
                            // TF's integer formulas: Adobe files store inverted CMYK.
                            o[ch] = if adobe {
                                (k * v / 255) as u8
                            } else {
                                ((255 - k) * (255 - v) / 255) as u8
                            };
                        }
                    }
                } else {
                    out.copy_from_slice(&line);
                }
            }
            jpeg_finish_decompress(c);
            Ok((w as u32, h as u32, rgb))
        }
    }

    pub(super) fn decode(bytes: &[u8], max_pixels: u64) -> Result<Pixels, PreprocessError> {
        let markers = scan_markers(bytes);
        let decoded = catch_unwind(AssertUnwindSafe(|| {
            decode_rgb8(bytes, markers.adobe, max_pixels)
        }));
        let (w, h, rgb) = match decoded {
            Ok(result) => result?,
            Err(payload) => match payload.downcast::<JpegFailure>() {
                Ok(failure) => return Err(PreprocessError::Jpeg(failure.0)),
                Err(other) => resume_unwind(other),
            },
        };
        let orientation = markers
            .exif
            .and_then(Orientation::from_exif_chunk)
            .filter(|&o| o != Orientation::NoTransforms);
        let Some(orientation) = orientation else {
            return Ok(Pixels::Rgb8 {
                height: h as usize,
                width: w as usize,
                data: rgb,
            });
        };
        let buffer = ImageBuffer::from_raw(w, h, rgb)
            .ok_or_else(|| PreprocessError::Jpeg("decoded size mismatch".into()))?;
        let mut img = DynamicImage::ImageRgb8(buffer);
        img.apply_orientation(orientation);
        Ok(pixels_of(img))
    }
}

/// Start and length of `tf.image.central_crop` along an axis of `n` pixels.
///
/// TensorFlow (image_ops_impl.py) computes `start = int((n - n * fraction) / 2)` in
/// float64 and `size = n - 2 * start`. With the dynamic shapes of a decoded image
/// (TF-Slim's eval graph) the fraction is first made a float32 tensor and then cast to
/// float64, which is what taking an `f32` here reproduces; for 0.875 (exact in both)
/// eager mode's plain Python double gives the same answer.
pub fn central_crop_window(n: usize, fraction: f32) -> (usize, usize) {
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

/// TF `tf.image.central_crop`: keeps the central `fraction` of each axis.
///
/// A fraction of 1 or more returns the image unchanged (as TF does for 1.0); 0, negative
/// or NaN keep the central 1 or 2 pixels per axis (TF refuses them; see
/// [`Preprocess::validate`]).
pub fn central_crop(img: &Rgb32, fraction: f32) -> Rgb32 {
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
pub fn resize_bilinear_tf1(img: &Rgb32, out_h: usize, out_w: usize) -> Rgb32 {
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
struct Window {
    top: usize,
    left: usize,
    height: usize,
    width: usize,
}

/// `resize_bilinear_tf1` of the `window` of an interleaved RGB image `image_width` pixels wide
/// whose values become floats through `value` (so a crop needs no copy, and 8-bit pixels are
/// converted only where they are read; the floats, and so the result, are the same).
fn resize_window<T: Copy>(
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

/// Full pipeline for one file's bytes: decode, crop, resize -> HWC [0,1].
/// (The model itself maps x to x*2-1.)
pub fn preprocess_image(bytes: &[u8], p: &Preprocess) -> Result<Rgb32, PreprocessError> {
    p.validate()?;
    let pixels = decode_pixels(bytes, p.max_pixels)?;
    let (height, width) = pixels.dims();
    // The central crop is only a window of the decoded image (as `central_crop` would copy).
    let ((top, height), (left, width)) = match p.crop {
        Crop::Central(f) if f < 1.0 => (
            central_crop_window(height, f), // validated: not NaN
            central_crop_window(width, f),
        ),
        _ => ((0, height), (0, width)),
    };
    let window = Window {
        top,
        left,
        height,
        width,
    };
    let (out_h, out_w) = p.size;
    Ok(match &pixels {
        Pixels::Rgb8 { width, data, .. } => {
            resize_window(data, *width, window, out_h, out_w, u8_value)
        }
        Pixels::Rgb16 { width, data, .. } => {
            resize_window(data, *width, window, out_h, out_w, u16_value)
        }
        Pixels::Rgb32(img) => resize_window(&img.data, img.width, window, out_h, out_w, |v| v),
    })
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// True when bytes start with the npy magic "\x93NUMPY".
pub fn is_npy(bytes: &[u8]) -> bool {
    bytes.starts_with(NPY_MAGIC)
}

fn npy_err(msg: impl Into<String>) -> PreprocessError {
    PreprocessError::Npy(msg.into())
}

/// The header fields of an `.npy` file.
#[derive(Debug, PartialEq)]
struct NpyHeader {
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
    data_offset: usize,
}

/// Tokens of the header's Python dict literal.
#[derive(Debug, PartialEq)]
enum Tok {
    Punct(u8),
    Str(String),
    Int(u64),
    Word(String),
}

fn tokenize_npy_header(text: &[u8]) -> Result<Vec<Tok>, PreprocessError> {
    let mut toks = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'{' | b'}' | b'(' | b')' | b'[' | b']' | b':' | b',' => {
                toks.push(Tok::Punct(c));
                i += 1;
            }
            b'\'' | b'"' => {
                let mut s = Vec::new();
                i += 1;
                loop {
                    match text.get(i) {
                        None => return Err(npy_err("unterminated string in header")),
                        Some(&q) if q == c => break,
                        Some(b'\\') => {
                            let Some(&e) = text.get(i + 1) else {
                                return Err(npy_err("unterminated string in header"));
                            };
                            s.push(e);
                            i += 2;
                        }
                        Some(&b) => {
                            s.push(b);
                            i += 1;
                        }
                    }
                }
                i += 1;
                toks.push(Tok::Str(String::from_utf8_lossy(&s).into_owned()));
            }
            b'0'..=b'9' => {
                let mut v: u64 = 0;
                while let Some(&d) = text.get(i).filter(|d| d.is_ascii_digit()) {
                    v = v
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(d - b'0')))
                        .ok_or_else(|| npy_err("dimension too large in header"))?;
                    i += 1;
                }
                // Python 2 era files write longs as `3L`.
                if text.get(i) == Some(&b'L') {
                    i += 1;
                }
                toks.push(Tok::Int(v));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while text
                    .get(i)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                {
                    i += 1;
                }
                toks.push(Tok::Word(
                    String::from_utf8_lossy(&text[start..i]).into_owned(),
                ));
            }
            b'-' => return Err(npy_err("negative number in header")),
            _ => {
                return Err(npy_err(format!(
                    "unexpected character {:?} in header",
                    c as char
                )))
            }
        }
    }
    Ok(toks)
}

/// Parses `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` (the only
/// shape of header numpy writes) without recursion, so no input can exhaust the stack.
fn parse_npy_dict(toks: &[Tok]) -> Result<(String, bool, Vec<u64>), PreprocessError> {
    let mut it = toks.iter().peekable();
    expect(b'{', &mut it)?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        if it.peek() == Some(&&Tok::Punct(b'}')) {
            it.next();
            break;
        }
        let key = match it.next() {
            Some(Tok::Str(k)) => k.clone(),
            other => {
                return Err(npy_err(format!(
                    "malformed header: expected a key, found {}",
                    describe_tok(other)
                )))
            }
        };
        expect(b':', &mut it)?;
        match key.as_str() {
            "descr" => match it.next() {
                Some(Tok::Str(s)) => descr = Some(s.clone()),
                Some(Tok::Punct(b'[')) => {
                    return Err(npy_err(
                        "structured (record) dtype is not supported; expected float32 '<f4'",
                    ))
                }
                other => {
                    return Err(npy_err(format!(
                        "malformed header: 'descr' is {}",
                        describe_tok(other)
                    )))
                }
            },
            "fortran_order" => match it.next() {
                Some(Tok::Word(w)) if w == "True" => fortran = Some(true),
                Some(Tok::Word(w)) if w == "False" => fortran = Some(false),
                other => {
                    return Err(npy_err(format!(
                        "malformed header: 'fortran_order' is {}",
                        describe_tok(other)
                    )))
                }
            },
            "shape" => {
                let close = match it.next() {
                    Some(Tok::Punct(b'(')) => b')',
                    Some(Tok::Punct(b'[')) => b']',
                    other => {
                        return Err(npy_err(format!(
                            "malformed header: 'shape' is {}",
                            describe_tok(other)
                        )))
                    }
                };
                let mut dims = Vec::new();
                loop {
                    match it.next() {
                        Some(Tok::Punct(p)) if *p == close => break,
                        Some(Tok::Int(v)) => {
                            if dims.len() >= 32 {
                                return Err(npy_err("shape has more than 32 dimensions"));
                            }
                            dims.push(*v);
                            match it.next() {
                                Some(Tok::Punct(b',')) => {}
                                Some(Tok::Punct(p)) if *p == close => break,
                                other => {
                                    return Err(npy_err(format!(
                                        "malformed header: in 'shape', found {}",
                                        describe_tok(other)
                                    )))
                                }
                            }
                        }
                        other => {
                            return Err(npy_err(format!(
                                "malformed header: in 'shape', found {}",
                                describe_tok(other)
                            )))
                        }
                    }
                }
                shape = Some(dims);
            }
            other => return Err(npy_err(format!("unexpected header key '{other}'"))),
        }
        match it.next() {
            Some(Tok::Punct(b',')) => {}
            Some(Tok::Punct(b'}')) => break,
            other => {
                return Err(npy_err(format!(
                    "malformed header: expected ',' or '}}', found {}",
                    describe_tok(other)
                )))
            }
        }
    }
    if let Some(t) = it.next() {
        return Err(npy_err(format!(
            "malformed header: {} after the closing brace",
            describe_tok(Some(t))
        )));
    }
    match (descr, fortran, shape) {
        (Some(d), Some(f), Some(s)) => Ok((d, f, s)),
        _ => Err(npy_err(
            "header lacks one of 'descr', 'fortran_order', 'shape'",
        )),
    }
}

type TokIter<'a> = std::iter::Peekable<std::slice::Iter<'a, Tok>>;

fn expect(want: u8, it: &mut TokIter) -> Result<(), PreprocessError> {
    match it.next() {
        Some(Tok::Punct(p)) if *p == want => Ok(()),
        other => Err(npy_err(format!(
            "malformed header: expected '{}', found {}",
            want as char,
            describe_tok(other)
        ))),
    }
}

fn describe_tok(t: Option<&Tok>) -> String {
    match t {
        None => "the end of the header".into(),
        Some(Tok::Punct(p)) => format!("'{}'", *p as char),
        Some(Tok::Str(s)) => format!("the string {s:?}"),
        Some(Tok::Int(v)) => format!("the number {v}"),
        Some(Tok::Word(w)) => format!("'{w}'"),
    }
}

fn parse_npy_header(bytes: &[u8]) -> Result<NpyHeader, PreprocessError> {
    if !is_npy(bytes) {
        return Err(npy_err("not an .npy file (no \\x93NUMPY magic)"));
    }
    let (major, minor) = match bytes.get(6..8) {
        Some(v) => (v[0], v[1]),
        None => return Err(npy_err("truncated header")),
    };
    let (len_bytes, prefix) = match (major, minor) {
        (1, 0) => (2, 10),
        (2, 0) | (3, 0) => (4, 12),
        _ => {
            return Err(npy_err(format!(
                "unsupported .npy format version {major}.{minor}"
            )))
        }
    };
    let Some(len_field) = bytes.get(8..8 + len_bytes) else {
        return Err(npy_err("truncated header"));
    };
    let header_len = len_field
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    let Some(text) = bytes.get(prefix..).and_then(|rest| rest.get(..header_len)) else {
        return Err(npy_err(format!(
            "header claims {header_len} bytes but the file has only {}",
            bytes.len().saturating_sub(prefix)
        )));
    };
    let toks = tokenize_npy_header(text)?;
    let (descr, fortran_order, shape) = parse_npy_dict(&toks)?;
    Ok(NpyHeader {
        descr,
        fortran_order,
        shape,
        data_offset: prefix + header_len,
    })
}

fn shape_str(shape: &[u64]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

/// `.npy` input: float32 (little-endian '<f4'), HWC [H,W,3] or NHWC [N,H,W,3], values in
/// [0,1] (the hub signature's range); returns one Rgb32 per image, NOT resized (the
/// caller runs the model at that size).
///
/// Refused, with what was found: another dtype, Fortran order, another shape, a data
/// length that does not match the shape, values outside [0, 1] or not finite.
pub fn read_npy_images(bytes: &[u8]) -> Result<Vec<Rgb32>, PreprocessError> {
    let header = parse_npy_header(bytes)?;
    if header.descr != "<f4" {
        return Err(npy_err(format!(
            "dtype '{}' is not supported: expected little-endian float32 ('<f4'); \
             convert with arr.astype('<f4')",
            header.descr
        )));
    }
    if header.fortran_order {
        return Err(npy_err(
            "fortran_order=True (column-major) is not supported: save a C-ordered array \
             (np.ascontiguousarray)",
        ));
    }
    let shape = &header.shape;
    let (n, h, w, c) = match shape.as_slice() {
        [h, w, c] => (1, *h, *w, *c),
        [n, h, w, c] => (*n, *h, *w, *c),
        _ => {
            return Err(npy_err(format!(
                "shape {} is not [H, W, 3] or [N, H, W, 3]",
                shape_str(shape)
            )))
        }
    };
    if c != 3 || n == 0 || h == 0 || w == 0 {
        return Err(npy_err(format!(
            "shape {} is not [H, W, 3] or [N, H, W, 3] with N, H, W at least 1",
            shape_str(shape)
        )));
    }
    let data = &bytes[header.data_offset..];
    let expected = [n, h, w, c, 4]
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&b| b == data.len() as u64);
    if expected.is_none() {
        return Err(npy_err(format!(
            "shape {} needs {} bytes of float32 data but the file has {}",
            shape_str(shape),
            [n, h, w, c, 4]
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .map_or("more than 2^64".to_string(), |b| b.to_string()),
            data.len()
        )));
    }
    // Every dimension is now bounded by the file's length, so these fit in usize.
    let (n, h, w) = (n as usize, h as usize, w as usize);
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    let (mut out_of_range, mut nan) = (false, false);
    let mut images = Vec::with_capacity(n);
    for chunk in data.chunks_exact(h * w * 3 * 4) {
        let pixels: Vec<f32> = chunk
            .chunks_exact(4)
            .map(|b| {
                let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                if v.is_nan() {
                    nan = true;
                } else {
                    out_of_range |= !(0.0..=1.0).contains(&v);
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
                v
            })
            .collect();
        images.push(Rgb32 {
            height: h,
            width: w,
            data: pixels,
        });
    }
    if out_of_range || nan {
        return Err(npy_err(format!(
            "values must lie in [0, 1] (found min {lo}, max {hi}{}); scale the array to \
             [0, 1] first",
            if nan { ", and NaN" } else { "" }
        )));
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, ImageFormat, Luma, LumaA, Rgb, Rgba};
    use std::path::{Path, PathBuf};

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

    // ---- against TensorFlow's own outputs ----------------------------------------------

    fn fixture_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess")
    }

    fn read_fixture(name: &str) -> Vec<u8> {
        let path = fixture_dir().join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Number of values whose bits differ, and the largest absolute difference.
    fn compare_bits(got: &Rgb32, want: &Rgb32) -> (usize, f32) {
        assert_eq!((got.height, got.width), (want.height, want.width));
        let mismatches = got
            .data
            .iter()
            .zip(&want.data)
            .filter(|(a, b)| a.to_bits() != b.to_bits());
        let max = got
            .data
            .iter()
            .zip(&want.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        (mismatches.count(), max)
    }

    #[test]
    fn matches_tensorflow_fixtures_bit_for_bit() {
        // cases.tsv and the .npy outputs come from tools/make_preprocess_fixtures.py
        // (tensorflow-cpu 2.21: decode_png / decode_jpeg, convert_image_dtype,
        // central_crop, compat.v1 resize_bilinear), JPEGs included.
        let cases = String::from_utf8(read_fixture("cases.tsv")).unwrap();
        let mut n = 0;
        for line in cases
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let f: Vec<&str> = line.split('\t').collect();
            let crop = match f[1] {
                "none" => Crop::None,
                v => Crop::Central(v.parse().unwrap()),
            };
            let p = Preprocess {
                size: (f[2].parse().unwrap(), f[3].parse().unwrap()),
                crop,
                max_pixels: DEFAULT_MAX_PIXELS,
            };
            let got = preprocess_image(&read_fixture(f[0]), &p).unwrap();
            let want = read_npy_images(&read_fixture(f[4])).unwrap().remove(0);
            let (bad, max) = compare_bits(&got, &want);
            assert_eq!(bad, 0, "{line}: {bad} values differ, max abs diff {max}");
            n += 1;
        }
        assert_eq!(n, 16);
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

    #[test]
    fn u8_scale_is_tf_float32_constant() {
        // Python's 1/255 rounded to float32 is also the float32 division's result.
        assert_eq!(U8_SCALE, 1.0f32 / 255.0);
        assert_eq!(U8_SCALE.to_bits(), 0x3B80_8081);
        assert_eq!(U16_SCALE, 1.0f32 / 65535.0);
    }

    // ---- decoding --------------------------------------------------------------------

    fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn u8v(v: u8) -> f32 {
        f32::from(v) * U8_SCALE
    }

    fn decode(bytes: &[u8]) -> Rgb32 {
        decode_image(bytes, DEFAULT_MAX_PIXELS).unwrap()
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

    fn rgb_test_image() -> DynamicImage {
        DynamicImage::ImageRgb8(ImageBuffer::from_fn(5, 3, |x, y| {
            Rgb([x as u8 * 50, y as u8 * 100, 255 - x as u8])
        }))
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

    /// EXIF APP1 segment with only IFD0's Orientation tag (big-endian TIFF).
    fn exif_app1(orientation: u16) -> Vec<u8> {
        let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec(); // header, IFD0 at offset 8
        tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
        tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_be_bytes()); // count
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0, 0]); // value padding
        tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
        let mut seg = vec![0xFF, 0xE1];
        seg.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
        seg.extend_from_slice(b"Exif\0\0");
        seg.extend_from_slice(&tiff);
        seg
    }

    #[test]
    fn jpeg_exif_orientation_6_rotates_and_swaps_width_and_height() {
        // Stored 16 wide x 8 high: left half red, right half blue. Orientation 6 means
        // "rotate 90 degrees clockwise to display": 8 wide x 16 high, red on top.
        let img = ImageBuffer::from_fn(16, 8, |x, _| {
            if x < 8 {
                Rgb([255u8, 0, 0])
            } else {
                Rgb([0, 0, 255])
            }
        });
        let plain = encode(&DynamicImage::ImageRgb8(img), ImageFormat::Jpeg);
        let mut with_exif = plain[..2].to_vec(); // SOI
        with_exif.extend_from_slice(&exif_app1(6));
        with_exif.extend_from_slice(&plain[2..]);

        let out = decode(&plain);
        assert_eq!((out.height, out.width), (8, 16));
        let out = decode(&with_exif);
        assert_eq!((out.height, out.width), (16, 8));
        let (top, bottom) = (out.pixel(3, 4), out.pixel(12, 4));
        assert!(top[0] > 0.7 && top[2] < 0.3, "top {top:?}");
        assert!(bottom[0] < 0.3 && bottom[2] > 0.7, "bottom {bottom:?}");
    }

    /// A baseline 8x8 JPEG of one flat 4-component block, optionally with an Adobe
    /// APP14 marker (transform 0: CMYK, which Adobe stores inverted). The image crate
    /// writes no CMYK, so this is written by hand: all-ones quantisation, a DC-only
    /// block per component (DC = 8 * (v - 128)), a DC Huffman table giving category c
    /// the 4-bit code c, and an AC table holding only EOB (code "0").
    fn cmyk_jpeg(cmyk: [u8; 4], adobe: bool) -> Vec<u8> {
        fn segment(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
            out.extend_from_slice(&[0xFF, marker]);
            out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
            out.extend_from_slice(body);
        }
        let mut j = vec![0xFF, 0xD8];
        if adobe {
            segment(&mut j, 0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x00");
        }
        let mut dqt = vec![0u8];
        dqt.extend_from_slice(&[1u8; 64]);
        segment(&mut j, 0xDB, &dqt);
        let mut sof = vec![8, 0, 8, 0, 8, 4];
        for id in 1..=4 {
            sof.extend_from_slice(&[id, 0x11, 0]);
        }
        segment(&mut j, 0xC0, &sof);
        let mut dht = vec![0x00, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        dht.extend(0u8..12);
        dht.extend_from_slice(&[0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00]);
        segment(&mut j, 0xC4, &dht);
        segment(&mut j, 0xDA, &[4, 1, 0, 2, 0, 3, 0, 4, 0, 0, 63, 0]);
        let mut bits: Vec<bool> = Vec::new();
        let mut put = |v: u32, n: u32| (0..n).rev().for_each(|i| bits.push(v >> i & 1 == 1));
        for v in cmyk {
            let dc = 8 * (i32::from(v) - 128);
            let cat = 32 - dc.unsigned_abs().leading_zeros();
            put(cat, 4);
            let extra = if dc >= 0 { dc } else { dc + (1 << cat) - 1 };
            put(extra as u32, cat);
            put(0, 1); // EOB
        }
        let pad = (8 - bits.len() % 8) % 8;
        bits.extend(std::iter::repeat_n(true, pad)); // pad the last byte with 1s
        for byte in bits.chunks(8) {
            let b = byte.iter().fold(0u8, |acc, &bit| acc << 1 | u8::from(bit));
            j.push(b);
            if b == 0xFF {
                j.push(0);
            }
        }
        j.extend_from_slice(&[0xFF, 0xD9]);
        j
    }

    #[test]
    fn cmyk_jpeg_becomes_rgb_by_tensorflows_formula() {
        // TensorFlow (jpeg_mem.cc) with the Adobe marker: k * c / 255 in integers.
        // Stored C, M, Y, K = 200, 100, 50, 220 -> 44000/255 = 172, 86, 43.
        // (The image crate's zune-jpeg rounds instead and gives 173 for the first.)
        let out = decode(&cmyk_jpeg([200, 100, 50, 220], true));
        assert_eq!((out.height, out.width), (8, 8));
        assert!(
            out.data
                .chunks(3)
                .all(|p| p == [u8v(172), u8v(86), u8v(43)]),
            "{:?}",
            out.pixel(0, 0)
        );
        // Without it, plain CMYK: (255 - k) * (255 - c) / 255 = 35 * 55 / 255 = 7,
        // 35 * 155 / 255 = 21, 35 * 205 / 255 = 28.
        let out = decode(&cmyk_jpeg([200, 100, 50, 220], false));
        assert!(
            out.data.chunks(3).all(|p| p == [u8v(7), u8v(21), u8v(28)]),
            "{:?}",
            out.pixel(0, 0)
        );
    }

    #[test]
    fn jpeg_errors_are_reported_not_printed_or_panicking() {
        let jpeg = encode(&rgb_test_image(), ImageFormat::Jpeg);
        let err = decode_image(&jpeg[..jpeg.len() / 2], DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(matches!(err, PreprocessError::Jpeg(_)), "{err}");
        assert!(err.to_string().contains("Premature end"), "{err}");
        let err = decode_image(&[0xFF, 0xD8, 0xFF, 0xDB, 0, 1], DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(matches!(err, PreprocessError::Jpeg(_)), "{err}");
    }

    #[test]
    fn jpeg_marker_scan() {
        let jpeg = cmyk_jpeg([1, 2, 3, 4], true);
        assert!(jpeg::scan_markers(&jpeg).adobe);
        assert!(!jpeg::scan_markers(&cmyk_jpeg([1, 2, 3, 4], false)).adobe);
        let mut with_exif = jpeg[..2].to_vec();
        with_exif.extend_from_slice(&exif_app1(3));
        with_exif.extend_from_slice(&jpeg[2..]);
        let m = jpeg::scan_markers(&with_exif);
        assert!(m.adobe);
        assert_eq!(
            m.exif.and_then(Orientation::from_exif_chunk),
            Some(Orientation::Rotate180)
        );
        // Lengths running past the end stop the scan quietly.
        assert_eq!(
            jpeg::scan_markers(&with_exif[..7]),
            jpeg::Markers::default()
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

    #[test]
    fn preprocess_validates_settings() {
        let png = encode(&rgb_test_image(), ImageFormat::Png);
        let mut p = Preprocess::new(4, 4);
        assert_eq!(preprocess_image(&png, &p).unwrap().data.len(), 4 * 4 * 3);
        p.crop = Crop::Central(0.0);
        assert!(matches!(
            preprocess_image(&png, &p),
            Err(PreprocessError::InvalidCrop(_))
        ));
        p.crop = Crop::Central(f32::NAN);
        assert!(matches!(
            preprocess_image(&png, &p),
            Err(PreprocessError::InvalidCrop(_))
        ));
        p.crop = Crop::None;
        p.size = (0, 4);
        assert!(matches!(
            preprocess_image(&png, &p),
            Err(PreprocessError::InvalidSize { .. })
        ));
    }

    /// Truncations and byte flips of valid files of every format: any result but a panic.
    #[test]
    fn mangled_inputs_never_panic() {
        let mut samples = vec![
            encode(&rgb_test_image(), ImageFormat::Png),
            encode(&rgb_test_image(), ImageFormat::Jpeg),
            encode(&rgb_test_image(), ImageFormat::Gif),
            encode(&rgb_test_image(), ImageFormat::Bmp),
            encode(&rgb_test_image(), ImageFormat::Tiff),
            encode(&rgb_test_image(), ImageFormat::WebP),
            cmyk_jpeg([1, 2, 3, 4], true),
        ];
        samples.push(read_fixture("npy_nhwc_2x3x4x3.npy"));
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for s in &samples {
            for cut in (0..s.len()).step_by(3) {
                let _ = decode_image(&s[..cut], 1 << 20);
                let _ = read_npy_images(&s[..cut]);
            }
            for _ in 0..150 {
                let mut m = s.clone();
                for _ in 0..1 + rand() % 4 {
                    let i = (rand() % m.len() as u64) as usize;
                    m[i] = rand() as u8;
                }
                let _ = decode_image(&m, 1 << 20);
                let _ = read_npy_images(&m);
            }
        }
    }

    // ---- .npy ----------------------------------------------------------------------

    #[test]
    fn reads_numpy_written_nhwc() {
        // npy_nhwc_2x3x4x3.npy: np.save of ((n*1000 + y*100 + x*10 + c) % 97) / 96,
        // float32 (tools/make_preprocess_fixtures.py).
        let bytes = read_fixture("npy_nhwc_2x3x4x3.npy");
        assert!(is_npy(&bytes));
        let images = read_npy_images(&bytes).unwrap();
        assert_eq!(images.len(), 2);
        for (n, img) in images.iter().enumerate() {
            assert_eq!((img.height, img.width), (3, 4));
            for y in 0..3 {
                for x in 0..4 {
                    let want =
                        [0, 1, 2].map(|c| ((n * 1000 + y * 100 + x * 10 + c) % 97) as f32 / 96.0);
                    assert_eq!(img.pixel(y, x), want);
                }
            }
        }
    }

    fn npy_error(bytes: &[u8]) -> String {
        read_npy_images(bytes).unwrap_err().to_string()
    }

    #[test]
    fn refuses_other_numpy_layouts_naming_them() {
        assert!(npy_error(&read_fixture("npy_f8.npy")).contains("dtype '<f8'"));
        assert!(npy_error(&read_fixture("npy_be.npy")).contains("dtype '>f4'"));
        assert!(npy_error(&read_fixture("npy_fortran.npy")).contains("fortran_order=True"));
        assert!(npy_error(&read_fixture("npy_chw.npy")).contains("shape [3, 3, 4]"));
    }

    /// An .npy file from a header dict and float32 data (format 1.0).
    fn npy(dict: &str, data: &[f32]) -> Vec<u8> {
        let mut header = dict.as_bytes().to_vec();
        let pad = (64 - (10 + header.len() + 1) % 64) % 64; // numpy aligns data to 64
        header.extend(std::iter::repeat_n(b' ', pad));
        header.push(b'\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(&header);
        data.iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        out
    }

    #[test]
    fn npy_header_variants_and_errors() {
        let hwc = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }";
        let data = [0.0, 0.5, 1.0, 0.25, 0.75, 0.125];
        let images = read_npy_images(&npy(hwc, &data)).unwrap();
        assert_eq!((images.len(), images[0].height, images[0].width), (1, 1, 2));
        assert_eq!(images[0].data, data);
        // Key order, double quotes, Python 2 longs and a list shape are all numpy's.
        let odd = "{\"shape\": [1L, 2L, 3L], \"fortran_order\": False, \"descr\": \"<f4\"}";
        assert_eq!(read_npy_images(&npy(odd, &data)).unwrap()[0].data, data);
        // Format 2.0: 4-byte header length.
        let v1 = npy(hwc, &data);
        let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
        v2.extend_from_slice(&u32::from(u16::from_le_bytes([v1[8], v1[9]])).to_le_bytes());
        v2.extend_from_slice(&v1[10..]);
        assert_eq!(read_npy_images(&v2).unwrap()[0].data, data);

        assert!(npy_error(&npy(hwc, &data[..5]))
            .contains("needs 24 bytes of float32 data but the file has 20"));
        let out_of_range = [0.0, 2.0, -1.0, 0.5, 0.5, 0.5];
        assert!(npy_error(&npy(hwc, &out_of_range)).contains("found min -1, max 2"));
        let nan = [0.0, f32::NAN, 0.5, 0.5, 0.5, 0.5];
        assert!(npy_error(&npy(hwc, &nan)).contains("NaN"));
        let huge = "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296, 3), }";
        assert!(npy_error(&npy(huge, &data)).contains("more than 2^64"));
        let too_big =
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }";
        assert!(npy_error(&npy(too_big, &data)).contains("too large"));
        let nested = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': {}}}",
            "(".repeat(100_000)
        );
        assert!(npy_error(&npy(&nested, &data)).contains("malformed header"));
        let record = "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1, 2, 3), }";
        assert!(npy_error(&npy(record, &data)).contains("structured"));
        let extra = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), 'x': 1}";
        assert!(npy_error(&npy(extra, &data)).contains("unexpected header key 'x'"));
        let empty = "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 2, 2, 3), }";
        assert!(npy_error(&npy(empty, &[])).contains("at least 1"));
        // Header length pointing past the end of the file.
        let mut lying = npy(hwc, &data);
        lying[8..10].copy_from_slice(&60_000u16.to_le_bytes());
        assert!(npy_error(&lying).contains("header claims 60000 bytes"));
        assert!(npy_error(b"\x93NUMPY\x09\x00").contains("version 9.0"));
        assert!(!is_npy(b"\x93NUMP"));
    }
}
