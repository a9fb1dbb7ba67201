//! Issue 15: tar shards as inputs, streamed and Parquet outputs, `--shard K/N`, resumable
//! `--out-dir`. Inputs are made here (synthetic PNG images packed into tar shards with the tar
//! crate); weights are the TensorFlow-made fixture tests/fixtures/mobilenet_v1_0.25_128.tgz
//! (tools/make_fixtures.py). No timings: the killed run is held mid-shard by a FIFO.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int32Type};
use arrow_array::{Array, RecordBatch};
use assert_cmd::Command;
use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::common::fixture;

fn mnv1(sub: &str) -> Command {
    crate::common::mnv1_025("scale", sub)
}

/// A PNG whose pixels depend on `seed` (so every image has its own features).
fn png(seed: u32) -> Vec<u8> {
    let img = ImageBuffer::from_fn(40 + seed % 7, 36, |x, y| {
        Rgb([
            (x * 5 + seed * 31) as u8,
            (y * 7 + seed * 11) as u8,
            (seed * 53) as u8,
        ])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(img)
        .write_to(&mut bytes, ImageFormat::Png)
        .unwrap();
    bytes.into_inner()
}

/// A webdataset shard: for each key, KEY.png beside KEY.json and KEY.txt (which are skipped).
fn shard_bytes(keys: &[(&str, u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    for (key, seed) in keys {
        add(
            &format!("{key}.json"),
            format!("{{\"key\":\"{key}\"}}").as_bytes(),
        );
        add(&format!("{key}.png"), &png(*seed));
        add(&format!("{key}.txt"), b"a caption");
    }
    b.into_inner().unwrap()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<f32>().unwrap())
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The `path` of each JSON line, in order.
fn jsonl_paths(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["path"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn parquet(path: &Path) -> Vec<RecordBatch> {
    let file = fs::File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// embed's Parquet rows: (path, features).
fn embed_rows(path: &Path) -> Vec<(String, Vec<f32>)> {
    let mut rows = Vec::new();
    for b in parquet(path) {
        let paths = b.column_by_name("path").unwrap().as_string::<i32>();
        let features = b.column_by_name("features").unwrap().as_fixed_size_list();
        for r in 0..b.num_rows() {
            let f = features.value(r);
            let f = f.as_primitive::<Float32Type>().values().to_vec();
            rows.push((paths.value(r).to_string(), f));
        }
    }
    rows
}

/// Shards a.tar (3 images), b.tar (2) and a plain file c.png, in `dir`.
fn corpus(dir: &Path) {
    fs::write(
        dir.join("a.tar"),
        shard_bytes(&[("a0", 1), ("a1", 2), ("a2", 3)]),
    )
    .unwrap();
    fs::write(dir.join("b.tar"), shard_bytes(&[("b0", 4), ("b1", 5)])).unwrap();
    fs::write(dir.join("c.png"), png(6)).unwrap();
}

#[test]
fn tar_members_are_inputs_in_archive_order_and_equal_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d);
    // The same images as files.
    for (key, seed) in [("a0", 1), ("a1", 2), ("a2", 3)] {
        fs::write(d.join(format!("{key}.png")), png(seed)).unwrap();
    }
    // A directory contributes its shards too, sorted with the other files (run before any
    // .npy output is written there: those would be inputs too).
    let out = mnv1("classify")
        .current_dir(d)
        .args([".", "-k", "1", "--format", "jsonl"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let names = jsonl_paths(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        names,
        [
            "./a.tar/a0.png",
            "./a.tar/a1.png",
            "./a.tar/a2.png",
            "./a0.png",
            "./a1.png",
            "./a2.png",
            "./b.tar/b0.png",
            "./b.tar/b1.png",
            "./c.png"
        ]
    );
    mnv1("embed")
        .current_dir(d)
        .args(["a.tar", "--out", "shard.npy"])
        .assert()
        .success();
    mnv1("embed")
        .current_dir(d)
        .args(["a0.png", "a1.png", "a2.png", "--out", "files.npy"])
        .assert()
        .success();
    assert_eq!(
        lines(&d.join("shard.npy.paths.txt")),
        ["a.tar/a0.png", "a.tar/a1.png", "a.tar/a2.png"]
    );
    let (shape, from_shard) = npy(&d.join("shard.npy"));
    assert_eq!(shape, [3, 256]);
    // The same bytes decoded the same way: bit for bit.
    assert_eq!(from_shard, npy(&d.join("files.npy")).1);
}

#[test]
fn a_damaged_shard_keeps_the_images_before_the_damage_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d);
    let whole = shard_bytes(&[("x0", 7), ("x1", 8), ("x2", 9)]);
    // Cut in the middle of x1.png's data: x0 is whole.
    let x1 = whole.windows(6).position(|w| w == b"x1.png").unwrap();
    fs::write(d.join("cut.tar"), &whole[..x1 + 512 + 40]).unwrap();
    // A header whose checksum no longer matches (x1.json's), after x0's members.
    let mut bad = whole.clone();
    let x1_json = bad.windows(7).position(|w| w == b"x1.json").unwrap();
    bad[x1_json] = b'y';
    fs::write(d.join("bad.tar"), &bad).unwrap();
    let out = mnv1("embed")
        .current_dir(d)
        .args(["cut.tar", "bad.tar", "b.tar", "--out", "e.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("cut.tar: damaged tar shard after 1 image"),
        "{err}"
    );
    assert!(
        err.contains("bad.tar: damaged tar shard after 1 image"),
        "{err}"
    );
    let names = jsonl_paths(&fs::read_to_string(d.join("e.jsonl")).unwrap());
    assert_eq!(
        names,
        [
            "cut.tar/x0.png",
            "bad.tar/x0.png",
            "b.tar/b0.png",
            "b.tar/b1.png"
        ]
    );
}

/// The names `classify --shard K/N` gives, in order.
fn names_of_part(d: &Path, part: &str) -> Vec<String> {
    let out = mnv1("classify")
        .current_dir(d)
        .args([
            "a.tar",
            "b.tar",
            "c.png",
            "missing.png",
            "-k",
            "1",
            "--format",
            "tsv",
        ])
        .args(["--shard", part])
        .output()
        .unwrap();
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    // A failed input is listed by the part that holds it.
    if stderr_of(&out).contains("missing.png") {
        names.push("missing.png".into());
    }
    names
}

#[test]
fn shard_parts_are_disjoint_cover_every_input_and_keep_tar_shards_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d);
    let all = names_of_part(d, "0/1");
    assert_eq!(all.len(), 7);
    for n in 2..=5 {
        let mut union = Vec::new();
        for k in 0..n {
            let part = names_of_part(d, &format!("{k}/{n}"));
            // The members of one shard are all in the same part.
            for shard in ["a.tar/", "b.tar/"] {
                let here = part.iter().filter(|p| p.starts_with(shard)).count();
                assert!(here == 0 || here == all.iter().filter(|p| p.starts_with(shard)).count());
            }
            union.extend(part);
        }
        union.sort();
        let mut want = all.clone();
        want.sort();
        assert_eq!(union, want, "N = {n}");
    }
    for bad in ["3/3", "1/0", "x", "1/2/3", "-1/2", ""] {
        let out = mnv1("classify")
            .current_dir(d)
            .args(["c.png", "--shard", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr_of(&out));
        assert!(stderr_of(&out).contains("--shard"), "{bad}");
    }
}

fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn out_dir_writes_one_output_per_shard_and_a_rerun_skips_complete_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d);
    let run = |extra: &[&str]| {
        mnv1("embed")
            .current_dir(d)
            .args(["a.tar", "b.tar", "c.png", "--out-dir", "out"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let names: Vec<String> = listing(&d.join("out"))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        ["a.parquet", "b.parquet", "part-00000-of-00001.parquet"]
    );
    // The Parquet rows are those of a single .npy run, bit for bit.
    mnv1("embed")
        .current_dir(d)
        .args(["a.tar", "b.tar", "c.png", "--out", "all.npy"])
        .assert()
        .success();
    let (_, features) = npy(&d.join("all.npy"));
    let rows: Vec<(String, Vec<f32>)> = ["a", "b", "part-00000-of-00001"]
        .iter()
        .flat_map(|n| embed_rows(&d.join("out").join(format!("{n}.parquet"))))
        .collect();
    assert_eq!(
        rows.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
        lines(&d.join("all.npy.paths.txt"))
    );
    assert_eq!(rows.concat_features(), features);

    // A rerun finds every output complete and writes nothing.
    let before = listing(&d.join("out"));
    let mtime = |n: &str| {
        fs::metadata(d.join("out").join(n))
            .unwrap()
            .modified()
            .unwrap()
    };
    let a_time = mtime("a.parquet");
    let out = run(&[]);
    assert!(out.status.success());
    assert!(
        stderr_of(&out).contains("3 output(s)"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(mtime("a.parquet"), a_time);
    // One output missing: only that one is written again, the same bytes.
    fs::remove_file(d.join("out/b.parquet")).unwrap();
    assert!(run(&[]).status.success());
    assert_eq!(listing(&d.join("out")), before);
    assert_eq!(mtime("a.parquet"), a_time);
    // --overwrite redoes them all.
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(run(&["--overwrite"]).status.success());
    assert_ne!(mtime("a.parquet"), a_time);
    assert_eq!(listing(&d.join("out")), before);

    // Two shards with one output name: the second fails, the first is written.
    fs::create_dir(d.join("again")).unwrap();
    fs::copy(d.join("b.tar"), d.join("again/a.tar")).unwrap();
    let out = mnv1("embed")
        .current_dir(d)
        .args([
            "a.tar",
            "again/a.tar",
            "--out-dir",
            "out2",
            "--format",
            "npy",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("rename one of the shards"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(npy(&d.join("out2/a.npy")).0, [3, 256]);
}

trait ConcatFeatures {
    fn concat_features(&self) -> Vec<f32>;
}
impl ConcatFeatures for Vec<(String, Vec<f32>)> {
    fn concat_features(&self) -> Vec<f32> {
        self.iter().flat_map(|(_, f)| f.iter().copied()).collect()
    }
}

#[test]
fn classify_parquet_holds_ranked_predictions_like_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d);
    mnv1("classify")
        .current_dir(d)
        .args(["a.tar", "c.png", "-k", "3", "--out", "p.parquet"])
        .assert()
        .success();
    mnv1("classify")
        .current_dir(d)
        .args(["a.tar", "c.png", "-k", "3", "--out", "p.jsonl"])
        .assert()
        .success();
    let want: Vec<serde_json::Value> = lines(&d.join("p.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let batches = parquet(&d.join("p.parquet"));
    let mut row = 0;
    for b in &batches {
        let paths = b.column_by_name("path").unwrap().as_string::<i32>();
        let lists = b.column_by_name("predictions").unwrap().as_list::<i32>();
        for r in 0..b.num_rows() {
            assert_eq!(paths.value(r), want[row]["path"]);
            let preds = lists.value(r);
            let preds = preds.as_struct();
            assert_eq!(preds.len(), 3);
            for (i, p) in want[row]["predictions"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
            {
                let index = preds
                    .column_by_name("index")
                    .unwrap()
                    .as_primitive::<Int32Type>();
                let label = preds.column_by_name("label").unwrap().as_string::<i32>();
                let prob = preds.column_by_name("probability").unwrap();
                let prob = prob.as_primitive::<Float32Type>();
                assert_eq!(index.value(i) as u64, p["index"].as_u64().unwrap());
                assert_eq!(label.value(i), p["label"].as_str().unwrap());
                // JSON holds the f32's shortest decimal: back to f32, the same bits.
                assert_eq!(prob.value(i), p["probability"].as_f64().unwrap() as f32);
            }
            row += 1;
        }
    }
    assert_eq!(row, 4);
    // A binary format needs a file.
    let out = mnv1("classify")
        .current_dir(d)
        .args(["c.png", "--format", "parquet"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn streamed_npz_and_json_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d);
    mnv1("embed")
        .current_dir(d)
        .args(["a.tar", "c.png", "--out", "f.npz"])
        .assert()
        .success();
    mnv1("embed")
        .current_dir(d)
        .args(["a.tar", "c.png", "--out", "f.npy"])
        .assert()
        .success();
    let mut npz = crate::common::npz::NpzArchive::open(d.join("f.npz")).unwrap();
    let features = npz.by_name("features").unwrap().unwrap();
    assert_eq!(features.shape(), [4, 256]);
    assert_eq!(features.into_vec::<f32>().unwrap(), npy(&d.join("f.npy")).1);
    let paths = npz.by_name("paths").unwrap().unwrap();
    assert_eq!(
        paths.into_vec::<String>().unwrap(),
        ["a.tar/a0.png", "a.tar/a1.png", "a.tar/a2.png", "c.png"]
    );
    // json: one array, also with no rows at all.
    let out = mnv1("classify")
        .current_dir(d)
        .args(["a.tar", "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    let out = mnv1("classify")
        .current_dir(d)
        .args(["missing.png", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[]\n");
    // .npy through a pipe (no seeking there): spooled, then written whole.
    let out = mnv1("embed")
        .current_dir(d)
        .args(["a.tar", "--format", "npy", "--out", "/dev/stdout"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let npy_out = npyz::NpyFile::new(&out.stdout[..]).unwrap();
    assert_eq!(npy_out.shape(), [3, 256]);
}

#[test]
fn a_run_killed_mid_shard_then_rerun_ends_with_the_files_of_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d);
    let whole = shard_bytes(&[("z0", 10), ("z1", 11), ("z2", 12), ("z3", 13)]);
    fs::write(d.join("z.tar"), &whole).unwrap();
    let args = ["a.tar", "b.tar", "z.tar", "c.png", "--out-dir"];
    mnv1("embed")
        .current_dir(d)
        .args(args)
        .arg("whole")
        .assert()
        .success();

    // The interrupted run reads z.tar from a FIFO that stops halfway: the run is then inside
    // z's output (its temporary file exists) and is killed there.
    fs::rename(d.join("z.tar"), d.join("z.tar.real")).unwrap();
    let c = std::ffi::CString::new(d.join("z.tar").to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("mnv1"));
    cmd.env(
        "MNV1_CACHE",
        std::env::temp_dir().join("mnv1-scale-empty-cache"),
    )
    .current_dir(d)
    .args([
        "embed",
        "--variant",
        "025_128",
        "--threads",
        "2",
        "--batch-size",
        "1",
        "--weights",
    ])
    .arg(fixture("mobilenet_v1_0.25_128.tgz"))
    .args(args)
    .arg("killed")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut fifo = fs::OpenOptions::new()
        .write(true)
        .open(d.join("z.tar"))
        .unwrap();
    let half = whole.windows(6).position(|w| w == b"z2.png").unwrap();
    fifo.write_all(&whole[..half]).unwrap();
    fifo.flush().unwrap();
    let killed = d.join("killed");
    let in_z = (0..1200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        fs::read_dir(&killed).is_ok_and(|r| {
            r.filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        }) && killed.join("b.parquet").exists()
    });
    assert!(in_z, "the run never reached z.tar");
    child.kill().unwrap(); // SIGKILL: nothing is cleaned up by the run itself
    child.wait().unwrap();
    drop(fifo);
    assert!(!killed.join("z.parquet").exists());
    fs::remove_file(d.join("z.tar")).unwrap();
    fs::rename(d.join("z.tar.real"), d.join("z.tar")).unwrap();
    let out = mnv1("embed")
        .current_dir(d)
        .args(args)
        .arg("killed")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("2 output(s)"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(listing(&killed), listing(&d.join("whole")));
}
