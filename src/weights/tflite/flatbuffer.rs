//! Bounds-checked flatbuffer access (little-endian; see flatbuffers' "internals" doc): every
//! offset and length is checked against the file, so a malformed file is an error, never a panic.

use super::{Result, TfliteError};

#[derive(Clone, Copy)]
pub(crate) struct Fb<'a>(pub(crate) &'a [u8]);

impl<'a> Fb<'a> {
    pub(crate) fn malformed(&self, at: usize, what: impl Into<String>) -> TfliteError {
        TfliteError::Malformed {
            at,
            what: what.into(),
        }
    }

    pub(crate) fn get<const N: usize>(&self, at: usize, what: &str) -> Result<[u8; N]> {
        at.checked_add(N)
            .and_then(|end| self.0.get(at..end))
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or_else(|| {
                self.malformed(
                    at,
                    format!(
                        "{what} runs past the end of the file ({} bytes)",
                        self.0.len()
                    ),
                )
            })
    }

    pub(crate) fn u16(&self, at: usize, what: &str) -> Result<u16> {
        self.get(at, what).map(u16::from_le_bytes)
    }

    pub(crate) fn u32(&self, at: usize, what: &str) -> Result<u32> {
        self.get(at, what).map(u32::from_le_bytes)
    }

    /// Follows the unsigned offset stored at `at` (relative to `at`).
    pub(crate) fn uoffset(&self, at: usize, what: &str) -> Result<usize> {
        let off = self.u32(at, what)? as usize;
        at.checked_add(off)
            .filter(|&t| t < self.0.len())
            .ok_or_else(|| self.malformed(at, format!("{what} points past the end of the file")))
    }

    pub(crate) fn table(&self, pos: usize, what: &'static str) -> Result<Table<'a>> {
        let soff = i32::from_le_bytes(self.get(pos, what)?) as i64;
        let vt = usize::try_from(pos as i64 - soff).map_err(|_| {
            self.malformed(
                pos,
                format!("{what} vtable offset {soff} points before the file"),
            )
        })?;
        let vt_len = self.u16(vt, "vtable")? as usize;
        let tbl_len = self.u16(vt + 2, "vtable")? as usize;
        if vt_len < 4 || vt_len & 1 != 0 || vt.checked_add(vt_len).is_none_or(|e| e > self.0.len())
        {
            return Err(self.malformed(vt, format!("{what} has a bad vtable (size {vt_len})")));
        }
        if pos.checked_add(tbl_len).is_none_or(|e| e > self.0.len()) {
            return Err(self.malformed(
                pos,
                format!("{what} ({tbl_len} bytes) runs past the end of the file"),
            ));
        }
        Ok(Table {
            fb: *self,
            pos,
            vt,
            vt_len,
            tbl_len,
            what,
        })
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Table<'a> {
    pub(crate) fb: Fb<'a>,
    pub(crate) pos: usize,
    pub(crate) vt: usize,
    pub(crate) vt_len: usize,
    pub(crate) tbl_len: usize,
    pub(crate) what: &'static str,
}

impl<'a> Table<'a> {
    /// Absolute position of field `id` holding `size` bytes, None when absent.
    pub(crate) fn field(&self, id: usize, size: usize) -> Result<Option<usize>> {
        let slot = 4 + 2 * id;
        if slot + 2 > self.vt_len {
            return Ok(None);
        }
        let off = self.fb.u16(self.vt + slot, "vtable")? as usize;
        if off == 0 {
            return Ok(None);
        }
        if off < 4 || off + size > self.tbl_len {
            return Err(self.fb.malformed(
                self.vt + slot,
                format!(
                    "{} field {id} at offset {off} lies outside its {}-byte table",
                    self.what, self.tbl_len
                ),
            ));
        }
        Ok(Some(self.pos + off))
    }

    pub(crate) fn scalar<const N: usize>(&self, id: usize) -> Result<Option<[u8; N]>> {
        match self.field(id, N)? {
            Some(p) => self.fb.get(p, self.what).map(Some),
            None => Ok(None),
        }
    }

    pub(crate) fn u8_or(&self, id: usize, default: u8) -> Result<u8> {
        Ok(self.scalar::<1>(id)?.map_or(default, |b| b[0]))
    }

    pub(crate) fn i32_or(&self, id: usize, default: i32) -> Result<i32> {
        Ok(self.scalar(id)?.map_or(default, i32::from_le_bytes))
    }

    pub(crate) fn u32_or(&self, id: usize, default: u32) -> Result<u32> {
        Ok(self.scalar(id)?.map_or(default, u32::from_le_bytes))
    }

    pub(crate) fn u64_or(&self, id: usize, default: u64) -> Result<u64> {
        Ok(self.scalar(id)?.map_or(default, u64::from_le_bytes))
    }

    pub(crate) fn table_field(&self, id: usize, what: &'static str) -> Result<Option<Table<'a>>> {
        match self.field(id, 4)? {
            Some(p) => Ok(Some(self.fb.table(self.fb.uoffset(p, what)?, what)?)),
            None => Ok(None),
        }
    }

    pub(crate) fn vector(
        &self,
        id: usize,
        elem: usize,
        what: &'static str,
    ) -> Result<Option<Vector<'a>>> {
        let Some(p) = self.field(id, 4)? else {
            return Ok(None);
        };
        let at = self.fb.uoffset(p, what)?;
        let len = self.fb.u32(at, what)? as usize;
        let start = at + 4;
        if len
            .checked_mul(elem)
            .and_then(|n| n.checked_add(start))
            .is_none_or(|e| e > self.fb.0.len())
        {
            return Err(self.fb.malformed(
                at,
                format!("{what} ({len} elements) runs past the end of the file"),
            ));
        }
        Ok(Some(Vector {
            fb: self.fb,
            start,
            len,
            what,
        }))
    }

    pub(crate) fn vector_req(
        &self,
        id: usize,
        elem: usize,
        what: &'static str,
    ) -> Result<Vector<'a>> {
        self.vector(id, elem, what)?
            .ok_or_else(|| self.fb.malformed(self.pos, format!("{what} is missing")))
    }

    pub(crate) fn string(&self, id: usize, what: &'static str) -> Result<Option<String>> {
        self.vector(id, 1, what)?
            .map(|v| v.bytes().map(|b| String::from_utf8_lossy(b).into_owned()))
            .transpose()
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Vector<'a> {
    pub(crate) fb: Fb<'a>,
    /// Position of the first element.
    pub(crate) start: usize,
    pub(crate) len: usize,
    pub(crate) what: &'static str,
}

impl<'a> Vector<'a> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn i32(&self, i: usize) -> Result<i32> {
        self.fb
            .get(self.start + 4 * i, self.what)
            .map(i32::from_le_bytes)
    }

    /// Element `i` of a vector of 8-byte integers (`[long]`).
    pub(crate) fn i64(&self, i: usize) -> Result<i64> {
        self.fb
            .get(self.start + 8 * i, self.what)
            .map(i64::from_le_bytes)
    }

    /// Element `i` of a vector of `float`.
    pub(crate) fn f32(&self, i: usize) -> Result<f32> {
        self.fb
            .get(self.start + 4 * i, self.what)
            .map(f32::from_le_bytes)
    }

    pub(crate) fn table(&self, i: usize, what: &'static str) -> Result<Table<'a>> {
        let p = self.start + 4 * i;
        self.fb.table(self.fb.uoffset(p, self.what)?, what)
    }

    pub(crate) fn bytes(&self) -> Result<&'a [u8]> {
        self.fb
            .0
            .get(self.start..self.start + self.len)
            .ok_or_else(|| {
                self.fb.malformed(
                    self.start,
                    format!("{} runs past the end of the file", self.what),
                )
            })
    }
}
