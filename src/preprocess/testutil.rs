//! Helpers shared by the preprocessing tests (and the .npy reader's).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb};

use super::{decode_image, Rgb32, DEFAULT_MAX_PIXELS, U8_SCALE};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess")
}

pub(crate) fn read_fixture(name: &str) -> Vec<u8> {
    let path = fixture_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Number of values whose bits differ, and the largest absolute difference.
pub(crate) fn compare_bits(got: &Rgb32, want: &Rgb32) -> (usize, f32) {
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

pub(crate) fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

pub(crate) fn u8v(v: u8) -> f32 {
    f32::from(v) * U8_SCALE
}

pub(crate) fn decode(bytes: &[u8]) -> Rgb32 {
    decode_image(bytes, DEFAULT_MAX_PIXELS).unwrap()
}

pub(crate) fn rgb_test_image() -> DynamicImage {
    DynamicImage::ImageRgb8(ImageBuffer::from_fn(5, 3, |x, y| {
        Rgb([x as u8 * 50, y as u8 * 100, 255 - x as u8])
    }))
}

/// A baseline 8x8 JPEG of one flat 4-component block, optionally with an Adobe
/// APP14 marker (transform 0: CMYK, which Adobe stores inverted). The image crate
/// writes no CMYK, so this is written by hand: all-ones quantisation, a DC-only
/// block per component (DC = 8 * (v - 128)), a DC Huffman table giving category c
/// the 4-bit code c, and an AC table holding only EOB (code "0").
pub(crate) fn cmyk_jpeg(cmyk: [u8; 4], adobe: bool) -> Vec<u8> {
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
