//! `failover-verify compare`: read both nodes, place their timelines, account the lost WAL,
//! and report.

use std::path::PathBuf;
use std::time::Instant;

use crate::checks::Catalog;
use crate::cli::CompareArgs;
use crate::divergence::{analyze, human_bytes, Analysis, Divergence, Verdict};
use crate::evidence::lostlist::{self, ListTarget};
use crate::evidence::scan::ScanOptions;
use crate::evidence::{self, Evidence, Source};
use crate::finding::{Finding, FindingId};
use crate::lsn::{Lsn, TimelineId};
use crate::node::NodeFacts;
use crate::pg::conninfo::ConnParams;
use crate::pg::session::SessionOptions;
use crate::report::{NodeSection, Report, SCHEMA_VERSION};
use crate::timeline::TimelineHistory;
use crate::wal::accounting::Detail;

use super::{now_rfc3339, tool_id, CommandError, Outcome};

/// The parsed inputs of a comparison.
#[derive(Debug, Clone)]
pub struct CompareInput {
    /// The promoted node.
    pub new_primary: ConnParams,
    /// The node that was primary before the failover (or any node left on its timeline).
    pub former_primary: Option<ConnParams>,
    /// A directory holding the former timeline's WAL segments.
    pub former_wal_dir: Option<PathBuf>,
    /// The former timeline, when it cannot be asked.
    pub former_timeline: Option<TimelineId>,
    /// Timeouts for every session.
    pub session: SessionOptions,
    /// The checks to run after the divergence analysis (`None`: `--no-checks`).
    pub checks: Option<Catalog>,
    /// The row diff's options (`None`: `--no-tables`).
    pub tables: Option<crate::diff::DiffOptions>,
    /// What Patroni discovery (`--patroni`) found, for the report.
    pub patroni: Option<crate::patroni::Discovery>,
    /// Where to write an evidence bundle (`--evidence-dir`).
    pub evidence_dir: Option<PathBuf>,
    /// The command line with conninfo strings redacted, for the bundle's index.
    pub command_line: String,
}

impl CompareInput {
    /// Parses the flags (conninfo strings with the process environment, timeouts).
    pub fn from_args(args: &CompareArgs) -> Result<Self, CommandError> {
        let parse = |flag: &'static str, s: &str| {
            ConnParams::parse_with_process_env(s).map_err(|e| CommandError::Usage {
                flag,
                message: e.to_string(),
            })
        };
        if args.former_primary.is_none()
            && args.former_wal_dir.is_none()
            && args.patroni.urls.is_empty()
        {
            return Err(CommandError::Usage {
                flag: "--former-primary",
                message: "name the former primary (a conninfo), or its WAL with --former-wal-dir"
                    .into(),
            });
        }
        let (connect_timeout, statement_timeout, lock_timeout) = args.timeouts.durations();
        let mut patroni = patroni_discovery(&args.patroni, connect_timeout)?;
        if let Some(d) = &mut patroni {
            // The section forgets the choices that flags override.
            if args.new_primary.is_some() {
                d.section.new_primary = None;
            }
            if args.former_primary.is_some() || args.former_wal_dir.is_some() {
                d.section.former_primary = None;
                d.section.former_primary_rule = None;
            }
        }
        let member = |m: &crate::patroni::Member| patroni_member(&args.patroni, m);
        let new_primary = match (&args.new_primary, &patroni) {
            (Some(s), _) => parse("--new-primary", s)?,
            (None, Some(d)) => member(d.new_primary()?)?,
            (None, None) => {
                return Err(CommandError::Usage {
                    flag: "--new-primary",
                    message: "name the new primary (a conninfo), or pass --patroni".into(),
                })
            }
        };
        let former_primary = match (&args.former_primary, &patroni) {
            (Some(s), _) => Some(parse("--former-primary", s)?),
            (None, Some(d)) if args.former_wal_dir.is_none() => {
                Some(member(&d.former_primary()?.member)?)
            }
            _ => None,
        };
        Ok(CompareInput {
            new_primary,
            former_primary,
            former_wal_dir: args.former_wal_dir.clone(),
            former_timeline: args.former_timeline.map(TimelineId),
            session: SessionOptions {
                connect_timeout,
                statement_timeout,
                lock_timeout,
                ..SessionOptions::default()
            },
            checks: if args.no_checks {
                None
            } else {
                Some(Catalog::load(args.checks_dir.as_deref())?)
            },
            tables: crate::diff::DiffOptions::from_args(&args.tables).map_err(|e| {
                CommandError::Usage {
                    flag: "--tables",
                    message: e.to_string(),
                }
            })?,
            patroni,
            evidence_dir: args.evidence_dir.clone(),
            command_line: crate::bundle::redacted_command_line(
                &std::env::args_os()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect::<Vec<_>>(),
            ),
        })
    }
}

/// Asks Patroni (`--patroni`) for the members and the history, when URLs were given.
pub(crate) fn patroni_discovery(
    args: &crate::cli::PatroniArgs,
    connect_timeout: std::time::Duration,
) -> Result<Option<crate::patroni::Discovery>, CommandError> {
    if args.urls.is_empty() {
        return Ok(None);
    }
    let timeout = std::time::Duration::try_from_secs_f64(args.timeout.max(0.1))
        .unwrap_or(std::time::Duration::from_secs(10));
    let opts = crate::patroni::HttpOptions {
        connect_timeout: connect_timeout.min(timeout),
        timeout,
    };
    Ok(Some(crate::patroni::discover(&args.urls, opts)?))
}

/// A Patroni member's connection parameters: its host and port, `--patroni-conninfo` and PG*.
pub(crate) fn patroni_member(
    args: &crate::cli::PatroniArgs,
    m: &crate::patroni::Member,
) -> Result<ConnParams, CommandError> {
    crate::patroni::member_conninfo(m, &args.conninfo, &|k| std::env::var(k).ok())
        .map_err(CommandError::from)
}

/// Findings about Patroni discovery: a tie in choosing the former primary, URLs that did not
/// answer, and a promotion in `/history` that disagrees with the new primary's history file.
fn patroni_findings(
    d: &crate::patroni::Discovery,
    divergence: Option<&Divergence>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if let (Some(_), Ok(c)) = (&d.section.former_primary, &d.former_primary) {
        if !c.tied_with.is_empty() {
            out.push(Finding {
                severity: FindingId::PatroniFormerAmbiguous.severity(),
                id: FindingId::PatroniFormerAmbiguous,
                message: format!(
                    "Patroni cannot tell the former primary apart: {} and {} stayed on the old timeline with the same WAL; {} was compared",
                    c.member.name,
                    c.tied_with.join(", "),
                    c.member.name
                ),
                hint: Some("name the former leader with --former-primary; any of them holds the lost WAL as far as it was replicated".into()),
            });
        }
    }
    if !d.section.unanswered.is_empty() {
        out.push(Finding {
            severity: FindingId::PatroniUnanswered.severity(),
            id: FindingId::PatroniUnanswered,
            message: format!(
                "Patroni URLs that did not answer: {}",
                d.section.unanswered.join("; ")
            ),
            hint: None,
        });
    }
    if let (Some(p), Some(dv)) = (&d.section.promotion, divergence) {
        let same = dv.former_timeline.0 == p.parent_timeline
            && dv.switchpoint_lsn == Some(p.switchpoint_lsn);
        let covered = dv.timeline_path.iter().any(|t| t.0 == p.parent_timeline);
        if !same && covered {
            out.push(Finding {
                severity: FindingId::PatroniHistoryDisagrees.severity(),
                id: FindingId::PatroniHistoryDisagrees,
                message: format!(
                    "Patroni's last promotion ({}) is not the fork the nodes show (timeline {} ended at {})",
                    crate::report::patroni::promotion_line(p),
                    dv.former_timeline,
                    dv.switchpoint_lsn.map_or_else(|| "-".into(), |l| l.to_string())
                ),
                hint: Some("check that the compared nodes are the ones Patroni promoted and demoted".into()),
            });
        }
    }
    out
}

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
    let former_read = async {
        match &input.former_primary {
            Some(p) => Some(super::read_node(p, &input.session).await),
            None => None,
        }
    };
    let (new, former) = tokio::join!(
        super::read_node(&input.new_primary, &input.session),
        former_read
    );
    crate::timing::record("compare: read both nodes' facts", started);
    let mut findings = new.findings;
    let Some(new_facts) = new.facts else {
        return Err(CommandError::NewPrimary(
            new.section.error.unwrap_or_else(|| "unreadable".into()),
        ));
    };
    let (former_section, former_facts, former_session) = match former {
        Some(f) => {
            findings.extend(f.findings);
            (f.section, f.facts, f.session)
        }
        None => (
            NodeSection {
                target: "(not connected: WAL from --former-wal-dir)".into(),
                ..NodeSection::default()
            },
            None,
            None,
        ),
    };

    // Timelines and WAL positions.
    let mut analysis = match (&former_facts, &input.former_wal_dir) {
        (Some(former), _) => analyze(&new_facts, former),
        (None, Some(dir)) => analyze_from_dir(&new_facts, dir, input.former_timeline),
        (None, None) => {
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

    // The lost WAL, decoded: which transactions, when, which tables.
    let mut transactions = None;
    let mut attribution = None;
    let mut former_side: Option<crate::diff::walguided::SideWal> = None;
    let mut touched_databases: Vec<String> = Vec::new();
    let wal_range = analysis
        .divergence
        .as_ref()
        .and_then(|d| d.switchpoint_lsn.map(|sp| (d.clone(), sp)));
    if let Some((d, switchpoint)) = wal_range {
        let worth_reading = matches!(analysis.verdict, Verdict::Loss)
            || (analysis.verdict == Verdict::Inconclusive && input.former_wal_dir.is_some());
        if worth_reading {
            let source = match (
                &input.former_wal_dir,
                &input.former_primary,
                &former_session,
                &former_facts,
            ) {
                (Some(dir), _, _, _) => Some(Source::Directory(dir.clone())),
                (None, Some(params), Some(session), Some(facts)) => Some(Source::Node {
                    params,
                    session,
                    can_replicate: facts.can_replicate,
                    seg_size: facts.wal_segment_size,
                }),
                _ => None,
            };
            if let Some(source) = source {
                let end = former_facts.as_ref().map(|_| d.former_end_lsn);
                let names_from = former_facts.as_ref().and(input.former_primary.as_ref());
                // The row diff needs every lost commit and touched tuple; without it the
                // accounting stays bounded, and the complete list goes to the export directory.
                let row_diff = input.tables.is_some() && former_facts.is_some();
                let list = input
                    .tables
                    .as_ref()
                    .and_then(|o| o.export_dir.as_ref())
                    .map(|dir| ListTarget::at(dir.join(lostlist::EXPORT_FILE_NAME)));
                let scan_opts = ScanOptions {
                    detail: if row_diff {
                        Detail::Full
                    } else {
                        ScanOptions::bounded(None).detail
                    },
                    list,
                    horizon: row_diff,
                };
                let t = Instant::now();
                let (evidence, more) = evidence::gather(
                    &source,
                    names_from,
                    &input.session,
                    d.former_timeline,
                    switchpoint,
                    end,
                    capture,
                    &scan_opts,
                )
                .await;
                crate::timing::record("compare: former timeline's WAL", t);
                findings.extend(more);
                if let Err(e) = &evidence {
                    findings.push(evidence::unreadable_finding(e));
                    wal_missing = Some(format!("the former timeline's WAL could not be read: {e}"));
                }
                if let Ok(mut ev) = evidence {
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
                    let (rels, unnamed) = evidence::ddl::name_lost_ddl(
                        names_from,
                        Some(&input.new_primary),
                        &input.session,
                        &ev.lost,
                        &ev.created_after_switchpoint,
                        &ev.databases,
                        ev.transactions.new_side_first_xid,
                    )
                    .await;
                    ev.transactions.lost_ddl_relations = rels;
                    ev.transactions.lost_ddl_unnamed = unnamed;
                    crate::timing::record("compare: name the lost DDL", t);
                    touched_databases = ev.touched_databases();
                    settle_with_wal(&mut analysis, &ev, former_facts.is_none());
                    findings.extend(transaction_findings(&ev, "--export-dir DIR"));
                    attribution = Some(ev.attribution());
                    former_side = Some(
                        crate::diff::walguided::SideWal::from_accounting(
                            &ev.lost,
                            std::mem::take(&mut ev.created_after_switchpoint),
                        )
                        .with_prepared_before_scan(&ev.prepared_before_scan),
                    );
                    transactions = Some(ev.transactions);
                }
            }
        }
    }

    // Which rows: table checksums down to single rows, attributed with the lost xids.
    let tables = match (&input.tables, &input.former_primary, &former_facts) {
        (Some(opts), Some(former), Some(_))
            if matches!(analysis.verdict, Verdict::Loss | Verdict::NoLoss) =>
        {
            let attribution = attribution.unwrap_or_default();
            // Every database the lost WAL touched is compared, not only the conninfo's.
            let mut opts = opts.clone();
            opts.databases = touched_databases.clone();
            let opts = &opts;
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

    // Declarative checks (checks/*.toml, --checks-dir): their own section, not the verdict.
    let checks = match &input.checks {
        Some(catalog) => {
            crate::checks::run_checks(catalog, new.session.as_ref(), former_session.as_ref()).await
        }
        None => Vec::new(),
    };

    if analysis.verdict == Verdict::Loss {
        findings.push(Finding {
            severity: FindingId::KeepEvidence.severity(),
            id: FindingId::KeepEvidence,
            message: "The former primary holds the only copy of the lost WAL.".into(),
            hint: Some("do not pg_rewind, reinitialise or let Patroni rejoin it until the lost transactions are accounted for".into()),
        });
    }
    if let Some(d) = &input.patroni {
        findings.extend(patroni_findings(d, analysis.divergence.as_ref()));
    }
    findings.sort_by_key(|f| f.severity);
    // A part that could not run (the WAL, a check) leaves the report incomplete, whatever the verdict.
    let incomplete = analysis.verdict == Verdict::Inconclusive
        || findings.iter().any(|f| {
            matches!(
                f.id,
                FindingId::WalUnreadable
                    | FindingId::DatabaseNotCompared
                    | FindingId::DatabasesUnknown
            )
        })
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
        patroni: input.patroni.as_ref().map(|d| d.section.clone()),
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

/// What the run kept for its evidence bundle besides the report.
struct Sealed {
    /// The WAL range decoded, if any.
    wal: Option<crate::bundle::WalRange>,
    /// Why no WAL was decoded, when the reading failed.
    wal_missing: Option<String>,
    /// The relfilenode names the accounting used.
    names: std::collections::BTreeMap<crate::wal::RelFileLocator, crate::evidence::names::RelName>,
    /// The former primary's databases (`oid → name`).
    databases: std::collections::BTreeMap<u32, String>,
}

/// Adds the `evidence_bundle` finding to `report`, then writes the bundle and renames it into
/// place; on error nothing is left at or beside the target.
fn seal_bundle(
    staging: crate::bundle::Staging,
    report: &mut Report,
    input: &CompareInput,
    new_facts: &NodeFacts,
    former_facts: Option<&NodeFacts>,
    sealed: Sealed,
) -> Result<(), CommandError> {
    let wal_missing = match &sealed.wal {
        Some(_) => None,
        None => Some(sealed.wal_missing.unwrap_or_else(|| {
            format!(
                "the run decoded no WAL (verdict {}: {})",
                report.verdict.as_str(),
                report.explanation
            )
        })),
    };
    let (history, notes) = crate::bundle::writer::histories(&[
        ("new-primary", Some(new_facts)),
        ("former-primary", former_facts),
    ]);
    let target = staging.target().display().to_string();
    report.findings.push(Finding {
        severity: FindingId::EvidenceBundle.severity(),
        id: FindingId::EvidenceBundle,
        message: format!(
            "evidence bundle written to {target}{}",
            if sealed.wal.is_some() {
                " with the lost range's WAL segments"
            } else {
                " (no WAL: none was decoded)"
            }
        ),
        hint: Some(format!(
            "check it with `sha256sum -c SHA256SUMS` in that directory; re-analyse it without any server with `failover-verify compare --from-evidence {target}`"
        )),
    });
    let t = Instant::now();
    let contents = crate::bundle::BundleContents {
        report,
        command: input.command_line.clone(),
        wal: sealed.wal,
        wal_missing,
        history,
        names: &sealed.names,
        databases: &sealed.databases,
        end_from_wal: former_facts.is_none(),
        notes,
        secrets: [Some(&input.new_primary), input.former_primary.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|p| p.password().map(str::to_string))
            .collect(),
    };
    // Hashing and writing gigabytes of WAL blocks: keep the runtime's other tasks going.
    let finish = || staging.finish(contents);
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(finish),
        _ => finish(),
    }?;
    crate::timing::record("compare: evidence bundle", t);
    Ok(())
}

/// The WAL-guided planner: the former side's changes from the decoded lost WAL, the new side's
/// read from the new primary's own timeline since the switchpoint, when the row diff plans.
fn walguided_planner<'a>(
    input: &CompareInput,
    new_facts: &NodeFacts,
    divergence: Option<&Divergence>,
    mode: crate::diff::TablesMode,
    attribution: &crate::diff::Attribution,
    former_side: Option<crate::diff::walguided::SideWal>,
) -> crate::diff::walguided::WalGuidedPlanner<'a> {
    use crate::diff::walguided::{NewSideWal, SideWal, WalGuidedPlanner};
    let former = former_side.unwrap_or_else(|| {
        SideWal::unreadable("the former timeline's WAL after the switchpoint was not decoded")
    });
    let new_source: Box<dyn NewSideWal> =
        match divergence.and_then(|d| d.switchpoint_lsn.map(|sp| (d.new_timeline, sp))) {
            Some((timeline, switchpoint)) => Box::new(evidence::newside::NewSideSource {
                params: input.new_primary.clone(),
                session: input.session,
                can_replicate: new_facts.can_replicate,
                seg_size: new_facts.wal_segment_size,
                timeline,
                switchpoint,
            }),
            None => Box::new(SideWal::unreadable("the switchpoint is unknown")),
        };
    let opts = input.tables.as_ref();
    let full = crate::diff::FullTablePlanner {
        chunk_rows: opts.map_or(crate::diff::options::DEFAULT_CHUNK_ROWS, |o| o.chunk_rows),
        max_rate: opts.and_then(|o| o.max_rate),
    };
    WalGuidedPlanner::new(mode, attribution, former, new_source, full)
}

/// Places the former timeline when only its WAL directory is available: the switchpoint is
/// where that timeline ends in the new primary's history; the end of WAL comes from decoding.
fn analyze_from_dir(new: &NodeFacts, dir: &std::path::Path, tli: Option<TimelineId>) -> Analysis {
    let inconclusive = |explanation: String| Analysis {
        verdict: Verdict::Inconclusive,
        explanation,
        divergence: None,
    };
    let Some(history) = &new.history else {
        return inconclusive(
            "The new primary's timeline history could not be read, so the switchpoint is unknown."
                .into(),
        );
    };
    let tli = tli.or_else(|| newest_ancestor_in_dir(history, dir));
    let Some(tli) = tli else {
        return inconclusive(format!(
            "{} holds no WAL segments of any ancestor of timeline {}; pass --former-timeline.",
            dir.display(),
            history.timeline
        ));
    };
    let Some(switchpoint) = history.end_of(tli) else {
        return inconclusive(format!(
            "Timeline {tli} is not an ancestor of the new primary's timeline {}.",
            history.timeline
        ));
    };
    Analysis {
        verdict: Verdict::Inconclusive,
        explanation: format!(
            "The former primary's WAL in {} has not been decoded yet.",
            dir.display()
        ),
        divergence: Some(Divergence {
            former_timeline: tli,
            new_timeline: new.timeline,
            switchpoint_lsn: Some(switchpoint),
            former_end_lsn: switchpoint,
            lost_wal_bytes: 0,
            timeline_path: history
                .entries
                .iter()
                .map(|e| e.parent)
                .skip_while(|t| *t != tli)
                .chain(std::iter::once(history.timeline))
                .collect(),
        }),
    }
}

/// The newest ancestor timeline (in `history`) with at least one segment file in `dir`.
fn newest_ancestor_in_dir(history: &TimelineHistory, dir: &std::path::Path) -> Option<TimelineId> {
    let prefixes: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(|n| n.chars().take(8).collect()))
        .collect();
    history
        .entries
        .iter()
        .rev()
        .map(|e| e.parent)
        .find(|t| prefixes.iter().any(|p| *p == format!("{:08X}", t.0)))
}

/// With the lost WAL decoded, the verdict rests on commits, not bytes: background records
/// (checkpoints, running-xacts) after the switchpoint lose nothing.
pub(crate) fn settle_with_wal(analysis: &mut Analysis, ev: &Evidence, end_from_wal: bool) {
    let t = &ev.transactions;
    let Some(d) = analysis.divergence.as_mut() else {
        return;
    };
    let switchpoint = d.switchpoint_lsn.unwrap_or_default();
    if end_from_wal {
        let end = ev.lost.end_lsn.unwrap_or(switchpoint).max(switchpoint);
        d.former_end_lsn = end;
        d.lost_wal_bytes = end.saturating_bytes_since(switchpoint);
    }
    let bytes = human_bytes(d.lost_wal_bytes);
    let window = match (&t.first_lost_commit_time, &t.last_lost_commit_time) {
        (Some(a), Some(b)) if a != b => format!(" committed between {a} and {b}"),
        (Some(a), _) => format!(" committed at {a}"),
        _ => String::new(),
    };
    if t.lost_commits > 0 || !t.in_doubt.is_empty() {
        analysis.verdict = Verdict::Loss;
        // User tables only: the rows lost DDL wrote into system catalogs are not row changes
        // (the lost DDL has its own line), and TOAST chunks count against their table.
        let mut s = format!(
            "{} transaction(s){window} exist only on the former primary's timeline {}: {} of WAL after the switchpoint {switchpoint}, {} row change(s) in {} table(s)",
            t.lost_commits,
            d.former_timeline,
            bytes,
            t.row_changes,
            t.tables_changed,
        );
        if !t.in_doubt.is_empty() {
            s.push_str(&format!(
                ", and {} prepared transaction(s) in doubt",
                t.in_doubt.len()
            ));
        }
        s.push('.');
        analysis.explanation = s;
    } else {
        analysis.verdict = Verdict::NoLoss;
        analysis.explanation = if d.lost_wal_bytes == 0 {
            format!(
                "The former primary's WAL ends at the switchpoint {switchpoint}: nothing was lost."
            )
        } else {
            format!(
                "The former primary wrote {bytes} of WAL after the switchpoint {switchpoint}, but no transaction committed there ({} record(s): checkpoints, running-xacts and the like): no committed data was lost.",
                t.records_after_switchpoint
            )
        };
    }
}

/// Findings that follow from the row diff.
fn table_findings(t: &crate::diff::TablesReport) -> Vec<Finding> {
    let c = &t.totals;
    let mut out = Vec::new();
    let lost = c.lost_insert + c.lost_update + c.lost_delete;
    if lost > 0 || c.conflict > 0 {
        out.push(Finding {
            severity: FindingId::LostRows.severity(),
            id: FindingId::LostRows,
            message: format!(
                "{lost} row(s) lost ({} inserted, {} updated, {} deleted on the former primary only) and {} conflict(s) changed on both sides",
                c.lost_insert, c.lost_update, c.lost_delete, c.conflict
            ),
            hint: Some(if t.export.is_some() {
                "review the recovery script in the export directory before running it on the new primary".into()
            } else {
                "re-run with --export-dir DIR to get the lost rows as CSV and a reviewable recovery script".into()
            }),
        });
    }
    let former_only: Vec<&crate::diff::TableReport> = t
        .tables
        .iter()
        .filter(|x| x.presence == crate::diff::Presence::FormerOnly)
        .collect();
    if !former_only.is_empty() {
        let rows: u64 = former_only.iter().map(|x| x.rows_compared).sum();
        out.push(Finding {
            severity: FindingId::TablesOnlyOnFormer.severity(),
            id: FindingId::TablesOnlyOnFormer,
            message: format!(
                "{} table(s) exist only on the former primary (created by lost transactions?), with {rows} row(s) not in the row counts above: {}",
                former_only.len(),
                former_only
                    .iter()
                    .map(|x| format!("{}.{}.{} ({} row(s))", x.database, x.schema, x.table, x.rows_compared))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            hint: Some("recreate them on the new primary from the former primary (pg_dump --schema-only -t TABLE, then its rows) before re-applying lost rows".into()),
        });
    }
    if c.unexplained > 0 {
        out.push(Finding {
            severity: FindingId::UnexplainedRows.severity(),
            id: FindingId::UnexplainedRows,
            message: format!(
                "{} differing row(s) fit no rule (neither a lost nor a post-failover write)",
                c.unexplained
            ),
            hint: None,
        });
    }
    if c.unknown > 0 {
        out.push(Finding {
            severity: FindingId::UnattributedRows.severity(),
            id: FindingId::UnattributedRows,
            message: format!("{} differing row(s) could not be attributed: the lost transactions were not decoded", c.unknown),
            hint: Some("give the role access to the former primary's WAL (see wal_unreadable) to tell lost writes from post-failover ones".into()),
        });
    }
    for d in &t.skipped_databases {
        out.push(Finding {
            severity: FindingId::DatabaseNotCompared.severity(),
            id: FindingId::DatabaseNotCompared,
            message: format!(
                "database {} holds lost changes but its rows were not compared: {}",
                d.database, d.reason
            ),
            hint: Some(d.hint.clone()),
        });
    }
    for w in &t.warnings {
        out.push(Finding {
            severity: FindingId::TablesNote.severity(),
            id: FindingId::TablesNote,
            message: w.clone(),
            hint: None,
        });
    }
    out
}

/// Findings that follow from the decoded WAL; `list_flag` is how to ask for the complete list
/// of lost transactions (`--export-dir DIR`, `--lost-xids-file PATH`).
pub(crate) fn transaction_findings(ev: &Evidence, list_flag: &str) -> Vec<Finding> {
    let t = &ev.transactions;
    let mut out = Vec::new();
    if t.lost_xids_omitted > 0 {
        let shown = t.lost_xids.len();
        out.push(Finding {
            severity: FindingId::LostXidsAbridged.severity(),
            id: FindingId::LostXidsAbridged,
            message: match &t.lost_xids_file {
                Some(f) => format!(
                    "the report lists {shown} of the {} lost transactions (the first and the last); all of them are in {f}",
                    t.lost_commits
                ),
                None => format!(
                    "the report lists {shown} of the {} lost transactions (the first and the last); {} are left out of the list, not of the counts",
                    t.lost_commits, t.lost_xids_omitted
                ),
            },
            hint: t
                .lost_xids_file
                .is_none()
                .then(|| format!("re-run with {list_flag} to get every lost transaction in a CSV file")),
        });
    }
    if !t.in_doubt.is_empty() {
        out.push(Finding {
            severity: FindingId::PreparedInDoubt.severity(),
            id: FindingId::PreparedInDoubt,
            message: format!(
                "{} transaction(s) were PREPAREd on the former primary after the switchpoint and are unknown to the new primary: {}",
                t.in_doubt.len(),
                t.in_doubt.iter().map(|d| d.gid.clone().unwrap_or_else(|| d.xid.to_string())).collect::<Vec<_>>().join(", ")
            ),
            hint: Some("tell the transaction manager these GIDs were not prepared on the new primary".into()),
        });
    }
    if t.lost_ddl > 0 {
        let named = crate::report::lost_ddl_line(t)
            .map(|l| format!(": {l}"))
            .unwrap_or_default();
        out.push(Finding {
            severity: FindingId::LostDdl.severity(),
            id: FindingId::LostDdl,
            message: format!(
                "{} lost transaction(s) changed the schema (DDL){named}",
                t.lost_ddl
            ),
            hint: Some(
                "re-create those schema changes on the new primary before re-applying rows".into(),
            ),
        });
    }
    if !t.lost_ddl_unnamed.is_empty() {
        out.push(Finding {
            severity: FindingId::LostDdlUnnamed.severity(),
            id: FindingId::LostDdlUnnamed,
            message: format!(
                "lost DDL not named by relation: {}",
                t.lost_ddl_unnamed.join("; ")
            ),
            hint: Some("start the former primary isolated (as a standby with no upstream) and run failover-verify compare --new-primary CONNINFO --former-primary CONNINFO to name them; pg_waldump -p PG_WAL -s SWITCHPOINT -r Transaction lists the relation files each lost commit dropped".into()),
        });
    }
    if !t.sequences.is_empty() {
        out.push(Finding {
            severity: FindingId::SequencesAdvanced.severity(),
            id: FindingId::SequencesAdvanced,
            message: format!("{} sequence(s) advanced on the former primary after the switchpoint", t.sequences.len()),
            hint: Some("advance them on the new primary (setval) past the former primary's values before re-applying lost rows".into()),
        });
    }
    if let Some(w) = &t.walinspect {
        if !w.agrees {
            out.push(Finding {
                severity: FindingId::WalinspectDisagrees.severity(),
                id: FindingId::WalinspectDisagrees,
                message: format!(
                    "pg_walinspect counts {} commit(s) in the same range, the decoder {}",
                    w.commits, t.lost_commits
                ),
                hint: None,
            });
        }
    }
    for c in &t.caveats {
        out.push(Finding {
            severity: FindingId::WalCaveat.severity(),
            id: FindingId::WalCaveat,
            message: c.clone(),
            hint: None,
        });
    }
    out
}

/// Exposed for the `wal` subcommand: `Lsn` parsing with the flag named.
pub fn parse_lsn_flag(flag: &'static str, s: &str) -> Result<Lsn, CommandError> {
    s.parse()
        .map_err(|e: crate::lsn::LsnParseError| CommandError::Usage {
            flag,
            message: e.to_string(),
        })
}
