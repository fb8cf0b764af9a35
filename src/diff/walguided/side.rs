//! Each side's post-switchpoint heap changes (SideWal), and the source of the new side's.

use std::collections::{BTreeSet, HashMap, HashSet};

use futures_util::future::BoxFuture;

use crate::evidence::newside::NewSideSource;
use crate::lsn::Lsn;
use crate::wal::accounting::{LostTransactions, TouchedTuple};
use crate::wal::decoder::EndReason;
use crate::wal::RelFileLocator;

use super::reads::{XidSnapshot, PAGE_HEADER_SLACK};

/// The post-switchpoint heap changes of one node's committed transactions.
#[derive(Clone, Debug, Default)]
pub struct SideWal {
    /// Every heap tuple written or deleted by a commit after the switchpoint (the lost commits
    /// on the former primary, the post-failover commits on the new one).
    pub touched: Vec<TouchedTuple>,
    /// Top-level or subtransaction xid → top-level xid, for those commits.
    pub top_of: HashMap<u32, u32>,
    /// Every xid whose commit or abort was decoded after the switchpoint (subtransactions of
    /// commits included).
    pub ended: HashSet<u32>,
    /// Relfilenodes created after the switchpoint (SMGR CREATE).
    pub created: BTreeSet<RelFileLocator>,
    /// (database OID, relation OID) truncated by those commits (heap TRUNCATE records).
    pub truncated: BTreeSet<(u32, u32)>,
    /// The end of the last record decoded.
    pub decoded_to: Option<Lsn>,
    /// Why this side's WAL cannot be trusted to hold every change, when it cannot.
    pub incomplete: Option<String>,
}

impl SideWal {
    /// From one timeline's accounting and the relfilenodes its scan saw created.
    pub fn from_accounting(lost: &LostTransactions, created: BTreeSet<RelFileLocator>) -> SideWal {
        SideWal::build(lost, created, true)
    }

    /// `running_matters`: whether transactions already running where decoding began may have
    /// made changes before it (not when decoding began at the new timeline's switchpoint:
    /// nothing running there commits on the new timeline but prepared transactions, which
    /// [`crate::evidence::scan::Scan::prepared_before_scan`] covers).
    pub(super) fn build(
        lost: &LostTransactions,
        created: BTreeSet<RelFileLocator>,
        running_matters: bool,
    ) -> SideWal {
        let mut top_of = HashMap::new();
        for c in &lost.lost_commits {
            top_of.insert(c.top_xid.0, c.top_xid.0);
            for s in &c.subxids {
                top_of.insert(s.0, c.top_xid.0);
            }
        }
        for t in &lost.touched_tuples {
            top_of.insert(t.xid.0, t.top_xid.0);
        }
        let mut ended: HashSet<u32> = top_of.keys().copied().collect();
        ended.extend(lost.aborts_after_switchpoint.iter().map(|a| a.xid.0));
        let truncated = lost
            .tables
            .iter()
            .filter(|t| t.counts.truncates > 0)
            .map(|t| (t.rel.db, t.rel.rel))
            .collect();
        let mut incomplete = None;
        if running_matters && !lost.running_at_scan_start.is_empty() {
            incomplete = Some(format!(
                "{} committed transaction(s) were already running where decoding began, so \
                 their earlier changes were not read",
                lost.running_at_scan_start.len()
            ));
        }
        if let Some(e) = &lost.end_of_wal {
            if !e.reason.is_clean() {
                incomplete = Some(format!("decoding stopped early: {e}"));
            }
        }
        SideWal {
            touched: lost.touched_tuples.clone(),
            top_of,
            ended,
            created,
            truncated,
            decoded_to: lost.end_lsn,
            incomplete,
        }
    }

    /// Marks the side incomplete when transactions committed after the switchpoint were
    /// prepared before the decoded range (their changes were not read).
    pub fn with_prepared_before_scan(mut self, xids: &[crate::lsn::Xid]) -> SideWal {
        if let Some(x) = xids.first() {
            self.incomplete = Some(format!(
                "{} transaction(s) (xid {x}{}) committed after the switchpoint were prepared \
                 before the WAL that was decoded, so their changes were not read",
                xids.len(),
                if xids.len() > 1 { ", ..." } else { "" }
            ));
        }
        self
    }

    /// A side whose WAL could not be read: every table falls back.
    pub fn unreadable(why: impl Into<String>) -> SideWal {
        SideWal {
            incomplete: Some(why.into()),
            ..SideWal::default()
        }
    }

    /// Whether every xid from `first` (the new primary's first after the promotion) up to the
    /// snapshot's `xmax`, except those it saw running, ended in the decoded WAL: then every
    /// commit the snapshot sees was decoded, whatever WAL is still unflushed. `false` when that
    /// cannot be told cheaply (more than a million xids to check).
    pub(super) fn ended_all(&self, first: u32, snap: &XidSnapshot) -> bool {
        let n = snap.xmax.wrapping_sub(first) as i32;
        if !(0..=1_000_000).contains(&n) {
            return false;
        }
        (0..n as u32)
            .map(|i| first.wrapping_add(i))
            .filter(|x| *x >= 3 && !snap.xip.contains(x))
            .all(|x| self.ended.contains(&x))
    }

    /// Whether decoding reached `end` (an insert or replay position).
    pub(super) fn covers(&self, end: Lsn) -> bool {
        let Some(d) = self.decoded_to else {
            return false;
        };
        let d = d.align8();
        d >= end || (end.0 % 8192 <= PAGE_HEADER_SLACK && end.0 - d.0 <= PAGE_HEADER_SLACK)
    }
}

/// Reads the new primary's WAL since the switchpoint up to a position (the comparison asks
/// once per database, with the position read inside that database's snapshot).
pub trait NewSideWal: Sync + Send {
    /// The post-failover changes up to at least `end` (or why they could not be read).
    fn read_to<'a>(&'a self, end: Lsn) -> BoxFuture<'a, SideWal>;
}

impl NewSideWal for SideWal {
    fn read_to<'a>(&'a self, _end: Lsn) -> BoxFuture<'a, SideWal> {
        Box::pin(async move { self.clone() })
    }
}

impl NewSideWal for NewSideSource {
    fn read_to<'a>(&'a self, end: Lsn) -> BoxFuture<'a, SideWal> {
        Box::pin(async move {
            match self.scan_to(end).await {
                Ok(s) => {
                    let running_matters = s.start < self.switchpoint;
                    let mut side =
                        SideWal::build(&s.lost, s.created_after_switchpoint, running_matters);
                    // `end` is a flush position, which may cut the last record in two: that
                    // record was not flushed, so no commit the snapshot sees is in it.
                    let cut = s.lost.end_of_wal.as_ref().is_some_and(|e| {
                        e.reason
                            == EndReason::EndOfInput {
                                partial_record: true,
                            }
                            && e.lsn < end
                    });
                    let running = running_matters && !s.lost.running_at_scan_start.is_empty();
                    if cut && !running {
                        side.incomplete = None;
                        side.decoded_to = Some(end);
                    }
                    side.with_prepared_before_scan(&s.prepared_before_scan)
                }
                Err(e) => SideWal::unreadable(format!("its WAL could not be read: {e}")),
            }
        })
    }
}
