//! Reads WAL segments from a directory (plain, `.partial`, `.gz`) and decodes them: one
//! timeline, or a node's path across its timeline switches ([`WalDir::along`]).
//!
//! [`WalDirReader`] is an iterator of records; it opens one segment at a time and reads it in
//! fixed-size chunks, so memory stays flat whatever the amount of WAL.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::lsn::{Lsn, SystemId, TimelineId};
use crate::wal::decoder::{EndOfWal, Poll, Polled, WalDecoder};
use crate::wal::error::WalError;
use crate::wal::page::{valid_seg_size, PageHeader, PgVersion};
use crate::wal::pipeline::{self, Learnt, Pipeline};
use crate::wal::record::DecodedRecord;
use crate::wal::segment::{segment_file_name, segment_start, SegmentName};

/// A directory that holds WAL segments (a `pg_wal`, an archive, or a copy of one).
#[derive(Debug, Clone)]
pub struct WalDir {
    dir: PathBuf,
    tli: TimelineId,
    seg_size: u64,
    /// `(first segment, timeline)`, ascending: which timeline's file holds each segment. A
    /// timeline's file for the segment holding its switchpoint also holds its parent's WAL
    /// up to the switchpoint (PostgreSQL copies it at the promotion).
    plan: Vec<(u64, TimelineId)>,
}

/// Candidate file names for one segment, in order of preference.
fn candidates(base: &str) -> [String; 4] {
    [
        base.to_string(),
        format!("{base}.partial"),
        format!("{base}.gz"),
        format!("{base}.partial.gz"),
    ]
}

impl WalDir {
    /// Opens `dir` for timeline `tli`; the segment size is read from the first segment's long header.
    pub fn open(dir: impl AsRef<Path>, tli: TimelineId) -> Result<WalDir, WalError> {
        let dir = dir.as_ref().to_path_buf();
        let io = |e: std::io::Error, file: &str| WalError::Io {
            file: file.to_string(),
            lsn: Lsn(0),
            source: e,
        };
        let shown = dir.display().to_string();
        let mut names: Vec<(SegmentName, String)> = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| io(e, &shown))? {
            let entry = entry.map_err(|e| io(e, &shown))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(n) = SegmentName::parse(&name) {
                if n.tli == tli {
                    names.push((n, name));
                }
            }
        }
        names.sort();
        let Some((_, first)) = names.first() else {
            return Err(WalError::MissingSegment {
                file: format!("{:08X}????????????????", tli.0),
                lsn: Lsn(0),
                dir: shown,
            });
        };
        let mut head = [0u8; 40];
        let path = dir.join(first);
        let f = File::open(&path).map_err(|e| io(e, first))?;
        let mut r: Box<dyn Read> = if first.ends_with(".gz") {
            Box::new(GzDecoder::new(f))
        } else {
            Box::new(f)
        };
        r.read_exact(&mut head).map_err(|e| io(e, first))?;
        let seg_size = PageHeader::parse(&head)
            .and_then(|h| h.long)
            .map(|l| u64::from(l.seg_size))
            .filter(|&s| valid_seg_size(s))
            .ok_or_else(|| WalError::InvalidPageHeader {
                what: "first page has no valid long header (cannot learn the segment size)".into(),
                lsn: Lsn(0),
                file: crate::wal::error::FileCtx(Some(first.clone())),
            })?;
        Ok(WalDir {
            dir,
            tli,
            seg_size,
            plan: vec![(0, tli)],
        })
    }

    /// Opens `dir` for timeline `tli` with a known segment size (a power of two, 1 MB to 1 GB).
    pub fn with_segment_size(
        dir: impl AsRef<Path>,
        tli: TimelineId,
        seg_size: u64,
    ) -> Result<WalDir, WalError> {
        let dir = dir.as_ref().to_path_buf();
        if !valid_seg_size(seg_size) {
            return Err(WalError::InvalidPageHeader {
                what: format!("invalid segment size {seg_size} (a power of two from 1 MB to 1 GB)"),
                lsn: Lsn(0),
                file: crate::wal::error::FileCtx(Some(dir.display().to_string())),
            });
        }
        Ok(WalDir {
            dir,
            tli,
            seg_size,
            plan: vec![(0, tli)],
        })
    }

    /// Reads along `history` (the node's own timeline and its ancestors): each segment from
    /// the newest timeline that had begun by that segment, as PostgreSQL's recovery does, so
    /// WAL that crosses the node's timeline switches reads as one stream. The directory may
    /// hold segments of other timelines too (an archive); they are not read.
    pub fn along(mut self, history: &crate::timeline::TimelineHistory) -> WalDir {
        let mut plan = Vec::with_capacity(history.entries.len() + 1);
        let mut begin = 0;
        for e in &history.entries {
            plan.push((begin, e.parent));
            begin = e.switchpoint.segment_number(self.seg_size);
        }
        plan.push((begin, history.timeline));
        self.tli = history.timeline;
        self.plan = plan;
        self
    }

    /// The timeline whose file holds segment `segno` on this directory's path.
    pub fn timeline_of_segment(&self, segno: u64) -> TimelineId {
        self.plan
            .iter()
            .rev()
            .find(|(first, _)| *first <= segno)
            .map_or(self.tli, |(_, t)| *t)
    }

    /// The directory read.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The segment size in bytes.
    pub fn segment_size(&self) -> u64 {
        self.seg_size
    }

    /// The timeline read (the newest, when reading along a history).
    pub fn timeline(&self) -> TimelineId {
        self.tli
    }

    /// The existing file for segment `segno`, if any (plain, `.partial`, `.gz`, `.partial.gz`).
    pub fn find_segment(&self, segno: u64) -> Option<(PathBuf, String)> {
        let base = segment_file_name(self.timeline_of_segment(segno), segno, self.seg_size);
        candidates(&base)
            .into_iter()
            .map(|n| (self.dir.join(&n), n))
            .find(|(p, _)| p.is_file())
    }

    /// Whether any segment of this timeline after `segno` exists (a gap, not the end).
    fn later_segment_exists(&self, segno: u64) -> bool {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return false;
        };
        rd.flatten().any(|e| {
            SegmentName::parse(&e.file_name().to_string_lossy())
                .ok()
                .and_then(|n| Some((n.tli, n.segno(self.seg_size)?)))
                .is_some_and(|(t, s)| s > segno && t == self.timeline_of_segment(s))
        })
    }

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
            let mut decoder = WalDecoder::new(start).with_segment_size(self.seg_size);
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
        }
    }
}

/// Bytes read per chunk: small enough that they are still in cache when decoded.
pub const CHUNK: usize = 128 * 1024;

struct Open {
    r: Box<dyn Read + Send>,
    name: String,
    seg_end: u64,
    announced: bool,
}

/// Reads the segment files in order, from `at` on.
pub(crate) struct SegmentFeeder {
    dir: WalDir,
    end: Option<Lsn>,
    at: u64,
    open: Option<Open>,
    ended: bool,
}

/// What one read produced.
pub(crate) enum Fill {
    /// `n` bytes at `at`; `name` when they are the first bytes read from that file.
    Data { at: u64, name: Option<String> },
    /// Nothing more: the next segment does not exist, or a `.partial` one ended.
    Eof,
}

impl SegmentFeeder {
    fn open_next(&mut self) -> Result<bool, WalError> {
        let seg_size = self.dir.seg_size;
        let at = self.at;
        let segno = at / seg_size;
        let Some((path, name)) = self.dir.find_segment(segno) else {
            let base = segment_file_name(self.dir.timeline_of_segment(segno), segno, seg_size);
            let inside = self.end.is_some_and(|e| e.0 > at) || self.dir.later_segment_exists(segno);
            if inside {
                return Err(WalError::MissingSegment {
                    file: base,
                    lsn: Lsn(at),
                    dir: self.dir.dir.display().to_string(),
                });
            }
            return Ok(false);
        };
        let io = |e: std::io::Error| WalError::Io {
            file: name.clone(),
            lsn: Lsn(at),
            source: e,
        };
        let mut f = File::open(&path).map_err(io)?;
        let offset = at - segment_start(segno, seg_size).0;
        let r: Box<dyn Read + Send> = if name.ends_with(".gz") {
            let mut g = GzDecoder::new(f);
            std::io::copy(&mut (&mut g).take(offset), &mut std::io::sink()).map_err(io)?;
            Box::new(g)
        } else {
            f.seek(SeekFrom::Start(offset)).map_err(io)?;
            Box::new(f)
        };
        self.open = Some(Open {
            r,
            name,
            seg_end: segment_start(segno + 1, seg_size).0,
            announced: false,
        });
        Ok(true)
    }

    /// Reads up to `max` bytes into `buf` (never past the segment's end).
    pub(crate) fn fill(&mut self, buf: &mut Vec<u8>, max: usize) -> Result<Fill, WalError> {
        if self.ended {
            return Ok(Fill::Eof);
        }
        if self.open.is_none() && !self.open_next()? {
            return Ok(Fill::Eof);
        }
        let Some(open) = self.open.as_mut() else {
            return Ok(Fill::Eof);
        };
        let at = self.at;
        let want = (open.seg_end - at).min(max as u64) as usize;
        // A reused buffer is already initialised: only growth is zeroed.
        buf.resize(want, 0);
        let mut got = 0;
        while got < want {
            let n = open.r.read(&mut buf[got..want]).map_err(|e| WalError::Io {
                file: open.name.clone(),
                lsn: Lsn(at + got as u64),
                source: e,
            })?;
            if n == 0 {
                break;
            }
            got += n;
        }
        buf.truncate(got);
        let name = (!open.announced).then(|| open.name.clone());
        open.announced = true;
        self.at += got as u64;
        if self.at >= open.seg_end {
            self.open = None;
        } else if got < want {
            // A short file. A `.partial` segment ends the timeline's WAL; any other short
            // segment was truncated (PostgreSQL always writes full-size segment files).
            if !open.name.contains(".partial") {
                let seg_size = self.dir.seg_size;
                return Err(WalError::TruncatedSegment {
                    file: open.name.clone(),
                    size: self.at % seg_size,
                    expected: seg_size,
                    lsn: Lsn(self.at),
                });
            }
            // Deliver what was read; the next fill ends.
            self.ended = true;
            if got == 0 {
                return Ok(Fill::Eof);
            }
        }
        Ok(Fill::Data { at, name })
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
}

/// An iterator of decoded records over a [`WalDir`]; check [`Self::end_of_wal`] when it stops.
pub struct WalDirReader {
    dir: WalDir,
    mode: Mode,
    learnt: Learnt,
    done: bool,
    /// The record [`Self::next_record`] lends out, reused from record to record.
    slot: DecodedRecord,
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
        }
    }

    /// The PostgreSQL version that wrote the WAL, once a record was read.
    pub fn version(&self) -> Option<PgVersion> {
        match &self.mode {
            Mode::Inline { decoder, .. } => decoder.version(),
            Mode::Pipelined(_) => self.learnt.version,
        }
    }

    /// The system identifier, once known (after the iterator ended, on two threads).
    pub fn system_id(&self) -> Option<SystemId> {
        match &self.mode {
            Mode::Inline { decoder, .. } => decoder.system_id(),
            Mode::Pipelined(_) => self.learnt.sysid,
        }
    }

    /// The segment size (read from the long page header, else the directory's).
    pub fn segment_size(&self) -> u64 {
        let learnt = match &self.mode {
            Mode::Inline { decoder, .. } => decoder.segment_size(),
            Mode::Pipelined(_) => self.learnt.seg_size,
        };
        learnt.unwrap_or(self.dir.seg_size)
    }

    /// The next record, lent until the next call: the same records as the iterator, but
    /// decoded into one reused slot (no move or allocation per record on one thread).
    /// `None` at the end (then see [`Self::end_of_wal`]) and after an error.
    pub fn next_record(&mut self) -> Option<Result<&DecodedRecord, WalError>> {
        if self.done {
            return None;
        }
        let res: Option<Result<(), WalError>> = match &mut self.mode {
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
        match res {
            Some(Ok(())) => Some(Ok(&self.slot)),
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
        if let Mode::Inline { decoder, .. } = &mut self.mode {
            decoder.set_block_payloads(false);
        }
        self
    }

    /// Whether the files are read and checked on a second thread.
    pub fn is_pipelined(&self) -> bool {
        matches!(self.mode, Mode::Pipelined(_))
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
        let item = match &mut self.mode {
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
