use super::*;
use crate::export::tflite_writer::{Buffer, OpcodeStyle, Operator, Options, Tensor, TfliteModel};
use std::path::{Path, PathBuf};

// -----------------------------------------------------------------------------------------
// Real files (skipped with a note when absent).

fn shared(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata")
        .join(rel);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("note: {} is absent; skipping this check", p.display());
        None
    }
}

fn release() -> Option<Vec<u8>> {
    shared("weights/mobilenet_v1_0.25_128.tflite").map(|p| std::fs::read(p).unwrap())
}

/// A `tests/fixtures/*.tgz` holding a `.tflite` (TF 2.21 TFLiteConverter output, see
/// tests/fixtures/README.md), unpacked into a temporary directory.
struct Fixture {
    name: String,
    tflite: Vec<u8>,
    /// `<dir>/<stem>.ckpt` when the archive also holds the checkpoint it was converted from.
    ckpt: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

fn converter_fixtures() -> Vec<Fixture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut tgzs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    tgzs.retain(|p| p.extension().is_some_and(|e| e == "tgz"));
    tgzs.sort();
    let mut out = Vec::new();
    for tgz in tgzs {
        let tmp = tempfile::tempdir().unwrap();
        let f = std::fs::File::open(&tgz).unwrap();
        tar::Archive::new(flate2::read::GzDecoder::new(f))
            .unpack(tmp.path())
            .unwrap();
        let tflite = std::fs::read_dir(tmp.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "tflite"));
        let Some(tflite) = tflite else { continue };
        let ckpt = tflite.with_extension("ckpt");
        let has_ckpt = ckpt.with_extension("ckpt.index").is_file();
        out.push(Fixture {
            name: tgz.file_name().unwrap().to_string_lossy().into_owned(),
            tflite: std::fs::read(&tflite).unwrap(),
            ckpt: has_ckpt.then_some(ckpt),
            _dir: tmp,
        });
    }
    if out.is_empty() {
        eprintln!("note: no tests/fixtures/*.tgz with a .tflite; skipping this check");
    }
    out
}

/// Canonical layer scopes in network order.
fn scopes() -> Vec<String> {
    let mut v = vec!["MobilenetV1/Conv2d_0".to_string()];
    for i in 1..=13 {
        v.push(format!("MobilenetV1/Conv2d_{i}_depthwise"));
        v.push(format!("MobilenetV1/Conv2d_{i}_pointwise"));
    }
    v.push("MobilenetV1/Logits/Conv2d_1c_1x1".to_string());
    v
}

const POINTWISE: [usize; 13] = [
    64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024,
];

/// TF-layout shapes of a model with `depth(d) = max(d * quarters / 4, 8)`, written out from the
/// architecture table independently of `layers()`.
fn expected_shapes(quarters: usize) -> BTreeMap<String, Vec<usize>> {
    let d = |c: usize| (c * quarters / 4).max(8);
    let scopes = scopes();
    let mut m = BTreeMap::new();
    m.insert(format!("{}/weights", scopes[0]), vec![3, 3, 3, d(32)]);
    m.insert(format!("{}/biases", scopes[0]), vec![d(32)]);
    let mut c = d(32);
    for (i, w) in POINTWISE.iter().enumerate() {
        m.insert(
            format!("{}/depthwise_weights", scopes[2 * i + 1]),
            vec![3, 3, c, 1],
        );
        m.insert(format!("{}/biases", scopes[2 * i + 1]), vec![c]);
        m.insert(
            format!("{}/weights", scopes[2 * i + 2]),
            vec![1, 1, c, d(*w)],
        );
        m.insert(format!("{}/biases", scopes[2 * i + 2]), vec![d(*w)]);
        c = d(*w);
    }
    m.insert(format!("{}/weights", scopes[27]), vec![1, 1, c, 1001]);
    m.insert(format!("{}/biases", scopes[27]), vec![1001]);
    m
}

fn assert_shapes(got: &BTreeMap<String, RawTensor>, quarters: usize) {
    let want = expected_shapes(quarters);
    assert_eq!(got.len(), 56, "28 layers x (weights, biases)");
    for (name, shape) in &want {
        let t = got.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(&t.shape, shape, "{name}");
        assert_eq!(t.data.len(), shape.iter().product::<usize>(), "{name}");
        assert!(t.data.iter().all(|v| v.is_finite()), "{name}");
    }
}

#[test]
fn identifier() {
    assert!(!is_tflite(b""));
    assert!(!is_tflite(b"\x1c\0\0\0TFL"));
    assert!(is_tflite(b"\x1c\0\0\0TFL3"));
    assert!(!is_tflite(b"\x1c\0\0\0TFL2\0\0\0\0"));
    if let Some(b) = release() {
        assert!(is_tflite(&b));
    }
}

#[test]
fn release_file_maps_to_28_layers() {
    let Some(b) = release() else { return };
    let m = read_tflite(&b).unwrap();
    assert_shapes(&m, 1);
    assert_eq!(m["MobilenetV1/Conv2d_0/weights"].shape, [3, 3, 3, 8]);
    assert_eq!(
        m["MobilenetV1/Conv2d_13_pointwise/weights"].shape,
        [1, 1, 256, 256]
    );
    assert_eq!(
        m["MobilenetV1/Logits/Conv2d_1c_1x1/weights"].shape,
        [1, 1, 256, 1001]
    );
}

/// Expected numbers printed by tools/tflite_spot_values.py (TensorFlow Lite's interpreter,
/// `get_tensor` of the n-th conv's filter/bias, an element in TFLite layout, and the TF-layout
/// index it must land at).
#[test]
fn release_file_spot_values() {
    let Some(b) = release() else { return };
    let m = read_tflite(&b).unwrap();
    let at = |name: &str, idx: [usize; 4]| {
        let t = &m[&format!("MobilenetV1/{name}")];
        let s = &t.shape;
        t.data[((idx[0] * s[1] + idx[1]) * s[2] + idx[2]) * s[3] + idx[3]]
    };
    // tflite [8,3,3,3][5,1,2,0] and [7,2,0,2]
    assert_eq!(at("Conv2d_0/weights", [1, 2, 0, 5]), 0.021703053);
    assert_eq!(at("Conv2d_0/weights", [2, 0, 2, 7]), -0.028327899);
    // tflite [1,3,3,8][0,2,1,6]
    assert_eq!(
        at("Conv2d_1_depthwise/depthwise_weights", [2, 1, 6, 0]),
        -0.09431293
    );
    // tflite [256,1,1,256][200,0,0,17]
    assert_eq!(
        at("Conv2d_13_pointwise/weights", [0, 0, 17, 200]),
        0.09207144
    );
    // tflite [1001,1,1,256][505,0,0,100]
    assert_eq!(
        at("Logits/Conv2d_1c_1x1/weights", [0, 0, 100, 505]),
        0.008498364
    );
    assert_eq!(m["MobilenetV1/Conv2d_0/biases"].data[3], 4.5639596);
    assert_eq!(
        m["MobilenetV1/Logits/Conv2d_1c_1x1/biases"].data[505],
        0.4012664
    );
}

#[test]
fn converter_fixtures_map() {
    for fx in converter_fixtures() {
        let name = &fx.name;
        let m = read_tflite(&fx.tflite).unwrap_or_else(|e| panic!("{name}: {e}"));
        let c0 = m["MobilenetV1/Conv2d_0/weights"].shape[3];
        let quarters = c0 / 8;
        let label = ["0.25", "0.5", "0.75", "1.0"][quarters - 1];
        // mobilenet_v1_{M}_{R}.tgz: the widths must be those of M.
        if name.starts_with("mobilenet_v1_") {
            assert!(
                name.contains(&format!("_{label}_")),
                "{name}: Conv2d_0 has {c0} channels"
            );
        }
        assert_shapes(&m, quarters);
    }
}

/// The fixture archives also hold the checkpoint each .tflite was converted from: every
/// tensor read from the .tflite must be that checkpoint's layer with its BatchNorm folded
/// (`s = gamma / sqrt(moving_variance + 0.001)` per output channel, `weights * s`,
/// `biases = beta - moving_mean * s`), and the logits exactly the checkpoint's. This checks
/// the mapping and the transposes on the converter's output against an independent source.
#[test]
fn converter_fixtures_match_their_checkpoints() {
    for fx in converter_fixtures() {
        let Some(prefix) = &fx.ckpt else { continue };
        let name = &fx.name;
        let ckpt = crate::weights::checkpoint::read_checkpoint(prefix)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let m = read_tflite(&fx.tflite).unwrap();
        for (key, got) in &m {
            let (scope, leaf) = key.rsplit_once('/').unwrap();
            if scope.ends_with("/Logits/Conv2d_1c_1x1") {
                // No BatchNorm: copied as is.
                assert_eq!(got, &ckpt[key], "{name}: {key}");
                continue;
            }
            let want: Vec<f64> = {
                let bn = |x: &str| &ckpt[&format!("{scope}/BatchNorm/{x}")].data;
                let (gamma, beta, mean, var) = (
                    bn("gamma"),
                    bn("beta"),
                    bn("moving_mean"),
                    bn("moving_variance"),
                );
                let s: Vec<f64> = gamma
                    .iter()
                    .zip(var)
                    .map(|(&g, &v)| g as f64 / (v as f64 + 0.001).sqrt())
                    .collect();
                if leaf == "biases" {
                    (0..s.len())
                        .map(|c| beta[c] as f64 - mean[c] as f64 * s[c])
                        .collect()
                } else {
                    let w = &ckpt[key];
                    assert_eq!(w.shape, got.shape, "{name}: {key}");
                    // HWIO [kh,kw,in,out] and depthwise [kh,kw,C,1]: element i
                    // belongs to channel i % channels.
                    let c = s.len();
                    w.data
                        .iter()
                        .enumerate()
                        .map(|(i, &x)| x as f64 * s[i % c])
                        .collect()
                }
            };
            assert_eq!(got.data.len(), want.len(), "{name}: {key}");
            let scale = want.iter().fold(0f64, |a, &x| a.max(x.abs())).max(1e-6);
            for (i, (&g, &w)) in got.data.iter().zip(&want).enumerate() {
                assert!(
                    (g as f64 - w).abs() <= 1e-5 * scale,
                    "{name}: {key}[{i}] = {g}, folded checkpoint gives {w}"
                );
            }
        }
    }
}

/// Byte ranges holding tensor data (everything else is flatbuffer structure or names).
fn data_ranges(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let model = Model::parse(Fb(bytes)).unwrap();
    let mut v = Vec::new();
    for i in 0..model.buffers.len() {
        let b = model.buffers.table(i, "Buffer").unwrap();
        if let Some(d) = b.vector(BUFFER_DATA, 1, "data").unwrap() {
            v.push(d.start..d.start + d.len);
        }
    }
    v
}

/// Byte ranges holding tensor names (unused by the reader).
fn name_ranges(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let model = Model::parse(Fb(bytes)).unwrap();
    let mut v = Vec::new();
    for i in 0..model.tensors.len() {
        let t = model.tensors.table(i, "Tensor").unwrap();
        if let Some(d) = t.vector(TENSOR_NAME, 1, "name").unwrap() {
            v.push(d.start..d.start + d.len);
        }
    }
    v
}

#[test]
fn truncated_release_file_is_an_error() {
    let Some(b) = release() else { return };
    let ranges = data_ranges(&b);
    let last_data = ranges.iter().map(|r| r.end).max().unwrap();
    let mut lens: Vec<usize> = (0..64).collect();
    lens.extend((64..b.len()).step_by(4099));
    lens.extend(last_data - 8..last_data);
    for n in lens {
        let r = read_tflite(&b[..n]);
        assert!(r.is_err(), "truncated to {n} bytes: loaded");
    }
}

#[test]
fn flipped_bytes_never_panic() {
    let Some(b) = release() else { return };
    let data = data_ranges(&b);
    let names = name_ranges(&b);
    let inside = |i: usize, rs: &[std::ops::Range<usize>]| rs.iter().any(|r| r.contains(&i));
    // Every 3rd byte of the flatbuffer structure (tables, vtables, vectors: about 8.4 kB),
    // every 16th of the tensor names and a few in the tensor data (those load, with changed
    // values). Each read of a good file copies 1.9 MB, so this is a sample, not a fuzzer.
    let mut positions: Vec<usize> = (0..b.len())
        .filter(|&i| !inside(i, &data) && !inside(i, &names))
        .step_by(3)
        .collect();
    let structure = positions.len();
    positions.extend((0..b.len()).filter(|&i| inside(i, &names)).step_by(16));
    positions.extend((0..b.len()).step_by(50021));
    let mut errors = 0;
    let mut bytes = b.clone();
    for (n, &i) in positions.iter().enumerate() {
        let flip = [0xff, 0x01, 0x80, 0x10, 0x04][n % 5];
        bytes[i] ^= flip;
        if read_tflite(&bytes).is_err() {
            errors += 1;
        }
        bytes[i] ^= flip;
    }
    eprintln!(
        "{} flips ({structure} outside tensor data): {errors} errors",
        positions.len()
    );
    assert!(
        errors > structure / 4,
        "only {errors} of {} flips were noticed",
        positions.len()
    );
}

/// Swaps operators `a` and `b` in place in a real file by rewriting the two offsets of the
/// SubGraph.operators vector.
fn swap_ops(bytes: &mut [u8], a: usize, b: usize) {
    let (pa, pb, ta, tb) = {
        let model = Model::parse(Fb(bytes)).unwrap();
        let ops = model.operators;
        let (pa, pb) = (ops.start + 4 * a, ops.start + 4 * b);
        let ta = model.operators.table(a, "op").unwrap().pos;
        let tb = model.operators.table(b, "op").unwrap().pos;
        (pa, pb, ta, tb)
    };
    bytes[pa..pa + 4].copy_from_slice(&((tb - pa) as u32).to_le_bytes());
    bytes[pb..pb + 4].copy_from_slice(&((ta - pb) as u32).to_le_bytes());
}

#[test]
fn release_file_with_reordered_ops_is_an_error() {
    let Some(b) = release() else { return };
    let mut swapped = b.clone();
    swap_ops(&mut swapped, 1, 2);
    let e = read_tflite(&swapped).unwrap_err().to_string();
    assert!(
        e.contains("operator #1 (CONV_2D for MobilenetV1/Conv2d_1_depthwise)"),
        "{e}"
    );
    assert!(e.contains("expected DEPTHWISE_CONV_2D"), "{e}");
    // Same kinds and sizes, different place: caught by the data flow.
    let mut swapped = b.clone();
    swap_ops(&mut swapped, 16, 18);
    let e = read_tflite(&swapped).unwrap_err().to_string();
    assert!(
        e.contains("operator #16") && e.contains("reads tensor"),
        "{e}"
    );
    // Swapping back restores it.
    swap_ops(&mut swapped, 16, 18);
    assert_eq!(read_tflite(&swapped).unwrap(), read_tflite(&b).unwrap());
}

#[test]
fn malformed_headers() {
    for bad in [&b""[..], b"TFL3", b"\x1c\0\0\0TFL"] {
        assert!(matches!(read_tflite(bad), Err(TfliteError::NotTflite(_))));
    }
    let e = read_tflite(b"\x1c\0\0\0TFL2\0\0\0\0").unwrap_err();
    assert!(e.to_string().contains("\"TFL2\""), "{e}");
    let e = read_tflite(b"\xff\xff\xff\x7fTFL3").unwrap_err();
    assert!(matches!(e, TfliteError::Malformed { .. }), "{e}");
    let e = read_tflite(b"\x08\0\0\0TFL3\x10\0\0\0").unwrap_err();
    assert!(matches!(e, TfliteError::Malformed { .. }), "{e}");
}

/// Random bytes behind a valid header, and random small edits of a small synthetic model.
#[test]
fn random_inputs_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let n = 8 + (rnd() % 600) as usize;
        let mut b: Vec<u8> = (0..n).map(|_| rnd() as u8).collect();
        b[0..4].copy_from_slice(&((rnd() % n as u64) as u32).to_le_bytes());
        b[4..8].copy_from_slice(b"TFL3");
        let _ = read_tflite(&b);
    }
    // Structure-heavy: a model whose tensors are all tiny, edited at random places.
    let mut s = Synth::mobilenet(1);
    for buf in &mut s.buffers {
        buf.0.truncate(8);
    }
    let base = s.build();
    for _ in 0..3000 {
        let mut b = base.clone();
        for _ in 0..1 + rnd() % 4 {
            let i = (rnd() % b.len() as u64) as usize;
            b[i] = rnd() as u8;
        }
        let _ = read_tflite(&b);
    }
}

// -----------------------------------------------------------------------------------------
// Synthetic models, described as plain data and encoded by the exporter's writer
// (`export::tflite_writer`, the flatbuffers crate). Filter element `idx` (flat, TFLite layout) of
// layer `L` holds `L * 2^18 + idx` and bias `c` holds `-(L * 2^18 + c) - 1`, all exact in f32, so
// the transposition can be checked element by element.

#[derive(Clone)]
struct ConvOpts {
    padding: u8,
    stride: i32,
    act: u8,
    dilation: i32,
    depth_mult: Option<i32>,
}

#[derive(Clone)]
struct SOp {
    code: i32,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
    conv: Option<ConvOpts>,
    /// Written as the opcode index instead of the real one.
    raw_opcode: Option<u32>,
}

#[derive(Clone)]
struct STensor {
    shape: Vec<i32>,
    dtype: u8,
    buffer: u32,
}

#[derive(Clone)]
struct Synth {
    version: u32,
    /// 0: only deprecated_builtin_code (TOCO), 1: both codes (TF 2.x), 2: only builtin_code.
    opcode_style: u8,
    tensors: Vec<STensor>,
    /// (data, external offset)
    buffers: Vec<(Vec<u8>, u64)>,
    ops: Vec<SOp>,
}

const L_SCALE: f32 = 262144.0;

impl Synth {
    fn act(&mut self, shape: Vec<i32>) -> i32 {
        self.tensors.push(STensor {
            shape,
            dtype: 0,
            buffer: 0,
        });
        self.tensors.len() as i32 - 1
    }

    fn constant(&mut self, shape: Vec<i32>, values: &[f32]) -> i32 {
        self.buffers
            .push((values.iter().flat_map(|v| v.to_le_bytes()).collect(), 0));
        let buffer = self.buffers.len() as u32 - 1;
        self.tensors.push(STensor {
            shape,
            dtype: 0,
            buffer,
        });
        self.tensors.len() as i32 - 1
    }

    fn op(&mut self, code: i32, inputs: Vec<i32>, outputs: Vec<i32>, conv: Option<ConvOpts>) {
        self.ops.push(SOp {
            code,
            inputs,
            outputs,
            conv,
            raw_opcode: None,
        });
    }

    /// A MobileNet V1 at multiplier quarters/4 laid out like TOCO's: CONV_2D, 13 x
    /// (DEPTHWISE_CONV_2D, CONV_2D), AVERAGE_POOL_2D, CONV_2D, RESHAPE, SOFTMAX.
    fn mobilenet(quarters: usize) -> Synth {
        let d = |c: usize| (c * quarters / 4).max(8);
        let mut widths = vec![d(32)];
        widths.extend(POINTWISE.iter().map(|&w| d(w)));
        Synth::with_widths(&widths)
    }

    fn with_widths(widths: &[usize]) -> Synth {
        let mut s = Synth {
            version: 3,
            opcode_style: 0,
            tensors: vec![],
            buffers: vec![(vec![], 0)],
            ops: vec![],
        };
        let mut size = 128i32;
        let mut x = s.act(vec![1, size, size, 3]);
        let dw_strides = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1];
        // (code, kernel, stride, in, out)
        let mut layers = vec![(CONV_2D, 3, 2, 3, widths[0])];
        for i in 0..13 {
            layers.push((DEPTHWISE_CONV_2D, 3, dw_strides[i], widths[i], widths[i]));
            layers.push((CONV_2D, 1, 1, widths[i], widths[i + 1]));
        }
        layers.push((CONV_2D, 1, 1, widths[13], 1001));
        for (l, &(code, k, stride, cin, cout)) in layers.iter().enumerate() {
            if l == 27 {
                let p = s.act(vec![1, 1, 1, cin as i32]);
                s.op(AVERAGE_POOL_2D, vec![x], vec![p], None);
                x = p;
                size = 1;
            }
            let base = l as f32 * L_SCALE;
            let shape = if code == CONV_2D {
                vec![cout, k, k, cin]
            } else {
                vec![1, k, k, cout]
            };
            let n: usize = shape.iter().product();
            let filter: Vec<f32> = (0..n).map(|i| base + i as f32).collect();
            let bias: Vec<f32> = (0..cout).map(|c| -(base + c as f32) - 1.0).collect();
            let f = s.constant(shape.iter().map(|&v| v as i32).collect(), &filter);
            let b = s.constant(vec![cout as i32], &bias);
            size = (size + stride - 1) / stride;
            let y = s.act(vec![1, size, size, cout as i32]);
            let opts = ConvOpts {
                padding: 0,
                stride,
                act: if l == 27 { 0 } else { 3 },
                dilation: 1,
                depth_mult: (code == DEPTHWISE_CONV_2D).then_some(1),
            };
            s.op(code, vec![x, f, b], vec![y], Some(opts));
            x = y;
        }
        let r = s.act(vec![1, 1001]);
        s.op(RESHAPE, vec![x], vec![r], None);
        let p = s.act(vec![1, 1001]);
        s.op(SOFTMAX, vec![r], vec![p], None);
        s
    }

    /// (op index, tensor id) of layer `l`'s filter.
    fn filter(&self, l: usize) -> (usize, usize) {
        let k = if l == 27 { 28 } else { l };
        (k, self.ops[k].inputs[1] as usize)
    }

    fn build(&self) -> Vec<u8> {
        let mut m = TfliteModel::new();
        m.version = self.version;
        m.opcode_style = match self.opcode_style {
            0 => OpcodeStyle::DeprecatedOnly,
            1 => OpcodeStyle::Both,
            _ => OpcodeStyle::BuiltinOnly,
        };
        for op in &self.ops {
            m.opcode(op.code);
        }
        m.buffers = self
            .buffers
            .iter()
            .map(|(data, offset)| match offset {
                0 => Buffer::Data(data.clone()),
                &offset => Buffer::External { offset, size: 64 },
            })
            .collect();
        m.tensors = self
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| Tensor {
                name: format!("tensor_{i}"),
                shape: t.shape.clone(),
                shape_signature: None,
                dtype: t.dtype,
                buffer: t.buffer,
                quantization: None,
            })
            .collect();
        m.operators = self
            .ops
            .iter()
            .map(|o| Operator {
                opcode_index: o.raw_opcode.unwrap_or_else(|| m.opcode_index_of(o.code)),
                inputs: o.inputs.clone(),
                outputs: o.outputs.clone(),
                options: match &o.conv {
                    None => Options::None,
                    Some(c) if o.code == DEPTHWISE_CONV_2D => Options::DepthwiseConv2D {
                        padding: c.padding,
                        stride: (c.stride, c.stride),
                        depth_multiplier: c.depth_mult,
                        activation: c.act,
                        dilation: (c.dilation, c.dilation),
                    },
                    Some(c) => Options::Conv2D {
                        padding: c.padding,
                        stride: (c.stride, c.stride),
                        activation: c.act,
                        dilation: (c.dilation, c.dilation),
                    },
                },
            })
            .collect();
        m.inputs = vec![0];
        m.outputs = vec![self.ops.last().map_or(0, |o| o.outputs[0])];
        m.to_bytes()
    }

    fn err(&self) -> String {
        match read_tflite(&self.build()) {
            Ok(_) => panic!("loaded"),
            Err(e) => e.to_string(),
        }
    }
}

/// Every element of every tensor is where the TF layout wants it.
fn assert_exact(m: &BTreeMap<String, RawTensor>, no_bias: bool) {
    for (l, scope) in scopes().iter().enumerate() {
        let base = l as f32 * L_SCALE;
        let dw = scope.ends_with("_depthwise");
        let w = &m[&format!(
            "{scope}/{}",
            if dw { "depthwise_weights" } else { "weights" }
        )];
        let [kh, kw, cin, cout] = [w.shape[0], w.shape[1], w.shape[2], w.shape[3]];
        for h in 0..kh {
            for x in 0..kw {
                for i in 0..cin {
                    for o in 0..cout {
                        let tfl = if dw {
                            (h * kw + x) * cin + i
                        } else {
                            ((o * kh + h) * kw + x) * cin + i
                        };
                        let got = w.data[((h * kw + x) * cin + i) * cout + o];
                        assert_eq!(got, base + tfl as f32, "{scope} [{h},{x},{i},{o}]");
                    }
                }
            }
        }
        let b = &m[&format!("{scope}/biases")];
        for (c, &v) in b.data.iter().enumerate() {
            let want = if no_bias {
                0.0
            } else {
                -(base + c as f32) - 1.0
            };
            assert_eq!(v, want, "{scope} bias {c}");
        }
    }
}

#[test]
fn synthetic_models_of_every_width_map_exactly() {
    for quarters in 1..=4 {
        let s = Synth::mobilenet(quarters);
        let m = read_tflite(&s.build()).unwrap_or_else(|e| panic!("x{quarters}/4: {e}"));
        assert_shapes(&m, quarters);
        assert_exact(&m, false);
    }
}

#[test]
fn any_class_count_and_feature_vector_models_load() {
    // A fine-tuned head: 4 logits instead of 1001.
    let mut s = synth();
    let (k, f) = s.filter(27);
    let c = s.tensors[f].shape[3];
    let w = s.constant(vec![4, 1, 1, c], &vec![0.5; 4 * c as usize]);
    let b = s.constant(vec![4], &[0.0, 1.0, 2.0, 3.0]);
    s.ops[k].inputs[1] = w;
    s.ops[k].inputs[2] = b;
    let m = read_tflite(&s.build()).unwrap();
    assert_eq!(
        m["MobilenetV1/Logits/Conv2d_1c_1x1/weights"].shape,
        [1, 1, c as usize, 4]
    );
    // Ending after the pooling: the body only, 27 layers of weights and biases.
    let mut s = synth();
    s.ops.truncate(28);
    let m = read_tflite(&s.build()).unwrap();
    assert_eq!(m.len(), 54);
    assert!(!m.keys().any(|k| k.contains("Logits")));
}

#[test]
fn synthetic_producer_variants_load() {
    // TF 2.x opcodes (both fields) and builtin_code only.
    for style in [1, 2] {
        let mut s = Synth::mobilenet(1);
        s.opcode_style = style;
        assert_exact(&read_tflite(&s.build()).unwrap(), false);
    }
    // TF 2.x tail: MEAN(axes) instead of AVERAGE_POOL_2D; no depth_multiplier field.
    let mut s = Synth::mobilenet(1);
    let axes = s.constant(vec![2], &[0.0, 0.0]);
    s.ops[27].code = MEAN;
    s.ops[27].inputs.push(axes);
    for op in &mut s.ops {
        if let Some(c) = &mut op.conv {
            c.depth_mult = None;
        }
    }
    assert_exact(&read_tflite(&s.build()).unwrap(), false);
    // Convolutions without a bias input (absent, or -1) get zero biases.
    let mut s = Synth::mobilenet(1);
    for (k, op) in s.ops.iter_mut().enumerate() {
        if op.conv.is_some() {
            if k % 2 == 0 {
                op.inputs.truncate(2);
            } else {
                op.inputs[2] = -1;
            }
        }
    }
    assert_exact(&read_tflite(&s.build()).unwrap(), true);
}

fn synth() -> Synth {
    Synth::mobilenet(1)
}

#[test]
fn wrong_op_order_is_an_error() {
    let mut s = synth();
    s.ops.swap(1, 2);
    let e = s.err();
    assert!(
        e.contains(
            "operator #1 (CONV_2D for MobilenetV1/Conv2d_1_depthwise): expected DEPTHWISE_CONV_2D"
        ),
        "{e}"
    );
    // Two depthwise layers with different strides.
    let mut s = synth();
    s.ops.swap(1, 3);
    let e = s.err();
    assert!(
        e.contains("operator #1") && e.contains("reads tensor"),
        "{e}"
    );
    // Pooling inside the body.
    let mut s = synth();
    let out = s.ops[5].outputs[0];
    let p = s.act(vec![1, 16, 16, 32]);
    s.ops.insert(
        6,
        SOp {
            code: AVERAGE_POOL_2D,
            inputs: vec![out],
            outputs: vec![p],
            conv: None,
            raw_opcode: None,
        },
    );
    let e = s.err();
    assert!(
        e.contains("operator #6 is AVERAGE_POOL_2D before Conv2d_3_pointwise"),
        "{e}"
    );
    // Ops missing at the end, or an extra conv after the logits.
    let mut s = synth();
    s.ops.truncate(20);
    let e = s.err();
    assert!(
        e.contains("ends after 20 convolutions") && e.contains("Conv2d_10_pointwise is missing"),
        "{e}"
    );
    let mut s = synth();
    let extra = s.ops[28].clone();
    s.ops.push(extra);
    assert!(s
        .err()
        .contains("operator #31 is CONV_2D after the logits layer"));
    let mut s = synth();
    s.ops.clear();
    assert!(s.err().contains("ends after 0 convolutions"));
}

#[test]
fn wrong_layer_parameters_are_errors() {
    type Mutation = Box<dyn Fn(&mut Synth)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("(DEPTHWISE_CONV_2D for MobilenetV1/Conv2d_2_depthwise): stride is (h 1, w 1), expected 2",
         Box::new(|s| s.ops[3].conv.as_mut().unwrap().stride = 1)),
        ("(CONV_2D for MobilenetV1/Conv2d_0): stride is (h 1, w 1), expected 2",
         Box::new(|s| s.ops[0].conv.as_mut().unwrap().stride = 1)),
        ("Conv2d_3_depthwise): padding is VALID, expected SAME",
         Box::new(|s| s.ops[5].conv.as_mut().unwrap().padding = 1)),
        ("Conv2d_2_pointwise): fused activation is NONE, expected RELU6",
         Box::new(|s| s.ops[4].conv.as_mut().unwrap().act = 0)),
        ("Logits/Conv2d_1c_1x1): fused activation is RELU6, expected NONE",
         Box::new(|s| s.ops[28].conv.as_mut().unwrap().act = 3)),
        ("Conv2d_4_depthwise): dilation is (2, 2), expected 1",
         Box::new(|s| s.ops[7].conv.as_mut().unwrap().dilation = 2)),
        ("depth multiplier is 2, expected 1",
         Box::new(|s| s.ops[1].conv.as_mut().unwrap().depth_mult = Some(2))),
        ("Conv2d_1_pointwise): filter [16, 1, 1, 16] has 16 input channels, but the previous layer gives 8",
         Box::new(|s| {
             let f = s.constant(vec![16, 1, 1, 16], &[0.0; 256]);
             s.ops[2].inputs[1] = f;
         })),
        ("Conv2d_1_pointwise): kernel is 3x3, expected 1x1",
         Box::new(|s| {
             let f = s.constant(vec![16, 3, 3, 8], &[0.0; 16 * 9 * 8]);
             s.ops[2].inputs[1] = f;
         })),
        ("bias has 5 values for 16 output channels",
         Box::new(|s| {
             let b = s.constant(vec![5], &[0.0; 5]);
             s.ops[2].inputs[2] = b;
         })),
        ("has shape [33, 3, 3, 3] (891 values of 4 bytes) but its buffer holds 864 bytes",
         Box::new(|s| {
             let (_, t) = s.filter(0);
             s.tensors[t].shape[0] = 33;
         })),
        ("is not a constant (its buffer is empty)",
         Box::new(|s| {
             let (_, t) = s.filter(3);
             s.tensors[t].buffer = 0;
         })),
        ("options are union type 2, expected Conv2DOptions",
         Box::new(|s| {
             let c = s.ops[0].conv.clone();
             s.ops[0].code = DEPTHWISE_CONV_2D;
             s.ops[0].conv = c;
             // options written as DepthwiseConv2DOptions, opcode still CONV_2D (opcode
             // table: DEPTHWISE_CONV_2D first seen at op 0, then CONV_2D)
             s.ops[0].raw_opcode = Some(1);
         })),
    ];
    for (want, mutate) in cases {
        let mut s = synth();
        mutate(&mut s);
        let e = s.err();
        assert!(e.contains(want), "want {want:?}, got {e}");
    }
}

#[test]
fn other_networks_are_errors() {
    // Widths that are no depth multiplier's.
    let e = Synth::with_widths(&[
        12, 24, 48, 48, 96, 96, 192, 192, 192, 192, 192, 192, 384, 384,
    ])
    .err();
    assert!(
        e.contains("Conv2d_0) has 12 output channels; MobileNet V1 has 8, 16, 24 or 32"),
        "{e}"
    );
    let mut w = vec![
        8, 16, 32, 32, 64, 64, 128, 128, 128, 128, 128, 128, 256, 256,
    ];
    w[5] = 72;
    let e = Synth::with_widths(&w).err();
    assert!(
        e.contains("Conv2d_5_pointwise): 72 output channels, expected 64 for this width"),
        "{e}"
    );
    // Ops MobileNet V1 does not have.
    let mut s = synth();
    let x = s.act(vec![1, 128, 128, 3]);
    s.ops.insert(
        0,
        SOp {
            code: DEQUANTIZE,
            inputs: vec![x],
            outputs: vec![0],
            conv: None,
            raw_opcode: None,
        },
    );
    let e = s.err();
    assert!(
        e.contains("operator #0 is DEQUANTIZE where MobilenetV1/Conv2d_0 (CONV_2D) was expected"),
        "{e}"
    );
    assert!(e.contains("float16 or float-output"), "{e}");
    let mut s = synth();
    s.ops[10].code = CUSTOM;
    s.ops[10].conv = None;
    assert!(s.err().contains("operator #10 is the custom op"));
    let mut s = synth();
    s.ops[9].code = 9;
    assert!(s
        .err()
        .contains("operator #9 is FULLY_CONNECTED where MobilenetV1/Conv2d_5_depthwise"));
}

#[test]
fn quantised_tensors_are_errors() {
    let mut s = synth();
    let (_, f) = s.filter(4);
    s.tensors[f].dtype = 9;
    let e = read_tflite(&s.build()).unwrap_err();
    assert!(matches!(e, TfliteError::NotFloat { op: 4, .. }), "{e}");
    assert!(
        e.to_string().contains(&format!(
            "tensor #{f} 'tensor_{f}' is INT8, expected FLOAT32"
        )),
        "{e}"
    );
    // A uint8 input makes it a quantized model, which needs every tensor's quantization.
    let mut s = synth();
    s.tensors[0].dtype = 3;
    let e = s.err();
    assert!(
        e.contains(
            "operator #0 (MobilenetV1/Conv2d_0): input tensor #0 'tensor_0' has no quantization \
             parameters"
        ),
        "{e}"
    );
}

#[test]
fn unsupported_and_malformed_models() {
    let mut s = synth();
    s.version = 2;
    assert!(s.err().contains("schema version 2, expected 3"));
    let mut s = synth();
    let (_, f) = s.filter(6);
    let b = s.tensors[f].buffer as usize;
    s.buffers[b] = (vec![], 4096);
    let e = s.err();
    assert!(
        e.contains("unsupported") && e.contains("outside the flatbuffer"),
        "{e}"
    );
    let mut s = synth();
    s.ops[4].inputs[1] = 9999;
    let e = s.err();
    assert!(
        e.contains("malformed") && e.contains("operator #4 refers to tensor #9999"),
        "{e}"
    );
    let mut s = synth();
    s.ops[4].raw_opcode = Some(77);
    assert!(s.err().contains("operator #4 uses opcode #77 of 5"));
    let mut s = synth();
    let (_, f) = s.filter(2);
    s.tensors[f].buffer = 100_000;
    assert!(s.err().contains("uses buffer #100000"));
    // Every truncation of a (small-data) synthetic model is an error.
    let mut s = synth();
    for buf in &mut s.buffers {
        buf.0.truncate(4);
    }
    let b = s.build();
    for n in 0..b.len() {
        assert!(read_tflite(&b[..n]).is_err(), "truncated to {n}");
    }
}
