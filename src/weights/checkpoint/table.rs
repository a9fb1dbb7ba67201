//! The LevelDB table of a `.index` file. Layout (LevelDB's doc/table_format.md): data blocks, a metaindex block, an index block
//! (one entry per data block: a key >= its last key, and its `BlockHandle`), then a 48-byte
//! footer: the metaindex and index handles (varint offset + varint size each), zero padding to
//! 40 bytes, and the magic number as a little-endian fixed64. Every block is followed by a
//! 5-byte trailer: the compression type and the masked crc32c of block + type byte. A block is
//! a run of prefix-compressed entries (varints `shared`, `non_shared`, `value_len`, then the
//! key's new bytes and the value) followed by the restart offsets (fixed32 each) and their count.

use super::crc::{crc32c, mask_crc};
use super::CheckpointError;

pub(super) const TABLE_MAGIC: u64 = 0xdb47_7524_8b80_fb57;
pub(super) const FOOTER_LEN: usize = 48;
pub(super) const BLOCK_TRAILER_LEN: usize = 5;

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if n > buf.len() {
        return None;
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Some(head)
}

/// A base-128 varint of at most 10 bytes that fits in 64 bits.
fn varint(buf: &mut &[u8]) -> Option<u64> {
    prost::encoding::decode_varint(buf).ok()
}

/// True when bytes look like a bundle index (footer magic), for recognising files by content.
pub fn is_bundle_index(bytes: &[u8]) -> bool {
    bytes.len() >= FOOTER_LEN && bytes.ends_with(&TABLE_MAGIC.to_le_bytes())
}

struct BlockHandle {
    offset: u64,
    size: u64,
}

fn decode_handle(buf: &mut &[u8]) -> Option<BlockHandle> {
    Some(BlockHandle {
        offset: varint(buf)?,
        size: varint(buf)?,
    })
}

/// Calls `visit(key, value)` for every entry of the table's data blocks, in order.
pub(super) fn for_each_table_entry<'a>(
    table: &'a [u8],
    file: &str,
    mut visit: impl FnMut(&[u8], &'a [u8]) -> Result<(), CheckpointError>,
) -> Result<(), CheckpointError> {
    let body_len =
        table
            .len()
            .checked_sub(FOOTER_LEN)
            .ok_or_else(|| CheckpointError::Truncated {
                file: file.to_owned(),
                what: format!(
                    "{} bytes, shorter than the {FOOTER_LEN}-byte table footer",
                    table.len()
                ),
            })?;
    if !is_bundle_index(table) {
        return Err(CheckpointError::BadMagic {
            file: file.to_owned(),
        });
    }
    let (body, mut footer) = table.split_at(body_len);
    let index_handle = decode_handle(&mut footer)
        .and_then(|_metaindex| decode_handle(&mut footer))
        .ok_or_else(|| CheckpointError::Malformed {
            file: file.to_owned(),
            what: "table footer: bad block handles".into(),
        })?;
    let index_block = read_block(body, &index_handle, file, "index block")?;
    // Data blocks come in file order; insisting on it bounds the work to one pass over the file.
    let mut next_free = 0u64;
    parse_block(
        index_block,
        file,
        "index block",
        |_separator, mut handle_bytes| {
            let handle =
                decode_handle(&mut handle_bytes).ok_or_else(|| CheckpointError::Malformed {
                    file: file.to_owned(),
                    what: "index block: bad block handle".into(),
                })?;
            let what = format!("data block at offset {}", handle.offset);
            if handle.offset < next_free {
                return Err(CheckpointError::Malformed {
                    file: file.to_owned(),
                    what: format!("{what}: overlaps the previous block"),
                });
            }
            let block = read_block(body, &handle, file, &what)?;
            // read_block checked offset + size + trailer against the file length.
            next_free = handle
                .offset
                .saturating_add(handle.size)
                .saturating_add(BLOCK_TRAILER_LEN as u64);
            parse_block(block, file, &what, &mut visit)
        },
    )
}

/// The contents of the block at `handle`, its trailer checked.
fn read_block<'a>(
    body: &'a [u8],
    handle: &BlockHandle,
    file: &str,
    what: &str,
) -> Result<&'a [u8], CheckpointError> {
    let range = usize::try_from(handle.offset)
        .ok()
        .zip(usize::try_from(handle.size).ok());
    let (block, trailer) = range
        .and_then(|(start, size)| {
            let end = start.checked_add(size)?;
            Some((
                body.get(start..end)?,
                body.get(end..)?.first_chunk::<BLOCK_TRAILER_LEN>()?,
            ))
        })
        .ok_or_else(|| CheckpointError::Truncated {
            file: file.to_owned(),
            what: format!(
                "{what} ({} bytes + {BLOCK_TRAILER_LEN}-byte trailer at offset {}) extends past \
                 the table data ({} bytes)",
                handle.size,
                handle.offset,
                body.len()
            ),
        })?;
    let &[kind, c0, c1, c2, c3] = trailer;
    let stored = u32::from_le_bytes([c0, c1, c2, c3]);
    let computed = mask_crc(crc32c(crc32c(0, block), &[kind]));
    if stored != computed {
        return Err(CheckpointError::CrcMismatch {
            file: file.to_owned(),
            what: what.to_owned(),
            stored,
            computed,
        });
    }
    if kind != 0 {
        return Err(CheckpointError::UnsupportedCompression {
            file: file.to_owned(),
            what: what.to_owned(),
            kind,
        });
    }
    Ok(block)
}

/// Calls `visit(key, value)` for each entry of one block.
fn parse_block<'a>(
    block: &'a [u8],
    file: &str,
    what: &str,
    mut visit: impl FnMut(&[u8], &'a [u8]) -> Result<(), CheckpointError>,
) -> Result<(), CheckpointError> {
    let bad = |detail: &str| CheckpointError::Malformed {
        file: file.to_owned(),
        what: format!("{what}: {detail}"),
    };
    let (rest, count) = block
        .split_last_chunk::<4>()
        .ok_or_else(|| bad("too short for its restart count"))?;
    let num_restarts = u32::from_le_bytes(*count) as usize;
    let entries_len = num_restarts
        .checked_mul(4)
        .and_then(|n| rest.len().checked_sub(n))
        .filter(|_| num_restarts > 0)
        .ok_or_else(|| {
            bad(&format!(
                "{num_restarts} restart points do not fit in the block"
            ))
        })?;
    let mut data = rest.get(..entries_len).unwrap_or_default();
    let mut key = Vec::new();
    while !data.is_empty() {
        let mut field = || varint(&mut data).and_then(|v| usize::try_from(v).ok());
        let (shared, non_shared, value_len) = field()
            .zip(field())
            .zip(field())
            .map(|((s, n), v)| (s, n, v))
            .ok_or_else(|| bad("bad entry header"))?;
        if shared > key.len() {
            return Err(bad("entry shares more bytes than the previous key has"));
        }
        let suffix = take(&mut data, non_shared).ok_or_else(|| bad("key runs past the block"))?;
        let value = take(&mut data, value_len).ok_or_else(|| bad("value runs past the block"))?;
        key.truncate(shared);
        key.extend_from_slice(suffix);
        visit(&key, value)?;
    }
    Ok(())
}
