//! Images to model input: TF-Slim's evaluation preprocessing.
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
//!
//! `jpeg.rs` holds the one FFI (libjpeg) and all its unsafe code; `decode.rs` the other formats,
//! EXIF orientation and the conversion to floats; `resize.rs` the crop and the resize. `.npy`
//! tensors are an input format, read by [`crate::inputs::npy`].

mod decode;
mod jpeg;
mod pixels;
mod resize;
#[cfg(test)]
pub(crate) mod testutil;

// Where src/pipeline.rs still looks for the .npy reader.
pub(crate) use crate::inputs::npy::{is_npy, read_npy_images};
pub(crate) use decode::decode_image;
pub(crate) use resize::{central_crop_window, resize_bilinear_tf1};

use decode::decode_pixels;
use image::ImageError;
use pixels::{u16_value, u8_value, Pixels};
use resize::{resize_window, Window};

/// TF-Slim's evaluation crop: the central 87.5% of each axis.
pub(crate) const DEFAULT_CENTRAL_FRACTION: f32 = 0.875;

/// Default `--max-pixels`: where Pillow refuses an image as a decompression bomb
/// (twice its warning limit of 89,478,485 pixels).
pub(crate) const DEFAULT_MAX_PIXELS: u64 = 178_956_970;

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
    pub(crate) fn zeros(height: usize, width: usize) -> Self {
        Rgb32 {
            height,
            width,
            data: vec![0.0; height * width * 3],
        }
    }

    /// The three channels of pixel (`y`, `x`).
    pub(crate) fn pixel(&self, y: usize, x: usize) -> [f32; 3] {
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
    pub(crate) fn validate(&self) -> Result<(), PreprocessError> {
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

/// Full pipeline for one file's bytes: decode, crop, resize -> HWC [0,1].
/// (The model itself maps x to x*2-1.)
pub fn preprocess_image(bytes: &[u8], p: &Preprocess) -> Result<Rgb32, PreprocessError> {
    p.validate()?;
    let pixels = decode_pixels(bytes, p.max_pixels)?;
    let (height, width) = pixels.dims();
    // The central crop is only a window of the decoded image, not a copy.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::npy::read_npy_images;
    use image::ImageFormat;

    use super::testutil::{cmyk_jpeg, compare_bits, encode, read_fixture, rgb_test_image};

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
}
