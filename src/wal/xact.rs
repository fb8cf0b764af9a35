//! Transaction records: COMMIT, ABORT, PREPARE, COMMIT/ABORT PREPARED, ASSIGNMENT, INVALIDATION.

use serde::Serialize;

use crate::lsn::{Lsn, Xid};
use crate::wal::error::WalError;
use crate::wal::record::{DecodedRecord, RelFileLocator};
use crate::wal::rmgr::RM_XACT_ID;

/// xinfo: database and tablespace follow.
pub const XACT_XINFO_HAS_DBINFO: u32 = 1 << 0;
/// xinfo: subtransaction xids follow.
pub const XACT_XINFO_HAS_SUBXACTS: u32 = 1 << 1;
/// xinfo: relfilenodes to drop follow.
pub const XACT_XINFO_HAS_RELFILENODES: u32 = 1 << 2;
/// xinfo: invalidation messages follow.
pub const XACT_XINFO_HAS_INVALS: u32 = 1 << 3;
/// xinfo: a two-phase xid follows.
pub const XACT_XINFO_HAS_TWOPHASE: u32 = 1 << 4;
/// xinfo: origin LSN and timestamp follow.
pub const XACT_XINFO_HAS_ORIGIN: u32 = 1 << 5;
/// xinfo: the transaction held AccessExclusive locks.
pub const XACT_XINFO_HAS_AE_LOCKS: u32 = 1 << 6;
/// xinfo: a GID follows the two-phase xid.
pub const XACT_XINFO_HAS_GID: u32 = 1 << 7;
/// xinfo: dropped statistics follow (PG15+).
pub const XACT_XINFO_HAS_DROPPED_STATS: u32 = 1 << 8;
/// xl_info bit: xinfo follows xact_time.
pub const XLOG_XACT_HAS_INFO: u8 = 0x80;

/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01 UTC).
pub const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// The kind of a transaction record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum XactKind {
    /// COMMIT.
    Commit,
    /// PREPARE TRANSACTION.
    Prepare,
    /// ABORT (of a transaction or a subtransaction).
    Abort,
    /// COMMIT PREPARED.
    CommitPrepared,
    /// ROLLBACK PREPARED.
    AbortPrepared,
    /// Subtransaction xid assignment.
    Assignment,
    /// Invalidations (logical decoding, PG14+).
    Invalidation,
}

/// A PostgreSQL timestamp: microseconds since 2000-01-01 00:00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PgTimestamp(pub i64);

impl PgTimestamp {
    /// Microseconds since the Unix epoch.
    pub fn unix_micros(self) -> i64 {
        self.0.saturating_add(PG_EPOCH_OFFSET_US)
    }

    /// As a `time` UTC date-time, `None` when out of range.
    pub fn to_offset_date_time(self) -> Option<time::OffsetDateTime> {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.unix_micros()) * 1000).ok()
    }

    /// `2026-11-27 05:32:05.173860 UTC`, as pg_waldump prints it with TZ=UTC.
    pub fn to_pg_string(self) -> String {
        match self.to_offset_date_time() {
            Some(t) => format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.microsecond()
            ),
            None => format!("{} µs after 2000-01-01", self.0),
        }
    }
}

impl Serialize for PgTimestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.to_offset_date_time().and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        }) {
            Some(v) => s.serialize_str(&v),
            None => s.serialize_i64(self.0),
        }
    }
}

/// An interpreted transaction record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct XactRecord {
    /// The kind.
    pub kind: XactKind,
    /// The record's LSN.
    pub lsn: Lsn,
    /// The top-level transaction: xl_xid, or the two-phase xid of COMMIT/ABORT PREPARED.
    pub top_xid: Xid,
    /// Subtransactions committed or aborted with it (or assigned, for ASSIGNMENT).
    pub subxids: Vec<Xid>,
    /// xact_time (or prepared_at for PREPARE).
    pub commit_time: Option<PgTimestamp>,
    /// The xinfo bits.
    pub xinfo: u32,
    /// The database OID, when the record carries it.
    pub db_id: Option<u32>,
    /// The tablespace OID, when the record carries it.
    pub ts_id: Option<u32>,
    /// Relation files dropped at commit/abort.
    pub dropped_rels: Vec<RelFileLocator>,
    /// Number of dropped-statistics entries (PG15+).
    pub dropped_stats: u32,
    /// Number of catalog invalidation messages.
    pub ninvals: u32,
    /// Whether catalog invalidations are included (a DDL hint).
    pub has_invalidations: bool,
    /// The two-phase xid (COMMIT/ABORT PREPARED) or the prepared xid (PREPARE).
    pub twophase_xid: Option<Xid>,
    /// The GID of a prepared transaction.
    pub gid: Option<String>,
    /// The origin LSN, when replicated from an origin.
    pub origin_lsn: Option<Lsn>,
    /// The origin commit timestamp.
    pub origin_time: Option<PgTimestamp>,
}

struct Rd<'a> {
    b: &'a [u8],
    pos: usize,
    lsn: Lsn,
}

impl Rd<'_> {
    fn err(&self, what: &str) -> WalError {
        WalError::Interpret {
            what: format!("transaction record: {what} (offset {})", self.pos),
            lsn: self.lsn,
        }
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], WalError> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.err(what))?;
        let s = self.b.get(self.pos..end).ok_or_else(|| self.err(what))?;
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32, WalError> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self, what: &str) -> Result<u64, WalError> {
        let s = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    fn count(&mut self, what: &str, elem: usize) -> Result<usize, WalError> {
        let n = self.u32(what)? as usize;
        if n.checked_mul(elem).is_none_or(|b| b > self.b.len()) {
            return Err(self.err(&format!("{what} count {n} exceeds the record")));
        }
        Ok(n)
    }
    fn align8(&mut self) {
        self.pos = (self.pos + 7) & !7;
    }
}

fn rd_at(b: &[u8], off: usize, lsn: Lsn) -> Rd<'_> {
    Rd { b, pos: off, lsn }
}

impl XactRecord {
    /// Interprets a Transaction record; `Ok(None)` for other rmgrs.
    pub fn parse(rec: &DecodedRecord) -> Result<Option<XactRecord>, WalError> {
        if rec.rmid != RM_XACT_ID {
            return Ok(None); // most records: nothing built
        }
        let mut x = XactRecord::empty();
        Ok(x.parse_from(rec)?.then_some(x))
    }

    /// An empty record, to parse into ([`Self::parse_from`]).
    pub fn empty() -> XactRecord {
        XactRecord {
            kind: XactKind::Commit,
            lsn: Lsn(0),
            top_xid: Xid(0),
            subxids: Vec::new(),
            commit_time: None,
            xinfo: 0,
            db_id: None,
            ts_id: None,
            dropped_rels: Vec::new(),
            dropped_stats: 0,
            ninvals: 0,
            has_invalidations: false,
            twophase_xid: None,
            gid: None,
            origin_lsn: None,
            origin_time: None,
        }
    }

    /// [`Self::parse`] into `self`, its lists' memory reused (the accountant parses every
    /// commit into the same record); `Ok(false)` for other rmgrs. Every field is set.
    #[inline] // once per commit, from the accountant
    pub fn parse_from(&mut self, rec: &DecodedRecord) -> Result<bool, WalError> {
        if rec.rmid != RM_XACT_ID {
            return Ok(false);
        }
        let kind = match rec.info & 0x70 {
            0x00 => XactKind::Commit,
            0x10 => XactKind::Prepare,
            0x20 => XactKind::Abort,
            0x30 => XactKind::CommitPrepared,
            0x40 => XactKind::AbortPrepared,
            0x50 => XactKind::Assignment,
            0x60 => XactKind::Invalidation,
            _ => return Ok(false),
        };
        let (mut subxids, mut dropped_rels) = (
            std::mem::take(&mut self.subxids),
            std::mem::take(&mut self.dropped_rels),
        );
        subxids.clear();
        dropped_rels.clear();
        *self = XactRecord {
            kind,
            lsn: rec.lsn,
            top_xid: rec.xid,
            subxids,
            dropped_rels,
            ..XactRecord::empty()
        };
        let x = self;
        let b: &[u8] = &rec.main_data;
        let mut r = rd_at(b, 0, rec.lsn);
        match kind {
            XactKind::Prepare => x.parse_prepare(&mut r, rec.version.0)?,
            XactKind::Assignment => {
                x.top_xid = Xid(r.u32("xtop")?);
                let n = r.count("nsubxacts", 4)?;
                for _ in 0..n {
                    x.subxids.push(Xid(r.u32("subxid")?));
                }
            }
            XactKind::Invalidation => {
                let n = r.count("nmsgs", 16)?;
                x.ninvals = n as u32;
                x.has_invalidations = n > 0;
            }
            _ => x.parse_commit_abort(&mut r, rec, kind)?,
        }
        Ok(true)
    }

    #[inline] // once per commit
    fn parse_commit_abort(
        &mut self,
        r: &mut Rd<'_>,
        rec: &DecodedRecord,
        kind: XactKind,
    ) -> Result<(), WalError> {
        self.commit_time = Some(PgTimestamp(r.u64("xact_time")? as i64));
        if rec.info & XLOG_XACT_HAS_INFO == 0 && matches!(kind, XactKind::Commit | XactKind::Abort)
        {
            return Ok(()); // no xinfo: xact_time is all there is (most commits)
        }
        if rec.info & XLOG_XACT_HAS_INFO != 0 {
            self.xinfo = r.u32("xinfo")?;
        }
        let xi = self.xinfo;
        if xi & XACT_XINFO_HAS_DBINFO != 0 {
            self.db_id = Some(r.u32("dbId")?);
            self.ts_id = Some(r.u32("tsId")?);
        }
        if xi & XACT_XINFO_HAS_SUBXACTS != 0 {
            let n = r.count("nsubxacts", 4)?;
            self.subxids.reserve(n);
            for _ in 0..n {
                self.subxids.push(Xid(r.u32("subxid")?));
            }
        }
        if xi & XACT_XINFO_HAS_RELFILENODES != 0 {
            let n = r.count("nrels", 12)?;
            for _ in 0..n {
                self.dropped_rels.push(RelFileLocator {
                    spc: r.u32("spc")?,
                    db: r.u32("db")?,
                    rel: r.u32("rel")?,
                });
            }
        }
        if xi & XACT_XINFO_HAS_DROPPED_STATS != 0 {
            let item = if rec.version.0 >= 18 { 16 } else { 12 };
            let n = r.count("nstats", item)?;
            r.take(n * item, "dropped stats")?;
            self.dropped_stats = n as u32;
        }
        let commit = matches!(kind, XactKind::Commit | XactKind::CommitPrepared);
        if commit && xi & XACT_XINFO_HAS_INVALS != 0 {
            let n = r.count("ninvals", 16)?;
            r.take(n * 16, "invalidation messages")?;
            self.ninvals = n as u32;
            self.has_invalidations = n > 0;
        }
        if xi & XACT_XINFO_HAS_TWOPHASE != 0 {
            let xid = Xid(r.u32("twophase xid")?);
            self.twophase_xid = Some(xid);
            if xi & XACT_XINFO_HAS_GID != 0 {
                let rest = r.b.get(r.pos..).unwrap_or_default();
                let len = rest
                    .iter()
                    .position(|&c| c == 0)
                    .ok_or_else(|| r.err("unterminated gid"))?;
                self.gid = Some(String::from_utf8_lossy(&rest[..len]).into_owned());
                r.pos += len + 1;
            }
        }
        if xi & XACT_XINFO_HAS_ORIGIN != 0 {
            self.origin_lsn = Some(Lsn(r.u64("origin lsn")?));
            self.origin_time = Some(PgTimestamp(r.u64("origin timestamp")? as i64));
        }
        if matches!(kind, XactKind::CommitPrepared | XactKind::AbortPrepared) {
            match self.twophase_xid {
                Some(x) => self.top_xid = x,
                None => return Err(r.err("COMMIT/ABORT PREPARED without a two-phase xid")),
            }
        }
        Ok(())
    }

    fn parse_prepare(&mut self, r: &mut Rd<'_>, version: u32) -> Result<(), WalError> {
        // xl_xact_prepare; PG15 added ncommitstats/nabortstats after nabortrels.
        let _magic = r.u32("magic")?;
        let _total_len = r.u32("total_len")?;
        let xid = Xid(r.u32("xid")?);
        let db = r.u32("database")?;
        let prepared_at = r.u64("prepared_at")? as i64;
        let _owner = r.u32("owner")?;
        let nsub = r.u32("nsubxacts")? as usize;
        let ncommitrels = r.u32("ncommitrels")? as usize;
        let nabortrels = r.u32("nabortrels")? as usize;
        let (ncommitstats, nabortstats) = if version >= 15 {
            (
                r.u32("ncommitstats")? as usize,
                r.u32("nabortstats")? as usize,
            )
        } else {
            (0, 0)
        };
        let ninval = r.u32("ninvalmsgs")? as usize;
        let _initfileinval = r.take(2, "initfileinval")?;
        let gidlen = {
            let s = r.take(2, "gidlen")?;
            usize::from(u16::from_le_bytes([s[0], s[1]]))
        };
        let origin_lsn = r.u64("origin_lsn")?;
        let origin_ts = r.u64("origin_timestamp")? as i64;
        r.align8();
        let gid = r.take(gidlen, "gid")?;
        let gid_end = gid.iter().position(|&c| c == 0).unwrap_or(gid.len());
        self.gid = Some(String::from_utf8_lossy(&gid[..gid_end]).into_owned());
        r.align8();
        if nsub.checked_mul(4).is_none_or(|n| n > r.b.len()) {
            return Err(r.err("nsubxacts exceeds the record"));
        }
        for _ in 0..nsub {
            self.subxids.push(Xid(r.u32("subxid")?));
        }
        r.align8();
        let _ = (ncommitrels, nabortrels, ncommitstats, nabortstats);
        self.top_xid = xid;
        self.twophase_xid = Some(xid);
        self.db_id = Some(db);
        self.commit_time = Some(PgTimestamp(prepared_at));
        self.ninvals = ninval as u32;
        self.has_invalidations = ninval > 0;
        if origin_lsn != 0 {
            self.origin_lsn = Some(Lsn(origin_lsn));
            self.origin_time = Some(PgTimestamp(origin_ts));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_format() {
        // 2000-01-01 00:00:00.000001 UTC
        assert_eq!(
            PgTimestamp(1).to_pg_string(),
            "2000-01-01 00:00:00.000001 UTC"
        );
        assert_eq!(PgTimestamp(0).unix_micros(), PG_EPOCH_OFFSET_US);
    }
}
