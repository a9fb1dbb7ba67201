//! Quantized models read, and crafted variants refused with the tensor's name: each refusal test
//! patches one field of a real file in memory. The int8 file is the converter-written fixture
//! (tests/fixtures/int8_025_128.tflite, tools/make_int8_fixture.py); Google's uint8 file is
//! third-party data read from ../shared/testdata (skipped with a note when absent).

use super::flatbuffer::{Fb, Table};
use super::model::Model;
use super::schema::*;
use super::*;

fn int8_file() -> Vec<u8> {
    let p =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/int8_025_128.tflite");
    std::fs::read(p).unwrap()
}

/// Google's mobilenet_v1_0.25_128_quant.tflite from ../shared/testdata, when it is there.
fn googles_file() -> Option<Vec<u8>> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/weights/mobilenet_v1_0.25_128_quant.tflite");
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(_) => {
            eprintln!("note: {} is absent; skipping this check", p.display());
            None
        }
    }
}

// The int8 fixture's tensors that the tests patch (printed by tf.lite.Interpreter's
// get_tensor_details): the input, Conv2d_0's filter, Conv2d_1_depthwise's filter.
const INPUT: usize = 0;
const CONV0_FILTER: usize = 57;
const DEPTHWISE_FILTER: usize = 55;

fn tensor<'a>(bytes: &'a [u8], id: usize) -> Table<'a> {
    Model::parse(Fb(bytes))
        .unwrap()
        .tensors
        .table(id, "Tensor")
        .unwrap()
}

/// The byte position of tensor `id`'s type field.
fn type_field(bytes: &[u8], id: usize) -> usize {
    let t = tensor(bytes, id);
    t.field(TENSOR_TYPE, 1)
        .unwrap()
        .expect("a non-float tensor stores its type")
}

/// The position of field `field` of tensor `id`'s QuantizationParameters.
fn quant_field(bytes: &[u8], id: usize, field: usize, size: usize) -> usize {
    let q = tensor(bytes, id)
        .table_field(TENSOR_QUANTIZATION, "QuantizationParameters")
        .unwrap()
        .unwrap();
    q.field(field, size).unwrap().expect("the field is stored")
}

/// The position of a quantization vector's first element (`field`: scale or zero_point); its
/// length is the 4 bytes before.
fn quant_vector(bytes: &[u8], id: usize, field: usize) -> usize {
    let p = quant_field(bytes, id, field, 4);
    Fb(bytes).uoffset(p, "vector").unwrap() + 4
}

fn refusal(bytes: &[u8]) -> String {
    match read(bytes) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("the crafted model was accepted"),
    }
}

#[test]
fn googles_model_reads_as_uint8_per_tensor() {
    let Some(bytes) = googles_file() else { return };
    let TfliteWeights::Quantized(q) = read(&bytes).unwrap() else {
        panic!("read as float")
    };
    assert_eq!(q.scheme(), "uint8 per-tensor");
    assert_eq!(q.body.len(), 27);
    assert_eq!((q.input.scale, q.input.zero_point), (1.0 / 128.0, 128));
    // Conv2d_0's filter: tensor #30, scale 0.00888241, zero point 157; HWIO after the reader.
    let c0 = &q.body[0];
    assert_eq!(
        (c0.kind, c0.in_channels, c0.out_channels),
        (QuantKind::Conv0, 3, 8)
    );
    assert_eq!(c0.filter_zero_point, 157);
    assert_eq!(c0.filter.len(), 3 * 3 * 3 * 8);
    let logits = q.logits.as_ref().unwrap();
    assert_eq!((logits.in_channels, logits.out_channels), (256, 1001));
    let s = q.softmax.as_ref().unwrap();
    assert_eq!((s.output.scale, s.output.zero_point), (1.0 / 256.0, 0));
    // The float reader refuses it rather than returning nothing.
    assert!(read_tflite(&bytes).is_err());
}

#[test]
fn int8_model_reads_as_int8_per_channel() {
    let TfliteWeights::Quantized(q) = read(&int8_file()).unwrap() else {
        panic!("read as float")
    };
    assert_eq!(q.scheme(), "int8 per-channel");
    assert_eq!(q.body[0].filter_zero_point, 0);
    assert_eq!(q.body[1].filter_scales.len(), 8);
    assert!(read_tflite(&int8_file()).is_err());
}

#[test]
fn int16_activations_are_refused_with_the_tensor() {
    let mut b = int8_file();
    let at = type_field(&b, INPUT);
    b[at] = 7; // INT16
    let msg = refusal(&b);
    assert!(
        msg.contains("tensor #0 'serving_default_keras_tensor:0' is INT16"),
        "{msg}"
    );
}

#[test]
fn asymmetric_int8_filters_are_refused() {
    let mut b = int8_file();
    let at = quant_vector(&b, CONV0_FILTER, QUANT_ZERO_POINT);
    b[at..at + 8].copy_from_slice(&157i64.to_le_bytes());
    let msg = refusal(&b);
    assert!(
        msg.contains("filter tensor #57")
            && msg.contains("zero point 157")
            && msg.contains("symmetric"),
        "{msg}"
    );
}

#[test]
fn a_missing_scale_is_refused() {
    let mut b = int8_file();
    let at = quant_vector(&b, DEPTHWISE_FILTER, QUANT_SCALE) - 4;
    b[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
    let msg = refusal(&b);
    assert!(
        msg.contains("tensor #55") && msg.contains("no quantization scale"),
        "{msg}"
    );
}

#[test]
fn per_channel_scales_on_the_wrong_axis_are_refused() {
    let mut b = int8_file();
    let at = quant_field(&b, DEPTHWISE_FILTER, QUANT_DIMENSION, 4);
    b[at..at + 4].copy_from_slice(&0i32.to_le_bytes()); // a depthwise filter's channels are axis 3
    let msg = refusal(&b);
    assert!(
        msg.contains("tensor #55") && msg.contains("along axis 0") && msg.contains("along axis 3"),
        "{msg}"
    );
}

#[test]
fn uint8_filters_with_int8_activations_are_refused() {
    let mut b = int8_file();
    let at = type_field(&b, CONV0_FILTER);
    b[at] = TENSOR_UINT8;
    let msg = refusal(&b);
    assert!(
        msg.contains("tensor #57") && msg.contains("is UINT8 with int8 activations"),
        "{msg}"
    );
    // And Google's uint8 input read as int8: its zero point 128 is outside int8's range.
    let Some(mut b) = googles_file() else { return };
    let at = type_field(&b, 0);
    b[at] = TENSOR_INT8;
    let msg = refusal(&b);
    assert!(
        msg.contains("tensor #0 'input'") && msg.contains("zero point 128"),
        "{msg}"
    );
}

/// TFLiteConverter's uint8-io file of the same network (tools/make_int8_fixture.py --uint8-io).
fn uint8_io_file() -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/uint8io_025_128.tflite");
    std::fs::read(p).unwrap()
}

#[test]
fn a_uint8_io_model_reads_as_the_int8_network_fed_pixels() {
    let TfliteWeights::Quantized(u) = read(&uint8_io_file()).unwrap() else {
        panic!("read as float")
    };
    let TfliteWeights::Quantized(i) = read(&int8_file()).unwrap() else {
        panic!("read as float")
    };
    // The converter quantized the same Keras model the same way: only the QUANTIZEs differ.
    assert!(u.uint8_input && !i.uint8_input);
    assert_eq!(
        format!("{:?}", (&u.body, u.input, u.pooled, &u.logits, &u.softmax)),
        format!("{:?}", (&i.body, i.input, i.pooled, &i.logits, &i.softmax))
    );
}

#[test]
fn a_quantize_that_rescales_is_refused_with_the_tensor() {
    // The uint8 input (tensor #0, zero point 127 over the int8 side's -1): move it to 100.
    let mut bytes = uint8_io_file();
    let p = quant_vector(&bytes, 0, QUANT_ZERO_POINT);
    bytes[p..p + 8].copy_from_slice(&100i64.to_le_bytes());
    let msg = refusal(&bytes);
    assert!(
        msg.contains("operator #0 (QUANTIZE)")
            && msg.contains("tensor #0 'serving_default_keras_tensor:0'")
            && msg.contains("shifts the zero point by 128"),
        "{msg}"
    );
}

#[test]
fn a_quantize_inside_the_network_is_refused() {
    // The converter's second operator (Conv2d_0) made a QUANTIZE: one after the input's.
    let bytes = uint8_io_file();
    let model = Model::parse(Fb(&bytes)).unwrap();
    let op = model.operators.table(1, "operator").unwrap();
    let at = op.field(OP_OPCODE_INDEX, 4).unwrap().expect("stored");
    let mut patched = bytes.clone();
    // Opcode index 0 is QUANTIZE in the converter's file.
    patched[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
    let msg = refusal(&patched);
    assert!(
        msg.contains("operator #1 is QUANTIZE") && msg.contains("before Conv2d_0"),
        "{msg}"
    );
}
