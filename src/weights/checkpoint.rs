//! Reader for TensorFlow's tensor-bundle checkpoints (the "V2" format that `tf.train.Saver`,
//! `tf.train.Checkpoint` and the `SaveV2` op write), with no TensorFlow dependency.
//!
//! A checkpoint `prefix` is two or more files:
//! - `prefix.index`: a LevelDB-format table (an SSTable) of sorted string keys. The empty key
//!   holds a `BundleHeaderProto`; every other key is a tensor name whose value is a
//!   `BundleEntryProto` (dtype, shape, shard, byte range, masked crc32c of the bytes). Both
//!   protos are in tensorflow/core/protobuf/tensor_bundle.proto. TensorFlow writes the table
//!   without compression, so only uncompressed blocks are supported.
//! - `prefix.data-0000N-of-0000M`: the tensors' raw little-endian bytes, back to back.
//!
//! Table layout (LevelDB's doc/table_format.md): data blocks, a metaindex block, an index block
//! (one entry per data block: a key >= its last key, and its `BlockHandle`), then a 48-byte
//! footer: the metaindex and index handles (varint offset + varint size each), zero padding to
//! 40 bytes, and the magic number as a little-endian fixed64. Every block is followed by a
//! 5-byte trailer: the compression type and the masked crc32c of block + type byte. A block is
//! a run of prefix-compressed entries (varints `shared`, `non_shared`, `value_len`, then the
//! key's new bytes and the value) followed by the restart offsets (fixed32 each) and their count.
//!
//! Everything read from the files is checked before use: the reader returns an error, never
//! panics, on malformed input, and allocates nothing larger than the input justifies.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::weights::RawTensor;

/// `DataType` values (tensorflow/core/framework/types.proto).
pub const DT_FLOAT: i32 = 1;
pub const DT_INT64: i32 = 9;

const TABLE_MAGIC: u64 = 0xdb47_7524_8b80_fb57;
const FOOTER_LEN: usize = 48;
const BLOCK_TRAILER_LEN: usize = 5;
/// The bundle format version this reader implements (`kTensorBundleVersion`).
const BUNDLE_VERSION: i64 = 1;
/// Keys are prefix-compressed, so their total length can exceed the file's; this caps by how
/// much (TensorFlow's indexes stay under 1x) so a crafted index cannot demand gigabytes.
const MAX_KEY_EXPANSION: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{file}: not a TensorFlow checkpoint index: the last 8 bytes are not the table magic \
         0xdb4775248b80fb57"
    )]
    BadMagic { file: String },
    #[error("{file}: truncated: {what}")]
    Truncated { file: String, what: String },
    #[error("{file}: crc32c mismatch in {what}: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        file: String,
        what: String,
        stored: u32,
        computed: u32,
    },
    #[error(
        "{file}: {what} uses compression type {kind} (1 is snappy); only uncompressed (0) \
         blocks are supported"
    )]
    UnsupportedCompression {
        file: String,
        what: String,
        kind: u8,
    },
    #[error("{file}: malformed {what}")]
    Malformed { file: String, what: String },
    #[error("{file}: unsupported checkpoint: {what}")]
    Unsupported { file: String, what: String },
    #[error("{file}: tensor `{name}` has dtype {dtype} ({}), not DT_FLOAT: it cannot be read as f32", dtype_name(*.dtype))]
    UnsupportedDtype {
        file: String,
        name: String,
        dtype: i32,
    },
    #[error(
        "{file}: tensor `{name}` claims bytes {offset}..{offset}+{size}, past the end of its \
         shard ({shard_len} bytes)"
    )]
    OutOfBounds {
        file: String,
        name: String,
        offset: u64,
        size: u64,
        shard_len: usize,
    },
    #[error("{file}: no tensor named `{name}`")]
    NoSuchTensor { file: String, name: String },
}

/// Where one tensor's bytes lie, from its `BundleEntryProto`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleEntry {
    /// TensorFlow `DataType` (1 = DT_FLOAT, 9 = DT_INT64, ...).
    pub dtype: i32,
    pub shape: Vec<usize>,
    pub shard_id: usize,
    pub offset: u64,
    pub size: u64,
    /// Masked crc32c of the tensor's bytes.
    pub crc32c: u32,
}

/// A parsed `.index`: the header and the tensor entries in key order.
#[derive(Clone, Debug)]
pub struct Bundle {
    num_shards: usize,
    entries: Vec<(String, BundleEntry)>,
    /// Tensors saved as slices (partitioned variables): listed, but not readable here.
    partitioned: BTreeSet<String>,
    /// The checkpoint prefix when known, to name files in errors.
    prefix: Option<PathBuf>,
}

impl Bundle {
    /// Parses the bytes of a `.index` file (errors name it "checkpoint index").
    pub fn parse_index(index: &[u8]) -> Result<Bundle, CheckpointError> {
        Self::parse_index_from(index, None)
    }

    fn parse_index_from(index: &[u8], prefix: Option<&Path>) -> Result<Bundle, CheckpointError> {
        let file = index_label(prefix);
        let malformed = |what: String| CheckpointError::Malformed {
            file: file.clone(),
            what,
        };

        let mut header = None;
        let mut entries = Vec::new();
        let mut partitioned = BTreeSet::new();
        let mut prev_key: Option<Vec<u8>> = None;
        let mut key_budget = index.len().saturating_mul(MAX_KEY_EXPANSION);
        for_each_table_entry(index, &file, |key, value| {
            if prev_key.as_deref().is_some_and(|prev| key <= prev) {
                return Err(malformed(format!(
                    "table: key `{}` is not after its predecessor",
                    String::from_utf8_lossy(key)
                )));
            }
            key_budget = key_budget.checked_sub(key.len()).ok_or_else(|| {
                malformed(format!(
                    "table: keys expand to over {MAX_KEY_EXPANSION}x the index size"
                ))
            })?;
            let prev = prev_key.get_or_insert_with(Vec::new);
            prev.clear();
            prev.extend_from_slice(key);

            match key.first() {
                // The empty key sorts first: the header.
                None => {
                    let h = parse_header(value)
                        .map_err(|e| malformed(format!("BundleHeaderProto: {e}")))?;
                    header = Some(h);
                }
                // The slices of a partitioned tensor live under binary keys that start with 0.
                Some(0) => {}
                Some(_) => {
                    let name = std::str::from_utf8(key).map_err(|_| {
                        malformed(format!(
                            "table: key `{}` is not UTF-8",
                            String::from_utf8_lossy(key)
                        ))
                    })?;
                    let (entry, sliced) = parse_entry(value)
                        .map_err(|e| malformed(format!("BundleEntryProto of `{name}`: {e}")))?;
                    if header.is_none() {
                        return Err(malformed(
                            "table: first key is not the empty header key".into(),
                        ));
                    }
                    if sliced {
                        partitioned.insert(name.to_owned());
                    }
                    entries.push((name.to_owned(), entry));
                }
            }
            Ok(())
        })?;

        let header = header.ok_or_else(|| {
            malformed("bundle: no BundleHeaderProto under the empty key (a V1 checkpoint?)".into())
        })?;
        if header.min_consumer > BUNDLE_VERSION || header.bad_consumers.contains(&BUNDLE_VERSION) {
            return Err(CheckpointError::Unsupported {
                file,
                what: format!(
                    "bundle version {} needs a reader of version >= {} (this one is {BUNDLE_VERSION})",
                    header.producer, header.min_consumer
                ),
            });
        }
        if header.big_endian {
            return Err(CheckpointError::Unsupported {
                file,
                what: "big-endian tensor data".into(),
            });
        }
        if let Some((name, e)) = entries
            .iter()
            .find(|(_, e)| e.shard_id >= header.num_shards)
        {
            return Err(malformed(format!(
                "BundleEntryProto of `{name}`: shard {} but the bundle has {} shard(s)",
                e.shard_id, header.num_shards
            )));
        }
        Ok(Bundle {
            num_shards: header.num_shards,
            entries,
            partitioned,
            prefix: prefix.map(Path::to_path_buf),
        })
    }

    /// The number of `.data-*` files (`BundleHeaderProto.num_shards`).
    pub fn num_shards(&self) -> usize {
        self.num_shards
    }

    /// Every tensor, in key (byte) order, including those that are not DT_FLOAT.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &BundleEntry)> {
        self.entries
            .iter()
            .map(|(name, entry)| (name.as_str(), entry))
    }

    /// The entry of tensor `name`, if there is one.
    pub fn entry(&self, name: &str) -> Option<&BundleEntry> {
        self.entries
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .and_then(|i| self.entries.get(i))
            .map(|(_, entry)| entry)
    }

    /// The path of data shard `shard_id` of a checkpoint: `prefix.data-0000N-of-0000M`.
    pub fn shard_path(prefix: &Path, shard_id: usize, num_shards: usize) -> PathBuf {
        with_suffix(prefix, &format!(".data-{shard_id:05}-of-{num_shards:05}"))
    }

    fn shard_file(&self, shard_id: usize) -> String {
        match &self.prefix {
            Some(p) => Self::shard_path(p, shard_id, self.num_shards)
                .display()
                .to_string(),
            None => format!("checkpoint data shard {shard_id}"),
        }
    }

    /// Reads one DT_FLOAT tensor out of its shard's bytes (the caller supplies the bytes of
    /// shard `entry.shard_id`), checking its size against its shape and its crc32c.
    pub fn read_f32(&self, name: &str, shard: &[u8]) -> Result<RawTensor, CheckpointError> {
        let index_file = index_label(self.prefix.as_deref());
        let entry = self
            .entry(name)
            .ok_or_else(|| CheckpointError::NoSuchTensor {
                file: index_file.clone(),
                name: name.to_owned(),
            })?;
        if self.partitioned.contains(name) {
            return Err(CheckpointError::Unsupported {
                file: index_file,
                what: format!("tensor `{name}` is partitioned (saved as slices)"),
            });
        }
        if entry.dtype != DT_FLOAT {
            return Err(CheckpointError::UnsupportedDtype {
                file: index_file,
                name: name.to_owned(),
                dtype: entry.dtype,
            });
        }
        let len = entry
            .shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d));
        let expected_size = len
            .and_then(|n| n.checked_mul(4))
            .and_then(|b| u64::try_from(b).ok());
        let Some(len) = len.filter(|_| expected_size == Some(entry.size)) else {
            return Err(CheckpointError::Malformed {
                file: index_file,
                what: format!(
                    "BundleEntryProto of `{name}`: {} bytes do not hold a float32 tensor of shape {:?}",
                    entry.size, entry.shape
                ),
            });
        };
        let bytes = usize::try_from(entry.offset)
            .ok()
            .zip(usize::try_from(entry.size).ok())
            .and_then(|(start, size)| shard.get(start..start.checked_add(size)?))
            .ok_or_else(|| CheckpointError::OutOfBounds {
                file: self.shard_file(entry.shard_id),
                name: name.to_owned(),
                offset: entry.offset,
                size: entry.size,
                shard_len: shard.len(),
            })?;
        let computed = mask_crc(crc32c(0, bytes));
        if computed != entry.crc32c {
            return Err(CheckpointError::CrcMismatch {
                file: self.shard_file(entry.shard_id),
                what: format!("tensor `{name}`"),
                stored: entry.crc32c,
                computed,
            });
        }
        let mut data = Vec::with_capacity(len);
        data.extend(
            bytes
                .chunks_exact(4)
                .map(|b| <[u8; 4]>::try_from(b).map_or(0.0, f32::from_le_bytes)),
        );
        Ok(RawTensor {
            shape: entry.shape.clone(),
            data,
        })
    }
}

/// Every DT_FLOAT tensor of the checkpoint at `prefix`, by name. `prefix` is e.g.
/// `dir/mobilenet_v1_0.25_128.ckpt` (files `prefix.index`, `prefix.data-00000-of-00001`); the
/// data shards are memory-mapped, and only those that hold a float tensor are opened. Other
/// dtypes (e.g. the DT_INT64 `global_step`) are skipped; a partitioned float tensor is an error.
pub fn read_checkpoint(prefix: &Path) -> Result<BTreeMap<String, RawTensor>, CheckpointError> {
    let index_path = with_suffix(prefix, ".index");
    let index = std::fs::read(&index_path).map_err(|source| CheckpointError::Io {
        file: index_path.display().to_string(),
        source,
    })?;
    let bundle = Bundle::parse_index_from(&index, Some(prefix))?;
    let mut shards = BTreeMap::new();
    let mut tensors = BTreeMap::new();
    for (name, entry) in bundle.entries().filter(|(_, e)| e.dtype == DT_FLOAT) {
        let shard = match shards.entry(entry.shard_id) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                let path = Bundle::shard_path(prefix, entry.shard_id, bundle.num_shards());
                v.insert(map_file(&path)?)
            }
        };
        tensors.insert(name.to_owned(), bundle.read_f32(name, shard)?);
    }
    Ok(tensors)
}

/// True when bytes look like a bundle index (footer magic), for recognising files by content.
pub fn is_bundle_index(bytes: &[u8]) -> bool {
    bytes.len() >= FOOTER_LEN && bytes.ends_with(&TABLE_MAGIC.to_le_bytes())
}

/// Name of a TensorFlow `DataType`, for messages.
pub fn dtype_name(dtype: i32) -> &'static str {
    const NAMES: [&str; 24] = [
        "DT_INVALID",
        "DT_FLOAT",
        "DT_DOUBLE",
        "DT_INT32",
        "DT_UINT8",
        "DT_INT16",
        "DT_INT8",
        "DT_STRING",
        "DT_COMPLEX64",
        "DT_INT64",
        "DT_BOOL",
        "DT_QINT8",
        "DT_QUINT8",
        "DT_QINT32",
        "DT_BFLOAT16",
        "DT_QINT16",
        "DT_QUINT16",
        "DT_UINT16",
        "DT_COMPLEX128",
        "DT_HALF",
        "DT_RESOURCE",
        "DT_VARIANT",
        "DT_UINT32",
        "DT_UINT64",
    ];
    usize::try_from(dtype)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("unknown dtype")
}

/// How errors name the index file: its path when known.
fn index_label(prefix: Option<&Path>) -> String {
    match prefix {
        Some(p) => with_suffix(p, ".index").display().to_string(),
        None => "checkpoint index".to_owned(),
    }
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(prefix.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}

/// A read-only memory map of a whole file.
fn map_file(path: &Path) -> Result<memmap2::Mmap, CheckpointError> {
    let io = |source| CheckpointError::Io {
        file: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: the map is only read, and only while this function's caller holds it; the
    // checkpoint files are not expected to change underneath (the usual memory-map caveat).
    unsafe { memmap2::Mmap::map(&file) }.map_err(io)
}

// ---------------------------------------------------------------------------------------------
// The LevelDB table.

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
fn for_each_table_entry<'a>(
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

// ---------------------------------------------------------------------------------------------
// Protobuf, by hand: just enough for BundleHeaderProto and BundleEntryProto.

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
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        if shift == 63 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

enum Field<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

type ProtoResult<T> = Result<T, &'static str>;

/// Calls `visit(field_number, value)` for each field of a protobuf message.
fn for_each_field<'a>(
    mut msg: &'a [u8],
    mut visit: impl FnMut(u64, Field<'a>) -> ProtoResult<()>,
) -> ProtoResult<()> {
    const TRUNCATED: &str = "truncated field";
    while !msg.is_empty() {
        let tag = varint(&mut msg).ok_or(TRUNCATED)?;
        let field = match tag & 7 {
            0 => Field::Varint(varint(&mut msg).ok_or(TRUNCATED)?),
            1 => take(&mut msg, 8).map(|_| Field::Fixed64).ok_or(TRUNCATED)?,
            2 => {
                let len = varint(&mut msg).and_then(|n| usize::try_from(n).ok());
                Field::Bytes(len.and_then(|n| take(&mut msg, n)).ok_or(TRUNCATED)?)
            }
            5 => {
                let b = take(&mut msg, 4).ok_or(TRUNCATED)?;
                Field::Fixed32(u32::from_le_bytes(b.try_into().map_err(|_| TRUNCATED)?))
            }
            _ => return Err("unsupported wire type"),
        };
        visit(tag >> 3, field)?;
    }
    Ok(())
}

const WRONG_TYPE: &str = "field has the wrong wire type";

/// An int32/int64 field (negative values are 10-byte two's-complement varints).
fn int(field: Field<'_>) -> ProtoResult<i64> {
    match field {
        Field::Varint(v) => Ok(v as i64),
        _ => Err(WRONG_TYPE),
    }
}

fn non_negative(field: Field<'_>) -> ProtoResult<u64> {
    u64::try_from(int(field)?).map_err(|_| "negative size, offset or shard")
}

fn to_usize(v: u64) -> ProtoResult<usize> {
    usize::try_from(v).map_err(|_| "value too large")
}

fn bytes<'a>(field: Field<'a>) -> ProtoResult<&'a [u8]> {
    match field {
        Field::Bytes(b) => Ok(b),
        _ => Err(WRONG_TYPE),
    }
}

struct Header {
    num_shards: usize,
    big_endian: bool,
    producer: i64,
    min_consumer: i64,
    bad_consumers: Vec<i64>,
}

fn parse_header(msg: &[u8]) -> ProtoResult<Header> {
    let mut h = Header {
        num_shards: 0,
        big_endian: false,
        producer: 0,
        min_consumer: 0,
        bad_consumers: Vec::new(),
    };
    for_each_field(msg, |number, field| {
        match number {
            1 => h.num_shards = to_usize(non_negative(field)?)?,
            2 => h.big_endian = int(field)? == 1,
            3 => for_each_field(bytes(field)?, |number, field| {
                // VersionDef: producer = 1, min_consumer = 2, repeated bad_consumers = 3.
                match (number, field) {
                    (1, f) => h.producer = int(f)?,
                    (2, f) => h.min_consumer = int(f)?,
                    (3, Field::Bytes(mut packed)) => {
                        while !packed.is_empty() {
                            h.bad_consumers
                                .push(varint(&mut packed).ok_or("bad packed varint")? as i64);
                        }
                    }
                    (3, f) => h.bad_consumers.push(int(f)?),
                    _ => {}
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(h)
}

/// The entry, and whether it is a partitioned tensor (has `slices`).
fn parse_entry(msg: &[u8]) -> ProtoResult<(BundleEntry, bool)> {
    let mut e = BundleEntry {
        dtype: 0,
        shape: Vec::new(),
        shard_id: 0,
        offset: 0,
        size: 0,
        crc32c: 0,
    };
    let mut sliced = false;
    for_each_field(msg, |number, field| {
        match number {
            1 => e.dtype = i32::try_from(int(field)?).map_err(|_| "dtype out of range")?,
            2 => e.shape = parse_shape(bytes(field)?)?,
            3 => e.shard_id = to_usize(non_negative(field)?)?,
            4 => e.offset = non_negative(field)?,
            5 => e.size = non_negative(field)?,
            6 => match field {
                Field::Fixed32(crc) => e.crc32c = crc,
                _ => return Err(WRONG_TYPE),
            },
            7 => sliced = bytes(field).map(|_| true)?,
            _ => {}
        }
        Ok(())
    })?;
    Ok((e, sliced))
}

/// TensorShapeProto: repeated Dim dim = 2 (Dim: int64 size = 1), bool unknown_rank = 3.
fn parse_shape(msg: &[u8]) -> ProtoResult<Vec<usize>> {
    let mut shape = Vec::new();
    for_each_field(msg, |number, field| {
        match number {
            2 => {
                let mut size = 0;
                for_each_field(bytes(field)?, |number, field| {
                    if number == 1 {
                        size =
                            to_usize(u64::try_from(int(field)?).map_err(|_| "unknown dimension")?)?;
                    }
                    Ok(())
                })?;
                shape.push(size);
            }
            3 if int(field)? != 0 => return Err("unknown rank"),
            _ => {}
        }
        Ok(())
    })?;
    Ok(shape)
}

// ---------------------------------------------------------------------------------------------
// crc32c (Castagnoli), as LevelDB and TensorFlow store it.

/// Slicing-by-8 tables: `[0]` is the classic byte table (reflected polynomial 0x82f63b78),
/// `[k][b]` is the crc of byte `b` followed by `k` zero bytes.
const CRC32C_TABLES: [[u32; 256]; 8] = {
    let mut tables = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = tables[k - 1][i];
            tables[k][i] = (prev >> 8) ^ tables[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    tables
};

/// Extends `crc` (the crc32c of some bytes, 0 for none) with `data`.
fn crc32c(crc: u32, mut data: &[u8]) -> u32 {
    let t = &CRC32C_TABLES;
    let mut crc = !crc;
    while let Some((chunk, rest)) = data.split_first_chunk::<8>() {
        let v = u64::from_le_bytes(*chunk) ^ u64::from(crc);
        crc = (0..8).fold(0, |acc, k| {
            acc ^ t[7 - k][usize::from((v >> (8 * k)) as u8)]
        });
        data = rest;
    }
    for &byte in data {
        crc = t[0][usize::from(crc as u8 ^ byte)] ^ (crc >> 8);
    }
    !crc
}

/// LevelDB's masking of stored crcs (a crc of data that holds crcs is then not degenerate).
fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

#[cfg(test)]
mod tests {
    //! Fixtures: tests/fixtures/checkpoint/{tiny,partitioned}.ckpt.*, written by TensorFlow's
    //! SaveV2 op through tools/make_checkpoint_fixture.py; every golden value below comes from
    //! that script (its docstring lists the formulas).
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
        names.extend(
            ["MobilenetV1/Logits/Conv2d_1c_1x1/biases", "empty", "scalar"].map(String::from),
        );
        names.sort();
        names
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(0, b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(crc32c(0, b"1234"), b"56789"), 0xe306_9283);
        // Long inputs go 8 bytes at a time; the same crc whichever way they are split.
        let long: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
        let whole = crc32c(0, &long);
        for split in [1, 7, 8, 9, 500, 999] {
            assert_eq!(crc32c(crc32c(0, &long[..split]), &long[split..]), whole);
        }
        let bytewise = long.iter().fold(!0u32, |crc, &b| {
            CRC32C_TABLES[0][usize::from(crc as u8 ^ b)] ^ (crc >> 8)
        });
        assert_eq!(whole, !bytewise);
        assert_eq!(mask_crc(0), 0xa282_ead8);
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
        let err = Bundle::parse_index(&forged_index(&[("b", ok.clone()), ("a", ok.clone())]))
            .unwrap_err();
        assert!(
            err.to_string().contains("not after its predecessor"),
            "{err}"
        );
        // No header.
        let err =
            Bundle::parse_index(&build_table(&[(b"a".to_vec(), ok.clone())], 4, 0)).unwrap_err();
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
}
