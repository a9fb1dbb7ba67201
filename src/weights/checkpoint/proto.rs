//! The two messages of a bundle index (tensorflow/core/protobuf/tensor_bundle.proto and the
//! messages they use), declared by hand for `prost` (no protoc at build time): only the fields
//! mnv1 reads; prost skips the others.

use super::BundleEntry;

/// `BundleHeaderProto`.
#[derive(Clone, PartialEq, prost::Message)]
struct BundleHeaderProto {
    #[prost(int32, tag = "1")]
    num_shards: i32,
    /// `Endianness`: 0 little, 1 big.
    #[prost(int32, tag = "2")]
    endianness: i32,
    #[prost(message, optional, tag = "3")]
    version: Option<VersionDef>,
}

/// `VersionDef` (tensorflow/core/framework/versions.proto).
#[derive(Clone, PartialEq, prost::Message)]
struct VersionDef {
    #[prost(int32, tag = "1")]
    producer: i32,
    #[prost(int32, tag = "2")]
    min_consumer: i32,
    #[prost(int32, repeated, tag = "3")]
    bad_consumers: Vec<i32>,
}

/// `BundleEntryProto`.
#[derive(Clone, PartialEq, prost::Message)]
struct BundleEntryProto {
    /// `DataType`.
    #[prost(int32, tag = "1")]
    dtype: i32,
    #[prost(message, optional, tag = "2")]
    shape: Option<TensorShapeProto>,
    #[prost(int32, tag = "3")]
    shard_id: i32,
    #[prost(int64, tag = "4")]
    offset: i64,
    #[prost(int64, tag = "5")]
    size: i64,
    #[prost(fixed32, tag = "6")]
    crc32c: u32,
    /// Set for a partitioned tensor; only its presence matters here.
    #[prost(message, repeated, tag = "7")]
    slices: Vec<TensorSliceProto>,
}

/// `TensorShapeProto` (tensorflow/core/framework/tensor_shape.proto).
#[derive(Clone, PartialEq, prost::Message)]
struct TensorShapeProto {
    #[prost(message, repeated, tag = "2")]
    dim: Vec<Dim>,
    #[prost(bool, tag = "3")]
    unknown_rank: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Dim {
    /// -1 for an unknown size.
    #[prost(int64, tag = "1")]
    size: i64,
}

/// `TensorSliceProto`, its fields skipped.
#[derive(Clone, PartialEq, prost::Message)]
struct TensorSliceProto {}

/// What the reader needs of the header.
pub(super) struct Header {
    pub num_shards: usize,
    pub big_endian: bool,
    pub producer: i64,
    pub min_consumer: i64,
    pub bad_consumers: Vec<i64>,
}

fn non_negative(v: i64, what: &str) -> Result<u64, String> {
    u64::try_from(v).map_err(|_| format!("negative {what}"))
}

fn to_usize(v: u64) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| "value too large".to_string())
}

pub(super) fn parse_header(msg: &[u8]) -> Result<Header, String> {
    let h = <BundleHeaderProto as prost::Message>::decode(msg).map_err(|e| e.to_string())?;
    let version = h.version.unwrap_or_default();
    Ok(Header {
        num_shards: to_usize(non_negative(h.num_shards.into(), "shard count")?)?,
        big_endian: h.endianness == 1,
        producer: version.producer.into(),
        min_consumer: version.min_consumer.into(),
        bad_consumers: version.bad_consumers.into_iter().map(i64::from).collect(),
    })
}

/// The entry, and whether it is a partitioned tensor (has `slices`).
pub(super) fn parse_entry(msg: &[u8]) -> Result<(BundleEntry, bool), String> {
    let e = <BundleEntryProto as prost::Message>::decode(msg).map_err(|e| e.to_string())?;
    let shape = e.shape.unwrap_or_default();
    if shape.unknown_rank {
        return Err("unknown rank".into());
    }
    let shape = shape
        .dim
        .iter()
        .map(|d| {
            u64::try_from(d.size)
                .map_err(|_| "unknown dimension".to_string())
                .and_then(to_usize)
        })
        .collect::<Result<_, _>>()?;
    let entry = BundleEntry {
        dtype: e.dtype,
        shape,
        shard_id: to_usize(non_negative(e.shard_id.into(), "shard")?)?,
        offset: non_negative(e.offset, "offset")?,
        size: non_negative(e.size, "size")?,
        crc32c: e.crc32c,
    };
    Ok((entry, !e.slices.is_empty()))
}
