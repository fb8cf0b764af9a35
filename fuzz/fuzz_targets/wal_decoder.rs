//! Fuzzes the sans-IO WAL decoder and every record interpreter.
//!
//! Input: byte 0 picks the start offset within the first page (8-aligned), byte 1 the feed
//! chunk size and whether CRCs are deferred (the two-thread reader's path: frames are checked
//! and parsed from shared chunks, and must agree with the decoder's own check and parse);
//! the rest is WAL starting at the page address its first page header claims
//! (so real segments are valid seeds), 1 MB segments. Seed with tests/fixtures/wal/pg15.
#![no_main]

use failover_verify::lsn::Lsn;
use failover_verify::wal::accounting::Accountant;
use failover_verify::wal::decoder::{
    check_frame_crc, parse_frame_in, FramePoll, Poll, WalDecoder,
};
use failover_verify::wal::error::FileCtx;
use failover_verify::wal::heap::HeapRecord;
use failover_verify::wal::standby::{Checkpoint, RunningXacts, SeqRecord};
use failover_verify::wal::xact::XactRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let wal = &data[2..];
    let claimed = wal
        .get(8..16)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
        .unwrap_or(0x100_0000);
    let base = (claimed & !8191) % (1 << 62);
    let start = base + u64::from(data[0]) * 8;
    let chunk = [1usize, 7, 512, 8192, 1 << 20][usize::from(data[1]) % 5];
    let deferred = (data[1] / 5) % 2 == 1;
    let mut d = WalDecoder::new(Lsn(start)).with_segment_size(1 << 20);
    if deferred {
        d = d.defer_crc();
    }
    let mut acc = Accountant::new(Lsn(base + 4096));
    let mut pos = 0usize;
    loop {
        let polled = if deferred {
            match d.poll_frame() {
                Ok(FramePoll::Frame(f)) => {
                    let mut chunks = Vec::new();
                    d.share_chunks(&f, &mut chunks);
                    let mine = d.check_crc(&f);
                    let theirs = check_frame_crc(&f, &chunks).map_err(|mut e| {
                        e.file = mine.as_ref().err().and_then(|m| m.file.clone());
                        e
                    });
                    assert_eq!(mine, theirs, "the two CRC checks disagree");
                    if mine.is_err() {
                        break;
                    }
                    let a = d.parse_frame(&f).map_err(|e| e.to_string());
                    let b = parse_frame_in(&f, &chunks, &FileCtx(None)).map_err(|_| ());
                    assert_eq!(a.as_ref().ok(), b.as_ref().ok(), "the two parses disagree");
                    a.map(Poll::Record).map_err(|_| ())
                }
                Ok(FramePoll::NeedMore) => Ok(Poll::NeedMore),
                Ok(FramePoll::End(e)) => Ok(Poll::End(e)),
                Err(_) => Err(()),
            }
        } else {
            d.poll().map_err(|_| ())
        };
        match polled {
            Ok(Poll::Record(r)) => {
                let _ = XactRecord::parse(&r);
                let _ = HeapRecord::parse(&r);
                let _ = failover_verify::wal::tuple::tuples_of(&r);
                let _ = RunningXacts::parse(&r);
                let _ = Checkpoint::parse(&r);
                let _ = SeqRecord::parse(&r);
                let _ = acc.add(&r);
            }
            Ok(Poll::End(_)) | Err(_) => break,
            Ok(Poll::NeedMore) => {
                if pos >= wal.len() {
                    d.finish();
                    continue;
                }
                let n = chunk.min(wal.len() - pos);
                if d.feed_bytes(Lsn(base + pos as u64), &wal[pos..pos + n]).is_err() {
                    break;
                }
                pos += n;
            }
        }
    }
    let _ = acc.finish(d.end_of_wal().cloned());
});
