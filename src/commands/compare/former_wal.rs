//! The former timeline placed from WAL files alone, when the former primary cannot be read.

use std::sync::{Arc, Mutex};

use crate::commands::CommandError;
use crate::divergence::{Analysis, Divergence, Verdict};
use crate::lsn::{Lsn, TimelineId};
use crate::node::NodeFacts;
use crate::timeline::TimelineHistory;
use crate::wal::archive::WalStage;

/// Places the former timeline when only its WAL directory is available: the switchpoint is
/// where that timeline ends in the new primary's history (or, for another branch, where the
/// two histories part); the end of WAL comes from decoding.
pub(super) fn analyze_from_dir(
    new: &NodeFacts,
    dir: &std::path::Path,
    tli: Option<TimelineId>,
) -> (Analysis, Option<TimelineHistory>) {
    let label = dir.display().to_string();
    let probe = |history: &TimelineHistory| Ok(newest_ancestor_in_dir(history, dir));
    let history_of =
        |t: TimelineId| Ok(std::fs::read_to_string(dir.join(t.history_file_name())).ok());
    match analyze_from_files(new, &label, tli, probe, history_of) {
        Ok(r) => r,
        Err(e) => (
            Analysis {
                verdict: Verdict::Inconclusive,
                explanation: e.to_string(),
                divergence: None,
            },
            None,
        ),
    }
}

/// The newest ancestor timeline (in `history`) with at least one segment file in `dir`.
pub(super) fn newest_ancestor_in_dir(
    history: &TimelineHistory,
    dir: &std::path::Path,
) -> Option<TimelineId> {
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

/// Like [`analyze_from_dir`] for WAL archives: the former timeline is the newest ancestor whose
/// segment holding its switchpoint a source has (or `--former-timeline`).
pub(super) async fn analyze_from_stage(
    new: &NodeFacts,
    stage: &Arc<Mutex<WalStage>>,
    tli: Option<TimelineId>,
) -> Result<(Analysis, Option<TimelineHistory>), CommandError> {
    let new = new.clone();
    let st = stage.clone();
    tokio::task::spawn_blocking(move || {
        let mut stage = st.lock().unwrap_or_else(|e| e.into_inner());
        let seg = stage.segment_size();
        let label = stage.sources_label();
        let stage = std::cell::RefCell::new(&mut *stage);
        let probe = |history: &TimelineHistory| {
            for e in history.entries.iter().rev() {
                if stage
                    .borrow_mut()
                    .fetch_segment(e.parent, e.switchpoint.segment_number(seg))?
                {
                    return Ok(Some(e.parent));
                }
            }
            // None archived: the last promotion's loser, whose missing segment the scan names.
            Ok(history.entries.last().map(|e| e.parent))
        };
        let history_of = |t: TimelineId| stage.borrow_mut().fetch_history(t);
        analyze_from_files(&new, &label, tli, probe, history_of)
    })
    .await?
    .map_err(CommandError::Archive)
}

/// The former timeline and its history from WAL files alone: `tli` if given, else the newest
/// ancestor that `probe` finds in the sources; the former's history is implied by the new
/// primary's for an ancestor, else read with `history_of` (its `.history` file).
pub(super) fn analyze_from_files(
    new: &NodeFacts,
    label: &str,
    tli: Option<TimelineId>,
    probe: impl FnOnce(
        &TimelineHistory,
    ) -> Result<Option<TimelineId>, crate::wal::archive::ArchiveError>,
    history_of: impl FnOnce(TimelineId) -> Result<Option<String>, crate::wal::archive::ArchiveError>,
) -> Result<(Analysis, Option<TimelineHistory>), crate::wal::archive::ArchiveError> {
    let inconclusive = |explanation: String| {
        Ok((
            Analysis {
                verdict: Verdict::Inconclusive,
                explanation,
                divergence: None,
            },
            None,
        ))
    };
    let Some(history) = &new.history else {
        return inconclusive(
            "The new primary's timeline history could not be read, so the switchpoint is unknown."
                .into(),
        );
    };
    let tli = match tli {
        Some(t) => Some(t),
        None => probe(history)?,
    };
    let Some(tli) = tli else {
        return inconclusive(format!(
            "{label} holds no WAL segments of any ancestor of timeline {} at its switchpoint; pass --former-timeline.",
            history.timeline
        ));
    };
    if tli == history.timeline {
        return inconclusive(format!(
            "Timeline {tli} is the new primary's own timeline; pass the former primary's with --former-timeline."
        ));
    }
    let former_history = match crate::divergence::implied_history(history, tli) {
        Some(h) if history.end_of(tli).is_some() => h,
        _ => match history_of(tli)? {
            Some(text) => match TimelineHistory::parse(&tli.history_file_name(), tli, &text) {
                Ok(h) => h,
                Err(e) => return inconclusive(format!("The former timeline's history is unusable: {e}.")),
            },
            None => {
                return inconclusive(format!(
                    "Timeline {tli} is not an ancestor of the new primary's timeline {}, and {label} holds no {}.",
                    history.timeline,
                    tli.history_file_name()
                ))
            }
        },
    };
    let Some(switchpoint) = history.fork_point(&former_history) else {
        return inconclusive(format!(
            "Timeline {tli} does not fork from the new primary's timeline {}.",
            history.timeline
        ));
    };
    // The timeline both shared last, then the new primary's branch.
    let common = former_history.timeline_at(Lsn(switchpoint.0.saturating_sub(1)));
    Ok((
        Analysis {
            verdict: Verdict::Inconclusive,
            explanation: format!("The former primary's WAL in {label} has not been decoded yet."),
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
                    .skip_while(|t| *t != common)
                    .chain(std::iter::once(history.timeline))
                    .collect(),
            }),
        },
        Some(former_history),
    ))
}
