//! crc32c (Castagnoli), as LevelDB and TensorFlow store it.

/// Slicing-by-8 tables: `[0]` is the classic byte table (reflected polynomial 0x82f63b78),
/// `[k][b]` is the crc of byte `b` followed by `k` zero bytes.
pub(super) const CRC32C_TABLES: [[u32; 256]; 8] = {
    let mut tables = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = tables[k - 1][i];
            tables[k][i] = (prev >> 8) ^ tables[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    tables
};

/// Extends `crc` (the crc32c of some bytes, 0 for none) with `data`.
pub(super) fn crc32c(crc: u32, mut data: &[u8]) -> u32 {
    let t = &CRC32C_TABLES;
    let mut crc = !crc;
    while let Some((chunk, rest)) = data.split_first_chunk::<8>() {
        let v = u64::from_le_bytes(*chunk) ^ u64::from(crc);
        crc = (0..8).fold(0, |acc, k| {
            acc ^ t[7 - k][usize::from((v >> (8 * k)) as u8)]
        });
        data = rest;
    }
    for &byte in data {
        crc = t[0][usize::from(crc as u8 ^ byte)] ^ (crc >> 8);
    }
    !crc
}

/// LevelDB's masking of stored crcs (a crc of data that holds crcs is then not degenerate).
pub(super) fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}
