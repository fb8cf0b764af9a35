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

mod reads;
mod side;

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
use super::options::TablesMode;
use super::report::Method;
use crate::lsn::Lsn;
use crate::pg::Session;
use crate::wal::accounting::{TouchedTuple, TupleOp};
use reads::{
    new_side_positions, read_at, rel_info, tid_text, wait_for_flush, TidKey, PAGE_HEADER_SLACK,
};
pub use side::{NewSideWal, SideWal};

/// Keys per `Scope::Keys` unit (one digest query and at most one row query per node).
const KEYS_PER_UNIT: usize = 500;

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

#[cfg(test)]
mod tests;
