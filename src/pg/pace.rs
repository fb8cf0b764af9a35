//! Pacing: the share of wall-clock time a run may keep a server busy (`--max-rate 25%`).
//!
//! A query cannot be slowed down on the server, so the run pauses after each piece of work
//! (a query, a batch of streamed WAL) for as long as it took times `1/share - 1`. Every
//! session and stream to one server shares one [`Pacer`], so concurrent connections split the
//! budget instead of multiplying it: at 25 %, the run keeps on average at most a quarter of
//! one server process busy, whatever `--jobs` says. Measuring time instead of rows makes the
//! budget follow the server's own speed, and covers work that is not rows (WAL streaming,
//! catalog reads, a `count(*)`).
//!
//! The pacing protects other people's work, so a [`Pacer::watching`] pacer looks at the
//! server once a second over a connection of its own: while no other client session has been
//! at work there within the last second, there is nothing to protect and the run goes at full
//! speed. A role that cannot see other sessions' state, or a failed look, counts as busy.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The default share of a server's time a run may use (`--max-rate 25%`).
pub const DEFAULT_BUSY_SHARE: f64 = 0.25;

/// Idle time that may be spent later at full speed: after a pause in the run (another
/// server's work, the client's own computation), a short burst of work goes unpaced.
const MAX_CREDIT_SECS: f64 = 0.5;

/// The longest single pause, so that a paced session inside a transaction never comes near
/// `idle_in_transaction_session_timeout` after one long query.
const MAX_PAUSE_SECS: f64 = 30.0;

/// The pacing arithmetic, on a clock given by the caller (seconds since some start).
#[derive(Debug, Clone, PartialEq)]
pub struct PaceClock {
    share: f64,
    /// The time by which all work charged so far is paid for.
    paid_until: f64,
}

impl PaceClock {
    /// A clock for `share` of the time (clamped to `(0, 1]`; 1 never pauses).
    pub fn new(share: f64) -> Self {
        PaceClock {
            share: if share.is_finite() {
                share.clamp(1e-3, 1.0)
            } else {
                1.0
            },
            paid_until: f64::NEG_INFINITY,
        }
    }

    /// Charges `busy` seconds of work that ended at `now` and returns the pause owed, in
    /// seconds, before the next piece of work (0 when the budget allows it at once).
    pub fn charge(&mut self, now: f64, busy: f64) -> f64 {
        let busy = busy.max(0.0);
        // Work costs `busy / share` of wall time, counted from when it started at the
        // earliest (or from where the previous work was paid for), with at most
        // MAX_CREDIT_SECS of idle time credited.
        let base = self.paid_until.max(now - busy - MAX_CREDIT_SECS);
        self.paid_until = base + busy / self.share;
        (self.paid_until - now).clamp(0.0, MAX_PAUSE_SECS)
    }
}

/// How often a watching pacer looks at the server.
pub(super) const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Other client sessions at work on the server now or within the last second: not idle, or
/// idle since less than a second; a session whose state this role may not see counts. Our
/// own sessions (by application_name), walsenders and background workers do not.
pub(super) const OTHERS_AT_WORK_SQL: &str = "\
    SELECT count(*)::int8 FROM pg_catalog.pg_stat_activity \
     WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid() \
       AND application_name IS DISTINCT FROM $1 \
       AND (state IS DISTINCT FROM 'idle' \
            OR state_change IS NULL \
            OR state_change > pg_catalog.clock_timestamp() - interval '1 second')";

/// Whether a look at the server (the number of other sessions at work, `None` when the look
/// failed) means the run must be paced.
pub fn server_is_busy(others_at_work: Option<i64>) -> bool {
    others_at_work.is_none_or(|n| n > 0)
}

/// A pacer shared by every session and stream of a run to one server.
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    clock: Mutex<PaceClock>,
    share: f64,
    /// False once a look found no one else at work (until a look finds someone).
    busy: AtomicBool,
    /// The task that looks at the server, stopped with the pacer.
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Pacer {
    fn drop(&mut self) {
        if let Some(h) = self.watcher.get_mut().ok().and_then(|h| h.take()) {
            h.abort();
        }
    }
}

impl Pacer {
    /// A pacer allowing `share` (0 < share ≤ 1) of the time, always (the server counts as
    /// busy).
    pub fn new(share: f64) -> Self {
        let clock = PaceClock::new(share);
        Pacer {
            start: Instant::now(),
            share: clock.share,
            clock: Mutex::new(clock),
            busy: AtomicBool::new(true),
            watcher: Mutex::new(None),
        }
    }

    /// Keeps the task that looks at the server, so that it ends with the pacer.
    pub(super) fn set_watcher(&self, task: tokio::task::JoinHandle<()>) {
        if let Ok(mut w) = self.watcher.lock() {
            *w = Some(task);
        }
    }

    /// Records a look at the server: `others_at_work` other sessions (`None`: unknown).
    pub fn observe(&self, others_at_work: Option<i64>) {
        self.busy
            .store(server_is_busy(others_at_work), Ordering::Relaxed);
    }

    /// Whether the last look found the server busy (or none was made yet).
    pub fn server_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }

    /// The share of the time this pacer allows.
    pub fn share(&self) -> f64 {
        self.share
    }

    /// The pause owed after `busy` of work that just ended (none while the server is idle:
    /// that work is not charged).
    pub fn owed(&self, busy: Duration) -> Duration {
        if !self.server_busy() {
            return Duration::ZERO;
        }
        let now = self.start.elapsed().as_secs_f64();
        let mut c = self.clock.lock().unwrap_or_else(|e| e.into_inner());
        Duration::from_secs_f64(c.charge(now, busy.as_secs_f64()))
    }

    /// Charges `busy` of work that just ended and waits as long as the budget asks.
    pub async fn after(&self, busy: Duration) {
        let pause = self.owed(busy);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One worker that works `work` seconds at a time and obeys the pauses: its share of
    /// the elapsed time over pieces `n..2n` (after the initial credit is spent).
    fn sequential_share(share: f64, work: f64, n: usize) -> f64 {
        let mut c = PaceClock::new(share);
        let mut now = 0.0;
        let mut half = 0.0;
        for i in 0..2 * n {
            if i == n {
                half = now;
            }
            now += work;
            now += c.charge(now, work);
        }
        (work * n as f64) / (now - half)
    }

    #[test]
    fn a_sequential_worker_gets_its_share() {
        for share in [0.1, 0.25, 0.5] {
            for work in [0.001, 0.05, 0.4] {
                let got = sequential_share(share, work, 5000);
                assert!(
                    (got - share).abs() < 0.01 * share + 1e-3,
                    "share {share}, work {work}: got {got}"
                );
            }
        }
    }

    #[test]
    fn full_share_never_pauses() {
        let mut c = PaceClock::new(1.0);
        let mut now = 0.0;
        for _ in 0..100 {
            now += 0.2;
            assert_eq!(c.charge(now, 0.2), 0.0);
        }
        // Out-of-range shares fall back to something sane.
        assert_eq!(PaceClock::new(f64::NAN).share, 1.0);
        assert_eq!(PaceClock::new(7.0).share, 1.0);
        assert!(PaceClock::new(0.0).share > 0.0);
    }

    #[test]
    fn concurrent_workers_split_the_budget() {
        // Two workers finish 0.1 s of work at the same moment, with no credit left: together
        // they used 0.2 s of server time, so at 25 % the second waits until 0.8 s after they
        // started.
        let mut c = PaceClock {
            share: 0.25,
            paid_until: 0.0,
        };
        let a = c.charge(0.1, 0.1);
        let b = c.charge(0.1, 0.1);
        assert!((a - 0.3).abs() < 1e-9, "{a}");
        assert!((b - 0.7).abs() < 1e-9, "{b}");
        // Over time, k workers together get the share, not k times it.
        let mut c = PaceClock::new(0.25);
        let mut free = [0.0f64; 3];
        let mut busy = 0.0;
        for _ in 0..300 {
            // The worker that is free first does the next 0.05 s piece.
            let (i, start) = free
                .iter()
                .copied()
                .enumerate()
                .min_by(|x, y| x.1.total_cmp(&y.1))
                .unwrap();
            let end = start + 0.05;
            busy += 0.05;
            free[i] = end + c.charge(end, 0.05);
        }
        let elapsed = free.iter().copied().fold(0.0, f64::max);
        let got = busy / elapsed;
        assert!((got - 0.25).abs() < 0.01, "got {got}");
    }

    #[test]
    fn idle_time_buys_only_a_short_burst() {
        let mut c = PaceClock::new(0.25);
        // Ten seconds of idleness, then work: only MAX_CREDIT_SECS of it is credited.
        let mut now = 10.0;
        let mut busy = 0.0;
        let mut unpaced = 0.0;
        loop {
            now += 0.01;
            busy += 0.01;
            let p = c.charge(now, 0.01);
            if p > 0.0 {
                break;
            }
            unpaced += 0.01;
        }
        // 0.5 s of credit at 25 % pays for 0.5 / (1 / 0.25 - 1) = 0.167 s of work.
        assert!(
            (0.1..0.2).contains(&unpaced),
            "unpaced {unpaced}, busy {busy}"
        );
    }

    #[test]
    fn an_idle_server_is_not_paced() {
        let p = Pacer::new(0.25);
        assert!(p.server_busy(), "busy until a look says otherwise");
        p.observe(Some(0));
        assert!(!p.server_busy());
        for _ in 0..10 {
            assert_eq!(p.owed(Duration::from_secs(1)), Duration::ZERO);
        }
        p.observe(Some(3));
        assert!(p.server_busy());
        // Only the work done while busy is charged: one second of it, minus the credit.
        let owed = p.owed(Duration::from_secs(1)).as_secs_f64();
        assert!((2.0..=3.0).contains(&owed), "{owed}");
        // A failed look counts as busy.
        p.observe(Some(0));
        p.observe(None);
        assert!(p.server_busy());
        assert!(server_is_busy(None) && server_is_busy(Some(1)) && !server_is_busy(Some(0)));
    }

    #[test]
    fn one_long_query_pauses_at_most_the_cap() {
        let mut c = PaceClock::new(0.1);
        assert_eq!(c.charge(100.0, 100.0), MAX_PAUSE_SECS);
        // A zero or negative charge costs nothing.
        let mut c = PaceClock::new(0.25);
        assert_eq!(c.charge(1.0, 0.0), 0.0);
        assert_eq!(c.charge(2.0, -1.0), 0.0);
    }
}
