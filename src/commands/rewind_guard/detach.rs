//! The accounting handed to a detached process of the guard: the hand-off file, starting the
//! process, and what it runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::RewindGuardArgs;

use super::examine::{HoldCheck, Pending};
use super::log::Log;

/// Starts `exe rewind-guard --analyse-capture HANDOFF` in a session of its own, with no
/// standard streams (Patroni reads pg_rewind's output to its end: an heir of those pipes would
/// hold it up) and the guard's environment (`PGPASSFILE`).
pub(super) fn spawn_analysis(
    exe: &Path,
    args: &RewindGuardArgs,
    handoff: &Path,
) -> std::io::Result<u32> {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    let mut c = std::process::Command::new(exe);
    c.arg("rewind-guard")
        .arg("--pg-rewind")
        .arg(&args.pg_rewind)
        .arg("--evidence-root")
        .arg(&args.evidence_root)
        .arg("--analyse-capture")
        .arg(handoff)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe; it only detaches the child from our session.
    unsafe {
        c.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(c.spawn()?.id())
}

/// `rewind-guard --analyse-capture HANDOFF`: the accounting of a copy the guard made, sealed
/// into its bundle within the budget, logged to `guard.log`. Returns the exit code (0 once
/// logged, whatever the outcome: the log says it).
pub async fn analyse_capture(args: &RewindGuardArgs, handoff: &Path) -> i32 {
    let mut log = Log {
        root: Some(args.evidence_root.clone()),
        lines: Vec::new(),
        started: Instant::now(),
    };
    let h: Handoff = match std::fs::read(handoff)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(h) => h,
        Err(e) => {
            log.line(format!(
                "detached analysis: cannot read {}: {e}; the raw copy stays beside it",
                handoff.display()
            ));
            return 1;
        }
    };
    let _ = std::fs::remove_file(handoff);
    for (name, sha256) in &h.digests {
        let _ = crate::bundle::adopt::offer(&h.wal.join(name), sha256);
    }
    log.line(format!(
        "detached analysis of {} started (budget {:.1} s)",
        h.raw.display(),
        h.budget_ms as f64 / 1000.0
    ));
    let pending = Pending {
        source_server: h.source_server,
        wal: h.wal,
        raw: h.raw,
        hold: HoldCheck {
            released: false,
            marker: PathBuf::new(),
            bundle: h.bundle.clone(),
            hint: String::new(),
        },
        bundle: h.bundle,
        timeline: crate::lsn::TimelineId(h.timeline),
        digests: h.digests,
        rerun: h.rerun,
        budget: Duration::from_millis(h.budget_ms),
    };
    // No hold can follow (the rewind is done or under way): the outcome is the log's.
    let _ = pending.account(&mut log).await;
    0
}

/// What a detached analysis needs, written into the raw copy as `analysis.json` by the guard
/// and read by `rewind-guard --analyse-capture` (this process is pg_rewind by then).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Handoff {
    pub(super) source_server: String,
    pub(super) wal: PathBuf,
    pub(super) raw: PathBuf,
    pub(super) bundle: PathBuf,
    pub(super) timeline: u32,
    pub(super) digests: std::collections::BTreeMap<String, String>,
    pub(super) rerun: String,
    pub(super) budget_ms: u64,
}

/// The name of the hand-off file in the raw copy.
pub(super) const HANDOFF: &str = "analysis.json";
