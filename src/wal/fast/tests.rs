//! The fast path against the reference decoder: the same records, end of WAL and errors, on the
//! pg15 fixture whole, cut, damaged and with unusual files.

use std::path::Path;

use crate::lsn::{Lsn, TimelineId};
use crate::wal::dir::WalDir;
use crate::wal::record::DecodedRecord;
use crate::wal::source::WalDirReader;

/// The pg15 fixture (four 1 MB segments with an XLOG_SWITCH), gunzipped into a temp dir.
fn fixture() -> (tempfile::TempDir, Lsn) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wal/pg15");
    let tmp = crate::wal::fixture::pg15_copy();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("meta.json")).expect("meta.json"))
            .expect("json");
    let start = meta["start"].as_str().expect("start").parse().expect("lsn");
    (tmp, start)
}

/// Everything a reader says: the records (or the error, as text), the end of WAL, the
/// version and the system identifier.
type Said = (
    Vec<Result<DecodedRecord, String>>,
    Option<String>,
    Option<u32>,
    Option<u64>,
);

fn drain(mut r: WalDirReader) -> Said {
    let mut out = Vec::new();
    while let Some(rec) = r.next_record() {
        out.push(rec.cloned().map_err(|e| e.to_string()));
    }
    let end = r.end_of_wal().map(|e| format!("{e:?}"));
    (
        out,
        end,
        r.version().map(|v| v.0),
        r.system_id().map(|s| s.0),
    )
}

/// A reader under test: the directory, start and end.
pub(crate) type Open = dyn Fn(&WalDir, Lsn, Option<Lsn>) -> WalDirReader;

/// The one-thread fast path.
fn one_thread(dir: &WalDir, start: Lsn, end: Option<Lsn>) -> WalDirReader {
    dir.read_parallel(start, end, 1, crate::wal::parallel::RANGE)
}

/// The reader under test and the reference decoder say the same, with and without payloads.
fn same(read: &Open, dir: &WalDir, start: Lsn, end: Option<Lsn>, what: &str) -> usize {
    let want = drain(dir.read_inline(start, end));
    let got = drain(read(dir, start, end));
    assert_eq!(got.1, want.1, "{what}: end of WAL");
    assert_eq!(got.0.len(), want.0.len(), "{what}: record count");
    assert!(got.0 == want.0, "{what}: records differ");
    assert_eq!(
        (got.2, got.3),
        (want.2, want.3),
        "{what}: version, system id"
    );
    let bare = |r: WalDirReader| drain(r.without_block_payloads());
    assert!(
        bare(read(dir, start, end)) == bare(dir.read_inline(start, end)),
        "{what}: without payloads"
    );
    want.0.len()
}

#[test]
fn the_same_records_end_and_errors_as_the_reference_decoder() {
    records_end_and_errors(&one_thread);
}

#[test]
fn damaged_or_unusual_files_are_handed_to_the_reference_decoder() {
    damaged_or_unusual_files(&one_thread);
}

/// Starts and ends anywhere: the same as the reference decoder.
pub(crate) fn records_end_and_errors(read: &Open) {
    let (tmp, start) = fixture();
    let dir = WalDir::open(tmp.path(), TimelineId(1)).expect("open");
    let n = same(read, &dir, start, None, "whole");
    assert!(n > 1000, "{n} records");
    let all: Vec<DecodedRecord> = dir
        .read_inline(start, None)
        .map(|r| r.expect("record"))
        .collect();
    // Starts at record boundaries, pages, segments; inside a page header; not a boundary.
    let mut starts: Vec<Lsn> = all.iter().step_by(211).map(|r| r.lsn).collect();
    starts.extend([
        Lsn(start.0 + 8192),
        Lsn(start.0 + 3 * 8192 + 24),
        Lsn(0xC0_0000),
    ]);
    starts.extend([Lsn(start.0 + 8192 + 8), Lsn(all[40].lsn.0 + 8)]);
    for s in starts {
        same(read, &dir, s, None, &format!("start {s}"));
    }
    // Ends at record starts, inside records, at pages.
    for r in all.iter().step_by(307) {
        for e in [
            r.lsn,
            Lsn(r.lsn.0 + 5),
            r.end_lsn,
            Lsn(r.lsn.0 - r.lsn.0 % 8192),
        ] {
            same(read, &dir, start, Some(e), &format!("end {e}"));
        }
    }
}

/// Damage, compressed, short and missing segments: the same as the reference decoder.
pub(crate) fn damaged_or_unusual_files(read: &Open) {
    let (tmp, start) = fixture();
    let dir = WalDir::open(tmp.path(), TimelineId(1)).expect("open");
    let all: Vec<DecodedRecord> = dir
        .read_inline(start, None)
        .map(|r| r.expect("record"))
        .collect();
    let seg = dir.segment_size();
    let file_of = |lsn: Lsn| {
        tmp.path().join(crate::wal::segment::segment_file_name_for(
            TimelineId(1),
            lsn,
            seg,
        ))
    };
    let damage = |lsn: Lsn, at: u64, what: &str| {
        let path = file_of(lsn);
        let orig = std::fs::read(&path).expect("read");
        let mut b = orig.clone();
        b[((lsn.0 % seg) + at) as usize] ^= 0x40;
        std::fs::write(&path, &b).expect("write");
        same(read, &dir, start, None, what);
        std::fs::write(&path, &orig).expect("restore");
    };
    let in_page = all
        .iter()
        .skip(all.len() / 3)
        .find(|r| r.lsn.0 % 8192 + u64::from(r.xl_tot_len) < 8192)
        .expect("an in-page record");
    damage(
        in_page.lsn,
        u64::from(in_page.xl_tot_len) - 1,
        "CRC of an in-page record",
    );
    damage(in_page.lsn, 8, "xl_prev of an in-page record");
    damage(in_page.lsn, 17, "rmid of an in-page record");
    let crossing = all
        .iter()
        .skip(all.len() / 2)
        .find(|r| r.lsn.0 % 8192 + u64::from(r.xl_tot_len) > 8192 + 64)
        .expect("a record crossing a page");
    let next_page = crossing.lsn.0 - crossing.lsn.0 % 8192 + 8192;
    damage(Lsn(next_page), 40, "the continued part of a record");
    damage(Lsn(next_page), 16, "xlp_rem_len of a continuation page");
    damage(Lsn(next_page), 0, "the magic of a page");
    damage(Lsn(next_page), 9, "xlp_pageaddr of a page");
    damage(Lsn(next_page), 4, "xlp_tli of a page");
    damage(
        Lsn(0xD0_0000),
        25,
        "the system id of a segment's first page",
    );
    // A compressed segment in the middle, a short one, a missing one.
    let mid = file_of(Lsn(0xC0_0000));
    let orig = std::fs::read(&mid).expect("read");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(format!("{}.gz", mid.display())).expect("create"),
        flate2::Compression::fast(),
    );
    std::io::Write::write_all(&mut enc, &orig).expect("gzip");
    enc.finish().expect("gzip");
    std::fs::remove_file(&mid).expect("rm");
    same(read, &dir, start, None, "a compressed segment");
    std::fs::remove_file(format!("{}.gz", mid.display())).expect("rm gz");
    std::fs::write(&mid, &orig[..orig.len() / 2]).expect("short");
    same(read, &dir, start, None, "a short segment");
    std::fs::remove_file(&mid).expect("rm");
    same(read, &dir, start, None, "a missing segment");
    std::fs::write(&mid, &orig).expect("restore");
    same(read, &dir, start, None, "restored");
}
