//! Inputs kept from fuzzing (`fuzz/`, see fuzz/README.md): every file under
//! tests/fixtures/fuzz/<target>/ (crashes found and fixed, plus small corpus entries) and the
//! seeds each target starts from are fed to the reader the target drives, which must return
//! (Ok or Err) without panicking.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use mnv1::testing::inputs::npy::read_npy_images;
use mnv1::testing::weights::checkpoint::Bundle;
use mnv1::testing::weights::tflite::read_tflite;

fn files_in(dirs: &[&str], ext: Option<&str>) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("read dir entry").path();
            let wanted = ext.is_none_or(|e| path.extension().is_some_and(|x| x == e));
            if path.is_file() && wanted {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Runs `read` on every file and fails naming each file whose read panicked.
fn assert_no_panics(files: &[PathBuf], read: impl Fn(&[u8])) {
    assert!(!files.is_empty(), "no inputs found");
    let panicked: Vec<String> = files
        .iter()
        .filter(|path| {
            let bytes = std::fs::read(path).expect("read input");
            catch_unwind(AssertUnwindSafe(|| read(&bytes))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(panicked.is_empty(), "panicked on: {panicked:?}");
}

/// Same layout as fuzz/fuzz_targets/checkpoint_index.rs: a little-endian u16 index length,
/// the index, then the shard that every entry is read from.
fn read_checkpoint_input(data: &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let split = (u16::from_le_bytes(*len) as usize).min(rest.len());
    let (index, shard) = rest.split_at(split);
    let Ok(bundle) = Bundle::parse_index(index) else {
        return;
    };
    let names: Vec<String> = bundle.entries().map(|(n, _)| n.to_owned()).collect();
    for name in names {
        let _ = bundle.read_f32(&name, shard);
    }
}

#[test]
fn checkpoint_index_inputs_do_not_panic() {
    let files = files_in(
        &[
            "tests/fixtures/fuzz/checkpoint_index",
            "fuzz/seeds/checkpoint_index",
        ],
        None,
    );
    assert_no_panics(&files, read_checkpoint_input);
}

/// The `.tflite` seed (inside the release-style fixture archive), too large to keep as a file.
fn fixture_tflite() -> Vec<u8> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mobilenet_v1_0.25_128.tgz");
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(path).expect("open fixture"));
    let mut archive = tar::Archive::new(gz);
    for entry in archive.entries().expect("read tar") {
        let mut entry = entry.expect("tar entry");
        if entry
            .path()
            .expect("entry path")
            .extension()
            .is_some_and(|e| e == "tflite")
        {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).expect("read .tflite");
            return bytes;
        }
    }
    panic!("no .tflite in the fixture archive");
}

#[test]
fn tflite_inputs_do_not_panic() {
    let files = files_in(&["tests/fixtures/fuzz/tflite"], None);
    for path in &files {
        let bytes = std::fs::read(path).expect("read input");
        let result = catch_unwind(AssertUnwindSafe(|| read_tflite(&bytes)));
        assert!(result.is_ok(), "panicked on {}", path.display());
    }
    // The seed itself, and truncations of it (each must be refused, not panic).
    let seed = fixture_tflite();
    assert!(read_tflite(&seed).is_ok(), "the seed .tflite must parse");
    for len in [
        0,
        7,
        8,
        64,
        1 << 10,
        1 << 16,
        seed.len() / 2,
        seed.len() - 1,
    ] {
        let result = catch_unwind(AssertUnwindSafe(|| read_tflite(&seed[..len])));
        assert!(result.is_ok(), "panicked on the seed cut to {len} bytes");
    }
}

#[test]
fn npy_inputs_do_not_panic() {
    let mut files = files_in(&["tests/fixtures/fuzz/npy"], None);
    files.extend(files_in(&["tests/fixtures/preprocess"], Some("npy")));
    assert_no_panics(&files, |b| {
        let _ = read_npy_images(b);
    });
}
