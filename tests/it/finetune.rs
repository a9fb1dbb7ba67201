//! `mnv1 finetune` end to end: synthetic class folders (drawn here, saved as PNGs in a temporary
//! directory), the random-weight fixture backbone (tests/fixtures/mobilenet_v1_0.25_128.tgz, made
//! by tools/make_fixtures.py), then `classify --model` / `embed --model` on what it wrote.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use image::{Rgb, RgbImage};
use mnv1::testing::model::arch::LOGITS_SCOPE;
use mnv1::testing::weights;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mobilenet_v1_0.25_128.tgz")
}

/// Three classes: red discs, green horizontal stripes, blue squares, at random sizes, places and
/// shades on a flat grey background with mild pixel noise. (The fixture's random weights give
/// features that a changing background level swamps; real weights would not mind.)
fn draw(class: usize, rng: &mut StdRng) -> RgbImage {
    let n = 96u32;
    let level = 120u8;
    let mut img = RgbImage::from_fn(n, n, |_, _| {
        let g = level.saturating_add(rng.random_range(0..16u8));
        Rgb([g, g, g])
    });
    let (cx, cy) = (rng.random_range(36..60i32), rng.random_range(36..60i32));
    let r = rng.random_range(20..34i32);
    let period = rng.random_range(12..24u32);
    let shade = rng.random_range(170..250u8);
    let colour = [
        Rgb([shade, 30, 30]),
        Rgb([30, shade, 40]),
        Rgb([30, 40, shade]),
    ][class];
    for y in 0..n {
        for x in 0..n {
            let (dx, dy) = (x as i32 - cx, y as i32 - cy);
            let on = match class {
                0 => dx * dx + dy * dy <= r * r,
                1 => (y / (period / 2)) % 2 == 0,
                _ => dx.abs() <= r && dy.abs() <= r,
            };
            if on {
                img.put_pixel(x, y, colour);
            }
        }
    }
    img
}

fn shapes_dataset(dir: &Path, per_class: usize) {
    let mut rng = StdRng::seed_from_u64(42);
    for (c, name) in ["disc", "square", "stripes"].iter().enumerate() {
        // Folder names sort as disc, square, stripes; drawing classes 0, 2, 1.
        let class = [0, 2, 1][c];
        std::fs::create_dir_all(dir.join(name)).unwrap();
        for i in 0..per_class {
            draw(class, &mut rng)
                .save(dir.join(name).join(format!("{i:02}.png")))
                .unwrap();
        }
    }
}

fn mnv1() -> Command {
    Command::cargo_bin("mnv1").unwrap()
}

fn finetune(data: &Path, out: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    mnv1()
        .arg("finetune")
        .arg(data)
        .args(["--variant", "025_128", "--weights"])
        .arg(fixture())
        .arg("--out")
        .arg(out)
        .args(extra)
        .assert()
}

#[test]
fn frozen_backbone_learns_synthetic_shapes_and_serves_classify_and_embed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    shapes_dataset(&data, 16);
    let model = tmp.path().join("model");
    let args = [
        "--epochs",
        "30",
        "--batch-size",
        "8",
        "--optimizer",
        "adam",
        "--learning-rate",
        "0.01",
        "--seed",
        "3",
    ];
    let out = finetune(
        &data,
        &model,
        &[&args[..], &["--assert-accuracy-at-least", "0.95"]].concat(),
    )
    .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("epoch 30/30: train loss"), "{stderr}");
    assert!(
        out.get_output().stdout.is_empty(),
        "stdout is for results only"
    );

    // Manifest: variant, size, classes, figures.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["variant"], "025_128");
    assert_eq!(manifest["input_size"], 128);
    assert_eq!(
        manifest["classes"],
        serde_json::json!(["disc", "square", "stripes"])
    );
    assert_eq!(manifest["history"].as_array().unwrap().len(), 30);
    assert!(
        manifest["final_validation"]["accuracy"].as_f64().unwrap() >= 0.95,
        "{manifest}"
    );
    assert_eq!(
        std::fs::read_to_string(model.join("labels.txt")).unwrap(),
        "disc\nsquare\nstripes\n"
    );

    // Frozen backbone: every backbone tensor bit-identical to the fixture's; the new head [1,1,256,3].
    let before = weights::load(&fixture()).unwrap();
    let after = weights::load(&model.join("model.safetensors")).unwrap();
    for (name, t) in &before.tensors {
        if !name.starts_with(LOGITS_SCOPE) {
            assert_eq!(&after.tensors[name], t, "{name} changed");
        }
    }
    assert_eq!(
        after.tensors[&format!("{LOGITS_SCOPE}/weights")].shape,
        vec![1, 1, 256, 3]
    );
    assert_eq!(
        after.tensors[&format!("{LOGITS_SCOPE}/biases")].shape,
        vec![3]
    );

    // Same seed, same result: every tensor bit-identical, the same figures epoch by epoch.
    let again = tmp.path().join("again");
    finetune(&data, &again, &args).success();
    let twice = weights::load(&again.join("model.safetensors")).unwrap();
    assert!(
        twice.tensors == after.tensors,
        "a second run with the same seed gave other weights"
    );
    let manifest2: serde_json::Value =
        serde_json::from_slice(&std::fs::read(again.join("manifest.json")).unwrap()).unwrap();
    let figures = |m: &serde_json::Value| -> Vec<(f64, f64)> {
        m["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["train"]["loss"].as_f64().unwrap(),
                    e["validation"]["accuracy"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(figures(&manifest), figures(&manifest2));

    // classify --model: labels are the folder names; -k is bounded by the 3 classes.
    let out = mnv1()
        .args(["classify", "--model"])
        .arg(&model)
        .arg(data.join("square/00.png"))
        .args(["-k", "3", "--format", "json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let text = v.to_string();
    for name in ["disc", "square", "stripes"] {
        assert!(text.contains(name), "{text}");
    }
    mnv1()
        .args(["classify", "--model"])
        .arg(&model)
        .arg(data.join("square/00.png"))
        .args(["-k", "4"])
        .assert()
        .code(2);
    mnv1()
        .args(["classify", "--model"])
        .arg(&model)
        .args(["--variant", "050_160"])
        .arg(data.join("square/00.png"))
        .assert()
        .code(2);

    // classify --model --precision int8: the fine-tuned model quantized on its own training
    // images; labels still the folder names, and the same top-1 as fp32 on one image of each.
    let images = ["disc/00.png", "square/00.png", "stripes/00.png"].map(|f| data.join(f));
    let top1 = |extra: &[&std::ffi::OsStr]| -> (Vec<String>, String) {
        let out = mnv1()
            .args(["classify", "--model"])
            .arg(&model)
            .args(["-k", "1", "--format", "tsv"])
            .args(extra)
            .args(&images)
            .assert()
            .success();
        let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
        let labels = stdout
            .lines()
            .skip(1)
            .map(|l| l.split('\t').nth(3).unwrap().to_string())
            .collect();
        (
            labels,
            String::from_utf8(out.get_output().stderr.clone()).unwrap(),
        )
    };
    let (fp32, _) = top1(&[]);
    let (int8, stderr) = top1(&[
        "--precision".as_ref(),
        "int8".as_ref(),
        "--calibrate".as_ref(),
        data.as_os_str(),
    ]);
    assert!(stderr.contains("quantized to int8 per channel"), "{stderr}");
    assert_eq!(int8.len(), 3);
    assert!(
        int8.iter()
            .all(|l| ["disc", "square", "stripes"].contains(&l.as_str())),
        "{int8:?}"
    );
    assert_eq!(int8, fp32);

    // embed --model: the backbone's 256 features.
    let out = mnv1()
        .args(["embed", "--model"])
        .arg(&model)
        .arg(data.join("disc/00.png"))
        .assert()
        .success();
    let line: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(line["features"].as_array().unwrap().len(), 256);
}

#[test]
fn train_backbone_updates_batch_norm_statistics_and_warns_on_small_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    shapes_dataset(&data, 4);
    let model = tmp.path().join("model");
    let out = finetune(
        &data,
        &model,
        &[
            "--train-backbone",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--bn-momentum",
            "0.997",
            "--augment",
            "--dropout",
            "0.2",
        ],
    )
    .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("warning: --batch-size 4 with --train-backbone"),
        "{stderr}"
    );
    let before = weights::load(&fixture()).unwrap();
    let after = weights::load(&model.join("model.safetensors")).unwrap();
    let name = "MobilenetV1/Conv2d_5_pointwise/BatchNorm/moving_mean";
    let (b, a) = (&before.tensors[name].data, &after.tensors[name].data);
    assert_ne!(a, b, "moving averages updated");
    // With momentum 0.997 over a few steps they move by a small fraction of the way only.
    let moved: f32 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    let scale: f32 = b.iter().map(|v| v.abs()).fold(0.0, f32::max);
    assert!(
        moved.is_finite() && moved < 0.1 * scale.max(1.0),
        "moved {moved}"
    );
    let w = "MobilenetV1/Conv2d_3_depthwise/depthwise_weights";
    assert_ne!(
        after.tensors[w].data, before.tensors[w].data,
        "backbone weights trained"
    );
    mnv1()
        .args(["classify", "--model"])
        .arg(&model)
        .arg(data.join("disc/00.png"))
        .assert()
        .success();
}

#[test]
fn assert_accuracy_fails_on_an_unlearnable_task_and_bad_input_is_a_usage_error() {
    // Two classes of the same noise: nothing to learn, so validation cannot reach 100%.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut rng = StdRng::seed_from_u64(5);
    for class in ["a", "b"] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for i in 0..8 {
            let img = RgbImage::from_fn(40, 40, |_, _| {
                Rgb([rng.random(), rng.random(), rng.random()])
            });
            img.save(data.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    let out = finetune(
        &data,
        &tmp.path().join("m"),
        &["--epochs", "2", "--assert-accuracy-at-least", "1.0"],
    )
    .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("is below --assert-accuracy-at-least 1"),
        "{stderr}"
    );

    finetune(&data, &tmp.path().join("m2"), &["--bn-momentum", "1.5"]).code(2);
    let one_class = tmp.path().join("one");
    std::fs::create_dir_all(one_class.join("only")).unwrap();
    std::fs::copy(data.join("a/0.png"), one_class.join("only/0.png")).unwrap();
    let out = finetune(&one_class, &tmp.path().join("m3"), &[]).code(2);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("at least two class"));
}

/// Entries of `dir` whose names start with `prefix`.
fn entries_starting(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn a_failed_or_interrupted_run_leaves_no_model_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    shapes_dataset(&data, 4);

    // A diverging loss: a clear error, exit 1, and nothing at MODEL_DIR.
    let model = tmp.path().join("model");
    let out = finetune(
        &data,
        &model,
        &[
            "--train-backbone",
            "--learning-rate",
            "1e38",
            "--epochs",
            "3",
        ],
    )
    .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("lower --learning-rate"), "{stderr}");
    assert!(!model.exists());
    assert!(entries_starting(tmp.path(), ".model").is_empty());

    // Ctrl-C in the middle of training: exit 130, no model, no staging directory left behind.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mnv1"))
        .arg("finetune")
        .arg(&data)
        .args(["--variant", "025_128", "--weights"])
        .arg(fixture())
        .arg("--out")
        .arg(&model)
        .args(["--train-backbone", "--epochs", "1000", "-q"])
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while entries_starting(tmp.path(), ".model.partial-").is_empty() {
        assert!(
            started.elapsed().as_secs() < 120,
            "no staging directory appeared"
        );
        assert!(child.try_wait().unwrap().is_none(), "finetune ended early");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(!model.exists());
    assert!(entries_starting(tmp.path(), ".model").is_empty());
}

#[test]
fn model_dir_replaces_an_earlier_model_and_refuses_anything_else() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    shapes_dataset(&data, 4);
    let model = tmp.path().join("model");
    finetune(&data, &model, &["--epochs", "1"]).success();
    std::fs::write(model.join("stale.txt"), "from before").unwrap();
    finetune(&data, &model, &["--epochs", "1", "--seed", "3"]).success();
    assert!(model.join("manifest.json").is_file());
    assert!(
        !model.join("stale.txt").exists(),
        "the earlier model was replaced whole"
    );

    let other = tmp.path().join("notes");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("keep.txt"), "mine").unwrap();
    let out = finetune(&data, &other, &["--epochs", "1"]).code(2);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("refusing to replace"));
    assert_eq!(
        std::fs::read_to_string(other.join("keep.txt")).unwrap(),
        "mine"
    );
}
