//! CRC32C, the checksum of NVMe/TCP header and data digests.

/// The CRC32C lookup table, built at compile time (reflected polynomial
/// 0x82F63B78).
// The loop index is below 256 by its bound; a const cannot use get_mut.
#[allow(clippy::indexing_slicing)]
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0usize;
    let mut n = 0u32;
    while i < 256 {
        let mut crc = n;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
        n += 1;
    }
    table
};

/// CRC32C (Castagnoli), as NVMe/TCP digests use it: initial value !0,
/// final xor !0, reflected polynomial 0x82F63B78. On the wire the digest is
/// little-endian.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        let [low, ..] = crc.to_le_bytes();
        let entry = CRC32C_TABLE
            .get(usize::from(low ^ b))
            .copied()
            .unwrap_or_default();
        crc = (crc >> 8) ^ entry;
    }
    !crc
}
