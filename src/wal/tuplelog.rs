//! The heap tuple images of the WAL after the switchpoint, kept by a scan so that the lost rows
//! can be rebuilt from the WAL alone ([`crate::diff::walrows`]).
//!
//! Every heap and heap2 record at or after the switchpoint is kept as its tuple images
//! ([`tuples_of`]), with the ctid of a DELETE and the full-page images of heap pages (an UPDATE
//! that logged only the bytes it changed is completed from the old tuple, which such an image
//! may hold). Records of every transaction are kept: which ones were lost is known only once
//! their commits are decoded. The memory is bounded: past [`TupleLog::DEFAULT_LIMIT`] bytes
//! nothing more is kept and the log says so.

use std::collections::HashMap;

use crate::lsn::{Lsn, Xid};
use crate::wal::heap::{Tid, XLOG_HEAP_OPMASK};
use crate::wal::record::{BlockRef, DecodedRecord, RelFileLocator};
use crate::wal::rmgr::{RM_HEAP2_ID, RM_HEAP_ID, RM_XLOG_ID};
use crate::wal::tuple::{restore_page, tuple_from_page, tuples_of, HeapTuple, RecordTuples};

/// A copy of a block reference with only its image, in its own buffer (not pinning the
/// decoder's).
fn owned_image(b: &BlockRef) -> BlockRef {
    BlockRef {
        image: crate::wal::record::ImageBytes(vec![bytes::Bytes::from(b.image.to_vec())]),
        data: bytes::Bytes::new(),
        data_len: 0,
        ..b.clone()
    }
}

/// One heap record's images.
#[derive(Debug, Clone)]
pub struct LoggedRecord {
    /// The record's LSN.
    pub lsn: Lsn,
    /// The (sub)transaction that wrote it.
    pub xid: Xid,
    /// The relation of block 0.
    pub rel: RelFileLocator,
    /// New tuples and the logged old tuple.
    pub tuples: RecordTuples,
    /// For a DELETE: the deleted tuple's ctid.
    pub delete: Option<Tid>,
}

/// A record whose images could not be rebuilt.
#[derive(Debug, Clone)]
pub struct LogError {
    /// The record's LSN.
    pub lsn: Lsn,
    /// Its (sub)transaction.
    pub xid: Xid,
    /// The relation of block 0, when the record has one.
    pub rel: Option<RelFileLocator>,
    /// What went wrong.
    pub what: String,
}

/// The tuple images of a WAL range (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct TupleLog {
    /// Heap records with tuple images, in LSN order.
    pub records: Vec<LoggedRecord>,
    /// Records whose images could not be rebuilt.
    pub errors: Vec<LogError>,
    /// Full-page images of heap pages: (relation, block) → (LSN, block), in LSN order.
    images: HashMap<(RelFileLocator, u32), Vec<(Lsn, BlockRef)>>,
    /// Bytes kept so far (approximate).
    bytes: usize,
    /// The limit on [`TupleLog::bytes`].
    limit: usize,
    /// Where the log stopped keeping records because of the limit.
    pub full_at: Option<Lsn>,
}

impl TupleLog {
    /// The default memory bound: 1 GiB of tuple and page bytes.
    pub const DEFAULT_LIMIT: usize = 1 << 30;

    /// An empty log that keeps up to `limit` bytes.
    pub fn with_limit(limit: usize) -> TupleLog {
        TupleLog {
            limit,
            ..TupleLog::default()
        }
    }

    /// Keeps the images of `rec` (a record at or after the switchpoint); other records are
    /// ignored.
    pub fn add(&mut self, rec: &DecodedRecord) {
        let xlog = rec.rmid == RM_XLOG_ID;
        if rec.rmid != RM_HEAP_ID && rec.rmid != RM_HEAP2_ID && !xlog {
            return;
        }
        if self.full_at.is_some() {
            return;
        }
        for b in &rec.blocks {
            if b.has_image && b.fork == 0 {
                self.bytes += b.image.len() + 64;
                self.images
                    .entry((b.rel, b.block))
                    .or_default()
                    .push((rec.lsn, owned_image(b)));
            }
        }
        if xlog {
            // FPI and FPI_FOR_HINT (a hint bit set with checksums or wal_log_hints on): only
            // the images matter here.
            return;
        }
        let op = rec.info & XLOG_HEAP_OPMASK;
        let delete = if rec.rmid == RM_HEAP_ID && op == 0x10 {
            rec.block(0).and_then(|b| {
                let off = rec.main_data.get(4..6)?;
                Some(Tid {
                    block: b.block,
                    offset: u16::from_le_bytes([off[0], off[1]]),
                })
            })
        } else {
            None
        };
        match tuples_of(rec) {
            Ok(tuples) => {
                if tuples.new.is_empty() && tuples.old.is_none() && delete.is_none() {
                    return;
                }
                let Some(rel) = rec.block(0).map(|b| b.rel) else {
                    return;
                };
                self.bytes += 96
                    + tuples
                        .new
                        .iter()
                        .map(|t| match &t.image {
                            crate::wal::tuple::TupleImage::Complete(h) => h.len(),
                            crate::wal::tuple::TupleImage::NeedsOld(_) => 256,
                        })
                        .sum::<usize>()
                    + tuples.old.as_ref().map_or(0, |o| o.tuple.len());
                self.records.push(LoggedRecord {
                    lsn: rec.lsn,
                    xid: rec.xid,
                    rel,
                    tuples,
                    delete,
                });
            }
            Err(e) => self.errors.push(LogError {
                lsn: rec.lsn,
                xid: rec.xid,
                rel: rec.block(0).map(|b| b.rel),
                what: e.to_string(),
            }),
        }
        if self.limit > 0 && self.bytes > self.limit {
            self.full_at = Some(rec.lsn);
        }
    }

    /// The tuple at `tid` of `rel` in the newest full-page image of its page taken at or
    /// before `at` (or, failing that, the oldest after it), with the image's LSN.
    pub fn tuple_in_image(
        &self,
        rel: RelFileLocator,
        tid: Tid,
        at: Lsn,
    ) -> Option<(Lsn, HeapTuple)> {
        let list = self.images.get(&(rel, tid.block))?;
        let before = list.iter().rev().filter(|(l, _)| *l <= at);
        let after = list.iter().filter(|(l, _)| *l > at);
        for (lsn, block) in before.chain(after) {
            if let Ok(page) = restore_page(block) {
                if let Ok(t) = tuple_from_page(&page, tid.offset) {
                    return Some((*lsn, t));
                }
            }
        }
        None
    }
}
