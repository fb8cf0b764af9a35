//! The sans-IO decoder on the pg15 fixture: chunked feeds, continuation pages, segment
//! boundaries, XLOG_SWITCH and requested ends.

mod wal_util;

use std::sync::OnceLock;

use failover_verify::lsn::{Lsn, TimelineId};
use failover_verify::wal::decoder::{EndReason, Poll, WalDecoder};
use failover_verify::wal::source::WalDir;
use failover_verify::wal::DecodedRecord;
use wal_util::*;

fn all() -> &'static Vec<DecodedRecord> {
    static R: OnceLock<Vec<DecodedRecord>> = OnceLock::new();
    R.get_or_init(|| {
        let d = WalDir::open(fixture_dir(), TimelineId(1)).unwrap();
        d.read(meta().start, None).map(|r| r.unwrap()).collect()
    })
}

/// The fixture as one contiguous byte string starting at the first segment.
fn bytes() -> &'static (Lsn, Vec<u8>) {
    static B: OnceLock<(Lsn, Vec<u8>)> = OnceLock::new();
    B.get_or_init(|| {
        let tmp = plain_copy();
        let mut names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        let mut v = Vec::new();
        for n in names {
            v.extend(std::fs::read(n).unwrap());
        }
        let m = meta();
        (Lsn(m.start.0 - m.start.segment_offset(m.seg_size)), v)
    })
}

/// Decodes from `start` feeding chunks of varying size; returns the records and the end.
fn decode_chunked(
    start: Lsn,
    sizes: &[usize],
    end: Option<Lsn>,
) -> (Vec<DecodedRecord>, EndReason) {
    let (base, b) = bytes();
    let mut d = WalDecoder::new(start);
    if let Some(e) = end {
        d = d.with_end(e);
    }
    let mut pos = (start.0 - start.0 % 8192 - base.0) as usize;
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        match d.poll().unwrap() {
            Poll::Record(r) => out.push(r),
            Poll::End(e) => return (out, e.reason),
            Poll::NeedMore => {
                if pos >= b.len() {
                    d.finish();
                    continue;
                }
                let n = sizes[i % sizes.len()].min(b.len() - pos);
                i += 1;
                d.feed_bytes(Lsn(base.0 + pos as u64), &b[pos..pos + n])
                    .unwrap();
                pos += n;
            }
        }
    }
}

#[test]
fn chunk_size_does_not_matter() {
    let m = meta();
    for sizes in [&[1usize << 20][..], &[8192], &[1, 7, 4096, 13, 100_000, 3]] {
        let (got, end) = decode_chunked(m.start, sizes, None);
        assert_eq!(&got, all(), "chunks {sizes:?}");
        assert!(matches!(
            end,
            EndReason::EndOfInput {
                partial_record: false
            }
        ));
    }
}

/// The segments of the pg`major` fixture as one byte string from the first segment's start.
fn fixture_bytes(major: u32) -> (Lsn, Vec<u8>) {
    let dir = fixture_dir_for(major);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "gz"))
        .collect();
    names.sort();
    let mut v = Vec::new();
    for n in names {
        let mut d = flate2::read::GzDecoder::new(std::fs::File::open(n).unwrap());
        std::io::Read::read_to_end(&mut d, &mut v).unwrap();
    }
    let m = meta_for(major);
    (Lsn(m.start.0 - m.start.segment_offset(m.seg_size)), v)
}

#[test]
fn a_header_split_by_a_page_boundary_waits_for_the_rest_of_the_record() {
    // A record whose 24-byte header starts in the last bytes of a page continues after the
    // next page's header. Fed up to the end of that page header (the record incomplete), the
    // decoder must ask for more bytes, not take the page header for the rest of the record's
    // header (it used to end there: a bad prev-link or resource manager id).
    let mut checked = 0;
    for major in [13, 14, 15, 17, 18] {
        let m = meta_for(major);
        let (base, b) = fixture_bytes(major);
        let records: Vec<DecodedRecord> = WalDir::open(fixture_dir_for(major), TimelineId(1))
            .unwrap()
            .read(m.start, None)
            .map(|r| r.unwrap())
            .collect();
        let page_header = |page: u64| if page % m.seg_size == 0 { 40 } else { 24 };
        let start_page = m.start.0 - m.start.0 % 8192;
        for r in &records {
            let next_page = r.lsn.0 - r.lsn.0 % 8192 + 8192;
            let first_part = next_page - r.lsn.0;
            if first_part >= 24 || first_part + page_header(next_page) >= u64::from(r.xl_tot_len) {
                continue;
            }
            // Two feeds: up to the end of the next page's header, then the rest.
            let cut = (next_page + page_header(next_page) - base.0) as usize;
            let from = (start_page - base.0) as usize;
            let mut d = WalDecoder::new(m.start);
            let mut got = Vec::new();
            let mut fed = [false, false];
            let end = loop {
                match d.poll().unwrap() {
                    Poll::Record(x) => got.push(x),
                    Poll::End(e) => break e,
                    Poll::NeedMore if !fed[0] => {
                        fed[0] = true;
                        d.feed_bytes(Lsn(base.0 + from as u64), &b[from..cut])
                            .unwrap();
                    }
                    Poll::NeedMore if !fed[1] => {
                        fed[1] = true;
                        d.feed_bytes(Lsn(base.0 + cut as u64), &b[cut..]).unwrap();
                    }
                    Poll::NeedMore => d.finish(),
                }
            };
            assert_eq!(got, records, "pg{major}, record at {}: {end}", r.lsn);
            checked += 1;
        }
    }
    assert!(checked > 0, "the fixtures have such a record");
}

#[test]
fn records_cross_pages_and_segments() {
    let seg = meta().seg_size;
    let recs = all();
    let crosses_page = recs
        .iter()
        .filter(|r| r.lsn.0 / 8192 != (r.end_lsn.0 - 1) / 8192)
        .count();
    assert!(crosses_page > 50, "{crosses_page}");
    let crosses_seg: Vec<_> = recs
        .iter()
        .filter(|r| r.lsn.segment_number(seg) != Lsn(r.end_lsn.0 - 1).segment_number(seg))
        .collect();
    assert!(!crosses_seg.is_empty());
    assert!(
        recs.iter().any(|r| u64::from(r.xl_tot_len) > seg),
        "a record longer than a segment"
    );
    // The big message's payload arrived intact (CRC-checked) and is main data.
    let big = recs.iter().max_by_key(|r| r.xl_tot_len).unwrap();
    assert!(big.main_data.len() > 1_500_000);
}

#[test]
fn starting_on_a_continuation_page_skips_to_the_next_record() {
    let recs = all();
    // A page in the middle of a multi-page record, and the start of a segment that begins
    // with the continuation of the 1.5 MB record.
    let long = recs.iter().find(|r| r.xl_tot_len > 20_000).unwrap();
    let page = Lsn((long.lsn.0 / 8192 + 1) * 8192);
    let seg = meta().seg_size;
    let big = recs.iter().max_by_key(|r| r.xl_tot_len).unwrap();
    let seg_start = Lsn((big.lsn.0 / seg + 1) * seg);
    for start in [page, seg_start] {
        let want: Vec<_> = recs.iter().filter(|r| r.lsn >= start).cloned().collect();
        let (got, _) = decode_chunked(start, &[65536], None);
        assert_eq!(
            got.first().map(|r| r.lsn),
            want.first().map(|r| r.lsn),
            "start {start}"
        );
        assert_eq!(got.len(), want.len());
        // The first record has no known predecessor; later ones are prev-linked.
        assert!(got.windows(2).all(|w| w[1].prev == w[0].lsn));
    }
}

#[test]
fn xlog_switch_skips_the_rest_of_the_segment() {
    let recs = all();
    let seg = meta().seg_size;
    let switches: Vec<_> = recs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.rmid == 0 && r.info & 0xF0 == 0x40)
        .collect();
    assert!(!switches.is_empty());
    for (i, _) in switches {
        if let Some(next) = recs.get(i + 1) {
            assert_eq!(
                next.lsn.segment_offset(seg),
                40,
                "next record after the long header"
            );
        }
    }
}

#[test]
fn requested_end_stops_before_records_that_end_after_it() {
    let m = meta();
    let (got, end) = decode_chunked(m.start, &[1 << 20], Some(m.switchpoint));
    assert_eq!(end, EndReason::RequestedEnd);
    assert!(got.iter().all(|r| r.end_lsn <= m.switchpoint));
    let want = all().iter().filter(|r| r.end_lsn <= m.switchpoint).count();
    assert_eq!(got.len(), want);
}

#[test]
fn learns_segment_size_and_version_from_the_long_header() {
    let m = meta();
    let (base, b) = bytes();
    let mut d = WalDecoder::new(m.start);
    d.feed_bytes(*base, &b[..65536]).unwrap();
    assert!(matches!(d.poll().unwrap(), Poll::Record(_)));
    assert_eq!(d.segment_size(), Some(m.seg_size));
    assert_eq!(d.version().map(|v| v.0), Some(15));
    assert!(d.system_id().is_some());
}

#[test]
fn pipelined_and_inline_readers_agree() {
    let m = meta();
    let d = WalDir::open(fixture_dir(), TimelineId(1)).unwrap();
    let mut two = d.read_pipelined(m.start, None);
    assert!(two.is_pipelined());
    let got: Vec<_> = two.by_ref().map(|r| r.unwrap()).collect();
    assert_eq!(&got, all());
    assert_eq!(
        two.end_of_wal().unwrap().reason,
        EndReason::EndOfInput {
            partial_record: false
        }
    );
    let mut one = d.read_inline(m.start, None);
    assert!(!one.is_pipelined());
    assert_eq!(one.by_ref().count(), got.len());
    assert_eq!(two.end_of_wal(), one.end_of_wal());
    assert_eq!(two.version(), one.version());
    assert_eq!(two.system_id(), one.system_id());
    assert!(two.system_id().is_some());
    assert_eq!(two.segment_size(), m.seg_size);
    // With an end LSN, both stop at the same record.
    let a: Vec<_> = d
        .read_pipelined(m.start, Some(m.switchpoint))
        .map(|r| r.unwrap().lsn)
        .collect();
    let b: Vec<_> = d
        .read_inline(m.start, Some(m.switchpoint))
        .map(|r| r.unwrap().lsn)
        .collect();
    assert_eq!(a, b);
    assert!(!a.is_empty() && a.len() < got.len());
}
