//! Phase timings for benchmarks and profiling. Off by default; once [`enable`]d, the library
//! records how long each phase of a run took and the caller (e.g. `examples/walguided_bench`)
//! collects them with [`take`]. Recording never prints and costs one atomic load when off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);
static PHASES: Mutex<Vec<(&'static str, Duration)>> = Mutex::new(Vec::new());

/// Turns recording on or off (process-wide).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Records that `phase` ran from `since` until now (when recording is on).
pub fn record(phase: &'static str, since: Instant) {
    if ENABLED.load(Ordering::Relaxed) {
        let d = since.elapsed();
        PHASES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((phase, d));
    }
}

/// The phases recorded since the last call, in the order they ended; a phase that ran more
/// than once (per table, per database) appears once per run.
pub fn take() -> Vec<(&'static str, Duration)> {
    std::mem::take(&mut *PHASES.lock().unwrap_or_else(|e| e.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_when_enabled() {
        take();
        record("off", Instant::now());
        assert!(take().is_empty());
        enable(true);
        record("on", Instant::now());
        enable(false);
        let t = take();
        assert!(t.iter().any(|p| p.0 == "on"), "{t:?}");
        assert!(!t.iter().any(|p| p.0 == "off"), "{t:?}");
    }
}
