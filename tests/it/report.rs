//! What people look at: `report.html` and `--summaries-dir` of `mnv1 finetune`, and the contact
//! sheet of `classify --format html`, including class and file names that hold HTML markup and
//! quotes. Backbone: the random-weight fixture (tests/fixtures/mobilenet_v1_0.25_128.tgz, made by
//! tools/make_fixtures.py); images drawn here.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use image::{Rgb, RgbImage};
use mnv1::testing::report::tfevents::{read_events, write_record, Event, What};
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn mnv1() -> Command {
    let mut cmd = Command::cargo_bin("mnv1").unwrap();
    cmd.env(
        "MNV1_CACHE",
        std::env::temp_dir().join("mnv1-report-empty-cache"),
    );
    cmd
}

/// A flat colour with noise: class `c` is mostly red, green or blue.
fn photo(c: usize, rng: &mut StdRng) -> RgbImage {
    let base = [[200u8, 40, 40], [40, 200, 40], [40, 40, 200]][c % 3];
    RgbImage::from_fn(80, 60, |_, _| {
        Rgb(base.map(|v| v.saturating_add(rng.random_range(0..40))))
    })
}

const ODD_CLASS: &str = "<script>alert(\"x\")<";
const QUOTED_CLASS: &str = "\"quoted\" & 'apos'";

/// Three classes (sorted: `"quoted"...`, `<script>...`, `plain`) of `n` images each, one file
/// name with markup too.
fn dataset(dir: &Path, n: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(5);
    let mut classes = vec![
        ODD_CLASS.to_string(),
        QUOTED_CLASS.to_string(),
        "plain".to_string(),
    ];
    classes.sort();
    for (c, name) in classes.iter().enumerate() {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        for i in 0..n {
            let file = if i == 0 {
                "<b>\"0\"</b>.png".replace('/', "")
            } else {
                format!("{i:02}.png")
            };
            photo(c, &mut rng).save(dir.join(name).join(file)).unwrap();
        }
    }
    classes
}

fn esc(s: &str) -> String {
    mnv1::testing::report::html::esc(s).into_owned()
}

/// The numbers in `<text class="count" ...>N</text>`, in row-major order.
fn confusion_counts(page: &str) -> Vec<usize> {
    page.split("<text class=\"count\"")
        .skip(1)
        .map(|t| {
            let after = &t[t.find('>').unwrap() + 1..];
            after[..after.find('<').unwrap()].parse().unwrap()
        })
        .collect()
}

#[test]
fn finetune_writes_a_report_and_tensorboard_summaries() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let classes = dataset(&data, 6);
    let model = tmp.path().join("model");
    let summaries = tmp.path().join("tb");
    mnv1()
        .arg("finetune")
        .arg(&data)
        .args(["--variant", "025_128", "--weights"])
        .arg(fixture("mobilenet_v1_0.25_128.tgz"))
        .args([
            "--epochs",
            "3",
            "--batch-size",
            "4",
            "--validation-split",
            "0.5",
        ])
        .args([
            "--optimizer",
            "adam",
            "--learning-rate",
            "0.01",
            "--seed",
            "1",
        ])
        .arg("--out")
        .arg(&model)
        .arg("--summaries-dir")
        .arg(&summaries)
        .assert()
        .success();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("manifest.json")).unwrap()).unwrap();
    let page = std::fs::read_to_string(model.join("report.html")).unwrap();

    // Self-contained and escaped: no script, nothing fetched, the names only as text.
    assert!(!page.contains("<script"), "unescaped markup in the page");
    assert!(!page.contains("src=\"http") && !page.contains("<link"));
    for c in &classes {
        assert!(
            page.contains(&format!("<td class=\"class\">{}</td>", esc(c))),
            "class {c} is not in the per-class table"
        );
    }
    assert!(page.contains(&esc(ODD_CLASS)) && esc(ODD_CLASS).contains("&lt;script&gt;"));

    // Every epoch, 0 being the validation before training.
    for epoch in 0..=3 {
        assert!(
            page.contains(&format!("<tr data-epoch=\"{epoch}\">")),
            "epoch {epoch}"
        );
    }
    assert!(!page.contains("data-epoch=\"4\""));
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 2);

    // The confusion matrix counts every validation image once; its diagonal is the accuracy.
    let n_val = manifest["training"]["validation_images"].as_u64().unwrap() as usize;
    let counts = confusion_counts(&page);
    assert_eq!(counts.len(), 9);
    assert_eq!(counts.iter().sum::<usize>(), n_val);
    let correct = counts[0] + counts[4] + counts[8];
    let accuracy = manifest["final_validation"]["accuracy"].as_f64().unwrap();
    assert!((correct as f64 - accuracy * n_val as f64).abs() < 1e-9);
    // One card, with an embedded thumbnail, per mistake.
    let mistakes = page.matches("<figure class=\"mistake\"").count();
    assert_eq!(mistakes, n_val - correct);
    assert_eq!(
        page.matches("<img class=\"thumb\" alt=\"\" src=\"data:image/jpeg;base64,")
            .count(),
        mistakes
    );
    for setting in ["025_128", "adam", "learning rate", "0.01", "frozen", "seed"] {
        assert!(page.contains(setting), "{setting}");
    }
    // Written atomically: no temporary file left beside it.
    let left: Vec<String> = std::fs::read_dir(&model)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".mnv1-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Event files: train/ epochs 1..3, validation/ 0..3, the manifest's figures as float32.
    let scalars = |run: &str| -> Vec<(i64, String, f32)> {
        let dir = summaries.join(run);
        let files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        let events = read_events(&std::fs::read(&files[0]).unwrap()).unwrap();
        assert_eq!(
            events[0].what,
            Some(What::FileVersion("brain.Event:2".into()))
        );
        events[1..]
            .iter()
            .flat_map(|e| match &e.what {
                Some(What::Summary(s)) => s
                    .value
                    .iter()
                    .map(|v| (e.step, v.tag.clone(), v.simple_value.unwrap()))
                    .collect::<Vec<_>>(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let expected = |figures: &serde_json::Value, step: i64| {
        vec![
            (
                step,
                "epoch_loss".to_string(),
                figures["loss"].as_f64().unwrap() as f32,
            ),
            (
                step,
                "epoch_accuracy".to_string(),
                figures["accuracy"].as_f64().unwrap() as f32,
            ),
        ]
    };
    let history = manifest["history"].as_array().unwrap();
    let train: Vec<_> = history
        .iter()
        .flat_map(|e| expected(&e["train"], e["epoch"].as_i64().unwrap()))
        .collect();
    assert_eq!(scalars("train"), train);
    let mut validation: Vec<_> = history
        .iter()
        .flat_map(|e| expected(&e["validation"], e["epoch"].as_i64().unwrap()))
        .collect();
    // The step-0 figures are written last (they come with the trained model).
    validation.extend(expected(&manifest["initial_validation"], 0));
    assert_eq!(scalars("validation"), validation);
}

#[test]
fn an_unwritable_summaries_dir_fails_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    dataset(&data, 2);
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = mnv1()
        .arg("finetune")
        .arg(&data)
        .args(["--variant", "025_128", "--weights"])
        .arg(fixture("mobilenet_v1_0.25_128.tgz"))
        .args(["--epochs", "1", "--out"])
        .arg(tmp.path().join("model"))
        .arg("--summaries-dir")
        .arg(&file)
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("--summaries-dir"), "{stderr}");
    assert!(!stderr.contains("epoch 1/1"), "trained first: {stderr}");
    assert!(!tmp.path().join("model").exists());
}

/// tests/fixtures/tfevents/tensorboard_writer.tfevents was written by TensorBoard's own
/// EventFileWriter (tools/make_tfevents_fixture.py): mnv1 reads it with its checksums, and
/// writes the same scalar events byte for byte.
#[test]
fn tensorboard_writer_fixture_reads_and_re_encodes_identically() {
    let bytes = std::fs::read(fixture("tfevents/tensorboard_writer.tfevents")).unwrap();
    let events = read_events(&bytes).unwrap();
    assert_eq!(
        events[0].what,
        Some(What::FileVersion("brain.Event:2".into()))
    );
    // The SCALARS of the script.
    let want = [
        (1, "epoch_loss", 1.25f32),
        (1, "epoch_accuracy", 0.5),
        (2, "epoch_loss", 0.75),
        (2, "epoch_accuracy", 0.625),
        (3, "epoch_loss", 0.5),
        (3, "epoch_accuracy", 0.875),
    ];
    assert_eq!(events.len(), 1 + want.len());
    let mut ours = Vec::new();
    for (e, (step, tag, v)) in events[1..].iter().zip(want) {
        assert_eq!(e.step, step);
        assert_eq!(e.wall_time, 1_700_000_000.0 + step as f64);
        let Some(What::Summary(s)) = &e.what else {
            panic!("{e:?}")
        };
        assert_eq!(
            (s.value[0].tag.as_str(), s.value[0].simple_value),
            (tag, Some(v))
        );
        write_record(&mut ours, &Event::encode_to_vec(e)).unwrap();
    }
    // The first record (file version plus TensorBoard's source metadata, which mnv1 does not
    // declare) is skipped: everything after it is identical.
    let first_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize + 16;
    assert_eq!(&bytes[first_len..], &ours[..]);
}

fn classify_sheet(inputs: &[PathBuf], extra: &[&str]) -> (String, Option<i32>) {
    let out = mnv1()
        .arg("classify")
        .args(["--variant", "025_128", "--weights"])
        .arg(fixture("mobilenet_v1_0.25_128.tgz"))
        .args(inputs)
        .args(extra)
        .output()
        .unwrap();
    (String::from_utf8(out.stdout).unwrap(), out.status.code())
}

#[test]
fn contact_sheet_has_one_card_per_input_in_order_and_lists_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let odd = tmp.path().join("a \"b\" <script>alert(1)<.png");
    let broken = tmp.path().join("broken.png");
    std::fs::write(&broken, b"not a png").unwrap();
    let mut inputs = vec![];
    for i in 0..4 {
        let p = tmp.path().join(format!("{i}.png"));
        photo(i, &mut rng).save(&p).unwrap();
        inputs.push(p);
    }
    photo(1, &mut rng).save(&odd).unwrap();
    inputs.insert(1, odd.clone());
    inputs.insert(3, broken.clone());
    let sheet = tmp.path().join("out").join("sheet.html");
    std::fs::create_dir_all(sheet.parent().unwrap()).unwrap();
    // --out *.html chooses the format; 2 thumbnails embedded, the rest linked.
    let (stdout, code) = classify_sheet(
        &inputs,
        &[
            "-k",
            "3",
            "--sheet-embed",
            "2",
            "--out",
            sheet.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(1), "one input failed");
    assert!(stdout.is_empty());
    let page = std::fs::read_to_string(&sheet).unwrap();
    assert!(!page.contains("<script"), "unescaped markup");

    // One card per input, in input order (ids i0.. and names).
    let cards: Vec<&str> = page.split("<figure class=\"item").skip(1).collect();
    assert_eq!(cards.len(), inputs.len());
    for (i, (card, input)) in cards.iter().zip(&inputs).enumerate() {
        assert!(card.contains(&format!("id=\"i{i}\"")), "{card}");
        assert!(
            card.contains(&format!("title=\"{}\"", esc(&input.display().to_string()))),
            "card {i} is not {}",
            input.display()
        );
        if input == &broken {
            assert!(card.starts_with(" failed\""), "{card}");
            assert!(!card.contains("<img"));
        } else {
            assert_eq!(card.matches("class=\"thumb\"").count(), 1, "{card}");
            assert_eq!(card.matches("<div class=\"bar\">").count(), 3, "{card}");
        }
    }
    assert_eq!(page.matches("src=\"data:image/jpeg;base64,").count(), 2);
    // Links beyond the limit: relative to the page's directory, escaped for a URL.
    assert!(
        page.contains("loading=\"lazy\" src=\"..&#x2F;2.png\""),
        "{page}"
    );
    assert!(page.contains("a%20%22b%22%20%3Cscript%3Ealert(1)%3C.png"));
    // The failure is listed at the end with its reason, linked to its card.
    let list = &page[page.find("<ul class=\"failures\">").unwrap()..];
    assert_eq!(list.matches("<li>").count(), 1);
    assert!(list.contains("href=\"#i3\"") && list.contains("broken.png"));
    assert!(page.contains("6 inputs: 5 classified, 1 failed"));

    // --format html to stdout: the same cards, every thumbnail embedded by default.
    let (stdout, code) = classify_sheet(&inputs[..2], &["--format", "html"]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout.matches("<figure class=\"item\"").count(), 2);
    assert_eq!(stdout.matches("src=\"data:image/jpeg;base64,").count(), 2);
    assert!(stdout.trim_end().ends_with("</html>"));
}

/// Ctrl-C at different moments of a run: report.html is then absent or whole (it goes through
/// a temporary file renamed into place), and no temporary file is left in the model directory.
#[test]
fn interrupted_finetune_leaves_no_partial_report() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    dataset(&data, 6);
    let mut outcomes = Vec::new();
    for delay_ms in [300u64, 800, 1500, 2500, 4000] {
        let model = tmp.path().join(format!("model-{delay_ms}"));
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("mnv1"))
            .env(
                "MNV1_CACHE",
                std::env::temp_dir().join("mnv1-report-empty-cache"),
            )
            .arg("finetune")
            .arg(&data)
            .args(["--variant", "025_128", "--weights"])
            .arg(fixture("mobilenet_v1_0.25_128.tgz"))
            .args(["--epochs", "3", "--validation-split", "0.5", "--out"])
            .arg(&model)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        // The run may have ended already: then the signal finds nothing, which is fine.
        let _ = std::process::Command::new("kill")
            .arg("-INT")
            .arg(child.id().to_string())
            .status();
        let status = child.wait().unwrap();
        let report = model.join("report.html");
        if status.success() {
            assert!(report.exists(), "a finished run has its report");
        } else {
            assert_eq!(status.code(), Some(130), "{status:?}");
        }
        if report.exists() {
            let page = std::fs::read_to_string(&report).unwrap();
            assert!(page.ends_with("</html>\n"), "a partial report");
        }
        if model.exists() {
            for e in std::fs::read_dir(&model).unwrap() {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                assert!(!name.starts_with(".mnv1-"), "left behind: {name}");
            }
        }
        outcomes.push((delay_ms, status.code(), report.exists()));
    }
    eprintln!("(delay ms, exit code, report written): {outcomes:?}");
}
