//! `rewind-guard`: capture a diverged former primary's lost WAL and account for it, then hand
//! over to the real pg_rewind. Never blocks the rewind by accident: every failure of its own
//! becomes a log line, and only `--hold-when-lost` may refuse it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::RewindGuardArgs;
use crate::guard::{self, control, Divergence, Invocation};
use crate::pg::session::SessionOptions;
use crate::pg::ConnParams;

/// What the guard decided; `main` prints `lines` to stderr and then runs or holds.
#[derive(Debug, Default)]
pub struct GuardOutcome {
    /// Log lines (also appended to `<root>/guard.log` when it is writable).
    pub lines: Vec<String>,
    /// `Some(reason)`: do not run pg_rewind (`--hold-when-lost` and commits were lost).
    pub hold: Option<String>,
}

/// The guard's options as they go into the wrapper script (without `--print-wrapper`).
pub fn wrapper_options(args: &RewindGuardArgs) -> Vec<OsString> {
    let mut o: Vec<OsString> = vec![
        "--pg-rewind".into(),
        args.pg_rewind.clone().into(),
        "--evidence-root".into(),
        args.evidence_root.clone().into(),
    ];
    if args.budget != Duration::from_secs(30) {
        o.push("--budget".into());
        o.push(format!("{}ms", args.budget.as_millis()).into());
    }
    if args.hold_when_lost {
        o.push("--hold-when-lost".into());
    }
    if args.replica_method {
        o.push("--replica-method".into());
    }
    o
}

/// A log that writes each line to `<root>/guard.log` as it is made (when writable).
#[derive(Debug)]
struct Log {
    root: Option<PathBuf>,
    lines: Vec<String>,
    started: Instant,
}

impl Log {
    fn line(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        let line = format!(
            "failover-verify rewind-guard [{} pid {} +{:.1}s]: {msg}",
            crate::report::now_rfc3339(),
            std::process::id(),
            self.started.elapsed().as_secs_f64()
        );
        if let Some(root) = &self.root {
            if let Err(e) = guard::append_log(root, &line) {
                let root = root.display().to_string();
                self.root = None;
                self.lines.push(format!(
                    "failover-verify rewind-guard: cannot append to {root}/guard.log: {e}"
                ));
            }
        }
        self.lines.push(line);
    }
}

/// The guard's state between its copy and its accounting: [`prepare`] makes it, then either
/// [`Prepared::account`] and [`Prepared::decide`] (before pg_rewind) or [`run_alongside`].
#[derive(Debug)]
pub struct Prepared {
    log: Log,
    pending: Option<Box<Pending>>,
    reason: Option<String>,
    passed_through: bool,
    replica_method: bool,
    hold_when_lost: bool,
    pg_rewind: PathBuf,
    accounted_at: Option<Instant>,
}

/// Runs the guard's part of one pg_rewind call (never the rewind itself), all of it before.
pub async fn run(args: &RewindGuardArgs) -> GuardOutcome {
    let mut p = prepare(args).await;
    p.account().await;
    p.decide()
}

/// Everything up to and including the copy of the divergent WAL (never cut by the budget).
pub async fn prepare(args: &RewindGuardArgs) -> Prepared {
    let mut p = Prepared {
        log: Log {
            root: None,
            lines: Vec::new(),
            started: Instant::now(),
        },
        pending: None,
        reason: None,
        passed_through: false,
        replica_method: args.replica_method,
        hold_when_lost: args.hold_when_lost,
        pg_rewind: args.pg_rewind.clone(),
        accounted_at: None,
    };
    let log = &mut p.log;
    let invocation = if args.replica_method {
        guard::classify_replica_method(&args.args)
    } else {
        guard::classify(&args.args)
    };
    let (target, source_server) = match invocation {
        Invocation::PassThrough(why) => {
            // Probes (`--help`) come often: no log file entry, one stderr line at most.
            if !args
                .args
                .iter()
                .any(|a| a == "--help" || a == "--version" || a == "-V")
            {
                log.line(format!("passing through to pg_rewind ({why})"));
            }
            p.passed_through = true;
            return p;
        }
        Invocation::Rewind {
            target,
            source_server,
        } => (target, source_server),
    };
    let root = args.evidence_root.clone();
    match ensure_root(&root) {
        Ok(()) => log.root = Some(root.clone()),
        Err(e) => log.line(format!(
            "cannot use the evidence root {}: {e}; nothing will be captured (fix its permissions, it must be writable by the user running pg_rewind)",
            root.display()
        )),
    }
    log.line(format!(
        "{} of {} requested (source: {})",
        if args.replica_method {
            "a replica re-creation (Patroni replica method)"
        } else {
            "pg_rewind"
        },
        target.display(),
        redact(&source_server)
    ));
    match examine(args, &target, &source_server, log).await {
        Examined::Decided(reason) => p.reason = reason,
        Examined::Copied(pending) => p.pending = Some(pending),
    }
    p
}

impl Prepared {
    /// Whether an accounting is left to do (a copy was just made).
    pub fn pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Logs one line (to `guard.log` at once, to stderr with [`Prepared::take_lines`]).
    pub fn line(&mut self, msg: impl Into<String>) {
        self.log.line(msg);
    }

    /// The lines logged since the last call, for stderr.
    pub fn take_lines(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log.lines)
    }

    /// The accounting of the copy, if one was made, within the budget.
    pub async fn account(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.reason = pending.account(&mut self.log).await;
            self.accounted_at = Some(Instant::now());
        }
    }

    /// Hands the accounting of the copy to a detached process of this program (its own
    /// session, no standard streams: the caller of pg_rewind waits for nothing of it), so
    /// that the rewind waits for the copy only. Returns its pid; on failure the accounting
    /// stays here.
    pub fn detach(&mut self, exe: &Path, args: &RewindGuardArgs) -> Result<u32, String> {
        let Some(pending) = self.pending.take() else {
            return Err("nothing to analyse".into());
        };
        let handoff = Handoff {
            source_server: pending.source_server.clone(),
            wal: pending.wal.clone(),
            raw: pending.raw.clone(),
            bundle: pending.bundle.clone(),
            timeline: pending.timeline.0,
            digests: pending.digests.clone(),
            rerun: pending.rerun.clone(),
            budget_ms: pending.budget.as_millis() as u64,
        };
        let path = pending.raw.join(HANDOFF);
        let spawned = serde_json::to_vec_pretty(&handoff)
            .map_err(|e| e.to_string())
            .and_then(|b| std::fs::write(&path, b).map_err(|e| format!("{}: {e}", path.display())))
            .and_then(|()| spawn_analysis(exe, args, &path).map_err(|e| e.to_string()));
        if spawned.is_err() {
            let _ = std::fs::remove_file(&path);
            self.pending = Some(pending);
        }
        spawned
    }

    /// Whether to hold the rewind, once the accounting is done.
    pub fn decide(mut self) -> GuardOutcome {
        if self.passed_through {
            return GuardOutcome {
                lines: self.log.lines,
                hold: None,
            };
        }
        if self.replica_method {
            self.log
                .line("exiting 1 so that Patroni runs its next replica method");
            return GuardOutcome {
                lines: self.log.lines,
                hold: Some("replica method: always falls through".into()),
            };
        }
        let hold = match self.reason.take() {
            Some(reason) if self.hold_when_lost => {
                let line = format!("HOLDING the rewind: {reason}");
                self.log.line(line);
                Some(reason)
            }
            _ => None,
        };
        if hold.is_none() {
            let line = format!("running {} now", self.pg_rewind.display());
            self.log.line(line);
        }
        GuardOutcome {
            lines: self.log.lines,
            hold,
        }
    }
}

/// Without `--hold-when-lost` the accounting decides nothing: pg_rewind runs as soon as the
/// copy is made and the accounting goes on alongside it, on the private copy. Returns
/// pg_rewind's exit code (128 + the signal when one ended it) once both are done, so that the
/// bundle is sealed (or its failure logged) when this call returns.
pub async fn run_alongside(mut p: Prepared, pg_rewind: &Path, args: &[OsString]) -> i32 {
    p.line(format!(
        "running {} now; the accounting goes on alongside it (within the budget) and this call ends when both have",
        pg_rewind.display()
    ));
    for l in p.take_lines() {
        eprintln!("{l}");
    }
    let started = Instant::now();
    let child = spawn_pg_rewind(pg_rewind, args);
    let accounting = tokio::spawn(async move {
        p.account().await;
        p
    });
    let (code, rewound) = match child {
        Ok(child) => {
            let waited = tokio::task::spawn_blocking(move || {
                let mut child = child;
                child.wait()
            })
            .await;
            let code = match waited {
                Ok(Ok(status)) => {
                    use std::os::unix::process::ExitStatusExt;
                    status
                        .code()
                        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
                }
                Ok(Err(e)) => {
                    eprintln!("failover-verify rewind-guard: cannot wait for pg_rewind: {e}");
                    1
                }
                Err(e) => {
                    eprintln!("failover-verify rewind-guard: cannot wait for pg_rewind: {e}");
                    1
                }
            };
            (code, Instant::now())
        }
        Err(e) => {
            eprintln!(
                "failover-verify rewind-guard: cannot run {}: {e}",
                pg_rewind.display()
            );
            (1, Instant::now())
        }
    };
    match accounting.await {
        Ok(mut p) => {
            let after = p
                .accounted_at
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(rewound));
            p.line(format!(
                "pg_rewind exited with code {code} after {:.2} s; the accounting ended {:.2} s after it",
                rewound.duration_since(started).as_secs_f64(),
                after.as_secs_f64()
            ));
            for l in p.take_lines() {
                eprintln!("{l}");
            }
        }
        Err(e) => eprintln!(
            "failover-verify rewind-guard: internal error in the accounting ({e}); the raw copy stays; pg_rewind's exit code stands"
        ),
    }
    code
}

/// Starts `exe rewind-guard --analyse-capture HANDOFF` in a session of its own, with no
/// standard streams (Patroni reads pg_rewind's output to its end: an heir of those pipes would
/// hold it up) and the guard's environment (`PGPASSFILE`).
fn spawn_analysis(exe: &Path, args: &RewindGuardArgs, handoff: &Path) -> std::io::Result<u32> {
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

/// Starts the real pg_rewind with the guard's standard streams; it gets SIGTERM if the guard
/// dies first, as it would have with the guard exec'ing it.
fn spawn_pg_rewind(pg_rewind: &Path, args: &[OsString]) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let mut c = std::process::Command::new(pg_rewind);
    c.args(args);
    // SAFETY: prctl is async-signal-safe and only sets the child's parent-death signal.
    unsafe {
        c.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.spawn()
}

/// The evidence root exists (created 0700 if not) and accepts a file.
fn ensure_root(root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !root.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)?;
    }
    guard::append_log(root, "")
}

fn redact(conninfo: &str) -> String {
    ConnParams::parse_with_process_env(conninfo)
        .map(|p| p.redacted())
        .unwrap_or_else(|_| "(unparsable conninfo)".into())
}

/// What [`examine`] found: a decision already (`Some(reason)` when a hold would be justified:
/// commits lost, or not known not to be), or a fresh copy to account for.
enum Examined {
    Decided(Option<String>),
    Copied(Box<Pending>),
}

/// The accounting of a fresh copy, left for later or for alongside pg_rewind.
#[derive(Debug)]
struct Pending {
    source_server: String,
    wal: PathBuf,
    raw: PathBuf,
    bundle: PathBuf,
    timeline: crate::lsn::TimelineId,
    /// The copied files and their SHA-256.
    digests: std::collections::BTreeMap<String, String>,
    rerun: String,
    budget: Duration,
    hold: HoldCheck,
}

/// What a detached analysis needs, written into the raw copy as `analysis.json` by the guard
/// and read by `rewind-guard --analyse-capture` (this process is pg_rewind by then).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Handoff {
    source_server: String,
    wal: PathBuf,
    raw: PathBuf,
    bundle: PathBuf,
    timeline: u32,
    digests: std::collections::BTreeMap<String, String>,
    rerun: String,
    budget_ms: u64,
}

/// The name of the hand-off file in the raw copy.
const HANDOFF: &str = "analysis.json";

/// Whether lost commits justify a hold of this divergence.
#[derive(Debug)]
struct HoldCheck {
    released: bool,
    marker: PathBuf,
    bundle: PathBuf,
    hint: String,
}

impl HoldCheck {
    fn lost(&self, commits: Option<u64>, log: &mut Log) -> Option<String> {
        if self.released {
            log.line(format!("{} exists: released", self.marker.display()));
            return None;
        }
        match commits {
            Some(0) => None,
            Some(n) => Some(format!(
                "{n} committed transactions were lost; evidence in {}; {}",
                self.bundle.display(),
                self.hint
            )),
            None => Some(format!(
                "the lost transactions could not be counted; {}",
                self.hint
            )),
        }
    }
}

/// Examines the target and copies its divergent WAL aside.
async fn examine(
    args: &RewindGuardArgs,
    target: &Path,
    source_server: &str,
    log: &mut Log,
) -> Examined {
    let ctl = match control::read(target) {
        Ok(c) => c,
        Err(e) => {
            log.line(format!("cannot examine the target: {e}"));
            return Examined::Decided(Some(format!("the target could not be examined ({e})")));
        }
    };
    let params = match ConnParams::parse_with_process_env(source_server) {
        Ok(p) => p,
        Err(e) => {
            log.line(format!("cannot parse --source-server: {e}"));
            return Examined::Decided(Some("the source could not be read".into()));
        }
    };
    let opts = SessionOptions::default();
    let source = tokio::time::timeout(
        Duration::from_secs(30),
        super::read_node(&params, &opts, None),
    )
    .await;
    let source_history = match source {
        Ok(r) => match r.facts {
            Some(f) if f.system_identifier != ctl.system_identifier => {
                log.line(format!(
                    "the source's system identifier {} differs from the target's {}: not the same cluster; leaving it to pg_rewind",
                    f.system_identifier.0, ctl.system_identifier.0
                ));
                return Examined::Decided(None);
            }
            Some(f) => match f.history {
                Some(h) => h,
                None => {
                    log.line(format!(
                        "cannot read the source's timeline history: {}",
                        f.history_problem.unwrap_or_else(|| "unknown reason".into())
                    ));
                    return Examined::Decided(Some(
                        "the source's history could not be read".into(),
                    ));
                }
            },
            None => {
                log.line(format!(
                    "cannot read the source {}: {}",
                    params.redacted(),
                    r.section.error.unwrap_or_default()
                ));
                return Examined::Decided(Some("the source could not be read".into()));
            }
        },
        Err(_) => {
            log.line("reading the source timed out after 30 s");
            return Examined::Decided(Some("the source could not be read".into()));
        }
    };
    let target_history = match guard::target_history(target, ctl.timeline) {
        Ok(h) => h,
        Err(e) => {
            log.line(format!("{e}; using the source's history alone"));
            crate::timeline::TimelineHistory::root(ctl.timeline)
        }
    };
    let (timeline, fork, end) = match Divergence::decide(&ctl, &target_history, &source_history) {
        Divergence::NotDiverged { why } => {
            log.line(format!("nothing to capture: {why}"));
            return Examined::Decided(None);
        }
        Divergence::Diverged {
            timeline,
            fork,
            end,
        } => (timeline, fork, end),
    };
    log.line(format!(
        "the target diverged: timeline {timeline} (pg_control: {}, last checkpoint {end}) goes past the fork at {fork}, where the source's timeline {} begins",
        ctl.state_name(),
        source_history.timeline
    ));
    let key = guard::capture_key(ctl.system_identifier, timeline, fork, end);
    let root = &args.evidence_root;
    let bundle = root.join(&key);
    let raw = root.join(format!("{key}.capture"));
    let hold = HoldCheck {
        released: guard::release_marker(root, &key).exists(),
        marker: guard::release_marker(root, &key),
        bundle: bundle.clone(),
        hint: format!(
            "to release: touch {} (then Patroni must try again: see the README, \"The rewind guard\")",
            guard::release_marker(root, &key).display()
        ),
    };
    if bundle.is_dir() {
        let commits = read_lost_commits(&bundle);
        log.line(format!(
            "already captured in {} ({}): not copied again",
            bundle.display(),
            commits.map_or("lost commits unknown".into(), |n| format!(
                "{n} lost commits"
            ))
        ));
        return Examined::Decided(hold.lost(commits, log));
    }
    if raw.is_dir() {
        log.line(format!(
            "already copied to {} (its analysis had failed): not copied again",
            raw.display()
        ));
        return Examined::Decided(hold.lost(None, log));
    }
    if log.root.is_none() {
        log.line(format!(
            "the divergent WAL of timeline {timeline} after {fork} is NOT captured (no writable evidence root); pg_rewind will remove it"
        ));
        return Examined::Decided(hold.lost(None, log));
    }

    // 1. The copy (never cut by the budget): staged, then renamed into place.
    let staged = root.join(format!(".{key}.capture.tmp-{}", std::process::id()));
    let copy_started = Instant::now();
    let end_limit = ctl.cleanly_stopped().then_some(end);
    let captured = match guard::capture(target, &staged, timeline, fork, end_limit) {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staged);
            log.line(format!("the copy failed: {e}; nothing captured"));
            return Examined::Decided(hold.lost(None, log));
        }
    };
    if let Err(e) = std::fs::rename(&staged, &raw) {
        let _ = std::fs::remove_dir_all(&staged);
        log.line(format!(
            "cannot rename {} to {}: {e}",
            staged.display(),
            raw.display()
        ));
        return Examined::Decided(hold.lost(None, log));
    }
    log.line(format!(
        "copied {} segments ({}) and {} history files to {} in {:.2} s (SHA-256 of each file once: hashing {:.2} s; final fsync {:.2} s)",
        captured.segments.len(),
        crate::divergence::human_bytes(captured.bytes),
        captured.histories.len(),
        raw.display(),
        copy_started.elapsed().as_secs_f64(),
        captured.times.hash.as_secs_f64(),
        captured.times.sync.as_secs_f64(),
    ));
    // The bundle takes these private copies over by hard link, with the digests just computed.
    let wal = raw.join("wal");
    for (name, sha256) in &captured.digests {
        if let Err(e) = crate::bundle::adopt::offer(&wal.join(name), sha256) {
            log.line(format!(
                "{}: {e}; the bundle will copy it instead",
                wal.join(name).display()
            ));
        }
    }

    // 2. The accounting and the bundle, within the budget: now or alongside pg_rewind.
    let rerun = format!(
        "failover-verify compare --new-primary '{}' --former-wal-dir {} --former-timeline {} --evidence-dir {}",
        params.redacted(),
        wal.display(),
        timeline.0,
        bundle.display()
    );
    Examined::Copied(Box::new(Pending {
        source_server: source_server.to_string(),
        wal,
        raw,
        bundle,
        timeline,
        digests: captured.digests,
        rerun,
        budget: args.budget,
        hold,
    }))
}

impl Pending {
    /// Runs `compare` on the copy into the bundle within the budget; removes the copy once
    /// the bundle is sealed. Returns `Some(reason)` when a hold would be justified.
    async fn account(self, log: &mut Log) -> Option<String> {
        let Pending {
            source_server,
            wal,
            raw,
            bundle,
            timeline,
            digests,
            rerun,
            budget,
            hold,
        } = self;
        crate::timing::enable(true);
        let analysis_started = Instant::now();
        // Its own task, so that the budget holds even while the analysis computes or writes
        // without yielding (a large bundle); at the budget it is abandoned, not awaited.
        let (w, b) = (wal.clone(), bundle.clone());
        let mut task = tokio::spawn(async move { analyse(&source_server, &w, timeline, &b).await });
        let result = match tokio::time::timeout(budget, &mut task).await {
            Ok(Ok(r)) => Ok(r.map_err(|e| e.to_string())),
            Ok(Err(e)) => Ok(Err(format!("the analysis stopped: {e}"))),
            Err(elapsed) => {
                task.abort();
                Err(elapsed)
            }
        };
        match result {
            Ok(Ok(report)) => {
                let commits = report.transactions.as_ref().map(|t| t.lost_commits as u64);
                log.line(format!(
                    "evidence bundle {} sealed in {:.2} s: verdict {}, {} lost commits{}",
                    bundle.display(),
                    analysis_started.elapsed().as_secs_f64(),
                    report.verdict.as_str(),
                    commits.map_or("unknown".into(), |n| n.to_string()),
                    if report.incomplete {
                        " (incomplete: see the report)"
                    } else {
                        ""
                    }
                ));
                log.line(format!("analysis phases: {}", phases()));
                for name in digests.keys() {
                    crate::bundle::adopt::withdraw(&wal.join(name));
                }
                match std::fs::remove_dir_all(&raw) {
                    Ok(()) => {}
                    Err(e) => log.line(format!(
                        "cannot remove the raw copy {} (the bundle holds the lost WAL): {e}",
                        raw.display()
                    )),
                }
                let loss = super::Exit::for_report(&report) == super::Exit::Loss;
                match commits {
                    Some(n) if n > 0 || !loss => hold.lost(Some(n), log),
                    _ if loss => hold.lost(None, log),
                    _ => None,
                }
            }
            Ok(Err(e)) => {
                log.line(format!(
                    "the accounting failed: {e}; the raw copy stays in {}; to analyse it: {rerun}",
                    raw.display()
                ));
                hold.lost(None, log)
            }
            Err(_) => {
                crate::pg::session::cancel_all().await;
                log.line(format!(
                    "the accounting did not finish within the budget of {:.1} s (abandoned; a hidden .<name>.incomplete-* directory beside the bundle may be left, remove it); the raw copy stays in {}; to analyse it: {rerun}",
                    budget.as_secs_f64(),
                    raw.display()
                ));
                hold.lost(None, log)
            }
        }
    }
}

/// The seam to `compare`: the copied WAL against the source as the new primary, sealed into
/// the evidence bundle `bundle`. When compare learns to decode the lost rows from WAL alone
/// (issue #15), the bundle gets them with no change here.
async fn analyse(
    source_server: &str,
    wal: &Path,
    timeline: crate::lsn::TimelineId,
    bundle: &Path,
) -> Result<crate::report::Report, super::CommandError> {
    use clap::Parser;
    let argv: Vec<OsString> = vec![
        "failover-verify".into(),
        "compare".into(),
        "--new-primary".into(),
        source_server.into(),
        "--former-wal-dir".into(),
        wal.into(),
        "--former-timeline".into(),
        timeline.0.to_string().into(),
        "--evidence-dir".into(),
        bundle.into(),
    ];
    let cli = crate::cli::Cli::try_parse_from(argv).map_err(|e| super::CommandError::Usage {
        flag: "--source-server",
        message: e.to_string(),
    })?;
    let crate::cli::Command::Compare(args) = cli.command else {
        return Err(super::CommandError::Usage {
            flag: "--source-server",
            message: "not a compare".into(),
        });
    };
    let input = super::compare::CompareInput::from_args(&args)?;
    super::compare::run(&input).await.map(|o| o.report)
}

/// The analysis's phases and their times (`compare: former timeline's WAL 2.10 s, ...`), for
/// the log: what a faster decoder or bundle would shorten.
fn phases() -> String {
    let mut sums: Vec<(&'static str, Duration)> = Vec::new();
    for (name, d) in crate::timing::take() {
        match sums.iter_mut().find(|(n, _)| *n == name) {
            Some((_, t)) => *t += d,
            None => sums.push((name, d)),
        }
    }
    if sums.is_empty() {
        return "none recorded".into();
    }
    sums.iter()
        .map(|(n, d)| {
            format!(
                "{} {:.2} s",
                n.trim_start_matches("compare: "),
                d.as_secs_f64()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `transactions.lost_commits` of a sealed bundle's report.json.
fn read_lost_commits(bundle: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(bundle.join("report.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    if v["exit_code"] == 0 {
        return Some(0);
    }
    v["transactions"]["lost_commits"].as_u64()
}
