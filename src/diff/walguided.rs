//! The WAL-guided row diff: compare only the rows whose tuples either node's WAL touched after
//! the switchpoint, so the cost follows the size of the loss, not the size of the database.
//!
//! Up to the switchpoint both nodes were one physical copy, so every row that differs was
//! written or deleted after it on one side or the other. The former side's tuples come from
//! the lost commits ([`crate::wal::accounting::LostTransactions::touched_tuples`]), the new
//! side's from the post-failover commits in the new primary's own WAL (read up to a position
//! taken after the comparison's snapshot, so every commit the snapshot sees is in it).
//!
//! Tids become primary keys through verified positional reads in the comparison's snapshot:
//! - a new version (insert, update, HOT update) written on side S at tid T: the row at T on S
//!   is kept only when its `xmin` belongs to a transaction the WAL says wrote T;
//! - an old version (update, delete) at tid T on side S: the row at T on the *other* side is
//!   the pre-switchpoint version both had when its `xmin` precedes the new primary's first
//!   xid; a later `xmin` must be one the other side's own WAL says wrote T.
//!
//! Anything else means a positional read cannot be trusted and the table falls back to the full
//! comparison, as do tables without a primary key, tables whose relfilenode changed or was
//! created after the switchpoint (TRUNCATE, VACUUM FULL, CLUSTER, rewriting ALTER TABLE), and
//! every table when either side's WAL is incomplete. The keys then go through the same
//! machinery as the full method (`Scope::Keys`), so their classification is identical.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::bisect::Key;
use super::catalog::TablePair;
use super::chunk::{
    query_err, Chunking, Decision, FullTablePlanner, Planner, Scope, TablePlan, WorkUnit,
};
use super::classify::{xid_follows_or_equals, Attribution};
use super::error::{DiffError, Node};
use super::hash::text_array;
use super::options::TablesMode;
use super::report::Method;
use crate::evidence::newside::NewSideSource;
use crate::lsn::Lsn;
use crate::pg::Session;
use crate::wal::accounting::{LostTransactions, TouchedTuple, TupleOp};
use crate::wal::decoder::EndReason;
use crate::wal::RelFileLocator;

/// Keys per `Scope::Keys` unit (one digest query and at most one row query per node).
const KEYS_PER_UNIT: usize = 500;
/// Tids per positional read.
const TIDS_PER_QUERY: usize = 10_000;
/// A page header: an insert position may sit this far past the end of the last record.
const PAGE_HEADER_SLACK: u64 = 40;

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
    fn build(
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
    fn ended_all(&self, first: u32, snap: &XidSnapshot) -> bool {
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
    fn covers(&self, end: Lsn) -> bool {
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

/// What one database's snapshot needs from both sides' WAL, decided once per database.
#[derive(Debug)]
struct DbState {
    new: Arc<SideWal>,
    problem: Option<String>,
}

/// Plans `Scope::Keys` units from both nodes' WAL; falls back per table to the full planner
/// (`--tables-mode auto`) or reports the table undecided (`--tables-mode wal`).
pub struct WalGuidedPlanner<'a> {
    mode: TablesMode,
    first_new_xid: Option<u32>,
    former: SideWal,
    new_source: Box<dyn NewSideWal + 'a>,
    full: FullTablePlanner,
    new_cache: tokio::sync::Mutex<Option<Arc<SideWal>>>,
    dbs: tokio::sync::Mutex<HashMap<String, Arc<DbState>>>,
    decisions: Mutex<HashMap<(String, String, String), Decision>>,
}

/// Where one table lives on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RelInfo {
    oid: u32,
    heap: RelFileLocator,
    toast: Option<RelFileLocator>,
}

/// A tid as `(block, offset)`.
type TidKey = (u32, u16);

fn tid_text(t: TidKey) -> String {
    format!("({},{})", t.0, t.1)
}

fn parse_tid(s: &str) -> Option<TidKey> {
    let (b, o) = s
        .trim()
        .strip_prefix('(')?
        .strip_suffix(')')?
        .split_once(',')?;
    Some((b.trim().parse().ok()?, o.trim().parse().ok()?))
}

fn side_name(node: Node) -> &'static str {
    match node {
        Node::New => "new primary",
        Node::Former => "former primary",
    }
}

impl<'a> WalGuidedPlanner<'a> {
    /// A planner for `mode` (`Auto` or `Wal`), with the former side's changes, a reader of the
    /// new side's WAL, the attribution (its first new xid is the switchpoint horizon) and the
    /// full planner to fall back to.
    pub fn new(
        mode: TablesMode,
        attribution: &Attribution,
        former: SideWal,
        new_source: Box<dyn NewSideWal + 'a>,
        full: FullTablePlanner,
    ) -> Self {
        WalGuidedPlanner {
            mode,
            first_new_xid: attribution.new_side_first_xid,
            former,
            new_source,
            full,
            new_cache: tokio::sync::Mutex::new(None),
            dbs: tokio::sync::Mutex::new(HashMap::new()),
            decisions: Mutex::new(HashMap::new()),
        }
    }

    fn record(&self, pair: &TablePair, d: Decision) {
        self.decisions.lock().expect("decisions lock").insert(
            (
                pair.database.clone(),
                pair.schema.clone(),
                pair.name.clone(),
            ),
            d,
        );
    }

    async fn plan_table(
        &self,
        index: usize,
        pair: &TablePair,
        new: &Session,
        former: &Session,
    ) -> Result<TablePlan, DiffError> {
        match self.guided(index, pair, new, former).await? {
            Ok((plan, keys)) => {
                self.record(
                    pair,
                    Decision {
                        method: Method::Wal,
                        fallback_reason: None,
                        keys,
                    },
                );
                Ok(plan)
            }
            Err(reason) if self.mode == TablesMode::Wal => {
                self.record(
                    pair,
                    Decision {
                        method: Method::None,
                        fallback_reason: Some(reason),
                        keys: 0,
                    },
                );
                Ok(TablePlan {
                    units: Vec::new(),
                    chunking: Chunking::Single,
                    estimated_rows: 0,
                    row_bytes: 100.0,
                })
            }
            Err(reason) => {
                self.record(
                    pair,
                    Decision {
                        method: Method::Full,
                        fallback_reason: Some(reason),
                        keys: 0,
                    },
                );
                self.full.plan(index, pair, new, former).await
            }
        }
    }

    /// Reads the WAL positions of both nodes inside this database's snapshots (once per
    /// database) and makes sure the new side's WAL has been decoded that far.
    async fn db_state(
        &self,
        pair: &TablePair,
        new: &Session,
        former: &Session,
    ) -> Result<Arc<DbState>, DiffError> {
        let mut dbs = self.dbs.lock().await;
        if let Some(s) = dbs.get(&pair.database) {
            return Ok(s.clone());
        }
        const FORMER_SQL: &str = "SELECT (CASE WHEN pg_catalog.pg_is_in_recovery() \
                                  THEN pg_catalog.pg_last_wal_replay_lsn() \
                                  ELSE pg_catalog.pg_current_wal_insert_lsn() END)::text";
        let t = std::time::Instant::now();
        let (n, f) = tokio::join!(new_side_positions(new), former.query_one(FORMER_SQL, &[]));
        crate::timing::record("wal plan: WAL positions", t);
        let new_pos =
            n.map_err(|e| query_err(Node::New, new, pair, "reading the WAL position", e))?;
        let f =
            f.map_err(|e| query_err(Node::Former, former, pair, "reading the WAL position", e))?;
        let former_end = f
            .get::<_, Option<String>>(0)
            .and_then(|s| s.parse::<Lsn>().ok());
        let mut problem = None;
        let side = match new_pos {
            None => {
                problem = Some("the new primary is in recovery: its WAL position moves".into());
                Arc::new(SideWal::default())
            }
            Some(pos) => {
                let mut end = pos.flush;
                let mut fresh = self.decoded_to(end).await;
                // WAL inserted but not flushed yet may hold asynchronous commits the snapshot
                // sees; they are on disk within three `wal_writer_delay`s. Wait for that only
                // when some xid the snapshot sees as finished did not end in the decoded WAL.
                let unflushed = pos.flush.0 + PAGE_HEADER_SLACK < pos.insert.0;
                let settled = fresh.incomplete.is_none()
                    && self
                        .first_new_xid
                        .is_some_and(|first| fresh.ended_all(first, &pos.snapshot));
                if unflushed && !settled {
                    let t = std::time::Instant::now();
                    end = wait_for_flush(new, &pos)
                        .await
                        .map_err(|e| query_err(Node::New, new, pair, "waiting for a flush", e))?;
                    crate::timing::record("wal plan: wait for the WAL writer", t);
                    fresh = self.decoded_to(end).await;
                }
                if let Some(why) = &fresh.incomplete {
                    problem = Some(format!("new primary: {why}"));
                } else if !fresh.covers(end) {
                    problem = Some(format!(
                        "the new primary's WAL was decoded to {}, short of {end}",
                        fresh.decoded_to.unwrap_or_default()
                    ));
                }
                fresh
            }
        };
        if problem.is_none() {
            if let Some(why) = &self.former.incomplete {
                problem = Some(format!("former primary: {why}"));
            } else if let Some(end) = former_end {
                if !self.former.covers(end) {
                    problem = Some(format!(
                        "the former primary's WAL is at {end}, beyond what was decoded ({}): \
                         it is still writing (isolate it)",
                        self.former.decoded_to.unwrap_or_default()
                    ));
                }
            }
        }
        let st = Arc::new(DbState { new: side, problem });
        dbs.insert(pair.database.clone(), st.clone());
        Ok(st)
    }

    /// The new side's changes decoded at least to `end` (from the cache when it covers it).
    async fn decoded_to(&self, end: Lsn) -> Arc<SideWal> {
        let mut cache = self.new_cache.lock().await;
        match cache.as_ref() {
            Some(c) if c.covers(end) => c.clone(),
            _ => {
                let t = std::time::Instant::now();
                let s = Arc::new(self.new_source.read_to(end).await);
                crate::timing::record("wal plan: new primary's WAL", t);
                *cache = Some(s.clone());
                s
            }
        }
    }

    /// The keys to compare, or why the WAL cannot decide this table.
    async fn guided(
        &self,
        index: usize,
        pair: &TablePair,
        new: &Session,
        former: &Session,
    ) -> Result<Result<(TablePlan, u64), String>, DiffError> {
        if pair.key.is_empty() {
            return Ok(Err(
                "no primary key common to both nodes: rows cannot be matched by key".into(),
            ));
        }
        let Some(first) = self.first_new_xid else {
            return Ok(Err(
                "the new primary's first xid after the promotion is unknown".into(),
            ));
        };
        let st = self.db_state(pair, new, former).await?;
        if let Some(why) = &st.problem {
            return Ok(Err(why.clone()));
        }
        let t = std::time::Instant::now();
        let (rn, rf) = tokio::join!(rel_info(new, pair), rel_info(former, pair));
        crate::timing::record("wal plan: relfilenodes", t);
        let rn = rn.map_err(|e| query_err(Node::New, new, pair, "reading the relfilenode", e))?;
        let rf =
            rf.map_err(|e| query_err(Node::Former, former, pair, "reading the relfilenode", e))?;
        let (Some(rn), Some(rf)) = (rn, rf) else {
            return Ok(Err("its relfilenode is unknown on one node".into()));
        };
        if rn != rf {
            let on_new = st.new.created.contains(&rn.heap);
            let on_former = self.former.created.contains(&rf.heap);
            let where_ = match (on_new, on_former) {
                (true, false) => "rewritten on the new primary after the switchpoint",
                (false, true) => {
                    "rewritten on the former primary after the switchpoint (a lost rewrite)"
                }
                (true, true) => "rewritten on both nodes after the switchpoint",
                (false, false) => "rewritten after the switchpoint",
            };
            return Ok(Err(format!(
                "{where_}: its relfilenode differs between the nodes (new {}, former {}); \
                 TRUNCATE, VACUUM FULL, CLUSTER and a rewriting ALTER TABLE give a table new \
                 storage, so tuple positions no longer match",
                rn.heap, rf.heap
            )));
        }
        let sides = [
            (Node::New, &*st.new, new),
            (Node::Former, &self.former, former),
        ];
        for (node, side, _) in sides {
            let rels = std::iter::once(rn.heap).chain(rn.toast);
            if let Some(r) = rels.clone().find(|r| side.created.contains(r)) {
                return Ok(Err(format!(
                    "relfilenode {r} was created after the switchpoint on the {} (the table \
                     was created or rewritten there)",
                    side_name(node)
                )));
            }
            if side.truncated.contains(&(rn.heap.db, rn.oid)) {
                return Ok(Err(format!(
                    "TRUNCATE after the switchpoint on the {}",
                    side_name(node)
                )));
            }
        }

        // Each side's touched tuples of this table; TOAST only with the owning row.
        let mut per_side: Vec<(Node, &SideWal, Vec<&TouchedTuple>)> = Vec::new();
        for (node, side, _) in sides {
            let heap: Vec<&TouchedTuple> =
                side.touched.iter().filter(|t| t.rel == rn.heap).collect();
            if let Some(toast) = rn.toast {
                let tops: HashSet<u32> = heap.iter().map(|t| t.top_xid.0).collect();
                if let Some(t) = side
                    .touched
                    .iter()
                    .find(|t| t.rel == toast && !tops.contains(&t.top_xid.0))
                {
                    return Ok(Err(format!(
                        "transaction {} changed its TOAST data on the {} without changing its \
                         rows",
                        t.top_xid,
                        side_name(node)
                    )));
                }
            }
            per_side.push((node, side, heap));
        }

        // Tids of new versions per side, with the transactions that wrote them.
        let writers = |tuples: &[&TouchedTuple]| -> HashMap<TidKey, HashSet<u32>> {
            let mut m: HashMap<TidKey, HashSet<u32>> = HashMap::new();
            for t in tuples {
                if matches!(t.op, TupleOp::Insert | TupleOp::Update | TupleOp::HotUpdate) {
                    m.entry((t.tid.block, t.tid.offset))
                        .or_default()
                        .insert(t.top_xid.0);
                }
            }
            m
        };
        let olds = |tuples: &[&TouchedTuple]| -> BTreeSet<TidKey> {
            tuples
                .iter()
                .filter_map(|t| match t.op {
                    TupleOp::Delete => Some((t.tid.block, t.tid.offset)),
                    TupleOp::Update | TupleOp::HotUpdate => t.old.map(|o| (o.block, o.offset)),
                    TupleOp::Insert => None,
                })
                .collect()
        };
        let t = std::time::Instant::now();
        let w_new = writers(&per_side[0].2);
        let w_former = writers(&per_side[1].2);
        let mut keys: BTreeSet<Key> = BTreeSet::new();
        for (node, side, tuples) in &per_side {
            let (session, own, other_node, other_side, other_session, other_writers) = match node {
                Node::New => (new, &w_new, Node::Former, &self.former, former, &w_former),
                Node::Former => (former, &w_former, Node::New, &*st.new, new, &w_new),
            };
            // New versions, read on their own side: written by the transaction the WAL names.
            let tids: Vec<TidKey> = own.keys().copied().collect();
            for (tid, xmin, key) in read_at(session, *node, pair, &tids).await? {
                let top = side.top_of.get(&xmin);
                if !own
                    .get(&tid)
                    .is_some_and(|w| top.is_some_and(|t| w.contains(t)))
                {
                    return Ok(Err(format!(
                        "the row at {} on the {} has xmin {xmin}, which the WAL does not say \
                         wrote it: positional reads cannot be trusted",
                        tid_text(tid),
                        side_name(*node)
                    )));
                }
                keys.insert(key);
            }
            // Old versions, read on the other side: the pre-switchpoint version both had.
            let tids: Vec<TidKey> = olds(tuples).into_iter().collect();
            for (tid, xmin, key) in read_at(other_session, other_node, pair, &tids).await? {
                if xmin < 3 || !xid_follows_or_equals(xmin, first) {
                    keys.insert(key);
                    continue;
                }
                let top = other_side.top_of.get(&xmin);
                if !other_writers
                    .get(&tid)
                    .is_some_and(|w| top.is_some_and(|t| w.contains(t)))
                {
                    return Ok(Err(format!(
                        "the row at {} on the {} has xmin {xmin}, after the switchpoint, but \
                         no WAL record wrote it: positional reads cannot be trusted",
                        tid_text(tid),
                        side_name(other_node)
                    )));
                }
            }
        }
        crate::timing::record("wal plan: positional reads", t);
        let n = keys.len() as u64;
        let keys: Vec<Key> = keys.into_iter().collect();
        let units = keys
            .chunks(KEYS_PER_UNIT)
            .map(|c| WorkUnit {
                table: index,
                scope: Scope::Keys(c.to_vec()),
            })
            .collect();
        let def = pair.new.as_ref().or(pair.former.as_ref());
        let row_bytes = def
            .filter(|d| d.reltuples > 0.0)
            .map(|d| (d.relpages as f64 * 8192.0 / d.reltuples).max(1.0))
            .unwrap_or(100.0);
        Ok(Ok((
            TablePlan {
                units,
                chunking: Chunking::Single,
                estimated_rows: n,
                row_bytes,
            },
            n,
        )))
    }
}

impl Planner for WalGuidedPlanner<'_> {
    fn plan<'a>(
        &'a self,
        index: usize,
        pair: &'a TablePair,
        new: &'a Session,
        former: &'a Session,
    ) -> BoxFuture<'a, Result<TablePlan, DiffError>> {
        Box::pin(self.plan_table(index, pair, new, former))
    }

    fn decision(&self, pair: &TablePair) -> Option<Decision> {
        self.decisions
            .lock()
            .expect("decisions lock")
            .get(&(
                pair.database.clone(),
                pair.schema.clone(),
                pair.name.clone(),
            ))
            .cloned()
    }
}

/// A snapshot's xid horizon, from `pg_current_snapshot()` (xids truncated to 32 bits).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct XidSnapshot {
    /// The first xid the snapshot sees as not yet started.
    xmax: u32,
    /// The xids it sees running.
    xip: HashSet<u32>,
}

impl XidSnapshot {
    /// From `xmin:xmax:xip,...` (`pg_snapshot` text).
    fn parse(s: &str) -> Option<XidSnapshot> {
        let mut parts = s.trim().split(':');
        let _xmin = parts.next()?;
        let xmax = parts.next()?.parse::<u64>().ok()? as u32;
        let xip = match parts.next()? {
            "" => HashSet::new(),
            list => list
                .split(',')
                .map(|x| x.parse::<u64>().ok().map(|x| x as u32))
                .collect::<Option<_>>()?,
        };
        Some(XidSnapshot { xmax, xip })
    }
}

/// The new primary's WAL positions and snapshot, read once inside the comparison's snapshot.
#[derive(Debug, Clone)]
struct NewPositions {
    flush: Lsn,
    insert: Lsn,
    wal_writer_delay_ms: u64,
    snapshot: XidSnapshot,
}

/// Where the new primary's WAL must be decoded to for this snapshot: its flush position.
/// Synchronous commits are flushed before they become visible, so the flush position read
/// after the snapshot was taken covers them; asynchronous ones may still be unflushed (see
/// [`wait_for_flush`]). `None` when the server is in recovery.
async fn new_side_positions(s: &Session) -> Result<Option<NewPositions>, crate::pg::PgError> {
    const SQL: &str = "SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE \
        pg_catalog.pg_current_wal_flush_lsn()::text END, \
        CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE \
        pg_catalog.pg_current_wal_insert_lsn()::text END, \
        pg_catalog.current_setting('wal_writer_delay'), \
        pg_catalog.pg_current_snapshot()::text";
    let r = s.query_one(SQL, &[]).await?;
    let parse = |v: Option<String>| v.and_then(|t| t.parse::<Lsn>().ok());
    let (Some(flush), Some(insert)) = (parse(r.get(0)), parse(r.get(1))) else {
        return Ok(None);
    };
    let delay: Option<String> = r.get(2);
    Ok(Some(NewPositions {
        flush,
        insert,
        wal_writer_delay_ms: delay.as_deref().and_then(parse_ms).unwrap_or(200),
        // An unparsable snapshot reads as "nothing known to have ended": the wait decides.
        snapshot: r
            .get::<_, Option<String>>(3)
            .as_deref()
            .and_then(XidSnapshot::parse)
            .unwrap_or(XidSnapshot {
                xmax: u32::MAX,
                xip: HashSet::new(),
            }),
    }))
}

/// `200ms`, `1s`, `150` (milliseconds) → milliseconds, clamped to 1 ms .. 10 s.
fn parse_ms(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = v.strip_suffix("min") {
        (n, 60_000)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000)
    } else {
        (v, 1)
    };
    Some((num.trim().parse::<u64>().ok()? * scale).clamp(1, 10_000))
}

/// Asynchronous commits reach disk within three `wal_writer_delay`s: reads the flush position
/// again until it passes the insert position read with the snapshot, or that delay is over.
async fn wait_for_flush(s: &Session, pos: &NewPositions) -> Result<Lsn, crate::pg::PgError> {
    const FLUSH_SQL: &str = "SELECT pg_catalog.pg_current_wal_flush_lsn()::text";
    let deadline = std::time::Instant::now()
        + std::time::Duration::from_millis(3 * pos.wal_writer_delay_ms + 50);
    let mut flush = pos.flush;
    while flush.0 + PAGE_HEADER_SLACK < pos.insert.0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let r = s.query_one(FLUSH_SQL, &[]).await?;
        flush = r
            .get::<_, Option<String>>(0)
            .and_then(|t| t.parse::<Lsn>().ok())
            .unwrap_or(flush);
    }
    Ok(flush)
}

/// The table's OID and relfilenodes (heap and TOAST) in the session's snapshot.
async fn rel_info(s: &Session, pair: &TablePair) -> Result<Option<RelInfo>, crate::pg::PgError> {
    const SQL: &str = "\
        SELECT c.oid::int8, c.relfilenode::int8, \
               (CASE WHEN c.reltablespace = 0 THEN d.dattablespace ELSE c.reltablespace END)::int8, \
               d.oid::int8, t.relfilenode::int8, \
               (CASE WHEN t.reltablespace = 0 THEN d.dattablespace ELSE t.reltablespace END)::int8 \
          FROM pg_catalog.pg_class c \
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
          JOIN pg_catalog.pg_database d ON d.datname = pg_catalog.current_database() \
          LEFT JOIN pg_catalog.pg_class t ON t.oid = c.reltoastrelid \
         WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'r'";
    let Some(r) = s.query_opt(SQL, &[&pair.schema, &pair.name]).await? else {
        return Ok(None);
    };
    let relfilenode: i64 = r.get(1);
    if relfilenode == 0 {
        return Ok(None); // a mapped relation: not a user table
    }
    let db = r.get::<_, i64>(3) as u32;
    let toast = r
        .get::<_, Option<i64>>(4)
        .zip(r.get::<_, Option<i64>>(5))
        .map(|(rel, spc)| RelFileLocator {
            spc: spc as u32,
            db,
            rel: rel as u32,
        });
    Ok(Some(RelInfo {
        oid: r.get::<_, i64>(0) as u32,
        heap: RelFileLocator {
            spc: r.get::<_, i64>(2) as u32,
            db,
            rel: relfilenode as u32,
        },
        toast,
    }))
}

/// The visible rows at `tids` on one node: (tid, xmin, key).
async fn read_at(
    s: &Session,
    node: Node,
    pair: &TablePair,
    tids: &[TidKey],
) -> Result<Vec<(TidKey, u32, Key)>, DiffError> {
    let mut out = Vec::new();
    let sql = format!(
        "SELECT ctid::text, xmin::text::int8, {} FROM {} WHERE ctid = ANY($1::text[]::tid[])",
        text_array(&pair.key),
        pair.sql_name()
    );
    for batch in tids.chunks(TIDS_PER_QUERY) {
        let arr: Vec<String> = batch.iter().map(|t| tid_text(*t)).collect();
        let rows = s
            .query(sql.as_str(), &[&arr])
            .await
            .map_err(|e| query_err(node, s, pair, "reading rows by tid", e))?;
        for r in rows {
            let ctid: String = r.get(0);
            let tid = parse_tid(&ctid).ok_or_else(|| DiffError::Unexpected {
                node,
                target: s.target().to_string(),
                table: format!("{}.{}", pair.database, pair.display_name()),
                message: format!("unparsable ctid {ctid:?}"),
            })?;
            out.push((tid, r.get::<_, i64>(1) as u32, r.get::<_, Key>(2)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tids_round_trip() {
        assert_eq!(parse_tid("(12,5)"), Some((12, 5)));
        assert_eq!(
            parse_tid(&tid_text((4294967295, 291))),
            Some((4294967295, 291))
        );
        assert_eq!(parse_tid("12,5"), None);
    }

    #[test]
    fn snapshots_and_delays_parse() {
        let s = XidSnapshot::parse("740:745:741,743").unwrap();
        assert_eq!(s.xmax, 745);
        assert_eq!(s.xip, HashSet::from([741, 743]));
        // Epoch-qualified (xid8) values keep their low 32 bits.
        let w = XidSnapshot::parse("4294967296:4294967300:").unwrap();
        assert_eq!((w.xmax, w.xip.len()), (4, 0));
        assert_eq!(XidSnapshot::parse("garbage"), None);
        assert_eq!(parse_ms("200ms"), Some(200));
        assert_eq!(parse_ms("1s"), Some(1000));
        assert_eq!(parse_ms("150"), Some(150));
        assert_eq!(parse_ms("1min"), Some(10_000));
    }

    #[test]
    fn only_ended_xids_settle_the_snapshot() {
        let side = SideWal {
            ended: HashSet::from([700, 701, 703]),
            ..SideWal::default()
        };
        let snap = |xmax: u32, xip: &[u32]| XidSnapshot {
            xmax,
            xip: xip.iter().copied().collect(),
        };
        // 700..=703 finished except 702, which the snapshot saw running.
        assert!(side.ended_all(700, &snap(704, &[702])));
        // 702 finished before the snapshot but its commit was not decoded: wait.
        assert!(!side.ended_all(700, &snap(704, &[])));
        // Nothing assigned since the promotion.
        assert!(side.ended_all(700, &snap(700, &[])));
        assert!(!side.ended_all(700, &snap(705, &[702])));
        // Across wraparound, and too many to check.
        let w = SideWal {
            ended: HashSet::from([u32::MAX, 3]),
            ..SideWal::default()
        };
        assert!(w.ended_all(u32::MAX, &snap(4, &[])));
        assert!(!SideWal::default().ended_all(10, &snap(2_000_000, &[])));
    }

    #[test]
    fn coverage_allows_a_page_header() {
        let s = SideWal {
            decoded_to: Some(Lsn(0x3000_1FFA)),
            ..SideWal::default()
        };
        assert!(s.covers(Lsn(0x3000_2000)));
        assert!(s.covers(Lsn(0x3000_2018)));
        assert!(!s.covers(Lsn(0x3000_2100)));
        assert!(!SideWal::default().covers(Lsn(1)));
    }
}
