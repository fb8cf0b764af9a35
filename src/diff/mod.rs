//! Table checksums and row-level diff: which rows the failover lost, which were written on the
//! new primary afterwards, and a reviewable recovery export.
//!
//! Flow: [`compare_tables`] opens `--jobs` read-only sessions per node sharing one
//! repeatable-read snapshot ([`snapshot`]), discovers and pairs the tables ([`catalog`]), plans
//! each table into [`chunk::WorkUnit`]s ([`chunk::Planner`]), compares chunk digests computed on
//! the servers ([`hash`]), bisects mismatching chunks down to rows ([`bisect`]), attributes
//! every differing row ([`classify`]) and optionally writes the recovery files ([`export`]).
//! Nothing here writes to a server, prints, or takes a lock stronger than ACCESS SHARE.

#![deny(missing_docs)]

pub mod bisect;
pub mod catalog;
pub mod chunk;
pub mod classify;
pub mod error;
pub mod export;
pub mod hash;
pub mod options;
pub mod report;
pub mod snapshot;
pub mod sql;
pub mod throttle;
pub mod walguided;
pub mod walrows;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

pub use catalog::{SchemaDifference, TablePair};
pub use chunk::{Decision, FullTablePlanner, Planner, Scope, WorkUnit};
pub use classify::Attribution;
pub use error::{DiffError, Node};
pub use options::{DiffOptions, MaxRate, RateSpec, TableArgs, TableFilter, TablesMode, Throttle};
pub use report::{
    ClassCounts, DiffKind, ImageOrigin, Method, NotExamined, Presence, RowClass, RowDiff,
    RowVersion, SkippedDatabase, TableReport, TablesReport,
};

use crate::pg::{self, ConnParams, Session, SessionOptions};
use bisect::{ms_since, TableDiff};
use snapshot::NodePool;
use throttle::RateLimiter;

/// A progress event; the caller may turn these into a progress bar.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ProgressEvent<'a> {
    /// Tables of a database were discovered.
    Discovered {
        /// The database.
        database: &'a str,
        /// Tables seen on either node.
        tables: usize,
    },
    /// A table's comparison started.
    TableStarted {
        /// `schema.table`.
        table: &'a str,
        /// Estimated rows.
        estimated_rows: u64,
    },
    /// Rows were digested (on the new side).
    RowsHashed {
        /// `schema.table`.
        table: &'a str,
        /// Rows in this step.
        rows: u64,
    },
    /// A table's comparison finished.
    TableFinished {
        /// `schema.table`.
        table: &'a str,
        /// Differing rows found.
        differences: u64,
    },
}

/// Receives progress events (from several connections at once).
pub trait Progress: Sync {
    /// Called for every event.
    fn event(&self, event: ProgressEvent<'_>);
}

/// Ignores progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: ProgressEvent<'_>) {}
}

/// Compares every selected table of the two nodes with the full-table planner.
pub async fn compare_tables(
    new: &ConnParams,
    former: &ConnParams,
    session: &SessionOptions,
    opts: &DiffOptions,
    attribution: &Attribution,
    progress: &dyn Progress,
) -> Result<TablesReport, DiffError> {
    let planner = FullTablePlanner {
        chunk_rows: opts.chunk_rows,
        max_rate: opts.max_rate,
    };
    compare_tables_with(new, former, session, opts, attribution, &planner, progress).await
}

/// Like [`compare_tables`] with another [`Planner`] (e.g. one guided by WAL).
pub async fn compare_tables_with(
    new: &ConnParams,
    former: &ConnParams,
    session: &SessionOptions,
    opts: &DiffOptions,
    attribution: &Attribution,
    planner: &dyn Planner,
    progress: &dyn Progress,
) -> Result<TablesReport, DiffError> {
    let start = Instant::now();
    let mut report = TablesReport {
        schema_version: report::TABLES_SCHEMA_VERSION,
        filters: opts.filter.patterns().to_vec(),
        attribution: report::AttributionInfo {
            available: !attribution.is_empty(),
            lost_xids: attribution.lost_xids.len(),
            new_side_first_xid: attribution.new_side_first_xid,
        },
        ..Default::default()
    };
    if attribution.is_empty() {
        report.warnings.push(
            "no attribution input (WAL not available): differences are reported as missing, \
             extra or changed with class unknown"
                .into(),
        );
    }
    let limiter = opts.max_rate.map(RateLimiter::new);
    let pairs: Vec<(String, ConnParams, ConnParams)> = if opts.all_databases {
        let (dn, df) = tokio::join!(
            databases(Node::New, new, session),
            databases(Node::Former, former, session)
        );
        let (dn, df) = (dn?, df?);
        for d in df.iter().filter(|d| !dn.contains(d)) {
            report.warnings.push(format!(
                "database {d:?} exists only on the former primary (created by a lost transaction?)"
            ));
        }
        for d in dn.iter().filter(|d| !df.contains(d)) {
            report
                .warnings
                .push(format!("database {d:?} exists only on the new primary"));
        }
        let mut v = Vec::new();
        for d in dn.into_iter().filter(|d| df.contains(d)) {
            let n =
                snapshot::with_dbname(new, &d).map_err(|m| DiffError::Options { message: m })?;
            let f =
                snapshot::with_dbname(former, &d).map_err(|m| DiffError::Options { message: m })?;
            v.push((d, n, f));
        }
        v
    } else {
        let mut v = vec![(new.dbname().to_string(), new.clone(), former.clone())];
        let extra: Vec<&String> = opts
            .databases
            .iter()
            .filter(|d| d.as_str() != new.dbname())
            .collect();
        if !extra.is_empty() {
            let (dn, df) = tokio::join!(
                databases(Node::New, new, session),
                databases(Node::Former, former, session)
            );
            for d in extra {
                let missing = |side: &Result<Vec<String>, DiffError>, which: &str| match side {
                    Ok(list) if !list.contains(d) => Some(format!(
                        "it does not exist (or does not accept connections) on the {which} primary"
                    )),
                    Ok(_) => None,
                    Err(e) => Some(format!(
                        "the {which} primary's databases could not be listed: {e}"
                    )),
                };
                let (on_new, on_former) = (missing(&dn, "new"), missing(&df, "former"));
                let hint = match (&on_new, &on_former) {
                    (Some(_), None) if dn.is_ok() => format!(
                        "the database exists only on the former primary (created by a lost \
                         transaction, or dropped on the new primary since): dump it from the \
                         former primary (pg_dump -d {}) to recover its rows",
                        conninfo_value(d)
                    ),
                    _ => skipped_hint(d),
                };
                let why: Vec<String> = [on_new, on_former].into_iter().flatten().collect();
                if why.is_empty() {
                    v.push((d.clone(), new.with_dbname(d), former.with_dbname(d)));
                } else {
                    report.skipped_databases.push(SkippedDatabase {
                        database: d.clone(),
                        reason: why.join("; "),
                        hint,
                    });
                }
            }
        }
        v
    };
    for (i, (db, np, fp)) in pairs.iter().enumerate() {
        let result = compare_database(
            db,
            np,
            fp,
            session,
            opts,
            attribution,
            planner,
            limiter.as_ref(),
            progress,
            &mut report,
        )
        .await;
        match result {
            Ok(()) => report.databases.push(db.clone()),
            // The conninfo's own database (and --all-databases) fail the comparison as before;
            // another database the lost WAL touched is named as not compared.
            Err(e) if i > 0 && !opts.all_databases && is_connection_error(&e) => {
                report.skipped_databases.push(SkippedDatabase {
                    database: db.clone(),
                    reason: e.to_string(),
                    hint: skipped_hint(db),
                });
            }
            Err(e) => return Err(e),
        }
    }
    for t in &report.tables {
        report.totals.merge(&t.counts);
    }
    let notes: Vec<String> = report
        .tables
        .iter()
        .filter_map(|t| {
            let why = t.fallback_reason.as_ref()?;
            let name = format!("{}.{}.{}", t.database, t.schema, t.table);
            Some(match t.method {
                Method::None => format!(
                    "{name}: not compared: the WAL cannot decide it ({why}); re-run with \
                     --tables-mode auto or full"
                ),
                _ => format!("{name}: compared in full: {why}"),
            })
        })
        .collect();
    report.warnings.extend(notes);
    if let Some(dir) = &opts.export_dir {
        report.export = Some(export::write_export(dir, &report)?);
    }
    report.elapsed_ms = ms_since(start);
    Ok(report)
}

/// What to run for a database the lost WAL touched that could not be compared. Granting
/// CONNECT on the former primary now would add a commit to the WAL under inspection, so the
/// hint names a role that may already connect.
fn skipped_hint(db: &str) -> String {
    let d = conninfo_value(db);
    format!(
        "compare it as a role that may connect to it (a superuser, or one granted CONNECT \
         before the failover; a GRANT on the former primary now adds a commit to its WAL): \
         failover-verify compare --new-primary 'CONNINFO dbname={d}' --former-primary \
         'CONNINFO dbname={d}'"
    )
}

/// A database name as a conninfo value: bare when plain, else quoted (`'a b'`, `\'`).
fn conninfo_value(v: &str) -> String {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return v.to_string();
    }
    let mut s = String::from("'");
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('\'');
    s
}

/// Whether the error is about opening sessions (connecting, privileges to connect).
fn is_connection_error(e: &DiffError) -> bool {
    matches!(e, DiffError::Session { .. })
}

async fn databases(
    node: Node,
    params: &ConnParams,
    opts: &SessionOptions,
) -> Result<Vec<String>, DiffError> {
    let s = pg::connect(params, opts)
        .await
        .map_err(|e| DiffError::Session {
            node,
            target: params.target(),
            database: params.dbname().to_string(),
            what: "connecting".into(),
            source: e,
        })?;
    let r = catalog::list_databases(&s, node, &params.target()).await;
    s.close().await;
    r
}

#[allow(clippy::too_many_arguments)]
async fn compare_database(
    db: &str,
    np: &ConnParams,
    fp: &ConnParams,
    session: &SessionOptions,
    opts: &DiffOptions,
    attribution: &Attribution,
    planner: &dyn Planner,
    limiter: Option<&RateLimiter>,
    progress: &dyn Progress,
    report: &mut TablesReport,
) -> Result<(), DiffError> {
    let t = Instant::now();
    let (pn, pf) = tokio::join!(
        NodePool::open(Node::New, np, session, opts.jobs),
        NodePool::open(Node::Former, fp, session, opts.jobs)
    );
    crate::timing::record("rows: open sessions and snapshots", t);
    let (pn, pf) = match (pn, pf) {
        (Ok(a), Ok(b)) => (a.paced(opts.new_pacer.clone()), b),
        (Err(e), other) => {
            if let Ok(p) = other {
                p.close().await;
            }
            return Err(e);
        }
        (Ok(p), Err(e)) => {
            p.close().await;
            return Err(e);
        }
    };
    let result = compare_in_pools(
        db,
        &pn,
        &pf,
        opts,
        attribution,
        planner,
        limiter,
        progress,
        report,
    )
    .await;
    let t = Instant::now();
    pn.close().await;
    pf.close().await;
    crate::timing::record("rows: close sessions", t);
    result
}

#[allow(clippy::too_many_arguments)]
async fn compare_in_pools(
    db: &str,
    pn: &NodePool,
    pf: &NodePool,
    opts: &DiffOptions,
    attribution: &Attribution,
    planner: &dyn Planner,
    limiter: Option<&RateLimiter>,
    progress: &dyn Progress,
    report: &mut TablesReport,
) -> Result<(), DiffError> {
    for p in [pn, pf] {
        report.snapshots.push(report::SnapshotInfo {
            node: p.node,
            target: p.target.clone(),
            database: db.to_string(),
            in_recovery: p.in_recovery,
            connections: p.sessions.len(),
            shared_snapshot: p.shared_snapshot,
        });
        if opts.jobs > 1 && !p.shared_snapshot {
            report.warnings.push(format!(
                "{} {}: the snapshot could not be exported; one connection used",
                p.node, p.target
            ));
        }
    }
    let t = Instant::now();
    let (tn, tf) = tokio::join!(
        catalog::list_tables(pn, &opts.filter),
        catalog::list_tables(pf, &opts.filter)
    );
    let tables = catalog::pair_tables(db, tn?, tf?);
    crate::timing::record("rows: list and pair tables", t);
    progress.event(ProgressEvent::Discovered {
        database: db,
        tables: tables.len(),
    });
    let workers = pn.sessions.len().min(pf.sessions.len()).max(1);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<TableReport>>> = Mutex::new(vec![None; tables.len()]);
    let worker = |w: usize| {
        let (tables, next, results) = (&tables, &next, &results);
        async move {
            let (sn, sf) = (&pn.sessions[w], &pf.sessions[w]);
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= tables.len() {
                    return Ok::<(), DiffError>(());
                }
                let r = compare_one(
                    i,
                    &tables[i],
                    sn,
                    sf,
                    opts,
                    attribution,
                    planner,
                    limiter,
                    progress,
                )
                .await?;
                results.lock().expect("results lock")[i] = Some(r);
            }
        }
    };
    let outcomes = futures_util::future::join_all((0..workers).map(worker)).await;
    for o in outcomes {
        o?;
    }
    report.tables.extend(
        results
            .into_inner()
            .expect("results lock")
            .into_iter()
            .flatten(),
    );
    let t = Instant::now();
    report
        .sequences
        .extend(sequences(db, &pn.sessions[0], &pf.sessions[0]).await);
    crate::timing::record("rows: sequences", t);
    Ok(())
}

/// Runs `SAVEPOINT`, so that an error in one table does not abort the shared transaction.
async fn savepoint(s: &Session, sql: &str) -> Result<(), pg::PgError> {
    s.simple_query(sql).await.map(|_| ())
}

#[allow(clippy::too_many_arguments)]
async fn compare_one(
    index: usize,
    pair: &TablePair,
    sn: &Session,
    sf: &Session,
    opts: &DiffOptions,
    attribution: &Attribution,
    planner: &dyn Planner,
    limiter: Option<&RateLimiter>,
    progress: &dyn Progress,
) -> Result<TableReport, DiffError> {
    let start = Instant::now();
    let name = pair.display_name();
    let presence = match (&pair.new, &pair.former) {
        (Some(_), Some(_)) => Presence::Both,
        (Some(_), None) => Presence::NewOnly,
        _ => Presence::FormerOnly,
    };
    let mut tr = TableReport {
        database: pair.database.clone(),
        schema: pair.schema.clone(),
        table: pair.name.clone(),
        presence,
        schema_differences: pair.differences.clone(),
        method: Method::None,
        fallback_reason: None,
        key_columns: pair.key.clone(),
        columns: pair.common.iter().map(|c| c.name.clone()).collect(),
        column_types: pair.common.iter().map(|c| c.ty.clone()).collect(),
        generated_columns: pair
            .common
            .iter()
            .filter(|c| c.generated)
            .map(|c| c.name.clone())
            .collect(),
        rows_compared: 0,
        rows_fetched: 0,
        chunks: 0,
        chunks_mismatched: 0,
        queries: 0,
        counts: ClassCounts::default(),
        rows: Vec::new(),
        elapsed_ms: 0,
        error: None,
        not_examined: Vec::new(),
    };
    let sp_err = |node: Node, s: &Session, e| DiffError::Query {
        node,
        target: s.target().to_string(),
        table: format!("{}.{name}", pair.database),
        what: "managing the per-table savepoint".into(),
        source: e,
    };
    for (node, s) in [(Node::New, sn), (Node::Former, sf)] {
        savepoint(s, "SAVEPOINT fv_table")
            .await
            .map_err(|e| sp_err(node, s, e))?;
    }
    let result: Result<(), DiffError> = async {
        if presence != Presence::Both {
            // Count the rows of a one-sided table: each of them is a difference.
            let (node, s) = if presence == Presence::NewOnly {
                (Node::New, sn)
            } else {
                (Node::Former, sf)
            };
            let row = s
                .query_one(
                    format!("SELECT count(*)::int8 FROM {}", pair.sql_name()).as_str(),
                    &[],
                )
                .await
                .map_err(|e| DiffError::Query {
                    node,
                    target: s.target().to_string(),
                    table: format!("{}.{name}", pair.database),
                    what: "counting rows".into(),
                    source: e,
                })?;
            tr.rows_compared = row.get::<_, i64>(0) as u64;
            return Ok(());
        }
        let t = Instant::now();
        let plan = planner.plan(index, pair, sn, sf).await?;
        crate::timing::record("rows: plan (table)", t);
        let decision = planner.decision(pair);
        progress.event(ProgressEvent::TableStarted {
            table: &name,
            estimated_rows: plan.estimated_rows,
        });
        let on_rows = |rows: u64| {
            progress.event(ProgressEvent::RowsHashed { table: &name, rows });
        };
        let t = Instant::now();
        let out = TableDiff::new(pair, sn, sf, attribution, limiter, opts.leaf_rows, &on_rows)
            .run(&plan)
            .await?;
        crate::timing::record("rows: compare planned rows (table)", t);
        tr.method = Method::Full;
        tr.rows_compared = out.rows_compared;
        tr.rows_fetched = out.rows_fetched;
        if let Some(d) = decision {
            tr.method = d.method;
            tr.fallback_reason = d.fallback_reason;
            match d.method {
                // Every key of the plan was read on both nodes (fetched or found absent).
                Method::Wal => tr.rows_compared = d.keys,
                Method::None => {
                    tr.error = Some(format!(
                        "not decided from the WAL: {}",
                        tr.fallback_reason.as_deref().unwrap_or("unknown")
                    ))
                }
                Method::Full | Method::WalDecoded => {}
            }
        }
        tr.chunks = out.chunks;
        tr.chunks_mismatched = out.chunks_mismatched;
        tr.queries = out.queries;
        for r in &out.rows {
            tr.counts.add(r.kind, r.class);
        }
        tr.rows = out.rows;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            for (node, s) in [(Node::New, sn), (Node::Former, sf)] {
                savepoint(s, "RELEASE SAVEPOINT fv_table")
                    .await
                    .map_err(|e| sp_err(node, s, e))?;
            }
        }
        Err(e) => {
            tr.error = Some(e.to_string());
            tr.method = Method::None;
            for (node, s) in [(Node::New, sn), (Node::Former, sf)] {
                savepoint(
                    s,
                    "ROLLBACK TO SAVEPOINT fv_table; RELEASE SAVEPOINT fv_table",
                )
                .await
                .map_err(|e| sp_err(node, s, e))?;
            }
        }
    }
    tr.elapsed_ms = ms_since(start);
    progress.event(ProgressEvent::TableFinished {
        table: &name,
        differences: tr.rows.len() as u64,
    });
    Ok(tr)
}

/// Sequences whose `last_value` differs (best effort: an error yields nothing).
async fn sequences(db: &str, sn: &Session, sf: &Session) -> Vec<report::SequenceDiff> {
    const SQL: &str = "SELECT schemaname::text, sequencename::text, last_value, start_value, \
                       increment_by FROM pg_catalog.pg_sequences ORDER BY 1, 2";
    type Seq = (String, String, Option<i64>, i64, i64);
    async fn read(s: &Session) -> Option<Vec<Seq>> {
        s.simple_query("SAVEPOINT fv_seq").await.ok()?;
        match s.query(SQL, &[]).await {
            Ok(rows) => {
                let _ = s.simple_query("RELEASE SAVEPOINT fv_seq").await;
                Some(
                    rows.iter()
                        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
                        .collect(),
                )
            }
            Err(_) => {
                let _ = s
                    .simple_query("ROLLBACK TO SAVEPOINT fv_seq; RELEASE SAVEPOINT fv_seq")
                    .await;
                None
            }
        }
    }
    let (n, f) = tokio::join!(read(sn), read(sf));
    let (Some(n), Some(f)) = (n, f) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut names: Vec<(String, String)> = n
        .iter()
        .chain(f.iter())
        .map(|(s, q, ..)| (s.clone(), q.clone()))
        .collect();
    names.sort();
    names.dedup();
    for (schema, name) in names {
        let nv = n.iter().find(|x| x.0 == schema && x.1 == name);
        let fv = f.iter().find(|x| x.0 == schema && x.1 == name);
        let (a, b) = (nv.and_then(|x| x.2), fv.and_then(|x| x.2));
        if a == b && nv.is_some() && fv.is_some() {
            continue;
        }
        // What the new side hands out next: its start when never called, else last + increment.
        let next = nv.map(|x| match x.2 {
            None => x.3,
            Some(last) => last.saturating_add(x.4),
        });
        let ascending = nv.is_none_or(|x| x.4 > 0);
        let advance_by = match (next, b) {
            (Some(n), Some(f)) if ascending && f >= n => Some(f - n + 1),
            _ => None,
        };
        out.push(report::SequenceDiff {
            database: db.to_string(),
            schema,
            name,
            new_last_value: a,
            new_next_value: next,
            former_last_value: b,
            advance_by,
            new_is_behind: match (next, b) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(_), Some(_)) => advance_by.is_some(),
            },
        });
    }
    out
}
