//! Reading numpy `.npz` archives (np.savez / savez_compressed, and mnv1's own `embed --out
//! F.npz`): a zip of `NAME.npy` members, each read by npyz.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

pub struct NpzArchive(zip::ZipArchive<BufReader<File>>);

impl NpzArchive {
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let file = BufReader::new(File::open(path)?);
        zip::ZipArchive::new(file)
            .map(Self)
            .map_err(std::io::Error::other)
    }

    /// The arrays' names (members without their `.npy`), in archive order.
    pub fn array_names(&self) -> Vec<String> {
        self.0
            .file_names()
            .filter_map(|n| Some(n.ok()?.strip_suffix(".npy")?.to_string()))
            .collect()
    }

    /// The array `name`, or `None` when the archive has no such member.
    pub fn by_name(
        &mut self,
        name: &str,
    ) -> std::io::Result<Option<npyz::NpyFile<zip::read::ZipFile<'_, BufReader<File>>>>> {
        match self.0.by_name(&format!("{name}.npy")) {
            Ok(member) => npyz::NpyFile::new(member).map(Some),
            Err(zip::result::ZipError::FileNotFound) => Ok(None),
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}
