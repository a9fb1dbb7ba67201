//! Tar shards as inputs (webdataset, as img2dataset writes them: `KEY.jpg` beside `KEY.json`,
//! `KEY.txt`): each image member, in archive order, named `SHARD.tar/MEMBER`; other members are
//! skipped. The shard is read as a stream, never extracted. Where it is damaged or truncated the
//! members before the damage are still processed and the shard is reported as a failure.

use std::io::{BufReader, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Condvar, Mutex};

use super::{has_image_extension, Input, InputFailure, InputItem, Source, MAX_FILE_BYTES};

pub fn is_tar(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tar"))
}

/// Bytes of tar members held at once across the run: members read ahead, waiting in the
/// pipeline's queue and being decoded. Files are read when they decode, --threads at a time;
/// members must be read from the stream in order, so this bounds them instead. One member may
/// always be held, whatever its size (up to the per-input limit, the same 1 GiB).
pub const MEMBER_BYTES_IN_FLIGHT: u64 = MAX_FILE_BYTES;

struct Budget {
    used: Mutex<u64>,
    freed: Condvar,
}

static BUDGET: Budget = Budget {
    used: Mutex::new(0),
    freed: Condvar::new(),
};

/// A tar member's share of [`MEMBER_BYTES_IN_FLIGHT`], given back when dropped.
#[derive(Debug)]
pub struct Lease(u64);

impl Lease {
    /// Waits until `bytes` fit in the budget, or nothing else is held.
    pub fn take(bytes: u64) -> Lease {
        let mut used = BUDGET.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used > 0 && *used + bytes > MEMBER_BYTES_IN_FLIGHT {
            used = BUDGET.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += bytes;
        Lease(bytes)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut used = BUDGET.used.lock().unwrap_or_else(|e| e.into_inner());
        *used -= self.0;
        BUDGET.freed.notify_all();
    }
}

/// The shard's image members, then [`InputItem::ShardEnd`]. A thread of its own reads the
/// archive (tar's entry iterator borrows its archive, so it cannot be held by an iterator
/// here); the channel keeps at most one member ahead of the consumer, and dropping the
/// iterator ends the thread at its next member.
pub fn members(shard: PathBuf) -> impl Iterator<Item = InputItem> + Send {
    let (tx, rx) = sync_channel::<InputItem>(1);
    std::thread::spawn(move || {
        let shard: Arc<Path> = shard.into();
        let mut send = |item: InputItem| tx.send(item).is_ok();
        if let Err(reason) = read_members(&shard, &mut send) {
            let failure = InputFailure {
                path: shard.to_path_buf(),
                reason,
            };
            if !send(InputItem::Failed(failure)) {
                return;
            }
        }
        send(InputItem::ShardEnd(shard));
    });
    rx.into_iter()
}

/// Sends each image member; an error says where the shard stopped being readable.
fn read_members(shard: &Arc<Path>, send: &mut impl FnMut(InputItem) -> bool) -> Result<(), String> {
    let (file, _) = super::open_readable(shard)?;
    let stream = archive_stream(Box::new(BufReader::with_capacity(1 << 20, file)))?;
    let mut archive = tar::Archive::new(stream);
    let entries = archive.entries().map_err(|e| e.to_string())?;
    let mut images = 0usize;
    let damaged = |images: usize, what: String| {
        format!("damaged tar shard after {images} image member(s): {what}")
    };
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged(images, e.to_string()))?;
        let member = super::name_of_bytes(&entry.path_bytes());
        let is_file = matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        );
        if !is_file || !has_image_extension(Path::new(&member)) {
            continue; // KEY.json, KEY.txt, directories: not images.
        }
        let name = format!("{}/{member}", super::name_of(shard));
        let size = entry.size();
        let item = if size > MAX_FILE_BYTES {
            InputItem::Failed(InputFailure {
                path: name.into(),
                reason: format!(
                    "{size} bytes: more than the {MAX_FILE_BYTES}-byte limit for one input"
                ),
            })
        } else {
            // Waits while other members' bytes fill the budget (they are freed as they decode).
            let lease = Lease::take(size);
            let mut bytes = Vec::with_capacity(size as usize);
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| damaged(images, format!("{member}: {e}")))?;
            if bytes.len() as u64 != size {
                return Err(damaged(
                    images,
                    format!("{member} is cut short ({} of {size} bytes)", bytes.len()),
                ));
            }
            images += 1;
            InputItem::Image(Input {
                name,
                source: Source::Bytes(bytes, lease),
                shard: Some(shard.clone()),
            })
        };
        if !send(item) {
            return Ok(());
        }
    }
    if images == 0 {
        return Err("tar shard holds no image members".into());
    }
    Ok(())
}

/// The shard's bytes as a tar stream: a gzip-compressed shard (webdataset's `.tar.gz`, or one
/// named `.tar`) is decompressed; other compressions and non-tar files are refused by name,
/// never by quoting their bytes.
fn archive_stream(mut r: Box<dyn Read + Send>) -> Result<Box<dyn Read + Send>, String> {
    let head = read_head(&mut r)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let gz = flate2::read::MultiGzDecoder::new(Cursor::new(head).chain(r));
        let mut inner: Box<dyn Read + Send> = Box::new(BufReader::with_capacity(1 << 20, gz));
        let head = read_head(&mut inner)?;
        return match tar_header_check(&head) {
            Ok(()) => Ok(Box::new(Cursor::new(head).chain(inner))),
            Err(why) => Err(format!("gzip-compressed, and then {why}")),
        };
    }
    for (magic, what) in [
        (&b"\x28\xb5\x2f\xfd"[..], "zstd"),
        (b"BZh", "bzip2"),
        (b"\xfd7zXZ\0", "xz"),
    ] {
        if head.starts_with(magic) {
            return Err(format!(
                "compressed with {what}: not read (decompress it to a .tar first)"
            ));
        }
    }
    tar_header_check(&head)?;
    Ok(Box::new(Cursor::new(head).chain(r)))
}

/// Up to the first 512 bytes (one tar header block).
fn read_head(r: &mut impl Read) -> Result<Vec<u8>, String> {
    let mut head = Vec::with_capacity(512);
    r.take(512)
        .read_to_end(&mut head)
        .map_err(|e| format!("reading: {e}"))?;
    Ok(head)
}

/// Whether `head` starts a tar archive: an end-of-archive (zero) block, or a header whose
/// checksum (bytes 148..156, octal) is the sum of its bytes with that field as spaces.
fn tar_header_check(head: &[u8]) -> Result<(), String> {
    const NOT_TAR: &str = "not a tar archive";
    if head.is_empty() {
        return Err(format!("{NOT_TAR} (empty file)"));
    }
    if head.len() < 512 {
        return Err(format!("{NOT_TAR} (shorter than one 512-byte header)"));
    }
    if head.iter().all(|&b| b == 0) {
        return Ok(()); // An empty archive: said as "no image members" later.
    }
    let stored = tar::Header::from_byte_slice(&head[..512]).cksum().ok();
    let sum: u32 = head[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u32
            }
        })
        .sum();
    if stored == Some(sum) {
        Ok(())
    } else {
        Err(format!(
            "{NOT_TAR} (its first 512 bytes are not a tar header)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(name: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
        b.into_inner().unwrap()
    }

    fn first_name(bytes: Vec<u8>) -> Result<String, String> {
        let stream = archive_stream(Box::new(Cursor::new(bytes)))?;
        let mut a = tar::Archive::new(stream);
        let e = a.entries().unwrap().next().unwrap().unwrap();
        Ok(String::from_utf8(e.path_bytes().to_vec()).unwrap())
    }

    /// The only test of this binary that takes leases: the budget is the process's.
    #[test]
    fn leases_past_the_budget_wait_for_bytes_to_be_given_back() {
        let big = Lease::take(MEMBER_BYTES_IN_FLIGHT / 2 + 1);
        // One more half fits after the first is given back, not before.
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let lease = Lease::take(MEMBER_BYTES_IN_FLIGHT / 2);
            tx.send(()).unwrap();
            drop(lease);
        });
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(300))
            .is_err());
        drop(big);
        rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
        waiter.join().unwrap();
        // A member larger than the whole budget is still taken when nothing else is held.
        drop(Lease::take(MEMBER_BYTES_IN_FLIGHT * 2));
        assert_eq!(*BUDGET.used.lock().unwrap(), 0);
    }

    #[test]
    fn plain_and_gzipped_tars_are_read_and_others_named_not_quoted() {
        let tar = tar_of("a.jpg", b"xyz");
        assert_eq!(first_name(tar.clone()).unwrap(), "a.jpg");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        assert_eq!(first_name(gz.finish().unwrap()).unwrap(), "a.jpg");
        let escape = b"\x1b]0;pwned\x07\x1b[2J".repeat(64);
        for (bytes, want) in [
            (escape.clone(), "not a tar archive"),
            (b"\x1b[2J".to_vec(), "shorter than one"),
            (Vec::new(), "empty file"),
            (b"\x28\xb5\x2f\xfd\x1b[2J".to_vec(), "zstd"),
            (b"BZh9\x1b[2J".to_vec(), "bzip2"),
        ] {
            let e = first_name(bytes).unwrap_err();
            assert!(e.contains(want), "{e}");
            assert!(!e.chars().any(|c| c.is_control()), "{e:?}");
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &escape).unwrap();
        let e = first_name(gz.finish().unwrap()).unwrap_err();
        assert!(
            e.contains("gzip-compressed") && e.contains("not a tar archive"),
            "{e}"
        );
    }
}
