//! WAL segment file names: `%08X%08X%08X` = timeline, segno / (2^32 / segsize), segno % (2^32 / segsize).

use crate::lsn::{Lsn, TimelineId};
use crate::wal::error::WalError;

/// A parsed segment file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentName {
    /// The timeline.
    pub tli: TimelineId,
    /// The high part ("log" number): segno / segments-per-4-GB.
    pub log: u32,
    /// The low part: segno % segments-per-4-GB.
    pub seg: u32,
    /// Whether the name ends in `.partial`.
    pub partial: bool,
    /// Whether the name ends in `.gz`.
    pub gz: bool,
}

/// How many segments of `seg_size` bytes fit in 4 GB (the "log" unit of file names).
pub fn segments_per_xlog_id(seg_size: u64) -> u64 {
    0x1_0000_0000u64 / seg_size.max(1)
}

/// The file name of segment `segno` of `tli` for `seg_size`-byte segments.
pub fn segment_file_name(tli: TimelineId, segno: u64, seg_size: u64) -> String {
    let per = segments_per_xlog_id(seg_size).max(1);
    format!("{:08X}{:08X}{:08X}", tli.0, segno / per, segno % per)
}

/// The file name of the segment that holds `lsn`.
pub fn segment_file_name_for(tli: TimelineId, lsn: Lsn, seg_size: u64) -> String {
    segment_file_name(tli, lsn.segment_number(seg_size), seg_size)
}

/// The LSN where segment `segno` starts.
pub fn segment_start(segno: u64, seg_size: u64) -> Lsn {
    Lsn(segno.saturating_mul(seg_size))
}

impl SegmentName {
    /// Parses `000000010000000A000000FF`, optionally followed by `.partial` and/or `.gz`.
    pub fn parse(name: &str) -> Result<SegmentName, WalError> {
        let bad = || WalError::BadFileName {
            name: name.to_string(),
        };
        let (rest, gz) = match name.strip_suffix(".gz") {
            Some(r) => (r, true),
            None => (name, false),
        };
        let (base, partial) = match rest.strip_suffix(".partial") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        if base.len() != 24 || !base.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let part = |r: std::ops::Range<usize>| {
            base.get(r)
                .and_then(|s| u32::from_str_radix(s, 16).ok())
                .ok_or_else(bad)
        };
        Ok(SegmentName {
            tli: TimelineId(part(0..8)?),
            log: part(8..16)?,
            seg: part(16..24)?,
            partial,
            gz,
        })
    }

    /// The segment number for `seg_size`-byte segments, `None` when the low part is out of range.
    pub fn segno(&self, seg_size: u64) -> Option<u64> {
        let per = segments_per_xlog_id(seg_size);
        if u64::from(self.seg) >= per {
            return None;
        }
        u64::from(self.log)
            .checked_mul(per)?
            .checked_add(u64::from(self.seg))
    }

    /// The plain 24-character name (no suffixes).
    pub fn base_name(&self) -> String {
        format!("{:08X}{:08X}{:08X}", self.tli.0, self.log, self.seg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let seg16 = 16 << 20;
        assert_eq!(
            segment_file_name(TimelineId(1), 0x1_0000_0000 / seg16 + 5, seg16),
            "000000010000000100000005"
        );
        assert_eq!(
            segment_file_name_for(TimelineId(2), Lsn(0xB0_0028), 1 << 20),
            "00000002000000000000000B"
        );
        let n = SegmentName::parse("00000002000000010000000A.partial.gz").unwrap();
        assert_eq!(n.tli, TimelineId(2));
        assert!(n.partial && n.gz);
        assert_eq!(n.segno(seg16), Some(256 + 10));
        assert_eq!(n.base_name(), "00000002000000010000000A");
        assert!(SegmentName::parse("00000002000000010000000").is_err());
        assert!(SegmentName::parse("0000000200000001000000ZZ").is_err());
        assert!(SegmentName::parse("00000001.history").is_err());
        // 1 GB segments: only 4 per 4 GB.
        assert_eq!(
            SegmentName::parse("000000010000000000000004")
                .unwrap()
                .segno(1 << 30),
            None
        );
    }
}
