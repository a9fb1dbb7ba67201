//! Every temporary file mnv1 makes: named `<prefix><pid>-<random><suffix>` (e.g.
//! `.mnv1-4242-Ab3dEf.tmp`, `.download-4242-Ab3dEf.part`, `.convert-4242-Ab3dEf`), removed on
//! drop and by the signal handler (`interrupt`), and, when a process was killed outright
//! (SIGKILL, power loss), removed by a later run that finds its owner gone (`clean_stale`).

use std::fs;
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tempfile::NamedTempFile;

/// Temporary output files (`atomic`), beside their target.
pub const OUTPUT: Kind = Kind {
    prefix: ".mnv1-",
    suffix: ".tmp",
};
/// A download in progress, in the cache.
pub const DOWNLOAD: Kind = Kind {
    prefix: ".download-",
    suffix: ".part",
};
/// Converted weights about to be renamed into the cache.
pub const CONVERT: Kind = Kind {
    prefix: ".convert-",
    suffix: "",
};

/// Leftovers without a pid in their name (written by mnv1 before names carried one) are removed
/// once they are this old: no run lasts that long without touching its file.
const LEGACY_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub prefix: &'static str,
    pub suffix: &'static str,
}

/// A registered temporary file: deleted when dropped, and by the signal handler meanwhile.
pub struct Temp {
    file: Option<NamedTempFile>,
    path: PathBuf,
}

/// Creates a temporary file of `kind` in `dir`, with mode 0666 minus the umask (tempfile's
/// default 0600 would make outputs private once renamed into place).
pub fn create_in(dir: &Path, kind: Kind) -> io::Result<Temp> {
    let prefix = format!("{}{}-", kind.prefix, std::process::id());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(kind.suffix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    let file = builder.tempfile_in(dir)?;
    let path = file.path().to_path_buf();
    crate::interrupt::register(&path);
    Ok(Temp {
        file: Some(file),
        path,
    })
}

impl Temp {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn as_file(&self) -> &fs::File {
        self.named().as_file()
    }

    pub fn as_file_mut(&mut self) -> &mut fs::File {
        self.file
            .as_mut()
            .expect("present until persisted")
            .as_file_mut()
    }

    fn named(&self) -> &NamedTempFile {
        self.file.as_ref().expect("present until persisted")
    }

    /// Renames the file to `target` (replacing it). On failure the temporary file is removed.
    pub fn persist(mut self, target: &Path) -> io::Result<()> {
        let file = self.file.take().expect("present until persisted");
        let result = file.persist(target).map(drop).map_err(|e| e.error);
        // On error `e.file` was dropped above, which removed it.
        crate::interrupt::unregister(&self.path);
        result
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        // Removed first, unregistered after: a signal in between finds nothing to do.
        drop(self.file.take());
        crate::interrupt::unregister(&self.path);
    }
}

impl Seek for Temp {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.as_file_mut().seek(pos)
    }
}

impl io::Write for Temp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.as_file_mut().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.as_file_mut().flush()
    }
}

/// The pid in a temporary file's name, when it is one of `kind`'s names.
/// `None` for other files; `Some(None)` for an old-style name without a pid.
fn owner(name: &str, kind: Kind) -> Option<Option<u32>> {
    let rest = name.strip_prefix(kind.prefix)?.strip_suffix(kind.suffix)?;
    if rest.is_empty() {
        return None;
    }
    Some(
        rest.split_once('-')
            .and_then(|(pid, random)| (!random.is_empty()).then_some(pid))
            .and_then(|pid| pid.parse().ok()),
    )
}

/// Whether process `pid` exists (signal 0 checks without sending anything).
#[cfg(unix)]
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    // EPERM: it exists, under another user.
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn alive(_pid: u32) -> bool {
    // Without a cheap check, only the age bound applies.
    true
}

/// Whether `name` in `dir` is a temporary file of `kind` whose owner is gone: its pid is not a
/// running process (or is this one... never: a live owner keeps its files), or, for names
/// without a pid, it has not been touched for [`LEGACY_AGE`].
fn is_stale(dir: &Path, name: &str, kind: Kind) -> bool {
    match owner(name, kind) {
        None => false,
        Some(Some(pid)) => pid != std::process::id() && !alive(pid),
        Some(None) => fs::symlink_metadata(dir.join(name))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > LEGACY_AGE),
    }
}

/// Removes the temporary files of `kinds` in `dir` that killed processes left behind; returns
/// what was removed. Errors (an unreadable directory, a file that went away) are not fatal: the
/// files are left for the next run.
pub fn clean_stale(dir: &Path, kinds: &[Kind]) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && kinds.iter().any(|&k| is_stale(dir, &name, k)) {
            let path = entry.path();
            if fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_owner_pid() {
        let dir = tempfile::tempdir().unwrap();
        let t = create_in(dir.path(), DOWNLOAD).unwrap();
        let name = t.path().file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(owner(&name, DOWNLOAD), Some(Some(std::process::id())));
        assert_eq!(owner(&name, OUTPUT), None);
        assert_eq!(owner(".mnv1-Ab3dEf.tmp", OUTPUT), Some(None));
        assert_eq!(owner(".mnv1-.tmp", OUTPUT), None);
        assert_eq!(owner("notes.tmp", OUTPUT), None);
        drop(t);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn new_temporary_files_get_0666_minus_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let t = create_in(dir.path(), OUTPUT).unwrap();
        // The umask of this process, read back by setting it (and restoring it).
        // SAFETY: umask has no memory effects.
        let umask = unsafe {
            let m = libc::umask(0o022);
            libc::umask(m);
            m
        };
        let mode = t.as_file().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !(umask as u32));
    }

    #[cfg(unix)]
    #[test]
    fn only_dead_owners_files_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A pid that is surely gone: a child that has been waited for.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let mine = std::process::id();
        let names = [
            format!(".mnv1-{dead}-aaaaaa.tmp"),
            format!(".download-{dead}-bbbbbb.part"),
            format!(".convert-{dead}-cccccc"),
            format!(".mnv1-{mine}-dddddd.tmp"),
            format!("mnv1-{dead}-eeeeee.tmp"),
            ".mnv1-ffffff.tmp".to_string(),
            ".download-gggggg.part".to_string(),
        ];
        for n in &names {
            fs::write(d.join(n), b"x").unwrap();
        }
        let old = SystemTime::now() - LEGACY_AGE - Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(d.join(".download-gggggg.part"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let mut removed: Vec<String> = clean_stale(d, &[OUTPUT, DOWNLOAD, CONVERT])
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        removed.sort();
        let mut want = vec![
            names[0].clone(),
            names[1].clone(),
            names[2].clone(),
            names[6].clone(),
        ];
        want.sort();
        assert_eq!(removed, want);
        // Only the kinds asked for.
        fs::write(d.join(&names[1]), b"x").unwrap();
        assert!(clean_stale(d, &[OUTPUT]).is_empty());
    }
}
