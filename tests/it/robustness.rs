//! Messy inputs, closed pipes, interrupted runs and wrong usage (issue: "Robust on bad input").
//! Every bad input is generated here; weights are the TensorFlow-made fixture
//! tests/fixtures/mobilenet_v1_0.25_128.tgz (tools/make_fixtures.py).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use assert_cmd::Command;
use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn args_025() -> Vec<std::ffi::OsString> {
    [
        "--variant".into(),
        "025_128".into(),
        "--weights".into(),
        fixture("mobilenet_v1_0.25_128.tgz").into_os_string(),
    ]
    .into()
}

fn mnv1(sub: &str) -> Command {
    let mut cmd = Command::cargo_bin("mnv1").unwrap();
    cmd.env(
        "MNV1_CACHE",
        std::env::temp_dir().join("mnv1-robustness-empty-cache"),
    )
    .arg(sub)
    .args(args_025());
    cmd
}

fn good_png(path: &Path) {
    let img = ImageBuffer::from_fn(64, 48, |x, y| Rgb([(x * 4) as u8, (y * 5) as u8, 100]));
    DynamicImage::ImageRgb8(img)
        .save_with_format(path, ImageFormat::Png)
        .unwrap();
}

fn encoded(format: ImageFormat) -> Vec<u8> {
    let img = DynamicImage::ImageRgb8(ImageBuffer::from_fn(64, 48, |x, y| {
        Rgb([(x * 4) as u8, (y * 5) as u8, 7])
    }));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A PNG whose header claims `w` x `h` pixels (CRC recomputed so decoders read the header).
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut png = encoded(ImageFormat::Png);
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn jsonl(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn each_bad_input_is_one_line_on_stderr_and_the_rest_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    good_png(&d.join("a_good.png"));
    std::fs::write(d.join("b_empty.jpg"), b"").unwrap();
    let jpeg = encoded(ImageFormat::Jpeg);
    std::fs::write(d.join("c_truncated.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    let png = encoded(ImageFormat::Png);
    std::fs::write(d.join("d_truncated.png"), &png[..png.len() / 2]).unwrap();
    std::fs::write(d.join("e_text.jpg"), b"hello, I am text\n").unwrap();
    std::fs::write(d.join("f_bomb.png"), png_claiming(100_000, 100_000)).unwrap();
    std::os::unix::fs::symlink(d.join("nowhere.png"), d.join("g_broken_link.png")).unwrap();
    std::fs::write(
        d.join("h_float64.npy"),
        npy_header("<f8", "(1, 40, 40, 3)", 40 * 40 * 3 * 8),
    )
    .unwrap();
    std::fs::write(
        d.join("i_chw.npy"),
        npy_header("<f4", "(3, 40, 40)", 40 * 40 * 3 * 4),
    )
    .unwrap();
    good_png(&d.join("z_good.png"));
    let out = mnv1("classify")
        .arg(d)
        .args(["--format", "jsonl"])
        .assert()
        .code(1);
    let rows = jsonl(&out.get_output().stdout);
    let done: Vec<&str> = rows.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(done.len(), 2, "{done:?}");
    assert!(done[0].ends_with("a_good.png") && done[1].ends_with("z_good.png"));
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    let bad = [
        "b_empty",
        "c_truncated",
        "d_truncated",
        "e_text",
        "f_bomb",
        "g_broken_link",
        "h_float64",
        "i_chw",
    ];
    assert_eq!(lines.len(), bad.len(), "one line per failure:\n{stderr}");
    for (line, name) in lines.iter().zip(bad) {
        assert!(line.starts_with("mnv1: ") && line.contains(name), "{line}");
    }
    assert!(stderr.contains("exceeds --max-pixels"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn npy_header(descr: &str, shape: &str, data_len: usize) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.resize(out.len() + data_len, 0);
    out
}

#[test]
fn max_pixels_can_be_lowered_and_raised() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img.png");
    good_png(&img); // 64 x 48 = 3072 pixels
    mnv1("classify")
        .arg(&img)
        .args(["--max-pixels", "3000"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("3072"));
    mnv1("classify")
        .arg(&img)
        .args(["--max-pixels", "3072"])
        .assert()
        .success();
}

#[test]
fn fail_fast_stops_at_the_first_failure() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a_bad.png"), b"nope").unwrap();
    good_png(&dir.path().join("b_good.png"));
    let out = mnv1("classify")
        .arg(dir.path())
        .args(["--format", "jsonl", "--fail-fast"])
        .assert()
        .code(1);
    assert!(out.get_output().stdout.is_empty());
    mnv1("classify")
        .arg(dir.path())
        .args(["--format", "jsonl"])
        .assert()
        .code(1)
        .stdout(predicates::str::contains("b_good"));
}

#[test]
fn directories_without_images_and_missing_paths_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
    mnv1("classify")
        .arg(dir.path())
        .assert()
        .code(1)
        .stderr(predicates::str::contains("no images"));
    mnv1("embed")
        .arg(dir.path().join("missing.jpg"))
        .assert()
        .code(1)
        .stderr(predicates::str::contains("missing.jpg"));
}

#[test]
fn awkward_names_survive_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "with space.png",
        "quote\"d 'x'.png",
        "new\nline.png",
        "comma,tab\t.png",
    ];
    for n in names {
        good_png(&dir.path().join(n));
    }
    use std::os::unix::ffi::OsStrExt;
    let non_utf8 = dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9.png"));
    good_png(&non_utf8);
    let paths: Vec<PathBuf> = names.iter().map(|n| dir.path().join(n)).collect();

    let out = mnv1("classify")
        .args(&paths)
        .args(["--format", "jsonl", "-k", "1"])
        .assert()
        .success();
    let rows = jsonl(&out.get_output().stdout);
    for (row, p) in rows.iter().zip(&paths) {
        assert_eq!(row["path"].as_str().unwrap(), p.to_str().unwrap());
    }
    for (format, delim) in [("csv", b','), ("tsv", b'\t')] {
        let out = mnv1("classify")
            .args(&paths)
            .args(["--format", format, "-k", "1"])
            .assert()
            .success();
        let mut r = csv::ReaderBuilder::new()
            .delimiter(delim)
            .from_reader(&out.get_output().stdout[..]);
        let got: Vec<String> = r.records().map(|rec| rec.unwrap()[0].to_string()).collect();
        // A path with a control character is a JSON string, as in the text format (so a
        // record is one line and nothing raw reaches a terminal); others are as they are.
        let want: Vec<String> = paths
            .iter()
            .map(|p| p.to_str().unwrap())
            .map(|p| match p.chars().any(char::is_control) {
                true => serde_json::Value::from(p).to_string(),
                false => p.to_string(),
            })
            .collect();
        assert_eq!(got, want, "{format}");
    }
    let out = mnv1("classify")
        .args(&paths)
        .args(["--format", "text", "-k", "1"])
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert_eq!(
        text.lines().count(),
        2 * paths.len(),
        "a newline in a name stays on one line:\n{text}"
    );
    assert!(text.contains("new\\nline.png"));
    // Non-UTF-8 names are processed; outputs show the byte that is not UTF-8 as \xNN (README
    // "Output files"; U+FFFD would merge names that differ only there).
    let out = mnv1("classify")
        .arg(&non_utf8)
        .args(["--format", "jsonl"])
        .assert()
        .success();
    assert!(jsonl(&out.get_output().stdout)[0]["path"]
        .as_str()
        .unwrap()
        .contains("caf\\xe9.png"));
}

#[test]
fn a_closed_pipe_ends_quietly_with_status_0() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..40 {
        good_png(&dir.path().join(format!("{i:02}.png")));
    }
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("mnv1"))
        .arg("classify")
        .args(args_025())
        .arg(dir.path())
        .args(["-k", "1001", "--batch-size", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.ends_with("00.png\n"), "{first}");
    drop(stdout); // like `| head -1`
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn interrupted_runs_leave_no_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img.png");
    good_png(&img);
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("results.jsonl");
    let list: String = (0..20_000)
        .map(|_| format!("{}\n", img.display()))
        .collect();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("mnv1"))
        .arg("classify")
        .args(args_025())
        .args(["-", "--format", "jsonl", "--out"])
        .arg(&out)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Fed from a thread: written here, the 20,000 paths would block until the run had taken
    // nearly all of them, and the signal would come at its end rather than in the middle.
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        // A broken pipe once the run has stopped is expected.
        let _ = stdin.write_all(list.as_bytes());
    });
    // Wait (bounded) for the temporary file: then the run is under way.
    let started = (0..600).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::fs::read_dir(out_dir.path()).unwrap().count() > 0
    });
    assert!(started, "no temporary output appeared");
    let kill = std::process::Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    feeder.join().unwrap();
    if status.success() {
        // The run finished before the signal: then the output must be complete.
        assert_eq!(
            std::fs::read_to_string(&out).unwrap().lines().count(),
            20_000
        );
    } else {
        assert_eq!(status.code(), Some(130));
        let left: Vec<_> = std::fs::read_dir(out_dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

#[test]
fn out_files_appear_only_complete() {
    let dir = tempfile::tempdir().unwrap();
    good_png(&dir.path().join("a.png"));
    std::fs::write(dir.path().join("b.png"), b"bad").unwrap();
    let out = dir.path().join("r.csv");
    // Some inputs failed: the others' results are written, atomically.
    mnv1("classify")
        .arg(dir.path())
        .arg("--format")
        .arg("csv")
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1)
        .stdout("");
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 1 + 5);
    let leftovers = std::fs::read_dir(dir.path()).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")
    });
    assert_eq!(leftovers.count(), 0);
}

#[test]
fn wrong_usage_reads_like_help() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.png");
    good_png(&img);
    let not_weights = dir.path().join("weights.bin");
    std::fs::write(&not_weights, b"definitely not weights").unwrap();
    let cases: Vec<(Vec<std::ffi::OsString>, &str)> = vec![
        (vec!["--top-k".into(), "1002".into()], "--top-k"),
        (vec!["--size".into(), "31".into()], "--size"),
        (vec!["--format".into(), "xml".into()], "xml"),
        (vec!["--threads".into(), "0".into()], "--threads"),
    ];
    for (extra, needle) in cases {
        mnv1("classify")
            .arg(&img)
            .args(extra)
            .assert()
            .code(2)
            .stderr(predicates::str::contains(needle));
    }
    let mut cmd = Command::cargo_bin("mnv1").unwrap();
    cmd.args(["classify", "--variant", "025_128", "--weights"])
        .arg(&not_weights)
        .arg(&img);
    cmd.assert()
        .code(2)
        .stderr(predicates::str::contains("not a weights file"));
    let mut cmd = Command::cargo_bin("mnv1").unwrap();
    cmd.args(["classify", "--variant", "075_200"])
        .arg(&img)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("075_192"));
}

#[test]
fn quiet_silences_all_but_errors_and_help_has_examples() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("w.safetensors");
    let mut cmd = Command::cargo_bin("mnv1").unwrap();
    cmd.arg("-q")
        .arg("convert")
        .arg(fixture("mobilenet_v1_0.25_128.tgz"))
        .arg("--out")
        .arg(&st)
        .assert()
        .success()
        .stderr("");
    for sub in ["classify", "embed", "list", "convert", "completions", "man"] {
        let mut cmd = Command::cargo_bin("mnv1").unwrap();
        cmd.args([sub, "--help"])
            .assert()
            .success()
            .stdout(predicates::str::contains("Examples:"));
    }
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let mut cmd = Command::cargo_bin("mnv1").unwrap();
        cmd.args(["completions", shell])
            .assert()
            .success()
            .stdout(predicates::str::contains("classify"));
    }
    let mut cmd = Command::cargo_bin("mnv1").unwrap();
    cmd.arg("man")
        .assert()
        .success()
        .stdout(predicates::str::contains(".TH mnv1"));
}
