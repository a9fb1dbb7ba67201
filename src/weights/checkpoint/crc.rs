//! crc32c (Castagnoli), as LevelDB and TensorFlow store it: the `crc32c` crate (SSE 4.2 or ARM
//! crc instructions where the CPU has them) and LevelDB's mask.

/// Extends `crc` (the crc32c of some bytes, 0 for none) with `data`.
pub(super) fn crc32c(crc: u32, data: &[u8]) -> u32 {
    ::crc32c::crc32c_append(crc, data)
}

/// LevelDB's masking of stored crcs (a crc of data that holds crcs is then not degenerate).
pub(super) fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}
