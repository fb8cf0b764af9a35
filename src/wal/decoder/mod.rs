//! The sans-IO WAL decoder: feed it bytes, poll it for records.
//!
//! ```text
//! let mut d = WalDecoder::new(start);
//! d.feed_bytes(page_start_of(start), &bytes)?;   // contiguous feeds
//! loop { match d.poll()? { Poll::Record(r) => .., Poll::NeedMore => feed, Poll::End(e) => break } }
//! ```
//!
//! [`WalDecoder::poll`] is [`WalDecoder::poll_frame`] (find and check the next record: the
//! sequential part) followed by [`WalDecoder::parse_frame`]. A reader may do the second half
//! elsewhere: [`WalDecoder::share_chunks`] hands out the bytes, [`parse_frame_in`] parses them,
//! and with [`WalDecoder::defer_crc`] [`check_frame_crc`] checks them (`wal::pipeline` does).
//!
//! # End of WAL versus corruption
//!
//! PostgreSQL (recovery and `pg_waldump`) stops at the first record it cannot read and calls
//! that the end of WAL, whatever the reason: a zero `xl_tot_len`, a zeroed page, a page whose
//! `xlp_pageaddr` belongs to another segment (a recycled file), a bad `xl_prev`, a CRC
//! mismatch, a continuation page that does not continue the record. This decoder does the same
//! and reports [`Poll::End`] with an [`EndReason`] and the LSN. For the reasons that are normal
//! at a tail ([`EndReason::is_clean`]) nothing more is said; for a CRC mismatch or a bad header
//! it also tells whether non-zero bytes follow in what was fed ([`EndOfWal::data_follows`]),
//! which hints at corruption in the middle rather than a torn tail write. Errors
//! ([`WalError`]) are reserved for input that cannot be WAL at all: an unknown page magic on
//! the first page, a start that is not a record boundary, non-contiguous feeds, or a record
//! whose CRC matches but whose contents are malformed.

mod read;

use bytes::{Buf, Bytes};

use crate::lsn::XLOG_BLCKSZ;
use crate::lsn::{Lsn, SystemId, TimelineId};
use crate::wal::buffer::ChunkBuf;
pub use crate::wal::end::{EndOfWal, EndReason};
use crate::wal::error::{FileCtx, WalError};
use crate::wal::frame::valid_page_after;
pub use crate::wal::frame::{check_frame_crc, parse_frame_in, Frame, FramePoll};
use crate::wal::page::{valid_seg_size, PageHeader, PgVersion, XLP_ALL_FLAGS, XLP_LONG_HEADER};
use crate::wal::parse::{
    parse_in_chunk_into, parse_pieces_into, parse_record_bytes, InChunk, RecordBytes,
};
use crate::wal::record::{record_crc_pieces, DecodedRecord, RecordHeader, RECORD_HEADER_LEN};

const BLCKSZ: u64 = XLOG_BLCKSZ as u64;
/// Largest record PostgreSQL writes (XLogRecordMaxSize is 1020 MB; anything past 1 GB is garbage).
const MAX_RECORD_LEN: u32 = 0x3FFF_FFFF;
/// WAL positions at or past 2^62 are refused (PostgreSQL would need centuries to reach them),
/// so LSN arithmetic below cannot overflow.
const MAX_LSN: u64 = 1 << 62;

/// What [`WalDecoder::poll`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // a record per poll: boxing it costs an allocation each
pub enum Poll {
    /// A decoded record.
    Record(DecodedRecord),
    /// More bytes are needed (feed them, or call [`WalDecoder::finish`]).
    NeedMore,
    /// Decoding is over; further polls return the same.
    End(EndOfWal),
}

/// What [`WalDecoder::poll_into`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    /// The next record was decoded into the caller's slot.
    Record,
    /// More bytes are needed (feed them, or call [`WalDecoder::finish`]).
    NeedMore,
    /// Decoding is over; further polls return the same.
    End(EndOfWal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for the first record at or after `start`.
    FindFirst,
    /// Skipping records that begin before `start` (start was mid-page).
    Skipping,
    /// Returning records.
    Records,
}

enum Step<T> {
    Ok(T),
    NeedMore,
    End(u64, EndReason),
}

/// A sans-IO WAL decoder.
#[derive(Debug)]
pub struct WalDecoder {
    start: Lsn,
    end: Option<Lsn>,
    buf: ChunkBuf,
    /// Whether any byte has been fed (the first feed may begin before `start`'s page).
    fed_any: bool,
    next: u64,
    state: State,
    prev: Option<u64>,
    seg_size: Option<u64>,
    version: Option<PgVersion>,
    sysid: Option<SystemId>,
    latest_tli: Option<TimelineId>,
    finished: bool,
    ended: Option<EndOfWal>,
    files: Vec<(u64, String)>,
    /// The last page whose header was validated, and that header.
    last_page: Option<(u64, PageHeader)>,
    /// Whether [`Self::poll_frame`] leaves the CRC check to the caller.
    defer_crc: bool,
    /// Whether [`Self::poll_into`] keeps block data and images.
    block_payloads: bool,
}

impl WalDecoder {
    /// A decoder that returns records from `start` on; the first feed must begin at `start`'s page.
    pub fn new(start: Lsn) -> WalDecoder {
        let page = start.0 - start.0 % BLCKSZ;
        WalDecoder {
            start,
            end: None,
            buf: ChunkBuf::new(page),
            fed_any: false,
            next: start.0,
            state: State::FindFirst,
            prev: None,
            seg_size: None,
            version: None,
            sysid: None,
            latest_tli: None,
            finished: false,
            ended: None,
            files: Vec::new(),
            last_page: None,
            defer_crc: false,
            block_payloads: true,
        }
    }

    /// Leaves the CRC-32C check of each frame to the caller ([`check_frame_crc`]), so that it
    /// can run on another thread. Frames past a record whose CRC fails are garbage: the caller
    /// stops there. [`Self::poll`] still checks every record.
    pub fn defer_crc(mut self) -> WalDecoder {
        self.defer_crc = true;
        self
    }

    /// Leaves the block data and full-page images of the records [`Self::poll_into`] decodes
    /// empty (`data_len` and `image_len` still give their sizes; everything else is decoded
    /// and checked as before), for readers that do not look at them: slicing them out costs
    /// a shared reference each. [`Self::poll`] and [`Self::parse_frame`] keep everything.
    pub fn without_block_payloads(mut self) -> WalDecoder {
        self.block_payloads = false;
        self
    }

    /// Whether [`Self::poll_into`] keeps block data and images (see
    /// [`Self::without_block_payloads`]).
    pub fn set_block_payloads(&mut self, keep: bool) {
        self.block_payloads = keep;
    }

    /// Continues a decoding that another reader did up to `start` (a record boundary or a
    /// page start): the previous record's LSN and what the pages read so far said, so that
    /// the checks are those of one decoder reading from the beginning.
    pub(crate) fn resuming(
        mut self,
        prev: Option<Lsn>,
        version: Option<PgVersion>,
        sysid: Option<SystemId>,
        latest_tli: Option<TimelineId>,
    ) -> WalDecoder {
        self.prev = prev.map(|p| p.0);
        self.version = version;
        self.sysid = sysid;
        self.latest_tli = latest_tli;
        self
    }

    /// Declares the segment size up front (needed when `start` is not on a segment's first page).
    pub fn with_segment_size(mut self, seg_size: u64) -> WalDecoder {
        if valid_seg_size(seg_size) {
            self.seg_size = Some(seg_size);
        }
        self
    }

    /// Stops before any record that would end after `end` (like `pg_waldump -e`).
    pub fn with_end(mut self, end: Lsn) -> WalDecoder {
        self.end = Some(end);
        self
    }

    /// The segment size, once known (declared or read from a long page header).
    pub fn segment_size(&self) -> Option<u64> {
        self.seg_size
    }

    /// The PostgreSQL version, once the first page header has been read.
    pub fn version(&self) -> Option<PgVersion> {
        self.version
    }

    /// The system identifier, once a long page header has been read.
    pub fn system_id(&self) -> Option<SystemId> {
        self.sysid
    }

    /// The LSN up to which bytes have been fed.
    pub fn fed_up_to(&self) -> Lsn {
        Lsn(self.buf.end())
    }

    /// The LSN where the next record is expected.
    pub fn next_lsn(&self) -> Lsn {
        Lsn(self.next)
    }

    /// Where decoding ended, once it has.
    pub fn end_of_wal(&self) -> Option<&EndOfWal> {
        self.ended.as_ref()
    }

    /// Names the file that the bytes from `at` on come from, for error messages.
    pub fn set_source_name(&mut self, at: Lsn, name: &str) {
        self.files.push((at.0, name.to_string()));
    }

    /// The file holding `lsn`, when known.
    fn file_at(&self, lsn: u64) -> FileCtx {
        FileCtx(
            self.files
                .iter()
                .rev()
                .find(|(s, _)| *s <= lsn)
                .map(|(_, n)| n.clone()),
        )
    }

    /// Feeds `bytes` that start at `at`; feeds must be contiguous, the first at `start`'s page.
    ///
    /// Bytes before the first needed page are ignored, so a source may feed whole segments.
    pub fn feed_bytes(&mut self, at: Lsn, bytes: &[u8]) -> Result<(), WalError> {
        self.feed_shared(at, Bytes::copy_from_slice(bytes))
    }

    /// Like [`Self::feed_bytes`] but keeps `bytes` without copying them: records that lie on
    /// one page are handed out as slices of it.
    pub fn feed_shared(&mut self, at: Lsn, mut bytes: Bytes) -> Result<(), WalError> {
        let expected = self.buf.end();
        let mut at = at.0;
        if !self.fed_any && at < expected {
            let skip = expected - at;
            if skip >= bytes.len() as u64 {
                return Ok(());
            }
            bytes.advance(skip as usize);
            at = expected;
        }
        if at != expected {
            return Err(WalError::NotContiguous {
                lsn: Lsn(at),
                expected: Lsn(expected),
            });
        }
        bytes.truncate(MAX_LSN.saturating_sub(at).min(bytes.len() as u64) as usize);
        self.fed_any = true;
        self.buf.push(bytes);
        Ok(())
    }

    /// An empty buffer with room for `cap` bytes, to fill with the bytes at
    /// [`Self::fed_up_to`] and pass to [`Self::feed_vec`]; reuses a consumed feed's memory.
    pub fn take_buffer(&mut self, cap: usize) -> Vec<u8> {
        self.buf.take_vec(cap)
    }

    /// A consumed feed's memory, when one is free (for a reading thread to refill).
    pub fn reclaim_buffer(&mut self) -> Option<Vec<u8>> {
        self.buf.reclaim()
    }

    /// Feeds `bytes` starting at `at` without copying them (see [`Self::feed_shared`]).
    pub fn feed_vec(&mut self, at: Lsn, bytes: Vec<u8>) -> Result<(), WalError> {
        self.feed_shared(at, Bytes::from(bytes))
    }

    /// Declares that no more bytes will come: polls then end instead of asking for more.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// The next record, `None` when more bytes are needed or decoding ended (see [`Self::end_of_wal`]).
    pub fn poll_decode(&mut self) -> Result<Option<DecodedRecord>, WalError> {
        match self.poll()? {
            Poll::Record(r) => Ok(Some(r)),
            Poll::NeedMore | Poll::End(_) => Ok(None),
        }
    }

    /// Decodes the next record, or says that more bytes are needed, or that WAL ended.
    pub fn poll(&mut self) -> Result<Poll, WalError> {
        Ok(match self.poll_frame()? {
            FramePoll::Frame(f) if !f.crc_checked => {
                if let Err(e) = self.check_crc(&f) {
                    self.ended = Some(e.clone());
                    return Ok(Poll::End(e));
                }
                Poll::Record(self.parse_frame(&f)?)
            }
            FramePoll::Frame(f) => Poll::Record(self.parse_frame(&f)?),
            FramePoll::NeedMore => Poll::NeedMore,
            FramePoll::End(e) => Poll::End(e),
        })
    }

    /// Like [`Self::poll`], decoding into `out` (a slot reused from record to record: its
    /// block list is kept, and nothing is moved or allocated per record).
    pub fn poll_into(&mut self, out: &mut DecodedRecord) -> Result<Polled, WalError> {
        Ok(match self.poll_frame()? {
            FramePoll::Frame(f) => {
                if !f.crc_checked {
                    if let Err(e) = self.check_crc(&f) {
                        self.ended = Some(e.clone());
                        return Ok(Polled::End(e));
                    }
                }
                self.parse_frame_into(&f, out)?;
                Polled::Record
            }
            FramePoll::NeedMore => Polled::NeedMore,
            FramePoll::End(e) => Polled::End(e),
        })
    }

    /// Like [`Self::parse_frame`], into `out`. A record on one page is parsed in place in its
    /// chunk: its block data and main data are slices of the chunk.
    pub fn parse_frame_into(&self, frame: &Frame, out: &mut DecodedRecord) -> Result<(), WalError> {
        let parsed = match frame.pieces.as_slice() {
            [(p, n)] => match self.buf.chunk_containing(*p) {
                Some((s, chunk)) if p + u64::from(*n) <= s + chunk.len() as u64 => {
                    let rec = InChunk {
                        chunk,
                        off: (p - s) as usize,
                        len: *n as usize,
                        block_payloads: self.block_payloads,
                    };
                    parse_in_chunk_into(
                        &rec,
                        frame.lsn,
                        frame.end_lsn,
                        frame.version,
                        &FileCtx(None),
                        out,
                    )
                }
                _ => parse_pieces_into(
                    &RecordBytes::One(Bytes::new()),
                    self.block_payloads,
                    frame.lsn,
                    frame.end_lsn,
                    frame.version,
                    &FileCtx(None),
                    out,
                ),
            },
            many => {
                let piece =
                    |&(p, n): &(u64, u32)| self.buf.slice_shared(p, n as usize).unwrap_or_default();
                parse_pieces_into(
                    &RecordBytes::Pieces(many.iter().map(piece).collect()),
                    self.block_payloads,
                    frame.lsn,
                    frame.end_lsn,
                    frame.version,
                    &FileCtx(None),
                    out,
                )
            }
        };
        parsed.map_err(|e| match self.file_at(frame.lsn.0).0 {
            Some(name) => e.with_file(&name),
            None => e,
        })
    }

    /// Checks the CRC-32C of a frame that [`Self::poll_frame`] just returned (its bytes are
    /// still held); on a mismatch, says where WAL ends. Decoding does not stop by itself:
    /// what it finds past a bad record is garbage, so the caller stops there.
    pub fn check_crc(&self, f: &Frame) -> Result<(), EndOfWal> {
        let (computed, head) = record_crc_pieces(
            f.pieces
                .iter()
                .map(|&(p, n)| self.slice(p, n as usize).unwrap_or_default()),
        );
        let stored = RecordHeader::parse(&head).map_or(0, |h| h.crc);
        if stored == computed {
            return Ok(());
        }
        let reason = EndReason::BadCrc { stored, computed };
        Err(EndOfWal {
            lsn: f.lsn,
            file: self.file_at(f.lsn.0).0,
            data_follows: self.nonzero_after(f.lsn.0),
            reason,
        })
    }

    /// Parses a frame that [`Self::poll_frame`] just returned (its bytes are still held).
    pub fn parse_frame(&self, frame: &Frame) -> Result<DecodedRecord, WalError> {
        let piece = |&(p, n): &(u64, u32)| self.buf.slice_shared(p, n as usize).unwrap_or_default();
        let rec = match frame.pieces.as_slice() {
            [one] => RecordBytes::One(piece(one)),
            many => RecordBytes::Pieces(many.iter().map(piece).collect()),
        };
        // The file name is looked up only for an error (a clone per record is measurable).
        parse_record_bytes(
            &rec,
            frame.lsn,
            frame.end_lsn,
            frame.version,
            &FileCtx(None),
        )
        .map_err(|e| match self.file_at(frame.lsn.0).0 {
            Some(name) => e.with_file(&name),
            None => e,
        })
    }

    /// Appends to `out` the fed chunks that hold `frame`'s bytes and are not in it yet, so
    /// that [`parse_frame_in`] can parse the frame elsewhere (frames must come in order).
    pub fn share_chunks(&self, frame: &Frame, out: &mut Vec<(u64, Bytes)>) {
        for &(p, n) in &frame.pieces {
            if out
                .last()
                .is_some_and(|(s, b)| p >= *s && p + u64::from(n) <= s + b.len() as u64)
            {
                continue;
            }
            if let Some(c) = self.buf.chunk_containing(p) {
                out.push(c.clone());
            }
        }
    }

    /// Finds and checks the next record without parsing it (see [`Frame`]).
    pub fn poll_frame(&mut self) -> Result<FramePoll, WalError> {
        if self.start.0 >= MAX_LSN {
            return Err(WalError::InvalidStart {
                what: "beyond the range of WAL positions this decoder reads".into(),
                lsn: self.start,
                file: FileCtx(None),
            });
        }
        loop {
            if let Some(e) = &self.ended {
                return Ok(FramePoll::End(e.clone()));
            }
            let res: Step<()> = match self.state {
                State::FindFirst => match self.find_first()? {
                    Step::Ok(()) => continue,
                    other => strip(other),
                },
                State::Skipping | State::Records => match self.read_record()? {
                    Step::Ok(rec) => {
                        if self.state == State::Skipping {
                            if rec.lsn < self.start {
                                continue;
                            }
                            self.state = State::Records;
                            if rec.lsn != self.start && !self.start_is_page_boundary() {
                                let file = self.file_at(self.start.0);
                                return Err(WalError::InvalidStart {
                                    what: format!(
                                        "not a record boundary (records start at {} and {})",
                                        rec.prev, rec.lsn
                                    ),
                                    lsn: self.start,
                                    file,
                                });
                            }
                        }
                        return Ok(FramePoll::Frame(rec));
                    }
                    other => strip(other),
                },
            };
            match res {
                Step::Ok(()) => continue,
                Step::NeedMore => {
                    self.compact();
                    if self.finished {
                        let partial = self.has_partial_record();
                        self.end_at(
                            self.next,
                            EndReason::EndOfInput {
                                partial_record: partial,
                            },
                        );
                        continue;
                    }
                    return Ok(FramePoll::NeedMore);
                }
                Step::End(lsn, reason) => {
                    self.end_at(lsn, reason);
                }
            }
        }
    }

    fn start_is_page_boundary(&self) -> bool {
        let off = self.start.0 % BLCKSZ;
        off == 0 || off == 24 || off == 40
    }

    /// Whether non-zero bytes of a next record were fed but not all of it.
    fn has_partial_record(&self) -> bool {
        let mut pos = self.next;
        if pos % BLCKSZ == 0 {
            match self.slice(pos, 24).and_then(PageHeader::parse) {
                Some(h) => pos += h.header_len() as u64,
                None => return false,
            }
        }
        let n = self.buf.end().saturating_sub(pos).min(4) as usize;
        self.slice(pos, n)
            .is_some_and(|s| s.iter().any(|&b| b != 0))
    }

    fn end_at(&mut self, lsn: u64, reason: EndReason) {
        let data_follows = !reason.is_clean() && self.nonzero_after(lsn);
        // Name the file where the input ran out, else the one holding the failing LSN.
        let file_lsn = match reason {
            EndReason::EndOfInput { .. } => (if self.fed_any {
                self.buf.end().saturating_sub(1)
            } else {
                lsn
            })
            .max(lsn),
            _ => lsn,
        };
        self.ended = Some(EndOfWal {
            lsn: Lsn(lsn),
            file: self.file_at(file_lsn).0,
            reason,
            data_follows,
        });
    }

    fn nonzero_after(&self, lsn: u64) -> bool {
        let Some(version) = self.version else {
            return false;
        };
        valid_page_after(lsn, self.buf.end(), version, |page| self.slice(page, 24))
    }

    /// `len` fed bytes at `lsn`; callers stay within one page, which the buffer never splits.
    fn slice(&self, lsn: u64, len: usize) -> Option<&[u8]> {
        self.buf.slice(lsn, len)
    }

    fn compact(&mut self) {
        // Called when more bytes are needed: drop the chunks before the page of the next
        // record, so the buffer holds at most the current feed plus one record.
        let keep = (self.next - self.next % BLCKSZ).min(self.buf.end());
        self.buf.drop_before(keep);
        let bs = self.buf.start();
        // Keep the file entry covering the buffer's start and later ones.
        if let Some(i) = self.files.iter().rposition(|(s, _)| *s <= bs) {
            self.files.drain(..i);
        }
    }
}

fn strip<T>(s: Step<T>) -> Step<()> {
    match s {
        Step::Ok(_) => Step::Ok(()),
        Step::NeedMore => Step::NeedMore,
        Step::End(l, r) => Step::End(l, r),
    }
}
