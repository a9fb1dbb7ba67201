//! The one way mnv1 writes a file under a name someone may be reading: [`AtomicFile`].
//!
//! - A regular file (or a name not yet taken) is written to a temporary sibling and renamed over
//!   the name only by `commit`, so the name never shows partial content; an error or a signal
//!   leaves the old file as it was. New files get mode 0666 minus the umask; a replaced file
//!   keeps its mode (and its owner and group, where the process may set them).
//! - A symbolic link is followed to its final target, and that file is replaced: the link stays.
//! - Anything else (a device such as /dev/null, a FIFO, a socket, /dev/stdout or /proc/self/fd/N,
//!   also when these point at a regular file) is written directly, appending: such a target cannot
//!   be replaced, and replacing it would destroy it (run as root, a rename over /dev/null does).
//!
//! [`commit_pair`] commits two files together (an .npy and its .paths.txt) so that readers never
//! find one run's array beside another run's paths.

use std::fs::{self, File};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::tempfiles::{self, Kind, Temp};

/// Symbolic links followed before giving up (Linux's own limit).
const MAX_LINKS: usize = 40;

/// A file that appears under its name only once `commit` succeeds (see the module doc).
pub struct AtomicFile {
    out: Out,
    /// The name given (for messages).
    name: PathBuf,
}

enum Out {
    /// Written to `tmp`, renamed to `target` (the final target of any symlinks) on commit.
    Replace {
        tmp: BufWriter<Temp>,
        target: PathBuf,
    },
    /// A target that is not a regular file, written in place.
    Direct(BufWriter<File>),
}

/// What `name` leads to.
enum Resolved {
    /// A regular file (or no file yet) at this path, after following symbolic links.
    File(PathBuf),
    /// Not a regular file, or a file descriptor link (/dev/stdout, /proc/self/fd/N).
    Direct,
}

/// An I/O error that names its path, keeping the error's kind (a closed pipe stays BrokenPipe).
pub fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// True for a name inside a process's descriptor table (`/proc/<pid>/fd/N`, and so /dev/fd/N):
/// opening it reaches whatever the descriptor holds, and renaming over it is meaningless.
fn is_descriptor_link(path: &Path) -> bool {
    let Ok(dir) = fs::canonicalize(parent_dir(path)) else {
        return false;
    };
    dir.starts_with("/proc") && dir.file_name().is_some_and(|n| n == "fd")
}

fn resolve(name: &Path) -> io::Result<Resolved> {
    let mut path = name.to_path_buf();
    for _ in 0..MAX_LINKS {
        if is_descriptor_link(&path) {
            return Ok(Resolved::Direct);
        }
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Resolved::File(path)),
            Err(e) => return Err(e),
        };
        if meta.file_type().is_symlink() {
            let link = fs::read_link(&path)?;
            path = parent_dir(&path).join(link);
        } else if meta.is_file() {
            return Ok(Resolved::File(path));
        } else if meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory (name a file)",
            ));
        } else {
            return Ok(Resolved::Direct);
        }
    }
    Err(io::Error::other(format!(
        "more than {MAX_LINKS} symbolic links to follow"
    )))
}

impl AtomicFile {
    /// Opens `name` for writing as the module doc says; temporary files are `.mnv1-*.tmp`.
    pub fn create(name: &Path) -> io::Result<Self> {
        Self::create_as(name, tempfiles::OUTPUT)
    }

    /// As `create`, with temporary files of `kind` (the cache's `.convert-*`).
    pub fn create_as(name: &Path, kind: Kind) -> io::Result<Self> {
        let out = match resolve(name).map_err(|e| named(name, e))? {
            Resolved::Direct => {
                let file = fs::OpenOptions::new()
                    .append(true)
                    .open(name)
                    .map_err(|e| named(name, e))?;
                Out::Direct(BufWriter::new(file))
            }
            Resolved::File(target) => {
                let dir = parent_dir(&target);
                // Leftovers of killed runs writing here.
                tempfiles::clean_stale(dir, &[kind]);
                let tmp = tempfiles::create_in(dir, kind).map_err(|e| named(&target, e))?;
                if let Ok(old) = fs::metadata(&target) {
                    keep_mode_and_owner(tmp.as_file(), &old).map_err(|e| named(&target, e))?;
                }
                Out::Replace {
                    tmp: BufWriter::new(tmp),
                    target,
                }
            }
        };
        Ok(Self {
            out,
            name: name.to_path_buf(),
        })
    }

    /// The name this file was created with.
    pub fn name(&self) -> &Path {
        &self.name
    }

    /// Whether writes go to a temporary file, which can seek (a direct target may be a pipe).
    pub fn seekable(&self) -> bool {
        matches!(self.out, Out::Replace { .. })
    }

    /// Flushes and syncs the temporary file: after this only the rename is left.
    fn finish_writing(&mut self) -> io::Result<()> {
        let result = match &mut self.out {
            Out::Replace { tmp, .. } => tmp
                .flush()
                .and_then(|()| tmp.get_ref().as_file().sync_all()),
            Out::Direct(f) => f.flush(),
        };
        result.map_err(|e| named(&self.name, e))
    }

    /// Puts the content under its name (renames the temporary file over the target).
    pub fn commit(mut self) -> io::Result<()> {
        self.finish_writing()?;
        match self.out {
            Out::Direct(_) => Ok(()),
            Out::Replace { tmp, target } => into_temp(tmp)?
                .persist(&target)
                .map_err(|e| named(&target, e)),
        }
    }
}

fn into_temp(w: BufWriter<Temp>) -> io::Result<Temp> {
    w.into_inner().map_err(|e| e.into_error())
}

#[cfg(unix)]
fn keep_mode_and_owner(tmp: &File, old: &fs::Metadata) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    tmp.set_permissions(old.permissions())?;
    // Only root may give a file away; for others this keeps the group where they belong to it.
    let _ = std::os::unix::fs::fchown(tmp, Some(old.uid()), Some(old.gid()));
    Ok(())
}

#[cfg(not(unix))]
fn keep_mode_and_owner(tmp: &File, old: &fs::Metadata) -> io::Result<()> {
    tmp.set_permissions(old.permissions())
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = match &mut self.out {
            Out::Replace { tmp, .. } => tmp.write(buf),
            Out::Direct(f) => f.write(buf),
        };
        r.map_err(|e| named(&self.name, e))
    }
    fn flush(&mut self) -> io::Result<()> {
        let r = match &mut self.out {
            Out::Replace { tmp, .. } => tmp.flush(),
            Out::Direct(f) => f.flush(),
        };
        r.map_err(|e| named(&self.name, e))
    }
}

/// Seeking works on the temporary file (e.g. to fill in a header at the end); a direct target
/// that cannot seek (a pipe) says so.
impl Seek for AtomicFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let r = match &mut self.out {
            Out::Replace { tmp, .. } => tmp.seek(pos),
            Out::Direct(f) => f.seek(pos),
        };
        r.map_err(|e| named(&self.name, e))
    }
}

/// Writes `bytes` to `path` atomically (see [`AtomicFile`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes)?;
    f.commit()
}

/// Commits `first` and `second` together: under a lock on their directories (so that two runs
/// writing the same pair cannot interleave their renames), `first` is renamed into place, then
/// `second`; when the second rename fails, the first target is put back as it was (its previous
/// file restored, or removed when there was none) and the error returned.
pub fn commit_pair(mut first: AtomicFile, mut second: AtomicFile) -> io::Result<()> {
    first.finish_writing()?;
    second.finish_writing()?;
    if !matches!(
        (&first.out, &second.out),
        (Out::Replace { .. }, Out::Replace { .. })
    ) {
        // A direct target cannot be rolled back: each is written in place or renamed alone.
        first.commit()?;
        return second.commit();
    }
    let (
        Out::Replace {
            tmp: tmp1,
            target: target1,
        },
        Out::Replace {
            tmp: tmp2,
            target: target2,
        },
    ) = (first.out, second.out)
    else {
        unreachable!("both checked above")
    };
    let (tmp1, tmp2) = (into_temp(tmp1)?, into_temp(tmp2)?);
    let mut dirs = vec![parent_dir(&target1), parent_dir(&target2)];
    dirs.sort();
    dirs.dedup();
    let _locks = dirs
        .iter()
        .map(|d| lock_dir(d).map_err(|e| named(d, e)))
        .collect::<io::Result<Vec<_>>>()?;
    let backup = backup_of(&target1).map_err(|e| named(&target1, e))?;
    tmp1.persist(&target1).map_err(|e| named(&target1, e))?;
    if let Err(e) = tmp2.persist(&target2) {
        let restored = match backup {
            Some(b) => b.persist(&target1),
            None => fs::remove_file(&target1),
        };
        let e = named(&target2, e);
        return Err(match restored {
            Ok(()) => e,
            Err(r) => io::Error::new(
                e.kind(),
                format!("{e}; and putting back {} failed: {r}", target1.display()),
            ),
        });
    }
    Ok(())
}

/// An advisory lock on a directory (flock on its descriptor), released on drop.
fn lock_dir(dir: &Path) -> io::Result<File> {
    let f = File::open(dir)?;
    fs4::FileExt::lock(&f)?;
    Ok(f)
}

/// A second name for `target`'s current file (a hard link, else a copy), to restore it from.
fn backup_of(target: &Path) -> io::Result<Option<Temp>> {
    if !target.exists() {
        return Ok(None);
    }
    let backup = tempfiles::create_in(parent_dir(target), tempfiles::OUTPUT)?;
    fs::remove_file(backup.path())?;
    if fs::hard_link(target, backup.path()).is_err() {
        fs::copy(target, backup.path())?;
    }
    Ok(Some(backup))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap()
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_file_appears_only_on_commit_and_drop_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.txt");
        fs::write(&p, "old").unwrap();
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"new").unwrap();
        f.flush().unwrap();
        assert_eq!(read(&p), "old");
        drop(f);
        assert_eq!(read(&p), "old");
        assert_eq!(names_in(dir.path()), ["out.txt"]);
        write_atomic(&p, b"new").unwrap();
        assert_eq!(read(&p), "new");
        assert_eq!(names_in(dir.path()), ["out.txt"]);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_written_through_and_modes_kept() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("real")).unwrap();
        let target = d.join("real/results.txt");
        fs::write(&target, "old").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o640)).unwrap();
        // A chain of two links, one relative.
        symlink("real/results.txt", d.join("link1")).unwrap();
        symlink(d.join("link1"), d.join("link2")).unwrap();
        write_atomic(&d.join("link2"), b"new").unwrap();
        assert!(fs::symlink_metadata(d.join("link2"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(fs::symlink_metadata(d.join("link1"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(read(&target), "new");
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        // A dangling link creates its target, as `>` does.
        symlink("made.txt", d.join("dangling")).unwrap();
        write_atomic(&d.join("dangling"), b"x").unwrap();
        assert_eq!(read(&d.join("made.txt")), "x");
        // A loop is an error naming the path, not a hang.
        symlink("loop", d.join("loop")).unwrap();
        let e = write_atomic(&d.join("loop"), b"x").unwrap_err();
        assert!(e.to_string().contains("loop"), "{e}");
        // A directory is refused.
        let e = write_atomic(&d.join("real"), b"x").unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn devices_fifos_and_descriptor_links_are_written_in_place() {
        use std::io::Read;
        // /dev/null stays a character device (as root a rename would have replaced it).
        write_atomic(Path::new("/dev/null"), b"discarded").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut s = String::new();
                File::open(fifo).unwrap().read_to_string(&mut s).unwrap();
                s
            })
        };
        write_atomic(&fifo, b"through the fifo").unwrap();
        assert_eq!(reader.join().unwrap(), "through the fifo");
        assert!(!fs::metadata(&fifo).unwrap().is_file());
        assert_eq!(names_in(dir.path()), ["fifo"]);
        // A descriptor link to a regular file appends through the descriptor.
        let file = dir.path().join("via-fd.txt");
        fs::write(&file, "head\n").unwrap();
        let held = fs::OpenOptions::new().append(true).open(&file).unwrap();
        use std::os::fd::AsRawFd;
        let link = PathBuf::from(format!("/proc/self/fd/{}", held.as_raw_fd()));
        if link.exists() {
            write_atomic(&link, b"tail\n").unwrap();
            assert_eq!(read(&file), "head\ntail\n");
            assert_eq!(names_in(dir.path()), ["fifo", "via-fd.txt"]);
        }
    }

    fn pair(dir: &Path, a: &str, b: &str) -> (AtomicFile, AtomicFile) {
        let mut f1 = AtomicFile::create(&dir.join("x.npy")).unwrap();
        let mut f2 = AtomicFile::create(&dir.join("x.npy.paths.txt")).unwrap();
        f1.write_all(a.as_bytes()).unwrap();
        f2.write_all(b.as_bytes()).unwrap();
        (f1, f2)
    }

    #[test]
    fn a_failed_second_rename_puts_the_first_file_back() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (a, b) = pair(d, "A1", "B1");
        commit_pair(a, b).unwrap();
        // The second target turns into a non-empty directory: its rename fails.
        let block = |d: &Path| {
            let txt = d.join("x.npy.paths.txt");
            fs::remove_file(&txt).unwrap();
            fs::create_dir(&txt).unwrap();
            fs::write(txt.join("keep"), "").unwrap();
        };
        let (a, b) = pair(d, "A2", "B2");
        block(d);
        let e = commit_pair(a, b).unwrap_err();
        assert!(e.to_string().contains("x.npy.paths.txt"), "{e}");
        assert_eq!(read(&d.join("x.npy")), "A1");
        assert_eq!(names_in(d), ["x.npy", "x.npy.paths.txt"]);
        // With no earlier first file, the rollback removes the new one.
        fs::remove_dir_all(d.join("x.npy.paths.txt")).unwrap();
        fs::remove_file(d.join("x.npy")).unwrap();
        fs::write(d.join("x.npy.paths.txt"), "B1").unwrap();
        let (a, b) = pair(d, "A3", "B3");
        block(d);
        commit_pair(a, b).unwrap_err();
        assert_eq!(names_in(d), ["x.npy.paths.txt"]);
    }

    #[test]
    fn concurrent_pairs_never_mix() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let d = d.clone();
                std::thread::spawn(move || {
                    for i in 0..30 {
                        let v = format!("{t}-{i}");
                        let (a, b) = pair(&d, &v, &v);
                        commit_pair(a, b).unwrap();
                        let _lock = lock_dir(&d).unwrap();
                        assert_eq!(read(&d.join("x.npy")), read(&d.join("x.npy.paths.txt")));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(names_in(&d), ["x.npy", "x.npy.paths.txt"]);
    }
}
