//! Accounting one range of the WAL on the thread that decoded it, and adding that to the
//! accounting in WAL order: exactly what accounting the records one by one gives.
//!
//! A [`RangeAccountant`] is an [`Accountant`] that starts at a range's first record, as if no
//! record came before. Everything it finds is exact except where a record of the range meets
//! what came before it, and [`Accountant::add_range`] corrects those places before it adds the
//! range's figures to its own:
//! - a commit or abort of an xid with changes pending from earlier ranges: the range saw only
//!   the changes it holds, so the earlier ones are gathered into that commit now, with the
//!   same code and in the same order as one pass would (earlier changes first), and every
//!   figure the commit fed (its counts, its tables, its database, whether it is DDL, the lost
//!   commit kept) is corrected; the range's log (module `log`) keeps what that needs;
//! - the first RUNNING_XACTS record: the range's first counts only when no earlier range had
//!   one;
//! - changes still pending at the range's end are added to the xids' pending changes.
//!
//! Records that meet earlier state in ways not corrected here (PREPARE, COMMIT and ROLLBACK
//! PREPARED, subtransaction assignments: rare) make the range refuse: it is then read on the
//! caller's thread, one record at a time.

use super::log::{RangeLog, Resolved, Spare};
use super::pending::{Gathered, Pending};
use super::{Accountant, Taken};
use crate::lsn::{Lsn, Xid};
use crate::wal::lost::{ChangeCounts, DatabaseChanges, Detail, LostCommit, SequenceAdvance};
use crate::wal::record::DecodedRecord;
use crate::wal::xact::XactKind;

/// Accounts one range of records ([`Self::add`] in WAL order, then [`Self::finish`]).
#[derive(Debug)]
pub struct RangeAccountant {
    acct: Accountant,
}

/// What a range yields, for [`Accountant::add_range`].
#[derive(Debug)]
pub struct RangeAccount {
    acct: Accountant,
}

impl RangeAccountant {
    /// A range accountant for a failover at `switchpoint` that keeps as many lost commits at
    /// each end as `detail` keeps (every one with [`Detail::Full`], but no tuples), in `spare`'s
    /// memory ([`Accountant::add_range`] returns it). Ranges do not stream every lost commit
    /// (a list file): a scan that writes one accounts record by record.
    pub fn new(switchpoint: Lsn, detail: Detail, spare: Spare) -> RangeAccountant {
        let detail = match detail {
            Detail::Full => Detail::Bounded { keep: usize::MAX },
            d => d,
        };
        let mut acct =
            Accountant::with_detail_in(switchpoint, detail, spare.stats.unwrap_or_default());
        acct.log = Some(spare.log.unwrap_or_default());
        RangeAccountant { acct }
    }

    /// Accounts one record of the range (records must come in WAL order); `Ok(false)` when
    /// the record must be accounted one by one with those before it (the range refuses).
    #[inline(always)] // once per record, into the worker's loop: a call's cost per record
    pub fn add(&mut self, rec: &DecodedRecord) -> Result<bool, crate::wal::WalError> {
        match self.acct.take_record(rec)? {
            Taken::Done => {}
            Taken::Xact => {
                // Records that meet earlier state in ways `add_range` does not correct.
                let refuse = |k| {
                    matches!(
                        k,
                        XactKind::Prepare
                            | XactKind::CommitPrepared
                            | XactKind::AbortPrepared
                            | XactKind::Assignment
                    )
                };
                if !self.acct.account_xact(rec, refuse, &mut |_| {})? {
                    return Ok(false);
                }
            }
            Taken::Running(xids) => self.acct.add_first_running(xids),
        }
        Ok(true)
    }

    /// What the range yielded.
    pub fn finish(self) -> RangeAccount {
        RangeAccount { acct: self.acct }
    }
}

impl Accountant {
    /// Accounts a range ([`RangeAccountant`]) exactly as [`Self::add`] would account its
    /// records one by one. Ranges must come in WAL order, after any records added before.
    /// Returns the range's memory, to account another range in.
    pub fn add_range(&mut self, r: RangeAccount) -> Spare {
        let mut part = r.acct;
        let Some(mut log) = part.log.take() else {
            return Spare::default();
        };
        // Only the commits and aborts of xids pending here have anything to correct: those
        // outside the pending xids' bounds are passed over without a look-up.
        if let Some((lo, hi)) = self.pending.bounds() {
            let within = |x: &u32| (lo..=hi).contains(x);
            for i in 0..log.resolved.len() {
                let res = log.resolved[i];
                let (at, n) = (res.sub.0 as usize, res.sub.1 as usize);
                let subs = log.subxids.get(at..at + n).unwrap_or_default();
                if within(&res.top) || subs.iter().any(within) {
                    self.correct(&mut part, &mut log, &res);
                }
            }
        }
        self.absorb(&mut part);
        log.clear();
        Spare {
            stats: Some(part.stats),
            log: Some(log),
        }
    }

    /// Gathers the changes pending here for a commit or abort of the range `part` into it, and
    /// corrects every figure of `part` they change.
    fn correct(&mut self, part: &mut Accountant, log: &mut RangeLog, res: &Resolved) {
        let (at, n) = (res.sub.0 as usize, res.sub.1 as usize);
        let subs = log.subxids.get(at..at + n).unwrap_or_default();
        let xids = std::iter::once(res.top).chain(subs.iter().copied());
        if !xids.clone().any(|x| self.pending.contains(x)) {
            return;
        }
        let mut earlier: Vec<(u32, Pending)> = Vec::new();
        for x in xids.clone() {
            if let Some(p) = self.take_pending_of(x) {
                earlier.push((x, p));
            }
        }
        // An abort, or a commit before the switchpoint: nothing to correct but the pending.
        let Some(seq) = res.seq else { return };
        let Some(info) = usize::try_from(seq)
            .ok()
            .and_then(|i| log.lost.get(i))
            .copied()
        else {
            return;
        };
        // The commit gathered again: each xid's earlier changes, then its changes in the range.
        let kept = part.kept_commit(seq);
        let mut g = Gathered::default();
        match res.parts {
            Some((pa, pn)) => {
                let mut local: Vec<(u32, Pending)> = log
                    .parts
                    .get(pa as usize..(pa + pn) as usize)
                    .unwrap_or_default()
                    .to_vec();
                for x in xids {
                    if let Some((_, p)) = earlier.iter_mut().find(|(e, _)| *e == x) {
                        g.absorb(p);
                    }
                    if let Some((_, p)) = local.iter_mut().find(|(l, _)| *l == x) {
                        g.absorb(p);
                    }
                }
            }
            None => {
                for (_, p) in earlier.iter_mut() {
                    g.absorb(p);
                }
                // One xid: the range's gathered changes are that xid's. Only a kept commit
                // needs them by relation (their order after the earlier ones'); the figures
                // below add the earlier changes' counts to the range's.
                if let Some(c) = kept {
                    let mut local = Pending {
                        rels: c.per_rel.to_vec(),
                        ..Pending::default()
                    };
                    g.absorb(&mut local);
                }
            }
        }
        let mut earlier_counts = ChangeCounts::default();
        for (rel, c) in earlier.iter().flat_map(|(_, p)| p.rels.iter()) {
            part.tables.entry(*rel).or_default().add(c);
            earlier_counts.add(c);
        }
        let mut counts = info.counts;
        counts.add(&earlier_counts);
        part.touched_count += earlier_counts.total();
        let before = info.before + earlier.iter().map(|(_, p)| p.before).sum::<u64>();
        let earlier_catalog = earlier.iter().any(|(_, p)| p.catalog_change);
        let ddl = info.ddl || earlier_catalog;
        let db = if info.has_db_id {
            info.db
        } else if res.parts.is_some() {
            g.db
        } else {
            earlier.iter().find_map(|(_, p)| p.db).or(info.db)
        };
        // The database's figures.
        if db == info.db {
            if let Some(d) = part.databases.iter_mut().find(|d| d.db_id == db) {
                d.counts.add(&earlier_counts);
            }
        } else {
            if let Some(i) = part.databases.iter().position(|d| d.db_id == info.db) {
                let d = &mut part.databases[i];
                d.commits -= 1;
                d.counts.take(&info.counts);
                if d.commits == 0 {
                    part.databases.remove(i);
                }
            }
            match part.databases.iter_mut().find(|d| d.db_id == db) {
                Some(d) => {
                    d.commits += 1;
                    d.counts.add(&counts);
                }
                None => part.databases.push(DatabaseChanges {
                    db_id: db,
                    commits: 1,
                    counts,
                }),
            }
        }
        if ddl && !info.ddl {
            part.lost_ddl_count += 1;
            let at = log.ddl_seqs.partition_point(|s| *s < seq);
            if part.room(at) {
                part.lost_ddl.insert(at, Xid(res.top));
                log.ddl_seqs.insert(at, seq);
                if let Detail::Bounded { keep } = part.detail {
                    part.lost_ddl.truncate(keep);
                    log.ddl_seqs.truncate(keep);
                }
            }
        }
        if let Some(c) = part.kept_commit_mut(seq) {
            c.changes = counts;
            c.per_rel = std::mem::take(&mut g.per_rel);
            c.db_id = db;
            c.ddl = ddl;
            c.changes_before_switchpoint = before;
        }
    }

    /// Removes `xid`'s pending changes and returns them, if it has any.
    fn take_pending_of(&mut self, xid: u32) -> Option<Pending> {
        let mut taken = None;
        self.release(xid, |p| taken = Some(std::mem::take(p)));
        taken
    }

    /// Where the lost commit at `seq` (its index among all lost commits) is kept, if it is:
    /// in `lost` (`false`) or in the `tail` ring (`true`), at that index.
    fn kept_at(&self, seq: u64) -> Option<(bool, usize)> {
        let i = usize::try_from(seq).ok()?;
        if i < self.lost.len() {
            return Some((false, i));
        }
        let n = self.tail.len();
        let first = usize::try_from(self.lost_count).ok()?.checked_sub(n)?;
        let k = i.checked_sub(first)?;
        (k < n).then(|| (true, (self.tail_head + k) % n))
    }

    /// The lost commit at `seq`, when it is kept.
    fn kept_commit(&self, seq: u64) -> Option<&LostCommit> {
        match self.kept_at(seq)? {
            (false, i) => self.lost.get(i),
            (true, i) => self.tail.get(i),
        }
    }

    fn kept_commit_mut(&mut self, seq: u64) -> Option<&mut LostCommit> {
        match self.kept_at(seq)? {
            (false, i) => self.lost.get_mut(i),
            (true, i) => self.tail.get_mut(i),
        }
    }

    /// Adds a corrected range's figures to these.
    fn absorb(&mut self, part: &mut Accountant) {
        if let Some(first) = part.scan_start {
            self.scan_start.get_or_insert(first);
        }
        if part.end_lsn.is_some() {
            self.end_lsn = part.end_lsn;
        }
        self.stats.merge_from(&mut part.stats);
        for (rel, s) in std::mem::take(&mut part.seqs) {
            let e = self.seqs.entry(rel).or_insert(SequenceAdvance {
                rel,
                records: 0,
                last_logged_value: None,
            });
            e.records += s.records;
            e.last_logged_value = s.last_logged_value.or(e.last_logged_value);
        }
        if self.first_running.is_none() {
            self.first_running = part.first_running.take();
        }
        // The lost commits, in order: the first ones the range kept, then its last ones.
        let mut tail = std::mem::take(&mut part.tail);
        let head = part.tail_head.min(tail.len());
        tail.rotate_left(head);
        for c in std::mem::take(&mut part.lost).into_iter().chain(tail) {
            *self.commit_slot() = c;
        }
        self.lost_count += part.lost_count;
        self.lost_xids
            .union_with(std::mem::take(&mut part.lost_xids));
        if !self.running_lost {
            self.note_running_lost();
        }
        for d in part.databases.drain(..) {
            match self.databases.iter_mut().find(|e| e.db_id == d.db_id) {
                Some(e) => {
                    e.commits += d.commits;
                    e.counts.add(&d.counts);
                }
                None => self.databases.push(d),
            }
        }
        if let Some((m, n)) = part.minute_run.take() {
            *part.minutes.entry(m).or_default() += n;
        }
        for (m, n) in std::mem::take(&mut part.minutes) {
            *self.minutes.entry(m).or_default() += n;
        }
        self.first_time = match (self.first_time, part.first_time) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_time = match (self.last_time, part.last_time) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for x in part.lost_ddl.drain(..) {
            if self.room(self.lost_ddl.len()) {
                self.lost_ddl.push(x);
            }
        }
        self.lost_ddl_count += part.lost_ddl_count;
        for (rel, c) in part.tables.drain() {
            self.tables.entry(rel).or_default().add(&c);
        }
        self.touched_count += part.touched_count;
        for a in part.aborts.drain(..) {
            if self.room(self.aborts.len()) {
                self.aborts.push(a);
            }
        }
        self.abort_count += part.abort_count;
        // Changes still pending: after those pending here.
        let left: Vec<(u32, u32)> = part.pending.iter().collect();
        for (xid, i) in left {
            if let Some(p) = part.slots.get_mut(i as usize) {
                let p = std::mem::take(p);
                self.slot(xid).merge(p);
            }
        }
    }
}

#[cfg(test)]
mod tests;
