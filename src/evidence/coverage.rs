//! Which LSN ranges the WAL sources covered, and the findings when they did not cover
//! everything.

use super::model::{Coverage, SegmentRead, Transactions};
use super::scan::{Scan, ScanError};
use crate::finding::{Finding, FindingId};
use crate::lsn::Lsn;
use crate::wal::segment::segment_file_name;
use crate::wal::source::WalDir;
use crate::wal::EndReason;
use std::path::PathBuf;

/// The segment files a scan read: `(name, path, source)` from the scan start to where it stopped.
pub(super) fn segments_read(
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
pub(super) fn coverage_of(
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
pub(super) fn coverage_findings(c: &Coverage, t: &Transactions) -> Vec<Finding> {
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

/// The finding for a WAL archive that does not hold the lost WAL's first segment.
pub fn unreadable_files_finding(e: &ScanError) -> Finding {
    Finding {
        severity: FindingId::WalUnreadable.severity(),
        id: FindingId::WalUnreadable,
        message: format!("the former timeline's WAL is not in the sources, so lost transactions were not counted: {e}"),
        hint: Some("a crashed former primary leaves its last segment unarchived: look in its pg_wal (or a copy) and pass it with --former-wal-dir; check the archive's path or stanza".into()),
    }
}
