//! The fast path of reading a directory of plain segments: pages checked and records parsed in
//! place in large reads; at anything unusual it hands over to the reference decoder.
//!
//! [`FastPath`] accepts a record only when every check that [`crate::wal::WalDecoder`] makes
//! passes (page header, record header, `xl_prev`, continuation pages, CRC-32C, the requested
//! end) and the record parses. Otherwise it stops *before* that record and returns a
//! [`Handover`]: where the reference decoder resumes, with what this path learnt. The
//! reference decoder then reads the same bytes again and says what they are (the end of WAL and
//! why, or an error with the file's name). So the records, the end of WAL and the errors are the
//! reference decoder's by construction; this path only makes the common case cheap: reads of
//! [`FAST_CHUNK`] bytes straight into a reused buffer, one pass over each record that finds,
//! checks and parses it, and no per-record bookkeeping of where the bytes lie. A fast path can
//! also decode one range of the files for `wal::parallel` ([`FastPath::stop_at`]) and resume
//! where another stopped ([`FastPath::resuming`]).

use std::fs::File;
use std::os::unix::fs::FileExt;

use bytes::Bytes;

use crate::lsn::{Lsn, SystemId, TimelineId, XLOG_BLCKSZ};
use crate::wal::dir::WalDir;
use crate::wal::error::FileCtx;
use crate::wal::page::{PgVersion, XLP_ALL_FLAGS, XLP_LONG_HEADER};
use crate::wal::parse::{
    parse_in_chunk_into, parse_into, parse_pieces_into, Borrowed, InChunk, RecordBytes,
};
use crate::wal::record::{DecodedRecord, RECORD_HEADER_LEN};

const BLCKSZ: u64 = XLOG_BLCKSZ as u64;
/// Bytes read at a time (a whole number of pages), into a pool of reused buffers. The
/// kernel's copy is fastest into buffers of this size: 1.2 GB of segments read by two threads
/// cost about 0.3 s of system time at 32 KB a read into 64 rotating buffers, 0.7 s at 128 KB
/// into 8 (the same on the page cache as mapping the files, without the mapping's risks).
pub(crate) const FAST_CHUNK: usize = 32 << 10;
/// Chunk buffers kept for reuse: more than the records waiting in the parallel path's batches
/// hold slices of (about 600 KB of record-dense WAL per worker).
const POOL: usize = 64;
/// The largest record length the reference decoder accepts.
const MAX_RECORD_LEN: u32 = 0x3FFF_FFFF;
/// XLP_FIRST_IS_CONTRECORD.
const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;

/// Where the reference decoder takes over, and what this path learnt before.
#[derive(Debug, Clone)]
pub(crate) struct Handover {
    /// The first record the reference decoder must read (the original start when no record
    /// was returned yet).
    pub start: Lsn,
    /// The LSN of the last record returned, if any.
    pub prev: Option<Lsn>,
    /// The version from the pages read.
    pub version: Option<PgVersion>,
    /// The system identifier from the long page headers read.
    pub sysid: Option<SystemId>,
    /// The latest page timeline read.
    pub latest_tli: Option<TimelineId>,
    /// The last file read (where it starts, its name): the reference decoder names it when
    /// the input runs out right after it.
    pub last_file: Option<(Lsn, String)>,
}

/// What [`FastPath::next_into`] did.
pub(crate) enum Step {
    /// A record was decoded into the slot.
    Record,
    /// The next record starts at or after the stop set by [`FastPath::stop_at`].
    RangeEnd,
    /// Stop: hand over to the reference decoder.
    Handover(Handover),
}

/// The page whose header was checked last.
#[derive(Clone, Copy)]
struct CheckedPage {
    lsn: u64,
    hlen: u64,
    info: u16,
    rem_len: u32,
}

/// Where a fast path stands after a record: enough to resume exactly there
/// ([`FastPath::resuming`]), as if it had read everything before itself.
#[derive(Debug, Clone)]
pub(crate) struct ResumeState {
    /// Where the next record is looked for.
    pub next: u64,
    /// The record just returned.
    pub prev: u64,
    /// The version from the pages read.
    pub version: Option<PgVersion>,
    /// The system identifier from the long page headers read.
    pub sysid: Option<SystemId>,
    /// The latest page timeline read.
    pub latest_tli: Option<TimelineId>,
    /// The last file read (where it starts, its name).
    pub file_name: Option<(Lsn, String)>,
}

/// Reads plain, full-size segment files of a [`WalDir`] in large chunks and decodes them.
pub(crate) struct FastPath {
    dir: WalDir,
    seg_size: u64,
    start: u64,
    end: Option<u64>,
    block_payloads: bool,
    chunk: Bytes,
    chunk_at: u64,
    file: Option<(u64, File)>,
    /// The name of the file being read, and where it starts.
    file_name: Option<(Lsn, String)>,
    next: u64,
    prev: Option<u64>,
    /// Whether `next` is positioned on a record (past the first page's continuation).
    positioned: bool,
    /// Whether a record at or after `start` was returned.
    started: bool,
    page: Option<CheckedPage>,
    version: Option<PgVersion>,
    sysid: Option<SystemId>,
    latest_tli: Option<TimelineId>,
    scratch: Vec<u8>,
    /// Records starting at or after this are not returned ([`Step::RangeEnd`]).
    stop_at: Option<u64>,
    range_end: bool,
    /// The timeline of the first page checked.
    first_tli: Option<TimelineId>,
    /// The version and system identifier every page must have (stricter than the reference
    /// decoder, which learns them from the pages: used where they are known in advance).
    expect: (Option<PgVersion>, Option<SystemId>),
    /// Chunk buffers to reuse.
    pool: Vec<Bytes>,
}

impl FastPath {
    /// A fast path over `dir` from `start` (a record boundary, or a page or segment start) to
    /// `end`.
    pub(crate) fn new(
        dir: &WalDir,
        start: Lsn,
        end: Option<Lsn>,
        block_payloads: bool,
    ) -> FastPath {
        FastPath {
            dir: dir.clone(),
            seg_size: dir.segment_size(),
            start: start.0,
            end: end.map(|e| e.0),
            block_payloads,
            chunk: Bytes::new(),
            chunk_at: 0,
            file: None,
            file_name: None,
            next: start.0 - start.0 % BLCKSZ,
            prev: None,
            positioned: false,
            started: false,
            page: None,
            version: None,
            sysid: None,
            latest_tli: None,
            scratch: Vec::new(),
            stop_at: None,
            range_end: false,
            first_tli: None,
            expect: (None, None),
            pool: Vec::new(),
        }
    }

    /// A fast path that resumes at `st`, as if it had read everything up to there.
    pub(crate) fn resuming(
        dir: &WalDir,
        st: &ResumeState,
        end: Option<Lsn>,
        block_payloads: bool,
    ) -> FastPath {
        let mut f = FastPath::new(dir, Lsn(st.next), end, block_payloads);
        f.next = st.next;
        f.prev = Some(st.prev);
        f.positioned = true;
        f.started = true;
        f.version = st.version;
        f.sysid = st.sysid;
        f.latest_tli = st.latest_tli;
        f.file_name = st.file_name.clone();
        f
    }

    /// Stops ([`Step::RangeEnd`]) before the first record that starts at or after `stop`.
    pub(crate) fn stop_at(mut self, stop: Option<u64>) -> FastPath {
        self.stop_at = stop;
        self
    }

    /// Requires every page to have this version and every long header this system id.
    pub(crate) fn expecting(mut self, version: PgVersion, sysid: SystemId) -> FastPath {
        self.expect = (Some(version), Some(sysid));
        self
    }

    /// Hands over the chunk buffers (to the next fast path of the same thread).
    pub(crate) fn take_pool(&mut self) -> Vec<Bytes> {
        let mut pool = std::mem::take(&mut self.pool);
        pool.push(std::mem::take(&mut self.chunk));
        pool
    }

    /// Takes chunk buffers to reuse.
    pub(crate) fn with_pool(mut self, pool: Vec<Bytes>) -> FastPath {
        self.pool = pool;
        self
    }

    /// Where it stands after the last record returned (`None` before the first).
    pub(crate) fn state(&self) -> Option<ResumeState> {
        Some(ResumeState {
            next: self.next,
            prev: self.prev.filter(|_| self.started)?,
            version: self.version,
            sysid: self.sysid,
            latest_tli: self.latest_tli,
            file_name: self.file_name.clone(),
        })
    }

    /// The timeline of the first page checked.
    pub(crate) fn first_tli(&self) -> Option<TimelineId> {
        self.first_tli
    }

    /// Whether block data and images are kept.
    pub(crate) fn set_block_payloads(&mut self, keep: bool) {
        self.block_payloads = keep;
    }

    /// Whether block data and images are kept.
    pub(crate) fn block_payloads(&self) -> bool {
        self.block_payloads
    }

    /// The version read so far.
    pub(crate) fn version(&self) -> Option<PgVersion> {
        self.version
    }

    /// The system identifier read so far.
    pub(crate) fn system_id(&self) -> Option<SystemId> {
        self.sysid
    }

    fn handover(&self) -> Step {
        let (start, prev) = if self.started {
            (self.next, self.prev)
        } else {
            (self.start, None)
        };
        // The reference decoder reads the records on `start`'s page before it again (and
        // links them by `xl_prev` itself); it needs the previous record only when that one
        // began on an earlier page.
        let prev = prev.filter(|p| *p < start - start % BLCKSZ);
        Step::Handover(Handover {
            start: Lsn(start),
            prev: prev.map(Lsn),
            version: self.version,
            sysid: self.sysid,
            latest_tli: self.latest_tli,
            last_file: self.file_name.clone(),
        })
    }

    /// Offset of `page` in the current chunk, reading the next chunk when needed.
    fn page_off(&mut self, page: u64) -> Option<usize> {
        if !(page >= self.chunk_at && page + BLCKSZ <= self.chunk_at + self.chunk.len() as u64) {
            self.read_chunk(page)?;
        }
        Some((page - self.chunk_at) as usize)
    }

    /// Reads the chunk starting at `page` (a plain, full-size segment file only).
    fn read_chunk(&mut self, page: u64) -> Option<()> {
        let seg = self.seg_size;
        let segno = page / seg;
        if self.file.as_ref().is_none_or(|(n, _)| *n != segno) {
            self.file = None;
            let (path, name) = self.dir.find_segment(segno)?;
            if name.contains('.') {
                return None; // `.partial` or compressed: the reference reader's business
            }
            let f = File::open(path).ok()?;
            if f.metadata().ok()?.len() != seg {
                return None;
            }
            self.file = Some((segno, f));
            self.file_name = Some((Lsn(segno * seg), name));
        }
        let (_, f) = self.file.as_mut()?;
        let off = page % seg;
        let len = (seg - off).min(FAST_CHUNK as u64) as usize;
        // A chunk is free again once no record lent out holds a slice of it: reuse its memory.
        let old = std::mem::take(&mut self.chunk);
        if !old.is_empty() {
            self.pool.push(old);
        }
        // The latest free one: its memory is the likeliest to be in the CPU's cache still.
        let free = self
            .pool
            .iter()
            .rposition(|b| b.is_unique() && b.len() >= len);
        let buf = free.and_then(|i| self.pool.remove(i).try_into_mut().ok());
        if self.pool.len() > POOL {
            self.pool.remove(0);
        }
        let mut buf = match buf {
            Some(m) => {
                let mut v: Vec<u8> = m.into();
                v.truncate(len);
                v
            }
            None => vec![0u8; len],
        };
        // One positioned read (a seek and a read were two system calls per chunk).
        f.read_exact_at(&mut buf, off).ok()?;
        self.chunk = Bytes::from(buf);
        self.chunk_at = page;
        Some(())
    }

    /// Checks the header of the page at `page` as the reference decoder does; `None` when it
    /// would not accept it (or the page cannot be read here).
    #[inline] // once per record: nearly always the page checked last
    fn check_page(&mut self, page: u64) -> Option<CheckedPage> {
        match self.page {
            Some(p) if p.lsn == page => Some(p),
            _ => self.check_new_page(page),
        }
    }

    /// [`Self::check_page`] for a page other than the one checked last.
    #[inline(never)]
    fn check_new_page(&mut self, page: u64) -> Option<CheckedPage> {
        let off = self.page_off(page)?;
        let b = &self.chunk[off..off + XLOG_BLCKSZ];
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| u64::from(u32_at(i)) | (u64::from(u32_at(i + 4)) << 32);
        let version = PgVersion::from_magic(u16_at(0))?;
        if self.version.or(self.expect.0).is_some_and(|v| v != version) {
            return None;
        }
        let info = u16_at(2);
        if info & !XLP_ALL_FLAGS != 0 {
            return None;
        }
        let tli = TimelineId(u32_at(4));
        let long = info & XLP_LONG_HEADER != 0;
        let mut sysid = self.sysid;
        if page % self.seg_size == 0 {
            if !long || u64::from(u32_at(32)) != self.seg_size || u32_at(36) as usize != XLOG_BLCKSZ
            {
                return None;
            }
            let s = SystemId(u64_at(24));
            if sysid.or(self.expect.1).is_some_and(|k| k != s) {
                return None;
            }
            sysid = Some(s);
        } else if long {
            return None;
        }
        if u64_at(8) != page || self.latest_tli.is_some_and(|t| tli < t) {
            return None;
        }
        self.version = Some(version);
        self.sysid = sysid;
        self.latest_tli = Some(tli);
        self.first_tli.get_or_insert(tli);
        let p = CheckedPage {
            lsn: page,
            hlen: if long { 40 } else { 24 },
            info,
            rem_len: u32_at(16),
        };
        self.page = Some(p);
        Some(p)
    }

    /// Positions `next` on the first record of `start`'s page (past a continued record).
    fn position(&mut self) -> Option<()> {
        loop {
            let page = self.next - self.next % BLCKSZ;
            let p = self.check_page(page)?;
            let off = self.start % BLCKSZ;
            if page == self.start - off && off != 0 && off < p.hlen {
                return None; // inside a page header: the reference decoder says so
            }
            if p.info & XLP_FIRST_IS_CONTRECORD != 0 {
                let rem = (u64::from(p.rem_len) + 7) & !7;
                if rem >= BLCKSZ - p.hlen {
                    self.next = page + BLCKSZ;
                    continue;
                }
                self.next = page + p.hlen + rem;
            } else {
                self.next = page + p.hlen;
            }
            self.positioned = true;
            return Some(());
        }
    }

    /// Decodes the next record into `out`, or says where the reference decoder takes over.
    #[inline(always)] // once per record, into the worker's loop: a call's cost per record
    pub(crate) fn next_into(&mut self, out: &mut DecodedRecord) -> Step {
        if !self.positioned && self.position().is_none() {
            return self.handover();
        }
        loop {
            match self.one(out) {
                None if self.range_end => return Step::RangeEnd,
                None => return self.handover(),
                Some(lsn) => {
                    if self.started {
                        return Step::Record;
                    }
                    if lsn < self.start {
                        continue; // before the start: checked, not returned
                    }
                    let off = self.start % BLCKSZ;
                    if lsn != self.start && !(off == 0 || off == 24 || off == 40) {
                        // Not a record boundary: the reference decoder makes it an error.
                        return self.handover();
                    }
                    self.started = true;
                    return Step::Record;
                }
            }
        }
    }

    /// Finds, checks and parses the record at `next` into `out`; advances past it. `None`
    /// (nothing advanced) when the reference decoder must look at it.
    #[inline(always)] // once per record
    fn one(&mut self, out: &mut DecodedRecord) -> Option<u64> {
        // The slot's slices of the chunk go now, so that its memory can be reused (without
        // block payloads only long main data holds one).
        out.main_data.clear();
        if self.block_payloads {
            out.blocks.clear();
        }
        let mut lsn = self.next;
        let page = lsn - lsn % BLCKSZ;
        // Only the header's length: the page checked last is read in place, not copied out.
        let hlen = match &self.page {
            Some(p) if p.lsn == page => p.hlen,
            _ => self.check_new_page(page)?.hlen,
        };
        if lsn == page {
            lsn += hlen;
        } else if lsn - page < hlen {
            return None;
        }
        if self.stop_at.is_some_and(|s| lsn >= s) {
            self.range_end = true;
            return None;
        }
        if self.end.is_some_and(|e| lsn >= e) {
            return None;
        }
        let off = (lsn - page) as usize;
        let base = (page - self.chunk_at) as usize;
        let pg = &self.chunk[base..base + XLOG_BLCKSZ];
        let tot = u32::from_le_bytes(pg[off..off + 4].try_into().ok()?);
        if (tot as usize) < RECORD_HEADER_LEN || tot > MAX_RECORD_LEN {
            return None;
        }
        let version = self.version?;
        let (end_lsn, in_page) = if off + tot as usize <= XLOG_BLCKSZ {
            let rec = &pg[off..off + tot as usize];
            if !self.header_ok(rec, lsn, version) || !crc_ok(rec) {
                return None;
            }
            (lsn + u64::from(tot), true)
        } else {
            let end_lsn = self.gather(page, off, tot)?;
            if !self.header_ok(&self.scratch, lsn, version) || !crc_ok(&self.scratch) {
                return None;
            }
            (end_lsn, false)
        };
        if self.end.is_some_and(|e| end_lsn > e) {
            return None;
        }
        let parsed = if in_page {
            let rec = InChunk {
                chunk: &self.chunk,
                off: base + off,
                len: tot as usize,
                block_payloads: self.block_payloads,
            };
            parse_in_chunk_into(&rec, Lsn(lsn), Lsn(end_lsn), version, &FileCtx(None), out)
        } else if !self.block_payloads {
            // Gathered already: parsed where it lies (only long main data is copied out).
            parse_into(
                &Borrowed(&self.scratch),
                &self.scratch,
                false,
                Lsn(lsn),
                Lsn(end_lsn),
                version,
                &FileCtx(None),
                out,
            )
        } else {
            let rec = RecordBytes::One(Bytes::copy_from_slice(&self.scratch));
            parse_pieces_into(
                &rec,
                self.block_payloads,
                Lsn(lsn),
                Lsn(end_lsn),
                version,
                &FileCtx(None),
                out,
            )
        };
        if parsed.is_err() {
            return None; // the reference decoder reports it, with the file's name
        }
        let (info, rmid) = (out.info, out.rmid);
        let mut next = (end_lsn + 7) & !7;
        if rmid == 0 && info & 0xF0 == 0x40 {
            next = end_lsn
                .div_ceil(self.seg_size)
                .saturating_mul(self.seg_size);
        }
        self.prev = Some(lsn);
        self.next = next;
        Some(lsn)
    }

    /// Gathers a record that starts at `off` in `page` and continues on later pages into
    /// `scratch`; the LSN where it ends. `None` when a continuation page is not as the
    /// reference decoder requires (or cannot be read here).
    fn gather(&mut self, page: u64, off: usize, tot: u32) -> Option<u64> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let base = (page - self.chunk_at) as usize;
        scratch.extend_from_slice(&self.chunk[base + off..base + XLOG_BLCKSZ]);
        let mut remaining = u64::from(tot) - (XLOG_BLCKSZ - off) as u64;
        let mut next_page = page + BLCKSZ;
        let end = loop {
            let Some(p) = self.check_page(next_page) else {
                self.scratch = scratch;
                return None;
            };
            if p.info & XLP_FIRST_IS_CONTRECORD == 0 || u64::from(p.rem_len) != remaining {
                self.scratch = scratch;
                return None;
            }
            let take = remaining.min(BLCKSZ - p.hlen) as usize;
            let b = (next_page - self.chunk_at) as usize + p.hlen as usize;
            scratch.extend_from_slice(&self.chunk[b..b + take]);
            remaining -= take as u64;
            if remaining == 0 {
                break next_page + p.hlen + take as u64;
            }
            next_page += BLCKSZ;
        };
        self.scratch = scratch;
        Some(end)
    }

    /// The reference decoder's record header checks (resource manager, `xl_prev`).
    fn header_ok(&self, rec: &[u8], lsn: u64, version: PgVersion) -> bool {
        let rmid = rec[17];
        if rmid > 21 && !(version.0 >= 15 && rmid >= 128) {
            return false;
        }
        let prev = u64::from_le_bytes(rec[8..16].try_into().unwrap_or_default());
        match self.prev {
            Some(p) => prev == p,
            None => prev < lsn,
        }
    }
}

/// Whether the record's stored CRC-32C matches its bytes (`[24, len)` then `[0, 20)`).
#[inline]
fn crc_ok(rec: &[u8]) -> bool {
    crate::wal::crc::record_crc_ok(rec)
}

#[cfg(test)]
pub(crate) mod tests;
