//! Decoding a directory of segments on several threads, with the sequential reader's results.
//!
//! Every segment's first page says how many bytes of a record continue from the previous
//! segment (`xlp_rem_len`), so a decoder can start at any segment and find its first record
//! there. Worker `i` of `n` decodes segments `first + i`, `first + i + n`, …: each from the
//! segment's first record up to the first record that begins in the next segment (a record
//! that crosses the boundary is finished by reading on into the next file, as the sequential
//! reader does). The iterator hands the records out in WAL order and joins the pieces:
//!
//! - the first record of each segment must point back (`xl_prev`) at the last record of the
//!   one before, else WAL ends there (`BadPrev`), as it would sequentially;
//! - the first segment that ends (end of WAL, damage) or fails ends the whole read, and the
//!   segments decoded past it are discarded;
//! - memory stays bounded: each worker queues at most [`QUEUED_BATCHES`] batches.
//!
//! The records, their order and the end of WAL are the same as [`WalDir::read`]'s; the tests
//! in `tests/wal_parallel.rs` check that on real WAL, damaged WAL and ranges.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::lsn::Lsn;
use crate::wal::decoder::{EndOfWal, EndReason};
use crate::wal::error::WalError;
use crate::wal::record::DecodedRecord;
use crate::wal::segment::segment_start;
use crate::wal::source::WalDir;

/// Records per message from a worker.
const BATCH: usize = 1024;
/// Messages a worker may queue before it waits for the reader.
pub const QUEUED_BATCHES: usize = 4;

/// What a worker sends for one segment: batches, then exactly one terminal message.
enum Msg {
    Records(Vec<DecodedRecord>),
    /// The segment's records are complete; the next segment's worker goes on.
    Done,
    /// WAL ends in this segment.
    End(EndOfWal),
    Err(WalError),
}

/// An iterator of decoded records over a [`WalDir`], decoded by several threads.
pub struct ParallelReader {
    rx: Vec<Receiver<Msg>>,
    /// The sequential reader, when no thread could be started.
    seq: Option<crate::wal::source::WalDirReader>,
    /// Index of the worker whose segment comes next.
    turn: usize,
    batch: std::vec::IntoIter<DecodedRecord>,
    /// The segment being handed out, and whether its first record was checked.
    seg: u64,
    checked_first: bool,
    last: Option<Lsn>,
    ended: Option<EndOfWal>,
    done: bool,
    dir: WalDir,
}

impl std::fmt::Debug for ParallelReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParallelReader")
            .field("workers", &self.rx.len())
            .field("seg", &self.seg)
            .finish()
    }
}

impl WalDir {
    /// Decodes from `start` (to `end`) on `threads` threads; the same records and end of WAL
    /// as [`WalDir::read`], faster on more than one core.
    pub fn read_parallel(&self, start: Lsn, end: Option<Lsn>, threads: usize) -> ParallelReader {
        let seg_size = self.segment_size();
        let first = start.0 / seg_size;
        let n = threads.max(1);
        let mut rx = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, r) = sync_channel(QUEUED_BATCHES);
            let dir = self.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("wal-decode-{i}"))
                .spawn(move || worker(dir, start, end, first + i as u64, n as u64, tx));
            if spawned.is_err() {
                // Segments are dealt out round-robin, so every worker is needed: hang up on
                // the started ones and decode on this thread instead.
                rx.clear();
                break;
            }
            rx.push(r);
        }
        let seq = rx.is_empty().then(|| self.read(start, end));
        ParallelReader {
            rx,
            seq,
            turn: 0,
            batch: Vec::new().into_iter(),
            seg: first,
            checked_first: false,
            last: None,
            ended: None,
            done: false,
            dir: self.clone(),
        }
    }
}

/// Decodes segments `seg`, `seg + step`, … until one ends WAL or the reader hangs up.
fn worker(dir: WalDir, start: Lsn, end: Option<Lsn>, mut seg: u64, step: u64, tx: SyncSender<Msg>) {
    let seg_size = dir.segment_size();
    loop {
        let from = segment_start(seg, seg_size).max(start);
        let until = segment_start(seg.saturating_add(1), seg_size).0;
        // Past the requested end, the decoder ends at once, as the sequential one would.
        let mut reader = dir.read(from, end);
        let mut batch = Vec::with_capacity(BATCH);
        let terminal = loop {
            if reader.decoder().next_lsn().0 >= until {
                break Msg::Done;
            }
            match reader.next() {
                Some(Ok(r)) => {
                    if r.lsn.0 >= until {
                        // Only when the segment holds no record start at all (a record
                        // spans it): this record belongs to a later segment's worker.
                        break Msg::Done;
                    }
                    batch.push(r);
                    if batch.len() == BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        if tx.send(Msg::Records(full)).is_err() {
                            return;
                        }
                    }
                }
                Some(Err(e)) => break Msg::Err(e),
                None => match reader.end_of_wal() {
                    // An end past this segment is the next segment's worker's to report.
                    Some(e) if e.lsn.0 >= until => break Msg::Done,
                    Some(e) => break Msg::End(e.clone()),
                    None => break Msg::Done,
                },
            }
        };
        let last = !matches!(terminal, Msg::Done);
        if !batch.is_empty() && tx.send(Msg::Records(batch)).is_err() {
            return;
        }
        if tx.send(terminal).is_err() || last {
            return;
        }
        seg = seg.saturating_add(step);
    }
}

impl ParallelReader {
    /// Where and why decoding stopped, once the iterator returned `None`.
    pub fn end_of_wal(&self) -> Option<&EndOfWal> {
        match &self.seq {
            Some(r) => r.end_of_wal(),
            None => self.ended.as_ref(),
        }
    }

    fn end_with(&mut self, e: EndOfWal) {
        self.ended = Some(e);
        self.done = true;
        // Hang up: workers stop at their next send.
        self.rx.clear();
    }
}

impl Iterator for ParallelReader {
    type Item = Result<DecodedRecord, WalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(r) = self.seq.as_mut() {
            return r.next();
        }
        loop {
            if self.done {
                return None;
            }
            if let Some(r) = self.batch.next() {
                if !self.checked_first {
                    self.checked_first = true;
                    if let Some(prev) = self.last {
                        if r.prev != prev {
                            let file = self
                                .dir
                                .find_segment(r.lsn.0 / self.dir.segment_size())
                                .map(|(_, n)| n);
                            self.end_with(EndOfWal {
                                lsn: r.lsn,
                                reason: EndReason::BadPrev {
                                    found: r.prev,
                                    expected: prev,
                                },
                                file,
                                data_follows: false,
                            });
                            return None;
                        }
                    }
                }
                self.last = Some(r.lsn);
                return Some(Ok(r));
            }
            let n = self.rx.len();
            let Some(rx) = self.rx.get(self.turn) else {
                self.done = true;
                return None;
            };
            match rx.recv() {
                Ok(Msg::Records(v)) => self.batch = v.into_iter(),
                Ok(Msg::Done) => {
                    self.turn = (self.turn + 1) % n;
                    self.seg += 1;
                    self.checked_first = false;
                }
                Ok(Msg::End(mut e)) => {
                    if e.file.is_none() && self.seg > 0 {
                        // Nothing of this segment was read: name the file before it, as the
                        // sequential reader names the last file it read.
                        e.file = self.dir.find_segment(self.seg - 1).map(|(_, n)| n);
                    }
                    self.end_with(e);
                    return None;
                }
                Ok(Msg::Err(e)) => {
                    self.done = true;
                    self.rx.clear();
                    return Some(Err(e));
                }
                Err(_) => {
                    self.done = true;
                    return None;
                }
            }
        }
    }
}
