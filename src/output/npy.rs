//! `embed`'s NumPy outputs, streamed: rows go to disk as they come, so memory does not grow
//! with the number of images. An .npy is written with room in its header for any row count
//! and the count filled in at the end (as numpy's own `open_memmap` leaves room to grow); an
//! .npz (a zip of two .npy) needs both arrays' lengths up front, so its rows are spooled to an
//! anonymous temporary file (gone with the process, however it ends) and zipped at the end.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use super::AtomicFile;

/// Bytes of an .npy header: magic, version, length, the dict, space padding and a newline.
/// 128 holds any shape of two 20-digit numbers and keeps the data 64-byte aligned.
const NPY_HEADER_LEN: usize = 128;

fn npy_header(rows: u64, dim: u64) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    let mut h = Vec::with_capacity(NPY_HEADER_LEN);
    h.extend_from_slice(b"\x93NUMPY\x01\x00");
    h.extend_from_slice(&((NPY_HEADER_LEN - 10) as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(NPY_HEADER_LEN - 1, b' ');
    h.push(b'\n');
    h
}

fn write_f32s(w: &mut impl Write, row: &[f32]) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(row.len() * 4);
    for v in row {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    w.write_all(&bytes)
}

/// An output file that can seek: the [`AtomicFile`] itself when it writes a temporary file, else
/// (a pipe, a device) a spool copied into it at the end.
enum Seekable {
    Direct(AtomicFile),
    Spooled {
        spool: BufWriter<File>,
        out: AtomicFile,
    },
}

impl Seekable {
    fn new(out: AtomicFile) -> io::Result<Self> {
        Ok(if out.seekable() {
            Seekable::Direct(out)
        } else {
            Seekable::Spooled {
                spool: BufWriter::new(tempfile::tempfile()?),
                out,
            }
        })
    }

    /// The output file, holding everything written.
    fn into_output(self) -> io::Result<AtomicFile> {
        match self {
            Seekable::Direct(out) => Ok(out),
            Seekable::Spooled { spool, mut out } => {
                let mut spool = spool.into_inner().map_err(|e| e.into_error())?;
                spool.seek(SeekFrom::Start(0))?;
                io::copy(&mut spool, &mut out)?;
                Ok(out)
            }
        }
    }
}

impl Write for Seekable {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Seekable::Direct(f) => f.write(buf),
            Seekable::Spooled { spool, .. } => spool.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Seekable::Direct(f) => f.flush(),
            Seekable::Spooled { spool, .. } => spool.flush(),
        }
    }
}

impl Seek for Seekable {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match self {
            Seekable::Direct(f) => f.seek(pos),
            Seekable::Spooled { spool, .. } => spool.seek(pos),
        }
    }
}

/// float32 [rows, dim], rows appended as they come.
pub struct NpyStream {
    out: Seekable,
    dim: usize,
    rows: u64,
}

impl NpyStream {
    pub fn new(out: AtomicFile, dim: usize) -> io::Result<Self> {
        let mut out = Seekable::new(out)?;
        out.write_all(&npy_header(0, dim as u64))?;
        Ok(Self { out, dim, rows: 0 })
    }

    pub fn write(&mut self, row: &[f32]) -> io::Result<()> {
        debug_assert_eq!(row.len(), self.dim);
        write_f32s(&mut self.out, row)?;
        self.rows += 1;
        Ok(())
    }

    /// Fills in the row count; the file is complete but not yet committed.
    pub fn finish(mut self) -> io::Result<AtomicFile> {
        self.out.seek(SeekFrom::Start(0))?;
        self.out
            .write_all(&npy_header(self.rows, self.dim as u64))?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.into_output()
    }
}

/// `features` float32 [N, D] and `paths` unicode [N] in an .npz, spooled until `finish`.
pub struct NpzStream {
    out: AtomicFile,
    dim: usize,
    rows: u64,
    features: BufWriter<File>,
    /// Each path as a little-endian u32 byte length and its UTF-8 bytes.
    paths: BufWriter<File>,
    /// The longest path in code points: numpy's dtype for the `paths` array is `<U{longest}`.
    longest: usize,
}

impl NpzStream {
    pub fn new(out: AtomicFile, dim: usize) -> io::Result<Self> {
        Ok(Self {
            out,
            dim,
            rows: 0,
            features: BufWriter::new(tempfile::tempfile()?),
            paths: BufWriter::new(tempfile::tempfile()?),
            longest: 1,
        })
    }

    pub fn write(&mut self, path: &str, row: &[f32]) -> io::Result<()> {
        debug_assert_eq!(row.len(), self.dim);
        write_f32s(&mut self.features, row)?;
        let len = u32::try_from(path.len()).map_err(io::Error::other)?;
        self.paths.write_all(&len.to_le_bytes())?;
        self.paths.write_all(path.as_bytes())?;
        self.longest = self.longest.max(path.chars().count());
        self.rows += 1;
        Ok(())
    }

    /// Zips both arrays into the output; complete but not yet committed.
    pub fn finish(self) -> io::Result<AtomicFile> {
        use npyz::WriterBuilder;
        let rewound = |w: BufWriter<File>| -> io::Result<BufReader<File>> {
            let mut f = w.into_inner().map_err(|e| e.into_error())?;
            f.seek(SeekFrom::Start(0))?;
            Ok(BufReader::with_capacity(1 << 20, f))
        };
        let (mut features, mut paths) = (rewound(self.features)?, rewound(self.paths)?);
        // numpy's savez layout: one stored (uncompressed) `NAME.npy` member per array.
        let mut npz = zip::ZipWriter::new(Seekable::new(self.out)?);
        let feature_bytes = self.rows * self.dim as u64 * 4;
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(feature_bytes > u32::MAX as u64 / 2);
        npz.start_file("features.npy", options)
            .map_err(io::Error::other)?;
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[self.rows, self.dim as u64])
            .writer(&mut npz)
            .begin_nd()?;
        let mut buf = vec![0u8; self.dim * 4];
        for _ in 0..self.rows {
            features.read_exact(&mut buf)?;
            w.extend(
                buf.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            )?;
        }
        w.finish()?;
        let dtype = npyz::DType::Plain(
            format!("<U{}", self.longest)
                .parse()
                .map_err(|e| io::Error::other(format!("{e}")))?,
        );
        let path_bytes = self.rows * self.longest as u64 * 4;
        let options = options.large_file(path_bytes > u32::MAX as u64 / 2);
        npz.start_file("paths.npy", options)
            .map_err(io::Error::other)?;
        let mut w = npyz::WriteOptions::<String>::new()
            .dtype(dtype)
            .shape(&[self.rows])
            .writer(&mut npz)
            .begin_nd()?;
        for _ in 0..self.rows {
            let mut len = [0u8; 4];
            paths.read_exact(&mut len)?;
            let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
            paths.read_exact(&mut bytes)?;
            w.push(&String::from_utf8(bytes).map_err(io::Error::other)?)?;
        }
        w.finish()?;
        npz.finish().map_err(io::Error::other)?.into_output()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_npy_header_has_a_fixed_length_for_any_count() {
        for rows in [0, 7, u64::MAX] {
            let h = npy_header(rows, u64::MAX);
            assert_eq!(h.len(), NPY_HEADER_LEN);
            assert_eq!(h.last(), Some(&b'\n'));
        }
    }
}
