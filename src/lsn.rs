//! Domain newtypes: WAL positions (`Lsn`), timelines, transaction ids and system identifiers.
//!
//! Parse at the edge, never pass raw strings inside: every value that crosses a module
//! boundary is one of these types.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The size of a WAL page in bytes (XLOG_BLCKSZ); PostgreSQL builds with 8 KB pages by default.
pub const XLOG_BLCKSZ: usize = 8192;

/// A WAL position (log sequence number), printed the way PostgreSQL prints it: `16/B374D848`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

/// Why a string is not an LSN; carries the offending input so the message can name it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LSN {input:?}: expected two hexadecimal numbers separated by '/', like 0/16B3748")]
pub struct LsnParseError {
    /// The text that failed to parse.
    pub input: String,
}

impl Lsn {
    /// The invalid LSN `0/0`, which PostgreSQL uses for "unknown".
    pub const INVALID: Lsn = Lsn(0);

    /// Whether this is the invalid LSN `0/0`.
    pub fn is_valid(self) -> bool {
        self.0 != 0
    }

    /// Bytes from `earlier` to `self`, or 0 when `earlier` is not before `self`.
    pub fn saturating_bytes_since(self, earlier: Lsn) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// `self + bytes`, or `None` on overflow.
    pub fn checked_add(self, bytes: u64) -> Option<Lsn> {
        self.0.checked_add(bytes).map(Lsn)
    }

    /// `self - other` in bytes, or `None` when `other` is after `self`.
    pub fn checked_sub(self, other: Lsn) -> Option<u64> {
        self.0.checked_sub(other.0)
    }

    /// The offset of this position inside its WAL segment of `seg_size` bytes (a power of two).
    pub fn segment_offset(self, seg_size: u64) -> u64 {
        self.0 & (seg_size - 1)
    }

    /// The number of the WAL segment of `seg_size` bytes that holds this position.
    pub fn segment_number(self, seg_size: u64) -> u64 {
        self.0 / seg_size
    }

    /// The offset of this position inside its 8 KB WAL page.
    pub fn page_offset(self) -> u64 {
        self.0 % XLOG_BLCKSZ as u64
    }

    /// Rounds up to the next multiple of 8, where the next WAL record starts (MAXALIGN).
    pub fn align8(self) -> Lsn {
        Lsn((self.0 + 7) & !7)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl FromStr for Lsn {
    type Err = LsnParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || LsnParseError {
            input: s.to_string(),
        };
        let (hi, lo) = s.trim().split_once('/').ok_or_else(err)?;
        let ok =
            |p: &str| !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok(hi) || !ok(lo) {
            return Err(err());
        }
        let hi = u32::from_str_radix(hi, 16).map_err(|_| err())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| err())?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl schemars::JsonSchema for Lsn {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Lsn".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9A-F]{1,8}/[0-9A-F]{1,8}$",
            "description": "A WAL position in PostgreSQL's X/X form, e.g. 0/3000060."
        })
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A timeline id: 1 for a fresh cluster, plus one for every promotion.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct TimelineId(pub u32);

impl fmt::Display for TimelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TimelineId {
    /// The name of this timeline's history file in `pg_wal`, e.g. `00000002.history`.
    pub fn history_file_name(self) -> String {
        format!("{:08X}.history", self.0)
    }
}

/// A 32-bit transaction id as it appears in WAL records and `xmin`.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct Xid(pub u32);

impl fmt::Display for Xid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A cluster's system identifier from `pg_control`; two nodes of one cluster share it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SystemId(pub u64);

impl fmt::Display for SystemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for SystemId {
    // As a string: the value exceeds what JSON numbers hold exactly in most readers.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl schemars::JsonSchema for SystemId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SystemId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "A cluster's system identifier (a 64-bit number, as a string)."
        })
    }
}

impl<'de> Deserialize<'de> for SystemId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<u64>()
            .map(SystemId)
            .map_err(serde::de::Error::custom)
    }
}

/// A position as text, or `-` when unknown (the reports' convention).
pub fn lsn_or_dash(v: Option<Lsn>) -> String {
    v.map_or_else(|| "-".into(), |l| l.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_postgres_form() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn.0, 0x16_B374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!(Lsn(0x500_0000).to_string(), "0/5000000");
        assert_eq!("0/0".parse::<Lsn>().unwrap(), Lsn::INVALID);
        assert_eq!("ffffffff/ffffffff".parse::<Lsn>().unwrap(), Lsn(u64::MAX));
    }

    #[test]
    fn rejects_bad_input_and_names_it() {
        for bad in [
            "",
            "/",
            "0/",
            "/0",
            "0",
            "0/0/0",
            "g/0",
            "0/-1",
            "+1/0",
            "123456789/0",
            "0x1/0",
            "1 /2",
        ] {
            let err = bad.parse::<Lsn>().unwrap_err();
            assert_eq!(err.input, bad, "{bad:?}");
            assert!(err.to_string().contains(&format!("{bad:?}")));
        }
    }

    #[test]
    fn arithmetic_saturates_and_checks() {
        let a = Lsn(0x1_0000_0000);
        let b = Lsn(0x0_FFFF_FF00);
        assert_eq!(a.saturating_bytes_since(b), 0x100);
        assert_eq!(b.saturating_bytes_since(a), 0);
        assert_eq!(a.checked_sub(b), Some(0x100));
        assert_eq!(b.checked_sub(a), None);
        assert_eq!(Lsn(u64::MAX).checked_add(1), None);
        assert_eq!(Lsn(9).align8(), Lsn(16));
        assert_eq!(Lsn(16).align8(), Lsn(16));
    }

    #[test]
    fn segment_math() {
        let seg = 16 * 1024 * 1024;
        let lsn: Lsn = "1/2345678".parse().unwrap();
        assert_eq!(lsn.segment_number(seg), 0x1_0234_5678 / seg);
        assert_eq!(lsn.segment_offset(seg), 0x345678);
        assert_eq!(lsn.page_offset(), 0x345678 % 8192);
    }

    #[test]
    fn serde_round_trip_as_strings() {
        let v = serde_json::to_string(&(Lsn(0x500_0000), SystemId(u64::MAX))).unwrap();
        assert_eq!(v, r#"["0/5000000","18446744073709551615"]"#);
        let back: (Lsn, SystemId) = serde_json::from_str(&v).unwrap();
        assert_eq!(back, (Lsn(0x500_0000), SystemId(u64::MAX)));
        assert_eq!(TimelineId(2).history_file_name(), "00000002.history");
    }
}
