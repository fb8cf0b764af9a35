//! Bad input: every case is a clear error or a clean end naming the file and LSN, never a panic.

mod wal_util;

use std::path::Path;

use failover_verify::lsn::{Lsn, TimelineId};
use failover_verify::wal::decoder::{EndReason, Poll, WalDecoder};
use failover_verify::wal::source::WalDir;
use failover_verify::wal::{DecodedRecord, WalError};
use wal_util::*;

fn decode_dir(
    dir: &Path,
    start: Lsn,
    end: Option<Lsn>,
) -> (
    Vec<DecodedRecord>,
    Option<WalError>,
    Option<failover_verify::wal::EndOfWal>,
) {
    let d = WalDir::with_segment_size(dir, TimelineId(1), meta().seg_size).unwrap();
    // Both readers: on one thread, and on two (CRCs checked on either thread). They must
    // give the same records, the same error and the same end of WAL.
    let mut runs = [true, false].map(|pipelined| {
        let mut it = if pipelined {
            d.read_pipelined(start, end)
        } else {
            d.read_inline(start, end)
        };
        assert_eq!(it.is_pipelined(), pipelined);
        let mut recs = Vec::new();
        let mut err = None;
        for r in it.by_ref() {
            match r {
                Ok(r) => recs.push(r),
                Err(e) => err = Some(e),
            }
        }
        (recs, err, it.end_of_wal().cloned())
    });
    let [two, one] = &mut runs;
    assert!(two.0 == one.0, "the readers disagree on the records");
    assert_eq!(
        two.1.as_ref().map(|e| e.to_string()),
        one.1.as_ref().map(|e| e.to_string())
    );
    assert_eq!(two.2, one.2);
    let [two, _] = runs;
    two
}

fn seg_name(lsn: Lsn) -> String {
    failover_verify::wal::segment::segment_file_name_for(TimelineId(1), lsn, meta().seg_size)
}

fn good() -> Vec<DecodedRecord> {
    let tmp = plain_copy();
    decode_dir(tmp.path(), meta().start, None).0
}

#[test]
fn truncated_segment_is_named() {
    let tmp = plain_copy();
    let m = meta();
    let name = seg_name(Lsn(m.start.0 + m.seg_size));
    let path = tmp.path().join(&name);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(500_000).unwrap();
    let (recs, err, _) = decode_dir(tmp.path(), m.start, None);
    let err = err.expect("an error");
    let msg = err.to_string();
    assert!(matches!(err, WalError::TruncatedSegment { .. }), "{msg}");
    assert!(msg.contains(&name), "{msg}");
    assert!(!recs.is_empty());
    // The same file renamed .partial is a normal end of WAL.
    std::fs::rename(&path, tmp.path().join(format!("{name}.partial"))).unwrap();
    for later in std::fs::read_dir(tmp.path()).unwrap() {
        let p = later.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().as_ref() > name.as_str()
            && !p.to_string_lossy().contains("partial")
        {
            std::fs::remove_file(p).unwrap();
        }
    }
    let (recs2, err, end) = decode_dir(tmp.path(), m.start, None);
    assert!(err.is_none(), "{err:?}");
    let end = end.unwrap();
    assert!(matches!(end.reason, EndReason::EndOfInput { .. }), "{end}");
    assert_eq!(
        end.file.as_deref(),
        Some(format!("{name}.partial").as_str())
    );
    assert_eq!(recs.len(), recs2.len());
}

#[test]
fn flipped_byte_ends_at_that_record_with_crc_mismatch() {
    let m = meta();
    let recs = good();
    let victim = recs
        .iter()
        .skip(800)
        .find(|r| r.xl_tot_len < 100 && r.lsn.page_offset() + 100 < 8192)
        .unwrap()
        .clone();
    let tmp = plain_copy();
    let name = seg_name(victim.lsn);
    let path = tmp.path().join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    let off = (victim.lsn.segment_offset(m.seg_size) + u64::from(victim.xl_tot_len) - 1) as usize;
    bytes[off] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let (got, err, end) = decode_dir(tmp.path(), m.start, None);
    assert!(err.is_none(), "{err:?}");
    let end = end.unwrap();
    assert_eq!(end.lsn, victim.lsn);
    assert!(matches!(end.reason, EndReason::BadCrc { .. }), "{end}");
    assert_eq!(end.file.as_deref(), Some(name.as_str()));
    assert!(
        end.data_follows,
        "valid pages follow: corruption in the middle"
    );
    let msg = end.to_string();
    assert!(
        msg.contains(&victim.lsn.to_string()) && msg.contains(&name) && msg.contains("checksum"),
        "{msg}"
    );
    assert_eq!(
        got.len(),
        recs.iter().position(|r| r.lsn == victim.lsn).unwrap()
    );
}

#[test]
fn wrong_magic_is_refused_clearly() {
    let m = meta();
    let tmp = plain_copy();
    let name = seg_name(m.start);
    let path = tmp.path().join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] = 0xFF;
    bytes[1] = 0xD0;
    std::fs::write(&path, bytes).unwrap();
    let (recs, err, _) = decode_dir(tmp.path(), m.start, None);
    assert!(recs.is_empty());
    let err = err.expect("refused");
    let msg = err.to_string();
    assert!(
        matches!(err, WalError::UnknownMagic { magic: 0xD0FF, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("0xD0FF") && msg.contains(&name) && msg.contains("0/B00000"),
        "{msg}"
    );
}

#[test]
fn zeros_and_random_bytes() {
    // A segment of zeros: end of WAL at its first page (decoder), refused by WalDir::open.
    let zeros = vec![0u8; 1 << 20];
    let mut d = WalDecoder::new(Lsn(0x100_0000));
    d.feed_bytes(Lsn(0x100_0000), &zeros).unwrap();
    match d.poll().unwrap() {
        Poll::End(e) => assert_eq!((e.lsn, e.reason), (Lsn(0x100_0000), EndReason::ZeroPage)),
        other => panic!("{other:?}"),
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("000000010000000000000001"), &zeros).unwrap();
    let err = WalDir::open(tmp.path(), TimelineId(1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("000000010000000000000001"), "{err}");
    // Random bytes: never a panic, a record, or a hang.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for round in 0..200 {
        let mut buf = vec![0u8; 3 * 8192];
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        if round % 2 == 0 {
            // A valid-looking page header with random contents.
            buf[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
            buf[2..4].copy_from_slice(&2u16.to_le_bytes());
            buf[8..16].copy_from_slice(&0x100_0000u64.to_le_bytes());
            buf[32..36].copy_from_slice(&(1u32 << 20).to_le_bytes());
            buf[36..40].copy_from_slice(&8192u32.to_le_bytes());
        }
        let mut d = WalDecoder::new(Lsn(0x100_0000 + 40));
        d.feed_bytes(Lsn(0x100_0000), &buf).unwrap();
        d.finish();
        match d.poll() {
            Ok(Poll::Record(r)) => panic!("decoded a record from random bytes: {r:?}"),
            Ok(Poll::NeedMore) => panic!("NeedMore after finish"),
            Ok(Poll::End(_)) | Err(_) => {}
        }
    }
}

#[test]
fn missing_segment_inside_the_range_is_named() {
    let m = meta();
    let tmp = plain_copy();
    let name = seg_name(Lsn(m.start.0 + 2 * m.seg_size));
    std::fs::remove_file(tmp.path().join(&name)).unwrap();
    for end in [Some(m.end), None] {
        let (_, err, _) = decode_dir(tmp.path(), m.start, end);
        let err = err.expect("missing segment");
        let msg = err.to_string();
        assert!(matches!(err, WalError::MissingSegment { .. }), "{msg}");
        assert!(msg.contains(&name), "{msg}");
    }
}

#[test]
fn start_not_on_a_record_boundary() {
    let m = meta();
    let recs = good();
    let tmp = plain_copy();
    let bad = Lsn(recs[5].lsn.0 + 8);
    let (got, err, _) = decode_dir(tmp.path(), bad, None);
    assert!(got.is_empty());
    let msg = err.expect("refused").to_string();
    assert!(
        msg.contains("not a record boundary") && msg.contains(&bad.to_string()),
        "{msg}"
    );
    // Inside a page header.
    let (_, err, _) = decode_dir(tmp.path(), Lsn(m.start.0 - 0x28 + 8192 + 4), None);
    assert!(err
        .expect("refused")
        .to_string()
        .contains("inside a page header"));
    // A record boundary mid-page is fine.
    let (got, err, _) = decode_dir(tmp.path(), recs[5].lsn, None);
    assert!(err.is_none());
    assert_eq!(got[0], recs[5]);
    assert_eq!(got.len(), recs.len() - 5);
}
