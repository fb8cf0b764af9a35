//! Whole ranges worked on where they are decoded: each worker hands a [`RangeWork`] every
//! record of a range and sends what it made, so that only its result crosses threads.
//!
//! The ranges, the checks of every page and record, and the joints between ranges are those of
//! the record path (the module above): a range's result is used only when its first record
//! starts where the previous range's last one ended and links back to it. A range the work
//! refuses, a joint that does not hold, or a worker that stops early ends the ranges; the
//! caller's one-thread reader resumes after the last range used ([`Parallel::fallback`]).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use bytes::Bytes;

use super::{Parallel, Plan};
use crate::lsn::{Lsn, TimelineId};
use crate::wal::fast::{ResumeState, Step};
use crate::wal::record::DecodedRecord;

/// Per-range work done on a worker thread: given every record of one range in WAL order.
pub trait RangeWork: Send + 'static {
    /// What the range yields.
    type Out: Send + 'static;
    /// Takes one record; `false` when the work cannot take it here (the range is then read
    /// again on the caller's thread, which says what is wrong).
    fn record(&mut self, rec: &DecodedRecord) -> bool;
    /// What the range yielded.
    fn finish(self) -> Self::Out;
}

/// Ranges a worker may have done ahead of the caller (their results are held in memory).
const AHEAD: usize = 3;

/// What a worker sends for one range.
struct Done<O> {
    /// The result, when the range held records and the work took them all.
    out: Option<O>,
    /// The first record's LSN and `xl_prev`.
    first: Option<(Lsn, Lsn)>,
    /// The timeline of the first page the range's fast path checked.
    first_tli: Option<TimelineId>,
    /// Where things stand after the range's last record.
    state: Option<ResumeState>,
    /// The range ended at the next range (else its fast path stopped early).
    whole: bool,
    /// The work refused a record.
    refused: bool,
}

impl Parallel {
    /// Works the ranges with `make()` on the worker threads and hands their results to `take`
    /// in WAL order while it returns `true`. Afterwards [`Self::fallback`] resumes after the
    /// last range taken. Only before the first record was asked for; else nothing is done.
    pub(crate) fn take_ranges<W, F>(&mut self, make: F, mut take: impl FnMut(W::Out) -> bool)
    where
        W: RangeWork,
        F: Fn() -> W + Send + Clone + 'static,
    {
        if self.started {
            return;
        }
        self.started = true;
        let n = self.workers.min(self.plan.ranges());
        let mut links: Vec<Receiver<Done<W::Out>>> = Vec::with_capacity(n);
        for w in 0..n {
            let (tx, rx) = sync_channel(AHEAD);
            let plan = self.plan.clone();
            let make = make.clone();
            let payloads = self.block_payloads;
            let spawned = std::thread::Builder::new()
                .name(format!("fv-wal-{w}"))
                .spawn(move || work(&plan, w, n, payloads, &make, &tx));
            if spawned.is_err() {
                return;
            }
            links.push(rx);
        }
        for r in 0..self.plan.ranges() {
            let Some(link) = links.get(r % n) else { return };
            let Ok(d) = link.recv() else { return };
            // Ranges that end before the next record (the rest of a segment after an
            // XLOG_SWITCH, or inside a long record): what they sent is not used.
            let passed = match (&self.cur, self.plan.bounds.get(r)) {
                (Some(c), Some(&end)) => self.record_at(c.next) >= end,
                _ => false,
            };
            if passed {
                continue;
            }
            if d.refused {
                return;
            }
            let (Some(out), Some(first)) = (d.out, d.first) else {
                // No record starts in this range: only a whole one can be passed over.
                if d.whole {
                    continue;
                }
                return;
            };
            if r > 0 && !self.joins_at(first, d.first_tli) {
                return;
            }
            let Some(state) = d.state else { return };
            let sysid = state
                .sysid
                .or_else(|| self.cur.as_ref().and_then(|c| c.sysid));
            self.cur = Some(ResumeState { sysid, ..state });
            if !take(out) || !d.whole {
                return;
            }
        }
    }

    /// Whether a range whose first record is `first` (its LSN and `xl_prev`) on a page of
    /// timeline `first_tli` continues the records used so far exactly as one thread would.
    fn joins_at(&self, first: (Lsn, Lsn), first_tli: Option<TimelineId>) -> bool {
        let Some(cur) = &self.cur else { return false };
        let tli_ok = match (cur.latest_tli, first_tli) {
            (Some(t), Some(f)) => f >= t,
            _ => false,
        };
        first.0 .0 == self.record_at(cur.next) && first.1 .0 == cur.prev && tli_ok
    }
}

/// A worker: works ranges `w`, `w + n`, `w + 2n`, … in turn and sends each one's result;
/// returns when the ranges are done or the caller hung up.
fn work<W: RangeWork>(
    plan: &Plan,
    w: usize,
    n: usize,
    payloads: bool,
    make: &impl Fn() -> W,
    tx: &SyncSender<Done<W::Out>>,
) {
    let mut pool: Vec<Bytes> = Vec::new();
    let mut rec = DecodedRecord::empty();
    let mut r = w;
    while r < plan.ranges() {
        let mut fp = plan.range_path(r, payloads, std::mem::take(&mut pool));
        let mut work = make();
        let mut first = None;
        let mut refused = false;
        let whole = loop {
            match fp.next_into(&mut rec) {
                Step::Record => {
                    first.get_or_insert((rec.lsn, rec.prev));
                    if !work.record(&rec) {
                        refused = true;
                        break false;
                    }
                }
                Step::RangeEnd => break true,
                Step::Handover(_) => break false,
            }
        };
        let done = Done {
            out: (first.is_some() && !refused).then(|| work.finish()),
            first,
            first_tli: fp.first_tli(),
            state: fp.state(),
            whole,
            refused,
        };
        if tx.send(done).is_err() {
            return;
        }
        pool = fp.take_pool();
        r += n;
    }
}
