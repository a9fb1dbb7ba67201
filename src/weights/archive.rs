//! Release (`.tgz`) and TF-Hub (`.tar.gz`) archives, read in memory: only the checkpoint or
//! `.tflite` members are read, and nothing is ever written to disk from them.

use std::collections::BTreeMap;
use std::io::Read;

/// The members of an archive that can hold weights, by base name.
#[derive(Default)]
pub struct WeightMembers {
    /// `<prefix>.index` -> bytes (prefixes include the directory inside the archive).
    pub indexes: BTreeMap<String, Vec<u8>>,
    /// `<prefix>.data-0000N-of-0000M` -> bytes.
    pub shards: BTreeMap<String, Vec<u8>>,
    /// `*.tflite` -> bytes.
    pub tflites: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot read the archive: {0} (truncated or not a gzip'd tar?)")]
    Read(#[from] std::io::Error),
    #[error("archive member '{0}' is larger than {1} bytes")]
    TooLarge(String, u64),
}

/// No MobileNet V1 file comes near this; it bounds what a hostile archive can make us allocate.
const MAX_MEMBER: u64 = 1 << 30;

pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Reads the weight-bearing regular files out of a gzip'd tar stream. Links, devices and all
/// other members are skipped unread.
pub fn read_weight_members(reader: impl Read) -> Result<WeightMembers, ArchiveError> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
    let mut members = WeightMembers::default();
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let slot = if let Some(prefix) = name.strip_suffix(".index") {
            Some((&mut members.indexes, prefix.to_string()))
        } else if name.contains(".data-") {
            Some((&mut members.shards, name.clone()))
        } else if name.ends_with(".tflite") {
            Some((&mut members.tflites, name.clone()))
        } else {
            None
        };
        if let Some((map, key)) = slot {
            let size = entry.header().size()?;
            if size > MAX_MEMBER {
                return Err(ArchiveError::TooLarge(name, MAX_MEMBER));
            }
            let mut bytes = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut bytes)?;
            map.insert(key, bytes);
        }
    }
    Ok(members)
}
