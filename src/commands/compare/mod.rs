//! `failover-verify compare`: read both nodes, place their timelines, account the lost WAL,
//! and report.
//!
//! The flags become a [`ComparePlan`] without I/O (`input.rs`); its `resolve` asks the HA
//! manager; [`run`] then gathers, analyses and builds the report.

mod findings;
mod former_wal;
mod input;
mod rows;
mod seal;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::divergence::{analyze, Analysis, Verdict};
use crate::evidence::lostlist::{self, ListTarget};
use crate::evidence::scan::ScanOptions;
use crate::evidence::{self, Source};
use crate::finding::{Finding, FindingId};
use crate::report::{NodeSection, Report, SCHEMA_VERSION};
use crate::timeline::TimelineHistory;
use crate::wal::accounting::Detail;
use crate::wal::archive::{WalSource, WalStage};

use super::{CommandError, Outcome};
use crate::report::{now_rfc3339, tool_id};

use findings::{
    discovery_findings, history_findings, patroni_findings, rows_not_compared, table_findings,
};
pub(crate) use findings::{settle_with_wal, transaction_findings};
use former_wal::{analyze_from_dir, analyze_from_stage};
use input::pin_hosts;
pub use input::{parse_lsn_flag, CompareInput, ComparePlan};
use rows::{rows_from_wal, walguided_planner, WalRowsParts};
use seal::{seal_bundle, Sealed};

/// Runs the comparison and builds the report.
pub async fn run(input: &CompareInput) -> Result<Outcome, CommandError> {
    run_with_progress(input, &crate::diff::NoProgress).await
}

/// [`run`], reporting the row diff's progress to `progress`.
pub async fn run_with_progress(
    input: &CompareInput,
    progress: &dyn crate::diff::Progress,
) -> Result<Outcome, CommandError> {
    let started = Instant::now();
    let generated_at = now_rfc3339();
    let (pinned, new_choice, former_choice) = pin_hosts(input).await?;
    let input = &pinned;
    // The bundle's private directory exists from the start (a bad target fails before any
    // server is asked) and disappears if the run fails.
    let staging = match &input.evidence_dir {
        Some(dir) => Some(crate::bundle::Staging::create(dir)?),
        None => None,
    };
    let capture = staging.as_ref().map(|s| s.capture());
    let mut bundle_wal: Option<crate::bundle::WalRange> = None;
    let mut bundle_names = std::collections::BTreeMap::new();
    let mut bundle_databases = std::collections::BTreeMap::new();
    let mut wal_missing: Option<String> = None;
    // One budget for every session and stream to the new primary; the former primary serves
    // no one and is read at full speed.
    let pacer = input
        .busy_share
        .map(|s| crate::pg::Pacer::watching(&input.new_primary, &input.session, s));
    let former_read = async {
        match &input.former_primary {
            Some(p) => Some(super::read_node(p, &input.session, None).await),
            None => None,
        }
    };
    let (new, former) = tokio::join!(
        super::read_node(&input.new_primary, &input.session, pacer.clone()),
        former_read
    );
    crate::timing::record("compare: read both nodes' facts", started);
    let (mut new, mut former) = (new, former);
    new.section.host_choice = new_choice;
    if let Some(f) = former.as_mut() {
        f.section.host_choice = former_choice;
    }
    let mut findings = std::mem::take(&mut new.findings);
    let Some(new_facts) = new.facts.take() else {
        return Err(CommandError::NewPrimary(new.take_error()));
    };
    let (former_section, former_facts, former_session) = match former {
        Some(f) => {
            findings.extend(f.findings);
            (f.section, f.facts, f.session)
        }
        None => (
            NodeSection {
                target: if input.former_archive.is_empty() {
                    "(not connected: WAL from --former-wal-dir)".into()
                } else {
                    "(not connected: WAL from the archive)".into()
                },
                ..NodeSection::default()
            },
            None,
            None,
        ),
    };

    // WAL files: the archives, with --former-wal-dir tried first, fetched into a private
    // directory as they are needed.
    let stage = if input.former_archive.is_empty() {
        None
    } else {
        let mut sources = Vec::new();
        if let Some(d) = &input.former_wal_dir {
            sources.push(WalSource::Directory(d.clone()));
        }
        sources.extend(input.former_archive.iter().cloned());
        let seg_size = Some(new_facts.wal_segment_size)
            .filter(|s| crate::wal::page::valid_seg_size(*s))
            .unwrap_or(16 * 1024 * 1024);
        let st = WalStage::new(
            sources,
            input.restore_timeout,
            seg_size,
            Some(new_facts.system_identifier),
        )
        .map_err(CommandError::Staging)?;
        Some(Arc::new(Mutex::new(st)))
    };

    // Timelines and WAL positions.
    let mut files_only = former_facts.is_none();
    let mut former_history: Option<TimelineHistory> = former_facts.as_ref().and_then(|f| {
        f.history.clone().or_else(|| {
            new_facts
                .history
                .as_ref()
                .and_then(|h| crate::divergence::implied_history(h, f.timeline))
        })
    });
    let mut analysis = match (&former_facts, &stage, &input.former_wal_dir) {
        (Some(former), _, _) => analyze(&new_facts, former),
        (None, Some(st), _) => {
            let (a, h) = analyze_from_stage(&new_facts, st, input.former_timeline).await?;
            former_history = h;
            a
        }
        (None, None, Some(dir)) => {
            let (a, h) = analyze_from_dir(&new_facts, dir, input.former_timeline);
            former_history = h;
            a
        }
        (None, None, None) => {
            let why = former_section.error.clone().unwrap_or_default();
            findings.push(Finding {
                severity: FindingId::FormerUnreachable.severity(),
                id: FindingId::FormerUnreachable,
                message: format!("former primary: {why}"),
                hint: Some("start the former primary isolated (as a standby with no upstream) so it can be inspected, pass the right conninfo, or copy its pg_wal and pass --former-wal-dir".into()),
            });
            Analysis {
                verdict: Verdict::Inconclusive,
                explanation: format!("The former primary could not be read ({why}), so whether it wrote WAL past the switchpoint is unknown."),
                divergence: None,
            }
        }
    };

    // A rewound former primary no longer holds the lost WAL; the archive may.
    if let (Verdict::Rewound, Some(st)) = (analysis.verdict, &stage) {
        findings.push(Finding {
            severity: FindingId::FormerRewoundArchiveRead.severity(),
            id: FindingId::FormerRewoundArchiveRead,
            message: "the former primary already follows the new timeline: its lost WAL was read from the archive instead".into(),
            hint: None,
        });
        let (a, h) = analyze_from_stage(&new_facts, st, input.former_timeline).await?;
        analysis = a;
        former_history = h;
        files_only = true;
    }
    if let (Some(st), Some(h)) = (&stage, &new_facts.history) {
        let live_former = former_facts
            .as_ref()
            .filter(|_| !files_only)
            .and_then(|f| f.history.clone());
        findings.extend(history_findings(st, h, live_former).await?);
    }

    // The lost WAL, decoded: which transactions, when, which tables.
    let mut transactions = None;
    let mut attribution = None;
    let mut former_side: Option<crate::diff::walguided::SideWal> = None;
    let mut wal_rows_input: Option<WalRowsParts> = None;
    let mut touched_databases: Vec<String> = Vec::new();
    let mut downstream: Option<crate::downstream::Downstream> = None;
    // More rows changed than --max-lost-rows: counted per table, not compared.
    let mut rows_over_limit = false;
    let wal_range = analysis
        .divergence
        .as_ref()
        .and_then(|d| d.switchpoint_lsn.map(|sp| (d.clone(), sp)));
    if let Some((d, switchpoint)) = wal_range {
        let worth_reading = matches!(analysis.verdict, Verdict::Loss)
            || (analysis.verdict == Verdict::Inconclusive
                && (input.former_wal_dir.is_some() || stage.is_some()));
        if worth_reading {
            // In order: the running node (unless rewound), else a directory alone; then the
            // archive (with the directory as its first source). The first that reads wins.
            let mut sources = Vec::new();
            let live = (!files_only)
                .then_some(())
                .and(input.former_primary.as_ref())
                .zip(former_session.as_ref())
                .zip(former_facts.as_ref());
            match (&input.former_wal_dir, &stage) {
                (Some(dir), None) => sources.push(Source::Directory(dir.clone())),
                _ => {
                    if let Some(((params, session), facts)) = live {
                        sources.push(Source::Node {
                            params,
                            session,
                            can_replicate: facts.can_replicate,
                            seg_size: facts.wal_segment_size,
                        });
                    }
                }
            }
            if let Some(st) = &stage {
                sources.push(Source::Files(st.clone()));
            }
            let history = former_history
                .clone()
                .unwrap_or_else(|| TimelineHistory::root(d.former_timeline));
            let end = former_facts
                .as_ref()
                .filter(|_| !files_only)
                .map(|_| d.former_end_lsn);
            // Names from the former primary's catalogs; with only files, from the new
            // primary's (the same relfilenodes, unless rewritten after the switchpoint).
            let names_from = match (files_only, &input.former_primary) {
                (true, _) => evidence::Names::NewPrimary(&input.new_primary),
                (false, Some(p)) => evidence::Names::Former(p),
                (false, None) => evidence::Names::Unmapped,
            };
            // The row diff needs every lost commit and touched tuple; without it the
            // accounting stays bounded, and the complete list goes to the export directory.
            let row_diff = input.tables.is_some() && former_facts.is_some() && !files_only;
            // Without the former primary the rows come from the WAL's tuple images; with it,
            // they are decoded as well, to check the live row diff against.
            let keep_tuples = input.tables.is_some();
            let list = input
                .tables
                .as_ref()
                .and_then(|o| o.export_dir.as_ref())
                .map(|dir| ListTarget::at(dir.join(lostlist::EXPORT_FILE_NAME)));
            let scan_opts = ScanOptions {
                detail: if row_diff || keep_tuples {
                    Detail::Full
                } else {
                    ScanOptions::bounded(None).detail
                },
                list,
                horizon: row_diff || keep_tuples,
                tuples: keep_tuples,
                // Past the row limit the accounting falls back to bounded detail: the rows
                // are counted, not compared (rows_not_compared below).
                max_tuples: input
                    .tables
                    .as_ref()
                    .map(|o| o.max_lost_rows)
                    .filter(|n| *n != u64::MAX),
                stop_when_earlier_needed: false,
            };
            let mut evidence = None;
            let count = sources.len();
            for (i, source) in sources.iter().enumerate() {
                let t = Instant::now();
                let (ev, more) = evidence::gather(
                    source,
                    names_from,
                    &input.session,
                    &history,
                    switchpoint,
                    end,
                    capture,
                    &scan_opts,
                )
                .await;
                crate::timing::record("compare: former timeline's WAL", t);
                findings.extend(more);
                match ev {
                    Err(evidence::scan::ScanError::Archive(e)) if !e.is_not_found() => {
                        return Err(CommandError::Archive(e));
                    }
                    Err(e) if i + 1 < count => findings.push(Finding {
                        severity: FindingId::WalSourceFailed.severity(),
                        id: FindingId::WalSourceFailed,
                        message: format!("reading the former timeline's WAL failed, trying the archive next: {e}"),
                        hint: None,
                    }),
                    other => {
                        evidence = Some(other);
                        break;
                    }
                }
            }
            if let Some(evidence) = evidence {
                if let Err(e) = &evidence {
                    findings.push(match e {
                        evidence::scan::ScanError::Archive(_) => {
                            evidence::unreadable_files_finding(e)
                        }
                        _ => evidence::unreadable_finding(e),
                    });
                    wal_missing = Some(format!("the former timeline's WAL could not be read: {e}"));
                }
                if let Ok(mut ev) = evidence {
                    // Consumers that already received some of the lost transactions.
                    if let Some(session) = &former_session {
                        let t = Instant::now();
                        downstream =
                            Some(crate::downstream::examine(session, switchpoint, Some(&ev)).await);
                        crate::timing::record("compare: downstream consumers", t);
                    }
                    if let (Some(c), Some(_)) = (capture, &stage) {
                        // Segments fetched from an archive go into the bundle as read.
                        for (name, path) in &ev.segment_files {
                            if let Err(e) = c.copy_file(path, name) {
                                findings.push(Finding::new(
                                    FindingId::WalCaveat,
                                    format!(
                                        "{name} could not be copied into the evidence bundle: {e}"
                                    ),
                                ));
                            }
                        }
                    }
                    if staging.is_some() {
                        bundle_wal = Some(crate::bundle::WalRange {
                            timeline: d.former_timeline,
                            segment_size: match (&input.former_wal_dir, &former_facts) {
                                (None, Some(f)) => f.wal_segment_size,
                                _ => evidence::dir_seg_size(
                                    input.former_wal_dir.as_deref().unwrap_or(".".as_ref()),
                                    d.former_timeline,
                                ),
                            },
                            switchpoint,
                            scan_start: ev.transactions.scan_start_lsn,
                            requested_end: end,
                            decoded_end: ev.transactions.end_lsn,
                            source: ev.transactions.source.clone(),
                            from_dir: input.former_wal_dir.clone(),
                        });
                        bundle_names = std::mem::take(&mut ev.names);
                        bundle_databases = ev.databases.clone();
                    }
                    if let (Some(session), Some(end_lsn)) = (&former_session, ev.lost.end_lsn) {
                        // pg_walinspect wants the MAXALIGNed end of the last record.
                        let t = Instant::now();
                        ev.transactions.walinspect = evidence::walinspect_check(
                            session,
                            switchpoint,
                            end_lsn.align8(),
                            ev.transactions.lost_commits,
                        )
                        .await;
                        crate::timing::record("compare: pg_walinspect check", t);
                    }
                    let t = Instant::now();
                    let former_names = match names_from {
                        evidence::Names::Former(p) => Some(p),
                        _ => None,
                    };
                    ev.name_lost_ddl(former_names, Some(&input.new_primary), &input.session)
                        .await;
                    crate::timing::record("compare: name the lost DDL", t);
                    touched_databases = ev.touched_databases();
                    if let Some(limit) = ev.lost.tuple_limit_exceeded {
                        rows_over_limit = true;
                        findings.push(rows_not_compared(limit, ev.lost.touched_tuple_count));
                    }
                    settle_with_wal(&mut analysis, &ev, files_only);
                    findings.extend(transaction_findings(&ev, "--export-dir DIR"));
                    attribution = Some(crate::diff::Attribution::from_evidence(&ev));
                    wal_rows_input = ev.tuples.take().map(|log| WalRowsParts {
                        log,
                        created: ev.created_after_switchpoint.clone(),
                        lost_ddl: ev.transactions.lost_ddl_relations.clone(),
                        incomplete: None,
                    });
                    former_side = Some(
                        crate::diff::walguided::SideWal::from_accounting(
                            &ev.lost,
                            std::mem::take(&mut ev.created_after_switchpoint),
                        )
                        .with_prepared_before_scan(&ev.prepared_before_scan),
                    );
                    if let (Some(w), Some(f)) = (&mut wal_rows_input, &former_side) {
                        w.incomplete = f.incomplete.clone();
                    }
                    transactions = Some(ev.transactions);
                }
            }
        }
    }

    // Without decoded WAL, the consumers' positions alone say who received WAL past the fork.
    if let (None, Some(session), Verdict::Loss, Some(sp)) = (
        &downstream,
        &former_session,
        analysis.verdict,
        analysis.divergence.as_ref().and_then(|d| d.switchpoint_lsn),
    ) {
        downstream = Some(crate::downstream::examine(session, sp, None).await);
    }
    // The former primary was not read (WAL from files only): its consumers are unknown.
    if let (None, None, Verdict::Loss, Some(sp)) = (
        &downstream,
        &former_session,
        analysis.verdict,
        analysis.divergence.as_ref().and_then(|d| d.switchpoint_lsn),
    ) {
        downstream = Some(crate::downstream::Downstream {
            switchpoint: sp,
            consumers: Vec::new(),
            not_examined: Some(
                "the former primary was not read (the lost WAL came from files), so its replication slots and walsenders are unknown".into(),
            ),
        });
    }
    if let Some(d) = &downstream {
        let lost = transactions
            .as_ref()
            .map(|t: &evidence::Transactions| t.lost_commits as u64);
        findings.extend(crate::downstream::findings(d, lost));
    }

    // Which rows: table checksums down to single rows, attributed with the lost xids.
    let tables = match (&input.tables, &input.former_primary, &former_facts) {
        (Some(opts), Some(former), Some(_))
            if !files_only
                && !rows_over_limit
                && matches!(analysis.verdict, Verdict::Loss | Verdict::NoLoss) =>
        {
            let attribution = attribution.clone().unwrap_or_default();
            // Every database the lost WAL touched is compared, not only the conninfo's, and the
            // new primary's sessions share the run's pacing budget.
            let opts = &crate::diff::DiffOptions {
                new_pacer: pacer.clone(),
                databases: touched_databases.clone(),
                ..opts.clone()
            };
            let t = Instant::now();
            let result = match opts.mode {
                crate::diff::TablesMode::Full => {
                    crate::diff::compare_tables(
                        &input.new_primary,
                        former,
                        &input.session,
                        opts,
                        &attribution,
                        progress,
                    )
                    .await
                }
                mode => {
                    let planner = walguided_planner(
                        input,
                        pacer.clone(),
                        &new_facts,
                        analysis.divergence.as_ref(),
                        mode,
                        &attribution,
                        former_side.take(),
                    );
                    crate::diff::compare_tables_with(
                        &input.new_primary,
                        former,
                        &input.session,
                        opts,
                        &attribution,
                        &planner,
                        progress,
                    )
                    .await
                }
            };
            crate::timing::record("compare: row diff", t);
            match result {
                Ok(t) => {
                    findings.extend(table_findings(&t));
                    if transactions.is_none()
                        && analysis.verdict == Verdict::Loss
                        && !opts.all_databases
                    {
                        findings.push(Finding {
                            severity: FindingId::DatabasesUnknown.severity(),
                            id: FindingId::DatabasesUnknown,
                            message: format!(
                                "the lost WAL was not decoded, so the databases it wrote in are unknown: only {} was row-compared",
                                t.databases.join(", ")
                            ),
                            hint: Some("re-run with --all-databases to compare every database, or make the lost WAL readable (see wal_unreadable)".into()),
                        });
                    }
                    Some(t)
                }
                Err(e) => {
                    findings.push(Finding {
                        severity: FindingId::TablesFailed.severity(),
                        id: FindingId::TablesFailed,
                        message: format!("the row diff could not run: {e}"),
                        hint: Some("grant SELECT on the compared tables (e.g. GRANT pg_read_all_data TO role), or skip it with --no-tables".into()),
                    });
                    None
                }
            }
        }
        _ => None,
    };

    // The lost rows from the WAL: the row-level report when the former primary was not read,
    // a cross-check of the live rows when it was.
    let mut tables = tables;
    // (Past --max-lost-rows the scan kept no tuples, so there are no parts.)
    if let (Some(opts), Some(parts), Some(attribution)) =
        (&input.tables, &wal_rows_input, &attribution)
    {
        let former_read = former_facts.is_some() && !files_only;
        if analysis.verdict == Verdict::Loss && (tables.is_some() || !former_read) {
            let t = Instant::now();
            let (more, report) =
                rows_from_wal(input, opts, parts, attribution, tables.as_ref()).await;
            crate::timing::record("compare: rows from the WAL", t);
            findings.extend(more);
            if tables.is_none() {
                tables = report;
            }
        }
    }

    // Declarative checks (checks/*.toml, --checks-dir): their own section, not the verdict.
    let checks = match &input.checks {
        Some(catalog) => {
            crate::checks::run_checks(catalog, new.session.as_ref(), former_session.as_ref()).await
        }
        None => Vec::new(),
    };

    let from_files = transactions
        .as_ref()
        .is_some_and(|t: &evidence::Transactions| t.coverage.is_some());
    if analysis.verdict == Verdict::Loss && files_only && from_files {
        findings.push(Finding {
            severity: FindingId::KeepEvidence.severity(),
            id: FindingId::KeepEvidence,
            message: "The WAL files read hold the only copy of the lost transactions.".into(),
            hint: Some("keep those archive files (do not let retention expire them) until the lost transactions are accounted for".into()),
        });
    } else if analysis.verdict == Verdict::Loss {
        findings.push(Finding {
            severity: FindingId::KeepEvidence.severity(),
            id: FindingId::KeepEvidence,
            message: "The former primary holds the only copy of the lost WAL.".into(),
            hint: Some("do not pg_rewind, reinitialise or let Patroni rejoin it until the lost transactions are accounted for".into()),
        });
    }
    if let Some(d) = &input.discovery {
        match &d.patroni {
            Some(p) => findings.extend(patroni_findings(p, analysis.divergence.as_ref())),
            None => findings.extend(discovery_findings(d)),
        }
    }
    findings.sort_by_key(|f| f.severity);
    // A part that could not run (the WAL, a check) leaves the report incomplete, whatever the verdict.
    let incomplete = analysis.verdict == Verdict::Inconclusive
        || findings.iter().any(|f| {
            matches!(
                f.id,
                FindingId::WalUnreadable
                    | FindingId::WalRowsNotExamined
                    | FindingId::DatabaseNotCompared
                    | FindingId::DatabasesUnknown
            )
        })
        || transactions
            .as_ref()
            .and_then(|t| t.coverage.as_ref())
            .is_some_and(|c| !c.complete)
        || checks.iter().any(|c| {
            matches!(
                c.status,
                crate::checks::CheckStatus::Error | crate::checks::CheckStatus::Skipped
            )
        });
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        tool: tool_id(),
        generated_at,
        duration_ms: started.elapsed().as_millis() as u64,
        verdict: analysis.verdict,
        explanation: analysis.explanation,
        incomplete,
        new_primary: new.section,
        former_primary: former_section,
        divergence: analysis.divergence,
        transactions,
        findings,
        checks,
        tables,
        patroni: input
            .discovery
            .as_ref()
            .and_then(|d| d.patroni.as_ref())
            .map(|d| d.section.clone()),
        discovery: input.discovery.as_ref().map(|d| d.section.clone()),
        downstream,
    };
    if let Some(staging) = staging {
        let sealed = Sealed {
            wal: bundle_wal,
            wal_missing,
            names: bundle_names,
            databases: bundle_databases,
        };
        seal_bundle(
            staging,
            &mut report,
            input,
            &new_facts,
            former_facts.as_ref(),
            sealed,
        )?;
    }
    Ok(Outcome {
        report,
        epilogue: None,
    })
}

#[cfg(test)]
mod tests;
