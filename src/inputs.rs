//! Turns the command line's INPUT arguments into the ordered list of files to process:
//! files as given, directories searched recursively in sorted order (image and .npy
//! extensions only), and `-` for paths read from stdin, one per line.

use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Extensions picked up inside directories (case-insensitive). Files named on the command line
/// are taken whatever their name: their content decides.
pub const EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "npy",
];

/// An input that could not even be listed (missing path, empty directory, unreadable entry).
#[derive(Debug, Clone, PartialEq)]
pub struct InputFailure {
    pub path: PathBuf,
    pub reason: String,
}

pub type InputItem = Result<PathBuf, InputFailure>;

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Expands `args` in order; `stdin` is read (once) where an argument is `-`.
pub fn expand(args: &[PathBuf], stdin: &mut dyn BufRead) -> Vec<InputItem> {
    let mut items = Vec::new();
    let mut stdin_read = false;
    for arg in args {
        if arg.as_os_str() == "-" {
            if !stdin_read {
                stdin_read = true;
                for path in read_paths(stdin) {
                    expand_one(path, &mut items);
                }
            }
        } else {
            expand_one(arg.clone(), &mut items);
        }
    }
    items
}

/// Paths from stdin, one per line, as bytes (non-UTF-8 names survive on Unix).
fn read_paths(stdin: &mut dyn BufRead) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let mut line = Vec::new();
    while stdin.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if !line.is_empty() {
            paths.push(path_from_bytes(std::mem::take(&mut line)));
        }
        line.clear();
    }
    paths
}

#[cfg(unix)]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
}

fn expand_one(path: PathBuf, items: &mut Vec<InputItem>) {
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) => {
            let reason = if path.symlink_metadata().is_ok() {
                format!("broken symbolic link ({e})")
            } else {
                e.to_string()
            };
            items.push(Err(InputFailure { path, reason }));
            return;
        }
    };
    if !meta.is_dir() {
        items.push(Ok(path));
        return;
    }
    let before = items.len();
    for entry in walkdir::WalkDir::new(&path)
        .follow_links(true)
        .sort_by_file_name()
    {
        match entry {
            Ok(e) if e.file_type().is_file() && has_image_extension(e.path()) => {
                items.push(Ok(e.into_path()))
            }
            Ok(_) => {}
            Err(e) => {
                let p = e
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| path.clone());
                if has_image_extension(&p) || e.loop_ancestor().is_some() || e.io_error().is_some()
                {
                    items.push(Err(InputFailure {
                        path: p,
                        reason: e.to_string(),
                    }));
                }
            }
        }
    }
    if items.len() == before {
        items.push(Err(InputFailure {
            path,
            reason: format!("directory holds no images ({})", EXTENSIONS.join(", ")),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_recursive_sorted_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        for f in ["b.JPG", "a.png", "notes.txt", "sub/c.npy", "sub/d.webp"] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let items = expand(&[d.to_path_buf()], &mut std::io::empty());
        let names: Vec<_> = items
            .iter()
            .map(|i| i.as_ref().unwrap().strip_prefix(d).unwrap().to_path_buf())
            .collect();
        let want: Vec<PathBuf> = ["a.png", "b.JPG", "sub/c.npy", "sub/d.webp"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(names, want);
    }

    #[test]
    fn stdin_lists_paths_and_failures_keep_their_place() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a b.png");
        std::fs::write(&a, b"x").unwrap();
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let mut stdin = std::io::Cursor::new(format!(
            "{}\r\n\n{}\n",
            a.display(),
            dir.path().join("missing.jpg").display()
        ));
        let items = expand(&[PathBuf::from("-"), empty.clone()], &mut stdin);
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].as_ref().unwrap(), &a);
        assert!(items[1].as_ref().unwrap_err().path.ends_with("missing.jpg"));
        assert!(items[2].as_ref().unwrap_err().reason.contains("no images"));
    }
}
