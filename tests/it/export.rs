//! `mnv1 convert --out *.tflite|*.onnx` and `mnv1 finetune --export` through the binary: what they
//! write reads back, and bad targets or model directories fail with exit code 2 and leave no file.
//! Weights: tests/fixtures/mobilenet_v1_0.25_128.tgz (tools/make_fixtures.py).

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use image::{Rgb, RgbImage};
use mnv1::testing::model::arch::LOGITS_SCOPE;
use mnv1::testing::weights;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mobilenet_v1_0.25_128.tgz")
}

fn mnv1() -> Command {
    Command::cargo_bin("mnv1").unwrap()
}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

/// Names in `dir` (temporaries included).
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn convert_exports_tflite_and_onnx_that_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let tfl = tmp.path().join("m.tflite");
    mnv1()
        .arg("convert")
        .arg(fixture())
        .args(["--variant", "025_128", "--out"])
        .arg(&tfl)
        .assert()
        .success();
    let back = weights::load(&tfl).unwrap();
    assert_eq!(back.format, ".tflite");
    assert_eq!(
        back.tensors[&format!("{LOGITS_SCOPE}/weights")].shape,
        [1, 1, 256, 1001]
    );
    // The export is itself weights mnv1 serves.
    mnv1()
        .arg("bench")
        .args([
            "--variant",
            "025_128",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--weights",
        ])
        .arg(&tfl)
        .assert()
        .success();

    let feats = tmp.path().join("f.onnx");
    mnv1()
        .arg("convert")
        .arg(fixture())
        .args(["--size", "160", "--head", "features", "--out"])
        .arg(&feats)
        .assert()
        .success();
    assert!(std::fs::metadata(&feats).unwrap().len() > 400_000);
    assert_eq!(listing(tmp.path()), ["f.onnx", "m.tflite"]);
}

#[test]
fn convert_variant_takes_the_weights_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    // What `mnv1 fetch` leaves there: canonical safetensors with their checksum.
    mnv1()
        .arg("convert")
        .arg(fixture())
        .arg("--out")
        .arg(cache.join("mobilenet_v1_0.25_128.safetensors"))
        .assert()
        .success();
    let onnx = tmp.path().join("m.onnx");
    mnv1()
        .env("MNV1_CACHE", &cache)
        .args(["convert", "--variant", "025_128", "--offline", "--out"])
        .arg(&onnx)
        .assert()
        .success();
    assert!(std::fs::metadata(&onnx).unwrap().len() > 1_000_000);
}

#[test]
fn bad_targets_are_usage_errors_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let a = mnv1()
        .arg("convert")
        .arg(fixture())
        .args(["--variant", "025_128", "--out"])
        .arg(tmp.path().join("missing/m.tflite"))
        .assert()
        .code(2);
    assert!(stderr(&a).contains("does not exist"), "{}", stderr(&a));
    let a = mnv1()
        .arg("convert")
        .arg(fixture())
        .args(["--variant", "025_128", "--out"])
        .arg(tmp.path().join("m.pb"))
        .assert()
        .code(2);
    assert!(stderr(&a).contains("unknown output type"), "{}", stderr(&a));
    // No resolution known for a bare weights file.
    let a = mnv1()
        .arg("convert")
        .arg(fixture())
        .arg("--out")
        .arg(tmp.path().join("m.onnx"))
        .assert()
        .code(2);
    assert!(stderr(&a).contains("--variant"), "{}", stderr(&a));
    let a = mnv1()
        .arg("convert")
        .arg(fixture())
        .args(["--head", "features", "--out"])
        .arg(tmp.path().join("w.safetensors"))
        .assert()
        .code(2);
    assert!(stderr(&a).contains("--head applies to"), "{}", stderr(&a));
    assert!(listing(tmp.path()).is_empty());
}

#[test]
fn a_broken_model_directory_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(
        model.join("manifest.json"),
        "{\"format\": \"mnv1-finetuned\", ",
    )
    .unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let a = mnv1()
        .arg("convert")
        .args(["--model"])
        .arg(&model)
        .arg("--out")
        .arg(out.join("m.tflite"))
        .assert()
        .code(2);
    assert!(stderr(&a).contains("manifest.json"), "{}", stderr(&a));
    assert!(listing(&out).is_empty());
}

/// Two classes of flat colours, a few images each.
fn colours_dataset(dir: &Path) {
    for (name, rgb) in [("blue", [20u8, 40, 220]), ("red", [220, 30, 20])] {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        for i in 0..4u8 {
            let img = RgbImage::from_fn(48, 48, |x, y| {
                let n = ((x * 7 + y * 13) % 16) as u8 + i;
                Rgb([rgb[0].saturating_add(n), rgb[1], rgb[2].saturating_sub(n)])
            });
            img.save(dir.join(name).join(format!("{i}.png"))).unwrap();
        }
    }
}

#[test]
fn finetune_export_writes_a_k_class_tflite_and_refuses_bad_targets_first() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    colours_dataset(&data);
    let run_with = |out: &str, export: &Path, extra: &[&str]| {
        mnv1()
            .arg("finetune")
            .arg(&data)
            .args(["--variant", "025_128", "--epochs", "1", "--weights"])
            .arg(fixture())
            .arg("--out")
            .arg(tmp.path().join(out))
            .arg("--export")
            .arg(export)
            .args(extra)
            .assert()
    };
    let run = |out: &str, export: &Path| run_with(out, export, &[]);
    // Refused before training: no model directory appears.
    let a = run("m1", &tmp.path().join("ft.h5")).code(2);
    assert!(stderr(&a).contains("unknown output type"), "{}", stderr(&a));
    assert!(!tmp.path().join("m1").exists());

    let tfl = tmp.path().join("ft.tflite");
    run("m2", &tfl).success();
    let back = weights::load(&tfl).unwrap();
    assert_eq!(
        back.tensors[&format!("{LOGITS_SCOPE}/weights")].shape,
        [1, 1, 256, 2]
    );
    // The same network as the model directory's.
    let dir = weights::load(&tmp.path().join("m2/model.safetensors")).unwrap();
    assert_eq!(
        back.tensors[&format!("{LOGITS_SCOPE}/biases")],
        dir.tensors[&format!("{LOGITS_SCOPE}/biases")]
    );
    // --quantize int8: refused for ONNX before training; a full-integer .tflite of K classes,
    // calibrated on the training images.
    let a = run_with("m3", &tmp.path().join("ft.onnx"), &["--quantize", "int8"]).code(2);
    assert!(
        stderr(&a).contains("full-integer .tflite"),
        "{}",
        stderr(&a)
    );
    assert!(!tmp.path().join("m3").exists());
    let q = tmp.path().join("ftq.tflite");
    run_with("m4", &q, &["--quantize", "int8"]).success();
    let back = weights::load(&q).unwrap();
    let net = back.quantized.expect("a quantized model");
    assert_eq!(net.logits.as_ref().map(|l| l.out_channels), Some(2));
}
