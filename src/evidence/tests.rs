//! Stepping back with scans cut short: the same scan as stepping back with whole scans, on the
//! pg15 fixture for switchpoints all over it (the one-segment fixture forces step backs, and
//! the missing segment before it the full rescan of a cut scan).

use super::scan::{scan_wal, Scan, ScanOptions};
use super::step_back;
use crate::lsn::{Lsn, TimelineId};
use crate::wal::dir::WalDir;

/// What a scan found, for comparison.
fn said(s: &Scan) -> String {
    let l = &s.lost;
    format!(
        "start {} cut {} commits {} xids {:?} running {:?} prepared {:?} horizon {:?} tables {:?} in flight {:?} end {:?}",
        s.start,
        s.cut_short,
        l.lost_commit_count,
        l.lost_commits.iter().map(|c| c.top_xid.0).collect::<Vec<_>>(),
        l.running_at_scan_start,
        s.prepared_before_scan,
        s.new_side_first_xid,
        l.tables,
        l.in_flight,
        s.end,
    )
}

#[tokio::test]
async fn cut_short_scans_step_back_to_the_same_scan() {
    let tmp = crate::wal::fixture::pg15_copy();
    let dir = WalDir::open(tmp.path(), TimelineId(1)).expect("open");
    let seg = dir.segment_size();
    let records: Vec<Lsn> = dir
        .read_inline(Lsn(0xB0_0028), None)
        .map(|r| r.expect("record").lsn)
        .collect();
    let mut cut = 0;
    // Every 97th record, and segment boundaries: the scan starts in the segment before (for
    // the first segment, missing before it, in its own).
    let boundaries = [Lsn(0xB0_0000), Lsn(0xC0_0000), Lsn(0xE0_0000)];
    let switchpoints: Vec<Lsn> = records
        .iter()
        .step_by(97)
        .copied()
        .chain(boundaries)
        .collect();
    for (i, sp) in switchpoints.iter().enumerate() {
        for horizon in [false, true] {
            let mut opts = ScanOptions::full();
            opts.horizon = horizon;
            let run = |may_cut: bool| {
                let (dir, opts) = (&dir, &opts);
                step_back(
                    move |start, cut_short| {
                        let mut o = opts.clone();
                        o.stop_when_earlier_needed = cut_short && may_cut;
                        let r = scan_wal(dir, start, None, *sp, &o);
                        std::future::ready(r)
                    },
                    *sp,
                    seg,
                    horizon,
                )
            };
            let whole = run(false).await;
            let with_cuts = run(true).await;
            match (whole, with_cuts) {
                (Ok(a), Ok(b)) => {
                    assert!(!a.cut_short && !b.cut_short, "record {i}: a cut scan kept");
                    assert_eq!(said(&a), said(&b), "record {i} at {sp}, horizon {horizon}");
                    if boundaries.contains(sp) {
                        let first = Lsn(0xB0_0000.max(sp.0 - seg));
                        assert!(a.start <= first, "{sp}: scan from {}", a.start);
                    }
                }
                (Err(a), Err(b)) => {
                    assert!(!boundaries.contains(sp), "{sp}: {a}");
                    assert_eq!(a.to_string(), b.to_string());
                }
                (a, b) => panic!(
                    "record {i}: {:?} against {:?}",
                    a.map(|s| said(&s)),
                    b.map(|s| said(&s))
                ),
            }
            // Whether this switchpoint needed a step back that a cut could shorten.
            let mut o = opts.clone();
            o.stop_when_earlier_needed = true;
            let first = Lsn(sp.0 - sp.0 % seg);
            if scan_wal(&dir, first, None, *sp, &o).is_ok_and(|s| s.cut_short) {
                cut += 1;
            }
        }
    }
    assert!(cut > 0, "no switchpoint needed a step back");
}
