//! Hardening II: what a crafted tar shard or file name could do to a terminal, a table or the
//! output's names, and the bounds of `--shard` and `--out-dir`. Every input is generated here.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use assert_cmd::Command;
use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb};

fn mnv1(sub: &str) -> Command {
    crate::common::mnv1_025("crafted", sub)
}

fn png(seed: u32) -> Vec<u8> {
    let img = ImageBuffer::from_fn(40, 36 + seed % 5, |x, y| {
        Rgb([(x * 5 + seed * 31) as u8, (y * 7) as u8, (seed * 53) as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(img)
        .write_to(&mut bytes, ImageFormat::Png)
        .unwrap();
    bytes.into_inner()
}

/// A tar of (raw name bytes, data) members.
fn tar_of(members: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, Path::new(OsStr::from_bytes(name)), &data[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// No C0 control (but the line ends of the output itself and TSV's tabs), DEL or C1 control.
fn assert_no_raw_controls(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| c.is_control() && c != '\n' && !(what == "tsv" && c == '\t'))
        .collect();
    assert!(bad.is_empty(), "{what} holds raw {bad:?}: {text:?}");
}

/// Escape codes (retitle, bell, clear screen) in a non-tar named .tar, in a damaged member
/// header, and in member names: stderr quotes none of them raw, and says what the file is.
#[test]
fn crafted_shards_write_no_raw_bytes_to_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let esc: &[u8] = b"\x1b]0;pwned\x07\x1b[2J\r\n";
    std::fs::write(dir.path().join("junk.tar"), esc.repeat(100)).unwrap();
    // A good member, then a header of escape codes: the damage comes after one image.
    let mut damaged = tar_of(&[(b"a.png", png(1))]);
    damaged.truncate(damaged.len() - 1024); // the end-of-archive blocks
    damaged.extend(esc.repeat(512 / esc.len() + 1).iter().take(512));
    std::fs::write(dir.path().join("damaged.tar"), &damaged).unwrap();
    // Members named with escape codes and line breaks (read, their names escaped).
    let named = tar_of(&[(b"\x1b[2Jx.png", png(2)), (b"line\nbreak.png", png(3))]);
    std::fs::write(dir.path().join("named.tar"), named).unwrap();
    let out = mnv1("classify")
        .arg(dir.path())
        .args(["--format", "text"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_no_raw_controls("stderr", &out.stderr);
    assert_no_raw_controls("stdout", &out.stdout);
    assert!(err.contains("junk.tar: not a tar archive"), "{err}");
    assert!(
        err.contains("damaged.tar: damaged tar shard after 1 image"),
        "{err}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("damaged.tar/a.png"), "{text}");
    assert!(text.contains(r#"named.tar/\u001b[2Jx.png""#), "{text}");
    assert!(text.contains(r#"named.tar/line\nbreak.png""#), "{text}");
}

/// webdataset shards are often gzip-compressed: one named `.tar` is read like the plain one.
#[test]
fn a_gzip_compressed_shard_named_tar_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let tar = tar_of(&[(b"k1.png", png(4)), (b"k2.png", png(5))]);
    std::fs::write(dir.path().join("plain.tar"), &tar).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    std::fs::write(dir.path().join("packed.tar"), gz.finish().unwrap()).unwrap();
    let run = |name: &str| {
        let out = mnv1("embed").arg(dir.path().join(name)).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .replace(name, "SHARD")
    };
    assert_eq!(run("plain.tar"), run("packed.tar"));
}

/// File names with ESC, CR, LF and tab, in TSV and CSV: every record one line, no raw
/// control character, the name quoted as in the text format.
#[test]
fn tsv_and_csv_never_write_a_control_character_raw() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "e\x1b[2J.png",
        "cr\r.png",
        "lf\n.png",
        "tab\t.png",
        "plain.png",
    ];
    for (i, n) in names.iter().enumerate() {
        std::fs::write(dir.path().join(n), png(i as u32)).unwrap();
    }
    for (format, sep) in [("tsv", '\t'), ("csv", ',')] {
        let out = mnv1("classify")
            .arg(dir.path())
            .args(["--format", format, "-k", "2"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_raw_controls(format, &out.stdout);
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // The header, then 2 rows per image.
        assert_eq!(lines.len(), 1 + 2 * names.len(), "{format}: {text}");
        if format == "tsv" {
            assert!(lines.iter().all(|l| l.matches(sep).count() == 5), "{text}");
        }
        assert!(text.contains(r"e\u001b[2J.png"), "{text}");
        assert!(
            text.contains(r"lf\n.png") && text.contains(r"cr\r.png"),
            "{text}"
        );
        assert!(text.contains(r"tab\t.png"), "{text}");
    }
}

/// Names that differ only in bytes that are not UTF-8 stay different, in every format and in
/// `.paths.txt`, for files and for tar members.
#[test]
fn non_utf8_names_are_not_merged() {
    let dir = tempfile::tempdir().unwrap();
    for (i, b) in [0x80u8, 0x81].iter().enumerate() {
        let name = [b"a".as_slice(), &[*b], b".png"].concat();
        std::fs::write(dir.path().join(OsStr::from_bytes(&name)), png(i as u32)).unwrap();
    }
    let shard = tar_of(&[(b"m\xfe.png", png(7)), (b"m\xff.png", png(8))]);
    std::fs::write(dir.path().join("s.tar"), shard).unwrap();
    let want = [
        r"a\x80.png",
        r"a\x81.png",
        r"s.tar/m\xfe.png",
        r"s.tar/m\xff.png",
    ];
    let has_all = |what: &str, text: &str| {
        for w in want {
            assert!(text.contains(w), "{what} lacks {w}: {text}");
        }
    };
    for format in ["text", "jsonl", "json", "tsv", "csv"] {
        let out = mnv1("classify")
            .arg(dir.path())
            .args(["--format", format, "-k", "1"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("output is UTF-8");
        // JSON doubles the backslash of the escape.
        has_all(format, &text.replace(r"\\", r"\"));
    }
    let npy = dir.path().join("out").join("f.npy");
    std::fs::create_dir(npy.parent().unwrap()).unwrap();
    let out = mnv1("embed")
        .arg(dir.path().join(OsStr::from_bytes(b"a\x80.png")))
        .arg(dir.path().join(OsStr::from_bytes(b"a\x81.png")))
        .arg(dir.path().join("s.tar"))
        .arg("--out")
        .arg(&npy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let txt = std::fs::read_to_string(dir.path().join("out/f.npy.paths.txt")).unwrap();
    has_all(".paths.txt", &txt);
    assert_eq!(txt.lines().count(), 4, "{txt}");
}

/// `--shard` numbers too large for the type or past 2^32 are "out of range"; `--out-dir`
/// naming a regular file is "not a directory"; both exit 2 before any work.
#[test]
fn shard_and_out_dir_bounds_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.png"), png(1)).unwrap();
    for spec in [
        "0/99999999999999999999999",
        "99999999999999999999/3",
        "0/4294967297",
    ] {
        let out = mnv1("classify")
            .arg(dir.path())
            .args(["--shard", spec])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{spec}: {err}");
        assert!(err.contains("out of range"), "{spec}: {err}");
    }
    let file = dir.path().join("results");
    std::fs::write(&file, b"keep").unwrap();
    for sub in ["classify", "embed"] {
        let out = mnv1(sub)
            .arg(dir.path().join("a.png"))
            .arg("--out-dir")
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{sub}: {err}");
        assert!(err.contains("not a directory"), "{sub}: {err}");
        assert!(out.stdout.is_empty());
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");
}
