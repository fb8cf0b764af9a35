//! The parallel reader returns exactly what the sequential one does: the same records in the
//! same order and the same end of WAL, on real WAL (tests/fixtures/wal/pg15: 4 segments of 1 MB
//! with records that cross segment boundaries and an XLOG_SWITCH), on damaged copies and on
//! sub-ranges.

mod wal_util;

use std::path::Path;

use failover_verify::lsn::{Lsn, TimelineId};
use failover_verify::wal::source::WalDir;
use failover_verify::wal::EndOfWal;
use wal_util::*;

/// (lsn, crc) of every record plus the end of WAL or the error, one way or the other.
type Outcome = (Vec<(Lsn, u32)>, Result<Option<EndOfWal>, String>);

fn sequential(dir: &Path, start: Lsn, end: Option<Lsn>) -> Outcome {
    let wal = WalDir::open(dir, TimelineId(1)).unwrap();
    let mut it = wal.read(start, end);
    let mut recs = Vec::new();
    for r in it.by_ref() {
        match r {
            Ok(r) => recs.push((r.lsn, r.crc)),
            Err(e) => return (recs, Err(e.to_string())),
        }
    }
    (recs, Ok(it.end_of_wal().cloned()))
}

fn parallel(dir: &Path, start: Lsn, end: Option<Lsn>, threads: usize) -> Outcome {
    let wal = WalDir::open(dir, TimelineId(1)).unwrap();
    let mut it = wal.read_parallel(start, end, threads);
    let mut recs = Vec::new();
    for r in it.by_ref() {
        match r {
            Ok(r) => recs.push((r.lsn, r.crc)),
            Err(e) => return (recs, Err(e.to_string())),
        }
    }
    (recs, Ok(it.end_of_wal().cloned()))
}

fn assert_same(dir: &Path, start: Lsn, end: Option<Lsn>, what: &str) -> Outcome {
    let seq = sequential(dir, start, end);
    for threads in [1, 2, 3, 5] {
        let par = parallel(dir, start, end, threads);
        assert_eq!(
            par.0.len(),
            seq.0.len(),
            "{what}: record count on {threads} threads; ends {:?} vs {:?}",
            par.1,
            seq.1
        );
        assert!(
            par.0 == seq.0,
            "{what}: records differ on {threads} threads"
        );
        assert_eq!(par.1, seq.1, "{what}: end of WAL on {threads} threads");
    }
    seq
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().len() == 24)
        .collect();
    v.sort();
    v
}

#[test]
fn same_records_and_end_on_real_wal() {
    let m = meta();
    let tmp = plain_copy();
    let (recs, end) = assert_same(tmp.path(), m.start, None, "whole fixture");
    assert!(recs.len() > 1000, "{} records", recs.len());
    let end = end.unwrap().unwrap();
    assert!(end.reason.is_clean(), "{end}");
    // Gzip-compressed segments too.
    let _ = assert_same(&fixture_dir(), m.start, None, "gz fixture");
    // A range that starts and ends inside segments.
    let mid = recs[recs.len() / 3].0;
    let stop = recs[recs.len() * 2 / 3].0;
    let (sub, _) = assert_same(tmp.path(), mid, Some(stop), "sub-range");
    assert!(!sub.is_empty() && sub.len() < recs.len());
}

#[test]
fn same_end_on_damaged_wal() {
    let m = meta();
    // A flipped byte in the middle of the second segment: WAL ends at that record.
    let tmp = plain_copy();
    let segs = segments(tmp.path());
    assert!(segs.len() >= 3, "{segs:?}");
    let mut bytes = std::fs::read(&segs[1]).unwrap();
    let at = bytes.len() / 2 + 123;
    bytes[at] ^= 0x5A;
    std::fs::write(&segs[1], &bytes).unwrap();
    let (recs, end) = assert_same(tmp.path(), m.start, None, "flipped byte");
    let end = end.unwrap().unwrap();
    assert!(!end.reason.is_clean(), "{end}");
    assert!(!recs.is_empty());

    // A missing segment in the middle: an error (or end) at the same place either way.
    let tmp = plain_copy();
    let segs = segments(tmp.path());
    std::fs::remove_file(&segs[2]).unwrap();
    let (_, end) = assert_same(tmp.path(), m.start, None, "missing segment");
    assert!(
        end.as_ref()
            .is_err_and(|e| e.contains("missing WAL segment")),
        "{end:?}"
    );

    // The last segment removed: a clean end of input where the WAL runs out.
    let tmp = plain_copy();
    let segs = segments(tmp.path());
    std::fs::remove_file(segs.last().unwrap()).unwrap();
    let (_, end) = assert_same(tmp.path(), m.start, None, "last segment removed");
    assert!(end.is_ok(), "{end:?}");

    // A truncated segment.
    let tmp = plain_copy();
    let segs = segments(tmp.path());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&segs[1])
        .unwrap();
    f.set_len(300_000).unwrap();
    let (_, end) = assert_same(tmp.path(), m.start, None, "truncated segment");
    assert!(
        end.as_ref().is_err_and(|e| e.contains("truncated")),
        "{end:?}"
    );
}
