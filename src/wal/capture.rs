//! Keeps the raw WAL segments a scan reads, as segment files, for the evidence bundle.
//!
//! Bytes that arrive over replication or SQL are written at their offset in a full-size
//! segment file (zeros where nothing arrived) as they stream, so memory stays flat; segments
//! read from a directory are copied as they are (plain, `.partial` or `.gz`).

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::lsn::{Lsn, TimelineId};
use crate::wal::segment::{segment_file_name, SegmentName};

/// One WAL segment file held in the bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedSegment {
    /// Its file name (`000000010000000000000003`, or with `.partial` / `.gz`).
    pub name: String,
    /// Where it is now.
    pub path: PathBuf,
}

/// Collects the segments of the lost range into one directory, from any source.
///
/// An archive source plugs in with [`WalCapture::copy_file`] (a fetched file) or
/// [`WalCapture::record`] (bytes at an LSN).
#[derive(Debug)]
pub struct WalCapture {
    dir: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The segment file open for writing: (timeline, segment number), file.
    open: Option<((u32, u64), File)>,
    /// Every file written, by name.
    names: BTreeSet<String>,
    /// The first write error: the bundle is refused when one happened.
    error: Option<String>,
}

impl WalCapture {
    /// Captures into `dir` (created, owner-only).
    pub fn new(dir: &Path) -> std::io::Result<WalCapture> {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(dir)?;
        Ok(WalCapture {
            dir: dir.to_path_buf(),
            inner: Mutex::new(Inner::default()),
        })
    }

    /// The directory the segments are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `bytes`, which start at `at` on timeline `tli`, into their segment files.
    /// Never fails: the first error is kept and reported by [`WalCapture::finish`].
    pub fn record(&self, tli: TimelineId, seg_size: u64, at: Lsn, bytes: &[u8]) {
        if seg_size == 0 || bytes.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.error.is_some() {
            return;
        }
        let mut pos = at.0;
        let mut rest = bytes;
        while !rest.is_empty() {
            let segno = pos / seg_size;
            let offset = pos % seg_size;
            let n = rest.len().min((seg_size - offset) as usize);
            if let Err(e) = self.write_at(&mut inner, tli, seg_size, segno, offset, &rest[..n]) {
                let name = segment_file_name(tli, segno, seg_size);
                inner.error = Some(format!("{}: {e}", self.dir.join(name).display()));
                return;
            }
            pos += n as u64;
            rest = &rest[n..];
        }
    }

    fn write_at(
        &self,
        inner: &mut Inner,
        tli: TimelineId,
        seg_size: u64,
        segno: u64,
        offset: u64,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        let key = (tli.0, segno);
        if inner.open.as_ref().map(|(k, _)| *k) != Some(key) {
            inner.open = None; // closes the previous segment
            let name = segment_file_name(tli, segno, seg_size);
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(self.dir.join(&name))?;
            // Full size, like a segment in pg_wal: what did not arrive reads as zeros.
            if file.metadata()?.len() < seg_size {
                file.set_len(seg_size)?;
            }
            inner.names.insert(name);
            inner.open = Some((key, file));
        }
        let (_, file) = inner.open.as_ref().expect("just opened");
        file.write_all_at(bytes, offset)
    }

    /// Copies a segment file (from a directory or an archive fetch) into the capture as `name`.
    pub fn copy_file(&self, from: &Path, name: &str) -> std::io::Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let to = self.dir.join(name);
        let mut src = File::open(from)?;
        let mut dst = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&to)?;
        std::io::copy(&mut src, &mut dst)?;
        inner.names.insert(name.to_string());
        Ok(())
    }

    /// Keeps the segments of timeline `tli` numbered `first..=last` and removes the others
    /// (written by scans that started earlier or ended later); returns the kept files in order.
    pub fn finish(
        &self,
        seg_size: u64,
        first: u64,
        last: u64,
    ) -> Result<Vec<CapturedSegment>, String> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.open = None;
        if let Some(e) = &inner.error {
            return Err(e.clone());
        }
        let mut kept = Vec::new();
        for name in std::mem::take(&mut inner.names) {
            let path = self.dir.join(&name);
            let segno = SegmentName::parse(&name)
                .ok()
                .and_then(|n| n.segno(seg_size));
            match segno {
                Some(s) if (first..=last).contains(&s) => {
                    kept.push(CapturedSegment { name, path });
                }
                _ => std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?,
            }
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_land_at_their_offsets_across_a_segment_boundary() {
        let tmp = tempfile::tempdir().unwrap();
        let c = WalCapture::new(&tmp.path().join("wal")).unwrap();
        let seg = 1024 * 1024;
        c.record(TimelineId(1), seg, Lsn(3 * seg - 4), &[1, 2, 3, 4, 5, 6]);
        c.record(TimelineId(1), seg, Lsn(8 * seg), &[9]);
        let kept = c.finish(seg, 2, 3).unwrap();
        let names: Vec<_> = kept.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(
            names,
            ["000000010000000000000002", "000000010000000000000003"]
        );
        let a = std::fs::read(&kept[0].path).unwrap();
        assert_eq!(a.len() as u64, seg);
        assert_eq!(&a[a.len() - 4..], &[1, 2, 3, 4]);
        let b = std::fs::read(&kept[1].path).unwrap();
        assert_eq!(&b[..3], &[5, 6, 0]);
        assert!(!tmp.path().join("wal/000000010000000000000008").exists());
    }
}
