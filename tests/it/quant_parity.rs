//! Quantized models run by mnv1's integer kernels equal TensorFlow Lite's reference kernels bit
//! for bit: every body layer, the pooled features, the logits and the softmax, with every choice
//! of kernels this CPU runs (each instruction-set level, AVX-512 VNNI).
//!
//! - A full-integer int8 model that TFLiteConverter wrote: tests/fixtures/int8_025_128.tflite
//!   and int8_golden_025_128.npz, both from tools/make_int8_fixture.py (seeded random weights,
//!   TFLite 2.21 BUILTIN_REF).
//! - Google's uint8 mobilenet_v1_0.25_128_quant.tflite, third-party data read from
//!   ../shared/testdata (skipped with a note when absent); goldens
//!   tests/fixtures/quant_golden_025_128.npz from tools/make_quant_golden.py.

use std::path::{Path, PathBuf};

use mnv1::testing::model::quant::{IntKernels, QuantMobileNet};
use mnv1::testing::weights;
use mnv1::Head;

use crate::common::npz::NpzArchive;

fn read<T: npyz::Deserialize>(npz: &mut NpzArchive, name: &str) -> (Vec<u64>, Vec<T>) {
    let arr = npz
        .by_name(name)
        .unwrap()
        .unwrap_or_else(|| panic!("no {name}"));
    let shape = arr.shape().to_vec();
    (shape, arr.into_vec().unwrap())
}

/// Runs `model` on the golden inputs (already in mnv1's uint8 domain: an int8 value plus 128,
/// `shift`) and compares every layer's sums and the outputs with the goldens, whose values are
/// the model's own (uint8, or int8 read as `v - shift`).
fn check_against_tflite(
    model: &Path,
    golden: &str,
    inputs: Vec<u8>,
    n: usize,
    shift: i64,
    uint8_probs: bool,
) {
    let w = weights::load(model).unwrap();
    let q = w.quantized.as_ref().expect("read as a quantized network");
    let mut npz = NpzArchive::open(crate::common::fixture(golden)).unwrap();
    let (_, sums) = read::<i64>(&mut npz, "layer_sums");
    let want: Vec<(&str, Vec<i64>)> = ["pooled", "logits", "probs"]
        .into_iter()
        .map(|name| (name, golden_values(&mut npz, name, shift, uint8_probs)))
        .collect();
    let per = 128 * 128 * 3;
    for kernels in IntKernels::supported() {
        // Three threads: the 4x4 maps leave the third without rows, and the 7x7 ones are
        // split unevenly.
        let net = QuantMobileNet::new(q, Head::Logits, 3, kernels).unwrap();
        // Layer by layer first (each image alone, all threads in lockstep), so that a mismatch
        // names the layer where it starts; then the batch (split by image).
        for i in 0..n {
            let outs = net.trace(&inputs[i * per..][..per]);
            assert_eq!(outs.len(), 27);
            for (k, o) in outs.iter().enumerate() {
                let v = o.iter().map(|&v| v as i64 - shift);
                let sum: i64 = v.clone().sum();
                let weighted: i64 = v.enumerate().map(|(j, v)| v * (j as i64 % 65521)).sum();
                assert_eq!(
                    [sum, weighted],
                    &sums[(i * 27 + k) * 2..][..2],
                    "{kernels}: input {i}: body layer {k} differs from TFLite's"
                );
            }
        }
        let got = net.forward_quantized(&inputs, n).unwrap();
        for ((name, want), mine) in want.iter().zip([&got.pooled, &got.logits, &got.probs]) {
            let differ = mine
                .iter()
                .zip(want)
                .filter(|(&a, &b)| a as i64 - shift != b)
                .count();
            assert_eq!(mine.len(), want.len(), "{name}");
            assert_eq!(
                differ,
                0,
                "{kernels}: {name}: {differ} of {} values differ from TFLite's",
                want.len()
            );
        }
    }
}

/// A golden output as i64: uint8 as it is, int8 (when `shift` is 128) as its signed values. A
/// uint8-io model's probabilities (`uint8_probs`) are its uint8 output: read as int8 plus 128,
/// mnv1's domain.
fn golden_values(npz: &mut NpzArchive, name: &str, shift: i64, uint8_probs: bool) -> Vec<i64> {
    if uint8_probs && name == "probs" {
        return read::<u8>(npz, name)
            .1
            .into_iter()
            .map(|v| i64::from(v) - 128)
            .collect();
    }
    if shift == 0 {
        read::<u8>(npz, name).1.into_iter().map(i64::from).collect()
    } else {
        read::<i8>(npz, name).1.into_iter().map(i64::from).collect()
    }
}

#[test]
fn googles_uint8_model_matches_tflite_bit_for_bit() {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/weights/mobilenet_v1_0.25_128_quant.tflite");
    if !model.is_file() {
        eprintln!("note: {} is absent; skipping this check", model.display());
        return;
    }
    let w = weights::load(&model).unwrap();
    let q = w.quantized.as_ref().expect("read as a quantized network");
    assert_eq!((q.arch.depth_multiplier, q.input_size), (0.25, (128, 128)));
    assert!(!q.signed);
    let mut npz = NpzArchive::open(crate::common::fixture("quant_golden_025_128.npz")).unwrap();
    let (shape, inputs) = read::<u8>(&mut npz, "inputs");
    check_against_tflite(
        &model,
        "quant_golden_025_128.npz",
        inputs,
        shape[0] as usize,
        0,
        false,
    );
}

#[test]
fn a_converter_written_int8_model_matches_tflite_bit_for_bit() {
    let model = crate::common::fixture("int8_025_128.tflite");
    let w = weights::load(&model).unwrap();
    let q = w.quantized.as_ref().expect("read as a quantized network");
    assert!(q.signed);
    assert_eq!(q.scheme(), "int8 per-channel");
    let mut npz = NpzArchive::open(crate::common::fixture("int8_golden_025_128.npz")).unwrap();
    let (shape, inputs) = read::<i8>(&mut npz, "inputs");
    // mnv1 keeps activations in the uint8 domain: an int8 value plus 128.
    let shifted: Vec<u8> = inputs.iter().map(|&v| (v as i32 + 128) as u8).collect();
    check_against_tflite(
        &model,
        "int8_golden_025_128.npz",
        shifted,
        shape[0] as usize,
        128,
        false,
    );
}

#[test]
fn a_converter_written_uint8_io_model_matches_tflite_bit_for_bit() {
    // TFLiteConverter's uint8-io file (tools/make_int8_fixture.py --uint8-io): uint8 pixels in
    // (mnv1's uint8 domain as they are), the int8 network inside, the uint8 softmax out.
    let model = crate::common::fixture("uint8io_025_128.tflite");
    let w = weights::load(&model).unwrap();
    let q = w.quantized.as_ref().expect("read as a quantized network");
    assert!(q.signed && q.uint8_input);
    let mut npz = NpzArchive::open(crate::common::fixture("uint8io_golden_025_128.npz")).unwrap();
    let (shape, inputs) = read::<u8>(&mut npz, "inputs");
    check_against_tflite(
        &model,
        "uint8io_golden_025_128.npz",
        inputs,
        shape[0] as usize,
        128,
        true,
    );
}
