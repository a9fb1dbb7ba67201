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
//! `table.rs` reads the LevelDB table, `proto.rs` the two messages (declared for `prost`),
//! `crc.rs` computes LevelDB's crc32c.
//!
//! Everything read from the files is checked before use: the reader returns an error, never
//! panics, on malformed input, and allocates nothing larger than the input justifies.

mod crc;
mod proto;
mod table;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::weights::RawTensor;
use crc::{crc32c, mask_crc};
use proto::{parse_entry, parse_header};
use table::for_each_table_entry;
pub(crate) use table::is_bundle_index;

/// `DataType` values (tensorflow/core/framework/types.proto).
pub(crate) const DT_FLOAT: i32 = 1;
#[cfg(test)]
pub(crate) const DT_INT64: i32 = 9;

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
    pub(crate) dtype: i32,
    pub(crate) shape: Vec<usize>,
    pub(crate) shard_id: usize,
    pub(crate) offset: u64,
    pub(crate) size: u64,
    /// Masked crc32c of the tensor's bytes.
    pub(crate) crc32c: u32,
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
    pub(crate) fn entry(&self, name: &str) -> Option<&BundleEntry> {
        self.entries
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .and_then(|i| self.entries.get(i))
            .map(|(_, entry)| entry)
    }

    /// The path of data shard `shard_id` of a checkpoint: `prefix.data-0000N-of-0000M`.
    pub(crate) fn shard_path(prefix: &Path, shard_id: usize, num_shards: usize) -> PathBuf {
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
pub(crate) fn read_checkpoint(
    prefix: &Path,
) -> Result<BTreeMap<String, RawTensor>, CheckpointError> {
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

/// Name of a TensorFlow `DataType`, for messages.
pub(crate) fn dtype_name(dtype: i32) -> &'static str {
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
