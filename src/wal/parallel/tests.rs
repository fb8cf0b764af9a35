//! The parallel fast path against the reference decoder on the pg15 fixture cut into small
//! ranges: the same records, end of WAL and errors, whole, cut, damaged and with unusual files.

use crate::lsn::Lsn;
use crate::wal::dir::WalDir;
use crate::wal::fast::tests::{damaged_or_unusual_files, records_end_and_errors};
use crate::wal::source::WalDirReader;

/// `workers` threads over ranges of `pages` pages: the fixture's 1 MB segments make 16 to 128
/// ranges each, so that records cross joints of every kind (continued records, segment
/// boundaries, the XLOG_SWITCH).
fn split(workers: usize, pages: u64) -> impl Fn(&WalDir, Lsn, Option<Lsn>) -> WalDirReader {
    move |dir: &WalDir, start: Lsn, end: Option<Lsn>| {
        let r = dir.read_parallel(start, end, workers, pages * 8192);
        assert!(
            r.is_parallel()
                || end.is_some_and(|e| e.0 < start.0 + 4 * workers as u64 * pages * 8192),
            "the parallel path is used"
        );
        r
    }
}

#[test]
fn the_same_records_end_and_errors_as_the_reference_decoder() {
    records_end_and_errors(&split(2, 64));
    records_end_and_errors(&split(3, 1));
}

#[test]
fn damaged_or_unusual_files_are_handed_to_the_one_thread_path() {
    damaged_or_unusual_files(&split(2, 8));
    damaged_or_unusual_files(&split(4, 1));
}

/// Every record of the fixture comes from the workers (past the XLOG_SWITCH too: the ranges
/// in the rest of its segment are skipped); the one-thread path only finds the end of WAL.
#[test]
fn the_workers_hand_out_every_record() {
    let tmp = crate::wal::fixture::pg15_copy();
    let dir = WalDir::open(tmp.path(), crate::lsn::TimelineId(1)).expect("open");
    let all = dir.read_inline(Lsn(0xB0_0028), None).count();
    for (workers, pages) in [(2, 64), (3, 1), (8, 4)] {
        let mut r = dir.read_parallel(Lsn(0xB0_0028), None, workers, pages * 8192);
        let mut from_workers = 0;
        while let Some(rec) = r.next_record() {
            rec.expect("record");
            from_workers += usize::from(r.is_parallel());
        }
        assert_eq!(from_workers, all, "{workers} workers, {pages} pages");
    }
}

/// A page whose first record is a valid record copied from earlier WAL (its CRC holds, its
/// `xl_prev` does not): a worker starting there accepts it, so only the joint check keeps the
/// parallel path from handing it out; the one-thread path stops at it.
#[test]
fn a_record_that_does_not_link_back_is_not_handed_out() {
    let tmp = crate::wal::fixture::pg15_copy();
    let dir = WalDir::open(tmp.path(), crate::lsn::TimelineId(1)).expect("open");
    let start = Lsn(0xB0_0028);
    let all: Vec<_> = dir
        .read_inline(start, None)
        .map(|r| r.expect("record"))
        .collect();
    let path = tmp.path().join("00000001000000000000000B");
    let orig = std::fs::read(&path).expect("read");
    let x = all
        .iter()
        .filter(|r| r.lsn.0 < 0xB1_0000 && r.lsn.0 % 8192 + u64::from(r.xl_tot_len) <= 8192)
        .min_by_key(|r| r.xl_tot_len)
        .expect("an in-page record in the first 64 kB");
    let len = x.xl_tot_len as usize;
    // The first record that starts on a later page of the segment (past the rest of a record
    // continued from the page before), with room for the copy after it on the page.
    let first_on = |p: usize| {
        let info = u16::from_le_bytes([orig[p + 2], orig[p + 3]]);
        let rem = u32::from_le_bytes(orig[p + 16..p + 20].try_into().expect("4 bytes")) as usize;
        p + 24 + if info & 1 == 0 { 0 } else { (rem + 7) & !7 }
    };
    let at = (16..128usize)
        .map(|i| (i * 8192, first_on(i * 8192)))
        .find(|(p, a)| a + len <= p + 8192)
        .expect("a page with room")
        .1;
    let from = (x.lsn.0 % 0x10_0000) as usize;
    let mut forged = orig.clone();
    forged.copy_within(from..from + len, at);
    std::fs::write(&path, &forged).expect("write");
    let want: Vec<_> = dir
        .read_inline(start, None)
        .map(|r| r.map_err(|e| e.to_string()))
        .collect();
    assert!(
        want.len() < all.len(),
        "the reference decoder stops at the copy"
    );
    for (workers, pages) in [(2, 1), (3, 2)] {
        let got: Vec<_> = dir
            .read_parallel(start, None, workers, pages * 8192)
            .map(|r| r.map_err(|e| e.to_string()))
            .collect();
        assert!(
            got == want,
            "{workers} workers, {pages} pages: {} records, want {}",
            got.len(),
            want.len()
        );
    }
}
