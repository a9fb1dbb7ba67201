//! JPEG as `tf.io.decode_jpeg(contents, channels=3)` decodes it: libjpeg-turbo with
//! the integer-fast IDCT (TF's default `dct_method`), fancy upsampling, and CMYK/YCCK
//! converted to RGB by TF's formula (tensorflow/core/lib/jpeg/jpeg_mem.cc). A truncated
//! file is an error, as in TF (which does not try to recover truncated JPEGs by default).

use std::ffi::CStr;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use image::metadata::Orientation;
use image::{DynamicImage, ImageBuffer};
use mozjpeg_sys::*;

use super::pixels::{check_pixels, pixels_of, Pixels};
use super::PreprocessError;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::testutil::{cmyk_jpeg, decode, encode, rgb_test_image, u8v};
    use crate::preprocess::{decode_image, PreprocessError, DEFAULT_MAX_PIXELS};
    use image::{ImageFormat, Rgb};

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
        assert!(scan_markers(&jpeg).adobe);
        assert!(!scan_markers(&cmyk_jpeg([1, 2, 3, 4], false)).adobe);
        let mut with_exif = jpeg[..2].to_vec();
        with_exif.extend_from_slice(&exif_app1(3));
        with_exif.extend_from_slice(&jpeg[2..]);
        let m = scan_markers(&with_exif);
        assert!(m.adobe);
        assert_eq!(
            m.exif.and_then(Orientation::from_exif_chunk),
            Some(Orientation::Rotate180)
        );
        // Lengths running past the end stop the scan quietly.
        assert_eq!(scan_markers(&with_exif[..7]), Markers::default());
    }
}
