//! Google's quantized MobileNet V1 (uint8, examples/data/mobilenet_v1_0.25_128_quant.tflite) run
//! by mnv1's integer kernels equals TensorFlow Lite's reference kernels bit for bit: every body
//! layer, the pooled features, the logits and the softmax. Goldens:
//! tests/fixtures/quant_golden_025_128.npz, written by tools/make_quant_golden.py (TFLite 2.21,
//! BUILTIN_REF op resolver).

use std::path::PathBuf;

use mnv1::engine::Head;
use mnv1::model::quant::{IntKernels, QuantMobileNet};
use mnv1::weights;

use crate::common::npz::NpzArchive;

fn model_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/data/mobilenet_v1_0.25_128_quant.tflite")
}

fn read<T: npyz::Deserialize>(npz: &mut NpzArchive, name: &str) -> (Vec<u64>, Vec<T>) {
    let arr = npz
        .by_name(name)
        .unwrap()
        .unwrap_or_else(|| panic!("no {name}"));
    let shape = arr.shape().to_vec();
    (shape, arr.into_vec().unwrap())
}

#[test]
fn googles_uint8_model_matches_tflite_bit_for_bit() {
    let w = weights::load(&model_path()).unwrap();
    let q = w.quantized.as_ref().expect("read as a quantized network");
    assert_eq!((q.arch.depth_multiplier, q.input_size), (0.25, (128, 128)));
    assert!(!q.signed);
    let mut npz = NpzArchive::open(crate::common::fixture("quant_golden_025_128.npz")).unwrap();
    let (shape, inputs) = read::<u8>(&mut npz, "inputs");
    let n = shape[0] as usize;
    let (_, sums) = read::<i64>(&mut npz, "layer_sums");
    let per = 128 * 128 * 3;
    // With every choice of kernels this CPU runs (each instruction-set level, VNNI).
    for isa in IntKernels::supported() {
        let net = QuantMobileNet::new(q, Head::Logits, 2, isa).unwrap();
        // Layer by layer first, so that a mismatch names the layer where it starts.
        for i in 0..n {
            let outs = net.trace(&inputs[i * per..][..per]);
            assert_eq!(outs.len(), 27);
            for (k, o) in outs.iter().enumerate() {
                let sum: i64 = o.iter().map(|&v| v as i64).sum();
                let weighted: i64 = o
                    .iter()
                    .enumerate()
                    .map(|(j, &v)| v as i64 * (j as i64 % 65521))
                    .sum();
                let want = &sums[(i * 27 + k) * 2..][..2];
                assert_eq!(
                    [sum, weighted],
                    want,
                    "{isa}: input {i}: body layer {k} differs from TFLite's"
                );
            }
        }
        let got = net.forward_quantized(&inputs, n).unwrap();
        for (name, mine) in [
            ("pooled", &got.pooled),
            ("logits", &got.logits),
            ("probs", &got.probs),
        ] {
            let (_, want) = read::<u8>(&mut npz, name);
            let differ = mine.iter().zip(&want).filter(|(a, b)| a != b).count();
            assert_eq!(mine.len(), want.len(), "{name}");
            assert_eq!(
                differ,
                0,
                "{isa}: {name}: {differ} of {} values differ from TFLite's",
                want.len()
            );
        }
    }
}

/// A full-integer int8 model (int8 activations, per-channel symmetric int8 filters) that
/// TFLiteConverter wrote: tests/fixtures/int8_025_128.tflite and its goldens, both from
/// tools/make_int8_fixture.py (seeded random weights, TFLite 2.21 BUILTIN_REF).
#[test]
fn a_converter_written_int8_model_matches_tflite_bit_for_bit() {
    let w = weights::load(&crate::common::fixture("int8_025_128.tflite")).unwrap();
    let q = w.quantized.as_ref().expect("read as a quantized network");
    assert!(q.signed);
    assert_eq!(q.scheme(), "int8 per-channel");
    let mut npz = NpzArchive::open(crate::common::fixture("int8_golden_025_128.npz")).unwrap();
    let (shape, inputs) = read::<i8>(&mut npz, "inputs");
    let n = shape[0] as usize;
    let (_, sums) = read::<i64>(&mut npz, "layer_sums");
    // mnv1 keeps activations in the uint8 domain: an int8 value plus 128.
    let shifted: Vec<u8> = inputs.iter().map(|&v| (v as i32 + 128) as u8).collect();
    let per = 128 * 128 * 3;
    for isa in IntKernels::supported() {
        let net = QuantMobileNet::new(q, Head::Logits, 2, isa).unwrap();
        for i in 0..n {
            for (k, o) in net.trace(&shifted[i * per..][..per]).iter().enumerate() {
                let v = o.iter().map(|&v| v as i64 - 128);
                let sum: i64 = v.clone().sum();
                let weighted: i64 = v.enumerate().map(|(j, v)| v * (j as i64 % 65521)).sum();
                assert_eq!(
                    [sum, weighted],
                    &sums[(i * 27 + k) * 2..][..2],
                    "{isa}: input {i}: body layer {k} differs from TFLite's"
                );
            }
        }
        let got = net.forward_quantized(&shifted, n).unwrap();
        for (name, mine) in [
            ("pooled", &got.pooled),
            ("logits", &got.logits),
            ("probs", &got.probs),
        ] {
            let (_, want) = read::<i8>(&mut npz, name);
            let mine: Vec<i8> = mine.iter().map(|&v| (v as i32 - 128) as i8).collect();
            let differ = mine.iter().zip(&want).filter(|(a, b)| a != b).count();
            assert_eq!(mine.len(), want.len(), "{name}");
            assert_eq!(
                differ,
                0,
                "{isa}: {name}: {differ} of {} differ",
                want.len()
            );
        }
    }
}
