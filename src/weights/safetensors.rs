//! The project's own canonical form: float32 safetensors with TF-Slim names and TF layouts.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::RawTensor;

#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    #[error("not a readable safetensors file: {0}")]
    Format(#[from] safetensors::SafeTensorError),
    #[error("tensor '{name}' is {dtype:?}; mnv1 reads float32 safetensors only")]
    Dtype { name: String, dtype: Dtype },
}

/// True when bytes start like a safetensors file: a little-endian header length, then `{`.
pub fn is_safetensors(bytes: &[u8]) -> bool {
    let Some(len) = bytes.get(..8) else { return false };
    let n = u64::from_le_bytes(len.try_into().unwrap_or_default());
    n > 1 && n < 100_000_000 && bytes.get(8) == Some(&b'{') && (n as usize).saturating_add(8) <= bytes.len()
}

pub fn read_safetensors(bytes: &[u8]) -> Result<BTreeMap<String, RawTensor>, SafetensorsError> {
    let st = SafeTensors::deserialize(bytes)?;
    let mut out = BTreeMap::new();
    for (name, view) in st.iter() {
        if view.dtype() != Dtype::F32 {
            return Err(SafetensorsError::Dtype { name: name.to_string(), dtype: view.dtype() });
        }
        let data = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        out.insert(name.to_string(), RawTensor::new(view.shape().to_vec(), data));
    }
    Ok(out)
}

/// Writes `tensors` with `metadata` to `path` (the crate writes a temporary file and renames it).
pub fn write_safetensors(
    tensors: &BTreeMap<String, RawTensor>,
    metadata: HashMap<String, String>,
    path: &Path,
) -> Result<(), SafetensorsError> {
    let bytes: Vec<(&String, Vec<u8>)> =
        tensors.iter().map(|(k, t)| (k, t.data.iter().flat_map(|v| v.to_le_bytes()).collect())).collect();
    let views = bytes
        .iter()
        .zip(tensors.values())
        .map(|((name, data), t)| Ok((name.as_str(), TensorView::new(Dtype::F32, t.shape.clone(), data)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    safetensors::serialize_to_file(views, Some(metadata), path)?;
    Ok(())
}
