//! Heap and Heap2 records: which tuples (relation, block, offset) a record inserts, updates,
//! deletes or locks. Offsets are exact: later work reads rows by ctid from them.

use serde::Serialize;

use crate::lsn::{Lsn, Xid};
use crate::wal::error::WalError;
use crate::wal::record::{DecodedRecord, RelFileLocator};
use crate::wal::rmgr::{RM_HEAP2_ID, RM_HEAP_ID};

/// Heap opcode mask.
pub const XLOG_HEAP_OPMASK: u8 = 0x70;
/// Heap: the record initialises the page.
pub const XLOG_HEAP_INIT_PAGE: u8 = 0x80;
/// DELETE flag: a speculative insertion was killed (not a user delete).
pub const XLH_DELETE_IS_SUPER: u8 = 0x08;
/// DELETE flag: the row moved to another partition.
pub const XLH_DELETE_IS_PARTITION_MOVE: u8 = 0x10;

/// A tuple position: block and line pointer offset (a ctid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Tid {
    /// Block number.
    pub block: u32,
    /// Line pointer offset (1-based).
    pub offset: u16,
}

/// What a heap record does to user-visible tuples.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum HeapChange {
    /// One new tuple.
    Insert {
        /// The new tuple.
        new: Tid,
        /// xl_heap_insert flags.
        flags: u8,
    },
    /// Several new tuples on one page (Heap2 MULTI_INSERT, from COPY and catalog inserts).
    MultiInsert {
        /// The new tuples.
        new: Vec<Tid>,
        /// xl_heap_multi_insert flags.
        flags: u8,
    },
    /// A deleted tuple; `is_super` means a speculative-insertion cleanup, not a user delete.
    Delete {
        /// The deleted tuple.
        old: Tid,
        /// xl_heap_delete flags.
        flags: u8,
        /// XLH_DELETE_IS_SUPER.
        is_super: bool,
        /// The deleting xid (xmax).
        xmax: Xid,
    },
    /// An update (HOT or not): old version and new version.
    Update {
        /// Whether it is a HOT update.
        hot: bool,
        /// The old version.
        old: Tid,
        /// The new version.
        new: Tid,
        /// xl_heap_update flags.
        flags: u8,
        /// The updating xid (old xmax).
        xmax: Xid,
    },
    /// TRUNCATE of one or more relations (relfilenode OIDs in `db`).
    Truncate {
        /// Database OID.
        db: u32,
        /// Relation OIDs.
        rel_ids: Vec<u32>,
        /// Flags (cascade, restart seqs).
        flags: u8,
    },
    /// A row lock (SELECT FOR UPDATE, or the first step of an update).
    Lock {
        /// The tuple.
        tid: Tid,
        /// Locker xid or multixact.
        xmax: u32,
        /// Flags.
        flags: u8,
    },
    /// A speculative insertion confirmed (INSERT ON CONFLICT).
    Confirm {
        /// The tuple.
        tid: Tid,
    },
    /// An in-place update (catalog only, e.g. relhasindex, VACUUM stats).
    Inplace {
        /// The tuple.
        tid: Tid,
    },
    /// Other Heap/Heap2 records (prune, vacuum, visible, new_cid...): no user-visible change.
    Other,
}

/// An interpreted Heap or Heap2 record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeapRecord {
    /// The record's LSN.
    pub lsn: Lsn,
    /// The (sub)transaction that wrote it.
    pub xid: Xid,
    /// The relation (block 0's), when the record has blocks.
    pub rel: Option<RelFileLocator>,
    /// Whether the record initialises the page (+INIT).
    pub init_page: bool,
    /// The change.
    pub change: HeapChange,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

impl HeapRecord {
    /// Interprets a Heap or Heap2 record; `Ok(None)` for other rmgrs.
    #[inline] // the accountant's hottest call: built in place, without a call's moves
    pub fn parse(rec: &DecodedRecord) -> Result<Option<HeapRecord>, WalError> {
        if rec.rmid != RM_HEAP_ID && rec.rmid != RM_HEAP2_ID {
            return Ok(None);
        }
        let err = |what: &str| WalError::Interpret {
            what: format!("heap record: {what}"),
            lsn: rec.lsn,
        };
        let op = rec.info & XLOG_HEAP_OPMASK;
        if rec.rmid == RM_HEAP2_ID && op != 0x50 && op != 0x60 {
            // Prune, vacuum, freeze, visible, new_cid, rewrite: no user-visible change.
            return Ok(Some(HeapRecord {
                lsn: rec.lsn,
                xid: rec.xid,
                rel: rec.block(0).map(|b| b.rel),
                init_page: rec.info & XLOG_HEAP_INIT_PAGE != 0,
                change: HeapChange::Other,
            }));
        }
        let md: &[u8] = &rec.main_data;
        let init_page = rec.info & XLOG_HEAP_INIT_PAGE != 0;
        let b0 = rec.block(0);
        let blk0 = || b0.map(|b| b.block).ok_or_else(|| err("no block 0"));
        let tid0 = |off: Option<u16>| -> Result<Tid, WalError> {
            Ok(Tid {
                block: blk0()?,
                offset: off.ok_or_else(|| err("main data too short"))?,
            })
        };
        let change = if rec.rmid == RM_HEAP_ID {
            match op {
                0x00 => HeapChange::Insert {
                    new: tid0(u16_at(md, 0))?,
                    flags: *md.get(2).ok_or_else(|| err("INSERT main data too short"))?,
                },
                0x10 => {
                    let flags = *md.get(7).ok_or_else(|| err("DELETE main data too short"))?;
                    HeapChange::Delete {
                        old: tid0(u16_at(md, 4))?,
                        flags,
                        is_super: flags & XLH_DELETE_IS_SUPER != 0,
                        xmax: Xid(u32_at(md, 0).ok_or_else(|| err("DELETE main data too short"))?),
                    }
                }
                0x20 | 0x40 => {
                    let old_off = u16_at(md, 4).ok_or_else(|| err("UPDATE main data too short"))?;
                    let new_off =
                        u16_at(md, 12).ok_or_else(|| err("UPDATE main data too short"))?;
                    let new_block = blk0()?;
                    let old_block = rec.block(1).map_or(new_block, |b| b.block);
                    HeapChange::Update {
                        hot: op == 0x40,
                        old: Tid {
                            block: old_block,
                            offset: old_off,
                        },
                        new: Tid {
                            block: new_block,
                            offset: new_off,
                        },
                        flags: *md.get(7).ok_or_else(|| err("UPDATE main data too short"))?,
                        xmax: Xid(u32_at(md, 0).ok_or_else(|| err("UPDATE main data too short"))?),
                    }
                }
                0x30 => {
                    let db = u32_at(md, 0).ok_or_else(|| err("TRUNCATE main data too short"))?;
                    let n =
                        u32_at(md, 4).ok_or_else(|| err("TRUNCATE main data too short"))? as usize;
                    let flags = *md
                        .get(8)
                        .ok_or_else(|| err("TRUNCATE main data too short"))?;
                    if n.checked_mul(4)
                        .and_then(|x| x.checked_add(12))
                        .is_none_or(|e| e > md.len())
                    {
                        return Err(err("TRUNCATE nrelids exceeds the record"));
                    }
                    let rel_ids = (0..n).filter_map(|i| u32_at(md, 12 + 4 * i)).collect();
                    HeapChange::Truncate { db, rel_ids, flags }
                }
                0x50 => HeapChange::Confirm {
                    tid: tid0(u16_at(md, 0))?,
                },
                0x60 => HeapChange::Lock {
                    tid: tid0(u16_at(md, 4))?,
                    xmax: u32_at(md, 0).ok_or_else(|| err("LOCK main data too short"))?,
                    flags: *md.get(7).ok_or_else(|| err("LOCK main data too short"))?,
                },
                _ => HeapChange::Inplace {
                    tid: tid0(u16_at(md, 0))?,
                },
            }
        } else {
            match op {
                0x50 => {
                    let flags = *md
                        .first()
                        .ok_or_else(|| err("MULTI_INSERT main data too short"))?;
                    let n = u16_at(md, 2).ok_or_else(|| err("MULTI_INSERT main data too short"))?;
                    let block = blk0()?;
                    let mut new = Vec::with_capacity(usize::from(n));
                    for i in 0..n {
                        let offset = if init_page {
                            i + 1
                        } else {
                            u16_at(md, 4 + 2 * usize::from(i))
                                .ok_or_else(|| err("MULTI_INSERT offsets beyond main data"))?
                        };
                        new.push(Tid { block, offset });
                    }
                    HeapChange::MultiInsert { new, flags }
                }
                0x60 => HeapChange::Lock {
                    tid: tid0(u16_at(md, 4))?,
                    xmax: u32_at(md, 0).ok_or_else(|| err("LOCK_UPDATED main data too short"))?,
                    flags: *md
                        .get(7)
                        .ok_or_else(|| err("LOCK_UPDATED main data too short"))?,
                },
                _ => HeapChange::Other,
            }
        };
        Ok(Some(HeapRecord {
            lsn: rec.lsn,
            xid: rec.xid,
            rel: b0.map(|b| b.rel),
            init_page,
            change,
        }))
    }
}
