//! The former primary's divergent WAL, read and accounted: which transactions were lost.
//!
//! The WAL comes from the best source available, in this order: the physical replication
//! protocol (REPLICATION attribute), the server's `pg_wal` over SQL (`pg_read_binary_file`),
//! or a directory (`--former-wal-dir`). Whatever the source, the bytes go through the same
//! sans-IO decoder and the same accountant ([`crate::wal::accounting`]).

pub mod names;
pub mod newside;
pub mod scan;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::lsn::{Lsn, TimelineId, Xid};
use crate::pg::session::{Session, SessionOptions};
use crate::pg::ConnParams;
use crate::report::{Finding, Severity};
use crate::wal::accounting::LostTransactions;
use crate::wal::RelFileLocator;

use names::RelName;
use scan::{Scan, ScanError};

/// How far back from the switchpoint's segment a scan may start, in segments, to find the
/// earlier changes of transactions that were running at the switchpoint.
const MAX_STEP_BACK_SEGMENTS: u64 = 8;

/// The `transactions` section of the report: what the lost WAL contains.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Transactions {
    /// Where the WAL was read (`replication from host:port`, `pg_wal over SQL on …`, `directory …`).
    pub source: String,
    /// Where decoding began (at or before the switchpoint).
    pub scan_start_lsn: Lsn,
    /// The end of the last record decoded.
    pub end_lsn: Option<Lsn>,
    /// Why decoding stopped (`requested end reached`, `zeroed page`, ...).
    pub end_reason: Option<String>,
    /// The WAL format's PostgreSQL major version (from the page magic).
    pub wal_format: Option<u32>,
    /// Number of lost commits (COMMIT and COMMIT PREPARED after the switchpoint).
    pub lost_commits: usize,
    /// The lost transactions, in WAL order.
    pub lost_xids: Vec<LostXid>,
    /// The first lost commit time (RFC 3339): the start of the loss window.
    pub first_lost_commit_time: Option<String>,
    /// The last lost commit time: the end of the loss window.
    pub last_lost_commit_time: Option<String>,
    /// Aborts after the switchpoint: not losses.
    pub aborts_after_switchpoint: usize,
    /// Transactions with changes but no commit or abort (in flight at the failover): not losses.
    pub in_flight: usize,
    /// Transactions PREPAREd after the switchpoint and never resolved: in doubt.
    pub in_doubt: Vec<InDoubtTx>,
    /// Row changes of the lost transactions per table.
    pub tables: Vec<TableLoss>,
    /// Lost transactions that changed the schema (catalog changes).
    pub lost_ddl: usize,
    /// Sequences advanced after the switchpoint.
    pub sequences: Vec<SequenceLoss>,
    /// WAL records after the switchpoint (all kinds, background ones included).
    pub records_after_switchpoint: u64,
    /// Heap tuples the lost transactions wrote or deleted.
    pub touched_tuples: usize,
    /// The pg_walinspect cross-check, when that extension was already installed.
    pub walinspect: Option<WalinspectCheck>,
    /// The first xid the new primary could assign after its promotion (from the WAL before
    /// the switchpoint); new-side row versions at or after it are post-failover writes.
    pub new_side_first_xid: Option<Xid>,
    /// Limits of this accounting the reader should know.
    pub caveats: Vec<String>,
}

/// One lost transaction.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LostXid {
    /// Its top-level xid on the former timeline (the new primary reuses these numbers).
    pub xid: Xid,
    /// Its committed subtransactions.
    pub subxids: Vec<Xid>,
    /// The commit record's LSN.
    pub commit_lsn: Lsn,
    /// The commit time (RFC 3339, UTC).
    pub commit_time: Option<String>,
    /// The database it ran in.
    pub database: Option<String>,
    /// Whether it was a COMMIT PREPARED, and its GID.
    pub prepared_gid: Option<String>,
    /// Whether it changed the schema.
    pub ddl: bool,
    /// Tuples inserted.
    pub inserts: u64,
    /// Tuples updated (HOT included).
    pub updates: u64,
    /// Tuples deleted.
    pub deletes: u64,
}

/// A prepared transaction whose fate the new primary does not know.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InDoubtTx {
    /// Its xid on the former timeline.
    pub xid: Xid,
    /// Its GID.
    pub gid: Option<String>,
    /// The PREPARE record's LSN.
    pub lsn: Lsn,
}

/// Lost row changes in one table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TableLoss {
    /// The database.
    pub database: Option<String>,
    /// `schema.table`, or `None` when the relfilenode could not be mapped.
    pub table: Option<String>,
    /// `table`, `toast` (counted against its owner), `catalog`, `unknown`, ...
    pub kind: String,
    /// `spc/db/relfilenode`.
    pub relfilenode: String,
    /// Inserted tuples.
    pub inserts: u64,
    /// Non-HOT updates.
    pub updates: u64,
    /// HOT updates.
    pub hot_updates: u64,
    /// Deleted tuples.
    pub deletes: u64,
    /// TRUNCATEs.
    pub truncates: u64,
}

/// A sequence that moved after the switchpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SequenceLoss {
    /// The database.
    pub database: Option<String>,
    /// `schema.sequence`, when known.
    pub sequence: Option<String>,
    /// The last value logged on the former primary (up to 32 ahead of the last `nextval`).
    pub last_logged_value: Option<i64>,
}

/// Our count against pg_walinspect's on the same range.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WalinspectCheck {
    /// Commits pg_walinspect saw between the switchpoint and the end.
    pub commits: i64,
    /// Whether that equals `lost_commits`.
    pub agrees: bool,
}

/// Where to read the former timeline's WAL.
#[derive(Clone, Debug)]
pub enum Source<'a> {
    /// A running node on the former timeline (the former primary or its sync standby).
    Node {
        /// Its connection parameters.
        params: &'a ConnParams,
        /// An open read-only session on it.
        session: &'a Session,
        /// Whether the role may open a replication connection.
        can_replicate: bool,
        /// The server's WAL segment size.
        seg_size: u64,
    },
    /// A directory of segments.
    Directory(PathBuf),
}

/// What the scan of the former timeline's WAL found.
#[derive(Debug)]
pub struct Evidence {
    /// The report section.
    pub transactions: Transactions,
    /// The raw accounting (touched tuples, xids) for the row diff.
    pub lost: LostTransactions,
    /// Relfilenodes created on the former timeline after the switchpoint (for the row diff).
    pub created_after_switchpoint: BTreeSet<RelFileLocator>,
    /// Lost COMMIT PREPAREDs whose PREPARE precedes the WAL that was read (for the row diff).
    pub prepared_before_scan: Vec<Xid>,
}

/// Reads and accounts the WAL of timeline `tli` from `switchpoint` to `end` (or the end of
/// valid WAL when `end` is `None`). Findings say what was tried and what to know.
pub async fn gather(
    source: &Source<'_>,
    names_from: Option<&ConnParams>,
    opts: &SessionOptions,
    tli: TimelineId,
    switchpoint: Lsn,
    end: Option<Lsn>,
) -> (Result<Evidence, ScanError>, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut caveats = Vec::new();
    let (scan, label) = match source {
        Source::Directory(dir) => {
            let label = format!("directory {}", dir.display());
            let seg_size = dir_seg_size(dir, tli);
            let result = step_back(
                |start| {
                    let d = dir.clone();
                    async move {
                        tokio::task::spawn_blocking(move || {
                            scan::scan_dir(&d, tli, start, end, switchpoint)
                        })
                        .await
                        .map_err(|e| ScanError::Task(e.to_string()))?
                    }
                },
                switchpoint,
                seg_size,
            )
            .await;
            (result, label)
        }
        Source::Node {
            params,
            session,
            can_replicate,
            seg_size,
        } => {
            let end = end.unwrap_or(switchpoint);
            let mut attempt = None;
            if *can_replicate {
                let ropts = crate::node::replication_options(opts);
                let r = step_back(
                    |start| {
                        scan::scan_replication(
                            params,
                            &ropts,
                            tli,
                            start,
                            end,
                            switchpoint,
                            Some(*seg_size),
                            None, // the former primary serves no one: read it at full speed
                        )
                    },
                    switchpoint,
                    *seg_size,
                )
                .await;
                match r {
                    Ok(s) => {
                        attempt = Some((
                            Ok(s),
                            format!("replication from {} (timeline {tli})", params.target()),
                        ))
                    }
                    Err(e) => findings.push(Finding {
                        severity: Severity::Info,
                        id: "wal_replication_failed".into(),
                        message: format!("streaming the former timeline's WAL failed: {e}"),
                        hint: None,
                    }),
                }
            }
            match attempt {
                Some(a) => a,
                None => {
                    let r = step_back(
                        |start| {
                            scan::scan_sql_files(session, tli, *seg_size, start, end, switchpoint)
                        },
                        switchpoint,
                        *seg_size,
                    )
                    .await;
                    (r, format!("pg_wal over SQL on {}", params.target()))
                }
            }
        }
    };
    let scan = match scan {
        Ok(s) => s,
        Err(e) => return (Err(e), findings),
    };
    if !scan.lost.running_at_scan_start.is_empty() {
        caveats.push(format!(
            "{} lost transaction(s) were already running at {}, the oldest WAL read; changes they made before it are not counted",
            scan.lost.running_at_scan_start.len(),
            scan.start
        ));
    }
    if !scan.prepared_before_scan.is_empty() {
        caveats.push(format!(
            "{} lost COMMIT PREPARED(s) commit transactions prepared before {}, the oldest WAL \
             read; the changes they made are not counted",
            scan.prepared_before_scan.len(),
            scan.start
        ));
    }
    if let Some(e) = &scan.end {
        if !e.reason.is_clean() {
            caveats.push(format!("decoding stopped early: {e}"));
        }
    }

    // Names from the former primary's catalogs.
    let mut rels: BTreeSet<RelFileLocator> = scan.lost.tables.iter().map(|t| t.rel).collect();
    rels.extend(scan.lost.sequences.iter().map(|s| s.rel));
    let (names, problems) = match names_from {
        Some(p) => names::resolve(p, opts, &rels).await,
        None => (
            BTreeMap::new(),
            vec!["no connection to the former primary: relfilenodes are shown unmapped".into()],
        ),
    };
    caveats.extend(problems);
    let databases: BTreeMap<u32, Option<String>> = names
        .iter()
        .map(|(loc, n)| (loc.db, n.database.clone()))
        .collect();
    let transactions = summarize(&scan, &label, &names, &databases, caveats);
    (
        Ok(Evidence {
            transactions,
            lost: scan.lost,
            created_after_switchpoint: scan.created_after_switchpoint,
            prepared_before_scan: scan.prepared_before_scan,
        }),
        findings,
    )
}

/// The finding for WAL that could not be read: what failed and which grant would help.
pub fn unreadable_finding(e: &ScanError) -> Finding {
    Finding {
        severity: Severity::Warning,
        id: "wal_unreadable".into(),
        message: format!("the former timeline's WAL could not be read, so lost transactions were not counted: {e}"),
        hint: Some("give the role the REPLICATION attribute (plus a pg_hba.conf replication line), or GRANT EXECUTE ON FUNCTION pg_read_binary_file(text, bigint, bigint) TO it; or copy the former primary's pg_wal and pass --former-wal-dir".into()),
    }
}

/// The segment size of the first segment of `tli` in `dir`, or 16 MB.
fn dir_seg_size(dir: &std::path::Path, tli: TimelineId) -> u64 {
    crate::wal::source::WalDir::open(dir, tli)
        .map(|w| w.segment_size())
        .unwrap_or(16 * 1024 * 1024)
}

/// The start of the segment `back` segments before the one holding `switchpoint`.
fn scan_start(switchpoint: Lsn, seg_size: u64, back: u64) -> Option<Lsn> {
    let segno = switchpoint.segment_number(seg_size).checked_sub(back)?;
    Some(Lsn(segno * seg_size))
}

/// Scans from the switchpoint's segment, stepping back a segment at a time while lost
/// transactions were already running at the first RUNNING_XACTS record read; keeps the
/// earliest scan that could be read.
async fn step_back<F, Fut>(mut scan: F, switchpoint: Lsn, seg_size: u64) -> Result<Scan, ScanError>
where
    F: FnMut(Lsn) -> Fut,
    Fut: std::future::Future<Output = Result<Scan, ScanError>>,
{
    let mut best: Option<Scan> = None;
    for back in 0..=MAX_STEP_BACK_SEGMENTS {
        let Some(start) = scan_start(switchpoint, seg_size, back) else {
            break;
        };
        match scan(start).await {
            Ok(s) => {
                // Also step back while no xid precedes the switchpoint in what was read: the
                // row diff needs the new primary's first xid (the switchpoint horizon).
                let done = s.lost.running_at_scan_start.is_empty()
                    && s.prepared_before_scan.is_empty()
                    && s.new_side_first_xid.is_some();
                best = Some(s);
                if done {
                    break;
                }
            }
            Err(e) if best.is_none() => return Err(e),
            Err(_) => break, // older WAL is gone: keep what we have
        }
    }
    best.ok_or_else(|| {
        ScanError::Task(format!("no WAL segment before {switchpoint} to start from"))
    })
}

/// Turns the accounting into the report section, with names where they are known.
fn summarize(
    scan: &Scan,
    label: &str,
    names: &BTreeMap<RelFileLocator, RelName>,
    databases: &BTreeMap<u32, Option<String>>,
    caveats: Vec<String>,
) -> Transactions {
    let lost = &scan.lost;
    let ts = |t: Option<crate::wal::xact::PgTimestamp>| {
        t.and_then(|t| t.to_offset_date_time()).and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
    };
    let db_name = |db: Option<u32>| db.and_then(|d| databases.get(&d).cloned().flatten());

    // Per table: TOAST and the table itself merge under the owner's name.
    let mut tables: BTreeMap<(Option<String>, String), TableLoss> = BTreeMap::new();
    for t in &lost.tables {
        let name = names.get(&t.rel).cloned().unwrap_or_else(|| RelName {
            kind: if t.catalog {
                "catalog".into()
            } else {
                "unknown".into()
            },
            ..RelName::default()
        });
        let key_name = name.table.clone().unwrap_or_else(|| t.rel.to_string());
        let e = tables
            .entry((name.database.clone(), key_name))
            .or_insert_with(|| TableLoss {
                database: name.database.clone(),
                table: name.table.clone(),
                kind: if name.kind == "toast" {
                    "table".into()
                } else {
                    name.kind.clone()
                },
                relfilenode: t.rel.to_string(),
                inserts: 0,
                updates: 0,
                hot_updates: 0,
                deletes: 0,
                truncates: 0,
            });
        // A TOAST relation's chunks are not rows of the table: only the table's own counts
        // are row counts. Keep TOAST out of the row numbers but keep the table listed.
        if name.kind != "toast" {
            e.inserts += t.counts.inserts;
            e.updates += t.counts.updates;
            e.hot_updates += t.counts.hot_updates;
            e.deletes += t.counts.deletes;
            e.truncates += t.counts.truncates;
        }
    }

    Transactions {
        source: label.to_string(),
        scan_start_lsn: scan.start,
        end_lsn: lost.end_lsn,
        end_reason: scan.end.as_ref().map(|e| e.reason.to_string()),
        wal_format: scan.pg_version,
        lost_commits: lost.lost_commits.len(),
        lost_xids: lost
            .lost_commits
            .iter()
            .map(|c| LostXid {
                xid: c.top_xid,
                subxids: c.subxids.clone(),
                commit_lsn: c.lsn,
                commit_time: ts(c.commit_time),
                database: db_name(c.db_id),
                prepared_gid: if c.prepared {
                    c.gid.clone().or(Some(String::new()))
                } else {
                    None
                },
                ddl: c.ddl,
                inserts: c.changes.inserts,
                updates: c.changes.updates + c.changes.hot_updates,
                deletes: c.changes.deletes,
            })
            .collect(),
        first_lost_commit_time: ts(lost.first_lost_commit_time),
        last_lost_commit_time: ts(lost.last_lost_commit_time),
        aborts_after_switchpoint: lost.aborts_after_switchpoint.len(),
        in_flight: lost.in_flight.len(),
        in_doubt: lost
            .in_doubt
            .iter()
            .map(|d| InDoubtTx {
                xid: d.xid,
                gid: d.gid.clone(),
                lsn: d.lsn,
            })
            .collect(),
        tables: tables.into_values().collect(),
        lost_ddl: lost.lost_ddl.len(),
        sequences: lost
            .sequences
            .iter()
            .map(|s| {
                let n = names.get(&s.rel);
                SequenceLoss {
                    database: n.and_then(|n| n.database.clone()),
                    sequence: n.and_then(|n| n.table.clone()),
                    last_logged_value: s.last_logged_value,
                }
            })
            .collect(),
        records_after_switchpoint: lost.wal_stats_after_switchpoint.total.count,
        touched_tuples: lost.touched_tuples.len(),
        walinspect: None,
        new_side_first_xid: scan.new_side_first_xid,
        caveats,
    }
}

/// Cross-checks the commit count with pg_walinspect, only where it is already installed and
/// usable (a primary on the former timeline). Never installs anything.
pub async fn walinspect_check(
    session: &Session,
    switchpoint: Lsn,
    end: Lsn,
    lost_commits: usize,
) -> Option<WalinspectCheck> {
    let installed = session
        .query_opt(
            "SELECT 1 FROM pg_extension WHERE extname = 'pg_walinspect' AND NOT pg_is_in_recovery()",
            &[],
        )
        .await
        .ok()??;
    drop(installed);
    let sql = "SELECT count(*) FROM pg_get_wal_records_info($1::text::pg_lsn, $2::text::pg_lsn) \
               WHERE resource_manager = 'Transaction' AND record_type IN ('COMMIT', 'COMMIT_PREPARED')";
    let row = session
        .query_one(sql, &[&switchpoint.to_string(), &end.to_string()])
        .await
        .ok()?;
    let commits: i64 = row.get(0);
    Some(WalinspectCheck {
        commits,
        agrees: commits == lost_commits as i64,
    })
}

impl Evidence {
    /// What the row diff needs to tell lost writes from post-failover ones: every xid (top-level
    /// and subtransaction) of the lost commits, and the new primary's first xid.
    pub fn attribution(&self) -> crate::diff::Attribution {
        crate::diff::Attribution {
            lost_xids: self
                .lost
                .lost_commits
                .iter()
                .flat_map(|c| std::iter::once(c.top_xid.0).chain(c.subxids.iter().map(|x| x.0)))
                .collect(),
            new_side_first_xid: self.transactions.new_side_first_xid.map(|x| x.0),
        }
    }
}
