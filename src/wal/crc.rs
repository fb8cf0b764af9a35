//! CRC-32C of a whole WAL record as PostgreSQL computes it: the bytes after the header, then
//! the header up to the CRC field; the CPU's instruction for short records.
//!
//! Most records are short (about 60 bytes in pgbench WAL). The `crc32c` crate is fastest on
//! long buffers, where it runs three streams side by side, but on a short one its set-up costs
//! more than the CRC itself (about 300 instructions a record, against 30 here). Records up to
//! [`SHORT`] bytes are therefore summed 8 bytes at a time with the SSE 4.2 instruction when the
//! CPU has it; longer records and other CPUs use the crate. Both give the same value (tested
//! below on every length up to past [`SHORT`]).

use crate::wal::record::RECORD_HEADER_LEN;

/// Records shorter than this use the instruction directly (the crate's three streams pay
/// off from 768 bytes on).
const SHORT: usize = 768;

/// The CRC-32C PostgreSQL stores in `xl_crc` for the record `rec` (at least a header long):
/// `[24, len)` then `[0, 20)`.
#[inline] // once per record: the short path is a length test and a flag test away
pub fn record_crc(rec: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if rec.len() < SHORT && rec.len() >= RECORD_HEADER_LEN && has_sse42() {
        // SAFETY: the CPU has SSE 4.2, checked just above.
        return unsafe { short_sse42(rec) };
    }
    by_crate(rec)
}

/// Whether the CPU has SSE 4.2 (asked once per process, then a load and a test).
#[cfg(target_arch = "x86_64")]
#[inline]
fn has_sse42() -> bool {
    std::arch::is_x86_feature_detected!("sse4.2")
}

/// The crate's computation (any CPU, any length).
#[inline(never)] // long records and other CPUs: kept out of the per-record path
fn by_crate(rec: &[u8]) -> u32 {
    let split = RECORD_HEADER_LEN.min(rec.len());
    let head = &rec[..20.min(rec.len())];
    crc32c::crc32c_append(crc32c::crc32c(&rec[split..]), head)
}

/// Whether the record's stored CRC-32C (bytes 20..24) matches its bytes.
#[inline]
pub fn record_crc_ok(rec: &[u8]) -> bool {
    match rec.get(20..24) {
        Some(s) => record_crc(rec) == u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => false,
    }
}

/// [`record_crc`] with the SSE 4.2 instruction, 8 bytes at a time, then 4, then 1.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn short_sse42(rec: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u32, _mm_crc32_u64, _mm_crc32_u8};
    fn u64_of(b: &[u8]) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        u64::from_le_bytes(a)
    }
    fn u32_of(b: &[u8]) -> u32 {
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
    let mut c: u64 = 0xFFFF_FFFF;
    let mut words = rec[RECORD_HEADER_LEN..].chunks_exact(8);
    for w in &mut words {
        c = _mm_crc32_u64(c, u64_of(w));
    }
    let mut rest = words.remainder();
    let mut c = c as u32;
    if rest.len() >= 4 {
        c = _mm_crc32_u32(c, u32_of(rest));
        rest = &rest[4..];
    }
    for &b in rest {
        c = _mm_crc32_u8(c, b);
    }
    let mut c = u64::from(c);
    c = _mm_crc32_u64(c, u64_of(&rec[0..]));
    c = _mm_crc32_u64(c, u64_of(&rec[8..]));
    !_mm_crc32_u32(c as u32, u32_of(&rec[16..]))
}

#[cfg(test)]
mod tests {
    use super::{by_crate, record_crc, record_crc_ok, SHORT};

    #[test]
    fn the_same_value_as_the_crate_at_every_length() {
        // A reproducible byte pattern with every bit position exercised.
        let mut x: u32 = 0x9E37_79B9;
        let bytes: Vec<u8> = (0..SHORT + 300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        for len in 24..bytes.len() {
            for start in [0, 3] {
                let rec = &bytes[start..start + len.min(bytes.len() - start)];
                assert_eq!(record_crc(rec), by_crate(rec), "length {}", rec.len());
            }
        }
    }

    #[test]
    fn a_stored_crc_is_checked() {
        let mut rec = vec![7u8; 64];
        rec[0..4].copy_from_slice(&64u32.to_le_bytes());
        let c = record_crc(&rec);
        rec[20..24].copy_from_slice(&c.to_le_bytes());
        assert!(record_crc_ok(&rec));
        rec[40] ^= 1;
        assert!(!record_crc_ok(&rec));
        assert!(!record_crc_ok(&rec[..10]));
    }

    #[test]
    fn the_known_check_value() {
        // CRC-32C of "123456789" is 0xE3069283; as a record: 24 header bytes of which the
        // first 20 are summed after the body. With an empty body and 20 header bytes the
        // crate is the reference; with this body the standard check value chains through.
        let mut rec = vec![0u8; 24];
        rec.extend_from_slice(b"123456789");
        let body_only = crc32c::crc32c(b"123456789");
        assert_eq!(body_only, 0xE306_9283);
        assert_eq!(
            record_crc(&rec),
            crc32c::crc32c_append(body_only, &rec[..20])
        );
    }
}
