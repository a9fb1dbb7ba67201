//! (being written) PLACEHOLDER STUB so the crate compiles until the real module lands: replace this whole file.
pub struct Rgb32 { pub height: usize, pub width: usize, pub data: Vec<f32> }
pub enum Crop { Central(f32), None }
pub struct Preprocess { pub size: (usize, usize), pub crop: Crop, pub max_pixels: u64 }
#[derive(Debug, thiserror::Error)]
#[error("preprocess not yet written")]
pub struct PreprocessError;
pub fn decode_image(_bytes: &[u8], _max_pixels: u64) -> Result<Rgb32, PreprocessError> { Err(PreprocessError) }
pub fn preprocess_image(_bytes: &[u8], _p: &Preprocess) -> Result<Rgb32, PreprocessError> { Err(PreprocessError) }
pub fn read_npy_images(_bytes: &[u8]) -> Result<Vec<Rgb32>, PreprocessError> { Err(PreprocessError) }
pub fn is_npy(_bytes: &[u8]) -> bool { false }
