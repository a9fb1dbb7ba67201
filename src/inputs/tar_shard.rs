//! Tar shards as inputs (webdataset, as img2dataset writes them: `KEY.jpg` beside `KEY.json`,
//! `KEY.txt`): each image member, in archive order, named `SHARD.tar/MEMBER`; other members are
//! skipped. The shard is read as a stream, never extracted. Where it is damaged or truncated the
//! members before the damage are still processed and the shard is reported as a failure.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

use super::{has_image_extension, Input, InputFailure, InputItem, Source, MAX_FILE_BYTES};

pub fn is_tar(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tar"))
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
    let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 20, file));
    let entries = archive.entries().map_err(|e| e.to_string())?;
    let mut images = 0usize;
    let damaged = |images: usize, what: String| {
        format!("damaged tar shard after {images} image member(s): {what}")
    };
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged(images, e.to_string()))?;
        let member = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let is_file = matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        );
        if !is_file || !has_image_extension(Path::new(&member)) {
            continue; // KEY.json, KEY.txt, directories: not images.
        }
        let name = format!("{}/{member}", shard.display());
        let size = entry.size();
        let item = if size > MAX_FILE_BYTES {
            InputItem::Failed(InputFailure {
                path: name.into(),
                reason: format!(
                    "{size} bytes: more than the {MAX_FILE_BYTES}-byte limit for one input"
                ),
            })
        } else {
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
                source: Source::Bytes(bytes),
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
