//! Two nodes' facts in, a verdict out: same cluster?, where did the timelines fork, how much
//! WAL did the former primary write past that point.
//!
//! Pure computation; the facts are gathered by [`crate::node`].

use serde::{Deserialize, Serialize};

use crate::lsn::{Lsn, TimelineId};
use crate::node::NodeFacts;
use crate::timeline::TimelineHistory;

/// The answer a cron job and an on-call engineer act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The former primary wrote nothing past the switchpoint: no committed data can be lost.
    NoLoss,
    /// The former primary wrote WAL past the switchpoint that the new primary never received.
    Loss,
    /// The former primary already follows the new timeline: any evidence of loss is gone.
    Rewound,
    /// The two servers belong to different clusters (different system identifiers).
    Unrelated,
    /// The question cannot be decided with what could be read (unreachable, missing privilege).
    Inconclusive,
}

impl Verdict {
    /// The verdict as it appears in reports and metrics (`no_loss`, `loss`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::NoLoss => "no_loss",
            Verdict::Loss => "loss",
            Verdict::Rewound => "rewound",
            Verdict::Unrelated => "unrelated",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// Where the timelines forked and what the former primary wrote after the fork.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    /// The timeline the former primary is on (the one that holds the lost WAL).
    pub former_timeline: TimelineId,
    /// The new primary's current timeline.
    pub new_timeline: TimelineId,
    /// The first WAL position of the new primary's branch; the former's WAL from here on is lost.
    pub switchpoint_lsn: Option<Lsn>,
    /// The former primary's end of WAL, read once at the start of the run.
    pub former_end_lsn: Lsn,
    /// `max(0, former_end_lsn - switchpoint_lsn)`.
    pub lost_wal_bytes: u64,
    /// The new primary's timelines from the fork to now, e.g. `[1, 2, 3]` for two promotions.
    pub timeline_path: Vec<TimelineId>,
}

/// The outcome of comparing two nodes: a verdict, its one-sentence explanation and the numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analysis {
    /// What happened.
    pub verdict: Verdict,
    /// One sentence a tired on-call engineer understands.
    pub explanation: String,
    /// The numbers behind the verdict, when the timelines could be placed.
    pub divergence: Option<Divergence>,
}

/// Compares the new primary's and the former primary's facts.
pub fn analyze(new: &NodeFacts, former: &NodeFacts) -> Analysis {
    if new.system_identifier != former.system_identifier {
        return Analysis {
            verdict: Verdict::Unrelated,
            explanation: format!(
                "The two servers belong to different clusters (system identifiers {} and {}), so neither can have lost the other's data; check the connection strings.",
                new.system_identifier, former.system_identifier
            ),
            divergence: None,
        };
    }
    if new.same_server_as(former) {
        return Analysis {
            verdict: Verdict::Inconclusive,
            explanation: "Both connection strings reach the same server; point --former-primary at the node that was primary before the failover.".into(),
            divergence: None,
        };
    }
    let Some(new_history) = new.history.as_ref() else {
        return Analysis {
            verdict: Verdict::Inconclusive,
            explanation: format!(
                "The new primary's timeline {} history could not be read, so the switchpoint is unknown; {}",
                new.timeline,
                new.history_problem.as_deref().unwrap_or("grant the privilege named in the findings.")
            ),
            divergence: None,
        };
    };
    let former_history = former
        .history
        .clone()
        .or_else(|| implied_history(new_history, former.timeline));
    let Some(former_history) = former_history else {
        return Analysis {
            verdict: Verdict::Inconclusive,
            explanation: format!(
                "The former primary is on timeline {}, which is not in the new primary's history, and its own history could not be read; {}",
                former.timeline,
                former.history_problem.as_deref().unwrap_or("grant the privilege named in the findings.")
            ),
            divergence: None,
        };
    };

    let former_end = former.end_of_wal;
    let fork = new_history.fork_point(&former_history);
    let path = timeline_path(new_history, former.timeline);
    let divergence = |switchpoint: Option<Lsn>| Divergence {
        former_timeline: former.timeline,
        new_timeline: new.timeline,
        switchpoint_lsn: switchpoint,
        former_end_lsn: former_end,
        lost_wal_bytes: switchpoint.map_or(0, |s| former_end.saturating_bytes_since(s)),
        timeline_path: path.clone(),
    };

    // The former primary is on the new primary's timeline (or a descendant of it).
    if former_history.contains(new.timeline) {
        if former.timeline > new.timeline {
            return Analysis {
                verdict: Verdict::Inconclusive,
                explanation: format!(
                    "The \"former\" primary is on timeline {}, newer than the \"new\" primary's timeline {}; were --new-primary and --former-primary swapped?",
                    former.timeline, new.timeline
                ),
                divergence: Some(divergence(fork)),
            };
        }
        return Analysis {
            verdict: Verdict::Rewound,
            explanation: format!(
                "The former primary already follows the new timeline {}: if it had WAL that never reached the new primary, pg_rewind or a reinit has destroyed it, so loss can no longer be measured here.",
                new.timeline
            ),
            divergence: Some(divergence(None)),
        };
    }

    let Some(switchpoint) = fork else {
        // No fork and not on the same branch: the new primary is behind the former one on
        // the same line, which a promotion cannot produce.
        return Analysis {
            verdict: Verdict::Inconclusive,
            explanation: format!(
                "The timelines do not fork: the new primary (timeline {}) is an ancestor of the former primary's timeline {}; were the two swapped?",
                new.timeline, former.timeline
            ),
            divergence: None,
        };
    };

    let d = divergence(Some(switchpoint));
    if former_end <= switchpoint {
        Analysis {
            verdict: Verdict::NoLoss,
            explanation: format!(
                "The former primary's WAL ends at {former_end}, at or before the switchpoint {switchpoint}: the new primary received everything it wrote."
            ),
            divergence: Some(d),
        }
    } else {
        Analysis {
            verdict: Verdict::Loss,
            explanation: format!(
                "The former primary wrote {} of WAL on timeline {} after the switchpoint {switchpoint} (up to {former_end}) that the new primary never received; transactions committed there are missing from timeline {}.",
                human_bytes(d.lost_wal_bytes),
                former.timeline,
                new.timeline
            ),
            divergence: Some(d),
        }
    }
}

/// The former node's history as implied by the new primary's, when it is an ancestor there.
pub fn implied_history(new: &TimelineHistory, former: TimelineId) -> Option<TimelineHistory> {
    if former == new.timeline {
        return Some(new.clone());
    }
    let pos = new.entries.iter().position(|e| e.parent == former)?;
    Some(TimelineHistory {
        timeline: former,
        entries: new.entries[..pos].to_vec(),
    })
}

/// The timelines of the new primary's history from `from` to its current one.
fn timeline_path(new: &TimelineHistory, from: TimelineId) -> Vec<TimelineId> {
    let mut path: Vec<TimelineId> = new
        .entries
        .iter()
        .map(|e| e.parent)
        .skip_while(|t| *t != from)
        .collect();
    path.push(new.timeline);
    path
}

/// Bytes in binary units, e.g. `1.5 MiB`, for explanations.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsn::SystemId;
    use crate::node::NodeFacts;

    fn node(tli: u32, history: &str, end: u64) -> NodeFacts {
        let timeline = TimelineId(tli);
        let history = if tli == 1 {
            TimelineHistory::root(timeline)
        } else {
            TimelineHistory::parse("test", timeline, history).unwrap()
        };
        NodeFacts {
            system_identifier: SystemId(42),
            timeline,
            end_of_wal: Lsn(end),
            history: Some(history),
            ..NodeFacts::default()
        }
    }

    #[test]
    fn loss_counts_bytes_past_the_switchpoint() {
        let new = node(2, "1\t0/3000060\tx\n", 0x3100000);
        let former = node(1, "", 0x3000160);
        let a = analyze(&new, &former);
        assert_eq!(a.verdict, Verdict::Loss);
        let d = a.divergence.unwrap();
        assert_eq!(d.switchpoint_lsn, Some(Lsn(0x3000060)));
        assert_eq!(d.lost_wal_bytes, 0x100);
        assert_eq!(d.timeline_path, vec![TimelineId(1), TimelineId(2)]);
    }

    #[test]
    fn no_loss_when_former_ends_at_switchpoint() {
        let new = node(2, "1\t0/3000060\tx\n", 0x3100000);
        let former = node(1, "", 0x3000060);
        let a = analyze(&new, &former);
        assert_eq!(a.verdict, Verdict::NoLoss);
        assert_eq!(a.divergence.unwrap().lost_wal_bytes, 0);
    }

    #[test]
    fn chain_of_two_promotions_uses_timeline_one_end() {
        let new = node(3, "1\t0/3000060\tx\n2\t0/5000000\tx\n", 0x6000000);
        let former = node(1, "", 0x3000460);
        let a = analyze(&new, &former);
        assert_eq!(a.verdict, Verdict::Loss);
        let d = a.divergence.unwrap();
        assert_eq!(d.switchpoint_lsn, Some(Lsn(0x3000060)));
        assert_eq!(d.lost_wal_bytes, 0x400);
        assert_eq!(d.timeline_path.len(), 3);
    }

    #[test]
    fn following_the_new_timeline_is_rewound() {
        let new = node(2, "1\t0/3000060\tx\n", 0x3100000);
        let former = node(2, "1\t0/3000060\tx\n", 0x3100000);
        assert_eq!(analyze(&new, &former).verdict, Verdict::Rewound);
    }

    #[test]
    fn different_system_ids_are_unrelated() {
        let new = node(2, "1\t0/3000060\tx\n", 0x3100000);
        let mut former = node(1, "", 0x3000160);
        former.system_identifier = SystemId(7);
        let a = analyze(&new, &former);
        assert_eq!(a.verdict, Verdict::Unrelated);
        assert!(a.explanation.contains("42") && a.explanation.contains('7'));
    }

    #[test]
    fn swapped_roles_are_flagged() {
        let former = node(2, "1\t0/3000060\tx\n", 0x3100000);
        let new = node(1, "", 0x3000160);
        let a = analyze(&new, &former);
        assert_eq!(a.verdict, Verdict::Inconclusive);
        assert!(a.explanation.contains("swapped"), "{}", a.explanation);
    }

    #[test]
    fn missing_history_is_inconclusive_with_the_reason() {
        let mut new = node(2, "1\t0/3000060\tx\n", 0x3100000);
        new.history = None;
        new.history_problem = Some("grant REPLICATION".into());
        let a = analyze(&new, &node(1, "", 0x3000160));
        assert_eq!(a.verdict, Verdict::Inconclusive);
        assert!(a.explanation.contains("grant REPLICATION"));
    }

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(10), "10 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
