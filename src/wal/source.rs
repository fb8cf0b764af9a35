//! Reads WAL segments from a directory (plain, `.partial`, `.gz`) and decodes them: one
//! timeline, or a node's path across its timeline switches ([`WalDir::along`]).
//!
//! [`WalDirReader`] is an iterator of records; it opens one segment at a time and reads it in
//! fixed-size chunks, so memory stays flat whatever the amount of WAL.

use crate::lsn::{Lsn, SystemId};
use crate::wal::decoder::{EndOfWal, Poll, Polled, WalDecoder};
use crate::wal::dir::{Fill, SegmentFeeder};
pub use crate::wal::dir::{WalDir, CHUNK};
use crate::wal::error::WalError;
use crate::wal::fast::{self, FastPath, Handover};
use crate::wal::page::PgVersion;
use crate::wal::parallel::ranges::RangeWork;
pub use crate::wal::parallel::WORK_RANGE;
use crate::wal::parallel::{self, Parallel};
use crate::wal::pipeline::{self, Learnt, Pipeline};
use crate::wal::record::DecodedRecord;

impl WalDir {
    /// Reads records from `start` up to `end` (exclusive of records ending after it) or the end
    /// of WAL. With a second CPU the files are read and the records found on a second thread
    /// while the caller's thread checks and parses them (module `wal::pipeline`); else as
    /// [`Self::read_inline`]. Memory stays flat: a few chunks plus the largest record.
    pub fn read(&self, start: Lsn, end: Option<Lsn>) -> WalDirReader {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.reader(start, end, (cpus >= 2).then_some(pipeline::AHEAD))
    }

    /// Like [`Self::read`], all on the calling thread: the files are read in [`CHUNK`]-byte
    /// reads straight into the decoder's buffer.
    pub fn read_inline(&self, start: Lsn, end: Option<Lsn>) -> WalDirReader {
        self.reader(start, end, None)
    }

    /// Like [`Self::read_inline`], with plain full-size segments read in large chunks and
    /// each record found, checked and parsed in one pass (module `wal::fast`); at anything
    /// else (the end of WAL, a bad record, a compressed or `.partial` file) the reference
    /// decoder takes over at that record, so records, end and errors are the same.
    ///
    /// With more than one CPU and enough WAL, the ranges of the files are decoded on worker
    /// threads side by side and handed out in order (module `wal::parallel`), with the same
    /// records, end and errors.
    pub fn read_fast(&self, start: Lsn, end: Option<Lsn>) -> WalDirReader {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.read_parallel(start, end, cpus, parallel::RANGE)
    }

    /// [`Self::read_fast`] with `workers` threads (one: on the caller's) and ranges of
    /// `range` bytes.
    pub(crate) fn read_parallel(
        &self,
        start: Lsn,
        end: Option<Lsn>,
        workers: usize,
        range: u64,
    ) -> WalDirReader {
        let mode = match Parallel::plan(self, start, end, workers, range) {
            Some(p) => Mode::Parallel(Box::new(p)),
            None => Mode::Fast(FastPath::new(self, start, end, true)),
        };
        WalDirReader {
            dir: self.clone(),
            mode,
            learnt: Learnt::default(),
            done: false,
            slot: DecodedRecord::empty(),
            end,
        }
    }

    /// The reference decoder on one thread from where the fast path handed over.
    fn resume(&self, h: &Handover, end: Option<Lsn>, block_payloads: bool) -> Mode {
        let mut decoder = WalDecoder::new(h.start)
            .with_segment_size(self.segment_size())
            .resuming(h.prev, h.version, h.sysid, h.latest_tli);
        if let Some(e) = end {
            decoder = decoder.with_end(e);
        }
        decoder.set_block_payloads(block_payloads);
        if let Some((at, name)) = &h.last_file {
            decoder.set_source_name(*at, name);
        }
        let files = SegmentFeeder {
            dir: self.clone(),
            end,
            at: decoder.fed_up_to().0,
            open: None,
            ended: false,
        };
        Mode::Inline { decoder, files }
    }

    /// Like [`Self::read`], always on two threads (module `wal::pipeline`).
    pub fn read_pipelined(&self, start: Lsn, end: Option<Lsn>) -> WalDirReader {
        self.reader(start, end, Some(pipeline::AHEAD))
    }

    /// A reader on one thread (`ahead` = `None`), or on two where the reading thread checks
    /// CRCs itself once `ahead` batches wait for the caller.
    pub(crate) fn reader(
        &self,
        start: Lsn,
        end: Option<Lsn>,
        ahead: Option<usize>,
    ) -> WalDirReader {
        // The two-thread reader checks CRCs after finding the records; one thread, at once.
        let parts = |defer_crc: bool| {
            let mut decoder = WalDecoder::new(start).with_segment_size(self.segment_size());
            if defer_crc {
                decoder = decoder.defer_crc();
            }
            if let Some(e) = end {
                decoder = decoder.with_end(e);
            }
            let files = SegmentFeeder {
                dir: self.clone(),
                end,
                at: decoder.fed_up_to().0,
                open: None,
                ended: false,
            };
            (decoder, files)
        };
        let mode = ahead
            .and_then(|ahead| {
                let (decoder, files) = parts(true);
                Pipeline::start(decoder, files, self.clone(), ahead)
            })
            .map(Mode::Pipelined)
            .unwrap_or_else(|| {
                let (decoder, files) = parts(false);
                Mode::Inline { decoder, files }
            });
        WalDirReader {
            dir: self.clone(),
            mode,
            learnt: Learnt::default(),
            done: false,
            slot: DecodedRecord::empty(),
            end,
        }
    }
}

/// Where decoding happens.
#[allow(clippy::large_enum_variant)] // one per reader, never moved in a loop
enum Mode {
    /// On the caller's thread.
    Inline {
        decoder: WalDecoder,
        files: SegmentFeeder,
    },
    /// Found on a reading thread, parsed on the caller's.
    Pipelined(Pipeline),
    /// The fast path on the caller's thread, until it hands over to `Inline`.
    Fast(FastPath),
    /// The fast path on worker threads, until it hands over to `Fast`.
    Parallel(Box<Parallel>),
}

/// An iterator of decoded records over a [`WalDir`]; check [`Self::end_of_wal`] when it stops.
pub struct WalDirReader {
    dir: WalDir,
    mode: Mode,
    learnt: Learnt,
    done: bool,
    /// The record [`Self::next_record`] lends out, reused from record to record.
    slot: DecodedRecord,
    /// The requested end (for the reference decoder after the fast path).
    end: Option<Lsn>,
}

impl std::fmt::Debug for WalDirReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalDirReader")
            .field("dir", &self.dir)
            .field("pipelined", &matches!(self.mode, Mode::Pipelined(_)))
            .finish()
    }
}

impl WalDirReader {
    /// Where and why decoding stopped, once the iterator returned `None`.
    pub fn end_of_wal(&self) -> Option<&EndOfWal> {
        match &self.mode {
            Mode::Inline { decoder, .. } => decoder.end_of_wal(),
            Mode::Pipelined(_) => self.learnt.end.as_ref(),
            Mode::Fast(_) | Mode::Parallel(_) => None,
        }
    }

    /// The PostgreSQL version that wrote the WAL, once a record was read.
    pub fn version(&self) -> Option<PgVersion> {
        match &self.mode {
            Mode::Inline { decoder, .. } => decoder.version(),
            Mode::Pipelined(_) => self.learnt.version,
            Mode::Fast(f) => f.version(),
            Mode::Parallel(p) => p.version(),
        }
    }

    /// The system identifier, once known (after the iterator ended, on two threads).
    pub fn system_id(&self) -> Option<SystemId> {
        match &self.mode {
            Mode::Inline { decoder, .. } => decoder.system_id(),
            Mode::Pipelined(_) => self.learnt.sysid,
            Mode::Fast(f) => f.system_id(),
            Mode::Parallel(p) => p.system_id(),
        }
    }

    /// The segment size (read from the long page header, else the directory's).
    pub fn segment_size(&self) -> u64 {
        let learnt = match &self.mode {
            Mode::Inline { decoder, .. } => decoder.segment_size(),
            Mode::Pipelined(_) => self.learnt.seg_size,
            Mode::Fast(_) | Mode::Parallel(_) => None,
        };
        learnt.unwrap_or(self.dir.segment_size())
    }

    /// The next record, lent until the next call: the same records as the iterator, but
    /// decoded into one reused slot (no move or allocation per record on one thread).
    /// `None` at the end (then see [`Self::end_of_wal`]) and after an error.
    pub fn next_record(&mut self) -> Option<Result<&DecodedRecord, WalError>> {
        if self.done {
            return None;
        }
        // The common case first: the next record of the batch in hand.
        let in_batch = match &mut self.mode {
            Mode::Parallel(p) => p.step_in_batch(),
            _ => false,
        };
        if in_batch {
            return match &self.mode {
                Mode::Parallel(p) => p.current().map(Ok),
                _ => None,
            };
        }
        let res: Option<Result<(), WalError>> = loop {
            if let Mode::Parallel(p) = &mut self.mode {
                if p.advance() {
                    break Some(Ok(()));
                }
                self.mode = Mode::Fast(p.fallback());
                continue;
            }
            if let Mode::Fast(f) = &mut self.mode {
                match f.next_into(&mut self.slot) {
                    fast::Step::Record => break Some(Ok(())),
                    fast::Step::Handover(h) => {
                        let keep = f.block_payloads();
                        self.mode = self.dir.resume(&h, self.end, keep);
                    }
                    // No stop is set on this path.
                    fast::Step::RangeEnd => break None,
                }
                continue;
            }
            break match &mut self.mode {
                Mode::Fast(_) | Mode::Parallel(_) => None,
                Mode::Pipelined(p) => p.next(&mut self.learnt).map(|r| {
                    r.map(|rec| {
                        self.slot = rec;
                    })
                }),
                Mode::Inline { decoder, files } => loop {
                    match decoder.poll_into(&mut self.slot) {
                        Err(e) => break Some(Err(e)),
                        Ok(Polled::Record) => break Some(Ok(())),
                        Ok(Polled::End(_)) => break None,
                        Ok(Polled::NeedMore) => match feed(decoder, files) {
                            Ok(true) => {}
                            Ok(false) => decoder.finish(),
                            Err(e) => break Some(Err(e)),
                        },
                    }
                },
            };
        };
        match res {
            Some(Ok(())) => match &self.mode {
                Mode::Parallel(p) => match p.current() {
                    Some(rec) => Some(Ok(rec)),
                    None => {
                        self.done = true;
                        None
                    }
                },
                _ => Some(Ok(&self.slot)),
            },
            Some(Err(e)) => {
                self.done = true;
                Some(Err(e))
            }
            None => {
                self.done = true;
                None
            }
        }
    }

    /// Leaves block data and full-page images empty in the records [`Self::next_record`]
    /// lends on one thread (see [`WalDecoder::without_block_payloads`]), for callers that
    /// read only headers, block references and main data.
    pub fn without_block_payloads(mut self) -> WalDirReader {
        match &mut self.mode {
            Mode::Inline { decoder, .. } => decoder.set_block_payloads(false),
            Mode::Fast(f) => f.set_block_payloads(false),
            Mode::Parallel(p) => p.set_block_payloads(false),
            Mode::Pipelined(_) => {}
        }
        self
    }

    /// Whether the files are read and checked on a second thread.
    pub fn is_pipelined(&self) -> bool {
        matches!(self.mode, Mode::Pipelined(_))
    }

    /// Works whole ranges on the worker threads, each with a [`RangeWork`] from `make` that is
    /// given every record of its range, and hands the results to `take` in WAL order while it
    /// returns `true`; the reader then goes on on the caller's thread after the last range
    /// taken (the end of WAL and any error are found there). Does nothing unless the reader
    /// decodes on worker threads ([`Self::is_parallel`]) and no record was read yet.
    pub fn take_ranges<W, F>(&mut self, make: F, take: impl FnMut(W::Out) -> bool)
    where
        W: RangeWork,
        F: Fn() -> W + Send + Clone + 'static,
    {
        if let Mode::Parallel(p) = &mut self.mode {
            p.take_ranges(make, take);
            let fast = p.fallback();
            self.mode = Mode::Fast(fast);
        }
    }

    /// Whether the ranges after the records read so far can be worked by
    /// [`Self::take_ranges_from_here`] now: the reader decodes on worker threads and has
    /// handed out every record of the batch in hand, or reads on this thread with the fast path.
    pub fn can_take_ranges_from_here(&self) -> bool {
        match &self.mode {
            Mode::Parallel(p) => p.between_batches(),
            Mode::Fast(f) => f.state().is_some(),
            Mode::Inline { .. } | Mode::Pipelined(_) => false,
        }
    }

    /// [`Self::take_ranges`] for the records after those read so far, on `workers` threads in
    /// ranges of `range` bytes; from here on no block data or images are kept. Does nothing
    /// unless [`Self::can_take_ranges_from_here`] (or when too little plain WAL is left to share
    /// out); in any case the reader goes on after the last range taken.
    pub fn take_ranges_from_here<W, F>(
        &mut self,
        workers: usize,
        range: u64,
        make: F,
        take: impl FnMut(W::Out) -> bool,
    ) where
        W: RangeWork,
        F: Fn() -> W + Send + Clone + 'static,
    {
        if !self.can_take_ranges_from_here() || self.done {
            return;
        }
        if let Mode::Parallel(p) = &mut self.mode {
            let fast = p.fallback();
            self.mode = Mode::Fast(fast);
        }
        let Mode::Fast(fast) = &mut self.mode else {
            return;
        };
        fast.set_block_payloads(false);
        let Some(st) = fast.state() else { return };
        if let Some(mut p) = Parallel::plan_resuming(&self.dir, &st, self.end, workers, range) {
            p.set_block_payloads(false);
            p.take_ranges(make, take);
            self.mode = Mode::Fast(p.fallback());
        }
    }

    /// Whether ranges of the files are decoded on worker threads (until the one-thread path
    /// takes over).
    pub fn is_parallel(&self) -> bool {
        matches!(self.mode, Mode::Parallel(_))
    }
}

/// Feeds the decoder the next chunk; `false` when there is nothing more to read.
fn feed(decoder: &mut WalDecoder, files: &mut SegmentFeeder) -> Result<bool, WalError> {
    let mut buf = decoder.take_buffer(CHUNK);
    match files.fill(&mut buf, CHUNK)? {
        Fill::Data { at, name } => {
            if let Some(name) = name {
                decoder.set_source_name(Lsn(at), &name);
            }
            decoder.feed_vec(Lsn(at), buf)?;
            Ok(true)
        }
        Fill::Eof => Ok(false),
    }
}

impl Iterator for WalDirReader {
    type Item = Result<DecodedRecord, WalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if matches!(self.mode, Mode::Fast(_) | Mode::Parallel(_)) {
            return self.next_record().map(|r| r.cloned());
        }
        let item = match &mut self.mode {
            Mode::Fast(_) | Mode::Parallel(_) => None,
            Mode::Pipelined(p) => p.next(&mut self.learnt),
            Mode::Inline { decoder, files } => loop {
                match decoder.poll() {
                    Err(e) => break Some(Err(e)),
                    Ok(Poll::Record(r)) => break Some(Ok(r)),
                    Ok(Poll::End(_)) => break None,
                    Ok(Poll::NeedMore) => match feed(decoder, files) {
                        Ok(true) => {}
                        Ok(false) => decoder.finish(),
                        Err(e) => break Some(Err(e)),
                    },
                }
            },
        };
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsn::TimelineId;
    use crate::timeline::TimelineHistory;

    /// Each segment from the newest timeline that had begun by it: the switchpoint's segment
    /// from the child (it holds the parent's WAL up to the switchpoint), two switches in one
    /// segment resolve to the newest.
    #[test]
    fn along_a_history_picks_the_newest_timeline_begun_by_each_segment() {
        let seg = 16 << 20;
        let h = TimelineHistory::parse(
            "00000004.history",
            TimelineId(4),
            "1\t0/3000060\tx\n2\t0/5800000\tx\n3\t0/5900000\tx\n",
        )
        .unwrap();
        let d = WalDir::with_segment_size("/nonexistent", TimelineId(4), seg)
            .unwrap()
            .along(&h);
        let tli = |segno| d.timeline_of_segment(segno).0;
        assert_eq!(
            [tli(0), tli(2), tli(3), tli(4), tli(5), tli(6)],
            [1, 1, 2, 2, 4, 4]
        );
        assert_eq!(d.timeline(), TimelineId(4));
        let root = WalDir::with_segment_size("/nonexistent", TimelineId(2), seg).unwrap();
        assert_eq!(root.timeline_of_segment(0), TimelineId(2));
    }
}
