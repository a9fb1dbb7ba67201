//! `.npy` tensors as inputs: images already preprocessed by the caller, run at their own size.
//!
//! Not read with npyz (which writes this program's `.npy` / `.npz` outputs): npyz parses the
//! header with py_literal's recursive grammar, where a header of nested brackets can exhaust the
//! stack, and reads any dtype into any element type. This reader takes what the model takes
//! (little-endian float32, C order, [H, W, 3] or [N, H, W, 3], values in [0, 1]), tokenises the
//! header without recursion, checks the shape against the file's length before allocating, and
//! names what it found when it refuses. `fuzz/fuzz_targets/npy.rs` fuzzes it.

use crate::preprocess::{PreprocessError, Rgb32};

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// True when bytes start with the npy magic "\x93NUMPY".
pub(crate) fn is_npy(bytes: &[u8]) -> bool {
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
    use crate::preprocess::testutil::read_fixture;

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
