//! Turns the command line's INPUT arguments into the ordered stream of images to process:
//! files as given, directories searched recursively in sorted order (image, .npy and .tar
//! extensions only), `-` for paths read from stdin, one per line, as they arrive, and the image
//! members of `.tar` shards (`tar_shard`). `split` keeps one `--shard K/N` part of the listing;
//! `npy` reads .npy tensors given as inputs. Also how one input's bytes are read (regular files
//! and pipes only, with a bound).

pub mod npy;
pub mod split;
pub mod tar_shard;

use std::collections::VecDeque;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::UsageError;

/// Extensions picked up inside directories (case-insensitive). Files named on the command line
/// are taken whatever their name: their content decides.
pub const EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "npy",
];

/// Longest path accepted on stdin, in bytes: the system's own limit (Linux's PATH_MAX).
pub const MAX_PATH_BYTES: usize = 4096;

/// Largest regular file read as one input (images are bounded by --max-pixels after decoding;
/// this bounds what is held before).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Largest input read from a pipe or FIFO (its size is unknown until it ends; --threads of them
/// are read at once).
pub const MAX_PIPE_BYTES: u64 = 64 << 20;

/// An input that could not even be listed (missing path, empty directory, unreadable entry).
#[derive(Debug, Clone, PartialEq)]
pub struct InputFailure {
    pub path: PathBuf,
    pub reason: String,
}

/// One listed input: a file (an image, a .npy, a .tar shard), or why it could not be listed.
pub type Listed = Result<PathBuf, InputFailure>;

/// One unit of work for the pipeline, in input order.
#[derive(Debug)]
pub enum InputItem {
    Image(Input),
    Failed(InputFailure),
    /// Every member of this tar shard has gone by (writers with one output per shard close it).
    ShardEnd(Arc<Path>),
}

/// An image (or .npy tensor) to decode.
#[derive(Debug)]
pub struct Input {
    /// The name results carry: the path, or `SHARD.tar/MEMBER`.
    pub name: String,
    pub source: Source,
    /// The tar shard it came from.
    pub shard: Option<Arc<Path>>,
}

#[derive(Debug)]
pub enum Source {
    File(PathBuf),
    /// A tar member, already read from the shard's stream; its bytes count against
    /// [`tar_shard::MEMBER_BYTES_IN_FLIGHT`] until the input is dropped (once decoded).
    Bytes(Vec<u8>, tar_shard::Lease),
}

/// An input's name as results carry it: the name's bytes as they are when they are UTF-8 and
/// hold no `\\` and no `\xNN`; otherwise every backslash doubled and every byte that is not
/// UTF-8 written `\xNN` (lowercase hex). So names that differ only in invalid bytes stay
/// different, and one rule reads any name back: left to right, `\\` is `\` and `\xNN` is the
/// byte NN (README "Output files").
pub fn name_of_bytes(bytes: &[u8]) -> String {
    let escaped = |s: &str| {
        s.contains("\\\\")
            || s.as_bytes().windows(4).any(|w| {
                w[0] == b'\\'
                    && w[1] == b'x'
                    && w[2].is_ascii_hexdigit()
                    && w[3].is_ascii_hexdigit()
            })
    };
    match std::str::from_utf8(bytes) {
        Ok(s) if !escaped(s) => s.to_string(),
        _ => {
            let mut out = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                out.push_str(&chunk.valid().replace('\\', "\\\\"));
                for b in chunk.invalid() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            out
        }
    }
}

/// [`name_of_bytes`] of a path (its OS bytes on Unix).
pub fn name_of(path: &Path) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        name_of_bytes(path.as_os_str().as_bytes())
    }
    #[cfg(not(unix))]
    {
        name_of_bytes(path.to_string_lossy().as_bytes())
    }
}

impl Input {
    pub fn file(path: PathBuf) -> Self {
        Self {
            name: name_of(&path),
            source: Source::File(path),
            shard: None,
        }
    }

    /// The input's bytes (read now for a file).
    pub fn bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>, String> {
        match &self.source {
            Source::File(p) => read_input(p).map(Into::into),
            Source::Bytes(b, _) => Ok(b.as_slice().into()),
        }
    }
}

/// The listed files as work: a tar shard becomes its image members (read as a stream when the
/// iteration reaches it), then its [`InputItem::ShardEnd`]; other files are one image each.
pub fn items(
    listed: impl Iterator<Item = Listed> + Send + 'static,
) -> impl Iterator<Item = InputItem> + Send + 'static {
    listed.flat_map(|l| -> Box<dyn Iterator<Item = InputItem> + Send> {
        match l {
            Err(f) => Box::new(std::iter::once(InputItem::Failed(f))),
            Ok(p) if tar_shard::is_tar(&p) => Box::new(tar_shard::members(p)),
            Ok(p) => Box::new(std::iter::once(InputItem::Image(Input::file(p)))),
        }
    })
}

pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// What makes two names the same file: device and inode where the file exists, else the
/// absolute path with its directory's symbolic links resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileId {
    Inode(u64, u64),
    Path(PathBuf),
}

pub fn file_id(path: &Path) -> FileId {
    #[cfg(unix)]
    if let Ok(m) = std::fs::metadata(path) {
        use std::os::unix::fs::MetadataExt;
        return FileId::Inode(m.dev(), m.ino());
    }
    FileId::Path(normalised(path))
}

fn normalised(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or(abs.clone()),
        _ => abs,
    }
}

/// Refuses outputs that are also inputs, before anything is read: an output that is one of
/// the INPUT files (same file by [`file_id`], also through links), or that a directory INPUT
/// would pick up. Paths arriving later on stdin are checked as they come ([`Inputs`]).
pub fn refuse_outputs_among_inputs(outputs: &[&Path], args: &[PathBuf]) -> Result<(), UsageError> {
    for out in outputs {
        let id = file_id(out);
        for arg in args.iter().filter(|a| a.as_os_str() != "-") {
            let same = file_id(arg) == id;
            let inside = arg.is_dir()
                && out.exists()
                && has_image_extension(out)
                && normalised(out).starts_with(normalised(arg));
            if same || inside {
                return Err(UsageError::new(format!(
                    "--out {} is {} the inputs; write the results elsewhere",
                    out.display(),
                    if same { "one of" } else { "among" }
                )));
            }
        }
    }
    Ok(())
}

/// Refuses an `--out-dir` inside a directory INPUT for outputs that directories are searched
/// for (.npy): a later run over the same inputs would read them as images.
pub fn refuse_dir_among_inputs(out_dir: &Path, args: &[PathBuf]) -> Result<(), UsageError> {
    let out = normalised(out_dir);
    match args
        .iter()
        .find(|a| a.as_os_str() != "-" && a.is_dir() && out.starts_with(normalised(a)))
    {
        Some(input) => Err(UsageError::new(format!(
            "--out-dir {} is inside the input directory {}, where its .npy files would be read \
             as inputs; write them elsewhere or choose another --format",
            out_dir.display(),
            input.display()
        ))),
        None => Ok(()),
    }
}

/// The inputs in order, expanded lazily: a directory when it is reached, stdin line by line
/// (so results start before stdin ends). Files that are one of `outputs` fail as inputs.
pub struct Inputs<R> {
    args: VecDeque<PathBuf>,
    stdin: Option<R>,
    /// Reading stdin now (it is read once, at the first `-`).
    reading_stdin: bool,
    stdin_line: usize,
    queue: VecDeque<Listed>,
    outputs: Vec<FileId>,
}

impl<R: BufRead> Inputs<R> {
    pub fn new(args: &[PathBuf], stdin: R, outputs: &[&Path]) -> Self {
        Self {
            args: args.iter().cloned().collect(),
            stdin: Some(stdin),
            reading_stdin: false,
            stdin_line: 0,
            queue: VecDeque::new(),
            outputs: outputs.iter().map(|p| file_id(p)).collect(),
        }
    }

    /// The next path from stdin into the queue; false at its end.
    fn read_stdin_line(&mut self) -> bool {
        let Some(stdin) = self.stdin.as_mut() else {
            return false;
        };
        self.stdin_line += 1;
        match read_line(stdin) {
            Ok(None) => {
                self.stdin = None;
                false
            }
            Ok(Some(line)) if line.is_empty() => true,
            Ok(Some(line)) => {
                expand_one(path_from_bytes(line), &mut self.queue);
                true
            }
            Err(e) => {
                // stdin that is not a list of paths (an endless line, binary data such as
                // /dev/zero) would otherwise be read for ever: one failure, and reading stops.
                self.stdin = None;
                let reason = match &e {
                    LineError::TooLong => format!(
                        "a line longer than the system's path limit ({MAX_PATH_BYTES} bytes): \
                         stdin is not a list of paths, not read further"
                    ),
                    LineError::Nul => "a NUL byte: stdin is not a list of paths, one per line \
                         (find -print0 output? use -print), not read further"
                        .to_string(),
                    LineError::Read(e) => format!("reading stdin: {e}"),
                };
                self.queue.push_back(Err(InputFailure {
                    path: PathBuf::from(format!("<stdin line {}>", self.stdin_line)),
                    reason,
                }));
                true
            }
        }
    }

    fn output_check(&self, item: Listed) -> Listed {
        match item {
            Ok(p) if !self.outputs.is_empty() && self.outputs.contains(&file_id(&p)) => {
                Err(InputFailure {
                    path: p,
                    reason: "this is the --out file: not read".into(),
                })
            }
            other => other,
        }
    }
}

impl<R: BufRead> Iterator for Inputs<R> {
    type Item = Listed;

    fn next(&mut self) -> Option<Listed> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(self.output_check(item));
            }
            if self.reading_stdin {
                if self.read_stdin_line() {
                    continue;
                }
                self.reading_stdin = false;
            }
            let arg = self.args.pop_front()?;
            if arg.as_os_str() == "-" {
                self.reading_stdin = self.stdin.is_some();
            } else {
                expand_one(arg, &mut self.queue);
            }
        }
    }
}

/// Expands `args` in order; `stdin` is read (once) where an argument is `-`.
pub fn expand(args: &[PathBuf], stdin: &mut dyn BufRead) -> Vec<Listed> {
    Inputs::new(args, stdin, &[]).collect()
}

enum LineError {
    TooLong,
    Nul,
    Read(std::io::Error),
}

/// One line of stdin without its line ending, as bytes (non-UTF-8 names survive on Unix);
/// `None` at the end. At most [`MAX_PATH_BYTES`] + 2 bytes are read for a line: a longer one,
/// or one holding a NUL byte (which no path has), is an error, and the caller stops reading.
fn read_line(r: &mut impl BufRead) -> Result<Option<Vec<u8>>, LineError> {
    let mut line = Vec::new();
    let limit = MAX_PATH_BYTES as u64 + 2; // the path, "\r\n"
    let n = r
        .by_ref()
        .take(limit)
        .read_until(b'\n', &mut line)
        .map_err(LineError::Read)?;
    if n == 0 {
        return Ok(None);
    }
    if line.contains(&0) {
        return Err(LineError::Nul);
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    if line.len() > MAX_PATH_BYTES {
        return Err(LineError::TooLong);
    }
    Ok(Some(line))
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

fn expand_one(path: PathBuf, items: &mut VecDeque<Listed>) {
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) => {
            let reason = if path.symlink_metadata().is_ok() {
                format!("broken symbolic link ({e})")
            } else {
                e.to_string()
            };
            items.push_back(Err(InputFailure { path, reason }));
            return;
        }
    };
    if !meta.is_dir() {
        items.push_back(Ok(path));
        return;
    }
    let before = items.len();
    for entry in walkdir::WalkDir::new(&path)
        .follow_links(true)
        .sort_by_file_name()
    {
        match entry {
            Ok(e)
                if e.file_type().is_file()
                    && (has_image_extension(e.path()) || tar_shard::is_tar(e.path())) =>
            {
                items.push_back(Ok(e.into_path()))
            }
            Ok(_) => {}
            Err(e) => {
                let p = e
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| path.clone());
                if has_image_extension(&p) || e.loop_ancestor().is_some() || e.io_error().is_some()
                {
                    items.push_back(Err(InputFailure {
                        path: p,
                        reason: e.to_string(),
                    }));
                }
            }
        }
    }
    if items.len() == before {
        items.push_back(Err(InputFailure {
            path,
            reason: format!(
                "directory holds no images ({}, or .tar shards of them)",
                EXTENSIONS.join(", ")
            ),
        }));
    }
}

/// The bytes of one input: a regular file up to [`MAX_FILE_BYTES`], a pipe or FIFO (`<(...)`,
/// /dev/stdin) up to [`MAX_PIPE_BYTES`]. Devices (/dev/zero, a terminal) and sockets are refused:
/// they never end, or are no file.
pub fn read_input(path: &Path) -> Result<Vec<u8>, String> {
    let (file, meta) = open_readable(path)?;
    let limit = if meta.is_file() {
        if meta.len() > MAX_FILE_BYTES {
            return Err(format!(
                "{} bytes: more than the {MAX_FILE_BYTES}-byte limit for one input",
                meta.len()
            ));
        }
        MAX_FILE_BYTES
    } else {
        MAX_PIPE_BYTES
    };
    let mut bytes = Vec::with_capacity(if meta.is_file() {
        meta.len() as usize
    } else {
        0
    });
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "more than the {limit}-byte limit for one input read from a pipe"
        ));
    }
    Ok(bytes)
}

/// Opens a regular file or a pipe for reading; devices, sockets and directories are refused.
pub fn open_readable(path: &Path) -> Result<(std::fs::File, std::fs::Metadata), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() && !is_fifo(&meta) {
        return Err(format!(
            "not a regular file or a pipe ({}): refused",
            describe(&meta)
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    Ok((file, meta))
}

#[cfg(unix)]
fn is_fifo(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_fifo()
}

#[cfg(not(unix))]
fn is_fifo(_meta: &std::fs::Metadata) -> bool {
    false
}

fn describe(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "a special file"
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

    #[test]
    fn an_overlong_stdin_line_is_one_failure_and_reading_stops() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.png");
        std::fs::write(&a, b"x").unwrap();
        // A path, then a line over the limit: the path is listed, then one failure, and
        // nothing after it is read (the third line is never reached).
        let text = format!(
            "{}\n{}\n{}\n",
            a.display(),
            "y".repeat(MAX_PATH_BYTES + 1),
            a.display()
        );
        let items = expand(&[PathBuf::from("-")], &mut std::io::Cursor::new(text));
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!(items[0].as_ref().unwrap(), &a);
        let failure = items[1].as_ref().unwrap_err();
        assert!(failure.reason.contains("path limit"), "{failure:?}");
        assert_eq!(failure.path, PathBuf::from("<stdin line 2>"));
        // A path of exactly the limit is a path (missing here, but read as one), with either
        // line ending.
        for end in ["", "\n", "\r\n"] {
            let exact = format!("{}{end}", "z".repeat(MAX_PATH_BYTES));
            let items = expand(&[PathBuf::from("-")], &mut std::io::Cursor::new(exact));
            assert_eq!(items.len(), 1, "{items:?}");
            assert!(!items[0].as_ref().unwrap_err().reason.contains("path limit"));
        }
    }

    /// An endless stdin (like `</dev/zero`, or one long line with no newline) ends after one
    /// bounded read.
    #[test]
    fn an_endless_stdin_ends_at_a_nul_byte_or_the_limit() {
        struct Endless(u8, usize);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                buf.fill(self.0);
                self.1 += buf.len();
                Ok(buf.len())
            }
        }
        for (byte, reason) in [(0u8, "NUL byte"), (b'x', "path limit")] {
            let mut stdin = std::io::BufReader::new(Endless(byte, 0));
            let items: Vec<_> = Inputs::new(&[PathBuf::from("-")], &mut stdin, &[]).collect();
            assert_eq!(items.len(), 1, "{items:?}");
            assert!(items[0].as_ref().unwrap_err().reason.contains(reason));
            assert!(
                stdin.get_ref().1 <= 2 * (MAX_PATH_BYTES + 8192),
                "read too much"
            );
        }
        // A NUL after a good line: the good line is listed first.
        let text = b"a.png\nb\0c\n".to_vec();
        let items = expand(&[PathBuf::from("-")], &mut std::io::Cursor::new(text));
        assert_eq!(items.len(), 2, "{items:?}");
        assert!(items[1].as_ref().unwrap_err().reason.contains("NUL byte"));
    }

    #[test]
    fn names_keep_invalid_bytes_apart_and_read_back() {
        // The decoding README gives: left to right, \\ is \ and \xNN is the byte.
        fn read_back(name: &str) -> Vec<u8> {
            let b = name.as_bytes();
            let (mut out, mut i) = (Vec::new(), 0);
            while i < b.len() {
                if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
                    out.push(b'\\');
                    i += 2;
                } else if b[i] == b'\\'
                    && b.get(i + 1) == Some(&b'x')
                    && i + 3 < b.len()
                    && b[i + 2].is_ascii_hexdigit()
                    && b[i + 3].is_ascii_hexdigit()
                {
                    out.push(u8::from_str_radix(&name[i + 2..i + 4], 16).unwrap());
                    i += 4;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            out
        }
        let names: [&[u8]; 9] = [
            b"a\x80.jpg",
            b"a\x81.jpg",
            b"a\\x80.jpg",
            b"a\\\\x80.jpg",
            b"a\\b.jpg",
            b"a\\\\b.jpg",
            "caf\u{e9}.jpg".as_bytes(),
            b"caf\xe9.jpg",
            b"\xff\xfe",
        ];
        let shown: Vec<String> = names.iter().map(|n| name_of_bytes(n)).collect();
        for (n, s) in names.iter().zip(&shown) {
            assert_eq!(read_back(s), n.to_vec(), "{s}");
        }
        let distinct: std::collections::BTreeSet<_> = shown.iter().collect();
        assert_eq!(distinct.len(), names.len(), "{shown:?}");
        assert_eq!(shown[0], "a\\x80.jpg");
        assert_eq!(shown[4], "a\\b.jpg", "a lone backslash stays as it is");
        assert_eq!(shown[6], "caf\u{e9}.jpg");
    }

    /// A reader that fails after its first line, like a stdin on a broken device.
    struct FailsAfter(std::io::Cursor<Vec<u8>>);
    impl Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(std::io::Error::other("device error")),
                n => Ok(n),
            }
        }
    }

    #[test]
    fn a_stdin_read_error_is_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.png");
        std::fs::write(&a, b"x").unwrap();
        let stdin = std::io::BufReader::new(FailsAfter(std::io::Cursor::new(
            format!("{}\n", a.display()).into_bytes(),
        )));
        let items: Vec<_> = Inputs::new(&[PathBuf::from("-")], stdin, &[]).collect();
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!(items[0].as_ref().unwrap(), &a);
        assert!(items[1]
            .as_ref()
            .unwrap_err()
            .reason
            .contains("device error"));
    }

    #[test]
    fn outputs_among_inputs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let a = d.join("a.png");
        std::fs::write(&a, b"x").unwrap();
        let refuse = |out: &Path, args: &[PathBuf]| refuse_outputs_among_inputs(&[out], args);
        assert!(refuse(&a, std::slice::from_ref(&a)).is_err());
        // Another spelling of the same file.
        assert!(refuse(&d.join(".").join("a.png"), std::slice::from_ref(&a)).is_err());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&a, d.join("link.png")).unwrap();
            assert!(refuse(&d.join("link.png"), std::slice::from_ref(&a)).is_err());
        }
        // Inside a directory input, under a name the walk picks up.
        assert!(refuse(&a, &[d.to_path_buf()]).is_err());
        std::fs::write(d.join("r.jsonl"), b"").unwrap();
        assert!(refuse(&d.join("r.jsonl"), &[d.to_path_buf()]).is_ok());
        assert!(refuse(&d.join("new.npy"), &[d.to_path_buf()]).is_ok());
        assert!(refuse(&d.join("b.png"), &[a.clone(), PathBuf::from("-")]).is_ok());
        // Named on stdin: that item fails, the others go on.
        let stdin = std::io::Cursor::new(format!("{}\n", a.display()));
        let items: Vec<_> = Inputs::new(&[PathBuf::from("-")], stdin, &[&a]).collect();
        assert!(items[0].as_ref().unwrap_err().reason.contains("--out"));
    }

    #[cfg(unix)]
    #[test]
    fn devices_are_refused_and_pipes_bounded() {
        let e = read_input(Path::new("/dev/zero")).unwrap_err();
        assert!(e.contains("character device"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
                let chunk = vec![0u8; 1 << 20];
                // More than the limit; the reader stops taking it (a broken pipe then).
                for _ in 0..(MAX_PIPE_BYTES >> 20) + 2 {
                    if f.write_all(&chunk).is_err() {
                        break;
                    }
                }
            })
        };
        let e = read_input(&fifo).unwrap_err();
        assert!(e.contains("limit"), "{e}");
        writer.join().unwrap();
    }
}
