//! Exports read back: the .tflite through mnv1's own reader (bit-identical outputs), its metadata
//! and zip through the bounds-checked flatbuffer reader and the zip crate, the ONNX model through
//! the prost messages. Weights: tests/fixtures/mobilenet_v1_0.25_128.tgz (TF 2.21 checkpoint,
//! tools/make_fixtures.py), so BatchNorm folding is exercised too.

use std::io::Read;
use std::path::Path;

use candle_core::Device;
use prost::Message;

use super::onnx_proto::{DimensionValue, ModelProto};
use super::tflite_metadata as md;
use super::*;
use crate::engine::{Engine, Head as EngineHead};
use crate::model::arch::LOGITS_SCOPE;
use crate::weights::tflite::flatbuffer::{Fb, Table};
use crate::weights::tflite::schema::*;
use crate::weights::{self, RawTensor};

const SIZE: usize = 128;

fn fixture() -> Weights {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mobilenet_v1_0.25_128.tgz");
    weights::load(&p).unwrap()
}

/// The fixture with a new K-way head, as `mnv1 finetune` leaves it (values exact in f32).
fn finetuned(k: usize) -> Weights {
    let mut w = fixture();
    let c = w.arch.feature_dim();
    let weights: Vec<f32> = (0..c * k)
        .map(|i| ((i * 7919) % 1000) as f32 / 4096.0 - 0.12)
        .collect();
    let biases: Vec<f32> = (0..k).map(|i| i as f32 / 8.0 - 0.2).collect();
    w.tensors.insert(
        format!("{LOGITS_SCOPE}/weights"),
        RawTensor::new(vec![1, 1, c, k], weights),
    );
    w.tensors.insert(
        format!("{LOGITS_SCOPE}/biases"),
        RawTensor::new(vec![k], biases),
    );
    w
}

fn info(labels: Vec<String>) -> ExportInfo {
    ExportInfo {
        name: "test_model".into(),
        description: "a test export".into(),
        version: "v1".into(),
        author: "mnv1 tests".into(),
        license: "Apache-2.0".into(),
        producer: "mnv1 test".into(),
        labels,
        size: (SIZE, SIZE),
    }
}

fn class_names(k: usize) -> Vec<String> {
    (0..k).map(|i| format!("class {i}")).collect()
}

/// Two deterministic images in [0, 1], NHWC.
fn images() -> Vec<f32> {
    (0..2 * SIZE * SIZE * 3)
        .map(|i| ((i * 2654435761usize) % 1000) as f32 / 999.0)
        .collect()
}

fn run(w: &Weights, head: EngineHead) -> Vec<f32> {
    let engine =
        Engine::with_threads(w, head, Device::Cpu, 1, crate::model::Precision::Fp32).unwrap();
    engine.forward(&images(), 2, SIZE, SIZE, None).unwrap()
}

fn read_back(bytes: &[u8]) -> Weights {
    let t = crate::weights::tflite::read_tflite(bytes).unwrap();
    weights::canonicalize(t, ".tflite").unwrap()
}

#[test]
fn tflite_of_a_checkpoint_reads_back_with_identical_outputs() {
    let w = fixture();
    let bytes = to_bytes(
        &w,
        Head::Logits,
        &info(crate::labels::owned_imagenet()),
        Format::Tflite,
    )
    .unwrap();
    let back = read_back(&bytes);
    assert_eq!(back.arch, w.arch);
    assert_eq!(run(&back, EngineHead::Logits), run(&w, EngineHead::Logits));
    assert_eq!(
        run(&back, EngineHead::Features),
        run(&w, EngineHead::Features)
    );
}

#[test]
fn tflite_of_a_finetuned_head_reads_back_with_identical_outputs() {
    let w = finetuned(4);
    let bytes = to_bytes(&w, Head::Logits, &info(class_names(4)), Format::Tflite).unwrap();
    let back = read_back(&bytes);
    assert_eq!(
        back.tensors[&format!("{LOGITS_SCOPE}/weights")].shape,
        [1, 1, 256, 4]
    );
    let (a, b) = (run(&back, EngineHead::Logits), run(&w, EngineHead::Logits));
    assert_eq!(a.len(), 8);
    assert_eq!(a, b);
}

#[test]
fn feature_vector_tflite_reads_back_without_logits() {
    let w = fixture();
    let bytes = to_bytes(&w, Head::Features, &info(vec![]), Format::Tflite).unwrap();
    let back = read_back(&bytes);
    assert!(!back.has_logits());
    assert_eq!(
        run(&back, EngineHead::Features),
        run(&w, EngineHead::Features)
    );
}

// ---------------------------------------------------------------------------------------------
// The flatbuffer's structure, read with the reader's bounds-checked access.

fn root(bytes: &[u8]) -> Table<'_> {
    let fb = Fb(bytes);
    fb.table(fb.uoffset(0, "root").unwrap(), "root").unwrap()
}

fn i32s(t: &Table, id: usize) -> Vec<i32> {
    let v = t.vector(id, 4, "ints").unwrap().unwrap();
    (0..v.len()).map(|i| v.i32(i).unwrap()).collect()
}

fn f32s(t: &Table, id: usize) -> Vec<f32> {
    i32s(t, id)
        .into_iter()
        .map(|b| f32::from_bits(b as u32))
        .collect()
}

fn string(t: &Table, id: usize) -> String {
    t.string(id, "string").unwrap().unwrap()
}

fn table<'a>(t: &Table<'a>, id: usize) -> Table<'a> {
    t.table_field(id, "table").unwrap().unwrap()
}

fn tables<'a>(t: &Table<'a>, id: usize) -> Vec<Table<'a>> {
    let v = t.vector(id, 4, "tables").unwrap().unwrap();
    (0..v.len()).map(|i| v.table(i, "table").unwrap()).collect()
}

/// The bytes of the buffer that `Model.metadata` names `name`.
fn metadata_buffer<'a>(bytes: &'a [u8], name: &str) -> &'a [u8] {
    let model = root(bytes);
    let entry = tables(&model, MODEL_METADATA)
        .into_iter()
        .find(|m| string(m, METADATA_NAME) == name)
        .unwrap_or_else(|| panic!("no metadata entry {name}"));
    let index = entry.u32_or(METADATA_BUFFER, 0).unwrap() as usize;
    let buffer = &tables(&model, MODEL_BUFFERS)[index];
    buffer
        .vector(BUFFER_DATA, 1, "data")
        .unwrap()
        .unwrap()
        .bytes()
        .unwrap()
}

#[test]
fn tflite_has_the_release_operator_sequence_and_a_dynamic_batch() {
    let w = finetuned(4);
    let bytes = to_bytes(&w, Head::Logits, &info(class_names(4)), Format::Tflite).unwrap();
    let model = root(&bytes);
    assert_eq!(model.u32_or(MODEL_VERSION, 0).unwrap(), 3);
    let codes: Vec<i32> = tables(&model, MODEL_OPERATOR_CODES)
        .iter()
        .map(|c| c.i32_or(OPCODE_BUILTIN, 0).unwrap())
        .collect();
    let sg = &tables(&model, MODEL_SUBGRAPHS)[0];
    let ops: Vec<i32> = tables(sg, SUBGRAPH_OPERATORS)
        .iter()
        .map(|op| codes[op.u32_or(OP_OPCODE_INDEX, 0).unwrap() as usize])
        .collect();
    let mut want = vec![CONV_2D];
    for _ in 0..13 {
        want.extend([DEPTHWISE_CONV_2D, CONV_2D]);
    }
    want.extend([AVERAGE_POOL_2D, CONV_2D, SQUEEZE, SOFTMAX]);
    assert_eq!(ops, want);
    let tensors = tables(sg, SUBGRAPH_TENSORS);
    let input = &tensors[i32s(sg, SUBGRAPH_INPUTS)[0] as usize];
    assert_eq!(i32s(input, TENSOR_SHAPE), [1, 128, 128, 3]);
    assert_eq!(i32s(input, TENSOR_SHAPE_SIGNATURE), [-1, 128, 128, 3]);
    let output = &tensors[i32s(sg, SUBGRAPH_OUTPUTS)[0] as usize];
    assert_eq!(i32s(output, TENSOR_SHAPE), [1, 4]);
    assert_eq!(i32s(output, TENSOR_SHAPE_SIGNATURE), [-1, 4]);
    let runtime = metadata_buffer(&bytes, "min_runtime_version");
    assert_eq!(&runtime[..6], b"1.5.0\0");
}

#[test]
fn tflite_metadata_is_what_model_maker_writes() {
    let w = finetuned(3);
    let labels = vec!["daisy".to_string(), "rose".into(), "tulip".into()];
    let bytes = to_bytes(&w, Head::Logits, &info(labels.clone()), Format::Tflite).unwrap();
    let meta = metadata_buffer(&bytes, md::METADATA_NAME);
    assert_eq!(&meta[4..8], md::FILE_IDENTIFIER.as_bytes());
    let m = root(meta);
    assert_eq!(string(&m, 0), "test_model"); // name
    assert_eq!(string(&m, 2), "v1"); // version
    assert_eq!(string(&m, 5), "Apache-2.0"); // license
    assert_eq!(string(&m, 7), md::MIN_PARSER_VERSION);
    let sg = &tables(&m, 3)[0];
    let input = &tables(sg, 2)[0];
    let content = table(input, 3);
    assert_eq!(content.u8_or(0, 0).unwrap(), md::CONTENT_IMAGE_PROPERTIES);
    assert_eq!(
        table(&content, 1).u8_or(0, 0).unwrap() as i8,
        md::COLOR_SPACE_RGB
    );
    let unit = &tables(input, 4)[0];
    assert_eq!(unit.u8_or(0, 0).unwrap(), md::PROCESS_UNIT_NORMALIZATION);
    let norm = table(unit, 1);
    assert_eq!((f32s(&norm, 0), f32s(&norm, 1)), (vec![127.5], vec![127.5]));
    let stats = table(input, 5);
    assert_eq!((f32s(&stats, 0), f32s(&stats, 1)), (vec![1.0], vec![-1.0]));
    let output = &tables(sg, 3)[0];
    assert_eq!(string(output, 0), "probability");
    assert_eq!(
        table(output, 3).u8_or(0, 0).unwrap(),
        md::CONTENT_FEATURE_PROPERTIES
    );
    let file = &tables(output, 6)[0];
    assert_eq!(string(file, 0), "labels.txt");
    assert_eq!(file.u8_or(2, 0).unwrap() as i8, md::FILE_TENSOR_AXIS_LABELS);

    // labels.txt in the zip appended to the model, stored uncompressed.
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
    assert_eq!(zip.len(), 1);
    let mut f = zip.by_name("labels.txt").unwrap();
    assert_eq!(f.compression(), zip::CompressionMethod::Stored);
    let mut text = String::new();
    f.read_to_string(&mut text).unwrap();
    assert_eq!(text, "daisy\nrose\ntulip\n");
}

#[test]
fn bad_labels_are_refused() {
    let w = finetuned(2);
    let e = to_bytes(&w, Head::Logits, &info(class_names(3)), Format::Tflite).unwrap_err();
    assert!(e.to_string().contains("3 labels for 2 classes"), "{e}");
    let e = to_bytes(
        &w,
        Head::Logits,
        &info(vec!["a".into(), "b\nc".into()]),
        Format::Tflite,
    )
    .unwrap_err();
    assert!(e.to_string().contains("line break"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// ONNX, decoded with the same prost messages.

#[test]
fn onnx_structure() {
    let w = finetuned(4);
    let bytes = to_bytes(&w, Head::Logits, &info(class_names(4)), Format::Onnx).unwrap();
    let m = ModelProto::decode(bytes.as_slice()).unwrap();
    assert_eq!(m.ir_version, onnx::IR_VERSION);
    assert_eq!(m.opset_import[0].version, 13);
    assert!(m.opset_import[0].domain.is_empty());
    let g = m.graph.unwrap();
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
    let mut want = vec!["Transpose", "Mul", "Sub"];
    for _ in 0..27 {
        want.extend(["Conv", "Clip"]);
    }
    want.extend(["GlobalAveragePool", "Flatten", "Gemm"]);
    assert_eq!(ops, want);
    // Every node reads only graph inputs, initializers or earlier outputs.
    let mut known: Vec<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
    known.push(onnx::INPUT.into());
    for n in &g.node {
        for i in &n.input {
            assert!(known.contains(i), "{} reads unknown {i}", n.name);
        }
        known.extend(n.output.iter().cloned());
    }
    let dims = |v: &super::onnx_proto::ValueInfoProto| -> Vec<String> {
        let t = v.r#type.as_ref().unwrap().tensor_type.as_ref().unwrap();
        assert_eq!(t.elem_type, super::onnx_proto::FLOAT);
        t.shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|d| match d.value.as_ref().unwrap() {
                DimensionValue::DimValue(n) => n.to_string(),
                DimensionValue::DimParam(p) => p.clone(),
            })
            .collect()
    };
    assert_eq!(dims(&g.input[0]), ["batch", "128", "128", "3"]);
    assert_eq!(g.output[0].name, onnx::LOGITS);
    assert_eq!(dims(&g.output[0]), ["batch", "4"]);
    for t in &g.initializer {
        let n: i64 = t.dims.iter().product();
        assert_eq!(t.raw_data.len() as i64, 4 * n, "{}", t.name);
    }
    // Depthwise layers are grouped convolutions; a filter element lands where ONNX wants it.
    let dw = g
        .node
        .iter()
        .find(|n| n.name == "Conv2d_1_depthwise")
        .unwrap();
    let group = dw.attribute.iter().find(|a| a.name == "group").unwrap();
    assert_eq!(group.i, 8);
    let net = FoldedNetwork::new(&w, Head::Logits).unwrap();
    let conv0 = g
        .initializer
        .iter()
        .find(|t| t.name == "Conv2d_0/weights")
        .unwrap();
    assert_eq!(conv0.dims, [8, 3, 3, 3]);
    // HWIO [ky=1][kx=2][i=1][o=5] -> OIHW [5][1][1][2]
    let hwio = net.layers[0].filter[((3 + 2) * 3 + 1) * 8 + 5];
    let at = ((5 * 3 + 1) * 3 + 1) * 3 + 2;
    let onnx = f32::from_le_bytes(conv0.raw_data[4 * at..4 * at + 4].try_into().unwrap());
    assert_eq!(onnx, hwio);
    let labels = m.metadata_props.iter().find(|p| p.key == "labels").unwrap();
    assert_eq!(labels.value, "class 0\nclass 1\nclass 2\nclass 3");
}

#[test]
fn onnx_feature_vector_ends_at_the_features() {
    let w = fixture();
    let bytes = to_bytes(&w, Head::Features, &info(vec![]), Format::Onnx).unwrap();
    let g = ModelProto::decode(bytes.as_slice()).unwrap().graph.unwrap();
    assert_eq!(g.output[0].name, onnx::FEATURES);
    assert_eq!(g.node.last().unwrap().op_type, "Flatten");
    assert!(!g.initializer.iter().any(|t| t.name.starts_with("Logits")));
}

#[test]
fn targets_are_checked_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let all = [Format::Tflite, Format::Onnx];
    assert_eq!(
        check_target(&dir.path().join("m.TFLITE"), &all).unwrap(),
        Format::Tflite
    );
    let e = check_target(&dir.path().join("m.pb"), &all).unwrap_err();
    assert!(e.to_string().contains("must end in .tflite, .onnx"), "{e}");
    let e = check_target(&dir.path().join("missing/m.onnx"), &all).unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    std::fs::create_dir(dir.path().join("d.onnx")).unwrap();
    let e = check_target(&dir.path().join("d.onnx"), &all).unwrap_err();
    assert!(e.to_string().contains("is a directory"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// The quantized export: tests/fixtures/int8_025_128.tflite (int8 in and out) written with uint8
// input and output, against TFLiteConverter's uint8-io file of the same network
// (uint8io_025_128.tflite; both from tools/make_int8_fixture.py). tests/it/quant_parity.rs checks
// mnv1 on the converter's file against TFLite's outputs.

fn quantized_fixture(name: &str) -> Weights {
    weights::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

fn read_quantized(bytes: &[u8]) -> crate::weights::tflite::QuantizedNet {
    match crate::weights::tflite::read(bytes).unwrap() {
        crate::weights::tflite::TfliteWeights::Quantized(q) => q,
        crate::weights::tflite::TfliteWeights::Float(_) => panic!("read back as float"),
    }
}

/// The integer outputs of `q` on deterministic uint8-domain images.
fn run_quantized(q: &crate::weights::tflite::QuantizedNet) -> crate::model::quant::QuantOutputs {
    use crate::model::quant::{IntKernels, QuantMobileNet};
    let head = if q.logits.is_some() {
        EngineHead::Logits
    } else {
        EngineHead::Features
    };
    let net = QuantMobileNet::new(q, head, 1, IntKernels::supported()[0]).unwrap();
    let pixels: Vec<u8> = (0..2 * SIZE * SIZE * 3)
        .map(|i| ((i * 2654435761usize) >> 7) as u8)
        .collect();
    net.forward_quantized(&pixels, 2).unwrap()
}

/// (builtin code, version) of every operator, in order.
fn operators_with_versions(bytes: &[u8]) -> Vec<(i32, i32)> {
    let model = root(bytes);
    let codes: Vec<(i32, i32)> = tables(&model, MODEL_OPERATOR_CODES)
        .iter()
        .map(|c| {
            (
                c.i32_or(OPCODE_BUILTIN, 0).unwrap(),
                c.i32_or(OPCODE_VERSION, 1).unwrap(),
            )
        })
        .collect();
    let sg = &tables(&model, MODEL_SUBGRAPHS)[0];
    tables(sg, SUBGRAPH_OPERATORS)
        .iter()
        .map(|op| codes[op.u32_or(OP_OPCODE_INDEX, 0).unwrap() as usize])
        .collect()
}

#[test]
fn quantized_tflite_is_the_converters_uint8_io_network() {
    let w = quantized_fixture("int8_025_128.tflite");
    let bytes = to_bytes(
        &w,
        Head::Logits,
        &info(crate::labels::owned_imagenet()),
        Format::Tflite,
    )
    .unwrap();
    let back = read_quantized(&bytes);
    let converters = read_quantized(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/uint8io_025_128.tflite"),
        )
        .unwrap(),
    );
    assert!(back.uint8_input);
    // Every integer, scale and zero point as TFLiteConverter wrote them with uint8 io.
    assert_eq!(format!("{back:?}"), format!("{converters:?}"));
    let (a, b) = (run_quantized(&back), run_quantized(&converters));
    assert_eq!(
        (a.probs.len(), &a.probs, &a.logits),
        (2 * 1001, &b.probs, &b.logits)
    );
    // The same operators at the converter's versions (it reshapes where mnv1 squeezes, as the
    // float export does), the QUANTIZE at each end.
    let ours = operators_with_versions(&bytes);
    let theirs = operators_with_versions(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/uint8io_025_128.tflite"),
        )
        .unwrap(),
    );
    let squeeze_as_reshape: Vec<(i32, i32)> = ours
        .iter()
        .map(|&(c, v)| if c == SQUEEZE { (RESHAPE, v) } else { (c, v) })
        .collect();
    assert_eq!(squeeze_as_reshape, theirs);
    assert_eq!(ours[0], (QUANTIZE, 1));
    assert_eq!(ours[1], (CONV_2D, 3));
    assert_eq!(ours[ours.len() - 1], (QUANTIZE, 1));
    // uint8 tensors at the ends under the float export's names; MediaPipe reads them.
    let model = root(&bytes);
    let sg = &tables(&model, MODEL_SUBGRAPHS)[0];
    let tensors = tables(sg, SUBGRAPH_TENSORS);
    let input = &tensors[i32s(sg, SUBGRAPH_INPUTS)[0] as usize];
    let output = &tensors[i32s(sg, SUBGRAPH_OUTPUTS)[0] as usize];
    assert_eq!(string(input, TENSOR_NAME), "input");
    assert_eq!(
        string(output, TENSOR_NAME),
        "MobilenetV1/Predictions/Reshape_1"
    );
    assert_eq!(input.u8_or(TENSOR_TYPE, 0).unwrap(), TENSOR_UINT8);
    assert_eq!(output.u8_or(TENSOR_TYPE, 0).unwrap(), TENSOR_UINT8);
    assert_eq!(
        f32s(&table(output, TENSOR_QUANTIZATION), QUANT_SCALE),
        [1.0 / 256.0]
    );
    assert_eq!(
        std::str::from_utf8(metadata_buffer(&bytes, "min_runtime_version"))
            .unwrap()
            .trim_end_matches('\0'),
        "1.14.0"
    );
}

#[test]
fn quantized_feature_vector_tflite_ends_in_the_uint8_pooled_features() {
    let w = quantized_fixture("int8_025_128.tflite");
    let bytes = to_bytes(&w, Head::Features, &info(vec![]), Format::Tflite).unwrap();
    let back = read_quantized(&bytes);
    assert!(back.logits.is_none() && back.softmax.is_none() && back.uint8_input);
    let orig = w.quantized.as_ref().unwrap();
    assert_eq!(
        format!("{:?}", (&back.body, back.pooled)),
        format!("{:?}", (&orig.body, orig.pooled))
    );
    assert_eq!(run_quantized(&back).pooled, run_quantized(orig).pooled);
    let ops = operators_with_versions(&bytes);
    assert_eq!(
        ops[ops.len() - 3..],
        [(AVERAGE_POOL_2D, 2), (SQUEEZE, 1), (QUANTIZE, 1)]
    );
}

#[test]
fn quantized_tflite_metadata_describes_a_uint8_image() {
    let w = quantized_fixture("int8_025_128.tflite");
    let bytes = to_bytes(
        &w,
        Head::Logits,
        &info(crate::labels::owned_imagenet()),
        Format::Tflite,
    )
    .unwrap();
    let meta = metadata_buffer(&bytes, md::METADATA_NAME);
    let fb = Fb(meta);
    let m = fb.table(fb.uoffset(0, "root").unwrap(), "root").unwrap();
    let sg = &tables(&m, 3)[0];
    let input = &tables(sg, 2)[0];
    // NormalizationOptions as in the float export (applied by MediaPipe to float inputs only),
    // stats the uint8 range.
    let unit = &tables(input, 4)[0];
    let norm = table(unit, 1);
    assert_eq!((f32s(&norm, 0), f32s(&norm, 1)), (vec![127.5], vec![127.5]));
    let stats = table(input, 5);
    assert_eq!((f32s(&stats, 1), f32s(&stats, 0)), (vec![0.0], vec![255.0]));
    let output = &tables(sg, 3)[0];
    let stats = table(output, 5);
    assert_eq!((f32s(&stats, 1), f32s(&stats, 0)), (vec![0.0], vec![255.0]));
}

#[test]
fn quantized_models_export_to_tflite_only() {
    let w = quantized_fixture("int8_025_128.tflite");
    let err = to_bytes(
        &w,
        Head::Logits,
        &info(crate::labels::owned_imagenet()),
        Format::Onnx,
    )
    .unwrap_err();
    assert!(err.to_string().contains(".tflite only"), "{err}");
    let err = to_bytes(&w, Head::Logits, &info(class_names(3)), Format::Tflite).unwrap_err();
    assert!(
        err.to_string().contains("3 labels for 1001 classes"),
        "{err}"
    );
}
