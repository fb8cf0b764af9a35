//! Decoding the former timeline's WAL from any byte source into lost-transaction accounting.
//!
//! Three sources feed the same sans-IO decoder: the physical replication protocol, files read
//! over SQL (`pg_read_binary_file`), and a directory of segments. They differ only in how the
//! bytes arrive.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::lsn::{Lsn, TimelineId, Xid};
use crate::pg::connect_replication;
use crate::pg::error::PgError;
use crate::pg::replication::ReplicationOptions;
use crate::pg::session::Session;
use crate::pg::ConnParams;
use crate::wal::accounting::range::{RangeAccount, RangeAccountant};
use crate::wal::accounting::{Accountant, Detail, LostTransactions, Spare};
use crate::wal::capture::WalCapture;
use crate::wal::decoder::{EndOfWal, Poll, WalDecoder};
use crate::wal::segment::segment_file_name;
use crate::wal::source::{WalDir, WalDirReader, WORK_RANGE};
use crate::wal::standby::{Checkpoint, RunningXacts};
use crate::wal::tuplelog::TupleLog;
use crate::wal::xact::XactRecord;
use crate::wal::{DecodedRecord, RangeWork, RelFileLocator, WalError};

use super::lostlist::{ListError, ListTarget, ListWriter};

/// How many lost transactions a bounded scan keeps whole at each end of the list.
pub const INLINE_LOST_XIDS: usize = 100;

/// What a scan keeps besides the totals.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// The accountant's detail: [`Detail::Full`] when the row diff will use the touched
    /// tuples and every lost commit, else bounded (memory flat in the size of the loss).
    pub detail: Detail,
    /// Stream every lost commit to this file while decoding.
    pub list: Option<ListTarget>,
    /// Whether the new primary's first xid ([`Scan::new_side_first_xid`]) is needed (by the
    /// row diff): a scan that starts at the switchpoint then steps back to find it.
    pub horizon: bool,
    /// Keep the heap tuple images after the switchpoint ([`Scan::tuples`]) for the rows
    /// rebuilt from the WAL.
    pub tuples: bool,
    /// With [`Detail::Full`]: keep at most this many touched tuples (and tuple images); past
    /// it the scan falls back to bounded detail and keeps no tuples
    /// ([`LostTransactions::tuple_limit_exceeded`](crate::wal::lost::LostTransactions)).
    pub max_tuples: Option<u64>,
    /// Stop as soon as it is certain that the scan must start earlier (a lost transaction was
    /// running at the first RUNNING_XACTS record, a COMMIT PREPARED lost whose PREPARE was not
    /// read, or, with `horizon`, no xid before the switchpoint): [`Scan::cut_short`].
    pub stop_when_earlier_needed: bool,
}

impl ScanOptions {
    /// Every detail, no list file (the row diff; the new primary's side).
    pub fn full() -> ScanOptions {
        ScanOptions {
            detail: Detail::Full,
            list: None,
            horizon: true,
            tuples: false,
            max_tuples: None,
            stop_when_earlier_needed: false,
        }
    }

    /// Bounded detail ([`INLINE_LOST_XIDS`] at each end), and the list file when given.
    pub fn bounded(list: Option<ListTarget>) -> ScanOptions {
        ScanOptions {
            detail: Detail::Bounded {
                keep: INLINE_LOST_XIDS,
            },
            list,
            horizon: false,
            tuples: false,
            max_tuples: None,
            stop_when_earlier_needed: false,
        }
    }

    /// These options, stopping as soon as an earlier start is certainly needed when `cut`
    /// ([`Self::stop_when_earlier_needed`]).
    pub fn cut_short(&self, cut: bool) -> ScanOptions {
        ScanOptions {
            stop_when_earlier_needed: cut,
            ..self.clone()
        }
    }
}

impl Default for ScanOptions {
    fn default() -> ScanOptions {
        ScanOptions::full()
    }
}

/// Why the WAL could not be scanned.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The server refused or failed (privilege, removed segment, connection).
    #[error(transparent)]
    Pg(#[from] PgError),
    /// The bytes are not valid WAL where valid WAL was required.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The stream went quiet before the requested end.
    #[error("{target}: the WAL stream stopped at {at} before the end of WAL {end}")]
    Stalled {
        /// host:port.
        target: String,
        /// The last position received.
        at: Lsn,
        /// The position we waited for.
        end: Lsn,
    },
    /// The decoding task failed or could not start.
    #[error("WAL scan: {0}")]
    Task(String),
    /// The file for the complete list of lost transactions could not be written.
    #[error(transparent)]
    List(#[from] ListError),
    /// A WAL archive or directory could not deliver a file (or delivered a bad one).
    #[error(transparent)]
    Archive(#[from] crate::wal::archive::ArchiveError),
    /// A segment needed for the scan is not in `pg_wal` on the server.
    #[error("{target}: WAL segment {file} is no longer in pg_wal")]
    SegmentGone {
        /// host:port.
        target: String,
        /// The missing segment.
        file: String,
    },
}

/// What one scan found, and how far it got.
#[derive(Debug)]
pub struct Scan {
    /// Where decoding began (a segment or page boundary at or before the switchpoint).
    pub start: Lsn,
    /// The accounting of everything after the switchpoint.
    pub lost: LostTransactions,
    /// Where and why decoding stopped.
    pub end: Option<EndOfWal>,
    /// The WAL format version found in the page headers.
    pub pg_version: Option<u32>,
    /// The first xid the promoted standby could hand out: one past every xid the WAL before
    /// the switchpoint assigned or announced (records, subtransactions, RUNNING_XACTS and
    /// checkpoint `nextXid`). Row versions on the new primary at or after it are post-failover.
    pub new_side_first_xid: Option<Xid>,
    /// Relfilenodes created (SMGR CREATE) at or after the switchpoint: relations created or
    /// rewritten (TRUNCATE, VACUUM FULL, CLUSTER, rewriting ALTER TABLE) on this timeline.
    pub created_after_switchpoint: BTreeSet<RelFileLocator>,
    /// Transactions COMMIT PREPARED at or after the switchpoint whose PREPARE lies before
    /// the decoded range: the changes they made were not read.
    pub prepared_before_scan: Vec<Xid>,
    /// The complete list of lost commits, written and not yet renamed into place (dropped,
    /// it leaves no file).
    pub list: Option<ListWriter>,
    /// The heap tuple images after the switchpoint, when [`ScanOptions::tuples`] asked.
    pub tuples: Option<TupleLog>,
    /// The scan stopped early because it must start earlier
    /// ([`ScanOptions::stop_when_earlier_needed`]): its figures are partial.
    pub cut_short: bool,
    /// Ranges of the files accounted on worker threads (the rest was read record by record).
    pub ranges_taken: usize,
}

/// The relfilenode an SMGR CREATE record creates (rmgr 2, info 0x10), if `rec` is one.
pub fn smgr_created(rec: &DecodedRecord) -> Option<RelFileLocator> {
    if rec.rmid != crate::wal::rmgr::RM_SMGR_ID || rec.info & 0xF0 != 0x10 {
        return None;
    }
    let d = &rec.main_data;
    let u = |i: usize| {
        d.get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    Some(RelFileLocator {
        spc: u(0)?,
        db: u(4)?,
        rel: u(8)?,
    })
}

/// Tracks the next xid the standby knew of when it replayed up to the switchpoint.
#[derive(Debug, Default)]
struct XidHorizon {
    next: Option<u32>,
}

impl XidHorizon {
    /// `a` follows `b` in the circular 32-bit xid space (TransactionIdFollows).
    fn follows(a: u32, b: u32) -> bool {
        (a.wrapping_sub(b) as i32) > 0
    }

    fn saw_next(&mut self, next: u32) {
        if next < 3 {
            return; // invalid, bootstrap and frozen xids say nothing
        }
        if self.next.is_none_or(|n| Self::follows(next, n)) {
            self.next = Some(next);
        }
    }

    fn saw_xid(&mut self, xid: u32) {
        if xid >= 3 {
            self.saw_next(xid.wrapping_add(1).max(3));
        }
    }

    fn add(&mut self, rec: &DecodedRecord) {
        self.saw_xid(rec.xid.0);
        if let Ok(Some(x)) = XactRecord::parse(rec) {
            x.subxids.iter().for_each(|s| self.saw_xid(s.0));
        }
        if let Ok(Some(r)) = RunningXacts::parse(rec) {
            self.saw_next(r.next_xid.0);
        }
        if let Ok(Some(c)) = Checkpoint::parse(rec) {
            self.saw_next(c.next_xid.0);
        }
    }
}

/// What [`scan_wal`] does with one range of records on the worker thread that decoded it.
struct ScanRange {
    switchpoint: Lsn,
    account: RangeAccountant,
    horizon: XidHorizon,
    created: BTreeSet<RelFileLocator>,
    after_switchpoint: bool,
}

/// What a range yielded.
struct ScanRangeOut {
    account: RangeAccount,
    horizon: XidHorizon,
    created: BTreeSet<RelFileLocator>,
    /// Whether the range holds records at or after the switchpoint.
    after_switchpoint: bool,
}

impl ScanRange {
    fn new(switchpoint: Lsn, detail: Detail, spare: Spare) -> ScanRange {
        ScanRange {
            switchpoint,
            account: RangeAccountant::new(switchpoint, detail, spare),
            horizon: XidHorizon::default(),
            created: BTreeSet::new(),
            after_switchpoint: false,
        }
    }
}

impl RangeWork for ScanRange {
    type Out = ScanRangeOut;

    #[inline(always)] // once per record, into the worker's loop: a call's cost per record
    fn record(&mut self, rec: &DecodedRecord) -> bool {
        if rec.lsn < self.switchpoint {
            self.horizon.add(rec);
        } else {
            self.after_switchpoint = true;
            if let Some(loc) = smgr_created(rec) {
                self.created.insert(loc);
            }
        }
        // A record the accountant cannot read is read again on the caller's thread, which
        // reports it as the one-thread scan does.
        matches!(self.account.add(rec), Ok(true))
    }

    fn finish(self) -> ScanRangeOut {
        ScanRangeOut {
            account: self.account.finish(),
            horizon: self.horizon,
            created: self.created,
            after_switchpoint: self.after_switchpoint,
        }
    }
}

/// The decoder and the accountant, fed together.
struct Scanner<'c> {
    decoder: WalDecoder,
    /// Where the raw bytes are kept for an evidence bundle: timeline, segment size, capture.
    capture: Option<(TimelineId, u64, &'c WalCapture)>,
    accountant: Accountant,
    horizon: XidHorizon,
    switchpoint: Lsn,
    start: Lsn,
    created: BTreeSet<RelFileLocator>,
    list: Option<ListWriter>,
    tuples: Option<TupleLog>,
}

/// The tuple log for `opts`, when it asks for one.
fn tuple_log(opts: &ScanOptions) -> Option<TupleLog> {
    opts.tuples
        .then(|| TupleLog::with_limit(TupleLog::DEFAULT_LIMIT))
}

/// The accountant for `opts`.
fn accountant(switchpoint: Lsn, opts: &ScanOptions) -> Accountant {
    let a = Accountant::with_detail(switchpoint, opts.detail);
    match opts.max_tuples {
        Some(n) => a.with_tuple_limit(n, INLINE_LOST_XIDS),
        None => a,
    }
}

/// The list writer for `opts`, when it asks for one.
fn list_writer(opts: &ScanOptions) -> Result<Option<ListWriter>, ScanError> {
    Ok(opts.list.as_ref().map(ListWriter::create).transpose()?)
}

impl<'c> Scanner<'c> {
    fn new(
        start: Lsn,
        end: Lsn,
        switchpoint: Lsn,
        seg_size: Option<u64>,
        opts: &ScanOptions,
    ) -> Result<Scanner<'c>, ScanError> {
        let mut decoder = WalDecoder::new(start).with_end(end);
        if let Some(s) = seg_size {
            decoder = decoder.with_segment_size(s);
        }
        Ok(Scanner {
            decoder,
            capture: None,
            accountant: accountant(switchpoint, opts),
            horizon: XidHorizon::default(),
            switchpoint,
            start,
            created: BTreeSet::new(),
            list: list_writer(opts)?,
            tuples: tuple_log(opts),
        })
    }

    /// Keeps every byte fed in `capture` too, as segment files of timeline `tli`.
    fn capturing(
        mut self,
        tli: TimelineId,
        seg_size: Option<u64>,
        c: Option<&'c WalCapture>,
    ) -> Self {
        self.capture = c.zip(seg_size).map(|(c, s)| (tli, s, c));
        self
    }

    /// Feeds bytes at `at` and accounts every complete record; `true` once decoding ended.
    fn feed(&mut self, at: Lsn, bytes: &[u8]) -> Result<bool, ScanError> {
        if let Some((tli, seg_size, c)) = self.capture {
            c.record(tli, seg_size, at, bytes);
        }
        self.decoder.feed_bytes(at, bytes)?;
        self.drain()
    }

    fn drain(&mut self) -> Result<bool, ScanError> {
        loop {
            match self.decoder.poll()? {
                Poll::Record(rec) => {
                    if rec.lsn < self.switchpoint {
                        self.horizon.add(&rec);
                    } else {
                        if let Some(loc) = smgr_created(&rec) {
                            self.created.insert(loc);
                        }
                        if let Some(t) = &mut self.tuples {
                            t.add(&rec);
                        }
                    }
                    match &mut self.list {
                        Some(l) => self.accountant.add_observed(&rec, &mut |c| l.write(c))?,
                        None => self.accountant.add(&rec)?,
                    }
                    if self.tuples.is_some() && self.accountant.tuple_limit_exceeded() {
                        self.tuples = None;
                    }
                }
                Poll::NeedMore => return Ok(false),
                Poll::End(_) => return Ok(true),
            }
        }
    }

    fn finish(mut self) -> Result<Scan, ScanError> {
        self.decoder.finish();
        self.drain()?;
        let end = self.decoder.end_of_wal().cloned();
        let pg_version = self.decoder.version().map(|v| v.0);
        let lost = self.accountant.finish(end.clone());
        Ok(Scan {
            start: self.start,
            prepared_before_scan: lost.prepared_before_scan.clone(),
            lost,
            end,
            pg_version,
            new_side_first_xid: self.horizon.next.map(Xid),
            created_after_switchpoint: self.created,
            list: self.list,
            tuples: self.tuples,
            cut_short: false,
            ranges_taken: 0,
        })
    }
}

/// Streams `[start, end)` of timeline `tli` with `START_REPLICATION PHYSICAL` (no slot).
/// `start` is a record boundary (or a page or segment start); streaming begins at its page.
/// `seg_size` is needed when `start` is not on a segment's first page, and for `capture`
/// (which keeps the bytes received as segment files). With a `pacer`, the stream pauses after
/// each chunk as the server's time budget asks (the time spent receiving and decoding counts as
/// busy: the walsender reads and sends meanwhile).
#[allow(clippy::too_many_arguments)] // the range, the source, what to keep, capture and pacing
pub async fn scan_replication(
    params: &ConnParams,
    opts: &ReplicationOptions,
    tli: TimelineId,
    start: Lsn,
    end: Lsn,
    switchpoint: Lsn,
    seg_size: Option<u64>,
    capture: Option<&WalCapture>,
    scan_opts: &ScanOptions,
    pacer: Option<&crate::pg::Pacer>,
) -> Result<Scan, ScanError> {
    let mut scanner = Scanner::new(start, end, switchpoint, seg_size, scan_opts)?
        .capturing(tli, seg_size, capture);
    let mut client = connect_replication(params, opts).await?;
    let page = Lsn(start.0 - start.0 % crate::wal::XLOG_BLCKSZ as u64);
    let mut stream = client.start_physical(page, tli).await?;
    let mut done = false;
    // Stop after a short quiet spell once everything up to the end has been asked for: an idle
    // primary sends nothing more, and its insert position may lie a page header past its last
    // record.
    let quiet = Duration::from_secs(5);
    let mut busy_since = std::time::Instant::now();
    while !done {
        let next = tokio::time::timeout(quiet, stream.next_chunk()).await;
        match next {
            Ok(Ok(Some(chunk))) => {
                done = scanner.feed(chunk.start, &chunk.data)?;
                // Everything before `end` has arrived: no need to wait for a quiet spell.
                done |= stream.received_up_to() >= end;
                if let (Some(p), false) = (pacer, done) {
                    p.after(busy_since.elapsed()).await;
                    busy_since = std::time::Instant::now();
                }
            }
            Ok(Ok(None)) => break, // the timeline ended on the server
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                let at = stream.received_up_to();
                if at.align8() >= end || at.0 + 8192 >= end.0 {
                    break;
                }
                return Err(ScanError::Stalled {
                    target: params.target(),
                    at,
                    end,
                });
            }
        }
    }
    // The stream may be mid-message; closing the connection is enough to end it.
    client.close().await;
    scanner.finish()
}

/// Reads the segments covering `[start, end)` of timeline `tli` from the server's `pg_wal`
/// with `pg_read_binary_file` (superuser, or EXECUTE granted on that function); `capture`
/// keeps the bytes read as segment files.
#[allow(clippy::too_many_arguments)] // the range, the source, what to keep and what to capture
pub async fn scan_sql_files(
    session: &Session,
    tli: TimelineId,
    seg_size: u64,
    start: Lsn,
    end: Lsn,
    switchpoint: Lsn,
    capture: Option<&WalCapture>,
    scan_opts: &ScanOptions,
) -> Result<Scan, ScanError> {
    const CHUNK: i64 = 4 * 1024 * 1024;
    let mut scanner = Scanner::new(start, end, switchpoint, Some(seg_size), scan_opts)?.capturing(
        tli,
        Some(seg_size),
        capture,
    );
    let mut segno = start.segment_number(seg_size);
    let last = end.segment_number(seg_size);
    let mut offset = (start.0 % seg_size) as i64;
    // Feed from the page start of `start`.
    offset -= offset % crate::wal::XLOG_BLCKSZ as i64;
    'segments: while segno <= last {
        let name = segment_file_name(tli, segno, seg_size);
        let exists: bool = session
            .query_one(
                "SELECT count(*) > 0 FROM pg_ls_waldir() WHERE name = $1 OR name = $1 || '.partial'",
                &[&name],
            )
            .await?
            .get(0);
        if !exists {
            return Err(ScanError::SegmentGone {
                target: session.target().to_string(),
                file: name,
            });
        }
        while offset < seg_size as i64 {
            // No more than what reaches `end` (plus a page, for the record that crosses it):
            // a short range near the start of a segment should not read 4 MB.
            let at_lsn = segno * seg_size + offset as u64;
            let wanted = end.0.saturating_sub(at_lsn).saturating_add(2 * 8192);
            let len = CHUNK.min(i64::try_from(wanted).unwrap_or(CHUNK));
            let row = session
                .query_one(
                    "SELECT pg_read_binary_file('pg_wal/' || $1, $2, $3)",
                    &[&name, &offset, &len],
                )
                .await?;
            let bytes: Vec<u8> = row.get(0);
            if bytes.is_empty() {
                break;
            }
            let at = Lsn(segno * seg_size + offset as u64);
            if scanner.feed(at, &bytes)? {
                break 'segments;
            }
            offset += bytes.len() as i64;
        }
        segno += 1;
        offset = 0;
    }
    scanner.finish()
}

/// Decodes `[start, end)` (or to the end of valid WAL) of timeline `tli` from a directory of
/// segments: a copy of `pg_wal`, or a WAL archive (plain, `.partial` or `.gz` files).
pub fn scan_dir(
    dir: &Path,
    tli: TimelineId,
    start: Lsn,
    end: Option<Lsn>,
    switchpoint: Lsn,
    opts: &ScanOptions,
) -> Result<Scan, ScanError> {
    scan_wal(&WalDir::open(dir, tli)?, start, end, switchpoint, opts)
}

/// Decodes `[start, end)` (or to the end of valid WAL) from `wal`: one timeline, or a node's
/// path across its timeline switches ([`WalDir::along`]).
pub fn scan_wal(
    wal: &WalDir,
    start: Lsn,
    end: Option<Lsn>,
    switchpoint: Lsn,
    opts: &ScanOptions,
) -> Result<Scan, ScanError> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ranges = (cpus >= 2).then(|| (cpus, WORK_RANGE.min(wal.segment_size())));
    scan_wal_in(wal, start, end, switchpoint, opts, ranges, COUNT_FIRST_OVER)
}

/// How much WAL after the switchpoint makes a scan that keeps tuples up to a limit count them
/// first ([`scan_wal_in`]): a loss whose tuples fit the default limit (5,000) nearly always
/// lies in less (20 MB for 5,000 rows of pgbench, page images included).
const COUNT_FIRST_OVER: u64 = 64 << 20;

/// How many bytes of WAL follow `switchpoint` in `wal`, up to `end` or to the last of the
/// consecutive segments from the switchpoint's on; counted only up to a little past `cap`.
fn wal_after(wal: &WalDir, switchpoint: Lsn, end: Option<Lsn>, cap: u64) -> u64 {
    if let Some(e) = end {
        return e.0.saturating_sub(switchpoint.0);
    }
    let seg = wal.segment_size();
    let first = switchpoint.segment_number(seg);
    let mut bytes = 0u64;
    let mut segno = first;
    while bytes <= cap && wal.find_segment(segno).is_some() {
        bytes += seg;
        segno += 1;
    }
    bytes.saturating_sub(switchpoint.0 % seg)
}

/// When ranges of the files can be accounted on the worker threads ([`ScanRange`]): every
/// range needs bounded detail, no block data or images, and no list file (which every lost
/// commit goes to, in order).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RangesWhen {
    /// From the start: a bounded scan.
    FromStart,
    /// Once the tuple limit was passed ([`ScanOptions::max_tuples`]): from then on the scan
    /// keeps no tuples and bounded detail, and the rest of the files is accounted in ranges.
    PastTupleLimit,
    /// Never: every record is read on the caller's thread.
    Never,
}

impl RangesWhen {
    fn of(opts: &ScanOptions) -> RangesWhen {
        if opts.list.is_some() {
            RangesWhen::Never
        } else if !opts.tuples && matches!(opts.detail, Detail::Bounded { .. }) {
            RangesWhen::FromStart
        } else if opts.max_tuples.is_some() {
            RangesWhen::PastTupleLimit
        } else {
            RangesWhen::Never
        }
    }
}

/// What a scan has found so far, as ranges and records add to it.
struct Found {
    accountant: Accountant,
    horizon: XidHorizon,
    created: BTreeSet<RelFileLocator>,
    cut_short: bool,
    ranges_taken: usize,
}

impl Found {
    /// Accounts ranges in WAL order until the workers stop or the scan is cut short: from
    /// the start of a reader that decodes on worker threads, else (`from_here`) after the
    /// records `reader` read so far, on `workers` threads in ranges of `range` bytes. The
    /// reader goes on after the last range taken.
    fn take_ranges(
        &mut self,
        reader: &mut WalDirReader,
        from_here: Option<(usize, u64)>,
        switchpoint: Lsn,
        opts: &ScanOptions,
    ) {
        let detail = self.accountant.detail();
        // The memory of ranges accounted goes back to the workers for their next ranges.
        let spares: Arc<Mutex<Vec<Spare>>> = Arc::default();
        let for_workers = spares.clone();
        let make = move || {
            let spare = for_workers.lock().ok().and_then(|mut s| s.pop());
            ScanRange::new(switchpoint, detail, spare.unwrap_or_default())
        };
        let take = |r: ScanRangeOut| {
            self.ranges_taken += 1;
            let spare = self.accountant.add_range(r.account);
            if let Ok(mut s) = spares.lock() {
                s.push(spare);
            }
            if let Some(n) = r.horizon.next {
                self.horizon.saw_next(n);
            }
            self.created.extend(r.created);
            self.cut_short = opts.stop_when_earlier_needed
                && (self.accountant.needs_earlier_start()
                    || (opts.horizon && r.after_switchpoint && self.horizon.next.is_none()));
            !self.cut_short
        };
        match from_here {
            Some((workers, range)) => reader.take_ranges_from_here(workers, range, make, take),
            None => reader.take_ranges(make, take),
        }
    }
}

/// [`scan_wal`], accounting ranges of `ranges.1` bytes on `ranges.0` worker threads when
/// given and the options allow ([`RangesWhen`]); else every record on this thread.
///
/// A scan that keeps every detail and the tuples up to a limit ([`ScanOptions::max_tuples`])
/// reads record by record until the limit is passed. When more than `count_first_over` bytes
/// of WAL follow the switchpoint, it first accounts the whole WAL in ranges with bounded
/// detail, as if the limit were passed at once: the lost commits' tuples
/// ([`LostTransactions::touched_tuple_count`](crate::wal::lost::LostTransactions)) are all
/// kept until the limit is passed, so more of them than the limit means that the scan
/// record by record would have passed it and ended with these very figures (the fall-back
/// keeps what bounded detail keeps). Fewer, and it reads again record by record.
pub(crate) fn scan_wal_in(
    wal: &WalDir,
    start: Lsn,
    end: Option<Lsn>,
    switchpoint: Lsn,
    opts: &ScanOptions,
    ranges: Option<(usize, u64)>,
    count_first_over: u64,
) -> Result<Scan, ScanError> {
    // Without the first segment there is nothing to start from (not an empty range).
    let first = start.segment_number(wal.segment_size());
    if wal.find_segment(first).is_none() {
        return Err(WalError::MissingSegment {
            file: segment_file_name(wal.timeline_of_segment(first), first, wal.segment_size()),
            lsn: start,
            dir: wal.path().display().to_string(),
        }
        .into());
    }
    if let (Some(_), RangesWhen::PastTupleLimit, Detail::Full, Some(limit)) =
        (ranges, RangesWhen::of(opts), opts.detail, opts.max_tuples)
    {
        if wal_after(wal, switchpoint, end, count_first_over) > count_first_over {
            let counting = ScanOptions {
                detail: Detail::Bounded {
                    keep: INLINE_LOST_XIDS,
                },
                tuples: false,
                max_tuples: None,
                ..opts.clone()
            };
            // An error is left to the scan record by record to find and report.
            if let Ok(mut s) = scan_wal_in(wal, start, end, switchpoint, &counting, ranges, 0) {
                if s.lost.touched_tuple_count > limit {
                    s.lost.tuple_limit_exceeded = Some(limit);
                    return Ok(s);
                }
            }
        }
    }
    let mut list = list_writer(opts)?;
    let when = match ranges {
        Some(_) => RangesWhen::of(opts),
        None => RangesWhen::Never,
    };
    // Block data and images are not sliced out unless a consumer reads them (the row rebuild
    // from WAL, `opts.tuples`): the accountant reads headers, block references and main data.
    // Ranges accounted on the workers come back here as figures, added in WAL order exactly as
    // the records would be (BENCHMARKS.md, "Report at scale"); the rest is read here.
    let mut reader = match (ranges, when) {
        (Some((workers, range)), RangesWhen::FromStart) => {
            wal.read_parallel(start, end, workers, range)
        }
        _ => wal.read_fast(start, end),
    };
    if !opts.tuples {
        reader = reader.without_block_payloads();
    }
    let mut found = Found {
        accountant: accountant(switchpoint, opts),
        horizon: XidHorizon::default(),
        created: BTreeSet::new(),
        cut_short: false,
        ranges_taken: 0,
    };
    let mut tuples = tuple_log(opts);
    // Ranges still to be taken once the records allow it.
    let mut ranges_later = match (ranges, when) {
        (Some(_), RangesWhen::FromStart) => {
            found.take_ranges(&mut reader, None, switchpoint, opts);
            None
        }
        (Some(r), RangesWhen::PastTupleLimit) => Some(r),
        _ => None,
    };
    while !found.cut_short {
        if let Some(r) = ranges_later {
            if found.accountant.tuple_limit_exceeded() && reader.can_take_ranges_from_here() {
                ranges_later = None;
                found.take_ranges(&mut reader, Some(r), switchpoint, opts);
                if found.cut_short {
                    break;
                }
            }
        }
        let Some(rec) = reader.next_record() else {
            break;
        };
        let rec = rec?;
        let Found {
            accountant,
            horizon,
            created,
            ..
        } = &mut found;
        if rec.lsn < switchpoint {
            horizon.add(rec);
        } else {
            if let Some(loc) = smgr_created(rec) {
                created.insert(loc);
            }
            if let Some(t) = &mut tuples {
                t.add(rec);
            }
        }
        match &mut list {
            Some(l) => accountant.add_observed(rec, &mut |c| l.write(c))?,
            None => accountant.add(rec)?,
        }
        if tuples.is_some() && accountant.tuple_limit_exceeded() {
            tuples = None;
        }
        if opts.stop_when_earlier_needed
            && (accountant.needs_earlier_start()
                || (opts.horizon && rec.lsn >= switchpoint && horizon.next.is_none()))
        {
            found.cut_short = true;
            break;
        }
    }
    let end = reader.end_of_wal().cloned();
    let lost = found.accountant.finish(end.clone());
    Ok(Scan {
        start,
        pg_version: reader.version().map(|v| v.0),
        prepared_before_scan: lost.prepared_before_scan.clone(),
        lost,
        end,
        new_side_first_xid: found.horizon.next.map(Xid),
        created_after_switchpoint: found.created,
        list,
        tuples,
        cut_short: found.cut_short,
        ranges_taken: found.ranges_taken,
    })
}

#[cfg(test)]
mod range_tests;

#[cfg(test)]
mod tests {
    use super::XidHorizon;

    #[test]
    fn horizon_is_one_past_the_newest_xid_across_wraparound() {
        let mut h = XidHorizon::default();
        h.saw_xid(0); // no xid
        assert_eq!(h.next, None);
        h.saw_xid(700);
        h.saw_next(650); // an older RUNNING_XACTS does not move it back
        assert_eq!(h.next, Some(701));
        h.saw_next(720);
        assert_eq!(h.next, Some(720));
        let mut w = XidHorizon::default();
        w.saw_xid(u32::MAX - 1);
        w.saw_xid(5); // after wraparound 5 follows 2^32-2
        assert_eq!(w.next, Some(6));
        w.saw_xid(u32::MAX); // older than 5 now
        assert_eq!(w.next, Some(6));
    }
}
