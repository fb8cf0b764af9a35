//! The decoder's input buffer: fed bytes kept as shared chunks, so that a record lying on one
//! page is handed out as a slice of its chunk (no copy), and dropping consumed input is
//! dropping whole chunks (no memmove).
//!
//! Invariant: every WAL page (8 KB, page-aligned) that has been fed lies entirely inside one
//! chunk. Feeds that end inside a page are joined with the next feed's first bytes into a small
//! chunk of at most one page, so readers never see a page split across chunks whatever the
//! feed sizes (replication messages, SQL reads and file reads all differ).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::lsn::XLOG_BLCKSZ;

const BLCKSZ: u64 = XLOG_BLCKSZ as u64;

/// Contiguous input from `start` to `end`, as shared chunks that each begin on a page boundary.
#[derive(Debug, Default)]
pub(crate) struct ChunkBuf {
    /// (first LSN, bytes), contiguous and in order.
    chunks: VecDeque<(u64, Bytes)>,
    /// LSN of the first byte held (or of the next byte to come when empty).
    start: u64,
    /// LSN one past the last byte fed.
    end: u64,
    /// A dropped chunk's allocation, handed out again by [`ChunkBuf::take_vec`] (saves a
    /// fresh allocation and its page faults per read).
    free: Option<Vec<u8>>,
}

impl ChunkBuf {
    /// An empty buffer whose first byte will be `at`.
    pub(crate) fn new(at: u64) -> ChunkBuf {
        ChunkBuf {
            start: at,
            end: at,
            ..ChunkBuf::default()
        }
    }

    /// LSN one past the last byte fed.
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// Appends `data`, which starts at [`Self::end`].
    pub(crate) fn push(&mut self, mut data: Bytes) {
        if data.is_empty() {
            return;
        }
        let tail = self.end % BLCKSZ;
        if tail != 0 {
            // The last chunk ends inside a page: join that page's bytes with the new ones.
            // Chunks start on page boundaries, so the partial page is the last chunk's tail.
            let page = self.end - tail;
            let take = ((BLCKSZ - tail) as usize).min(data.len());
            let head = data.split_to(take);
            let mut joined = Vec::with_capacity(tail as usize + take);
            if let Some((s, b)) = self.chunks.back_mut() {
                let piece = b.split_off((page.saturating_sub(*s) as usize).min(b.len()));
                if b.is_empty() {
                    self.chunks.pop_back();
                }
                joined.extend_from_slice(&piece);
            }
            joined.extend_from_slice(&head);
            self.chunks
                .push_back((page.max(self.start), Bytes::from(joined)));
            self.end += head.len() as u64;
        }
        if !data.is_empty() {
            let n = data.len() as u64;
            self.chunks.push_back((self.end, data));
            self.end += n;
        }
    }

    /// A buffer with room for `cap` bytes, for the caller to overwrite and [`Self::push`]: a
    /// dropped chunk's allocation when one is free. Its length is that of the old contents
    /// (stale bytes), so resizing it up to `cap` zeroes nothing that was zeroed before.
    pub(crate) fn take_vec(&mut self, cap: usize) -> Vec<u8> {
        let mut v = self.free.take().unwrap_or_default();
        v.reserve(cap.saturating_sub(v.len()));
        v
    }

    /// A dropped chunk's allocation, if one is free.
    pub(crate) fn reclaim(&mut self) -> Option<Vec<u8>> {
        self.free.take()
    }

    /// The chunk holding `lsn`, if fed.
    fn chunk_at(&self, lsn: u64) -> Option<&(u64, Bytes)> {
        if lsn < self.start || lsn >= self.end {
            return None;
        }
        // Few chunks are live (compaction drops the consumed ones); the wanted one is usually
        // the first or the second.
        self.chunks
            .iter()
            .find(|(s, b)| lsn >= *s && lsn < s + b.len() as u64)
    }

    /// The chunk (first LSN, bytes) holding `lsn`, shared.
    pub(crate) fn chunk_containing(&self, lsn: u64) -> Option<&(u64, Bytes)> {
        self.chunk_at(lsn)
    }

    /// `len` bytes at `lsn` when fed and inside one chunk (always so within a page).
    pub(crate) fn slice(&self, lsn: u64, len: usize) -> Option<&[u8]> {
        if len == 0 {
            return (lsn >= self.start && lsn <= self.end).then_some(&[][..]);
        }
        let (s, b) = self.chunk_at(lsn)?;
        let off = (lsn - s) as usize;
        b.get(off..off.checked_add(len)?)
    }

    /// Like [`Self::slice`] but shares the bytes (no copy).
    pub(crate) fn slice_shared(&self, lsn: u64, len: usize) -> Option<Bytes> {
        let (s, b) = self.chunk_at(lsn)?;
        let off = (lsn - s) as usize;
        let end = off.checked_add(len)?;
        (end <= b.len()).then(|| b.slice(off..end))
    }

    /// Drops whole chunks that end at or before the page holding `keep`.
    pub(crate) fn drop_before(&mut self, keep: u64) {
        // Never drop part of a page: a partial last page must stay to be joined.
        let keep = keep - keep % BLCKSZ;
        while let Some((s, b)) = self.chunks.front() {
            let e = s + b.len() as u64;
            if e > keep {
                break;
            }
            self.start = e;
            if let Some((_, b)) = self.chunks.pop_front() {
                // Unique (no record still refers to it) and heap-backed: keep it for reuse.
                if let Ok(m) = b.try_into_mut() {
                    let v: Vec<u8> = m.into();
                    if self
                        .free
                        .as_ref()
                        .is_none_or(|f| f.capacity() < v.capacity())
                    {
                        self.free = Some(v);
                    }
                }
            }
        }
    }

    /// LSN of the first byte held.
    pub(crate) fn start(&self) -> u64 {
        self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(at: u64, n: usize) -> Vec<u8> {
        (0..n as u64).map(|i| ((at + i) % 251) as u8).collect()
    }

    /// Whatever the feed sizes, every page is readable as one slice with the right bytes.
    #[test]
    fn pages_never_split_across_chunks() {
        for sizes in [
            vec![8192usize, 8192, 8192],
            vec![100, 9000, 7, 8000, 20000, 3],
            vec![1; 300],
            vec![8191, 2, 8191, 1, 16384],
            vec![5000, 5000, 5000, 5000, 5000],
        ] {
            let base = 3 * BLCKSZ;
            let mut buf = ChunkBuf::new(base);
            let mut at = base;
            for n in &sizes {
                buf.push(Bytes::from(pattern(at, *n)));
                at += *n as u64;
                assert_eq!(buf.end(), at);
                let mut page = base;
                while page < at {
                    let len = (at - page).min(BLCKSZ) as usize;
                    let got = buf.slice(page, len).unwrap_or_else(|| {
                        panic!("page {page} len {len} split after feeds {sizes:?}")
                    });
                    assert_eq!(got, pattern(page, len).as_slice());
                    page += BLCKSZ;
                }
            }
        }
    }

    #[test]
    fn unfed_and_dropped_bytes_are_absent() {
        let mut buf = ChunkBuf::new(0);
        buf.push(Bytes::from(pattern(0, 3 * BLCKSZ as usize)));
        assert!(buf.slice(3 * BLCKSZ, 1).is_none());
        assert!(buf.slice(3 * BLCKSZ - 4, 8).is_none());
        buf.drop_before(BLCKSZ);
        // One chunk held all three pages: nothing can be dropped yet.
        assert!(buf.slice(0, 4).is_some());
        buf.push(Bytes::from(pattern(3 * BLCKSZ, 10)));
        buf.drop_before(3 * BLCKSZ);
        assert!(buf.slice(0, 4).is_none());
        assert_eq!(buf.start(), 3 * BLCKSZ);
        assert_eq!(
            buf.slice_shared(3 * BLCKSZ + 2, 4).unwrap().as_ref(),
            &pattern(3 * BLCKSZ + 2, 4)[..]
        );
    }

    #[test]
    fn dropped_chunks_are_reused() {
        let mut buf = ChunkBuf::new(0);
        let mut v = buf.take_vec(2 * BLCKSZ as usize);
        v.extend_from_slice(&pattern(0, 2 * BLCKSZ as usize));
        let ptr = v.as_ptr();
        buf.push(Bytes::from(v));
        buf.push(Bytes::from(pattern(2 * BLCKSZ, 10)));
        buf.drop_before(2 * BLCKSZ);
        let again = buf.take_vec(BLCKSZ as usize);
        assert_eq!(again.as_ptr(), ptr);
        assert_eq!(
            buf.slice(2 * BLCKSZ, 10).unwrap(),
            pattern(2 * BLCKSZ, 10).as_slice()
        );
    }
}
