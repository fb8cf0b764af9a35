//! The compare command's findings: discovery, Patroni, histories, row diff, lost transactions.

use std::sync::{Arc, Mutex};

use crate::commands::CommandError;
use crate::divergence::{human_bytes, Analysis, Divergence, Verdict};
use crate::evidence::Evidence;
use crate::finding::{Finding, FindingId};
use crate::timeline::TimelineHistory;
use crate::wal::archive::WalStage;

/// Findings about a discovery by repmgr, pg_auto_failover or CloudNativePG: a tie in choosing
/// the former primary, and members whose own records could not be read.
pub(super) fn discovery_findings(d: &crate::discovery::Discovery) -> Vec<Finding> {
    let mut out = Vec::new();
    let manager = d.section.manager.label();
    if let (Some(_), Ok(c)) = (&d.section.former_primary, &d.former_primary) {
        if !c.tied_with.is_empty() {
            out.push(
                Finding::new(
                    FindingId::DiscoveryFormerAmbiguous,
                    format!(
                        "{manager} cannot tell the former primary apart: {} and {} fit equally well; {} was compared",
                        c.member.name,
                        c.tied_with.join(", "),
                        c.member.name
                    ),
                )
                .with_hint("name the former primary with --former-primary"),
            );
        }
    }
    if !d.section.unanswered.is_empty() {
        out.push(
            Finding::new(
                FindingId::DiscoveryUnanswered,
                format!(
                    "{manager}: members whose records could not be read: {}",
                    d.section.unanswered.join("; ")
                ),
            )
            .with_hint("a member that cannot be reached was not examined; check it by hand with `failover-verify cluster --primary ... --node CONNINFO`"),
        );
    }
    out
}

/// Findings about Patroni discovery: a tie in choosing the former primary, URLs that did not
/// answer, and a promotion in `/history` that disagrees with the new primary's history file.
pub(super) fn patroni_findings(
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

/// Findings for history files in the archive that contradict a server's: the new primary's
/// timeline and each ancestor (a prefix of its history), and a running former primary's.
pub(super) async fn history_findings(
    stage: &Arc<Mutex<WalStage>>,
    new: &TimelineHistory,
    former: Option<TimelineHistory>,
) -> Result<Vec<Finding>, CommandError> {
    let mut expected: Vec<(TimelineHistory, &'static str)> = Vec::new();
    for t in new.entries.iter().map(|e| e.parent).chain([new.timeline]) {
        if t.0 > 1 {
            if let Some(h) = crate::divergence::implied_history(new, t) {
                expected.push((h, "the new primary"));
            }
        }
    }
    if let Some(f) = former.filter(|f| f.timeline.0 > 1 && !new.contains(f.timeline)) {
        expected.push((f, "the former primary"));
    }
    let st = stage.clone();
    tokio::task::spawn_blocking(move || {
        let mut stage = st.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (want, who) in expected {
            let name = want.timeline.history_file_name();
            let Some(text) = stage.fetch_history(want.timeline)? else {
                continue;
            };
            let from = stage
                .histories()
                .find(|f| f.name == name)
                .map(|f| f.source.clone())
                .unwrap_or_default();
            let line = |h: &TimelineHistory| {
                h.entries
                    .iter()
                    .map(|e| format!("{}→{}", e.parent, e.switchpoint))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let problem = match TimelineHistory::parse(&name, want.timeline, &text) {
                Err(e) => Some(e.to_string()),
                Ok(got) => {
                    let same = got.entries.len() == want.entries.len()
                        && got
                            .entries
                            .iter()
                            .zip(&want.entries)
                            .all(|(a, b)| a.parent == b.parent && a.switchpoint == b.switchpoint);
                    (!same).then(|| format!("it says {}, {who} says {}", line(&got), line(&want)))
                }
            };
            if let Some(problem) = problem {
                out.push(Finding {
                    severity: FindingId::HistoryDisagrees.severity(),
                    id: FindingId::HistoryDisagrees,
                    message: format!("{name} from {from} contradicts {who}'s timeline history: {problem}"),
                    hint: Some("the archive may hold another cluster's files or a reused timeline id (check its path or stanza); the servers' histories were used".into()),
                });
            }
        }
        Ok(out)
    })
    .await?
    .map_err(CommandError::Archive)
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
    if let Some(note) = lower_bound_note(ev) {
        if analysis.verdict == Verdict::NoLoss {
            // Nothing lost in what was read is not "nothing lost": the rest is unknown.
            analysis.verdict = Verdict::Inconclusive;
            analysis.explanation = format!(
                "No transaction committed on the former timeline after the switchpoint {switchpoint} in the WAL that was read (up to {}), but the rest of its WAL was in no source.",
                ev.lost.end_lsn.unwrap_or(switchpoint)
            );
        }
        analysis.explanation.push_str(&note);
    }
}

/// The sentence added to the explanation when the WAL files did not reach the former's end.
pub(super) fn lower_bound_note(ev: &Evidence) -> Option<String> {
    let c = ev.transactions.coverage.as_ref().filter(|c| !c.complete)?;
    Some(format!(
        " The evidence is incomplete: the WAL from {} on was in no source ({}), so these counts are a lower bound.",
        c.uncovered_from.unwrap_or(c.covered_to),
        c.missing_segments.first().map_or("-", String::as_str)
    ))
}

/// The finding for lost transactions that changed more row versions than `--max-lost-rows`:
/// they are counted per table, not compared.
pub(super) fn rows_not_compared(limit: u64, changed: u64) -> Finding {
    Finding::new(
        FindingId::RowsNotCompared,
        format!(
            "the WAL after the switchpoint holds more than {limit} row versions (--max-lost-rows), the lost transactions changed {changed}: they are counted per table (exact), not compared or listed row by row"
        ),
    )
    .with_hint("re-run compare with --max-lost-rows unlimited --export-dir DIR to list every lost row (memory and time grow with the rows: up to about 5 kB per row version)")
}

/// Findings that follow from the row diff.
pub(super) fn table_findings(t: &crate::diff::TablesReport) -> Vec<Finding> {
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
