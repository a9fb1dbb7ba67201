//! Fixtures: tests/fixtures/checkpoint/{tiny,partitioned}.ckpt.*, written by TensorFlow's
//! SaveV2 op through tools/make_checkpoint_fixture.py; every golden value below comes from
//! that script (its docstring lists the formulas).

use std::path::{Path, PathBuf};

use super::crc::{crc32c, mask_crc};
use super::table::{for_each_table_entry, FOOTER_LEN, TABLE_MAGIC};
use super::*;

fn fixture_prefix(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/checkpoint")
        .join(name)
}

/// (index bytes, shard bytes) of a fixture checkpoint.
fn fixture(name: &str) -> (Vec<u8>, Vec<u8>) {
    let prefix = fixture_prefix(name);
    let read = |suffix: &str| std::fs::read(with_suffix(&prefix, suffix)).unwrap();
    (read(".index"), read(".data-00000-of-00001"))
}

/// The raw (key, value) pairs of a table.
fn table_entries(index: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut entries = Vec::new();
    for_each_table_entry(index, "test", |k, v| {
        entries.push((k.to_vec(), v.to_vec()));
        Ok(())
    })
    .unwrap();
    entries
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One table block, prefix-compressed with a restart point every `restart_interval` entries.
fn build_block(entries: &[(Vec<u8>, Vec<u8>)], restart_interval: usize) -> Vec<u8> {
    let (mut block, mut restarts, mut prev) = (Vec::new(), Vec::new(), &[][..]);
    for (i, (key, value)) in entries.iter().enumerate() {
        let shared = if i % restart_interval == 0 {
            restarts.push(block.len() as u32);
            0
        } else {
            prev.iter().zip(key).take_while(|(a, b)| a == b).count()
        };
        for n in [shared, key.len() - shared, value.len()] {
            put_varint(&mut block, n as u64);
        }
        block.extend_from_slice(&key[shared..]);
        block.extend_from_slice(value);
        prev = key;
    }
    if restarts.is_empty() {
        restarts.push(0);
    }
    for r in &restarts {
        block.extend_from_slice(&r.to_le_bytes());
    }
    block.extend_from_slice(&(restarts.len() as u32).to_le_bytes());
    block
}

/// Appends a block and its trailer; returns the encoded BlockHandle.
fn append_block(out: &mut Vec<u8>, block: &[u8], kind: u8) -> Vec<u8> {
    let mut handle = Vec::new();
    put_varint(&mut handle, out.len() as u64);
    put_varint(&mut handle, block.len() as u64);
    out.extend_from_slice(block);
    out.push(kind);
    out.extend_from_slice(&mask_crc(crc32c(crc32c(0, block), &[kind])).to_le_bytes());
    handle
}

/// A LevelDB table laid out as TensorFlow's TableBuilder does, but with `per_block`
/// entries per data block, so tests can build multi-block and deliberately odd indexes.
fn build_table(entries: &[(Vec<u8>, Vec<u8>)], per_block: usize, kind: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut index = Vec::new();
    for chunk in entries.chunks(per_block) {
        let handle = append_block(&mut out, &build_block(chunk, 2), kind);
        index.push((chunk.last().unwrap().0.clone(), handle));
    }
    let mut footer = append_block(&mut out, &build_block(&[], 1), 0);
    footer.extend(append_block(&mut out, &build_block(&index, 1), 0));
    footer.resize(40, 0);
    out.extend(footer);
    out.extend_from_slice(&TABLE_MAGIC.to_le_bytes());
    out
}

fn encode_entry(dtype: u64, dims: &[u64], offset: u64, size: u64, crc: u32) -> Vec<u8> {
    let mut shape = Vec::new();
    for &d in dims {
        let mut dim = vec![0x08];
        put_varint(&mut dim, d);
        shape.push(0x12);
        put_varint(&mut shape, dim.len() as u64);
        shape.extend(dim);
    }
    let mut e = vec![0x08];
    put_varint(&mut e, dtype);
    e.push(0x12);
    put_varint(&mut e, shape.len() as u64);
    e.extend(shape);
    e.push(0x20);
    put_varint(&mut e, offset);
    e.push(0x28);
    put_varint(&mut e, size);
    e.push(0x35);
    e.extend_from_slice(&crc.to_le_bytes());
    e
}

/// A one-shard index: the fixture's header plus the given entries.
fn forged_index(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let header = table_entries(&fixture("tiny.ckpt").0).remove(0);
    assert!(header.0.is_empty());
    let mut all = vec![header];
    all.extend(
        entries
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.clone())),
    );
    build_table(&all, 16, 0)
}

/// Where the float tensor that ends last in the shard ends.
fn last_float_end(bundle: &Bundle) -> usize {
    let floats = bundle.entries().filter(|(_, e)| e.dtype == DT_FLOAT);
    floats
        .map(|(_, e)| (e.offset + e.size) as usize)
        .max()
        .unwrap()
}

fn float_names() -> Vec<String> {
    let mut names = vec!["MobilenetV1/Conv2d_0/weights".to_owned()];
    for k in 1..=13 {
        for p in ["beta", "gamma"] {
            names.push(format!("MobilenetV1/Conv2d_{k}_depthwise/BatchNorm/{p}"));
        }
    }
    names.extend(["MobilenetV1/Logits/Conv2d_1c_1x1/biases", "empty", "scalar"].map(String::from));
    names.sort();
    names
}

#[test]
fn crc32c_matches_the_standard_check_value() {
    assert_eq!(crc32c(0, b"123456789"), 0xe306_9283);
    assert_eq!(crc32c(crc32c(0, b"1234"), b"56789"), 0xe306_9283);
    // Extending a crc gives the crc of the whole, wherever the bytes are split.
    let long: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
    let whole = crc32c(0, &long);
    for split in [1, 7, 8, 9, 500, 999] {
        assert_eq!(crc32c(crc32c(0, &long[..split]), &long[split..]), whole);
    }
    assert_eq!(mask_crc(0), 0xa282_ead8);
    // rotr(0xE3069283, 15) = 0x2507C60D, plus 0xA282EAD8 (as report/tfevents.rs's test).
    assert_eq!(mask_crc(0xe306_9283), 0xc78a_b0e5);
}

#[test]
fn lists_every_entry_of_a_tensorflow_index() {
    let (index, _) = fixture("tiny.ckpt");
    assert!(is_bundle_index(&index));
    let bundle = Bundle::parse_index(&index).unwrap();
    assert_eq!(bundle.num_shards(), 1);
    let mut expected = float_names();
    expected.extend(["doubles", "global_step", "ints", "label"].map(String::from));
    expected.sort();
    let names: Vec<&str> = bundle.entries().map(|(n, _)| n).collect();
    assert_eq!(names, expected);

    let types: BTreeMap<&str, (i32, Vec<usize>)> = bundle
        .entries()
        .map(|(n, e)| (n, (e.dtype, e.shape.clone())))
        .collect();
    assert_eq!(
        types["MobilenetV1/Conv2d_0/weights"],
        (DT_FLOAT, vec![3, 3, 3, 2])
    );
    assert_eq!(types["scalar"], (DT_FLOAT, vec![]));
    assert_eq!(types["empty"], (DT_FLOAT, vec![0, 3]));
    assert_eq!(types["global_step"], (DT_INT64, vec![]));
    assert_eq!(types["ints"], (3, vec![3]));
    assert_eq!(types["doubles"], (2, vec![2]));
    assert_eq!(types["label"], (7, vec![]));
    let step = bundle.entry("global_step").unwrap();
    assert_eq!((step.shard_id, step.size), (0, 8));
}

#[test]
fn reads_float_tensors_with_golden_values() {
    let (index, shard) = fixture("tiny.ckpt");
    let bundle = Bundle::parse_index(&index).unwrap();
    let weights = bundle
        .read_f32("MobilenetV1/Conv2d_0/weights", &shard)
        .unwrap();
    assert_eq!(weights.shape, [3, 3, 3, 2]);
    let golden: Vec<f32> = (0..54).map(|i| (i as f32 - 20.0) * 0.125).collect();
    assert_eq!(weights.data, golden);
    for k in 1..=13 {
        let k_f = k as f32;
        let base = format!("MobilenetV1/Conv2d_{k}_depthwise/BatchNorm/");
        let gamma = bundle.read_f32(&format!("{base}gamma"), &shard).unwrap();
        assert_eq!(gamma, RawTensor::new(vec![2], vec![k_f, k_f + 0.5]));
        let beta = bundle.read_f32(&format!("{base}beta"), &shard).unwrap();
        assert_eq!(beta, RawTensor::new(vec![2], vec![-k_f, -k_f - 0.5]));
    }
    let biases = bundle
        .read_f32("MobilenetV1/Logits/Conv2d_1c_1x1/biases", &shard)
        .unwrap();
    assert_eq!(biases.data, [0.0, 0.25, 0.5, 0.75, 1.0]);
    assert_eq!(
        bundle.read_f32("scalar", &shard).unwrap(),
        RawTensor::new(vec![], vec![2.5])
    );
    assert_eq!(
        bundle.read_f32("empty", &shard).unwrap(),
        RawTensor::new(vec![0, 3], vec![])
    );
}

#[test]
fn read_checkpoint_returns_every_float_tensor() {
    let (index, shard) = fixture("tiny.ckpt");
    let bundle = Bundle::parse_index(&index).unwrap();
    let tensors = read_checkpoint(&fixture_prefix("tiny.ckpt")).unwrap();
    assert_eq!(tensors.keys().cloned().collect::<Vec<_>>(), float_names());
    for (name, tensor) in &tensors {
        assert_eq!(tensor, &bundle.read_f32(name, &shard).unwrap());
    }
}

#[test]
fn non_float_and_missing_tensors_are_clear_errors() {
    let (index, shard) = fixture("tiny.ckpt");
    let bundle = Bundle::parse_index(&index).unwrap();
    let err = bundle.read_f32("global_step", &shard).unwrap_err();
    assert!(
        matches!(
            err,
            CheckpointError::UnsupportedDtype {
                dtype: DT_INT64,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("`global_step` has dtype 9 (DT_INT64)"),
        "{err}"
    );
    let err = bundle
        .read_f32("MobilenetV1/Conv2d_0/weightz", &shard)
        .unwrap_err();
    assert!(matches!(err, CheckpointError::NoSuchTensor { .. }), "{err}");
}

#[test]
fn partitioned_tensors_are_listed_but_not_read() {
    let (index, shard) = fixture("partitioned.ckpt");
    let bundle = Bundle::parse_index(&index).unwrap();
    // TensorFlow also stores each slice under a binary key starting with a 0 byte.
    assert!(table_entries(&index)
        .iter()
        .any(|(k, _)| k.first() == Some(&0)));
    let entries: Vec<(&str, Vec<usize>)> = bundle
        .entries()
        .map(|(n, e)| (n, e.shape.clone()))
        .collect();
    assert_eq!(entries, [("partitioned", vec![4]), ("plain", vec![2])]);
    assert_eq!(bundle.read_f32("plain", &shard).unwrap().data, [-1.0, 1.0]);
    let err = bundle.read_f32("partitioned", &shard).unwrap_err();
    assert!(
        err.to_string().contains("`partitioned` is partitioned"),
        "{err}"
    );
    let err = read_checkpoint(&fixture_prefix("partitioned.ckpt")).unwrap_err();
    assert!(matches!(err, CheckpointError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("partitioned.ckpt.index"), "{err}");
}

#[test]
fn multi_block_tables_read_like_tensorflows_single_block() {
    let (index, shard) = fixture("tiny.ckpt");
    let original = Bundle::parse_index(&index).unwrap();
    let raw = table_entries(&index);
    for per_block in [1, 3, 7] {
        let rebuilt = Bundle::parse_index(&build_table(&raw, per_block, 0)).unwrap();
        assert!(
            rebuilt.entries().eq(original.entries()),
            "{per_block} entries per block"
        );
        let name = "MobilenetV1/Conv2d_0/weights";
        assert_eq!(
            rebuilt.read_f32(name, &shard).unwrap(),
            original.read_f32(name, &shard).unwrap()
        );
    }
}

#[test]
fn recognises_an_index_by_its_magic() {
    let (index, shard) = fixture("tiny.ckpt");
    assert!(is_bundle_index(&index));
    assert!(!is_bundle_index(&shard));
    assert!(!is_bundle_index(&index[..index.len() - 1]));
    assert!(!is_bundle_index(&index[index.len() - 8..]));
    assert!(!is_bundle_index(&[]));
}

#[test]
fn bad_magic_and_truncation_are_reported() {
    let (index, _) = fixture("tiny.ckpt");
    let mut bad = index.clone();
    *bad.last_mut().unwrap() ^= 1;
    let err = Bundle::parse_index(&bad).unwrap_err();
    assert!(matches!(err, CheckpointError::BadMagic { .. }), "{err}");
    let err = Bundle::parse_index(&index[..20]).unwrap_err();
    assert!(matches!(err, CheckpointError::Truncated { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("shorter than the 48-byte table footer"),
        "{err}"
    );
    for len in 0..index.len() {
        assert!(
            Bundle::parse_index(&index[..len]).is_err(),
            "cut to {len} bytes"
        );
    }
    // The footer intact, the blocks before it cut short.
    let mut cut = index[..100].to_vec();
    cut.extend_from_slice(&index[index.len() - FOOTER_LEN..]);
    let err = Bundle::parse_index(&cut).unwrap_err();
    assert!(matches!(err, CheckpointError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("index block"), "{err}");
}

#[test]
fn flipped_bytes_in_the_index_are_crc_errors() {
    let (index, _) = fixture("tiny.ckpt");
    // Byte 40 lies in the data block, the byte 20 from the end in the index block
    // (the footer is the last 48, the index block's trailer just before it).
    for (pos, what) in [
        (40, "data block at offset 0"),
        (index.len() - FOOTER_LEN - 8, "index block"),
    ] {
        let mut bad = index.clone();
        bad[pos] ^= 0x10;
        let err = Bundle::parse_index(&bad).unwrap_err();
        assert!(matches!(err, CheckpointError::CrcMismatch { .. }), "{err}");
        assert!(err.to_string().contains(what), "{err}");
    }
}

#[test]
fn flipped_byte_in_a_shard_is_a_crc_error() {
    let (index, mut shard) = fixture("tiny.ckpt");
    let bundle = Bundle::parse_index(&index).unwrap();
    let name = "MobilenetV1/Conv2d_0/weights";
    let entry = bundle.entry(name).unwrap();
    shard[entry.offset as usize + 5] ^= 0x80;
    let err = bundle.read_f32(name, &shard).unwrap_err();
    assert!(matches!(err, CheckpointError::CrcMismatch { .. }), "{err}");
    assert!(
        err.to_string().starts_with(
            "checkpoint data shard 0: crc32c mismatch in tensor `MobilenetV1/Conv2d_0/weights`"
        ),
        "{err}"
    );
    // Other tensors still read.
    assert!(bundle.read_f32("scalar", &shard).is_ok());
}

#[test]
fn errors_from_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (index, mut shard) = fixture("tiny.ckpt");
    let prefix = dir.path().join("model.ckpt");
    std::fs::write(with_suffix(&prefix, ".index"), &index).unwrap();
    let data_path = with_suffix(&prefix, ".data-00000-of-00001");
    let err = read_checkpoint(&prefix).unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }), "{err}");
    assert!(
        err.to_string().contains(&*data_path.to_string_lossy()),
        "{err}"
    );
    shard.truncate(last_float_end(&Bundle::parse_index(&index).unwrap()) - 2);
    std::fs::write(&data_path, &shard).unwrap();
    let err = read_checkpoint(&prefix).unwrap_err();
    assert!(matches!(err, CheckpointError::OutOfBounds { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&*data_path.to_string_lossy()),
        "{err}"
    );
    let err = read_checkpoint(&dir.path().join("absent.ckpt")).unwrap_err();
    assert!(err.to_string().contains("absent.ckpt.index"), "{err}");
}

#[test]
fn entries_pointing_beyond_the_shard_are_out_of_bounds() {
    let (index, shard) = fixture("tiny.ckpt");
    let bundle = Bundle::parse_index(&index).unwrap();
    let end = last_float_end(&bundle);
    let (last, _) = bundle
        .entries()
        .find(|(_, e)| e.offset + e.size == end as u64)
        .unwrap();
    let err = bundle.read_f32(last, &shard[..end - 1]).unwrap_err();
    assert!(matches!(err, CheckpointError::OutOfBounds { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("past the end of its shard ({} bytes)", end - 1)),
        "{err}"
    );
    // Offsets near u64::MAX must not overflow.
    let forged = forged_index(&[
        ("far", encode_entry(1, &[2], i64::MAX as u64, 8, 0)),
        (
            "wraps",
            encode_entry(1, &[2], u64::MAX >> 1, u64::MAX >> 2 & !3, 0),
        ),
    ]);
    let bundle = Bundle::parse_index(&forged).unwrap();
    for name in ["far", "wraps"] {
        let err = bundle.read_f32(name, &shard).unwrap_err();
        assert!(!matches!(err, CheckpointError::CrcMismatch { .. }), "{err}");
    }
}

#[test]
fn forged_indexes_are_rejected() {
    let (_, shard) = fixture("tiny.ckpt");
    let ok = encode_entry(1, &[2], 0, 8, mask_crc(crc32c(0, &shard[..8])));
    assert!(Bundle::parse_index(&forged_index(&[("a", ok.clone())]))
        .unwrap()
        .read_f32("a", &shard)
        .is_ok());

    // Size disagreeing with the shape, and a shape whose element count overflows.
    let bundle = Bundle::parse_index(&forged_index(&[
        ("big", encode_entry(1, &[u64::MAX >> 1, 1 << 40], 0, 8, 0)),
        ("short", encode_entry(1, &[3], 0, 8, 0)),
    ]))
    .unwrap();
    for name in ["big", "short"] {
        let err = bundle.read_f32(name, &shard).unwrap_err();
        assert!(matches!(err, CheckpointError::Malformed { .. }), "{err}");
    }
    // A negative offset (a 10-byte varint).
    let err = Bundle::parse_index(&forged_index(&[(
        "neg",
        encode_entry(1, &[2], -8i64 as u64, 8, 0),
    )]))
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("BundleEntryProto of `neg`: negative"),
        "{err}"
    );
    // A value that is not a protobuf.
    let err = Bundle::parse_index(&forged_index(&[("junk", vec![0x0f, 0xff])])).unwrap_err();
    assert!(matches!(err, CheckpointError::Malformed { .. }), "{err}");
    // A shard beyond the header's count.
    let mut other_shard = ok.clone();
    other_shard.extend([0x18, 0x01]);
    let err = Bundle::parse_index(&forged_index(&[("s", other_shard)])).unwrap_err();
    assert!(
        err.to_string()
            .contains("shard 1 but the bundle has 1 shard"),
        "{err}"
    );
    // Keys out of order.
    let err =
        Bundle::parse_index(&forged_index(&[("b", ok.clone()), ("a", ok.clone())])).unwrap_err();
    assert!(
        err.to_string().contains("not after its predecessor"),
        "{err}"
    );
    // No header.
    let err = Bundle::parse_index(&build_table(&[(b"a".to_vec(), ok.clone())], 4, 0)).unwrap_err();
    assert!(err.to_string().contains("empty header key"), "{err}");
    // A snappy-compressed block (with a valid crc).
    let raw = table_entries(&fixture("tiny.ckpt").0);
    let err = Bundle::parse_index(&build_table(&raw, 4, 1)).unwrap_err();
    assert!(
        matches!(err, CheckpointError::UnsupportedCompression { kind: 1, .. }),
        "{err}"
    );
}

/// Not a fuzzer, but the same spirit: every bit flip, and many random multi-byte
/// corruptions, of the real index must come back as Ok or Err, never a panic, and whatever
/// parses must read (or refuse) every tensor without panicking either.
#[test]
fn corrupted_indexes_never_panic() {
    let (index, shard) = fixture("tiny.ckpt");
    let check = |bytes: &[u8]| {
        if let Ok(bundle) = Bundle::parse_index(bytes) {
            let names: Vec<String> = bundle.entries().map(|(n, _)| n.to_owned()).collect();
            for name in names {
                let _ = bundle.read_f32(&name, &shard);
            }
        }
    };
    for pos in 0..index.len() {
        for bit in 0..8 {
            let mut bad = index.clone();
            bad[pos] ^= 1 << bit;
            check(&bad);
        }
    }
    // Corruptions the crc would catch, with the crcs then fixed up, reach the parsers.
    let raw = table_entries(&index);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut entries = raw.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % entries.len() as u64) as usize;
            let value = &mut entries[i].1;
            match next() % 3 {
                0 if !value.is_empty() => {
                    let j = (next() % value.len() as u64) as usize;
                    value[j] = next() as u8;
                }
                1 => value.truncate((next() % (value.len() as u64 + 1)) as usize),
                _ => value.push(next() as u8),
            }
        }
        check(&build_table(&entries, 1 + (next() % 8) as usize, 0));
    }
}
