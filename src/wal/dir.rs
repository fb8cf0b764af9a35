//! A directory of WAL segments (a `pg_wal`, an archive, or a copy of one): which file holds
//! each segment along a node's timelines, and the feeder that reads them in chunks.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::lsn::{Lsn, TimelineId};
use crate::wal::error::WalError;
use crate::wal::page::{valid_seg_size, PageHeader};
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
}

/// Bytes read per chunk: small enough that they are still in cache when decoded.
pub const CHUNK: usize = 128 * 1024;

pub(crate) struct Open {
    r: Box<dyn Read + Send>,
    name: String,
    seg_end: u64,
    announced: bool,
}

/// Reads the segment files in order, from `at` on.
pub(crate) struct SegmentFeeder {
    pub(crate) dir: WalDir,
    pub(crate) end: Option<Lsn>,
    pub(crate) at: u64,
    pub(crate) open: Option<Open>,
    pub(crate) ended: bool,
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
