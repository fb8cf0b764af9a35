//! The floor of reading WAL: every record of a directory of segments found and CRC-checked
//! (optionally its block headers walked to the main data) on N threads, nothing else; what no
//! decoder of the same files can beat on this machine. See BENCHMARKS.md, "Report at scale".
//!
//! ```text
//! cargo build --release --example wal_floor
//! target/release/examples/wal_floor DIR FIRST_SEGMENT_NAME [--threads N] [--headers]
//! ```
//!
//! Each thread takes whole segments (the first, then every N-th), reads them 32 KB at a time
//! into one buffer, as `failover-verify`'s readers do, and walks the records from the first
//! page's continuation on. A record that crosses into the next segment is counted but not
//! checked (one per segment at most); a zero length ends the walk (the end of WAL), a CRC
//! mismatch is counted. Nothing is allocated per record; records that cross a page are
//! gathered into a reused buffer, as every decoder must to check their CRC in one pass.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

const PAGE: usize = 8192;
const CHUNK: usize = 32 << 10;
const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;

#[derive(Default, Clone, Copy)]
struct Tally {
    records: u64,
    bytes: u64,
    crossing_segments: u64,
    bad_crc: u64,
    /// A sum of header fields read in `--headers` mode (kept so that the walk is not elided).
    fold: u64,
}

enum State {
    /// Skipping the rest of a record continued from the previous segment.
    Skip,
    /// A record gathered across pages: bytes still to come.
    Gathering(usize),
    /// At a record boundary.
    Records,
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// The CRC check `failover-verify` makes (the cheapest there is for short records).
fn crc_ok(rec: &[u8]) -> bool {
    failover_verify::wal::crc::record_crc_ok(rec)
}

/// Walks the block headers to the main data: what a decoder must read of every record.
fn walk_headers(rec: &[u8]) -> u64 {
    let mut fold = u64::from(u32_at(rec, 4)) + u64::from(rec[17]) + u64::from(rec[16]);
    let mut p = 24;
    while p < rec.len() {
        let id = rec[p];
        p += 1;
        match id {
            255 => return fold + u64::from(rec[p]),
            254 => return fold + u64::from(u32_at(rec, p)),
            253 => p += 2,
            252 => p += 4,
            0..=32 => {
                let flags = rec[p];
                p += 3;
                if flags & 0x10 != 0 {
                    let bimg = rec[p + 4];
                    p += 5;
                    // PG15 and later: compressed with a hole stores the hole's length.
                    if bimg & 0x01 != 0 && bimg & 0x1C != 0 {
                        p += 2;
                    }
                }
                if flags & 0x80 == 0 {
                    fold += u64::from(u32_at(rec, p + 8));
                    p += 12;
                }
                fold += u64::from(u32_at(rec, p));
                p += 4;
            }
            _ => return fold,
        }
    }
    fold
}

fn account(rec: &[u8], headers: bool, t: &mut Tally) {
    t.records += 1;
    t.bytes += rec.len() as u64;
    if !crc_ok(rec) {
        t.bad_crc += 1;
    }
    if headers {
        t.fold = t.fold.wrapping_add(walk_headers(rec));
    }
}

/// Walks one segment (16 MB); `false` at the end of WAL, or where a page is not the one this
/// segment should hold (a recycled segment past the end).
fn segment(
    path: &Path,
    headers: bool,
    buf: &mut [u8],
    scratch: &mut Vec<u8>,
    t: &mut Tally,
) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let (Ok(log), Ok(seg)) = (
        u64::from_str_radix(&name[8..16], 16),
        u64::from_str_radix(&name[16..24], 16),
    ) else {
        return false;
    };
    let mut addr = (log * 256 + seg) << 24;
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let mut state = State::Records;
    let mut first = true;
    loop {
        match f.read(buf) {
            Ok(0) | Err(_) => break,
            Ok(n) if n % PAGE != 0 => return false,
            Ok(n) => {
                for page in buf[..n].chunks_exact(PAGE) {
                    let at = u64::from(u32_at(page, 8)) | (u64::from(u32_at(page, 12)) << 32);
                    if at != addr {
                        return false;
                    }
                    addr += PAGE as u64;
                    let hlen = if first { 40 } else { 24 };
                    let info = u16_at(page, 2);
                    let rem = u32_at(page, 16) as usize;
                    let mut p = hlen;
                    if first && info & XLP_FIRST_IS_CONTRECORD != 0 {
                        state = State::Skip;
                    }
                    first = false;
                    match state {
                        State::Skip => {
                            if rem >= PAGE - hlen {
                                continue;
                            }
                            p = hlen + ((rem + 7) & !7);
                            state = State::Records;
                        }
                        State::Gathering(left) => {
                            let take = left.min(PAGE - hlen);
                            scratch.extend_from_slice(&page[hlen..hlen + take]);
                            if take < left {
                                state = State::Gathering(left - take);
                                continue;
                            }
                            account(scratch, headers, t);
                            if scratch[17] == 0 && scratch[16] & 0xF0 == 0x40 {
                                return true; // XLOG_SWITCH: the rest of the segment is empty
                            }
                            p = hlen + ((take + 7) & !7);
                            state = State::Records;
                        }
                        State::Records => {}
                    }
                    while p < PAGE {
                        let tot = u32_at(page, p) as usize;
                        if tot < 24 {
                            return false;
                        }
                        if p + tot <= PAGE {
                            let rec = &page[p..p + tot];
                            account(rec, headers, t);
                            if rec[17] == 0 && rec[16] & 0xF0 == 0x40 {
                                return true;
                            }
                            p = (p + tot + 7) & !7;
                        } else {
                            scratch.clear();
                            scratch.extend_from_slice(&page[p..]);
                            state = State::Gathering(tot - (PAGE - p));
                            break;
                        }
                    }
                }
            }
        }
    }
    if let State::Gathering(_) = state {
        t.crossing_segments += 1;
    }
    true
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(first)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: wal_floor DIR FIRST_SEGMENT_NAME [--threads N] [--headers]");
        std::process::exit(2);
    };
    let threads: usize = args
        .iter()
        .position(|a| a == "--threads")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
        .max(1);
    let headers = args.iter().any(|a| a == "--headers");
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read the directory")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 24 && n >= first.as_str())
        })
        .collect();
    segs.sort();
    let t0 = Instant::now();
    let total = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|w| {
                let segs = &segs;
                s.spawn(move || {
                    let mut t = Tally::default();
                    let mut buf = vec![0u8; CHUNK];
                    let mut scratch = Vec::new();
                    for path in segs.iter().skip(w).step_by(threads) {
                        if !segment(path, headers, &mut buf, &mut scratch, &mut t) {
                            break;
                        }
                    }
                    t
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .fold(Tally::default(), |mut a, b| {
                a.records += b.records;
                a.bytes += b.bytes;
                a.crossing_segments += b.crossing_segments;
                a.bad_crc += b.bad_crc;
                a.fold = a.fold.wrapping_add(b.fold);
                a
            })
    });
    println!(
        "{} records, {} bytes, {} crossing a segment (not checked), {} CRC mismatches, {} threads{}, {:.3} s (fold {})",
        total.records,
        total.bytes,
        total.crossing_segments,
        total.bad_crc,
        threads,
        if headers { ", block headers walked" } else { "" },
        t0.elapsed().as_secs_f64(),
        total.fold % 1000
    );
}
