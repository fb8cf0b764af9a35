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

/// Runs the guard's part of one pg_rewind call (never the rewind itself).
pub async fn run(args: &RewindGuardArgs) -> GuardOutcome {
    let mut log = Log {
        root: None,
        lines: Vec::new(),
        started: Instant::now(),
    };
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
            return GuardOutcome {
                lines: log.lines,
                hold: None,
            };
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
    let hold = examine(args, &target, &source_server, &mut log).await;
    if args.replica_method {
        log.line("exiting 1 so that Patroni runs its next replica method");
        return GuardOutcome {
            lines: log.lines,
            hold: Some("replica method: always falls through".into()),
        };
    }
    let hold = match hold {
        Some(reason) if args.hold_when_lost => {
            let line = format!("HOLDING the rewind: {reason}");
            log.line(line);
            Some(reason)
        }
        _ => None,
    };
    if hold.is_none() {
        log.line(format!("running {} now", args.pg_rewind.display()));
    }
    GuardOutcome {
        lines: log.lines,
        hold,
    }
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

/// Examines the target, captures and accounts for its divergence. Returns `Some(reason)` when
/// a hold would be justified (commits lost, or not known not to be), `None` otherwise.
async fn examine(
    args: &RewindGuardArgs,
    target: &Path,
    source_server: &str,
    log: &mut Log,
) -> Option<String> {
    let ctl = match control::read(target) {
        Ok(c) => c,
        Err(e) => {
            log.line(format!("cannot examine the target: {e}"));
            return Some(format!("the target could not be examined ({e})"));
        }
    };
    let params = match ConnParams::parse_with_process_env(source_server) {
        Ok(p) => p,
        Err(e) => {
            log.line(format!("cannot parse --source-server: {e}"));
            return Some("the source could not be read".into());
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
                return None;
            }
            Some(f) => match f.history {
                Some(h) => h,
                None => {
                    log.line(format!(
                        "cannot read the source's timeline history: {}",
                        f.history_problem.unwrap_or_else(|| "unknown reason".into())
                    ));
                    return Some("the source's history could not be read".into());
                }
            },
            None => {
                log.line(format!(
                    "cannot read the source {}: {}",
                    params.redacted(),
                    r.section.error.unwrap_or_default()
                ));
                return Some("the source could not be read".into());
            }
        },
        Err(_) => {
            log.line("reading the source timed out after 30 s");
            return Some("the source could not be read".into());
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
            return None;
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
    let released = guard::release_marker(root, &key).exists();
    let release_hint = format!(
        "to release: touch {} (then Patroni must try again: see the README, \"The rewind guard\")",
        guard::release_marker(root, &key).display()
    );
    let lost = |commits: Option<u64>, log: &mut Log| -> Option<String> {
        if released {
            log.line(format!(
                "{} exists: released",
                guard::release_marker(root, &key).display()
            ));
            return None;
        }
        match commits {
            Some(0) => None,
            Some(n) => Some(format!(
                "{n} committed transactions were lost; evidence in {}; {release_hint}",
                bundle.display()
            )),
            None => Some(format!(
                "the lost transactions could not be counted; {release_hint}"
            )),
        }
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
        return lost(commits, log);
    }
    if raw.is_dir() {
        log.line(format!(
            "already copied to {} (its analysis had failed): not copied again",
            raw.display()
        ));
        return lost(None, log);
    }
    if log.root.is_none() {
        log.line(format!(
            "the divergent WAL of timeline {timeline} after {fork} is NOT captured (no writable evidence root); pg_rewind will remove it"
        ));
        return lost(None, log);
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
            return lost(None, log);
        }
    };
    if let Err(e) = std::fs::rename(&staged, &raw) {
        let _ = std::fs::remove_dir_all(&staged);
        log.line(format!(
            "cannot rename {} to {}: {e}",
            staged.display(),
            raw.display()
        ));
        return lost(None, log);
    }
    log.line(format!(
        "copied {} segments ({}) and {} history files to {} in {:.2} s",
        captured.segments.len(),
        crate::divergence::human_bytes(captured.bytes),
        captured.histories.len(),
        raw.display(),
        copy_started.elapsed().as_secs_f64()
    ));

    // 2. The accounting and the bundle, within the budget.
    let wal = raw.join("wal");
    let rerun = format!(
        "failover-verify compare --new-primary '{}' --former-wal-dir {} --former-timeline {} --evidence-dir {}",
        params.redacted(),
        wal.display(),
        timeline.0,
        bundle.display()
    );
    let budget = args.budget;
    let analysis_started = Instant::now();
    let result =
        tokio::time::timeout(budget, analyse(source_server, &wal, timeline, &bundle)).await;
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
            match std::fs::remove_dir_all(&raw) {
                Ok(()) => {}
                Err(e) => log.line(format!(
                    "cannot remove the raw copy {} (the bundle holds the lost WAL): {e}",
                    raw.display()
                )),
            }
            let loss = super::Exit::for_report(&report) == super::Exit::Loss;
            match commits {
                Some(n) if n > 0 || !loss => lost(Some(n), log),
                _ if loss => lost(None, log),
                _ => None,
            }
        }
        Ok(Err(e)) => {
            log.line(format!(
                "the accounting failed: {e}; the raw copy stays in {}; to analyse it: {rerun}",
                raw.display()
            ));
            lost(None, log)
        }
        Err(_) => {
            crate::pg::session::cancel_all().await;
            log.line(format!(
                "the accounting did not finish within the budget of {:.1} s; the raw copy stays in {}; to analyse it: {rerun}",
                budget.as_secs_f64(),
                raw.display()
            ));
            lost(None, log)
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

/// `transactions.lost_commits` of a sealed bundle's report.json.
fn read_lost_commits(bundle: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(bundle.join("report.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    if v["exit_code"] == 0 {
        return Some(0);
    }
    v["transactions"]["lost_commits"].as_u64()
}
