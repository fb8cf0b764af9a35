//! `failover-verify compare`: read both nodes, place their timelines, account the lost WAL,
//! and report.

use std::path::PathBuf;
use std::time::Instant;

use crate::checks::Catalog;
use crate::cli::CompareArgs;
use crate::divergence::{analyze, human_bytes, Analysis, Divergence, Verdict};
use crate::evidence::{self, Evidence, Source};
use crate::lsn::{Lsn, TimelineId};
use crate::node::NodeFacts;
use crate::pg::conninfo::ConnParams;
use crate::pg::session::SessionOptions;
use crate::report::{Finding, NodeSection, Report, Severity, SCHEMA_VERSION};
use crate::timeline::TimelineHistory;

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
    /// The share of its time the run may keep the new primary busy (`--max-rate 25%`): every
    /// session and WAL stream to it pauses accordingly. `None`: unpaced.
    pub busy_share: Option<f64>,
    /// What Patroni discovery (`--patroni`) found, for the report.
    pub patroni: Option<crate::patroni::Discovery>,
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
        // Before the row diff's options, so that a bad combination is named as --max-rate.
        let throttle =
            crate::diff::Throttle::from_specs(&args.tables.max_rate).map_err(|message| {
                CommandError::Usage {
                    flag: "--max-rate",
                    message,
                }
            })?;
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
            busy_share: throttle.busy_share,
            patroni,
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
                severity: Severity::Warning,
                id: "patroni_former_ambiguous".into(),
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
            severity: Severity::Info,
            id: "patroni_unanswered".into(),
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
                severity: Severity::Warning,
                id: "patroni_history_disagrees".into(),
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
                severity: Severity::Warning,
                id: "former_unreachable".into(),
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
                let t = Instant::now();
                let (evidence, more) = evidence::gather(
                    &source,
                    names_from,
                    &input.session,
                    d.former_timeline,
                    switchpoint,
                    end,
                )
                .await;
                crate::timing::record("compare: former timeline's WAL", t);
                findings.extend(more);
                if let Err(e) = &evidence {
                    findings.push(evidence::unreadable_finding(e));
                }
                if let Ok(mut ev) = evidence {
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
                    settle_with_wal(&mut analysis, &ev, former_facts.is_none());
                    findings.extend(transaction_findings(&ev));
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
            let opts = &crate::diff::DiffOptions {
                new_pacer: pacer.clone(),
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
                    Some(t)
                }
                Err(e) => {
                    findings.push(Finding {
                        severity: Severity::Warning,
                        id: "tables_failed".into(),
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
            severity: Severity::Critical,
            id: "keep_evidence".into(),
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
        || findings.iter().any(|f| f.id == "wal_unreadable")
        || checks.iter().any(|c| {
            matches!(
                c.status,
                crate::checks::CheckStatus::Error | crate::checks::CheckStatus::Skipped
            )
        });
    Ok(Outcome {
        report: Report {
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
        },
        epilogue: None,
    })
}

/// The WAL-guided planner: the former side's changes from the decoded lost WAL, the new side's
/// read from the new primary's own timeline since the switchpoint, when the row diff plans.
fn walguided_planner<'a>(
    input: &CompareInput,
    pacer: Option<std::sync::Arc<crate::pg::Pacer>>,
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
                pacer,
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
        let rows: u64 = t
            .tables
            .iter()
            .map(|x| x.inserts + x.updates + x.hot_updates + x.deletes)
            .sum();
        let mut s = format!(
            "{} transaction(s){window} exist only on the former primary's timeline {}: {} of WAL after the switchpoint {switchpoint}, {rows} row change(s) in {} table(s)",
            t.lost_commits,
            d.former_timeline,
            bytes,
            t.tables.iter().filter(|x| x.kind != "catalog").count(),
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
            severity: Severity::Critical,
            id: "lost_rows".into(),
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
    if c.unexplained > 0 {
        out.push(Finding {
            severity: Severity::Warning,
            id: "unexplained_rows".into(),
            message: format!(
                "{} differing row(s) fit no rule (neither a lost nor a post-failover write)",
                c.unexplained
            ),
            hint: None,
        });
    }
    if c.unknown > 0 {
        out.push(Finding {
            severity: Severity::Warning,
            id: "unattributed_rows".into(),
            message: format!("{} differing row(s) could not be attributed: the lost transactions were not decoded", c.unknown),
            hint: Some("give the role access to the former primary's WAL (see wal_unreadable) to tell lost writes from post-failover ones".into()),
        });
    }
    for w in &t.warnings {
        out.push(Finding {
            severity: Severity::Info,
            id: "tables_note".into(),
            message: w.clone(),
            hint: None,
        });
    }
    out
}

/// Findings that follow from the decoded WAL.
pub(crate) fn transaction_findings(ev: &Evidence) -> Vec<Finding> {
    let t = &ev.transactions;
    let mut out = Vec::new();
    if !t.in_doubt.is_empty() {
        out.push(Finding {
            severity: Severity::Critical,
            id: "prepared_in_doubt".into(),
            message: format!(
                "{} transaction(s) were PREPAREd on the former primary after the switchpoint and are unknown to the new primary: {}",
                t.in_doubt.len(),
                t.in_doubt.iter().map(|d| d.gid.clone().unwrap_or_else(|| d.xid.to_string())).collect::<Vec<_>>().join(", ")
            ),
            hint: Some("tell the transaction manager these GIDs were not prepared on the new primary".into()),
        });
    }
    if t.lost_ddl > 0 {
        out.push(Finding {
            severity: Severity::Warning,
            id: "lost_ddl".into(),
            message: format!(
                "{} lost transaction(s) changed the schema (DDL)",
                t.lost_ddl
            ),
            hint: Some(
                "re-create those schema changes on the new primary before re-applying rows".into(),
            ),
        });
    }
    if !t.sequences.is_empty() {
        out.push(Finding {
            severity: Severity::Warning,
            id: "sequences_advanced".into(),
            message: format!("{} sequence(s) advanced on the former primary after the switchpoint", t.sequences.len()),
            hint: Some("advance them on the new primary (setval) past the former primary's values before re-applying lost rows".into()),
        });
    }
    if let Some(w) = &t.walinspect {
        if !w.agrees {
            out.push(Finding {
                severity: Severity::Warning,
                id: "walinspect_disagrees".into(),
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
            severity: Severity::Info,
            id: "wal_caveat".into(),
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
