//! The fast path of reading a directory of plain segments: pages checked and records parsed in
//! place in large reads; at anything unusual it hands over to the reference decoder.
//!
//! [`FastPath`] accepts a record only when every check that [`crate::wal::WalDecoder`] makes
//! passes (page header, record header, `xl_prev`, continuation pages, CRC-32C, the requested
//! end) and the record parses. Otherwise it stops *before* that record and returns a
//! [`Handover`]: where the reference decoder resumes, with what this path learnt. The
//! reference decoder then reads the same bytes again and says what they are (the end of WAL and
//! why, or an error with the file's name). So the records, the end of WAL and the errors are the
//! reference decoder's by construction; this path only makes the common case cheap: one read
//! of [`FAST_CHUNK`] bytes instead of sixteen, one pass over each record that finds, checks and
//! parses it, and no per-record bookkeeping of where the bytes lie.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use bytes::Bytes;

use crate::lsn::{Lsn, SystemId, TimelineId, XLOG_BLCKSZ};
use crate::wal::dir::WalDir;
use crate::wal::error::FileCtx;
use crate::wal::page::{PgVersion, XLP_ALL_FLAGS, XLP_LONG_HEADER};
use crate::wal::parse::{parse_in_chunk_into, parse_pieces_into, InChunk, RecordBytes};
use crate::wal::record::{DecodedRecord, RECORD_HEADER_LEN};

const BLCKSZ: u64 = XLOG_BLCKSZ as u64;
/// Bytes read at a time (a whole number of pages): 32 of the reference reader's reads.
pub(crate) const FAST_CHUNK: usize = 4 << 20;
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
        }
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
        // The previous chunk is usually free again (records hold slices only until the next
        // record): reuse its memory.
        let mut buf = match std::mem::take(&mut self.chunk).try_into_mut() {
            Ok(m) if m.capacity() >= len => {
                let mut v: Vec<u8> = m.into();
                v.truncate(len);
                v.resize(len, 0);
                v
            }
            _ => vec![0u8; len],
        };
        f.seek(SeekFrom::Start(off)).ok()?;
        f.read_exact(&mut buf).ok()?;
        self.chunk = Bytes::from(buf);
        self.chunk_at = page;
        Some(())
    }

    /// Checks the header of the page at `page` as the reference decoder does; `None` when it
    /// would not accept it (or the page cannot be read here).
    fn check_page(&mut self, page: u64) -> Option<CheckedPage> {
        if let Some(p) = self.page.filter(|p| p.lsn == page) {
            return Some(p);
        }
        let off = self.page_off(page)?;
        let b = &self.chunk[off..off + XLOG_BLCKSZ];
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| u64::from(u32_at(i)) | (u64::from(u32_at(i + 4)) << 32);
        let version = PgVersion::from_magic(u16_at(0))?;
        if self.version.is_some_and(|v| v != version) {
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
            if sysid.is_some_and(|k| k != s) {
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
    pub(crate) fn next_into(&mut self, out: &mut DecodedRecord) -> Step {
        if !self.positioned && self.position().is_none() {
            return self.handover();
        }
        loop {
            match self.one(out) {
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
    fn one(&mut self, out: &mut DecodedRecord) -> Option<u64> {
        // The slot's slices of the chunk go now, so that its memory can be reused.
        out.main_data.clear();
        out.blocks.clear();
        let mut lsn = self.next;
        let page = lsn - lsn % BLCKSZ;
        let p = self.check_page(page)?;
        if lsn == page {
            lsn += p.hlen;
        } else if lsn - page < p.hlen {
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
fn crc_ok(rec: &[u8]) -> bool {
    let stored = u32::from_le_bytes([rec[20], rec[21], rec[22], rec[23]]);
    let c = crc32c::crc32c_append(crc32c::crc32c(&rec[RECORD_HEADER_LEN..]), &rec[..20]);
    c == stored
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::lsn::{Lsn, TimelineId};
    use crate::wal::dir::WalDir;
    use crate::wal::record::DecodedRecord;
    use crate::wal::source::WalDirReader;

    /// The pg15 fixture (four 1 MB segments with an XLOG_SWITCH), gunzipped into a temp dir.
    fn fixture() -> (tempfile::TempDir, Lsn) {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wal/pg15");
        let tmp = crate::wal::fixture::pg15_copy();
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(src.join("meta.json")).expect("meta.json"),
        )
        .expect("json");
        let start = meta["start"].as_str().expect("start").parse().expect("lsn");
        (tmp, start)
    }

    /// Everything a reader says: the records (or the error, as text), the end of WAL, the
    /// version and the system identifier.
    type Said = (
        Vec<Result<DecodedRecord, String>>,
        Option<String>,
        Option<u32>,
        Option<u64>,
    );

    fn drain(mut r: WalDirReader) -> Said {
        let mut out = Vec::new();
        while let Some(rec) = r.next_record() {
            out.push(rec.cloned().map_err(|e| e.to_string()));
        }
        let end = r.end_of_wal().map(|e| format!("{e:?}"));
        (
            out,
            end,
            r.version().map(|v| v.0),
            r.system_id().map(|s| s.0),
        )
    }

    /// The fast path and the reference decoder say the same, with and without payloads.
    fn same(dir: &WalDir, start: Lsn, end: Option<Lsn>, what: &str) -> usize {
        let want = drain(dir.read_inline(start, end));
        let got = drain(dir.read_fast(start, end));
        assert_eq!(got.1, want.1, "{what}: end of WAL");
        assert_eq!(got.0.len(), want.0.len(), "{what}: record count");
        assert!(got.0 == want.0, "{what}: records differ");
        assert_eq!(
            (got.2, got.3),
            (want.2, want.3),
            "{what}: version, system id"
        );
        let bare = |r: WalDirReader| drain(r.without_block_payloads());
        assert!(
            bare(dir.read_fast(start, end)) == bare(dir.read_inline(start, end)),
            "{what}: without payloads"
        );
        want.0.len()
    }

    #[test]
    fn the_same_records_end_and_errors_as_the_reference_decoder() {
        let (tmp, start) = fixture();
        let dir = WalDir::open(tmp.path(), TimelineId(1)).expect("open");
        let n = same(&dir, start, None, "whole");
        assert!(n > 1000, "{n} records");
        let all: Vec<DecodedRecord> = dir
            .read_inline(start, None)
            .map(|r| r.expect("record"))
            .collect();
        // Starts at record boundaries, pages, segments; inside a page header; not a boundary.
        let mut starts: Vec<Lsn> = all.iter().step_by(211).map(|r| r.lsn).collect();
        starts.extend([
            Lsn(start.0 + 8192),
            Lsn(start.0 + 3 * 8192 + 24),
            Lsn(0xC0_0000),
        ]);
        starts.extend([Lsn(start.0 + 8192 + 8), Lsn(all[40].lsn.0 + 8)]);
        for s in starts {
            same(&dir, s, None, &format!("start {s}"));
        }
        // Ends at record starts, inside records, at pages.
        for r in all.iter().step_by(307) {
            for e in [
                r.lsn,
                Lsn(r.lsn.0 + 5),
                r.end_lsn,
                Lsn(r.lsn.0 - r.lsn.0 % 8192),
            ] {
                same(&dir, start, Some(e), &format!("end {e}"));
            }
        }
    }

    #[test]
    fn damaged_or_unusual_files_are_handed_to_the_reference_decoder() {
        let (tmp, start) = fixture();
        let dir = WalDir::open(tmp.path(), TimelineId(1)).expect("open");
        let all: Vec<DecodedRecord> = dir
            .read_inline(start, None)
            .map(|r| r.expect("record"))
            .collect();
        let seg = dir.segment_size();
        let file_of = |lsn: Lsn| {
            tmp.path().join(crate::wal::segment::segment_file_name_for(
                TimelineId(1),
                lsn,
                seg,
            ))
        };
        let damage = |lsn: Lsn, at: u64, what: &str| {
            let path = file_of(lsn);
            let orig = std::fs::read(&path).expect("read");
            let mut b = orig.clone();
            b[((lsn.0 % seg) + at) as usize] ^= 0x40;
            std::fs::write(&path, &b).expect("write");
            same(&dir, start, None, what);
            std::fs::write(&path, &orig).expect("restore");
        };
        let in_page = all
            .iter()
            .skip(all.len() / 3)
            .find(|r| r.lsn.0 % 8192 + u64::from(r.xl_tot_len) < 8192)
            .expect("an in-page record");
        damage(
            in_page.lsn,
            u64::from(in_page.xl_tot_len) - 1,
            "CRC of an in-page record",
        );
        damage(in_page.lsn, 8, "xl_prev of an in-page record");
        damage(in_page.lsn, 17, "rmid of an in-page record");
        let crossing = all
            .iter()
            .skip(all.len() / 2)
            .find(|r| r.lsn.0 % 8192 + u64::from(r.xl_tot_len) > 8192 + 64)
            .expect("a record crossing a page");
        let next_page = crossing.lsn.0 - crossing.lsn.0 % 8192 + 8192;
        damage(Lsn(next_page), 40, "the continued part of a record");
        damage(Lsn(next_page), 16, "xlp_rem_len of a continuation page");
        damage(Lsn(next_page), 0, "the magic of a page");
        damage(Lsn(next_page), 9, "xlp_pageaddr of a page");
        damage(Lsn(next_page), 4, "xlp_tli of a page");
        damage(
            Lsn(0xD0_0000),
            25,
            "the system id of a segment's first page",
        );
        // A compressed segment in the middle, a short one, a missing one.
        let mid = file_of(Lsn(0xC0_0000));
        let orig = std::fs::read(&mid).expect("read");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(format!("{}.gz", mid.display())).expect("create"),
            flate2::Compression::fast(),
        );
        std::io::Write::write_all(&mut enc, &orig).expect("gzip");
        enc.finish().expect("gzip");
        std::fs::remove_file(&mid).expect("rm");
        same(&dir, start, None, "a compressed segment");
        std::fs::remove_file(format!("{}.gz", mid.display())).expect("rm gz");
        std::fs::write(&mid, &orig[..orig.len() / 2]).expect("short");
        same(&dir, start, None, "a short segment");
        std::fs::remove_file(&mid).expect("rm");
        same(&dir, start, None, "a missing segment");
        std::fs::write(&mid, &orig).expect("restore");
        same(&dir, start, None, "restored");
    }
}
