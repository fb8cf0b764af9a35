//! Bounded in-process mutation testing of the decoder and the interpretation layer over the
//! real pg15 fixture: bit flips, byte stores, truncations, splices and zeroed runs, fed in
//! random chunk sizes. Nothing may panic. FV_MUTATIONS=N runs N cases (default 1500).

mod wal_util;

use std::panic::{catch_unwind, AssertUnwindSafe};

use failover_verify::lsn::Lsn;
use failover_verify::wal::accounting::Accountant;
use failover_verify::wal::decoder::{Poll, WalDecoder};
use failover_verify::wal::heap::HeapRecord;
use failover_verify::wal::standby::{Checkpoint, RunningXacts, SeqRecord};
use failover_verify::wal::xact::XactRecord;
use wal_util::*;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn fixture_bytes() -> (u64, Vec<u8>) {
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
    (m.start.0 - m.start.segment_offset(m.seg_size), v)
}

/// Decodes `bytes` (starting at page-aligned `base`) from `start`, feeding random chunks, and
/// runs every interpreter on every record. Returns the number of records.
fn run(base: u64, bytes: &[u8], start: u64, rng: &mut Rng) -> usize {
    let mut d = WalDecoder::new(Lsn(start)).with_segment_size(1 << 20);
    let mut acc = Accountant::new(Lsn(start + 20_000));
    let mut pos = 0usize;
    let mut n = 0;
    for _ in 0..1_000_000 {
        match d.poll() {
            Ok(Poll::Record(r)) => {
                n += 1;
                let _ = XactRecord::parse(&r);
                let _ = HeapRecord::parse(&r);
                let _ = RunningXacts::parse(&r);
                let _ = Checkpoint::parse(&r);
                let _ = SeqRecord::parse(&r);
                let _ = acc.add(&r);
            }
            Ok(Poll::End(e)) => {
                let _ = e.to_string();
                break;
            }
            Err(e) => {
                let _ = e.to_string();
                break;
            }
            Ok(Poll::NeedMore) => {
                if pos >= bytes.len() {
                    d.finish();
                    continue;
                }
                let c = [1usize, 100, 8192, 65536][rng.below(4)].min(bytes.len() - pos);
                d.feed_bytes(Lsn(base + pos as u64), &bytes[pos..pos + c])
                    .unwrap();
                pos += c;
            }
        }
    }
    let _ = serde_json::to_string(&acc.finish(d.end_of_wal().cloned()));
    n
}

#[test]
fn mutations_never_panic() {
    let cases: usize = std::env::var("FV_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let (base, all) = fixture_bytes();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut crashes = Vec::new();
    let mut decoded = 0usize;
    for case in 0..cases {
        // A window of 8..128 KB starting on a page, often a segment start.
        let pages = all.len() / 8192;
        let first_page = if rng.below(4) == 0 {
            (rng.below(all.len() >> 20)) << 7
        } else {
            rng.below(pages)
        };
        let len = (8 + rng.below(120)) * 1024;
        let from = first_page * 8192;
        let to = (from + len).min(all.len());
        let mut w = all[from..to].to_vec();
        let kind = rng.below(6);
        let muts = 1 + rng.below(8);
        for _ in 0..muts {
            if w.is_empty() {
                break;
            }
            match kind {
                0 => {
                    let i = rng.below(w.len());
                    w[i] ^= 1 << rng.below(8);
                }
                1 => {
                    let i = rng.below(w.len());
                    w[i] = [0, 0xFF, 0x7F, 0x80, 1][rng.below(5)];
                }
                2 => {
                    let l = rng.below(w.len());
                    w.truncate(l);
                }
                3 => {
                    // Splice: copy a chunk of the fixture over the window.
                    let l = 1 + rng.below(4096);
                    let src = rng.below(all.len().saturating_sub(l));
                    let dst = rng.below(w.len());
                    let l = l.min(w.len() - dst);
                    w[dst..dst + l].copy_from_slice(&all[src..src + l]);
                }
                4 => {
                    let i = rng.below(w.len());
                    let l = rng.below(w.len() - i);
                    w[i..i + l].fill(0);
                }
                _ => {
                    // Length fields: overwrite 4 bytes at an 8-aligned spot with a random u32.
                    let i = rng.below(w.len() / 8) * 8;
                    let v = (rng.next() as u32).to_le_bytes();
                    let l = 4.min(w.len() - i);
                    w[i..i + l].copy_from_slice(&v[..l]);
                }
            }
        }
        let page_lsn = base + from as u64;
        // Start on the page, after its header, or at a random 8-aligned offset in it.
        let start = match rng.below(3) {
            0 => page_lsn,
            1 => page_lsn + if from % (1 << 20) == 0 { 40 } else { 24 },
            _ => page_lsn + 8 * rng.below(1024) as u64,
        };
        let mut r2 = Rng(rng.next() | 1);
        match catch_unwind(AssertUnwindSafe(|| run(page_lsn, &w, start, &mut r2))) {
            Ok(n) => decoded += n,
            Err(_) => crashes.push((case, kind, from, start)),
        }
    }
    println!(
        "{cases} mutation cases, {decoded} records decoded, {} crashes",
        crashes.len()
    );
    assert!(
        crashes.is_empty(),
        "crashes (case, kind, window offset, start): {crashes:?}"
    );
    assert!(decoded > 0);
}
