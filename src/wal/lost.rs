//! What the accounting of lost transactions finds: lost commits and their changes per relation,
//! aborts, in-doubt and in-flight transactions, sequence advances.

use crate::lsn::{Lsn, Xid};
use crate::wal::decoder::EndOfWal;
use crate::wal::heap::Tid;
use crate::wal::record::RelFileLocator;
use crate::wal::rmgr::WalStats;
use crate::wal::xact::PgTimestamp;
use crate::wal::xidset::XidSet;
use serde::Serialize;

/// How much per-transaction detail the accountant keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Detail {
    /// Every lost commit, abort, DDL xid and touched tuple (what the row diff needs).
    Full,
    /// Exact totals and aggregates, the first and the last `keep` lost commits (and at most
    /// `keep` aborts and DDL xids), no touched tuples: memory flat in the size of the loss.
    Bounded {
        /// How many lost commits to keep at each end.
        keep: usize,
    },
}

/// Lost commits of one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DatabaseChanges {
    /// Database OID (`None`: neither the commit record nor its changes named one).
    pub db_id: Option<u32>,
    /// Lost commits.
    pub commits: u64,
    /// Their row changes (all relations, catalogs included).
    pub counts: ChangeCounts,
}

/// Lost commits in one minute of commit time: the loss timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MinuteCommits {
    /// The start of the minute.
    pub minute: PgTimestamp,
    /// Lost commits whose commit time falls in it.
    pub commits: u64,
}

/// The kind of change to one tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TupleOp {
    /// A new tuple (INSERT or one MULTI_INSERT tuple).
    Insert,
    /// The new version of a non-HOT UPDATE (`old` holds the old version).
    Update,
    /// The new version of a HOT UPDATE.
    HotUpdate,
    /// A DELETE.
    Delete,
}

/// One tuple touched by a lost transaction: where to look for the row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TouchedTuple {
    /// The relation.
    pub rel: RelFileLocator,
    /// The tuple written (new version) or deleted.
    pub tid: Tid,
    /// For updates, the old version.
    pub old: Option<Tid>,
    /// The operation.
    pub op: TupleOp,
    /// The (sub)transaction xid on the record.
    pub xid: Xid,
    /// The top-level xid of the lost transaction.
    pub top_xid: Xid,
    /// The record's LSN.
    pub lsn: Lsn,
}

/// Change counts for one relation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChangeCounts {
    /// Inserted tuples (each multi-insert tuple counts).
    pub inserts: u64,
    /// Non-HOT updates.
    pub updates: u64,
    /// HOT updates.
    pub hot_updates: u64,
    /// Deletes (speculative-insert cleanups excluded).
    pub deletes: u64,
    /// TRUNCATEs.
    pub truncates: u64,
}

impl ChangeCounts {
    pub(crate) fn add(&mut self, o: &ChangeCounts) {
        self.inserts += o.inserts;
        self.updates += o.updates;
        self.hot_updates += o.hot_updates;
        self.deletes += o.deletes;
        self.truncates += o.truncates;
    }

    /// Takes `o` back out (counts added before).
    pub(crate) fn take(&mut self, o: &ChangeCounts) {
        self.inserts = self.inserts.saturating_sub(o.inserts);
        self.updates = self.updates.saturating_sub(o.updates);
        self.hot_updates = self.hot_updates.saturating_sub(o.hot_updates);
        self.deletes = self.deletes.saturating_sub(o.deletes);
        self.truncates = self.truncates.saturating_sub(o.truncates);
    }

    /// Total row changes.
    pub fn total(&self) -> u64 {
        self.inserts + self.updates + self.hot_updates + self.deletes
    }
}

/// Changes to one relation made by lost transactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableChanges {
    /// The relation (map relfilenode → table over SQL on the former primary).
    pub rel: RelFileLocator,
    /// Whether it is a system catalog (relfilenode below 16384).
    pub catalog: bool,
    /// The counts.
    pub counts: ChangeCounts,
}

/// A lost commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostCommit {
    /// Top-level xid (on the old timeline: the new primary reuses these numbers).
    pub top_xid: Xid,
    /// Committed subtransactions.
    pub subxids: Vec<Xid>,
    /// The commit record's LSN.
    pub lsn: Lsn,
    /// Commit time.
    pub commit_time: Option<PgTimestamp>,
    /// Database OID (from the commit record, else from its changes).
    pub db_id: Option<u32>,
    /// Whether it was a COMMIT PREPARED.
    pub prepared: bool,
    /// The GID of a COMMIT PREPARED.
    pub gid: Option<String>,
    /// Whether the commit carries catalog invalidations.
    pub has_invalidations: bool,
    /// Whether it looks like DDL (invalidations, dropped files, or catalog changes).
    pub ddl: bool,
    /// Row changes it made.
    pub changes: ChangeCounts,
    /// The same changes per relation (a transaction touches few relations).
    pub per_rel: Vec<(RelFileLocator, ChangeCounts)>,
    /// Relation files its commit drops (DROP, and the old files of TRUNCATE or a rewrite).
    pub dropped_rels: Vec<RelFileLocator>,
    /// How many of its change records precede the switchpoint (replicated, but not their commit).
    pub changes_before_switchpoint: u64,
}

/// An abort after the switchpoint (not a loss).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AbortAfter {
    /// The aborted xid (a subtransaction's, for a ROLLBACK TO SAVEPOINT).
    pub xid: Xid,
    /// The abort record's LSN.
    pub lsn: Lsn,
    /// Whether it was a ROLLBACK PREPARED.
    pub prepared: bool,
    /// Abort time.
    pub time: Option<PgTimestamp>,
}

/// A prepared transaction whose PREPARE is after the switchpoint and that was never resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InDoubt {
    /// The prepared xid.
    pub xid: Xid,
    /// Its GID.
    pub gid: Option<String>,
    /// The PREPARE record's LSN.
    pub lsn: Lsn,
    /// When it was prepared.
    pub prepared_at: Option<PgTimestamp>,
    /// Database OID.
    pub db_id: Option<u32>,
}

/// Sequence advances after the switchpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SequenceAdvance {
    /// The sequence relation.
    pub rel: RelFileLocator,
    /// How many Sequence LOG records (each logs up to 32 values ahead).
    pub records: u64,
    /// The last logged value (PostgreSQL logs ahead: this is at most 32 past the last nextval).
    pub last_logged_value: Option<i64>,
}

/// The result: everything the former primary committed after the switchpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostTransactions {
    /// The switchpoint.
    pub switchpoint: Lsn,
    /// The first record read.
    pub scan_start: Option<Lsn>,
    /// The end of the last record read.
    pub end_lsn: Option<Lsn>,
    /// How decoding ended, when the caller passed it.
    pub end_of_wal: Option<EndOfWal>,
    /// WAL bytes after the switchpoint (end_lsn − switchpoint).
    pub wal_bytes_after_switchpoint: u64,
    /// Lost commits in WAL order: all of them with [`Detail::Full`], else the first and the
    /// last `keep` (see `lost_commits_omitted`).
    pub lost_commits: Vec<LostCommit>,
    /// How many lost commits there are (exact, whatever the detail).
    pub lost_commit_count: u64,
    /// How many lost commits `lost_commits` leaves out (between its first and last `keep`).
    pub lost_commits_omitted: u64,
    /// Every xid (top-level and subtransaction) of the lost commits.
    #[serde(skip)]
    pub lost_xids: XidSet,
    /// Lost commits and their row changes per database, by OID.
    pub databases: Vec<DatabaseChanges>,
    /// Lost commits per minute of commit time, in time order (commits without a time left out).
    pub commits_per_minute: Vec<MinuteCommits>,
    /// The detail kept.
    pub detail: Detail,
    /// First lost commit time.
    pub first_lost_commit_time: Option<PgTimestamp>,
    /// Last lost commit time.
    pub last_lost_commit_time: Option<PgTimestamp>,
    /// Aborts after the switchpoint (not losses): all with [`Detail::Full`], else the first `keep`.
    pub aborts_after_switchpoint: Vec<AbortAfter>,
    /// How many aborts there are after the switchpoint (exact).
    pub abort_count: u64,
    /// Prepared after the switchpoint, never resolved: still pending (in doubt).
    pub in_doubt: Vec<InDoubt>,
    /// Transactions with changes after the switchpoint and no commit or abort (in flight).
    pub in_flight: Vec<Xid>,
    /// Per-relation changes of lost transactions.
    pub tables: Vec<TableChanges>,
    /// Lost commits that look like DDL (top xids): all with [`Detail::Full`], else the first `keep`.
    pub lost_ddl: Vec<Xid>,
    /// How many lost commits look like DDL (exact).
    pub lost_ddl_count: u64,
    /// Sequence advances after the switchpoint.
    pub sequences: Vec<SequenceAdvance>,
    /// Every tuple touched by a lost transaction ([`Detail::Full`] only, else empty).
    pub touched_tuples: Vec<TouchedTuple>,
    /// How many tuples the lost transactions touched (exact).
    pub touched_tuple_count: u64,
    /// The tuple limit that made the accounting drop the touched tuples and fall back to
    /// bounded detail (see `Accountant::with_tuple_limit`), if it did.
    pub tuple_limit_exceeded: Option<u64>,
    /// Xids running at the first RUNNING_XACTS record read that turned out lost: their changes
    /// before the scan start (if any) are not counted.
    pub running_at_scan_start: Vec<Xid>,
    /// Transactions COMMIT PREPARED at or after the switchpoint whose PREPARE was not read
    /// (it precedes the scan start): the changes they made are not counted.
    pub prepared_before_scan: Vec<Xid>,
    /// Record counts and bytes after the switchpoint per rmgr and record type.
    pub wal_stats_after_switchpoint: WalStats,
}
