//! Issue 11 (hardening): what a careless or hostile user could do to mnv1, one test per class.
//! Every input is generated here; weights are the TensorFlow-made fixture
//! tests/fixtures/mobilenet_v1_0.25_128.tgz (tools/make_fixtures.py). No timings: where a run
//! must be under way (signals), the test waits for its temporary file to appear.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{symlink, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use assert_cmd::Command;
use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb};
use mnv1::testing::weights::safetensors::{write_canonical, CanonicalMetadata};

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

fn bin() -> Command {
    let mut cmd = Command::cargo_bin("mnv1").unwrap();
    cmd.env(
        "MNV1_CACHE",
        std::env::temp_dir().join("mnv1-hardening-empty-cache"),
    );
    cmd
}

fn mnv1(sub: &str) -> Command {
    let mut cmd = bin();
    cmd.arg(sub).args(args_025());
    cmd
}

fn good_png(path: &Path) {
    let img = ImageBuffer::from_fn(64, 48, |x, y| Rgb([(x * 4) as u8, (y * 5) as u8, 100]));
    DynamicImage::ImageRgb8(img)
        .save_with_format(path, ImageFormat::Png)
        .unwrap();
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn umask() -> u32 {
    // Read from /proc (Linux 4.7+), not by setting it and back: the other suites of this test
    // binary create files on other threads meanwhile. A child inherits it at spawn.
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn out_writes_through_devices_fifos_and_symlinks_and_keeps_modes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let img = d.join("a.png");
    good_png(&img);
    // A device is written, never replaced (as root, a rename over /dev/null replaced it).
    mnv1("classify")
        .arg(&img)
        .args(["--out", "/dev/null"])
        .assert()
        .success()
        .stdout("");
    assert!(fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    // /dev/stdout: the results arrive on stdout.
    let out = mnv1("classify")
        .arg(&img)
        .args(["--format", "jsonl", "--out", "/dev/stdout"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    // A FIFO: read by someone else while mnv1 writes.
    let fifo = d.join("results.fifo");
    mkfifo(&fifo);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read_to_string(fifo).unwrap())
    };
    mnv1("classify")
        .arg(&img)
        .args(["--format", "jsonl", "--out"])
        .arg(&fifo)
        .assert()
        .success();
    assert!(reader.join().unwrap().contains("\"predictions\""));
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());

    // A symlink: its target is replaced, the link stays; the target keeps its mode.
    let real = d.join("real.jsonl");
    fs::write(&real, "old\n").unwrap();
    fs::set_permissions(&real, fs::Permissions::from_mode(0o604)).unwrap();
    let link = d.join("link.jsonl");
    symlink("real.jsonl", &link).unwrap();
    mnv1("classify")
        .arg(&img)
        .args(["--format", "jsonl", "--out"])
        .arg(&link)
        .assert()
        .success();
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(fs::read_to_string(&real)
        .unwrap()
        .contains("\"predictions\""));
    assert_eq!(
        fs::metadata(&real).unwrap().permissions().mode() & 0o777,
        0o604
    );
    // A new file: 0666 minus the umask (not tempfile's 0600).
    let new = d.join("new.jsonl");
    mnv1("classify")
        .arg(&img)
        .args(["--format", "jsonl", "--out"])
        .arg(&new)
        .assert()
        .success();
    assert_eq!(
        fs::metadata(&new).unwrap().permissions().mode() & 0o777,
        0o666 & !umask()
    );
    // A directory is refused with its name, before any work.
    let out = mnv1("classify")
        .arg(&img)
        .arg("--out")
        .arg(d)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("is a directory"),
        "{}",
        stderr_of(&out)
    );
    // Nothing else was left in the directory.
    assert_eq!(
        names_in(d),
        [
            "a.png",
            "link.jsonl",
            "new.jsonl",
            "real.jsonl",
            "results.fifo"
        ]
    );
}

#[test]
fn an_out_that_is_an_input_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let img = d.join("a.png");
    good_png(&img);
    let before = fs::read(&img).unwrap();
    let cases: Vec<(&str, Vec<std::ffi::OsString>)> = vec![
        (
            "classify",
            vec![img.clone().into(), "--out".into(), img.clone().into()],
        ),
        // Another spelling of the same file.
        (
            "classify",
            vec![
                img.clone().into(),
                "--out".into(),
                d.join(".").join("a.png").into(),
            ],
        ),
        // A file the directory input would pick up.
        (
            "classify",
            vec![d.into(), "--out".into(), img.clone().into()],
        ),
        (
            "embed",
            vec![img.clone().into(), "--out".into(), img.clone().into()],
        ),
    ];
    for (sub, args) in cases {
        let out = mnv1(sub).args(&args).output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("--out"), "{err}");
        assert_eq!(fs::read(&img).unwrap(), before);
    }
    // An .npy whose .paths.txt would overwrite an input.
    let txt = d.join("f.npy.paths.txt");
    fs::write(&txt, b"x").unwrap();
    let out = mnv1("embed")
        .arg(&img)
        .arg(&txt)
        .arg("--out")
        .arg(d.join("f.npy"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    // Named on stdin, the --out file fails as an input; the others are done.
    let out_file = d.join("r.jsonl");
    fs::write(&out_file, b"").unwrap();
    let out = mnv1("classify")
        .args(["-", "--format", "jsonl", "--out"])
        .arg(&out_file)
        .write_stdin(format!("{}\n{}\n", img.display(), out_file.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("this is the --out file"));
    assert_eq!(fs::read_to_string(&out_file).unwrap().lines().count(), 1);
}

/// Starts `classify -` on a long stdin list with --out in `out_dir`, waits for its temporary
/// file, sends `signal`, and returns the exit status.
fn signalled_run(signal: &str, out_dir: &Path, img: &Path) -> std::process::ExitStatus {
    let out = out_dir.join("results.jsonl");
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
    // The list stays open: the run cannot finish before the signal.
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", img.display()).unwrap();
    stdin.flush().unwrap();
    let started = (0..1200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        fs::read_dir(out_dir).unwrap().count() > 0
    });
    assert!(started, "no temporary output appeared");
    let kill = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    drop(stdin);
    status
}

#[test]
fn sigterm_and_sighup_clean_up_like_sigint_and_sigkill_leftovers_go_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img.png");
    good_png(&img);
    for (signal, code) in [("INT", 130), ("TERM", 143), ("HUP", 129)] {
        let out_dir = tempfile::tempdir().unwrap();
        let status = signalled_run(signal, out_dir.path(), &img);
        assert_eq!(status.code(), Some(code), "{signal}");
        assert_eq!(names_in(out_dir.path()), Vec::<String>::new(), "{signal}");
    }
    // SIGKILL cannot be caught: the temporary file stays, and the next run writing there
    // removes it (its owner's pid is gone).
    let out_dir = tempfile::tempdir().unwrap();
    let status = signalled_run("KILL", out_dir.path(), &img);
    assert_eq!(status.code(), None);
    let left = names_in(out_dir.path());
    assert_eq!(left.len(), 1);
    assert!(
        left[0].starts_with(".mnv1-") && left[0].ends_with(".tmp"),
        "{left:?}"
    );
    mnv1("classify")
        .arg(&img)
        .arg("--out")
        .arg(out_dir.path().join("other.txt"))
        .assert()
        .success();
    assert_eq!(names_in(out_dir.path()), ["other.txt"]);
}

#[test]
fn stdin_paths_stream_and_bad_lines_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.png");
    good_png(&img);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("mnv1"))
        .arg("classify")
        .args(args_025())
        .args(["-", "--format", "jsonl", "-k", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", img.display()).unwrap();
    stdin.flush().unwrap();
    // The first result arrives while stdin is still open (bounded wait: a run that waited for
    // the end of stdin would never answer).
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(l)) = lines.next() {
            let _ = tx.send(l);
        }
    });
    let first = rx.recv_timeout(std::time::Duration::from_secs(120));
    if first.is_err() {
        let _ = child.kill();
    }
    assert!(first.unwrap().contains("\"predictions\""));
    // A line longer than a path can be, then a good one: one failure, and stdin is not read
    // further (it is not a list of paths), so the run ends though stdin stays open. Writes may
    // fail with a broken pipe once it has stopped reading.
    let _ = writeln!(stdin, "{}", "x".repeat(100_000));
    let _ = writeln!(stdin, "{}", img.display());
    let _ = stdin.flush();
    let waited = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if waited.elapsed() > std::time::Duration::from_secs(120) {
            let _ = child.kill();
            panic!("mnv1 kept reading stdin after an overlong line");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    drop(stdin);
    assert!(
        rx.recv_timeout(std::time::Duration::from_secs(5)).is_err(),
        "a result after the overlong line"
    );
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("path limit"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// `classify - </dev/zero`: endless stdin with no newline ends at the first NUL byte, and an
/// endless line of path characters at the limit; both are one failed input (exit 1).
#[test]
fn an_endless_stdin_ends_with_a_clear_error() {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("mnv1"))
        .arg("classify")
        .args(args_025())
        .arg("-")
        .stdin(fs::File::open("/dev/zero").unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("classify - </dev/zero did not end");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("NUL byte") && err.contains("<stdin line 1>"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    // `yes x | tr -d '\n'`: an endless line with no NUL.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("mnv1"))
        .arg("classify")
        .args(args_025())
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 1 << 16];
        // Ends when mnv1 closes its end; bounded all the same.
        for _ in 0..16_384 {
            if stdin.write_all(&chunk).is_err() {
                return true;
            }
        }
        false
    });
    let status = child.wait().unwrap();
    assert!(writer.join().unwrap(), "mnv1 read 1 GiB of one line");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("path limit"), "{err}");
}

#[test]
fn devices_are_refused_as_inputs_and_pipes_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.png");
    good_png(&img);
    let out = mnv1("classify")
        .arg("/dev/zero")
        .arg(&img)
        .args(["--format", "jsonl"])
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/dev/zero") && err.contains("character device"),
        "{err}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    // A FIFO (what `<(cat a.png)` gives) is read to its end.
    let fifo = dir.path().join("in.fifo");
    mkfifo(&fifo);
    let writer = {
        let (fifo, img) = (fifo.clone(), img.clone());
        std::thread::spawn(move || fs::write(fifo, fs::read(img).unwrap()).unwrap())
    };
    mnv1("classify")
        .arg(&fifo)
        .args(["--format", "jsonl"])
        .assert()
        .success();
    writer.join().unwrap();
}

fn read_npy_rows(path: &Path) -> u64 {
    let bytes = fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    npy.shape()[0]
}

/// `.paths.txt` lines as README documents them: a line starting with `"` is a JSON string.
fn read_paths_txt(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            if l.starts_with('"') {
                serde_json::from_str(l).unwrap()
            } else {
                l.to_string()
            }
        })
        .collect()
}

#[test]
fn npy_and_paths_txt_agree_with_any_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let names = [
        "plain.png",
        "new\nline.png",
        "\"quoted\".png",
        "carriage\rreturn.png",
        "sep\u{2028}arator.png",
    ];
    let paths: Vec<PathBuf> = names.iter().map(|n| d.join(n)).collect();
    for p in &paths {
        good_png(p);
    }
    let out = d.join("out").join("f.npy");
    fs::create_dir(d.join("out")).unwrap();
    mnv1("embed")
        .args(&paths)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let listed = read_paths_txt(&d.join("out/f.npy.paths.txt"));
    let want: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(listed, want);
    assert_eq!(read_npy_rows(&out), names.len() as u64);
}

#[test]
fn number_options_are_range_checked_with_the_range_in_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.png");
    good_png(&img);
    let cases: &[(&str, &[&str], &str)] = &[
        ("classify", &["--size", "-1"], "32..=1024"),
        ("classify", &["--size", "100000"], "32..=1024"),
        ("classify", &["--batch-size", "0"], "1..=1024"),
        (
            "classify",
            &["--batch-size", "18446744073709551615"],
            "1..=1024",
        ),
        ("classify", &["--threads", "-4"], "1..=1024"),
        ("classify", &["--top-k", "-1"], "1..=1001"),
        ("classify", &["--max-pixels", "0"], "--max-pixels"),
        // Each within range, together more than one batch may hold.
        (
            "classify",
            &["--size", "1024", "--batch-size", "1024"],
            "--batch-size 64 or less",
        ),
        (
            "embed",
            &["--batch-size", "99999999999999999999"],
            "--batch-size",
        ),
    ];
    for (sub, extra, needle) in cases {
        let out = mnv1(sub).arg(&img).args(*extra).output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let bench: &[(&[&str], &str)] = &[
        (&["--runs", "0"], "1..=1000000"),
        (&["--warmup", "-1"], "0..=1000000"),
        (&["--batch", "5000"], "1..=1024"),
        (&["--size", "20"], "32..=1024"),
    ];
    for (extra, needle) in bench {
        let out = bin()
            .args(["bench", "--variant", "025_128"])
            .args(*extra)
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
    let finetune: &[(&[&str], &str)] = &[
        (&["--epochs", "0"], "1..=100000"),
        (&["--batch-size", "100000"], "1..=512"),
        (&["--learning-rate", "-1"], "must be positive"),
        (&["--dropout", "-0.5"], "[0, 1)"),
        (&["--momentum", "NaN"], "[0, 1)"),
    ];
    for (extra, needle) in finetune {
        let out = bin()
            .arg("finetune")
            .arg(dir.path())
            .args(["--variant", "025_128", "--out"])
            .arg(dir.path().join("m"))
            .args(*extra)
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
}

fn canonical_metadata() -> CanonicalMetadata {
    CanonicalMetadata {
        depth_multiplier: 0.25,
        source_format: "tflite".to_string(),
        extra: Vec::new(),
    }
}

/// The fixture's weights as canonical safetensors with one value of one tensor replaced.
fn weights_with(dir: &Path, value: f32) -> (PathBuf, String) {
    let mut w = mnv1::testing::weights::load(&fixture("mobilenet_v1_0.25_128.tgz")).unwrap();
    let name = "MobilenetV1/Conv2d_3_pointwise/weights".to_string();
    w.tensors.get_mut(&name).unwrap().data[7] = value;
    let path = dir.join(format!("w{value}.safetensors"));
    write_canonical(&w.tensors, canonical_metadata(), &path).unwrap();
    (path, name)
}

#[test]
fn non_finite_weights_are_refused_with_the_tensor_name() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.png");
    good_png(&img);
    for value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let (path, name) = weights_with(dir.path(), value);
        for sub in ["classify", "embed"] {
            let out = bin()
                .args([sub, "--variant", "025_128", "--weights"])
                .arg(&path)
                .arg(&img)
                .output()
                .unwrap();
            let err = stderr_of(&out);
            assert_eq!(out.status.code(), Some(2), "{err}");
            assert!(
                err.contains(&name) && err.contains("NaN or infinite"),
                "{err}"
            );
            assert!(out.stdout.is_empty());
        }
        let out = bin()
            .args(["convert"])
            .arg(&path)
            .arg("--out")
            .arg(dir.path().join("c.safetensors"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    }
}

#[test]
fn bench_checks_the_weights_width_like_classify() {
    let out = bin()
        .args([
            "bench",
            "--variant",
            "050_160",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--weights",
        ])
        .arg(fixture("mobilenet_v1_0.25_128.tgz"))
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("depth multiplier 0.25"), "{err}");
    let out = bin()
        .args([
            "bench",
            "--variant",
            "025_160",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--json",
            "--weights",
        ])
        .arg(fixture("mobilenet_v1_0.25_128.tgz"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["variant"], "025_160");
    assert_eq!(report["size"], 160);
}

/// A model directory as `mnv1 finetune` writes it, from the fixture weights (1001 classes),
/// with the manifest's fields set by `edit`.
fn model_dir(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let model = dir.join("model");
    fs::create_dir_all(&model).unwrap();
    let w = mnv1::testing::weights::load(&fixture("mobilenet_v1_0.25_128.tgz")).unwrap();
    write_canonical(
        &w.tensors,
        canonical_metadata(),
        &model.join("model.safetensors"),
    )
    .unwrap();
    let classes: Vec<String> = (0..1001).map(|i| format!("c{i}")).collect();
    let mut m = serde_json::json!({
        "format": "mnv1-finetuned",
        "variant": "025_128",
        "depth_multiplier": 0.25,
        "input_size": 128,
        "classes": classes,
        "preprocessing": {
            "crop": "central",
            "central_fraction": 0.875,
            "resize": "TF1 resize_bilinear",
            "input_range": "[0,1]"
        },
        "training": {
            "weights_source": "x", "weights_format": "x", "epochs": 1, "batch_size": 1,
            "learning_rate": 0.1, "optimizer": "sgd", "momentum": null, "bn_momentum": 0.99,
            "train_backbone": false, "dropout": 0.0, "validation_split": 0.0, "augment": false,
            "seed": 0, "train_images": 1, "validation_images": 0, "seconds": 0.0
        },
        "history": [],
        "initial_validation": null,
        "final_validation": null
    });
    edit(&mut m);
    fs::write(model.join("manifest.json"), m.to_string()).unwrap();
    model
}

/// A change to a manifest.
type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;

#[test]
fn a_model_directory_is_checked_against_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.png");
    good_png(&img);
    let classify = |model: &Path| {
        bin()
            .args(["classify", "--model"])
            .arg(model)
            .arg(&img)
            .output()
            .unwrap()
    };
    let ok = model_dir(dir.path(), |_| {});
    assert!(classify(&ok).status.success());
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|m| m["classes"] = serde_json::json!(["a", "b"])),
            "2 classes",
        ),
        (
            Box::new(|m| m["preprocessing"]["crop"] = "diagonal".into()),
            "crop",
        ),
        (
            Box::new(|m| m["preprocessing"]["central_fraction"] = 7.5.into()),
            "central_fraction",
        ),
        (
            Box::new(|m| m["input_size"] = 1_000_000.into()),
            "32..=1024",
        ),
        (Box::new(|m| m["input_size"] = 3.into()), "32..=1024"),
    ];
    for (i, (edit, needle)) in cases.into_iter().enumerate() {
        let sub = dir.path().join(format!("case{i}"));
        let model = model_dir(&sub, edit);
        let out = classify(&model);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{needle}: {err}");
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn finetune_skips_non_images_refuses_multiline_classes_and_checks_out_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for class in ["a", "b"] {
        fs::create_dir_all(data.join(class)).unwrap();
        for i in 0..2 {
            good_png(&data.join(class).join(format!("{i}.png")));
        }
        fs::write(data.join(class).join("Thumbs.db"), b"not an image").unwrap();
        fs::write(data.join(class).join("notes.txt"), b"not an image").unwrap();
    }
    let finetune = |data: &Path, out: &Path| {
        let mut c = bin();
        c.arg("finetune")
            .arg(data)
            .args(args_025())
            .args(["--epochs", "1", "--validation-split", "0", "--out"])
            .arg(out);
        c.output().unwrap()
    };
    let out = finetune(&data, &dir.path().join("m"));
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("skipped 4 file(s)").count(), 1, "{err}");
    // --out that cannot be a directory: refused before training (no epoch line).
    let file = dir.path().join("file");
    fs::write(&file, b"x").unwrap();
    let out = finetune(&data, &file.join("m"));
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("not a directory") && !err.contains("epoch"),
        "{err}"
    );
    // A class name that labels.txt cannot hold as one line.
    fs::create_dir_all(data.join("two\nlines")).unwrap();
    good_png(&data.join("two\nlines/0.png"));
    let out = finetune(&data, &dir.path().join("m2"));
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("labels.txt"), "{err}");
    assert!(!dir.path().join("m2").exists());
}

#[test]
fn completions_and_man_into_a_closed_pipe_exit_quietly() {
    for args in [
        &["completions", "bash"][..],
        &["completions", "zsh"],
        &["man"],
    ] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("mnv1"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // closed before anything is read
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr_of(&out));
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr_of(&out));
    }
}

#[test]
fn errors_are_said_once_name_their_path_and_io_failures_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.png");
    good_png(&img);
    // convert: its error once.
    let missing = dir.path().join("missing.tgz");
    let out = bin()
        .arg("convert")
        .arg(&missing)
        .arg("--out")
        .arg(dir.path().join("x.safetensors"))
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(err.matches("missing.tgz").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(out.status.code(), Some(1), "an I/O error: {err}");
    // A write that fails names its path, and is an I/O failure in every command.
    let ro = dir.path().join("no-such-dir").join("r.txt");
    for sub in ["classify", "embed"] {
        let out = mnv1(sub)
            .arg(&img)
            .arg("--out")
            .arg(if sub == "embed" {
                ro.with_extension("npy")
            } else {
                ro.clone()
            })
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{sub}: {err}");
        assert!(err.contains("no-such-dir"), "{sub}: {err}");
    }
    let out = bin()
        .arg("convert")
        .arg(fixture("mobilenet_v1_0.25_128.tgz"))
        .arg("--out")
        .arg(ro.with_extension("safetensors"))
        .output()
        .unwrap();
    let err = stderr_of(&out);
    // convert checks its target before reading any weights (export::check_target): a usage error.
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no-such-dir"), "{err}");
}
