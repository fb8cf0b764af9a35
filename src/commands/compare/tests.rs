//! Unit tests of the compare command: timelines placed from WAL files.

use crate::lsn::{Lsn, TimelineId};
use crate::node::NodeFacts;
use crate::timeline::TimelineHistory;

use super::former_wal::analyze_from_files;
use super::*;

fn new_primary(tli: u32, history: &str) -> NodeFacts {
    NodeFacts {
        timeline: TimelineId(tli),
        history: Some(TimelineHistory::parse("h", TimelineId(tli), history).unwrap()),
        ..NodeFacts::default()
    }
}

type Fetched = Result<Option<String>, crate::wal::archive::ArchiveError>;

#[test]
fn files_place_an_ancestor_another_branch_and_refuse_the_unknown() {
    // New primary on 3 after 1 -> 2 -> 3; the probe finds timeline 2's WAL.
    let new = new_primary(3, "1\t0/3000060\tx\n2\t0/5000000\tx\n");
    let none = |_: TimelineId| -> Fetched { Ok(None) };
    let (a, h) = analyze_from_files(&new, "arch", None, |_| Ok(Some(TimelineId(2))), none).unwrap();
    let d = a.divergence.unwrap();
    assert_eq!(
        (d.former_timeline, d.switchpoint_lsn),
        (TimelineId(2), Some(Lsn(0x5000000)))
    );
    assert_eq!(d.timeline_path, vec![TimelineId(2), TimelineId(3)]);
    assert_eq!(h.unwrap().entries.len(), 1);

    // Timeline 4 branched from 1 after the new primary's fork at 0/3000060: the lost range
    // starts there, on timeline 1, and crosses into 4.
    let branch = |_: TimelineId| -> Fetched { Ok(Some("1\t0/4000000\ty\n".into())) };
    let (a, h) =
        analyze_from_files(&new, "arch", Some(TimelineId(4)), |_| Ok(None), branch).unwrap();
    let d = a.divergence.unwrap();
    assert_eq!(d.switchpoint_lsn, Some(Lsn(0x3000060)));
    assert_eq!(
        d.timeline_path,
        vec![TimelineId(1), TimelineId(2), TimelineId(3)]
    );
    assert_eq!(h.unwrap().timeline, TimelineId(4));

    // Another branch without its history file, or nothing found: inconclusive, saying why.
    let (a, _) = analyze_from_files(&new, "arch", Some(TimelineId(4)), |_| Ok(None), none).unwrap();
    assert_eq!(a.verdict, Verdict::Inconclusive);
    assert!(
        a.explanation.contains("00000004.history"),
        "{}",
        a.explanation
    );
    let (a, _) = analyze_from_files(&new, "arch", None, |_| Ok(None), none).unwrap();
    assert!(
        a.explanation.contains("--former-timeline"),
        "{}",
        a.explanation
    );
}
