//! The fast path on several threads: the WAL cut into ranges that worker threads decode side by
//! side, handed to the caller in WAL order with every joint checked; at anything else the
//! one-thread fast path takes over at the last record handed out.
//!
//! Each range is decoded by a [`FastPath`] of its own that starts at the range's first page
//! (past a record continued from the range before) and stops before the first record that
//! starts in the next range; the record that crosses into it belongs to the earlier range.
//! Every segment boundary is a range boundary, and every worker requires the version and the
//! system identifier of the first segment header, so each worker makes every check the
//! one-thread path makes, and the joints between ranges are checked here: the first record of
//! a range must start where the previous range's last one ended and link back to it
//! (`xl_prev`), and its page's timeline must not go back. Whenever a worker stops early (the
//! end of WAL, a damaged or unusual file, the requested end), a joint does not hold, or a
//! worker is gone, the one-thread fast path resumes after the last record handed out
//! ([`FastPath::resuming`]) and says what the bytes are: the records, the end of WAL and the
//! errors are the one-thread reader's by construction.

use std::fs::File;
use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use bytes::Bytes;

use crate::lsn::{Lsn, SystemId, TimelineId, XLOG_BLCKSZ};
use crate::wal::dir::WalDir;
use crate::wal::fast::{FastPath, ResumeState, Step};
use crate::wal::page::{PgVersion, XLP_LONG_HEADER};
use crate::wal::record::DecodedRecord;

pub(crate) mod ranges;

/// Bytes of WAL per range: a divisor of every segment size (1 MB and up).
pub(crate) const RANGE: u64 = 512 << 10;
/// Bytes of WAL per range when whole ranges are worked on the workers ([`ranges::RangeWork`]), or a
/// segment when smaller: on 1.2 GB of record-dense WAL, 2 MB ranges cost half the system time
/// of 512 KB ones (each range opens its file and starts reading afresh).
pub const WORK_RANGE: u64 = 2 << 20;
/// Records per batch handed from a worker to the caller.
const BATCH: usize = 256;
/// Batches a worker may have waiting: more than a range of record-dense WAL holds (about 20
/// batches of pgbench records), so that a worker finishes its range and starts its next while
/// the caller is still on the range before (with 8, a worker waited for the caller and the
/// two workers took turns).
const AHEAD: usize = 24;
/// Batches waiting when records keep block data and images: these hold slices of the chunks
/// read, so this bounds memory (`compare --former-wal-dir` on 2 million lost commits peaked at
/// 49 MB with 8, 64 MB with 24).
const AHEAD_WITH_PAYLOADS: usize = 8;
/// The most worker threads.
const MAX_WORKERS: usize = 8;

/// A run of records decoded by a worker, with where its fast path stood after the last one.
struct Batch {
    recs: Vec<DecodedRecord>,
    len: usize,
    state: ResumeState,
    /// The timeline of the first page the range's fast path checked.
    first_tli: Option<TimelineId>,
}

/// What a worker sends for one range: batches, then how the range ended.
enum Msg {
    Batch(Batch),
    /// The range ended at the next range (`true`) or its fast path stopped early (`false`).
    Done(bool),
}

/// One worker: its records, and the way back for emptied batches.
struct Link {
    rx: Receiver<Msg>,
    back: SyncSender<Vec<DecodedRecord>>,
}

/// What the workers decode: the ranges, and what every page must show.
#[derive(Clone)]
struct Plan {
    dir: WalDir,
    start: Lsn,
    end: Option<Lsn>,
    /// Range boundaries after `start`; the last range has none.
    bounds: Vec<u64>,
    version: PgVersion,
    sysid: SystemId,
    /// Where the first range resumes, when the plan starts after records already read
    /// ([`Parallel::plan_resuming`]).
    resume: Option<ResumeState>,
}

impl Plan {
    /// How many ranges there are.
    fn ranges(&self) -> usize {
        self.bounds.len() + 1
    }

    /// A fast path over range `r` alone, reusing the chunk buffers `pool`.
    fn range_path(&self, r: usize, payloads: bool, pool: Vec<Bytes>) -> FastPath {
        let start = match r.checked_sub(1) {
            Some(prev) => Lsn(self.bounds[prev]),
            None => self.start,
        };
        let path = match (&self.resume, r) {
            (Some(st), 0) => FastPath::resuming(&self.dir, st, self.end, payloads),
            _ => FastPath::new(&self.dir, start, self.end, payloads),
        };
        path.stop_at(self.bounds.get(r).copied())
            .expecting(self.version, self.sysid)
            .with_pool(pool)
    }
}

/// The parallel fast path (see the module's documentation).
pub(crate) struct Parallel {
    plan: Plan,
    workers: usize,
    block_payloads: bool,
    links: Vec<Link>,
    started: bool,
    /// The range whose records are being handed out.
    range: usize,
    /// No batch of `range` received yet.
    range_fresh: bool,
    batch: Option<Batch>,
    /// Records of `batch` handed out.
    pos: usize,
    /// Where things stand after the last record of the last batch handed out.
    cur: Option<ResumeState>,
}

impl Parallel {
    /// A parallel reader of `[start, end)` over `dir` with `workers` threads and ranges of
    /// `range` bytes, or `None` when there is too little plain WAL to share out (then the
    /// one-thread fast path is as quick). Nothing starts before the first record is asked for.
    pub(crate) fn plan(
        dir: &WalDir,
        start: Lsn,
        end: Option<Lsn>,
        workers: usize,
        range: u64,
    ) -> Option<Parallel> {
        Self::plan_at(dir, start, None, end, workers, range)
    }

    /// [`Self::plan`] for the records after those a fast path read up to `st` (its first range
    /// resumes exactly there, [`FastPath::resuming`]).
    pub(crate) fn plan_resuming(
        dir: &WalDir,
        st: &ResumeState,
        end: Option<Lsn>,
        workers: usize,
        range: u64,
    ) -> Option<Parallel> {
        Self::plan_at(dir, Lsn(st.next), Some(st), end, workers, range)
    }

    fn plan_at(
        dir: &WalDir,
        start: Lsn,
        resume: Option<&ResumeState>,
        end: Option<Lsn>,
        workers: usize,
        range: u64,
    ) -> Option<Parallel> {
        let seg = dir.segment_size();
        let workers = workers.min(MAX_WORKERS);
        if workers < 2 || range == 0 || range % XLOG_BLCKSZ as u64 != 0 || seg % range != 0 {
            return None;
        }
        // The plain, full-size segments present from the start on (up to the requested end).
        let first = start.0 / seg;
        let last_wanted = end.map_or(u64::MAX, |e| e.0.saturating_sub(1) / seg);
        let mut last = None;
        let mut segno = first;
        while segno <= last_wanted {
            match dir.find_segment(segno) {
                Some((path, name)) if !name.contains('.') => {
                    if std::fs::metadata(&path).ok()?.len() != seg {
                        break;
                    }
                    last = Some(segno);
                }
                _ => break,
            }
            segno += 1;
        }
        let stop = (last? + 1) * seg;
        let mut bounds = Vec::new();
        let mut b = start.0 - start.0 % range + range;
        while b < stop {
            bounds.push(b);
            b += range;
        }
        if bounds.len() < 2 * workers {
            return None;
        }
        // The first segment header the one-thread path reads: its version and system id.
        let header_seg = if start.0 % seg < XLOG_BLCKSZ as u64 {
            first
        } else {
            first + 1
        };
        if header_seg > last? {
            return None;
        }
        let (version, sysid) = match resume.map(|st| (st.version, st.sysid)) {
            Some((Some(v), Some(s))) => (v, s),
            _ => first_header(dir, header_seg)?,
        };
        Some(Parallel {
            plan: Plan {
                dir: dir.clone(),
                start,
                end,
                bounds,
                version,
                sysid,
                resume: resume.cloned(),
            },
            workers,
            block_payloads: true,
            links: Vec::new(),
            started: false,
            range: 0,
            range_fresh: true,
            batch: None,
            pos: 0,
            cur: resume.cloned(),
        })
    }

    /// Whether block data and images are kept (set before the first record).
    pub(crate) fn set_block_payloads(&mut self, keep: bool) {
        if !self.started {
            self.block_payloads = keep;
        }
    }

    /// Moves to the next record ([`Self::current`]); `false` when the one-thread fast path
    /// must take over ([`Self::fallback`]).
    pub(crate) fn advance(&mut self) -> bool {
        loop {
            if self.step_in_batch() {
                return true;
            }
            if let Some(b) = self.batch.take() {
                self.finish_batch(b);
            }
            if !self.started && !self.spawn() {
                return false;
            }
            let Some(link) = self.links.get(self.range % self.links.len().max(1)) else {
                return false;
            };
            match link.rx.recv() {
                Ok(Msg::Batch(b)) => {
                    if self.range_fresh {
                        self.range_fresh = false;
                        if self.range > 0 && !self.joins(&b) {
                            return false;
                        }
                    }
                    self.batch = Some(b);
                    self.pos = 0;
                }
                // A range can hold no record start (inside a record longer than a range):
                // the next range's first record is checked against the last one handed out.
                Ok(Msg::Done(true)) if self.range < self.plan.bounds.len() => {
                    self.range += 1;
                    self.range_fresh = true;
                    if !self.skip_passed_ranges() {
                        return false;
                    }
                }
                // Stopped early, or the worker is gone.
                _ => return false,
            }
        }
    }

    /// Moves to the next record of the batch in hand ([`Self::current`]); `false` (nothing
    /// moved) when the batch is used up or there is none: then [`Self::advance`].
    pub(crate) fn step_in_batch(&mut self) -> bool {
        match &self.batch {
            Some(b) if self.pos < b.len => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    /// Whether every record of the batch in hand was handed out (or there is none): then
    /// [`Self::fallback`] resumes right after the last record handed out.
    pub(crate) fn between_batches(&self) -> bool {
        self.batch.as_ref().is_none_or(|b| self.pos >= b.len)
    }

    /// The record [`Self::advance`] moved to.
    pub(crate) fn current(&self) -> Option<&DecodedRecord> {
        let b = self.batch.as_ref()?;
        b.recs.get(self.pos.checked_sub(1)?)
    }

    /// The one-thread fast path after the last record handed out; the workers stop.
    pub(crate) fn fallback(&mut self) -> FastPath {
        self.links.clear();
        if let Some(b) = self.batch.take() {
            // Only whole batches are handed over (a fall-back comes when one is used up).
            self.finish_batch(b);
        }
        let p = &self.plan;
        match &self.cur {
            Some(st) => FastPath::resuming(&p.dir, st, p.end, self.block_payloads),
            None => FastPath::new(&p.dir, p.start, p.end, self.block_payloads),
        }
    }

    /// The version, once a record was handed out.
    pub(crate) fn version(&self) -> Option<PgVersion> {
        self.cur.as_ref().and_then(|c| c.version)
    }

    /// The system identifier, once read from a segment header.
    pub(crate) fn system_id(&self) -> Option<SystemId> {
        self.cur.as_ref().and_then(|c| c.sysid)
    }

    /// A used-up batch: where things stand after it, and its memory back to its worker.
    fn finish_batch(&mut self, b: Batch) {
        let sysid = b
            .state
            .sysid
            .or_else(|| self.cur.as_ref().and_then(|c| c.sysid));
        self.cur = Some(ResumeState { sysid, ..b.state });
        if let Some(link) = self.links.get(self.range % self.links.len().max(1)) {
            let _ = link.back.try_send(b.recs);
        }
    }

    /// Skips the ranges that end before the next record (after an XLOG_SWITCH the rest of its
    /// segment holds no WAL; a record can also span whole ranges): what their workers sent is
    /// not used. `false` when a worker is gone.
    fn skip_passed_ranges(&mut self) -> bool {
        let Some(next) = self.cur.as_ref().map(|c| self.record_at(c.next)) else {
            return true;
        };
        while let Some(&range_end) = self.plan.bounds.get(self.range) {
            if next < range_end {
                break;
            }
            let Some(link) = self.links.get(self.range % self.links.len().max(1)) else {
                return false;
            };
            loop {
                match link.rx.recv() {
                    Ok(Msg::Batch(b)) => {
                        let _ = link.back.try_send(b.recs);
                    }
                    Ok(Msg::Done(_)) => break,
                    Err(_) => return false,
                }
            }
            self.range += 1;
        }
        true
    }

    /// Where a record looked for at `next` starts: past the page header at a page start.
    fn record_at(&self, next: u64) -> u64 {
        let seg = self.plan.dir.segment_size();
        let page = XLOG_BLCKSZ as u64;
        if next % page == 0 {
            next + if next % seg == 0 { 40 } else { 24 }
        } else {
            next
        }
    }

    /// Whether the first batch of a range continues the records handed out so far exactly as
    /// the one-thread path would.
    fn joins(&self, b: &Batch) -> bool {
        let (Some(cur), Some(first)) = (&self.cur, b.recs.first()) else {
            return false;
        };
        let at = self.record_at(cur.next);
        let tli_ok = match (cur.latest_tli, b.first_tli) {
            (Some(t), Some(f)) => f >= t,
            _ => false,
        };
        b.len > 0 && first.lsn.0 == at && first.prev.0 == cur.prev && tli_ok
    }

    /// Starts the workers; `false` when a thread cannot be started.
    fn spawn(&mut self) -> bool {
        self.started = true;
        let n = self.workers.min(self.plan.bounds.len() + 1);
        for w in 0..n {
            let ahead = if self.block_payloads {
                AHEAD_WITH_PAYLOADS
            } else {
                AHEAD
            };
            let (tx, rx) = sync_channel(ahead);
            let (back, back_rx) = sync_channel(ahead);
            let plan = self.plan.clone();
            let payloads = self.block_payloads;
            let spawned = std::thread::Builder::new()
                .name(format!("fv-wal-{w}"))
                .spawn(move || work(&plan, w, n, payloads, &tx, &back_rx));
            if spawned.is_err() {
                self.links.clear();
                return false;
            }
            self.links.push(Link { rx, back });
        }
        true
    }
}

/// The version and system identifier in the long header of segment `segno`.
fn first_header(dir: &WalDir, segno: u64) -> Option<(PgVersion, SystemId)> {
    let (path, _) = dir.find_segment(segno)?;
    let mut h = [0u8; 40];
    File::open(path).ok()?.read_exact(&mut h).ok()?;
    let version = PgVersion::from_magic(u16::from_le_bytes([h[0], h[1]]))?;
    if u16::from_le_bytes([h[2], h[3]]) & XLP_LONG_HEADER == 0 {
        return None;
    }
    let sysid = u64::from_le_bytes(h[24..32].try_into().ok()?);
    Some((version, SystemId(sysid)))
}

/// A worker: decodes ranges `w`, `w + n`, `w + 2n`, … in turn and sends them; returns when the
/// ranges are done or the caller hung up.
fn work(
    plan: &Plan,
    w: usize,
    n: usize,
    payloads: bool,
    tx: &SyncSender<Msg>,
    back: &Receiver<Vec<DecodedRecord>>,
) {
    let mut pool: Vec<Bytes> = Vec::new();
    let mut r = w;
    while r < plan.ranges() {
        let mut fp = plan.range_path(r, payloads, std::mem::take(&mut pool));
        // A batch's records are sized for a whole batch at once: grown record by record, a
        // new batch's vector was reallocated (and its records copied) eight times.
        let fresh = || Vec::with_capacity(BATCH);
        let mut recs = back.try_recv().unwrap_or_else(|_| fresh());
        let mut len = 0;
        let whole = loop {
            if recs.len() <= len {
                recs.push(DecodedRecord::empty());
            }
            let step = fp.next_into(&mut recs[len]);
            if matches!(step, Step::Record) {
                len += 1;
                if len < BATCH {
                    continue;
                }
            }
            if len > 0 {
                let Some(state) = fp.state() else { return };
                let b = Batch {
                    recs: std::mem::replace(&mut recs, back.try_recv().unwrap_or_else(|_| fresh())),
                    len,
                    state,
                    first_tli: fp.first_tli(),
                };
                if tx.send(Msg::Batch(b)).is_err() {
                    return;
                }
                len = 0;
            }
            match step {
                Step::Record => {}
                Step::RangeEnd => break true,
                Step::Handover(_) => break false,
            }
        };
        if tx.send(Msg::Done(whole)).is_err() {
            return;
        }
        pool = fp.take_pool();
        r += n;
    }
}

#[cfg(test)]
mod tests;
