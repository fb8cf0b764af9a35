//! What the guard examines before pg_rewind runs: the divergence, the private copy of the lost
//! WAL, and the accounting that seals it as an evidence bundle.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::RewindGuardArgs;
use crate::guard::{self, control, Divergence};
use crate::pg::session::SessionOptions;
use crate::pg::ConnParams;

use super::log::Log;

/// What [`examine`] found: a decision already (`Some(reason)` when a hold would be justified:
/// commits lost, or not known not to be), or a fresh copy to account for.
pub(super) enum Examined {
    Decided(Option<String>),
    Copied(Box<Pending>),
}

/// The accounting of a fresh copy, left for later or for alongside pg_rewind.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) source_server: String,
    pub(super) wal: PathBuf,
    pub(super) raw: PathBuf,
    pub(super) bundle: PathBuf,
    pub(super) timeline: crate::lsn::TimelineId,
    /// The copied files and their SHA-256.
    pub(super) digests: std::collections::BTreeMap<String, String>,
    pub(super) rerun: String,
    pub(super) budget: Duration,
    pub(super) hold: HoldCheck,
}

/// Whether lost commits justify a hold of this divergence.
#[derive(Debug)]
pub(super) struct HoldCheck {
    pub(super) released: bool,
    pub(super) marker: PathBuf,
    pub(super) bundle: PathBuf,
    pub(super) hint: String,
}

impl HoldCheck {
    pub(super) fn lost(&self, commits: Option<u64>, log: &mut Log) -> Option<String> {
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
pub(super) async fn examine(
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
        crate::commands::read_node(&params, &opts, None),
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
    pub(super) async fn account(self, log: &mut Log) -> Option<String> {
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
                let loss =
                    crate::commands::Exit::for_report(&report) == crate::commands::Exit::Loss;
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
pub(super) async fn analyse(
    source_server: &str,
    wal: &Path,
    timeline: crate::lsn::TimelineId,
    bundle: &Path,
) -> Result<crate::report::Report, crate::commands::CommandError> {
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
    let cli = crate::cli::Cli::try_parse_from(argv).map_err(|e| {
        crate::commands::CommandError::Usage {
            flag: "--source-server",
            message: e.to_string(),
        }
    })?;
    let crate::cli::Command::Compare(args) = cli.command else {
        return Err(crate::commands::CommandError::Usage {
            flag: "--source-server",
            message: "not a compare".into(),
        });
    };
    let input = crate::commands::compare::CompareInput::from_args(&args)?;
    crate::commands::compare::run(&input)
        .await
        .map(|o| o.report)
}

/// The analysis's phases and their times (`compare: former timeline's WAL 2.10 s, ...`), for
/// the log: what a faster decoder or bundle would shorten.
pub(super) fn phases() -> String {
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
pub(super) fn read_lost_commits(bundle: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(bundle.join("report.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    if v["exit_code"] == 0 {
        return Some(0);
    }
    v["transactions"]["lost_commits"].as_u64()
}
