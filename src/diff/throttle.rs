//! `--max-rate`: a shared budget of rows (or bytes) per second, spent after each query.
//!
//! Queries cannot be slowed down on the server, so the limiter pauses between them; with a
//! rate set, the planner cuts tables into units of a fraction of a second's budget each.

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::options::MaxRate;

/// A read-rate limiter shared by every connection of a run.
#[derive(Debug)]
pub struct RateLimiter {
    rate: MaxRate,
    start: Instant,
    /// Seconds' worth of budget spent so far.
    spent: Mutex<f64>,
}

impl RateLimiter {
    /// A limiter for `rate`.
    pub fn new(rate: MaxRate) -> Self {
        RateLimiter {
            rate,
            start: Instant::now(),
            spent: Mutex::new(0.0),
        }
    }

    /// Rows per unit of work so that one unit costs about a quarter of a second's budget.
    pub fn slice_rows(&self, row_bytes: f64) -> u64 {
        let per_sec = match self.rate {
            MaxRate::Rows(r) => r as f64,
            MaxRate::Bytes(b) => b as f64 / row_bytes.max(1.0),
        };
        (per_sec / 4.0).max(1.0) as u64
    }

    /// Records that `rows` rows of about `row_bytes` bytes were read, and waits as needed.
    pub async fn consume(&self, rows: u64, row_bytes: f64) {
        let cost = match self.rate {
            MaxRate::Rows(r) => rows as f64 / r as f64,
            MaxRate::Bytes(b) => rows as f64 * row_bytes / b as f64,
        };
        let until = {
            let mut s = self.spent.lock().await;
            *s += cost;
            *s
        };
        let elapsed = self.start.elapsed().as_secs_f64();
        if until > elapsed {
            tokio::time::sleep(Duration::from_secs_f64(until - elapsed)).await;
        }
    }
}
