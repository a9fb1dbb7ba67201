//! Protobuf, by hand: just enough for BundleHeaderProto and BundleEntryProto.

use super::BundleEntry;

pub(super) fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if n > buf.len() {
        return None;
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Some(head)
}

/// A base-128 varint of at most 10 bytes that fits in 64 bits.
pub(super) fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        if shift == 63 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

enum Field<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

type ProtoResult<T> = Result<T, &'static str>;

/// Calls `visit(field_number, value)` for each field of a protobuf message.
fn for_each_field<'a>(
    mut msg: &'a [u8],
    mut visit: impl FnMut(u64, Field<'a>) -> ProtoResult<()>,
) -> ProtoResult<()> {
    const TRUNCATED: &str = "truncated field";
    while !msg.is_empty() {
        let tag = varint(&mut msg).ok_or(TRUNCATED)?;
        let field = match tag & 7 {
            0 => Field::Varint(varint(&mut msg).ok_or(TRUNCATED)?),
            1 => take(&mut msg, 8).map(|_| Field::Fixed64).ok_or(TRUNCATED)?,
            2 => {
                let len = varint(&mut msg).and_then(|n| usize::try_from(n).ok());
                Field::Bytes(len.and_then(|n| take(&mut msg, n)).ok_or(TRUNCATED)?)
            }
            5 => {
                let b = take(&mut msg, 4).ok_or(TRUNCATED)?;
                Field::Fixed32(u32::from_le_bytes(b.try_into().map_err(|_| TRUNCATED)?))
            }
            _ => return Err("unsupported wire type"),
        };
        visit(tag >> 3, field)?;
    }
    Ok(())
}

const WRONG_TYPE: &str = "field has the wrong wire type";

/// An int32/int64 field (negative values are 10-byte two's-complement varints).
fn int(field: Field<'_>) -> ProtoResult<i64> {
    match field {
        Field::Varint(v) => Ok(v as i64),
        _ => Err(WRONG_TYPE),
    }
}

fn non_negative(field: Field<'_>) -> ProtoResult<u64> {
    u64::try_from(int(field)?).map_err(|_| "negative size, offset or shard")
}

fn to_usize(v: u64) -> ProtoResult<usize> {
    usize::try_from(v).map_err(|_| "value too large")
}

fn bytes<'a>(field: Field<'a>) -> ProtoResult<&'a [u8]> {
    match field {
        Field::Bytes(b) => Ok(b),
        _ => Err(WRONG_TYPE),
    }
}

pub(super) struct Header {
    pub num_shards: usize,
    pub big_endian: bool,
    pub producer: i64,
    pub min_consumer: i64,
    pub bad_consumers: Vec<i64>,
}

pub(super) fn parse_header(msg: &[u8]) -> ProtoResult<Header> {
    let mut h = Header {
        num_shards: 0,
        big_endian: false,
        producer: 0,
        min_consumer: 0,
        bad_consumers: Vec::new(),
    };
    for_each_field(msg, |number, field| {
        match number {
            1 => h.num_shards = to_usize(non_negative(field)?)?,
            2 => h.big_endian = int(field)? == 1,
            3 => for_each_field(bytes(field)?, |number, field| {
                // VersionDef: producer = 1, min_consumer = 2, repeated bad_consumers = 3.
                match (number, field) {
                    (1, f) => h.producer = int(f)?,
                    (2, f) => h.min_consumer = int(f)?,
                    (3, Field::Bytes(mut packed)) => {
                        while !packed.is_empty() {
                            h.bad_consumers
                                .push(varint(&mut packed).ok_or("bad packed varint")? as i64);
                        }
                    }
                    (3, f) => h.bad_consumers.push(int(f)?),
                    _ => {}
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(h)
}

/// The entry, and whether it is a partitioned tensor (has `slices`).
pub(super) fn parse_entry(msg: &[u8]) -> ProtoResult<(BundleEntry, bool)> {
    let mut e = BundleEntry {
        dtype: 0,
        shape: Vec::new(),
        shard_id: 0,
        offset: 0,
        size: 0,
        crc32c: 0,
    };
    let mut sliced = false;
    for_each_field(msg, |number, field| {
        match number {
            1 => e.dtype = i32::try_from(int(field)?).map_err(|_| "dtype out of range")?,
            2 => e.shape = parse_shape(bytes(field)?)?,
            3 => e.shard_id = to_usize(non_negative(field)?)?,
            4 => e.offset = non_negative(field)?,
            5 => e.size = non_negative(field)?,
            6 => match field {
                Field::Fixed32(crc) => e.crc32c = crc,
                _ => return Err(WRONG_TYPE),
            },
            7 => sliced = bytes(field).map(|_| true)?,
            _ => {}
        }
        Ok(())
    })?;
    Ok((e, sliced))
}

/// TensorShapeProto: repeated Dim dim = 2 (Dim: int64 size = 1), bool unknown_rank = 3.
fn parse_shape(msg: &[u8]) -> ProtoResult<Vec<usize>> {
    let mut shape = Vec::new();
    for_each_field(msg, |number, field| {
        match number {
            2 => {
                let mut size = 0;
                for_each_field(bytes(field)?, |number, field| {
                    if number == 1 {
                        size =
                            to_usize(u64::try_from(int(field)?).map_err(|_| "unknown dimension")?)?;
                    }
                    Ok(())
                })?;
                shape.push(size);
            }
            3 if int(field)? != 0 => return Err("unknown rank"),
            _ => {}
        }
        Ok(())
    })?;
    Ok(shape)
}
