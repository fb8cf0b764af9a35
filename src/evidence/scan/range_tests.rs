//! Ranges accounted on worker threads against every record accounted on one thread: the same
//! scan, on the pg15 fixture (savepoints, aborts, two-phase commits, DDL, two databases), for
//! switchpoints all over it, ranges down to one page (so that transactions cross range
//! boundaries everywhere), and a few or many lost commits kept.

use super::{scan_wal_in, Scan, ScanOptions};
use crate::lsn::{Lsn, TimelineId};
use crate::wal::accounting::Detail;
use crate::wal::dir::WalDir;

/// Everything a scan found that ranges could change.
fn said(s: &Scan) -> String {
    format!(
        "{:?} start {} cut {} horizon {:?} created {:?} end {:?}",
        s.lost, s.start, s.cut_short, s.new_side_first_xid, s.created_after_switchpoint, s.end
    )
}

/// The pg15 fixture (its copy, kept while the directory is used), and its records' LSNs.
fn fixture() -> (tempfile::TempDir, WalDir, Vec<Lsn>) {
    let tmp = crate::wal::fixture::pg15_copy();
    let dir = WalDir::open(tmp.path(), TimelineId(1)).expect("open");
    let records: Vec<Lsn> = dir
        .read_inline(Lsn(0xB0_0028), None)
        .map(|r| r.expect("record").lsn)
        .collect();
    (tmp, dir, records)
}

#[test]
fn ranges_account_exactly_as_one_record_at_a_time() {
    let (_tmp, dir, records) = fixture();
    let mut taken = 0;
    let mut compared = 0;
    for (i, sp) in records.iter().step_by(41).enumerate() {
        for start in [Lsn(0xB0_0028), Lsn(0xC0_0000)] {
            if start > *sp {
                continue;
            }
            for (keep, range) in [(100, 8192), (3, 16384), (1, 65536), (0, 8192)] {
                let opts = ScanOptions {
                    detail: Detail::Bounded { keep },
                    horizon: i % 2 == 0,
                    ..ScanOptions::bounded(None)
                };
                let one = scan_wal_in(&dir, start, None, *sp, &opts, None, u64::MAX);
                let by_ranges =
                    scan_wal_in(&dir, start, None, *sp, &opts, Some((2, range)), u64::MAX);
                let (one, by_ranges) = match (one, by_ranges) {
                    (Ok(a), Ok(b)) => (a, b),
                    (Err(a), Err(b)) => {
                        assert_eq!(a.to_string(), b.to_string(), "{sp} from {start}");
                        continue;
                    }
                    (a, b) => panic!("{sp} from {start}: {:?} against {:?}", a.is_ok(), b.is_ok()),
                };
                let ctx = format!("switchpoint {sp} from {start}, keep {keep}, range {range}");
                assert_eq!(said(&one), said(&by_ranges), "{ctx}");
                taken += by_ranges.ranges_taken;
                compared += 1;
            }
        }
    }
    assert!(compared > 50, "{compared} scans compared");
    assert!(
        taken > 100,
        "only {taken} ranges were accounted on worker threads"
    );
}

/// A scan that keeps tuples (the row diff, `compare`) reads record by record until its tuple
/// limit is passed, then accounts the rest of the files in ranges: the same figures as reading
/// every record, whichever record the limit is passed at. Over much WAL it counts the tuples
/// in ranges first and keeps that scan when they pass the limit: the same figures too, at
/// limits around the lost commits' tuples.
#[test]
fn ranges_past_the_tuple_limit_account_as_one_record_at_a_time() {
    let (_tmp, dir, records) = fixture();
    let mut taken = 0;
    let mut past_limit = 0;
    let mut decided_by_count = 0;
    for sp in records.iter().step_by(97) {
        // The lost commits' tuples: a limit just at them and just below.
        let all = ScanOptions {
            tuples: true,
            ..ScanOptions::full()
        };
        let touched = scan_wal_in(&dir, Lsn(0xB0_0028), None, *sp, &all, None, u64::MAX)
            .expect("no limit")
            .lost
            .touched_tuple_count;
        for (limit, range) in [
            (0, 8192),
            (3, 16384),
            (40, 8192),
            (400, 32768),
            (1 << 40, 8192),
            (touched, 8192),
            (touched.saturating_sub(1), 16384),
        ] {
            let opts = ScanOptions {
                tuples: true,
                max_tuples: Some(limit),
                ..ScanOptions::full()
            };
            let start = Lsn(0xB0_0028);
            let one =
                scan_wal_in(&dir, start, None, *sp, &opts, None, u64::MAX).expect("one thread");
            let by_ranges = scan_wal_in(&dir, start, None, *sp, &opts, Some((2, range)), u64::MAX)
                .expect("ranges");
            let ctx = format!("switchpoint {sp}, limit {limit}, range {range}");
            assert_eq!(said(&one), said(&by_ranges), "{ctx}");
            assert_eq!(one.tuples.is_some(), by_ranges.tuples.is_some(), "{ctx}");
            if limit == 1 << 40 {
                assert_eq!(by_ranges.ranges_taken, 0, "{ctx}: ranges below the limit");
            }
            // Counted first (whatever the amount of WAL): the same scan.
            let counted = scan_wal_in(&dir, start, None, *sp, &opts, Some((2, range)), 0)
                .expect("counted first");
            assert_eq!(said(&one), said(&counted), "{ctx}, counted first");
            assert_eq!(one.tuples.is_some(), counted.tuples.is_some(), "{ctx}");
            if one.lost.tuple_limit_exceeded.is_some() {
                // Decided by the count alone, or read again when the tuples fit but the
                // pending ones passed the limit.
                decided_by_count +=
                    usize::from(counted.ranges_taken > 0 && counted.tuples.is_none());
            }
            past_limit += usize::from(one.lost.tuple_limit_exceeded.is_some());
            taken += by_ranges.ranges_taken;
        }
    }
    assert!(past_limit > 20, "only {past_limit} scans passed the limit");
    assert!(
        decided_by_count > 20,
        "only {decided_by_count} scans were decided by counting first"
    );
    assert!(
        taken > 100,
        "only {taken} ranges were accounted on worker threads"
    );
}
