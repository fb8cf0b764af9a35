//! Decoding on two threads. A reading thread reads the segment files and finds the records
//! (page headers, continuation pages, record headers: the sequential part); the caller's
//! thread checks their CRC-32C and parses them, unless the reading thread is ahead, which then
//! checks CRCs itself while the bytes are in its cache. The load balances itself, and WAL is
//! decoded at up to twice the rate of one thread (BENCHMARKS.md, "WAL decoding").
//!
//! Records cross threads as [`Frame`]s in batches, with the chunks that hold their bytes, so
//! a chunk's reference count is touched once per batch by the reading thread, not once per
//! record. The channel is bounded: memory stays flat whatever the amount of WAL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;

use bytes::Bytes;

use crate::lsn::{Lsn, SystemId};
use crate::wal::decoder::{
    check_frame_crc, parse_frame_in, EndOfWal, Frame, FramePoll, WalDecoder,
};
use crate::wal::dir::{Fill, SegmentFeeder, WalDir, CHUNK};
use crate::wal::error::{FileCtx, WalError};
use crate::wal::page::PgVersion;
use crate::wal::record::DecodedRecord;

/// Frames per batch: enough that hand-offs are rare, few enough to keep batches in cache.
const BATCH_FRAMES: usize = 256;
/// A batch is sent early once it holds this many chunks (records with full-page images).
const BATCH_CHUNKS: usize = 8;
/// Batches in flight between the threads.
const BATCHES_IN_FLIGHT: usize = 4;
/// With this many batches waiting, the reading thread checks CRCs itself (measured: 1 and 2
/// do alike; 0 would leave the caller's thread idle, and a large value the reading thread).
pub(crate) const AHEAD: usize = 1;

/// How the reading thread ended.
#[derive(Debug)]
enum Ending {
    /// The end of WAL.
    End(EndOfWal),
    /// An error (I/O, missing segment, input that is not WAL).
    Err(WalError),
}

/// Frames and the chunks holding their bytes; the last batch says how reading ended.
#[derive(Debug, Default)]
struct Batch {
    chunks: Vec<(u64, Bytes)>,
    frames: Vec<Frame>,
    ending: Option<Ending>,
    /// What the decoder has learnt from long page headers so far.
    seg_size: Option<u64>,
    sysid: Option<SystemId>,
}

impl Batch {
    /// An empty batch with room for a full one (no reallocation while it fills).
    fn new() -> Batch {
        Batch {
            chunks: Vec::with_capacity(BATCH_CHUNKS + 4),
            frames: Vec::with_capacity(BATCH_FRAMES),
            ..Batch::default()
        }
    }
}

/// The caller's half: receives batches and parses their frames in order.
pub(crate) struct Pipeline {
    rx: Option<Receiver<Batch>>,
    /// Batches sent and not yet received: the reading thread's measure of its lead.
    queued: Arc<AtomicUsize>,
    /// Read buffers the records no longer use, back to the reading thread.
    back: SyncSender<Vec<u8>>,
    chunks: Vec<(u64, Bytes)>,
    frames: std::vec::IntoIter<Frame>,
    ending: Option<Ending>,
    /// The directory, to name the file of a record that fails to parse.
    dir: WalDir,
}

/// What the caller's half learnt once reading ended.
#[derive(Debug, Default)]
pub(crate) struct Learnt {
    pub(crate) end: Option<EndOfWal>,
    pub(crate) seg_size: Option<u64>,
    pub(crate) sysid: Option<SystemId>,
    pub(crate) version: Option<PgVersion>,
}

impl Pipeline {
    /// Starts the reading thread; `None` when it cannot be spawned.
    pub(crate) fn start(
        decoder: WalDecoder,
        files: SegmentFeeder,
        dir: WalDir,
        ahead: usize,
    ) -> Option<Pipeline> {
        let (tx, rx) = sync_channel::<Batch>(BATCHES_IN_FLIGHT);
        let (back, back_rx) = sync_channel::<Vec<u8>>(BATCHES_IN_FLIGHT * BATCH_CHUNKS);
        let queued = Arc::new(AtomicUsize::new(0));
        let lead = queued.clone();
        std::thread::Builder::new()
            .name("wal-reader".into())
            .spawn(move || read_frames(decoder, files, tx, back_rx, lead, ahead))
            .ok()?;
        Some(Pipeline {
            rx: Some(rx),
            queued,
            back,
            chunks: Vec::new(),
            frames: Vec::new().into_iter(),
            ending: None,
            dir,
        })
    }

    /// The name of the file holding `lsn`.
    fn file_name(&self, lsn: Lsn) -> Option<String> {
        let segno = lsn.0 / self.dir.segment_size();
        self.dir.find_segment(segno).map(|(_, name)| name)
    }

    /// Stops the reading thread (its next send fails) and drops what it sent.
    fn stop(&mut self) {
        self.rx = None;
        self.frames = Vec::new().into_iter();
        self.chunks.clear();
        self.ending = None;
    }

    /// The next record, an error, or `None` at the end (then see `learnt`).
    pub(crate) fn next(&mut self, learnt: &mut Learnt) -> Option<Result<DecodedRecord, WalError>> {
        loop {
            if let Some(f) = self.frames.next() {
                learnt.version = Some(f.version);
                let checked = if f.crc_checked {
                    Ok(())
                } else {
                    check_frame_crc(&f, &self.chunks)
                };
                if let Err(mut end) = checked {
                    // WAL ends here; what the reading thread found past it is garbage.
                    end.file = self.file_name(f.lsn);
                    self.stop();
                    learnt.end = Some(end);
                    return None;
                }
                let parsed = parse_frame_in(&f, &self.chunks, &FileCtx(None));
                if let Err(e) = parsed {
                    let e = match self.file_name(f.lsn) {
                        Some(name) => e.with_file(&name),
                        None => e,
                    };
                    self.stop();
                    return Some(Err(e));
                }
                return Some(parsed);
            }
            match self.ending.take() {
                Some(Ending::End(end)) => {
                    learnt.end = Some(end);
                    self.stop();
                    return None;
                }
                Some(Ending::Err(e)) => {
                    self.stop();
                    return Some(Err(e));
                }
                None => {}
            }
            // Hand back the buffers whose records are all gone (the caller may keep some).
            for (_, b) in self.chunks.drain(..) {
                if let Ok(m) = b.try_into_mut() {
                    let _ = self.back.try_send(m.into());
                }
            }
            let Some(rx) = &self.rx else {
                return None;
            };
            let Ok(batch) = rx.recv() else {
                return Some(Err(WalError::InvalidRecord {
                    what: "the WAL reading thread stopped unexpectedly".into(),
                    lsn: Lsn(0),
                    file: FileCtx(None),
                }));
            };
            self.queued.fetch_sub(1, Ordering::Relaxed);
            learnt.seg_size = batch.seg_size.or(learnt.seg_size);
            learnt.sysid = batch.sysid.or(learnt.sysid);
            self.chunks = batch.chunks;
            self.frames = batch.frames.into_iter();
            self.ending = batch.ending;
        }
    }
}

/// The reading thread: reads, finds and checks records, and sends them in batches.
fn read_frames(
    mut decoder: WalDecoder,
    mut files: SegmentFeeder,
    tx: SyncSender<Batch>,
    back: Receiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    ahead: usize,
) {
    let mut batch = Batch::new();
    loop {
        let ending = match decoder.poll_frame() {
            Ok(FramePoll::Frame(mut f)) => {
                // CRCs are checked here while the bytes are in this core's cache, when this
                // thread is ahead; else they are left to the caller's thread. Either way
                // each is checked once, and the load balances itself.
                let check = if queued.load(Ordering::Relaxed) >= ahead {
                    f.crc_checked = true;
                    decoder.check_crc(&f)
                } else {
                    Ok(())
                };
                match check {
                    Err(end) => Ending::End(end),
                    Ok(()) => {
                        decoder.share_chunks(&f, &mut batch.chunks);
                        batch.frames.push(f);
                        let full = batch.frames.len() >= BATCH_FRAMES
                            || batch.chunks.len() >= BATCH_CHUNKS;
                        if full && !send(&tx, &queued, &decoder, &mut batch) {
                            return; // the caller is gone
                        }
                        continue;
                    }
                }
            }
            Ok(FramePoll::NeedMore) => {
                let mut buf = match back.try_recv() {
                    Ok(b) => b,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => {
                        decoder.take_buffer(CHUNK)
                    }
                };
                match files.fill(&mut buf, CHUNK) {
                    Ok(Fill::Data { at, name }) => {
                        if let Some(name) = name {
                            decoder.set_source_name(Lsn(at), &name);
                        }
                        match decoder.feed_vec(Lsn(at), buf) {
                            Ok(()) => continue,
                            Err(e) => Ending::Err(e),
                        }
                    }
                    Ok(Fill::Eof) => {
                        decoder.finish();
                        continue;
                    }
                    Err(e) => Ending::Err(e),
                }
            }
            Ok(FramePoll::End(end)) => Ending::End(end),
            Err(e) => Ending::Err(e),
        };
        batch.ending = Some(ending);
        send(&tx, &queued, &decoder, &mut batch);
        return;
    }
}

/// Sends `batch` (leaving an empty one in its place) with what the decoder has learnt;
/// `false` when the caller is gone.
fn send(
    tx: &SyncSender<Batch>,
    queued: &AtomicUsize,
    decoder: &WalDecoder,
    batch: &mut Batch,
) -> bool {
    let mut full = std::mem::replace(batch, Batch::new());
    full.seg_size = decoder.segment_size();
    full.sysid = decoder.system_id();
    queued.fetch_add(1, Ordering::Relaxed);
    tx.send(full).is_ok()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::lsn::{Lsn, TimelineId};
    use crate::wal::decoder::EndReason;
    use crate::wal::source::WalDir;

    use crate::wal::fixture::pg15_copy as fixture_copy;

    /// A record's CRC mismatch ends WAL at that record with the same [`EndOfWal`] whichever
    /// thread checks it: the reading thread (`ahead` 0), the caller's (`ahead` huge), or the
    /// one-thread reader.
    #[test]
    fn crc_mismatch_ends_wal_alike_on_either_thread() {
        let tmp = fixture_copy();
        let dir = WalDir::open(tmp.path(), TimelineId(1)).expect("open");
        let seg = dir.segment_size();
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wal/pg15/meta.json"),
            )
            .expect("meta.json"),
        )
        .expect("json");
        let start: Lsn = meta["start"].as_str().expect("start").parse().expect("lsn");
        let good: Vec<_> = dir
            .read_inline(start, None)
            .map(|r| r.expect("record"))
            .collect();
        // A small record in the middle of a page, well into the WAL.
        let victim = good
            .iter()
            .skip(good.len() / 2)
            .find(|r| r.xl_tot_len < 100 && r.lsn.0 % 8192 + 100 < 8192)
            .expect("a victim")
            .clone();
        let name = crate::wal::segment::segment_file_name_for(TimelineId(1), victim.lsn, seg);
        let path = tmp.path().join(&name);
        let mut bytes = std::fs::read(&path).expect("read");
        let off = (victim.lsn.0 % seg) as usize + victim.xl_tot_len as usize - 1;
        bytes[off] ^= 0x40;
        std::fs::write(&path, bytes).expect("write");

        let run = |ahead: Option<usize>| {
            let mut it = dir.reader(start, None, ahead);
            let lsns: Vec<_> = it.by_ref().map(|r| r.expect("record").lsn).collect();
            (lsns, it.end_of_wal().cloned().expect("an end"))
        };
        let inline = run(None);
        assert_eq!(inline.1.lsn, victim.lsn);
        assert!(
            matches!(inline.1.reason, EndReason::BadCrc { .. }),
            "{}",
            inline.1
        );
        assert_eq!(inline.1.file.as_deref(), Some(name.as_str()));
        assert!(inline.1.data_follows);
        let before: Vec<_> = good
            .iter()
            .map(|r| r.lsn)
            .take_while(|l| *l < victim.lsn)
            .collect();
        assert_eq!(inline.0, before);
        for ahead in [0, usize::MAX] {
            assert_eq!(run(Some(ahead)), inline, "ahead {ahead}");
        }
    }

    /// `next_record` lends the same records as the iterator, on one thread and on two; without
    /// block payloads only block data and images are left empty (their lengths still given).
    #[test]
    fn next_record_lends_what_the_iterator_returns() {
        let tmp = fixture_copy();
        let dir = WalDir::open(tmp.path(), TimelineId(1)).expect("open");
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wal/pg15/meta.json"),
            )
            .expect("meta.json"),
        )
        .expect("json");
        let start: Lsn = meta["start"].as_str().expect("start").parse().expect("lsn");
        let mut it = dir.read_inline(start, None);
        let want: Vec<_> = it.by_ref().map(|r| r.expect("record")).collect();
        let want_end = it.end_of_wal().cloned();
        assert!(want.len() > 100, "{} records", want.len());
        assert!(want.iter().any(|r| r.blocks.iter().any(|b| b.has_image)));
        assert!(want
            .iter()
            .any(|r| r.blocks.iter().any(|b| !b.data.is_empty())));
        let lend = |mut r: crate::wal::source::WalDirReader| {
            let mut got = Vec::new();
            while let Some(rec) = r.next_record() {
                got.push(rec.expect("record").clone());
            }
            (got, r.end_of_wal().cloned())
        };
        for ahead in [None, Some(0), Some(usize::MAX)] {
            let (got, end) = lend(dir.reader(start, None, ahead));
            assert_eq!(end, want_end, "ahead {ahead:?}");
            assert_eq!(got, want, "ahead {ahead:?}");
        }
        let (bare, end) = lend(dir.read_inline(start, None).without_block_payloads());
        assert_eq!(end, want_end);
        assert_eq!(bare.len(), want.len());
        for (b, w) in bare.iter().zip(&want) {
            let mut w = w.clone();
            for blk in w.blocks.iter_mut() {
                blk.data = bytes::Bytes::new();
                blk.image = Default::default();
            }
            assert_eq!(*b, w);
            assert_eq!(b.fpi_len(), w.fpi_len());
        }
    }
}
