//! Parity with TensorFlow: the fixtures in tests/fixtures were produced by tools/make_fixtures.py
//! (TensorFlow 2.21, tf.compat.v1 graph with TF-Slim names, seeded random weights): a real TF
//! checkpoint, a TFLiteConverter .tflite and a TF-Hub-style archive per variant, plus the logits
//! and features TensorFlow computed for three inputs (one at an odd, non-square size).
//! Tolerance: logits and features within 1e-4 absolute of TensorFlow's, for both the candle
//! network and the CPU fast path that `Engine` runs on the CPU.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use mnv1::testing::model::kernels::Isa;
use mnv1::testing::model::{Arch, CpuMobileNet, Head, MobileNetV1};
use mnv1::testing::weights::{self, Weights};

const TOLERANCE: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Every array of a golden npz (float32), flattened, with its shape.
fn golden(name: &str) -> BTreeMap<String, (Vec<u64>, Vec<f32>)> {
    let mut npz = crate::common::npz::NpzArchive::open(fixture(name)).unwrap();
    let names = npz.array_names();
    names
        .into_iter()
        .map(|n| {
            let arr = npz.by_name(&n).unwrap().unwrap();
            let shape = arr.shape().to_vec();
            (n, (shape, arr.into_vec::<f32>().unwrap()))
        })
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Runs logits and features of golden input `i` (stored in the graph's [-1,1] range; the model
/// takes the hub signature's [0,1]: (x+1)/2 is exact for these inputs, multiples of 2^-7).
fn run(
    model: &MobileNetV1,
    g: &BTreeMap<String, (Vec<u64>, Vec<f32>)>,
    i: usize,
) -> (Vec<f32>, Vec<f32>) {
    let (shape, x) = &g[&format!("input_{i}")];
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let x01: Vec<f32> = x.iter().map(|v| (v + 1.0) / 2.0).collect();
    let t = Tensor::from_vec(x01, dims.as_slice(), &Device::Cpu).unwrap();
    let logits = model
        .logits(&t)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let features = model
        .features(&t)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    (logits, features)
}

/// The same through the CPU fast path (what `Engine` runs on the CPU), on two threads.
fn run_fast(
    model: &CpuMobileNet,
    g: &BTreeMap<String, (Vec<u64>, Vec<f32>)>,
    i: usize,
) -> (Vec<f32>, Vec<f32>) {
    let (shape, x) = &g[&format!("input_{i}")];
    let [n, h, w, _] = [0, 1, 2, 3].map(|k| shape[k] as usize);
    let x01: Vec<f32> = x.iter().map(|v| (v + 1.0) / 2.0).collect();
    (
        model.logits(&x01, n, h, w).unwrap(),
        model.features(&x01, n, h, w).unwrap(),
    )
}

fn model_of(w: &Weights) -> MobileNetV1 {
    MobileNetV1::from_tensors(&w.tensors, w.arch, Head::Logits, &Device::Cpu).unwrap()
}

fn fast_of(w: &Weights) -> CpuMobileNet {
    CpuMobileNet::from_tensors(
        &w.tensors,
        w.arch,
        Head::Logits,
        2,
        Isa::from_env().unwrap(),
    )
    .unwrap()
}

/// Extracts the `.tflite` member of a release-style fixture into `dir`.
fn extract_tflite(archive: &str, dir: &Path) -> PathBuf {
    let file = std::fs::File::open(fixture(archive)).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_path_buf();
        if name.extension().is_some_and(|e| e == "tflite") {
            let out = dir.join(name.file_name().unwrap());
            entry.unpack(&out).unwrap();
            return out;
        }
    }
    panic!("{archive} has no .tflite");
}

/// Checks all three inputs against TensorFlow's checkpoint-graph outputs; returns the worst diffs.
fn check_against_tf(label: &str, w: &Weights, golden_name: &str, inputs: usize) -> (f32, f32) {
    let g = golden(golden_name);
    let model = model_of(w);
    let fast = fast_of(w);
    let (mut worst_logits, mut worst_features) = (0f32, 0f32);
    for i in 0..inputs {
        for (path, (logits, features)) in [
            ("candle", run(&model, &g, i)),
            ("cpu fast path", run_fast(&fast, &g, i)),
        ] {
            let dl = max_abs_diff(&logits, &g[&format!("logits_{i}")].1);
            let df = max_abs_diff(&features, &g[&format!("features_{i}")].1);
            eprintln!("{label} {path} input_{i}: max |logits - TF| = {dl:.2e}, max |features - TF| = {df:.2e}");
            worst_logits = worst_logits.max(dl);
            worst_features = worst_features.max(df);
        }
    }
    assert!(
        worst_logits <= TOLERANCE,
        "{label}: logits differ from TensorFlow by {worst_logits}"
    );
    assert!(
        worst_features <= TOLERANCE,
        "{label}: features differ from TensorFlow by {worst_features}"
    );
    (worst_logits, worst_features)
}

#[test]
fn checkpoint_025_128_matches_tensorflow_including_odd_size() {
    let w = weights::load(&fixture("mobilenet_v1_0.25_128.tgz")).unwrap();
    assert_eq!((w.format, w.arch), ("TF checkpoint", Arch::new(0.25)));
    // Optimizer slots, EMA shadows and global_step are dropped: 27 layers x 5 tensors + 2 logits.
    assert_eq!(w.tensors.len(), 137);
    check_against_tf("ckpt 025_128", &w, "golden_025_128.npz", 3);
}

#[test]
fn checkpoint_050_160_matches_tensorflow_including_odd_size() {
    let w = weights::load(&fixture("mobilenet_v1_0.5_160.tgz")).unwrap();
    assert_eq!(w.arch, Arch::new(0.5));
    check_against_tf("ckpt 050_160", &w, "golden_050_160.npz", 3);
}

#[test]
fn hub_module_archive_matches_tensorflow() {
    let w = weights::load(&fixture("hub_025_128.tar.gz")).unwrap();
    assert_eq!(w.tensors.len(), 137);
    assert!(
        w.tensors.keys().all(|k| k.starts_with("MobilenetV1/")),
        "module/ prefix stripped"
    );
    check_against_tf("hub 025_128", &w, "golden_025_128.npz", 3);
}

#[test]
fn converter_tflite_matches_tensorflow_and_tflite() {
    for (archive, golden_name, arch) in [
        (
            "mobilenet_v1_0.25_128.tgz",
            "golden_025_128.npz",
            Arch::new(0.25),
        ),
        (
            "mobilenet_v1_0.5_160.tgz",
            "golden_050_160.npz",
            Arch::new(0.5),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = extract_tflite(archive, dir.path());
        let w = weights::load(&path).unwrap();
        assert_eq!((w.format, w.arch), (".tflite", arch));
        // The .tflite runs at any size too (folded BN is exact for inference): odd input included.
        check_against_tf(&format!("tflite {archive}"), &w, golden_name, 3);
        let g = golden(golden_name);
        let (model, fast) = (model_of(&w), fast_of(&w));
        for i in 0..2 {
            for (path, (logits, _)) in [
                ("candle", run(&model, &g, i)),
                ("cpu fast path", run_fast(&fast, &g, i)),
            ] {
                let d = max_abs_diff(&logits, &g[&format!("tflite_logits_{i}")].1);
                eprintln!("tflite {archive} {path} input_{i}: max |logits - TFLite| = {d:.2e}");
                assert!(d <= TOLERANCE);
            }
        }
    }
}

#[test]
fn canonical_safetensors_round_trip_is_exact() {
    let w = weights::load(&fixture("mobilenet_v1_0.25_128.tgz")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.safetensors");
    let metadata = weights::safetensors::CanonicalMetadata {
        depth_multiplier: w.arch.depth_multiplier,
        source_format: w.format.to_string(),
        extra: Vec::new(),
    };
    weights::safetensors::write_canonical(&w.tensors, metadata, &out).unwrap();
    let back = weights::load(&out).unwrap();
    assert_eq!(back.format, "safetensors");
    assert_eq!(back.tensors, w.tensors);
    assert_eq!(back.arch.depth_multiplier, 0.25);
}

#[test]
fn weights_of_another_multiplier_are_refused_by_the_model() {
    let w = weights::load(&fixture("mobilenet_v1_0.25_128.tgz")).unwrap();
    let err = MobileNetV1::from_tensors(&w.tensors, Arch::new(0.5), Head::Logits, &Device::Cpu)
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(msg.contains("0.25") && msg.contains("0.5"), "{msg}");
}
