//! Standby RUNNING_XACTS and LOCK records, XLOG checkpoints and Sequence records.

use serde::Serialize;

use crate::lsn::{Lsn, TimelineId, Xid};
use crate::wal::error::WalError;
use crate::wal::record::{DecodedRecord, RelFileLocator};
use crate::wal::rmgr::{RM_SEQ_ID, RM_STANDBY_ID, RM_XLOG_ID};

/// A RUNNING_XACTS snapshot: what was in progress at its LSN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunningXacts {
    /// The record's LSN.
    pub lsn: Lsn,
    /// Number of top-level xids.
    pub xcnt: u32,
    /// Number of subxids.
    pub subxcnt: u32,
    /// Whether the subxid list overflowed.
    pub subxid_overflow: bool,
    /// The next xid to be assigned.
    pub next_xid: Xid,
    /// The oldest running xid.
    pub oldest_running_xid: Xid,
    /// The latest completed xid.
    pub latest_completed_xid: Xid,
    /// Running xids (top-level first, then subxids).
    pub xids: Vec<Xid>,
}

/// A checkpoint record (XLOG CHECKPOINT_SHUTDOWN / CHECKPOINT_ONLINE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    /// The record's LSN.
    pub lsn: Lsn,
    /// Whether it is a shutdown checkpoint.
    pub shutdown: bool,
    /// Where replay starts for this checkpoint.
    pub redo: Lsn,
    /// The timeline.
    pub timeline: TimelineId,
    /// The previous timeline.
    pub prev_timeline: TimelineId,
    /// The next xid's epoch.
    pub next_xid_epoch: u32,
    /// The next xid.
    pub next_xid: Xid,
    /// The next OID.
    pub next_oid: u32,
    /// The oldest active xid (online checkpoints).
    pub oldest_active_xid: Xid,
}

/// A sequence advance (Sequence LOG): the sequence relation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeqRecord {
    /// The record's LSN.
    pub lsn: Lsn,
    /// The writing xid.
    pub xid: Xid,
    /// The sequence's relation.
    pub rel: RelFileLocator,
    /// The logged value (`last_value` of the logged tuple), when the tuple could be read.
    pub last_value: Option<i64>,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

impl RunningXacts {
    /// Interprets a Standby RUNNING_XACTS record; `Ok(None)` for other records.
    pub fn parse(rec: &DecodedRecord) -> Result<Option<RunningXacts>, WalError> {
        if rec.rmid != RM_STANDBY_ID || rec.info & 0xF0 != 0x10 {
            return Ok(None);
        }
        let b: &[u8] = &rec.main_data;
        let err = || WalError::Interpret {
            what: "RUNNING_XACTS record too short".into(),
            lsn: rec.lsn,
        };
        let xcnt = u32_at(b, 0).ok_or_else(err)?;
        let subxcnt = u32_at(b, 4).ok_or_else(err)?;
        let n = (xcnt as usize)
            .checked_add(subxcnt as usize)
            .ok_or_else(err)?;
        if n.checked_mul(4)
            .and_then(|x| x.checked_add(24))
            .is_none_or(|e| e > b.len())
        {
            return Err(err());
        }
        Ok(Some(RunningXacts {
            lsn: rec.lsn,
            xcnt,
            subxcnt,
            subxid_overflow: *b.get(8).ok_or_else(err)? != 0,
            next_xid: Xid(u32_at(b, 12).ok_or_else(err)?),
            oldest_running_xid: Xid(u32_at(b, 16).ok_or_else(err)?),
            latest_completed_xid: Xid(u32_at(b, 20).ok_or_else(err)?),
            xids: (0..n)
                .filter_map(|i| u32_at(b, 24 + 4 * i).map(Xid))
                .collect(),
        }))
    }
}

impl Checkpoint {
    /// Interprets an XLOG checkpoint record; `Ok(None)` for other records.
    pub fn parse(rec: &DecodedRecord) -> Result<Option<Checkpoint>, WalError> {
        let info = rec.info & 0xF0;
        if rec.rmid != RM_XLOG_ID || (info != 0x00 && info != 0x10) {
            return Ok(None);
        }
        let b: &[u8] = &rec.main_data;
        let err = || WalError::Interpret {
            what: "checkpoint record too short".into(),
            lsn: rec.lsn,
        };
        // CheckPoint: redo @0, ThisTimeLineID @8, PrevTimeLineID @12, fullPageWrites @16
        // (PG17+: wal_level int @20), nextXid (FullTransactionId) @24, nextOid @32, ...
        let next_full = u64_at(b, 24).ok_or_else(err)?;
        // oldestActiveXid is the last field.
        let oldest_active = b
            .len()
            .checked_sub(4)
            .and_then(|o| u32_at(b, o))
            .ok_or_else(err)?;
        Ok(Some(Checkpoint {
            lsn: rec.lsn,
            shutdown: info == 0x00,
            redo: Lsn(u64_at(b, 0).ok_or_else(err)?),
            timeline: TimelineId(u32_at(b, 8).ok_or_else(err)?),
            prev_timeline: TimelineId(u32_at(b, 12).ok_or_else(err)?),
            next_xid_epoch: (next_full >> 32) as u32,
            next_xid: Xid(next_full as u32),
            next_oid: u32_at(b, 32).ok_or_else(err)?,
            oldest_active_xid: Xid(oldest_active),
        }))
    }
}

impl SeqRecord {
    /// Interprets a Sequence LOG record; `Ok(None)` for other records.
    pub fn parse(rec: &DecodedRecord) -> Result<Option<SeqRecord>, WalError> {
        if rec.rmid != RM_SEQ_ID || rec.info & 0xF0 != 0x00 {
            return Ok(None);
        }
        // xl_seq_rec { RelFileNode node } then the sequence tuple: HeapTupleHeader (t_hoff at
        // offset 22) followed by FormData_pg_sequence_data { last_value int8, log_cnt, is_called }.
        let b: &[u8] = &rec.main_data;
        let err = || WalError::Interpret {
            what: "sequence record too short".into(),
            lsn: rec.lsn,
        };
        let rel = RelFileLocator {
            spc: u32_at(b, 0).ok_or_else(err)?,
            db: u32_at(b, 4).ok_or_else(err)?,
            rel: u32_at(b, 8).ok_or_else(err)?,
        };
        let last_value = b
            .get(12 + 22)
            .and_then(|&hoff| u64_at(b, 12 + usize::from(hoff)))
            .map(|v| v as i64);
        Ok(Some(SeqRecord {
            lsn: rec.lsn,
            xid: rec.xid,
            rel,
            last_value,
        }))
    }
}
