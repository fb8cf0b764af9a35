//! Lost-transaction accounting: decoded records from a scan start up to the end of the former
//! primary's WAL, plus the switchpoint, give the exact list of lost commits and their changes.
//!
//! Pure: no I/O, no SQL. Feed records in WAL order with [`Accountant::add`] (or whole ranges
//! accounted apart, on other threads, with [`Accountant::add_range`]: module [`range`]), then
//! call [`Accountant::finish`]. With [`Detail::Bounded`] memory stays flat in the number of lost
//! transactions: totals, per-table, per-database and per-minute figures stay exact, only the
//! first and last lost commits are kept whole, and [`Accountant::add_observed`] hands every
//! lost commit to the caller as it is found (to stream the complete list to a file). Start the scan at the redo point of the last checkpoint (or the last
//! RUNNING_XACTS record) before the switchpoint, so that changes made before the switchpoint by
//! transactions that commit after it are found; xids already running at the scan start are
//! reported in [`LostTransactions::running_at_scan_start`] because their earliest changes may
//! precede the scan.
//!
//! Rules (see DOMAIN.md §5):
//! - a COMMIT or COMMIT PREPARED whose record starts at or after the switchpoint is lost;
//! - its changes are those recorded under its top-level xid or any of its committed subxids,
//!   before or after the switchpoint;
//! - ABORTs after the switchpoint are counted, not losses; so are transactions still in flight;
//! - a PREPARE after the switchpoint with no COMMIT/ABORT PREPARED is in doubt;
//! - sequence advances (Sequence LOG) after the switchpoint are lost whatever the transaction
//!   (nextval is not transactional).

mod log;
mod pending;
pub mod range;

use std::collections::BTreeMap;

use crate::lsn::{Lsn, Xid};
use crate::wal::decoder::EndOfWal;
use crate::wal::error::WalError;
use crate::wal::heap::{HeapChange, HeapRecord, Tid, XLOG_HEAP_OPMASK};
use crate::wal::record::{DecodedRecord, RelFileLocator};
use crate::wal::rmgr::{WalStats, RM_HEAP2_ID, RM_HEAP_ID, RM_XACT_ID};
use crate::wal::standby::{RunningXacts, SeqRecord};
use crate::wal::xact::{PgTimestamp, XactKind, XactRecord};
use crate::wal::xidset::XidSet;

use pending::{blank_commit, Gathered, Parts, Pending, RelMap, XidMap, XidSlots};

pub use log::Spare;

pub use crate::wal::lost::{
    AbortAfter, ChangeCounts, DatabaseChanges, Detail, InDoubt, LostCommit, LostTransactions,
    MinuteCommits, SequenceAdvance, TableChanges, TouchedTuple, TupleOp,
};

/// OIDs below this are assigned at initdb: system catalogs (FirstNormalObjectId).
pub const FIRST_NORMAL_OBJECT_ID: u32 = 16384;

/// Streaming accountant: feed records in order, then [`Accountant::finish`].
#[derive(Debug)]
pub struct Accountant {
    switchpoint: Lsn,
    scan_start: Option<Lsn>,
    end_lsn: Option<Lsn>,
    /// The pending changes of each xid: an index into `slots` (moving a transaction's
    /// changes in and out of the map would copy them several times per commit).
    pending: XidSlots,
    slots: Vec<Pending>,
    free_slots: Vec<u32>,
    /// The xid looked up last and its slot: a transaction's records often come one after
    /// another, and this saves hashing its xid again.
    last_slot: Option<(u32, u32)>,
    /// Boxed, so that taking it out for a commit and putting it back moves a pointer.
    gathered: Option<Box<Gathered>>,
    /// The lost commit written when no list keeps one (`Detail::Bounded { keep: 0 }`).
    spare: Option<LostCommit>,
    prepared: XidMap<InDoubt>,
    prepared_pending: XidMap<Parts>,
    first_running: Option<Vec<Xid>>,
    prepared_before_scan: Vec<Xid>,
    detail: Detail,
    /// All lost commits ([`Detail::Full`]) or the first `keep`.
    lost: Vec<LostCommit>,
    /// The last `keep` lost commits after those in `lost` ([`Detail::Bounded`]): a ring whose
    /// oldest is at `tail_head` once full, each new commit written over the oldest in place.
    tail: Vec<LostCommit>,
    tail_head: usize,
    lost_count: u64,
    lost_xids: XidSet,
    /// Per database (a handful: searched in turn, sorted at the end).
    databases: Vec<DatabaseChanges>,
    minutes: BTreeMap<i64, u64>,
    /// The commits of the latest minute, not yet in `minutes` (commits come in time order,
    /// nearly always: one map update per minute instead of one per commit).
    minute_run: Option<(i64, u64)>,
    first_time: Option<PgTimestamp>,
    last_time: Option<PgTimestamp>,
    lost_ddl: Vec<Xid>,
    lost_ddl_count: u64,
    tables: RelMap<ChangeCounts>,
    touched: Vec<TouchedTuple>,
    touched_count: u64,
    aborts: Vec<AbortAfter>,
    abort_count: u64,
    seqs: BTreeMap<RelFileLocator, SequenceAdvance>,
    stats: WalStats,
    /// With [`Detail::Full`]: past this many tuples kept, fall back to bounded detail.
    tuple_limit: Option<(u64, usize)>,
    /// Tuples kept with [`Detail::Full`] in pending changes, recorded at or after the
    /// switchpoint (those before it mostly belong to transactions that commit before it).
    pending_after: u64,
    /// The limit that made the accountant fall back to bounded detail.
    limit_exceeded: Option<u64>,
    /// A lost commit's xid was running at the first RUNNING_XACTS record.
    running_lost: bool,
    /// Accounting one range of the WAL: what the accountant in WAL order needs to correct
    /// (module `range`).
    log: Option<Box<log::RangeLog>>,
    /// The transaction record parsed last: every one is parsed into it (moving a parsed
    /// record to where it is accounted cost more than parsing it).
    xact: Option<Box<XactRecord>>,
}

/// What [`Accountant::take_record`] leaves to be accounted in WAL order.
enum Taken {
    /// Nothing: the record is accounted.
    Done,
    /// A transaction record, for the caller to account in WAL order
    /// ([`Accountant::account_xact`]; handing the parsed record back would copy it twice per
    /// commit).
    Xact,
    /// The first RUNNING_XACTS record's xids.
    Running(Vec<Xid>),
}

/// Microseconds in a minute.
const MINUTE_US: i64 = 60_000_000;

fn is_catalog(rel: &RelFileLocator) -> bool {
    rel.rel < FIRST_NORMAL_OBJECT_ID
}

impl Accountant {
    /// An accountant for a failover at `switchpoint` that keeps every detail ([`Detail::Full`]).
    pub fn new(switchpoint: Lsn) -> Accountant {
        Accountant::with_detail(switchpoint, Detail::Full)
    }

    /// An accountant for a failover at `switchpoint` that keeps `detail`.
    pub fn with_detail(switchpoint: Lsn, detail: Detail) -> Accountant {
        Accountant::with_detail_in(switchpoint, detail, WalStats::default())
    }

    /// [`Self::with_detail`], counting into `stats` (empty: memory to reuse).
    fn with_detail_in(switchpoint: Lsn, detail: Detail, stats: WalStats) -> Accountant {
        Accountant {
            switchpoint,
            scan_start: None,
            end_lsn: None,
            pending: XidSlots::default(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            last_slot: None,
            gathered: Some(Box::default()),
            spare: None,
            prepared: XidMap::default(),
            prepared_pending: XidMap::default(),
            first_running: None,
            prepared_before_scan: Vec::new(),
            detail,
            lost: Vec::new(),
            tail: Vec::new(),
            tail_head: 0,
            lost_count: 0,
            lost_xids: XidSet::new(),
            databases: Vec::new(),
            minutes: BTreeMap::new(),
            minute_run: None,
            first_time: None,
            last_time: None,
            lost_ddl: Vec::new(),
            lost_ddl_count: 0,
            tables: RelMap::default(),
            touched: Vec::new(),
            touched_count: 0,
            aborts: Vec::new(),
            abort_count: 0,
            seqs: BTreeMap::new(),
            stats,
            tuple_limit: None,
            pending_after: 0,
            limit_exceeded: None,
            running_lost: false,
            log: None,
            xact: None,
        }
    }

    /// With [`Detail::Full`], keeps at most `limit` touched tuples: past it the accountant
    /// drops the tuples and keeps the first and the last `keep` lost commits, as
    /// [`Detail::Bounded`] does, so that memory stays flat whatever the loss. Every count stays
    /// exact; [`LostTransactions::tuple_limit_exceeded`] says that it happened.
    pub fn with_tuple_limit(mut self, limit: u64, keep: usize) -> Accountant {
        self.tuple_limit = Some((limit, keep));
        self
    }

    /// Whether the scan certainly had to start earlier: a lost commit's xid was running at the
    /// first RUNNING_XACTS record (so [`LostTransactions::running_at_scan_start`] will not be
    /// empty), or a COMMIT PREPARED was lost whose PREPARE precedes the records read.
    pub fn needs_earlier_start(&self) -> bool {
        self.running_lost || !self.prepared_before_scan.is_empty()
    }

    /// Notes whether a lost commit's xid is in the first RUNNING_XACTS record (what
    /// [`LostTransactions::running_at_scan_start`] will hold), as soon as it is so.
    fn note_running_lost(&mut self) {
        let lost = &self.lost_xids;
        self.running_lost = self
            .first_running
            .as_ref()
            .is_some_and(|r| r.iter().any(|x| lost.contains(&x.0)));
    }

    /// The detail kept now: [`Detail::Bounded`] once the tuple limit was passed.
    pub fn detail(&self) -> Detail {
        self.detail
    }

    /// Whether the tuple limit was passed (the tuples are no longer kept).
    pub fn tuple_limit_exceeded(&self) -> bool {
        self.limit_exceeded.is_some()
    }

    /// Falls back to bounded detail when the tuples kept (lost, or pending since the
    /// switchpoint) pass the limit.
    #[inline] // once per heap change: nearly always nothing to do
    fn check_tuple_limit(&mut self) {
        if let (Some((limit, keep)), Detail::Full) = (self.tuple_limit, self.detail) {
            if self.touched.len() as u64 + self.pending_after > limit {
                self.fall_back(limit, keep);
            }
        }
    }

    /// Falls back from [`Detail::Full`] to [`Detail::Bounded`] (the tuple limit was passed).
    fn fall_back(&mut self, limit: u64, keep: usize) {
        self.limit_exceeded = Some(limit);
        self.detail = Detail::Bounded { keep };
        self.touched = Vec::new();
        self.pending_after = 0;
        let parts = self
            .prepared_pending
            .values_mut()
            .flat_map(|p| p.iter_mut());
        for p in self.slots.iter_mut().chain(parts) {
            p.tuples = Vec::new();
            p.after_kept = 0;
        }
        if let Some(g) = &mut self.gathered {
            g.tuples = Vec::new();
        }
        if self.lost.len() > keep {
            let mut rest = self.lost.split_off(keep);
            let from = rest.len().saturating_sub(keep);
            self.tail = rest.drain(from..).collect();
            self.tail_head = 0;
        }
        self.aborts.truncate(keep);
        self.lost_ddl.truncate(keep);
    }

    /// Whether a list bounded by the detail has room for one more (the first `keep`).
    fn room(&self, len: usize) -> bool {
        match self.detail {
            Detail::Full => true,
            Detail::Bounded { keep } => len < keep,
        }
    }

    /// The pending changes of `xid`, made empty when it had none.
    fn slot(&mut self, xid: u32) -> &mut Pending {
        if let Some((x, i)) = self.last_slot {
            if x == xid {
                return &mut self.slots[i as usize];
            }
        }
        let (slots, free) = (&mut self.slots, &mut self.free_slots);
        let i = self.pending.get_or_insert(xid, || match free.pop() {
            Some(i) => i,
            None => {
                slots.push(Pending::default());
                (slots.len() - 1) as u32
            }
        });
        self.last_slot = Some((xid, i));
        &mut self.slots[i as usize]
    }

    /// Removes `xid`'s pending changes: handed to `f`, then emptied for reuse.
    fn release(&mut self, xid: u32, f: impl FnOnce(&mut Pending)) {
        if self.last_slot.is_some_and(|(x, _)| x == xid) {
            self.last_slot = None;
        }
        if let Some(i) = self.pending.remove(xid) {
            let p = &mut self.slots[i as usize];
            f(p);
            // Its tuples are dropped, or moved to the lost ones (`touched`, counted there).
            let after = p.after_kept;
            p.reset();
            self.pending_after = self.pending_after.saturating_sub(after);
            self.free_slots.push(i);
        }
    }

    fn take_pending(&mut self, xids: impl IntoIterator<Item = Xid>) -> Parts {
        let mut parts = Parts::new();
        for x in xids {
            self.release(x.0, |p| parts.push(std::mem::take(p)));
        }
        parts
    }

    /// Accounts one record (records must come in WAL order).
    pub fn add(&mut self, rec: &DecodedRecord) -> Result<(), WalError> {
        self.add_observed(rec, &mut |_| {})
    }

    /// [`Self::add`], handing each lost commit to `on_lost` as it is found (in WAL order).
    pub fn add_observed(
        &mut self,
        rec: &DecodedRecord,
        on_lost: &mut dyn FnMut(&LostCommit),
    ) -> Result<(), WalError> {
        match self.take_record(rec)? {
            Taken::Done => {}
            Taken::Xact => {
                self.account_xact(rec, |_| false, on_lost)?;
            }
            Taken::Running(xids) => self.add_first_running(xids),
        }
        Ok(())
    }

    /// Parses the transaction record `rec` and accounts it, unless `refuse` refuses its kind
    /// (then `Ok(false)`).
    #[inline] // once per commit, from two callers
    fn account_xact(
        &mut self,
        rec: &DecodedRecord,
        refuse: impl Fn(XactKind) -> bool,
        on_lost: &mut dyn FnMut(&LostCommit),
    ) -> Result<bool, WalError> {
        let mut x = self
            .xact
            .take()
            .unwrap_or_else(|| Box::new(XactRecord::empty()));
        let taken = match x.parse_from(rec) {
            Ok(true) if refuse(x.kind) => Ok(false),
            Ok(true) => {
                self.add_xact(&mut x, on_lost);
                Ok(true)
            }
            Ok(false) => Ok(true),
            Err(e) => Err(e),
        };
        self.xact = Some(x);
        taken
    }

    /// Accounts what `rec` holds on its own (heap changes, sequence advances, statistics);
    /// what must be accounted in WAL order with the other transactions' records is returned.
    #[inline] // once per record, from two callers
    fn take_record(&mut self, rec: &DecodedRecord) -> Result<Taken, WalError> {
        self.scan_start.get_or_insert(rec.lsn);
        self.end_lsn = Some(rec.end_lsn);
        let after = rec.lsn >= self.switchpoint;
        if after {
            self.stats.add(rec);
        }
        // Each interpreter reads its own rmgr's records only: the others are not called.
        match rec.rmid {
            RM_HEAP_ID | RM_HEAP2_ID => {
                // A Heap2 record other than MULTI_INSERT and LOCK_UPDATED changes no tuple (its
                // parse reads nothing and cannot fail), and one with no xid belongs to no
                // transaction: nothing to account (pruning, a quarter of pgbench's records).
                let no_tuple =
                    rec.rmid == RM_HEAP2_ID && !matches!(rec.info & XLOG_HEAP_OPMASK, 0x50 | 0x60);
                if no_tuple && rec.xid.0 == 0 {
                    return Ok(Taken::Done);
                }
                if let Some(h) = HeapRecord::parse(rec)? {
                    self.add_heap(rec, h);
                }
                return Ok(Taken::Done);
            }
            RM_XACT_ID => return Ok(Taken::Xact),
            _ => {}
        }
        if self.first_running.is_none() {
            if let Some(r) = RunningXacts::parse(rec)? {
                return Ok(Taken::Running(r.xids));
            }
        }
        if after {
            if let Some(s) = SeqRecord::parse(rec)? {
                // A transaction that only called nextval names its database through it.
                if rec.xid.0 != 0 && s.rel.db != 0 {
                    let p = self.slot(rec.xid.0);
                    p.db.get_or_insert(s.rel.db);
                }
                let e = self.seqs.entry(s.rel).or_insert(SequenceAdvance {
                    rel: s.rel,
                    records: 0,
                    last_logged_value: None,
                });
                e.records += 1;
                e.last_logged_value = s.last_value.or(e.last_logged_value);
            }
        }
        Ok(Taken::Done)
    }

    /// The first RUNNING_XACTS record's xids.
    fn add_first_running(&mut self, xids: Vec<Xid>) {
        if self.first_running.is_none() {
            self.first_running = Some(xids);
            self.note_running_lost();
        }
    }

    fn add_heap(&mut self, rec: &DecodedRecord, h: HeapRecord) {
        if rec.xid.0 == 0 {
            return;
        }
        let full = self.detail == Detail::Full;
        let before = rec.lsn < self.switchpoint;
        let mut kept = 0u64;
        let p = self.slot(rec.xid.0);
        p.last_lsn = rec.lsn;
        let Some(rel) = h.rel else {
            if let HeapChange::Truncate { db, rel_ids, .. } = &h.change {
                p.db.get_or_insert(*db);
                for r in rel_ids {
                    let loc = RelFileLocator::relation_oid(*db, *r);
                    p.catalog_change |= is_catalog(&loc);
                    p.counts(loc).truncates += 1;
                    p.before += u64::from(before);
                }
            }
            return;
        };
        if rel.db != 0 {
            p.db.get_or_insert(rel.db);
        }
        // The tuples the record changes (the new versions), how, and the old version.
        let one;
        let (op, tids, old): (TupleOp, &[Tid], Option<Tid>) = match &h.change {
            HeapChange::Insert { new, .. } => {
                one = [*new];
                (TupleOp::Insert, &one, None)
            }
            HeapChange::MultiInsert { new, .. } => (TupleOp::Insert, new, None),
            HeapChange::Delete { old, is_super, .. } => {
                one = [*old];
                // A speculative insertion's cleanup deletes nothing.
                (TupleOp::Delete, if *is_super { &[] } else { &one }, None)
            }
            HeapChange::Update { hot, old, new, .. } => {
                one = [*new];
                let op = if *hot {
                    TupleOp::HotUpdate
                } else {
                    TupleOp::Update
                };
                (op, &one, Some(*old))
            }
            HeapChange::Inplace { .. } => {
                if is_catalog(&rel) {
                    p.catalog_change = true;
                }
                return;
            }
            _ => return,
        };
        let n = tids.len() as u64;
        if n > 0 {
            let c = p.counts(rel);
            match op {
                TupleOp::Insert => c.inserts += n,
                TupleOp::Update => c.updates += n,
                TupleOp::HotUpdate => c.hot_updates += n,
                TupleOp::Delete => c.deletes += n,
            }
            p.before += n * u64::from(before);
            if full {
                if !before {
                    kept += n;
                    p.after_kept += n;
                }
                for &tid in tids {
                    p.tuples.push(TouchedTuple {
                        rel,
                        tid,
                        old,
                        op,
                        xid: rec.xid,
                        top_xid: rec.xid,
                        lsn: rec.lsn,
                    });
                }
            }
        }
        if is_catalog(&rel) {
            p.catalog_change = true;
        }
        self.pending_after += kept;
        self.check_tuple_limit();
    }

    fn add_xact(&mut self, x: &mut XactRecord, on_lost: &mut dyn FnMut(&LostCommit)) {
        let after = x.lsn >= self.switchpoint;
        match x.kind {
            XactKind::Commit | XactKind::CommitPrepared => {
                let mut g = self.gathered.take().unwrap_or_default();
                g.reset();
                // Accounting a range, a commit of several xids keeps each one's changes.
                let mut parts = Vec::new();
                let keep_parts = self.log.is_some() && !x.subxids.is_empty();
                for xid in xids_of(x) {
                    self.release(xid.0, |p| {
                        if keep_parts {
                            parts.push((xid.0, p.clone()));
                        }
                        g.absorb_taking(p)
                    });
                }
                if let Some(log) = &mut self.log {
                    log.commit(x, after.then_some(self.lost_count), parts);
                }
                let mut gid = x.gid.take();
                if x.kind == XactKind::CommitPrepared {
                    // The GID is in COMMIT PREPARED only at wal_level=logical; PREPARE has it.
                    match self.prepared.remove(&x.top_xid.0) {
                        Some(p) => gid = gid.or(p.gid),
                        None if after => self.prepared_before_scan.push(x.top_xid),
                        None => {}
                    }
                    for mut p in self
                        .prepared_pending
                        .remove(&x.top_xid.0)
                        .unwrap_or_default()
                    {
                        g.absorb_taking(&mut p);
                    }
                }
                if after {
                    self.record_lost(x, gid, &mut g, on_lost);
                }
                self.gathered = Some(g);
            }
            XactKind::Abort | XactKind::AbortPrepared => {
                for xid in xids_of(x) {
                    self.release(xid.0, |_| {});
                }
                if let Some(log) = &mut self.log {
                    log.commit(x, None, Vec::new());
                }
                if x.kind == XactKind::AbortPrepared {
                    self.prepared.remove(&x.top_xid.0);
                    self.prepared_pending.remove(&x.top_xid.0);
                }
                if after {
                    self.abort_count += 1;
                    if self.room(self.aborts.len()) {
                        self.aborts.push(AbortAfter {
                            xid: x.top_xid,
                            lsn: x.lsn,
                            prepared: x.kind == XactKind::AbortPrepared,
                            time: x.commit_time,
                        });
                    }
                }
            }
            XactKind::Prepare => {
                let parts = self.take_pending(xids_of(x));
                self.prepared_pending.insert(x.top_xid.0, parts);
                self.prepared.insert(
                    x.top_xid.0,
                    InDoubt {
                        xid: x.top_xid,
                        gid: x.gid.clone(),
                        lsn: x.lsn,
                        prepared_at: x.commit_time,
                        db_id: x.db_id,
                    },
                );
            }
            XactKind::Assignment => {
                // Move subxact changes under the top-level xid so commit finds them either way.
                for s in &x.subxids {
                    let mut moved = None;
                    self.release(s.0, |p| moved = Some(std::mem::take(p)));
                    if let Some(p) = moved {
                        self.slot(x.top_xid.0).merge(p);
                    }
                }
            }
            XactKind::Invalidation => {}
        }
    }

    fn record_lost(
        &mut self,
        x: &mut XactRecord,
        gid: Option<String>,
        g: &mut Gathered,
        on_lost: &mut dyn FnMut(&LostCommit),
    ) {
        let mut counts = ChangeCounts::default();
        for (rel, c) in &g.per_rel {
            self.tables.entry(*rel).or_default().add(c);
            counts.add(c);
        }
        if self.detail == Detail::Full {
            for mut t in g.tuples.drain(..) {
                t.top_xid = x.top_xid;
                self.touched.push(t);
            }
            self.check_tuple_limit();
        } else {
            g.tuples.clear();
        }
        let db = x.db_id.or(g.db);
        // Touched tuples are counted even when they are not kept.
        self.touched_count += counts.total();
        let ddl = x.has_invalidations || !x.dropped_rels.is_empty() || g.catalog;
        self.lost_count += 1;
        self.lost_xids.insert(x.top_xid.0);
        for s in &x.subxids {
            self.lost_xids.insert(s.0);
        }
        if !self.running_lost {
            // Only this commit's xids can have made it so since the last check.
            if let Some(r) = &self.first_running {
                self.running_lost = std::iter::once(x.top_xid)
                    .chain(x.subxids.iter().copied())
                    .any(|x| r.contains(&x));
            }
        }
        let d = match self.databases.iter().position(|d| d.db_id == db) {
            Some(i) => &mut self.databases[i],
            None => {
                self.databases.push(DatabaseChanges {
                    db_id: db,
                    commits: 0,
                    counts: ChangeCounts::default(),
                });
                self.databases.last_mut().expect("just pushed")
            }
        };
        d.commits += 1;
        d.counts.add(&counts);
        if let Some(t) = x.commit_time {
            let minute = t.0.div_euclid(MINUTE_US);
            match &mut self.minute_run {
                Some((m, n)) if *m == minute => *n += 1,
                run => {
                    if let Some((m, n)) = run.replace((minute, 1)) {
                        *self.minutes.entry(m).or_default() += n;
                    }
                }
            }
            self.first_time = Some(self.first_time.map_or(t, |f| f.min(t)));
            self.last_time = Some(self.last_time.map_or(t, |l| l.max(t)));
        }
        if ddl {
            self.lost_ddl_count += 1;
            if self.room(self.lost_ddl.len()) {
                self.lost_ddl.push(x.top_xid);
                if let Some(log) = &mut self.log {
                    log.ddl_seqs.push(self.lost_count - 1);
                }
            }
        }
        if let Some(log) = &mut self.log {
            log.lost.push(log::LostInfo {
                db,
                has_db_id: x.db_id.is_some(),
                counts,
                ddl,
                before: g.before,
            });
        }
        let commit = self.commit_slot();
        commit.top_xid = x.top_xid;
        // Moved, not copied: the record and the gathered changes are not read again.
        std::mem::swap(&mut commit.subxids, &mut x.subxids);
        commit.lsn = x.lsn;
        commit.commit_time = x.commit_time;
        commit.db_id = db;
        commit.prepared = x.kind == XactKind::CommitPrepared;
        commit.gid = gid;
        commit.has_invalidations = x.has_invalidations;
        commit.ddl = ddl;
        commit.changes = counts;
        std::mem::swap(&mut commit.per_rel, &mut g.per_rel);
        std::mem::swap(&mut commit.dropped_rels, &mut x.dropped_rels);
        commit.changes_before_switchpoint = g.before;
        on_lost(commit);
    }

    /// The lost commit to write the next one into: in place, in the list that keeps it (over
    /// the oldest of the last `keep` once they are full), so that nothing is moved or allocated
    /// per commit.
    fn commit_slot(&mut self) -> &mut LostCommit {
        match self.detail {
            Detail::Bounded { keep } if self.lost.len() >= keep => {
                if keep == 0 {
                    self.spare.get_or_insert_with(blank_commit)
                } else if self.tail.len() < keep {
                    self.tail.push(blank_commit());
                    self.tail.last_mut().expect("just pushed")
                } else {
                    let i = self.tail_head;
                    // Not `% keep`: a division per commit.
                    self.tail_head = if i + 1 == keep { 0 } else { i + 1 };
                    &mut self.tail[i]
                }
            }
            _ => {
                self.lost.push(blank_commit());
                self.lost.last_mut().expect("just pushed")
            }
        }
    }

    /// Finishes the accounting; `end` is how decoding ended, if known.
    pub fn finish(mut self, end: Option<EndOfWal>) -> LostTransactions {
        let sp = self.switchpoint;
        if let Some((m, n)) = self.minute_run.take() {
            *self.minutes.entry(m).or_default() += n;
        }
        self.databases.sort_by_key(|d| d.db_id);
        let mut tables: Vec<(RelFileLocator, ChangeCounts)> = self.tables.into_iter().collect();
        tables.sort_by_key(|(rel, _)| *rel);
        let lost_xids = self.lost_xids;
        let running_at_scan_start = self
            .first_running
            .unwrap_or_default()
            .into_iter()
            .filter(|x| lost_xids.contains(&x.0))
            .collect();
        let mut in_flight: Vec<Xid> = self
            .pending
            .iter()
            .filter(|(_, i)| self.slots[*i as usize].last_lsn >= sp)
            .map(|(x, _)| Xid(x))
            .collect();
        in_flight.sort();
        let mut in_doubt: Vec<InDoubt> = self
            .prepared
            .into_values()
            .filter(|p| p.lsn >= sp)
            .collect();
        in_doubt.sort_by_key(|p| p.lsn);
        let mut lost_commits = self.lost;
        let mut tail = self.tail;
        tail.rotate_left(self.tail_head);
        lost_commits.extend(tail);
        LostTransactions {
            switchpoint: sp,
            scan_start: self.scan_start,
            end_lsn: self.end_lsn,
            end_of_wal: end,
            wal_bytes_after_switchpoint: self.end_lsn.map_or(0, |e| e.saturating_bytes_since(sp)),
            first_lost_commit_time: self.first_time,
            last_lost_commit_time: self.last_time,
            lost_ddl: self.lost_ddl,
            lost_ddl_count: self.lost_ddl_count,
            lost_commits_omitted: self.lost_count - lost_commits.len() as u64,
            lost_commit_count: self.lost_count,
            lost_commits,
            lost_xids,
            databases: self.databases,
            commits_per_minute: self
                .minutes
                .into_iter()
                .map(|(m, commits)| MinuteCommits {
                    minute: PgTimestamp(m * MINUTE_US),
                    commits,
                })
                .collect(),
            detail: self.detail,
            aborts_after_switchpoint: self.aborts,
            abort_count: self.abort_count,
            in_doubt,
            in_flight,
            tables: tables
                .into_iter()
                .map(|(rel, counts)| TableChanges {
                    rel,
                    catalog: is_catalog(&rel),
                    counts,
                })
                .collect(),
            sequences: self.seqs.into_values().collect(),
            touched_tuples: self.touched,
            touched_tuple_count: self.touched_count,
            tuple_limit_exceeded: self.limit_exceeded,
            running_at_scan_start,
            prepared_before_scan: self.prepared_before_scan,
            wal_stats_after_switchpoint: self.stats,
        }
    }
}

/// A transaction record's top-level xid and its subtransactions'.
fn xids_of(x: &XactRecord) -> impl Iterator<Item = Xid> + '_ {
    std::iter::once(x.top_xid).chain(x.subxids.iter().copied())
}

/// Accounts all `records` (in WAL order) for a failover at `switchpoint`.
pub fn account<I>(
    records: I,
    switchpoint: Lsn,
    end: Option<EndOfWal>,
) -> Result<LostTransactions, WalError>
where
    I: IntoIterator<Item = DecodedRecord>,
{
    let mut a = Accountant::new(switchpoint);
    for r in records {
        a.add(&r)?;
    }
    Ok(a.finish(end))
}
