//! One writer per checkpoint across processes: an advisory lock on `<cache>/.locks/<name>.lock`.
//! The lock file itself holds nothing and is never removed (removing it would let two processes
//! lock two different files of the same name).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

use fs4::FileExt;

/// Held until dropped; the OS releases it if the process dies.
pub struct CacheLock {
    _file: File,
}

impl CacheLock {
    /// Blocks until no other mnv1 process holds the lock of `name`; says so on stderr when it waits.
    pub fn acquire(cache_dir: &Path, name: &str, quiet: bool) -> io::Result<Self> {
        let dir = cache_dir.join(".locks");
        fs::create_dir_all(&dir)?;
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(dir.join(format!("{name}.lock")))?;
        match FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                if !quiet {
                    eprintln!("mnv1: another mnv1 process is fetching {name}; waiting for it");
                }
                FileExt::lock(&file)?;
            }
            Err(fs4::TryLockError::Error(e)) => return Err(e),
        }
        Ok(Self { _file: file })
    }
}
