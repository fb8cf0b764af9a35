//! Timeline history files: strict parsing, and which timeline owned a WAL position.
//!
//! `pg_wal/0000000N.history` lists every ancestor of timeline N, one line each:
//! `parentTLI<TAB>switchpoint<TAB>reason`. The switchpoint is the first LSN that belongs to
//! the child timeline; the parent owns every position before it.

use serde::{Deserialize, Serialize};

use crate::lsn::{Lsn, TimelineId};

/// One line of a history file: `parent` ended at `switchpoint` and a child timeline began there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The ancestor timeline that ended.
    pub parent: TimelineId,
    /// The first WAL position of the child timeline; the parent's records at or after it are lost.
    pub switchpoint: Lsn,
    /// The free-text reason PostgreSQL wrote (e.g. `no recovery target specified`).
    pub reason: String,
}

/// The parsed history of one timeline: its ancestors, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineHistory {
    /// The timeline this history describes.
    pub timeline: TimelineId,
    /// Its ancestors, oldest first; empty for timeline 1.
    pub entries: Vec<HistoryEntry>,
}

/// Why a history file could not be parsed; names the file and the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timeline history file {file}, line {line}: {problem}")]
pub struct HistoryError {
    /// The file name (or where the content came from).
    pub file: String,
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

impl TimelineHistory {
    /// The history of a timeline with no ancestors (timeline 1, which has no history file).
    pub fn root(timeline: TimelineId) -> Self {
        TimelineHistory {
            timeline,
            entries: Vec::new(),
        }
    }

    /// Parses the content of `file`, the history of `timeline`, the way PostgreSQL's
    /// `readTimeLineHistory` does, but strictly: every non-comment line must be well formed,
    /// parents must increase and stay below `timeline`, and switchpoints must not go backwards.
    pub fn parse(file: &str, timeline: TimelineId, content: &str) -> Result<Self, HistoryError> {
        let err = |line: usize, problem: String| HistoryError {
            file: file.to_string(),
            line,
            problem,
        };
        let mut entries: Vec<HistoryEntry> = Vec::new();
        for (idx, raw) in content.lines().enumerate() {
            let line_no = idx + 1;
            let line = raw.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.splitn(3, '\t');
            let tli_text = fields.next().unwrap_or_default().trim();
            let parent = tli_text
                .parse::<u32>()
                .ok()
                .filter(|t| *t > 0)
                .map(TimelineId)
                .ok_or_else(|| {
                    err(
                        line_no,
                        format!("expected a timeline id, found {tli_text:?}"),
                    )
                })?;
            let lsn_text = fields
                .next()
                .ok_or_else(|| err(line_no, "missing the switchpoint after a tab".into()))?
                .trim();
            let switchpoint: Lsn = lsn_text
                .parse()
                .map_err(|e: crate::lsn::LsnParseError| err(line_no, e.to_string()))?;
            let reason = fields.next().unwrap_or_default().trim().to_string();
            if parent >= timeline {
                return Err(err(
                    line_no,
                    format!("parent timeline {parent} is not below timeline {timeline}"),
                ));
            }
            if let Some(prev) = entries.last() {
                if parent <= prev.parent {
                    return Err(err(
                        line_no,
                        format!(
                            "timeline ids must increase (found {parent} after {})",
                            prev.parent
                        ),
                    ));
                }
                if switchpoint < prev.switchpoint {
                    return Err(err(
                        line_no,
                        format!(
                            "switchpoint {switchpoint} is before the previous one {}",
                            prev.switchpoint
                        ),
                    ));
                }
            }
            entries.push(HistoryEntry {
                parent,
                switchpoint,
                reason,
            });
        }
        if timeline.0 > 1 && entries.is_empty() {
            return Err(err(
                0,
                format!("no entries, but timeline {timeline} must have at least one ancestor"),
            ));
        }
        Ok(TimelineHistory { timeline, entries })
    }

    /// Whether `tli` is this timeline or one of its ancestors.
    pub fn contains(&self, tli: TimelineId) -> bool {
        tli == self.timeline || self.entries.iter().any(|e| e.parent == tli)
    }

    /// Where ancestor `tli` ends in this history, or `None` if `tli` is not an ancestor.
    pub fn end_of(&self, tli: TimelineId) -> Option<Lsn> {
        self.entries
            .iter()
            .find(|e| e.parent == tli)
            .map(|e| e.switchpoint)
    }

    /// The timeline that owns WAL position `lsn` in this history.
    pub fn timeline_at(&self, lsn: Lsn) -> TimelineId {
        self.entries
            .iter()
            .find(|e| lsn < e.switchpoint)
            .map(|e| e.parent)
            .unwrap_or(self.timeline)
    }

    /// The first WAL position at which `self` and `other` are on different timelines, or `None`
    /// if one history is a prefix of the other (no fork between them).
    pub fn fork_point(&self, other: &TimelineHistory) -> Option<Lsn> {
        let mut points: Vec<Lsn> = std::iter::once(Lsn(0))
            .chain(self.entries.iter().map(|e| e.switchpoint))
            .chain(other.entries.iter().map(|e| e.switchpoint))
            .collect();
        points.sort();
        points.dedup();
        points
            .into_iter()
            .find(|p| self.timeline_at(*p) != other.timeline_at(*p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TLI3: &str = "1\t0/3000060\tno recovery target specified\n\n2\t0/5000148\tno recovery target specified\n";

    #[test]
    fn parses_a_two_ancestor_history() {
        let h = TimelineHistory::parse("00000003.history", TimelineId(3), TLI3).unwrap();
        assert_eq!(h.entries.len(), 2);
        assert_eq!(h.entries[0].parent, TimelineId(1));
        assert_eq!(h.entries[0].switchpoint, "0/3000060".parse().unwrap());
        assert_eq!(h.entries[1].reason, "no recovery target specified");
        assert!(h.contains(TimelineId(1)) && h.contains(TimelineId(3)));
        assert!(!h.contains(TimelineId(4)));
        assert_eq!(h.end_of(TimelineId(2)), Some("0/5000148".parse().unwrap()));
        assert_eq!(h.end_of(TimelineId(3)), None);
    }

    #[test]
    fn timeline_at_switchpoint_belongs_to_the_child() {
        let h = TimelineHistory::parse("00000003.history", TimelineId(3), TLI3).unwrap();
        assert_eq!(h.timeline_at(Lsn(0)), TimelineId(1));
        assert_eq!(h.timeline_at(Lsn(0x300005F)), TimelineId(1));
        assert_eq!(h.timeline_at(Lsn(0x3000060)), TimelineId(2));
        assert_eq!(h.timeline_at(Lsn(0x5000148)), TimelineId(3));
    }

    #[test]
    fn fork_point_of_a_stopped_former_primary() {
        // Former primary stayed on timeline 1; the new primary went 1 -> 2 -> 3.
        let new = TimelineHistory::parse("00000003.history", TimelineId(3), TLI3).unwrap();
        let former = TimelineHistory::root(TimelineId(1));
        assert_eq!(new.fork_point(&former), Some("0/3000060".parse().unwrap()));
        assert_eq!(former.fork_point(&new), Some("0/3000060".parse().unwrap()));
        // A node that follows timeline 2 shares the prefix up to 2's end.
        let on2 =
            TimelineHistory::parse("00000002.history", TimelineId(2), "1\t0/3000060\tx\n").unwrap();
        assert_eq!(new.fork_point(&on2), Some("0/5000148".parse().unwrap()));
        assert_eq!(new.fork_point(&new), None);
    }

    #[test]
    fn sibling_timelines_fork_at_the_earlier_switch() {
        // Timelines 2 and 3 both branched from 1, at different points.
        let t2 =
            TimelineHistory::parse("00000002.history", TimelineId(2), "1\t0/4000000\t-\n").unwrap();
        let t3 =
            TimelineHistory::parse("00000003.history", TimelineId(3), "1\t0/3800000\t-\n").unwrap();
        assert_eq!(t2.fork_point(&t3), Some(Lsn(0x3800000)));
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let h = TimelineHistory::parse("x", TimelineId(2), "# comment\n\n1\t0/10\tr\n").unwrap();
        assert_eq!(h.entries.len(), 1);
    }

    #[test]
    fn garbage_names_the_file_and_line() {
        let cases = [
            ("1\t0/10\tok\nhello\n", 2, "expected a timeline id"),
            ("1 0/10\n", 1, "expected a timeline id"),
            ("1\tzz/10\tr\n", 1, "invalid LSN"),
            ("1\n", 1, "missing the switchpoint"),
            ("2\t0/10\tr\n1\t0/20\tr\n", 2, "must increase"),
            ("1\t0/20\tr\n2\t0/10\tr\n", 2, "before the previous"),
            ("5\t0/20\tr\n", 1, "not below timeline"),
            ("0\t0/20\tr\n", 1, "expected a timeline id"),
            ("", 0, "no entries"),
            ("\u{0}\u{1}binary", 1, "expected a timeline id"),
        ];
        for (content, line, needle) in cases {
            let e = TimelineHistory::parse("00000003.history", TimelineId(3), content)
                .expect_err(content);
            assert_eq!(e.line, line, "{content:?}: {e}");
            assert!(e.to_string().contains(needle), "{content:?}: {e}");
            assert!(e.to_string().contains("00000003.history"));
        }
    }
}
