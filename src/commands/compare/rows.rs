//! The row diff's WAL side: the lost rows rebuilt from the decoded WAL, and the WAL-guided planner.

use crate::divergence::Divergence;
use crate::evidence;
use crate::finding::{Finding, FindingId};
use crate::node::NodeFacts;

use super::findings::table_findings;
use super::input::CompareInput;

/// What the lost WAL's scan kept for the rows rebuilt from it.
pub(super) struct WalRowsParts {
    pub(super) log: crate::wal::tuplelog::TupleLog,
    pub(super) created: std::collections::BTreeSet<crate::wal::RelFileLocator>,
    pub(super) lost_ddl: Vec<crate::evidence::ddl::LostDdlRelation>,
    pub(super) incomplete: Option<String>,
}

/// Rebuilds the lost rows from the WAL. Without `live` (the former primary was not read) the
/// result is the row-level report, exported when `--export-dir` asks; with it, any difference
/// between the two is a `wal_rows_disagree` finding.
pub(super) async fn rows_from_wal(
    input: &CompareInput,
    opts: &crate::diff::DiffOptions,
    parts: &WalRowsParts,
    attribution: &crate::diff::Attribution,
    live: Option<&crate::diff::TablesReport>,
) -> (Vec<Finding>, Option<crate::diff::TablesReport>) {
    use crate::diff::walrows;
    let wi = walrows::WalRowsInput {
        log: &parts.log,
        attribution,
        created_after_switchpoint: &parts.created,
        lost_ddl: &parts.lost_ddl,
        incomplete: parts.incomplete.clone(),
        filter: Some(&opts.filter),
    };
    let mut findings = Vec::new();
    let mut rows = match walrows::rows_from_wal(&wi, &input.new_primary, &input.session).await {
        Ok(r) => r,
        Err(e) => {
            findings.push(
                Finding::new(
                    if live.is_some() {
                        FindingId::WalRowsDisagree
                    } else {
                        FindingId::WalRowsNotExamined
                    },
                    format!("the lost rows could not be rebuilt from the WAL: {e}"),
                )
                .with_hint("grant the role SELECT on the tables (e.g. pg_read_all_data) on the new primary, or compare with the former primary reachable"),
            );
            return (findings, None);
        }
    };
    if let Some(live) = live {
        let diffs = walrows::cross_check(live, &rows.report);
        if !diffs.is_empty() {
            findings.push(
                Finding::new(
                    FindingId::WalRowsDisagree,
                    format!(
                        "{} lost row(s) differ between the live row diff and the rows rebuilt from the WAL: {}{}",
                        diffs.len(),
                        diffs.iter().take(5).cloned().collect::<Vec<_>>().join("; "),
                        if diffs.len() > 5 { "; ..." } else { "" }
                    ),
                )
                .with_hint("trust the rows read from the former primary; keep the evidence (--evidence-dir) and report these rows"),
            );
        }
        return (findings, None);
    }
    findings.push(Finding::new(
        FindingId::RowsFromWal,
        format!(
            "the former primary was not read: the lost rows of {} table(s) were rebuilt from its WAL and checked against the new primary by primary key",
            rows.report.tables.len()
        ),
    ));
    findings.append(&mut rows.findings);
    if let Some(dir) = &opts.export_dir {
        match crate::diff::export::write_export(dir, &rows.report) {
            Ok(s) => rows.report.export = Some(s),
            Err(e) => findings.push(
                Finding::new(
                    FindingId::TablesFailed,
                    format!("the recovery export could not be written: {e}"),
                )
                .with_hint("check that the export directory is writable"),
            ),
        }
    }
    findings.extend(table_findings(&rows.report));
    (findings, Some(rows.report))
}

/// The WAL-guided planner: the former side's changes from the decoded lost WAL, the new side's
/// read from the new primary's own timeline since the switchpoint, when the row diff plans.
pub(super) fn walguided_planner<'a>(
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
