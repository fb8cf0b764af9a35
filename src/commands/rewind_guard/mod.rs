//! `rewind-guard`: capture a diverged former primary's lost WAL and account for it, then hand
//! over to the real pg_rewind. Never blocks the rewind by accident: every failure of its own
//! becomes a log line, and only `--hold-when-lost` may refuse it.

mod detach;
mod examine;
mod log;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::RewindGuardArgs;
use crate::guard::{self, Invocation};
use crate::pg::ConnParams;

pub use detach::analyse_capture;
use detach::{spawn_analysis, Handoff, HANDOFF};
use examine::{examine, Examined, Pending};
use log::Log;

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
