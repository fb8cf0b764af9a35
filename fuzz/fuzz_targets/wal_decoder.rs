//! Fuzzes the sans-IO WAL decoder and every record interpreter.
//!
//! Input: byte 0 picks the start offset within the first page (8-aligned), byte 1 the feed
//! chunk size; the rest is WAL starting at the page address its first page header claims
//! (so real segments are valid seeds), 1 MB segments. Seed with tests/fixtures/wal/pg15.
#![no_main]

use failover_verify::lsn::Lsn;
use failover_verify::wal::accounting::Accountant;
use failover_verify::wal::decoder::{Poll, WalDecoder};
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
    let mut d = WalDecoder::new(Lsn(start)).with_segment_size(1 << 20);
    let mut acc = Accountant::new(Lsn(base + 4096));
    let mut pos = 0usize;
    loop {
        match d.poll() {
            Ok(Poll::Record(r)) => {
                let _ = XactRecord::parse(&r);
                let _ = HeapRecord::parse(&r);
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
