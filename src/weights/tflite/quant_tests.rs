//! Google's quantized model (examples/data) read, and crafted variants of it refused with the
//! tensor's name: each test patches one field of the real file in memory.

use super::flatbuffer::Fb;
use super::model::Model;
use super::schema::*;
use super::*;

fn quant_file() -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/data/mobilenet_v1_0.25_128_quant.tflite");
    std::fs::read(p).unwrap()
}

/// The byte position of tensor `id`'s type field.
fn type_field(bytes: &[u8], id: usize) -> usize {
    let model = Model::parse(Fb(bytes)).unwrap();
    let t = model.tensors.table(id, "Tensor").unwrap();
    t.field(TENSOR_TYPE, 1)
        .unwrap()
        .expect("a non-float tensor stores its type")
}

/// The position of the length of tensor `id`'s scale vector.
fn scale_len_field(bytes: &[u8], id: usize) -> usize {
    let fb = Fb(bytes);
    let model = Model::parse(fb).unwrap();
    let t = model.tensors.table(id, "Tensor").unwrap();
    let q = t
        .table_field(TENSOR_QUANTIZATION, "QuantizationParameters")
        .unwrap()
        .unwrap();
    let p = q.field(QUANT_SCALE, 4).unwrap().unwrap();
    fb.uoffset(p, "scale").unwrap()
}

fn refusal(bytes: &[u8]) -> String {
    match read(bytes) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("the crafted model was accepted"),
    }
}

#[test]
fn googles_model_reads_as_uint8_per_tensor() {
    let TfliteWeights::Quantized(q) = read(&quant_file()).unwrap() else {
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
    assert!(read_tflite(&quant_file()).is_err());
}

#[test]
fn int16_activations_are_refused_with_the_tensor() {
    let mut b = quant_file();
    let at = type_field(&b, 0);
    b[at] = 7; // INT16
    let msg = refusal(&b);
    assert!(msg.contains("tensor #0 'input' is INT16"), "{msg}");
}

#[test]
fn asymmetric_int8_filters_are_refused() {
    let mut b = quant_file();
    let at = type_field(&b, 30); // Conv2d_0's filter, zero point 157
    b[at] = TENSOR_INT8;
    let msg = refusal(&b);
    assert!(
        msg.contains("filter tensor #30")
            && msg.contains("zero point 157")
            && msg.contains("symmetric"),
        "{msg}"
    );
}

#[test]
fn a_missing_scale_is_refused() {
    let mut b = quant_file();
    let at = scale_len_field(&b, 32); // Conv2d_1_depthwise's filter
    b[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
    let msg = refusal(&b);
    assert!(
        msg.contains("tensor #32") && msg.contains("no quantization scale"),
        "{msg}"
    );
}

#[test]
fn uint8_filters_with_int8_activations_are_refused() {
    let mut b = quant_file();
    let at = type_field(&b, 0);
    b[at] = TENSOR_INT8; // the input (zero point 128 is outside int8's range)
    let msg = refusal(&b);
    assert!(
        msg.contains("tensor #0 'input'") && msg.contains("zero point 128"),
        "{msg}"
    );
}
