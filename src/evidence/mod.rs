//! The former primary's divergent WAL, read and accounted: which transactions were lost.
//!
//! The WAL comes from the best source available, in this order: the physical replication
//! protocol (REPLICATION attribute), the server's `pg_wal` over SQL (`pg_read_binary_file`),
//! a directory (`--former-wal-dir`), or files fetched from WAL archives and directories
//! ([`crate::wal::archive`]) along the former primary's timeline history. Whatever the source,
//! the bytes go through the same sans-IO decoder and the same accountant
//! ([`crate::wal::accounting`]). File sources say which LSN range they covered
//! ([`Coverage`]): what no source held makes the counts a lower bound.

mod coverage;
pub mod ddl;
pub mod lostlist;
mod model;
pub mod names;
pub mod newside;
pub mod scan;
mod summary;

use coverage::{coverage_findings, coverage_of, segments_read};
pub use coverage::{unreadable_files_finding, unreadable_finding};
pub use model::{
    Coverage, DatabaseLoss, InDoubtTx, LostXid, MinuteLoss, SegmentRead, SequenceLoss, TableLoss,
    Transactions, WalinspectCheck,
};
use summary::summarize;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::finding::{Finding, FindingId};
use crate::lsn::{Lsn, TimelineId, Xid};
use crate::pg::session::{Session, SessionOptions};
use crate::pg::ConnParams;
use crate::timeline::TimelineHistory;
use crate::wal::accounting::LostTransactions;
use crate::wal::archive::{ArchiveError, WalStage};
use crate::wal::segment::segment_file_name;
use crate::wal::source::WalDir;
use crate::wal::RelFileLocator;

use names::RelName;
use scan::{Scan, ScanError, ScanOptions};

/// How far back from the switchpoint's segment a scan may start, in segments, to find the
/// earlier changes of transactions that were running at the switchpoint.
const MAX_STEP_BACK_SEGMENTS: u64 = 8;

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
    // The session that names the tables opens, and lists the databases, while the WAL is
    // decoded: it needs no relation.
    let names_params = match names_from {
        Names::Former(p) | Names::NewPrimary(p) => Some(p),
        Names::Unmapped => None,
    };
    let listing = async {
        match names_params {
            Some(p) => Some(names::open(p, opts).await),
            None => None,
        }
    };
    let decoding = async {
        Ok(match source {
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
                        return Err(ScanError::from(e));
                    }
                };
                let seg_size = wal.segment_size();
                let result = step_back(
                    |start, cut_short| {
                        let (w, o) = (wal.clone(), scan_opts.cut_short(cut_short));
                        on_blocking_thread(move || scan::scan_wal(&w, start, end, switchpoint, &o))
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
                    |start, cut_short| {
                        let (st, h) = (stage.clone(), history.clone());
                        let o = scan_opts.cut_short(cut_short);
                        on_blocking_thread(move || scan_files(&st, &h, start, end, switchpoint, &o))
                    },
                    switchpoint,
                    seg_size,
                    scan_opts.horizon,
                )
                .await;
                if let Ok(s) = &result {
                    let st = lock(stage);
                    let wal = WalDir::with_segment_size(st.path(), tli, seg_size)
                        .map(|w| w.along(history));
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
                        |start, _| {
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
                            |start, _| {
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
        })
    };
    let (decoded, listed) = tokio::join!(decoding, listing);
    let (scan, label) = match decoded {
        Ok(d) => d,
        Err(e) => return (Err(e), findings),
    };
    let scan = match scan {
        Ok(s) => s,
        Err(e) => return (Err(e), findings),
    };

    // Names from the former primary's catalogs.
    let mut rels: BTreeSet<RelFileLocator> = scan.lost.tables.iter().map(|t| t.rel).collect();
    rels.extend(scan.lost.sequences.iter().map(|s| s.rel));
    let (names, problems, databases) = match (names_from, listed) {
        (Names::Former(p), Some(listed)) => names::resolve_listed(listed, p, opts, &rels).await,
        (Names::NewPrimary(p), Some(listed)) => {
            let known: BTreeSet<RelFileLocator> = rels
                .difference(&scan.created_after_switchpoint)
                .copied()
                .collect();
            let (names, mut problems, databases) =
                names::resolve_listed(listed, p, opts, &known).await;
            problems.push(NAMES_FROM_NEW_PRIMARY.into());
            (names, problems, databases)
        }
        _ => (
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

/// Runs a scan on the runtime's blocking threads (decoding is CPU work).
async fn on_blocking_thread(
    scan: impl FnOnce() -> Result<Scan, ScanError> + Send + 'static,
) -> Result<Scan, ScanError> {
    tokio::task::spawn_blocking(scan)
        .await
        .map_err(|e| ScanError::Task(e.to_string()))?
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

/// The segment size of the first segment of `tli` in `dir`, or 16 MB.
pub fn dir_seg_size(dir: &std::path::Path, tli: TimelineId) -> u64 {
    crate::wal::source::WalDir::open(dir, tli)
        .map(|w| w.segment_size())
        .unwrap_or(16 * 1024 * 1024)
}

/// The start of the segment `back` segments before the one holding the last WAL byte before
/// `switchpoint` (the switchpoint's own segment, or the one before when the switchpoint is a
/// segment's first byte: a standby fed whole segments from an archive is promoted there).
fn scan_start(switchpoint: Lsn, seg_size: u64, back: u64) -> Option<Lsn> {
    let segno = Lsn(switchpoint.0.saturating_sub(1))
        .segment_number(seg_size)
        .checked_sub(back)?;
    Some(Lsn(segno * seg_size))
}

/// Scans from the segment of the last WAL byte before the switchpoint, stepping back a segment
/// at a time while lost transactions were already running at the first RUNNING_XACTS record
/// read (or, when `need_horizon`, while no xid before the switchpoint was read); keeps the
/// earliest scan that could be read.
///
/// `scan(start, cut_short)`: with `cut_short` a scan may stop as soon as it is certain that an
/// earlier start is needed ([`Scan::cut_short`]), so that a step back costs a few records, not
/// a second pass over the whole loss; a scan that stopped so is read again in full only when
/// no earlier WAL can be read.
async fn step_back<F, Fut>(
    mut scan: F,
    switchpoint: Lsn,
    seg_size: u64,
    need_horizon: bool,
) -> Result<Scan, ScanError>
where
    F: FnMut(Lsn, bool) -> Fut,
    Fut: std::future::Future<Output = Result<Scan, ScanError>>,
{
    let mut best: Option<Scan> = None;
    // The latest start whose scan stopped early, to read in full if nothing earlier can be.
    let mut cut_at: Option<Lsn> = None;
    for back in 0..=MAX_STEP_BACK_SEGMENTS {
        let Some(start) = scan_start(switchpoint, seg_size, back) else {
            break;
        };
        let may_cut = back < MAX_STEP_BACK_SEGMENTS && start.0 >= seg_size;
        match scan(start, may_cut).await {
            Ok(s) if s.cut_short => cut_at = Some(start),
            Ok(s) => {
                // Also step back while no xid precedes the switchpoint in what was read: the
                // row diff needs the new primary's first xid (the switchpoint horizon).
                let done = s.lost.running_at_scan_start.is_empty()
                    && s.prepared_before_scan.is_empty()
                    && (s.new_side_first_xid.is_some() || !need_horizon);
                best = Some(s);
                cut_at = None;
                if done {
                    break;
                }
            }
            Err(e) if best.is_none() && cut_at.is_none() => {
                // A switchpoint on a segment boundary: without the segment before it, start at
                // the switchpoint's own segment (as much as there is).
                let own = Lsn(switchpoint.0 - switchpoint.0 % seg_size);
                let older_gone = !matches!(&e, ScanError::Archive(a) if !a.is_not_found());
                if start < own && older_gone {
                    return scan(own, false).await;
                }
                return Err(e);
            }
            // A failing archive is an error wherever it fails; a missing older file is not.
            Err(ScanError::Archive(e)) if !e.is_not_found() => return Err(ScanError::Archive(e)),
            Err(_) => break, // older WAL is gone: keep what we have
        }
    }
    if let Some(start) = cut_at {
        return scan(start, false).await;
    }
    best.ok_or_else(|| {
        ScanError::Task(format!("no WAL segment before {switchpoint} to start from"))
    })
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
    /// Names the relations the lost DDL created, altered or dropped (see
    /// [`ddl::name_lost_ddl`]: from `former`'s catalogs, else `new`'s) into
    /// `transactions.lost_ddl_relations` and `lost_ddl_unnamed`.
    pub async fn name_lost_ddl(
        &mut self,
        former: Option<&ConnParams>,
        new: Option<&ConnParams>,
        opts: &SessionOptions,
    ) {
        let (rels, unnamed) = ddl::name_lost_ddl(
            former,
            new,
            opts,
            &self.lost,
            &self.created_after_switchpoint,
            &self.databases,
            self.transactions.new_side_first_xid,
        )
        .await;
        self.transactions.lost_ddl_relations = rels;
        self.transactions.lost_ddl_unnamed = unnamed;
    }

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

#[cfg(test)]
mod tests;
