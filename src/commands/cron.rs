//! The cron decision: given what the state file remembers and this run's report, whether to
//! print it, whether to record it, which notice to give and which exit code to return. A pure
//! function, so every case is unit-tested without servers.

use crate::state::{Decision, RunKey, StateFile};

use super::Exit;

/// What cron mode does with a finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronPlan {
    /// Print the report on stdout (when no `--output` file takes it).
    pub print_report: bool,
    /// Record this run in the state file.
    pub record: bool,
    /// A line for stderr, if any.
    pub notice: Option<String>,
    /// The process's exit code.
    pub exit: Exit,
}

/// Decides what to do with a run whose report exits with `exit` and is identified by `key`
/// (`None` when the report could not say which cluster and timeline it is about), given the
/// state file (`None` without `--state`).
///
/// Already reported (same cluster, command, timeline and verdict): stay quiet and exit 0, so
/// that a cron job mails once per incident. Anything new: print, record, and exit with the
/// report's code; with a previous entry, say what changed (unless `quiet`).
pub fn plan(
    state: Option<&StateFile>,
    key: Option<&RunKey>,
    exit: Exit,
    quiet: bool,
    verbose: bool,
) -> CronPlan {
    let decision = match (state, key) {
        (Some(s), Some(k)) => s.decide(k),
        _ => Decision::New { previous: None },
    };
    match decision {
        Decision::AlreadyReported(e) => CronPlan {
            print_report: false,
            record: false,
            notice: verbose.then(|| {
                format!(
                    "failover-verify: already reported at {}: timeline {}, verdict {}; nothing new",
                    e.recorded_at, e.timeline, e.verdict
                )
            }),
            exit: Exit::NoLoss,
        },
        Decision::New { previous } => CronPlan {
            print_report: true,
            record: state.is_some() && key.is_some(),
            notice: previous.filter(|_| !quiet).map(|prev| {
                format!(
                    "failover-verify: new since the last report ({} at {}, timeline {})",
                    prev.verdict, prev.recorded_at, prev.timeline
                )
            }),
            exit,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsn::{SystemId, TimelineId};

    fn key(timeline: u32, verdict: &str) -> RunKey {
        RunKey {
            system_identifier: SystemId(7),
            command: "compare",
            timeline: TimelineId(timeline),
            verdict: verdict.into(),
        }
    }

    fn state_with(k: &RunKey) -> StateFile {
        let mut s = StateFile::default();
        s.record(k, "2026-12-03T10:00:00Z");
        s
    }

    #[test]
    fn without_a_state_file_every_run_prints_and_keeps_its_code() {
        let p = plan(None, Some(&key(2, "loss")), Exit::Loss, false, false);
        assert_eq!(
            p,
            CronPlan {
                print_report: true,
                record: false,
                notice: None,
                exit: Exit::Loss
            }
        );
    }

    #[test]
    fn the_same_incident_twice_is_quiet_and_exits_zero() {
        let k = key(2, "loss");
        let s = state_with(&k);
        let p = plan(Some(&s), Some(&k), Exit::Loss, false, false);
        assert!(!p.print_report && !p.record && p.notice.is_none());
        assert_eq!(p.exit, Exit::NoLoss);
        let v = plan(Some(&s), Some(&k), Exit::Loss, false, true);
        assert!(v.notice.unwrap().contains("already reported"));
    }

    #[test]
    fn a_new_timeline_or_verdict_is_news() {
        let s = state_with(&key(2, "loss"));
        for k in [key(3, "loss"), key(2, "no_loss")] {
            let p = plan(Some(&s), Some(&k), Exit::Loss, false, false);
            assert!(p.print_report && p.record);
            assert_eq!(p.exit, Exit::Loss);
            assert!(p.notice.unwrap().contains("new since the last report"));
            let q = plan(Some(&s), Some(&k), Exit::Loss, true, false);
            assert!(q.notice.is_none(), "--quiet keeps stderr empty");
        }
    }

    #[test]
    fn a_report_that_cannot_name_its_cluster_is_never_recorded() {
        let s = StateFile::default();
        let p = plan(Some(&s), None, Exit::Undecided, false, false);
        assert!(p.print_report && !p.record);
        assert_eq!(p.exit, Exit::Undecided);
    }
}
