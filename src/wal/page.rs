//! WAL page headers: the 24-byte short header and the 40-byte long header of a segment's first page.

use crate::lsn::{Lsn, SystemId, TimelineId};

/// Size of a short page header (XLogPageHeaderData, MAXALIGNed).
pub const SHORT_HEADER_LEN: usize = 24;
/// Size of a long page header (XLogLongPageHeaderData, MAXALIGNed).
pub const LONG_HEADER_LEN: usize = 40;
/// xlp_info bit: the page starts with the continuation of a record.
pub const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;
/// xlp_info bit: this page has a long header.
pub const XLP_LONG_HEADER: u16 = 0x0002;
/// xlp_info bit: backup blocks on this page may be removed (archivers).
pub const XLP_BKP_REMOVABLE: u16 = 0x0004;
/// xlp_info bit: the continuation record was overwritten (PG15+ missing-contrecord handling).
pub const XLP_FIRST_IS_OVERWRITE_CONTRECORD: u16 = 0x0008;
/// All valid xlp_info bits.
pub const XLP_ALL_FLAGS: u16 = 0x000F;
/// The smallest segment size PostgreSQL allows (1 MB).
pub const MIN_SEG_SIZE: u64 = 1 << 20;
/// The largest segment size PostgreSQL allows (1 GB).
pub const MAX_SEG_SIZE: u64 = 1 << 30;

/// A PostgreSQL major version, identified from a WAL page magic number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct PgVersion(pub u32);

impl PgVersion {
    /// The version whose WAL pages carry `magic`, or `None` for an unknown magic.
    pub fn from_magic(magic: u16) -> Option<PgVersion> {
        let v = match magic {
            0xD101 => 12,
            0xD106 => 13,
            0xD10D => 14,
            0xD110 => 15,
            0xD113 => 16,
            0xD116 => 17,
            0xD118 => 18,
            _ => return None,
        };
        Some(PgVersion(v))
    }

    /// The page magic number of this version.
    pub fn magic(self) -> Option<u16> {
        Some(match self.0 {
            12 => 0xD101,
            13 => 0xD106,
            14 => 0xD10D,
            15 => 0xD110,
            16 => 0xD113,
            17 => 0xD116,
            18 => 0xD118,
            _ => return None,
        })
    }
}

/// A parsed page header (short fields always, long fields when `long` is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    /// xlp_magic.
    pub magic: u16,
    /// xlp_info flag bits.
    pub info: u16,
    /// xlp_tli: the timeline of the page.
    pub tli: TimelineId,
    /// xlp_pageaddr: the LSN of the page itself.
    pub pageaddr: Lsn,
    /// xlp_rem_len: bytes of a continued record at the start of this page.
    pub rem_len: u32,
    /// Long-header fields, when the page has a long header.
    pub long: Option<LongHeader>,
}

/// The extra fields of a segment's first page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongHeader {
    /// xlp_sysid.
    pub sysid: SystemId,
    /// xlp_seg_size.
    pub seg_size: u32,
    /// xlp_xlog_blcksz.
    pub blcksz: u32,
}

impl PageHeader {
    /// Parses a header from the first bytes of a page; `None` when `b` is too short.
    pub fn parse(b: &[u8]) -> Option<PageHeader> {
        let magic = u16::from_le_bytes(b.get(0..2)?.try_into().ok()?);
        let info = u16::from_le_bytes(b.get(2..4)?.try_into().ok()?);
        let tli = u32::from_le_bytes(b.get(4..8)?.try_into().ok()?);
        let pageaddr = u64::from_le_bytes(b.get(8..16)?.try_into().ok()?);
        let rem_len = u32::from_le_bytes(b.get(16..20)?.try_into().ok()?);
        let long = if info & XLP_LONG_HEADER != 0 {
            Some(LongHeader {
                sysid: SystemId(u64::from_le_bytes(b.get(24..32)?.try_into().ok()?)),
                seg_size: u32::from_le_bytes(b.get(32..36)?.try_into().ok()?),
                blcksz: u32::from_le_bytes(b.get(36..40)?.try_into().ok()?),
            })
        } else {
            None
        };
        Some(PageHeader {
            magic,
            info,
            tli: TimelineId(tli),
            pageaddr: Lsn(pageaddr),
            rem_len,
            long,
        })
    }

    /// The header's size on the page: 40 bytes for a long header, else 24.
    pub fn header_len(&self) -> usize {
        if self.info & XLP_LONG_HEADER != 0 {
            LONG_HEADER_LEN
        } else {
            SHORT_HEADER_LEN
        }
    }

    /// Whether the page begins with the continuation of a record.
    pub fn is_contrecord(&self) -> bool {
        self.info & XLP_FIRST_IS_CONTRECORD != 0
    }
}

/// Whether `seg_size` is a segment size PostgreSQL accepts (a power of two, 1 MB to 1 GB).
pub fn valid_seg_size(seg_size: u64) -> bool {
    seg_size.is_power_of_two() && (MIN_SEG_SIZE..=MAX_SEG_SIZE).contains(&seg_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_round_trip() {
        for v in 12..=18 {
            let m = PgVersion(v).magic().unwrap();
            assert_eq!(PgVersion::from_magic(m), Some(PgVersion(v)));
        }
        assert_eq!(PgVersion::from_magic(0xD0FF), None);
    }

    #[test]
    fn short_input_is_none() {
        assert!(PageHeader::parse(&[0u8; 10]).is_none());
        let mut b = [0u8; 30];
        b[2] = XLP_LONG_HEADER as u8;
        assert!(PageHeader::parse(&b).is_none());
    }

    #[test]
    fn seg_sizes() {
        assert!(valid_seg_size(1 << 20));
        assert!(valid_seg_size(16 << 20));
        assert!(!valid_seg_size(3 << 20));
        assert!(!valid_seg_size(1 << 31));
    }
}
