//! The project's own canonical form: float32 safetensors with TF-Slim names and TF layouts.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::RawTensor;

/// Metadata key of the xxh3-64 checksum (hex) of the data section that mnv1 writes into its cache.
pub(crate) const CHECKSUM_KEY: &str = "mnv1_xxh3_64";

#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    #[error("not a readable safetensors file: {0}")]
    Format(#[from] safetensors::SafeTensorError),
    #[error("tensor '{name}' is {dtype:?}; mnv1 reads float32 safetensors only")]
    Dtype { name: String, dtype: Dtype },
    #[error("cannot write: {0}")]
    Write(#[from] std::io::Error),
    #[error("the file carries no {CHECKSUM_KEY} checksum")]
    NoChecksum,
    #[error("checksum mismatch: the file says {stored}, its data hash to {actual} (corrupted or truncated)")]
    ChecksumMismatch { stored: String, actual: String },
}

/// True when bytes start like a safetensors file: a little-endian header length, then `{`.
pub(crate) fn is_safetensors(bytes: &[u8]) -> bool {
    let Some(len) = bytes.get(..8) else {
        return false;
    };
    let n = u64::from_le_bytes(len.try_into().unwrap_or_default());
    n > 1
        && n < 100_000_000
        && bytes.get(8) == Some(&b'{')
        && (n as usize).saturating_add(8) <= bytes.len()
}

pub(crate) fn read_safetensors(
    bytes: &[u8],
) -> Result<BTreeMap<String, RawTensor>, SafetensorsError> {
    let st = SafeTensors::deserialize(bytes)?;
    let mut out = BTreeMap::new();
    for (name, view) in st.iter() {
        // PyTorch BatchNorm's step counter (int64 in transformers files) is no weight.
        if name.ends_with(".num_batches_tracked") {
            continue;
        }
        if view.dtype() != Dtype::F32 {
            return Err(SafetensorsError::Dtype {
                name: name.to_string(),
                dtype: view.dtype(),
            });
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        out.insert(
            name.to_string(),
            RawTensor::new(view.shape().to_vec(), data),
        );
    }
    Ok(out)
}

/// What a canonical file says about its weights besides the tensors: every file carries
/// `format = mnv1`, the depth multiplier and `source_format` (what they were read from, or
/// `mnv1 finetune`); `extra` adds the cache's provenance or a fine-tuned head's class count.
pub struct CanonicalMetadata {
    pub depth_multiplier: f64,
    pub source_format: String,
    pub extra: Vec<(String, String)>,
}

impl CanonicalMetadata {
    fn into_map(self) -> HashMap<String, String> {
        let mut m = HashMap::from([
            ("format".to_string(), "mnv1".to_string()),
            (
                "depth_multiplier".to_string(),
                self.depth_multiplier.to_string(),
            ),
            ("source_format".to_string(), self.source_format),
        ]);
        m.extend(self.extra);
        m
    }
}

/// The bytes of mnv1's canonical file: `tensors`, `metadata` and the [`CHECKSUM_KEY`]. The one
/// writer of the format, for `convert`, `finetune` and the cache.
pub(crate) fn canonical_bytes(
    tensors: &BTreeMap<String, RawTensor>,
    metadata: CanonicalMetadata,
) -> Result<Vec<u8>, SafetensorsError> {
    serialize_with_checksum(tensors, metadata.into_map())
}

/// Writes the canonical file (`canonical_bytes`) to `path`, atomically (a temporary file
/// beside it, then a rename), so the result may also be dropped into mnv1's cache.
pub fn write_canonical(
    tensors: &BTreeMap<String, RawTensor>,
    metadata: CanonicalMetadata,
    path: &Path,
) -> Result<(), SafetensorsError> {
    let bytes = canonical_bytes(tensors, metadata)?;
    crate::atomic::write_atomic(path, &bytes)?;
    Ok(())
}

/// The file's bytes with `metadata` plus the [`CHECKSUM_KEY`] of its data section. The header is
/// laid out before the data, so the checksum is computed on a first serialisation and the header
/// written again with it; the data section does not change.
fn serialize_with_checksum(
    tensors: &BTreeMap<String, RawTensor>,
    mut metadata: HashMap<String, String>,
) -> Result<Vec<u8>, SafetensorsError> {
    let bytes: Vec<(&String, Vec<u8>)> = tensors
        .iter()
        .map(|(k, t)| (k, t.data.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let views = || {
        bytes
            .iter()
            .zip(tensors.values())
            .map(|((name, data), t)| {
                Ok((
                    name.as_str(),
                    TensorView::new(Dtype::F32, t.shape.clone(), data)?,
                ))
            })
            .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
    };
    let first = safetensors::serialize(views()?, Some(metadata.clone()))?;
    metadata.insert(CHECKSUM_KEY.to_string(), data_checksum(&first)?);
    Ok(safetensors::serialize(views()?, Some(metadata))?)
}

/// Checks the [`CHECKSUM_KEY`] a cached file carries against its data section.
pub(crate) fn verify_checksum(bytes: &[u8]) -> Result<(), SafetensorsError> {
    let (_, meta) = SafeTensors::read_metadata(bytes)?;
    let stored = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CHECKSUM_KEY))
        .ok_or(SafetensorsError::NoChecksum)?;
    let actual = data_checksum(bytes)?;
    if *stored != actual {
        return Err(SafetensorsError::ChecksumMismatch {
            stored: stored.clone(),
            actual,
        });
    }
    Ok(())
}

/// xxh3-64 (hex) of everything after the header: fast enough (GB/s) to run on every start.
fn data_checksum(file: &[u8]) -> Result<String, SafetensorsError> {
    let (header_len, _) = SafeTensors::read_metadata(file)?;
    let data = file.get(8 + header_len..).unwrap_or_default();
    Ok(format!("{:016x}", xxhash_rust::xxh3::xxh3_64(data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_round_trips_and_catches_a_flipped_byte() {
        let tensors = BTreeMap::from([
            (
                "a".to_string(),
                RawTensor::new(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]),
            ),
            (
                "b".to_string(),
                RawTensor::new(vec![3], vec![5.0, 6.0, 7.0]),
            ),
        ]);
        let mut bytes = serialize_with_checksum(&tensors, HashMap::new()).unwrap();
        verify_checksum(&bytes).unwrap();
        assert_eq!(read_safetensors(&bytes).unwrap(), tensors);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(
            verify_checksum(&bytes),
            Err(SafetensorsError::ChecksumMismatch { .. })
        ));
        let plain = safetensors::serialize(Vec::<(&str, TensorView)>::new(), None).unwrap();
        assert!(matches!(
            verify_checksum(&plain),
            Err(SafetensorsError::NoChecksum)
        ));
    }
}
