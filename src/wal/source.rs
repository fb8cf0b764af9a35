//! Reads WAL segments of one timeline from a directory (plain, `.partial`, `.gz`) and decodes them.
//!
//! [`WalDirReader`] is an iterator of records; it opens one segment at a time and reads it in
//! fixed-size chunks, so memory stays flat whatever the amount of WAL.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::lsn::{Lsn, TimelineId};
use crate::wal::decoder::{EndOfWal, Poll, WalDecoder};
use crate::wal::error::WalError;
use crate::wal::page::{valid_seg_size, PageHeader};
use crate::wal::record::DecodedRecord;
use crate::wal::segment::{segment_file_name, segment_start, SegmentName};

/// A directory that holds WAL segments (a `pg_wal`, an archive, or a copy of one).
#[derive(Debug, Clone)]
pub struct WalDir {
    dir: PathBuf,
    tli: TimelineId,
    seg_size: u64,
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
        Ok(WalDir { dir, tli, seg_size })
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
        Ok(WalDir { dir, tli, seg_size })
    }

    /// The segment size in bytes.
    pub fn segment_size(&self) -> u64 {
        self.seg_size
    }

    /// The timeline read.
    pub fn timeline(&self) -> TimelineId {
        self.tli
    }

    /// The existing file for segment `segno`, if any (plain, `.partial`, `.gz`, `.partial.gz`).
    pub fn find_segment(&self, segno: u64) -> Option<(PathBuf, String)> {
        let base = segment_file_name(self.tli, segno, self.seg_size);
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
                .filter(|n| n.tli == self.tli)
                .and_then(|n| n.segno(self.seg_size))
                .is_some_and(|s| s > segno)
        })
    }

    /// Reads records from `start` up to `end` (exclusive of records ending after it) or the end
    /// of WAL, reading the files on the calling thread in [`CHUNK`]-byte reads straight into
    /// the decoder's buffer (memory stays flat: one chunk plus the largest record).
    pub fn read(&self, start: Lsn, end: Option<Lsn>) -> WalDirReader {
        self.reader(start, end, false)
    }

    /// Like [`Self::read`], but a read-ahead thread reads the files while the caller decodes
    /// (at most [`READ_AHEAD_CHUNKS`] chunks in flight). Worth it when reads wait on the disk
    /// and a core is free; on a busy machine with WAL in the page cache the hand-off between
    /// threads costs more than it saves (BENCHMARKS.md: 0.84× the inline reader).
    pub fn read_ahead(&self, start: Lsn, end: Option<Lsn>) -> WalDirReader {
        self.reader(start, end, true)
    }

    fn reader(&self, start: Lsn, end: Option<Lsn>, thread: bool) -> WalDirReader {
        let mut decoder = WalDecoder::new(start).with_segment_size(self.seg_size);
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
        let feed = if thread {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(READ_AHEAD_CHUNKS);
            let (back, back_rx) = std::sync::mpsc::channel::<Vec<u8>>();
            let spawned = std::thread::Builder::new()
                .name("wal-read-ahead".into())
                .spawn(move || read_ahead(files, tx, back_rx));
            match spawned {
                Ok(_) => Feed::Thread { rx, back },
                Err(_) => Feed::Inline(SegmentFeeder {
                    dir: self.clone(),
                    end,
                    at: decoder.fed_up_to().0,
                    open: None,
                    ended: false,
                }),
            }
        } else {
            Feed::Inline(files)
        };
        WalDirReader {
            dir: self.clone(),
            decoder,
            feed,
            done: false,
        }
    }
}

/// Bytes read per chunk: small enough that they are still in cache when decoded.
pub const CHUNK: usize = 128 * 1024;
/// Chunks the read-ahead thread may have in flight.
pub const READ_AHEAD_CHUNKS: usize = 4;

struct Open {
    r: Box<dyn Read + Send>,
    name: String,
    seg_end: u64,
    announced: bool,
}

/// Reads the segment files in order, from `at` on.
struct SegmentFeeder {
    dir: WalDir,
    end: Option<Lsn>,
    at: u64,
    open: Option<Open>,
    ended: bool,
}

/// What one read produced.
enum Fill {
    /// `n` bytes at `at`; `name` when they are the first bytes read from that file.
    Data {
        at: u64,
        n: usize,
        name: Option<String>,
    },
    /// Nothing more: the next segment does not exist, or a `.partial` one ended.
    Eof,
}

impl SegmentFeeder {
    fn open_next(&mut self) -> Result<bool, WalError> {
        let seg_size = self.dir.seg_size;
        let at = self.at;
        let segno = at / seg_size;
        let Some((path, name)) = self.dir.find_segment(segno) else {
            let base = segment_file_name(self.dir.tli, segno, seg_size);
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
    fn fill(&mut self, buf: &mut Vec<u8>, max: usize) -> Result<Fill, WalError> {
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
        Ok(Fill::Data { at, n: got, name })
    }
}

/// A chunk from the read-ahead thread.
enum Chunk {
    Data {
        at: u64,
        buf: Vec<u8>,
        n: usize,
        name: Option<String>,
    },
    Eof,
    Err(WalError),
}

fn read_ahead(
    mut files: SegmentFeeder,
    tx: std::sync::mpsc::SyncSender<Chunk>,
    back: std::sync::mpsc::Receiver<Vec<u8>>,
) {
    loop {
        // A buffer the decoder is done with, else a new one.
        let mut buf = back
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let msg = match files.fill(&mut buf, CHUNK) {
            Ok(Fill::Data { at, n, name }) => Chunk::Data { at, buf, n, name },
            Ok(Fill::Eof) => Chunk::Eof,
            Err(e) => Chunk::Err(e),
        };
        let last = !matches!(msg, Chunk::Data { .. });
        if tx.send(msg).is_err() || last {
            return;
        }
    }
}

enum Feed {
    Inline(SegmentFeeder),
    Thread {
        rx: std::sync::mpsc::Receiver<Chunk>,
        /// Buffers the decoder is done with, back to the reading thread.
        back: std::sync::mpsc::Sender<Vec<u8>>,
    },
}

/// An iterator of decoded records over a [`WalDir`]; check [`Self::end_of_wal`] when it stops.
pub struct WalDirReader {
    dir: WalDir,
    decoder: WalDecoder,
    feed: Feed,
    done: bool,
}

impl std::fmt::Debug for WalDirReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalDirReader")
            .field("dir", &self.dir)
            .field("decoder", &self.decoder)
            .finish()
    }
}

impl WalDirReader {
    /// Where and why decoding stopped, once the iterator returned `None`.
    pub fn end_of_wal(&self) -> Option<&EndOfWal> {
        self.decoder.end_of_wal()
    }

    /// The underlying decoder (segment size, version, system id).
    pub fn decoder(&self) -> &WalDecoder {
        &self.decoder
    }

    /// Feeds the next chunk; `false` when there is nothing more to read.
    fn feed(&mut self) -> Result<bool, WalError> {
        match &mut self.feed {
            Feed::Inline(files) => {
                let mut buf = self.decoder.take_buffer(CHUNK);
                match files.fill(&mut buf, CHUNK)? {
                    Fill::Data { at, name, .. } => {
                        if let Some(name) = name {
                            self.decoder.set_source_name(Lsn(at), &name);
                        }
                        self.decoder.feed_vec(Lsn(at), buf)?;
                        Ok(true)
                    }
                    Fill::Eof => Ok(false),
                }
            }
            Feed::Thread { rx, back } => match rx.recv() {
                Ok(Chunk::Data { at, buf, n, name }) => {
                    if let Some(name) = name {
                        self.decoder.set_source_name(Lsn(at), &name);
                    }
                    let mut buf = buf;
                    buf.truncate(n);
                    self.decoder.feed_vec(Lsn(at), buf)?;
                    if let Some(done) = self.decoder.reclaim_buffer() {
                        let _ = back.send(done);
                    }
                    Ok(true)
                }
                Ok(Chunk::Eof) | Err(_) => Ok(false),
                Ok(Chunk::Err(e)) => Err(e),
            },
        }
    }
}

impl Iterator for WalDirReader {
    type Item = Result<DecodedRecord, WalError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            match self.decoder.poll() {
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(Poll::Record(r)) => return Some(Ok(r)),
                Ok(Poll::End(_)) => {
                    self.done = true;
                    return None;
                }
                Ok(Poll::NeedMore) => match self.feed() {
                    Ok(true) => {}
                    Ok(false) => self.decoder.finish(),
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                },
            }
        }
    }
}
