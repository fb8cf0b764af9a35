//! The former primary's divergent WAL, read and accounted: which transactions were lost.
//!
//! The WAL comes from the best source available, in this order: the physical replication
//! protocol (REPLICATION attribute), the server's `pg_wal` over SQL (`pg_read_binary_file`),
//! a directory (`--former-wal-dir`), or files fetched from WAL archives and directories
//! ([`crate::wal::archive`]) along the former primary's timeline history. Whatever the source,
//! the bytes go through the same sans-IO decoder and the same accountant
//! ([`crate::wal::accounting`]). File sources say which LSN range they covered
//! ([`Coverage`]): what no source held makes the counts a lower bound.

pub mod ddl;
pub mod lostlist;
pub mod names;
pub mod newside;
pub mod scan;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::finding::{Finding, FindingId};
use crate::lsn::{Lsn, TimelineId, Xid};
use crate::pg::session::{Session, SessionOptions};
use crate::pg::ConnParams;
use crate::timeline::TimelineHistory;
use crate::wal::accounting::LostTransactions;
use crate::wal::archive::{ArchiveError, WalStage};
use crate::wal::segment::segment_file_name;
use crate::wal::source::WalDir;
use crate::wal::{EndReason, RelFileLocator};

use names::RelName;
use scan::{Scan, ScanError, ScanOptions};

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
    /// The lost transactions, in WAL order: all of them, or at scale the first and the last
    /// ones only (`lost_xids_omitted` says how many are left out between them).
    pub lost_xids: Vec<LostXid>,
    /// How many lost transactions `lost_xids` leaves out (between its first and last entries);
    /// `lost_xids_file` has them all.
    #[serde(default)]
    pub lost_xids_omitted: u64,
    /// The file holding every lost transaction (CSV or JSON Lines), when one was written.
    #[serde(default)]
    pub lost_xids_file: Option<String>,
    /// Lost commits and row changes per database.
    #[serde(default)]
    pub databases: Vec<DatabaseLoss>,
    /// The loss timeline: lost commits per minute of commit time.
    #[serde(default)]
    pub commits_per_minute: Vec<MinuteLoss>,
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
    /// Rows the lost transactions inserted, updated or deleted in user tables (the headline
    /// number): the sum of `inserts + updates + deletes` over `tables[]` of every kind but
    /// `catalog`.
    /// Rows written into system catalogs by DDL and TOAST chunks are not counted.
    pub row_changes: u64,
    /// User tables with lost row changes or TRUNCATEs (the entries of `tables[]` of every kind
    /// but `catalog`).
    pub tables_changed: usize,
    /// Row changes of the lost transactions per table (system catalogs included, as kind
    /// `catalog`; a TOAST relation counts against its owner).
    pub tables: Vec<TableLoss>,
    /// Lost transactions that changed the schema (catalog changes).
    pub lost_ddl: usize,
    /// The relations that lost transactions created, altered or dropped, by name.
    pub lost_ddl_relations: Vec<ddl::LostDdlRelation>,
    /// What about the lost DDL could not be named, and why (empty when everything was).
    pub lost_ddl_unnamed: Vec<String>,
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
    /// For WAL read from files (a directory, an archive): the LSN range the files covered and
    /// what no source held. `None` for a running node (its WAL is complete).
    pub coverage: Option<Coverage>,
}

/// Which part of the former primary's WAL the files covered.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Coverage {
    /// The sources, in the order they were tried (`directory …`, `restore command `…``).
    pub sources: Vec<String>,
    /// The first position read (the scan start).
    pub covered_from: Lsn,
    /// Where the evidence stops: decoding ended here.
    pub covered_to: Lsn,
    /// Whether the evidence reaches the former primary's end of WAL. When `false`, every count
    /// in the report is a lower bound.
    pub complete: bool,
    /// The first position no source held (when incomplete).
    pub uncovered_from: Option<Lsn>,
    /// The end of the uncovered range, when the former primary's end of WAL is known; `None`
    /// with `complete = false` means the end is unknown.
    pub uncovered_to: Option<Lsn>,
    /// The segments no source held, from the first missing one (up to the former's end when
    /// known; else only the first, since the archive cannot tell how far the WAL went).
    pub missing_segments: Vec<String>,
    /// Why the evidence stops where it does.
    pub reason: String,
    /// The segment files read, in order, with their source.
    pub segments: Vec<SegmentRead>,
    /// Segments that two sources hold with different bytes where both are valid WAL.
    pub disagreements: Vec<String>,
}

/// One segment file that was read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SegmentRead {
    /// Its file name.
    pub file: String,
    /// Its source.
    pub source: String,
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
    /// Rows inserted into user tables (as `tables[].inserts`).
    pub inserts: u64,
    /// Rows updated in user tables, HOT updates included (as `tables[].updates`).
    pub updates: u64,
    /// The HOT subset of `updates`.
    pub hot_updates: u64,
    /// Rows deleted from user tables.
    pub deletes: u64,
    /// Rows it inserted, updated or deleted in system catalogs (DDL), not in the counts above.
    pub catalog_rows: u64,
}

/// Lost commits in one database.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DatabaseLoss {
    /// Its name, when known.
    pub database: Option<String>,
    /// Its OID, when the WAL named it.
    pub database_oid: Option<u32>,
    /// Lost commits that ran in it.
    pub commits: u64,
    /// Row changes in its tables, summed over `tables` (TOAST and catalogs left out).
    pub inserts: u64,
    /// Updates, HOT included.
    pub updates: u64,
    /// The HOT subset of `updates`.
    pub hot_updates: u64,
    /// Deleted tuples.
    pub deletes: u64,
    /// TRUNCATEs.
    pub truncates: u64,
}

/// Lost commits in one minute.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MinuteLoss {
    /// The start of the minute (RFC 3339, UTC).
    pub minute: String,
    /// Lost commits whose commit time falls in it.
    pub commits: u64,
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
    /// Updated tuples, HOT updates included.
    pub updates: u64,
    /// The HOT subset of `updates`.
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
    /// A directory of segments (read along the history passed to [`gather`]).
    Directory(PathBuf),
    /// Files fetched from archives and directories into a private directory, read along the
    /// history passed to [`gather`].
    Files(Arc<Mutex<WalStage>>),
}

/// Whose catalogs map relfilenodes to table names.
#[derive(Clone, Copy, Debug)]
pub enum Names<'a> {
    /// None: relfilenodes are shown unmapped.
    Unmapped,
    /// The former primary's (or any node on the former timeline).
    Former(&'a ConnParams),
    /// The new primary's, when the former primary is gone: the same relfilenodes for relations
    /// that existed at the switchpoint. Those the lost WAL created (new tables, TRUNCATE,
    /// rewrites) stay unmapped: the new primary may have given the same numbers to others.
    NewPrimary(&'a ConnParams),
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
    /// The former primary's databases (`oid → name`), when it could be asked.
    pub databases: BTreeMap<u32, String>,
    /// The names the relfilenodes of the accounting resolved to (kept in an evidence bundle,
    /// so that a re-analysis without a server names the same tables).
    pub names: BTreeMap<RelFileLocator, RelName>,
    /// The segment files that were read, with their paths (for an evidence bundle); empty for
    /// a running node.
    pub segment_files: Vec<(String, PathBuf)>,
    /// The timeline history files fetched from the sources, with their paths.
    pub history_files: Vec<(String, PathBuf)>,
    /// Keeps fetched files (the paths above) alive as long as the evidence.
    pub stage: Option<Arc<Mutex<WalStage>>>,
    /// The heap tuple images after the switchpoint, when the scan kept them.
    pub tuples: Option<crate::wal::tuplelog::TupleLog>,
}

/// Reads and accounts the former timeline's WAL from `switchpoint` to `end` (or the end of
/// valid WAL when `end` is `None`): a node's timeline `history.timeline`, or files read along
/// `history` (the former's timeline and its ancestors). Findings say what was tried and what
/// to know. With `capture`, the bytes read from a node are also kept as segment files (a
/// directory source is copied by the caller, which knows its files).
#[allow(clippy::too_many_arguments)] // the source, the range, what to keep and what to capture
pub async fn gather(
    source: &Source<'_>,
    names_from: Names<'_>,
    opts: &SessionOptions,
    history: &TimelineHistory,
    switchpoint: Lsn,
    end: Option<Lsn>,
    capture: Option<&crate::wal::capture::WalCapture>,
    scan_opts: &ScanOptions,
) -> (Result<Evidence, ScanError>, Vec<Finding>) {
    let tli = history.timeline;
    let mut findings = Vec::new();
    let mut coverage = None;
    let mut segment_files = Vec::new();
    let mut stage_kept = None;
    let (scan, label) = match source {
        Source::Directory(dir) => {
            let label = format!("directory {}", dir.display());
            // The segment size from the newest of the former's timelines with a file here.
            let opened = std::iter::once(tli)
                .chain(history.entries.iter().rev().map(|e| e.parent))
                .map(|t| WalDir::open(dir, t))
                .try_fold(None, |first_err, r| match r {
                    Ok(w) => Err(w),
                    Err(e) => Ok(first_err.or(Some(e))),
                });
            let wal = match opened {
                Err(w) => w.along(history),
                Ok(e) => {
                    let e = e.unwrap_or_else(|| crate::wal::WalError::MissingSegment {
                        file: format!("{:08X}????????????????", tli.0),
                        lsn: switchpoint,
                        dir: dir.display().to_string(),
                    });
                    return (Err(e.into()), findings);
                }
            };
            let seg_size = wal.segment_size();
            let result = step_back(
                |start| {
                    let w = wal.clone();
                    let o = scan_opts.clone();
                    async move {
                        tokio::task::spawn_blocking(move || {
                            scan::scan_wal(&w, start, end, switchpoint, &o)
                        })
                        .await
                        .map_err(|e| ScanError::Task(e.to_string()))?
                    }
                },
                switchpoint,
                seg_size,
                scan_opts.horizon,
            )
            .await;
            if let Ok(s) = &result {
                let read = segments_read(&wal, s, &|_| label.clone());
                segment_files = read
                    .iter()
                    .map(|(n, p, _)| (n.clone(), p.clone()))
                    .collect();
                coverage = Some(coverage_of(
                    &wal,
                    s,
                    end,
                    vec![label.clone()],
                    read,
                    Vec::new(),
                ));
            }
            (result, label)
        }
        Source::Files(stage) => {
            let (label, seg_size) = {
                let st = lock(stage);
                (
                    format!("WAL files from {}", st.sources_label()),
                    st.segment_size(),
                )
            };
            let result = step_back(
                |start| {
                    let st = stage.clone();
                    let h = history.clone();
                    let o = scan_opts.clone();
                    async move {
                        tokio::task::spawn_blocking(move || {
                            scan_files(&st, &h, start, end, switchpoint, &o)
                        })
                        .await
                        .map_err(|e| ScanError::Task(e.to_string()))?
                    }
                },
                switchpoint,
                seg_size,
                scan_opts.horizon,
            )
            .await;
            if let Ok(s) = &result {
                let st = lock(stage);
                let wal =
                    WalDir::with_segment_size(st.path(), tli, seg_size).map(|w| w.along(history));
                if let Ok(wal) = wal {
                    let sources_of: BTreeMap<String, String> = st
                        .segments()
                        .map(|f| (f.name.clone(), f.source.clone()))
                        .collect();
                    let read = segments_read(&wal, s, &|name: &str| {
                        sources_of.get(name).cloned().unwrap_or_default()
                    });
                    segment_files = read
                        .iter()
                        .map(|(n, p, _)| (n.clone(), p.clone()))
                        .collect();
                    let disagreements = st
                        .disagreements()
                        .iter()
                        .map(|d| {
                            format!(
                                "{} differs at byte {} between {} (used) and {}",
                                d.file, d.offset, d.used, d.other
                            )
                        })
                        .collect();
                    coverage = Some(coverage_of(
                        &wal,
                        s,
                        end,
                        st.sources().iter().map(|x| x.label()).collect(),
                        read,
                        disagreements,
                    ));
                }
                stage_kept = Some(stage.clone());
            }
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
                            capture,
                            scan_opts,
                            None, // the former primary serves no one: read it at full speed
                        )
                    },
                    switchpoint,
                    *seg_size,
                    scan_opts.horizon,
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
                        severity: FindingId::WalReplicationFailed.severity(),
                        id: FindingId::WalReplicationFailed,
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
                            scan::scan_sql_files(
                                session,
                                tli,
                                *seg_size,
                                start,
                                end,
                                switchpoint,
                                capture,
                                scan_opts,
                            )
                        },
                        switchpoint,
                        *seg_size,
                        scan_opts.horizon,
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

    // Names from the former primary's catalogs.
    let mut rels: BTreeSet<RelFileLocator> = scan.lost.tables.iter().map(|t| t.rel).collect();
    rels.extend(scan.lost.sequences.iter().map(|s| s.rel));
    let (names, problems, databases) = match names_from {
        Names::Former(p) => names::resolve(p, opts, &rels).await,
        Names::NewPrimary(p) => {
            let known: BTreeSet<RelFileLocator> = rels
                .difference(&scan.created_after_switchpoint)
                .copied()
                .collect();
            let (names, mut problems, databases) = names::resolve(p, opts, &known).await;
            problems.push(NAMES_FROM_NEW_PRIMARY.into());
            (names, problems, databases)
        }
        Names::Unmapped => (
            BTreeMap::new(),
            vec!["no connection to the former primary: relfilenodes are shown unmapped".into()],
            BTreeMap::new(),
        ),
    };
    // The complete list of lost transactions, renamed into place now that decoding ended.
    let mut list_file = None;
    let mut scan = scan;
    if let Some(list) = scan.list.take() {
        match list.finish() {
            Ok(w) => list_file = Some(w.path.display().to_string()),
            Err(e) => findings.push(
                Finding::new(
                    FindingId::LostXidsFileFailed,
                    format!("the complete list of lost transactions could not be written: {e}"),
                )
                .with_hint(
                    "free space or fix the permissions of that directory, or name another file, and run again",
                ),
            ),
        }
    }
    let mut ev = account(scan, &label, names, databases, problems);
    ev.transactions.lost_xids_file = list_file;
    if let Some(c) = &coverage {
        findings.extend(coverage_findings(c, &ev.transactions));
    }
    ev.transactions.coverage = coverage;
    ev.history_files = stage_kept
        .as_ref()
        .map(|st| {
            lock(st)
                .histories()
                .map(|f| (f.name.clone(), f.path.clone()))
                .collect()
        })
        .unwrap_or_default();
    ev.segment_files = segment_files;
    ev.stage = stage_kept;
    (Ok(ev), findings)
}

/// The caveat of a report whose table names come from the new primary.
const NAMES_FROM_NEW_PRIMARY: &str = "the former primary was not read: table names come from the new primary's catalogs; relations the lost WAL created or rewrote show as relfilenodes";

/// Turns a scan into the evidence: the report section, with the relfilenodes named from
/// `names`, the databases from `databases` (`oid → name`), and the caveats of the scan followed
/// by `notes`.
pub fn account(
    mut scan: Scan,
    label: &str,
    names: BTreeMap<RelFileLocator, RelName>,
    databases: BTreeMap<u32, String>,
    notes: Vec<String>,
) -> Evidence {
    let mut caveats = Vec::new();
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
    caveats.extend(notes);
    let transactions = summarize(&scan, label, &names, &databases, caveats);
    let tuples = scan.tuples.take();
    Evidence {
        transactions,
        lost: scan.lost,
        created_after_switchpoint: scan.created_after_switchpoint,
        prepared_before_scan: scan.prepared_before_scan,
        databases,
        names,
        segment_files: Vec::new(),
        history_files: Vec::new(),
        stage: None,
        tuples,
    }
}

/// Locks the stage (a panic elsewhere cannot leave it inconsistent: it only caches files).
fn lock(stage: &Mutex<WalStage>) -> std::sync::MutexGuard<'_, WalStage> {
    stage.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fetches the segments from `start` on along `history` (until one is missing, or up to the
/// known `end`), then decodes them. The first segment must exist.
fn scan_files(
    stage: &Mutex<WalStage>,
    history: &TimelineHistory,
    start: Lsn,
    end: Option<Lsn>,
    switchpoint: Lsn,
    opts: &ScanOptions,
) -> Result<Scan, ScanError> {
    let wal = {
        let mut st = lock(stage);
        let seg = st.segment_size();
        let wal = WalDir::with_segment_size(st.path(), history.timeline, seg)?.along(history);
        let first = start.segment_number(seg);
        st.set_oldest_needed(&segment_file_name(
            wal.timeline_of_segment(first),
            first,
            seg,
        ));
        let last = end.map(|e| e.segment_number(seg));
        let mut segno = first;
        while last.is_none_or(|l| segno <= l) {
            if !st.fetch_segment(wal.timeline_of_segment(segno), segno)? {
                if segno == first {
                    return Err(ArchiveError::NotFound {
                        file: segment_file_name(wal.timeline_of_segment(segno), segno, seg),
                        lsn: start,
                        sources: st.sources_label(),
                    }
                    .into());
                }
                break;
            }
            segno += 1;
        }
        wal
    };
    scan::scan_wal(&wal, start, end, switchpoint, opts)
}

/// The segment files a scan read: `(name, path, source)` from the scan start to where it stopped.
fn segments_read(
    wal: &WalDir,
    scan: &Scan,
    source_of: &dyn Fn(&str) -> String,
) -> Vec<(String, PathBuf, String)> {
    let seg = wal.segment_size();
    let stop = scan
        .end
        .as_ref()
        .map(|e| e.lsn)
        .or(scan.lost.end_lsn)
        .unwrap_or(scan.start);
    (scan.start.segment_number(seg)..=stop.segment_number(seg))
        .filter_map(|segno| wal.find_segment(segno))
        .map(|(path, name)| {
            let source = source_of(&name);
            (name, path, source)
        })
        .collect()
}

/// How far the files went, and what no source held.
fn coverage_of(
    wal: &WalDir,
    scan: &Scan,
    end: Option<Lsn>,
    sources: Vec<String>,
    read: Vec<(String, PathBuf, String)>,
    disagreements: Vec<String>,
) -> Coverage {
    let seg = wal.segment_size();
    let stop = scan.end.as_ref();
    let covered_to = stop
        .map(|e| e.lsn)
        .or(scan.lost.end_lsn)
        .unwrap_or(scan.start);
    let in_partial = stop
        .and_then(|e| e.file.as_deref())
        .is_some_and(|f| f.contains(".partial"));
    let (mut complete, reason) = match stop.map(|e| &e.reason) {
        Some(EndReason::RequestedEnd) => (true, "the former primary's end of WAL was reached".to_string()),
        Some(EndReason::EndOfInput { .. }) | None => (
            false,
            format!(
                "no source holds {}, the next segment",
                segment_file_name(
                    wal.timeline_of_segment(covered_to.segment_number(seg)),
                    covered_to.segment_number(seg),
                    seg
                )
            ),
        ),
        Some(_) if in_partial => (
            false,
            format!(
                "the WAL read ends in {}, a copy cut short (a promoted node's copy up to its switchpoint, or a segment still being received): what the former primary wrote after it is unknown",
                stop.and_then(|e| e.file.clone()).unwrap_or_default()
            ),
        ),
        Some(r) => (
            true,
            format!(
                "the WAL ends inside {} ({r})",
                stop.and_then(|e| e.file.clone()).unwrap_or_else(|| "a segment".into())
            ),
        ),
    };
    // A known end that was not reached: something is missing whatever the decoder saw.
    if end.is_some_and(|e| {
        covered_to < e && !matches!(stop.map(|s| &s.reason), Some(EndReason::RequestedEnd))
    }) {
        complete = false;
    }
    let mut missing = Vec::new();
    if !complete {
        let mut segno = covered_to.segment_number(seg);
        while wal.find_segment(segno).is_some() && !in_partial {
            segno += 1;
        }
        let last = end.map_or(segno, |e| e.segment_number(seg).max(segno));
        for s in segno..=last.min(segno + 63) {
            missing.push(segment_file_name(wal.timeline_of_segment(s), s, seg));
        }
        if last > segno + 63 {
            missing.push(format!("… {} more", last - segno - 63));
        }
    }
    Coverage {
        sources,
        covered_from: scan.start,
        covered_to,
        complete,
        uncovered_from: (!complete).then_some(covered_to),
        uncovered_to: if complete {
            None
        } else {
            end.filter(|e| *e > covered_to)
        },
        missing_segments: missing,
        reason,
        segments: read
            .into_iter()
            .map(|(file, _, source)| SegmentRead { file, source })
            .collect(),
        disagreements,
    }
}

/// Findings about the files' coverage: a lower bound, and sources that disagree.
fn coverage_findings(c: &Coverage, t: &Transactions) -> Vec<Finding> {
    let mut out = Vec::new();
    if !c.complete {
        let to = c
            .uncovered_to
            .map_or_else(|| "an unknown end".to_string(), |l| l.to_string());
        out.push(Finding {
            severity: FindingId::WalCoverageIncomplete.severity(),
            id: FindingId::WalCoverageIncomplete,
            message: format!(
                "the WAL evidence covers {} to {} only; {} to {} was in no source ({}): at least {} transaction(s) were lost, possibly more ({})",
                c.covered_from,
                c.covered_to,
                c.uncovered_from.unwrap_or(c.covered_to),
                to,
                if c.missing_segments.is_empty() { "-".into() } else { c.missing_segments.join(", ") },
                t.lost_commits,
                c.reason
            ),
            hint: Some("find the missing segments (the former primary's pg_wal, files still marked .ready in pg_wal/archive_status, another archive copy) and pass them with --former-wal-dir DIR alongside the archive".into()),
        });
    }
    for d in &c.disagreements {
        out.push(Finding {
            severity: FindingId::WalSourcesDisagree.severity(),
            id: FindingId::WalSourcesDisagree,
            message: format!("two sources hold different bytes for the same WAL: {d}"),
            hint: Some("check which copy belongs to the former primary (an archive shared by several clusters, or a stale copy); pass only the right one".into()),
        });
    }
    out
}

/// The finding for WAL that could not be read: what failed and which grant would help.
pub fn unreadable_finding(e: &ScanError) -> Finding {
    Finding {
        severity: FindingId::WalUnreadable.severity(),
        id: FindingId::WalUnreadable,
        message: format!("the former timeline's WAL could not be read, so lost transactions were not counted: {e}"),
        hint: Some("give the role the REPLICATION attribute (plus a pg_hba.conf replication line), or GRANT EXECUTE ON FUNCTION pg_read_binary_file(text, bigint, bigint) TO it; or copy the former primary's pg_wal and pass --former-wal-dir".into()),
    }
}

/// The segment size of the first segment of `tli` in `dir`, or 16 MB.
pub fn dir_seg_size(dir: &std::path::Path, tli: TimelineId) -> u64 {
    crate::wal::source::WalDir::open(dir, tli)
        .map(|w| w.segment_size())
        .unwrap_or(16 * 1024 * 1024)
}

/// The finding for a WAL archive that does not hold the lost WAL's first segment.
pub fn unreadable_files_finding(e: &ScanError) -> Finding {
    Finding {
        severity: FindingId::WalUnreadable.severity(),
        id: FindingId::WalUnreadable,
        message: format!("the former timeline's WAL is not in the sources, so lost transactions were not counted: {e}"),
        hint: Some("a crashed former primary leaves its last segment unarchived: look in its pg_wal (or a copy) and pass it with --former-wal-dir; check the archive's path or stanza".into()),
    }
}

/// The start of the segment `back` segments before the one holding `switchpoint`.
fn scan_start(switchpoint: Lsn, seg_size: u64, back: u64) -> Option<Lsn> {
    let segno = switchpoint.segment_number(seg_size).checked_sub(back)?;
    Some(Lsn(segno * seg_size))
}

/// Scans from the switchpoint's segment, stepping back a segment at a time while lost
/// transactions were already running at the first RUNNING_XACTS record read (or, when
/// `need_horizon`, while no xid before the switchpoint was read); keeps the earliest scan that
/// could be read.
async fn step_back<F, Fut>(
    mut scan: F,
    switchpoint: Lsn,
    seg_size: u64,
    need_horizon: bool,
) -> Result<Scan, ScanError>
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
                    && (s.new_side_first_xid.is_some() || !need_horizon);
                best = Some(s);
                if done {
                    break;
                }
            }
            Err(e) if best.is_none() => return Err(e),
            // A failing archive is an error wherever it fails; a missing older file is not.
            Err(ScanError::Archive(e)) if !e.is_not_found() => return Err(ScanError::Archive(e)),
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
    databases: &BTreeMap<u32, String>,
    caveats: Vec<String>,
) -> Transactions {
    let lost = &scan.lost;
    let ts = |t: Option<crate::wal::xact::PgTimestamp>| {
        t.and_then(|t| t.to_offset_date_time()).and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
    };
    let db_name = |db: Option<u32>| db.and_then(|d| databases.get(&d).cloned());

    // Per database: the commits from the accounting, the rows from the tables below.
    let mut dbs: BTreeMap<Option<u32>, DatabaseLoss> = lost
        .databases
        .iter()
        .map(|d| {
            (
                d.db_id,
                DatabaseLoss {
                    database: db_name(d.db_id),
                    database_oid: d.db_id,
                    commits: d.commits,
                    inserts: 0,
                    updates: 0,
                    hot_updates: 0,
                    deletes: 0,
                    truncates: 0,
                },
            )
        })
        .collect();

    // Per table: TOAST and the table itself merge under the owner's name.
    let mut tables: BTreeMap<(Option<String>, String), TableLoss> = BTreeMap::new();
    for t in &lost.tables {
        let mut name = names.get(&t.rel).cloned().unwrap_or_else(|| RelName {
            kind: "unknown".into(),
            ..RelName::default()
        });
        if name.kind == "unknown" && is_catalog_file(&t.rel) {
            name.kind = "catalog".into();
        }
        let key_name = name.table.clone().unwrap_or_else(|| t.rel.to_string());
        let database = name
            .database
            .clone()
            .or_else(|| (t.rel.db != 0).then(|| db_name(Some(t.rel.db))).flatten());
        let e = tables
            .entry((database.clone(), key_name))
            .or_insert_with(|| TableLoss {
                database: database.clone(),
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
            e.updates += t.counts.updates + t.counts.hot_updates;
            e.hot_updates += t.counts.hot_updates;
            e.deletes += t.counts.deletes;
            e.truncates += t.counts.truncates;
        }
        if name.kind != "toast" && name.kind != "catalog" && !t.catalog {
            let d = dbs.entry(Some(t.rel.db)).or_insert_with(|| DatabaseLoss {
                database: db_name(Some(t.rel.db)),
                database_oid: Some(t.rel.db),
                commits: 0,
                inserts: 0,
                updates: 0,
                hot_updates: 0,
                deletes: 0,
                truncates: 0,
            });
            d.inserts += t.counts.inserts;
            d.updates += t.counts.updates + t.counts.hot_updates;
            d.hot_updates += t.counts.hot_updates;
            d.deletes += t.counts.deletes;
            d.truncates += t.counts.truncates;
        }
    }

    // Per lost transaction, the same classes as per table: user-table rows, catalog rows, and
    // TOAST chunks (in neither), from the per-relation counts the accountant keeps per commit.
    let class = |rel: &RelFileLocator| -> RowKind {
        match names.get(rel).map_or("unknown", |n| n.kind.as_str()) {
            "toast" => RowKind::Toast,
            "catalog" => RowKind::Catalog,
            "unknown" if is_catalog_file(rel) => RowKind::Catalog,
            _ => RowKind::User,
        }
    };
    let rows_of = |c: &crate::wal::accounting::LostCommit| {
        let mut e = XidRows::default();
        for (rel, n) in &c.per_rel {
            match class(rel) {
                RowKind::Toast => {}
                RowKind::Catalog => e.catalog += n.inserts + n.updates + n.hot_updates + n.deletes,
                RowKind::User => {
                    e.inserts += n.inserts;
                    e.updates += n.updates + n.hot_updates;
                    e.hot_updates += n.hot_updates;
                    e.deletes += n.deletes;
                }
            }
        }
        e
    };
    let tables: Vec<TableLoss> = tables.into_values().collect();
    let user = tables.iter().filter(|x| x.kind != "catalog");
    // The first and the last lost commits, whatever the accountant kept.
    let kept = &lost.lost_commits;
    let shown: Vec<&crate::wal::accounting::LostCommit> = if kept.len() > 2 * scan::INLINE_LOST_XIDS
    {
        kept.iter()
            .take(scan::INLINE_LOST_XIDS)
            .chain(kept.iter().skip(kept.len() - scan::INLINE_LOST_XIDS))
            .collect()
    } else {
        kept.iter().collect()
    };
    let minute = |t: crate::wal::xact::PgTimestamp| {
        let mut out = Vec::with_capacity(32);
        lostlist::push_rfc3339_micros(&mut out, t.unix_micros());
        String::from_utf8(out).unwrap_or_default()
    };

    Transactions {
        row_changes: user
            .clone()
            .map(|x| x.inserts + x.updates + x.deletes)
            .sum(),
        tables_changed: user.count(),
        lost_ddl_relations: Vec::new(),
        lost_ddl_unnamed: Vec::new(),
        source: label.to_string(),
        scan_start_lsn: scan.start,
        end_lsn: lost.end_lsn,
        end_reason: scan.end.as_ref().map(|e| e.reason.to_string()),
        wal_format: scan.pg_version,
        lost_commits: lost.lost_commit_count as usize,
        lost_xids_omitted: lost.lost_commit_count - shown.len() as u64,
        lost_xids: shown
            .into_iter()
            .map(|c| {
                let rows = rows_of(c);
                LostXid {
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
                    inserts: rows.inserts,
                    updates: rows.updates,
                    hot_updates: rows.hot_updates,
                    deletes: rows.deletes,
                    catalog_rows: rows.catalog,
                }
            })
            .collect(),
        lost_xids_file: None,
        databases: dbs.into_values().collect(),
        commits_per_minute: lost
            .commits_per_minute
            .iter()
            .map(|m| MinuteLoss {
                minute: minute(m.minute),
                commits: m.commits,
            })
            .collect(),
        first_lost_commit_time: ts(lost.first_lost_commit_time),
        last_lost_commit_time: ts(lost.last_lost_commit_time),
        aborts_after_switchpoint: lost.abort_count as usize,
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
        tables,
        lost_ddl: lost.lost_ddl_count as usize,
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
        touched_tuples: lost.touched_tuple_count as usize,
        walinspect: None,
        new_side_first_xid: scan.new_side_first_xid,
        caveats,
        coverage: None,
    }
}

/// How a touched tuple counts: a user-table row, a system catalog row, or a TOAST chunk.
enum RowKind {
    User,
    Catalog,
    Toast,
}

/// One lost transaction's rows by class.
#[derive(Clone, Default)]
struct XidRows {
    inserts: u64,
    updates: u64,
    hot_updates: u64,
    deletes: u64,
    catalog: u64,
}

/// A relation file numbered below `FirstNormalObjectId`: a system catalog's.
fn is_catalog_file(rel: &RelFileLocator) -> bool {
    rel.rel < crate::wal::accounting::FIRST_NORMAL_OBJECT_ID
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
    /// The names of the databases the lost transactions wrote in (on the former primary),
    /// sorted; databases whose name is unknown are left out (the caveats say why).
    pub fn touched_databases(&self) -> Vec<String> {
        let mut oids: BTreeSet<u32> = self
            .lost
            .lost_commits
            .iter()
            .filter_map(|c| c.db_id)
            .collect();
        oids.extend(self.lost.tables.iter().map(|t| t.rel.db));
        let mut out: Vec<String> = oids
            .into_iter()
            .filter(|d| *d != 0)
            .filter_map(|d| self.databases.get(&d).cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}
