//! Each node placed on the primary's timeline history, and the primary picked among the nodes.

use crate::divergence::{analyze, Verdict};
use crate::finding::{Finding, FindingId};
use crate::forktree::{ForkTree, TreeInput, WalReceiver};
use crate::lsn::TimelineId;
use crate::node::NodeFacts;
use crate::pg::conninfo::ConnParams;
use crate::report::cluster::{NodeCheck, NodeStatus};

use super::standbys::{bytes_text, lsn_col};

/// Places one `--node` on the primary's timeline history.
pub(super) fn place(
    primary: &NodeFacts,
    address: String,
    read: crate::commands::ReadNode,
) -> NodeCheck {
    let Some(f) = read.facts else {
        let why = read
            .section
            .error
            .clone()
            .unwrap_or_else(|| "unreadable".into());
        return NodeCheck {
            node: read.section,
            // `why` names host:port (see `read_node`).
            explanation: why,
            address,
            status: NodeStatus::Unreadable,
            verdict: None,
            divergence: None,
        };
    };
    if primary.same_server_as(&f) {
        // Listing every member with --node is the natural setup: the primary is one of them.
        return NodeCheck {
            node: read.section,
            explanation: format!("{address} is the primary itself."),
            address,
            status: NodeStatus::OnHistory,
            verdict: None,
            divergence: None,
        };
    }
    let a = analyze(primary, &f);
    let (status, explanation) = match a.verdict {
        Verdict::Loss => {
            let d = a.divergence.as_ref();
            (
                NodeStatus::Diverged,
                format!(
                    "{address} stayed on timeline {} and wrote {} of WAL past {}, where timeline {} ends in the primary's history (its WAL ends at {}): it holds WAL the primary never received.",
                    f.timeline,
                    bytes_text(d.map_or(0, |d| d.lost_wal_bytes)),
                    crate::report::lsn_or_dash(d.and_then(|d| d.switchpoint_lsn)),
                    f.timeline,
                    f.end_of_wal,
                ),
            )
        }
        Verdict::Rewound | Verdict::NoLoss if f.timeline == primary.timeline => (
            NodeStatus::OnHistory,
            format!(
                "{address} is a {} on the primary's timeline {} (end of WAL {}).",
                f.role(),
                f.timeline,
                f.end_of_wal
            ),
        ),
        Verdict::NoLoss => (
            NodeStatus::OnHistory,
            format!(
                "{address} is a {} on timeline {}, an ancestor of the primary's timeline {}, and its WAL ends at {}, at or before where timeline {} ends ({}): it can follow the primary.",
                f.role(),
                f.timeline,
                primary.timeline,
                f.end_of_wal,
                f.timeline,
                crate::report::lsn_or_dash(a.divergence.as_ref().and_then(|d| d.switchpoint_lsn)),
            ),
        ),
        Verdict::Unrelated => (NodeStatus::Unrelated, a.explanation.clone()),
        Verdict::Rewound | Verdict::Inconclusive => {
            let why = if f.timeline > primary.timeline {
                format!(
                    "{address} is on timeline {}, newer than the primary's timeline {}: --primary may point at a former primary; check which node is the real primary.",
                    f.timeline, primary.timeline
                )
            } else {
                format!("{address} could not be placed: {}", a.explanation)
            };
            (NodeStatus::Undecided, why)
        }
    };
    NodeCheck {
        node: read.section,
        address,
        status,
        verdict: Some(a.verdict),
        explanation,
        divergence: a.divergence,
    }
}

/// `pg_stat_wal_receiver`: whom a standby streams from (`flushed_lsn` is PostgreSQL 13+).
pub(super) fn receiver_sql(server_version_num: u32) -> String {
    let flushed = if server_version_num >= 130000 {
        "flushed_lsn"
    } else {
        "received_lsn"
    };
    format!(
        "SELECT status::text, sender_host::text, sender_port::int4, received_tli::int4,
                {flushed}::text, slot_name::text
           FROM pg_stat_wal_receiver LIMIT 1"
    )
}

/// Reads a node's WAL receiver; `None` when it has none running (or it cannot be read).
pub(super) async fn read_receiver(read: &crate::commands::ReadNode) -> Option<WalReceiver> {
    let (session, facts) = (read.session.as_ref()?, read.facts.as_ref()?);
    let row = session
        .query_opt(receiver_sql(facts.server_version_num).as_str(), &[])
        .await
        .ok()??;
    Some(WalReceiver {
        status: row.get(0),
        sender_host: row.get(1),
        sender_port: row
            .get::<_, Option<i32>>(2)
            .and_then(|p| u16::try_from(p).ok()),
        received_tli: row
            .get::<_, Option<i32>>(3)
            .and_then(|t| u32::try_from(t).ok())
            .map(TimelineId),
        flushed_lsn: lsn_col(&row, 4),
        slot_name: row.get(5),
    })
}

/// With `--node` alone: the writable node on the newest timeline (the first one given on a
/// tie), as the primary.
pub(super) fn pick_primary(reads: &[(ConnParams, crate::commands::ReadNode)]) -> Option<usize> {
    reads
        .iter()
        .enumerate()
        .filter_map(|(i, (_, r))| {
            let f = r.facts.as_ref()?;
            (!f.in_recovery).then_some((f.timeline, std::cmp::Reverse(i), i))
        })
        .max()
        .map(|(_, _, i)| i)
}

/// The findings of the fork tree: split brains (with the WAL written on each side) and
/// standbys following an upstream that is not on the current timeline.
pub(super) fn tree_findings(
    tree: &ForkTree,
    primary: &NodeFacts,
    inputs: &[TreeInput],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for b in &tree.split_brains {
        let sides: Vec<String> = b
            .sides
            .iter()
            .map(|s| {
                format!(
                    "{} ({}, timeline {}) wrote {}..{} ({})",
                    s.address,
                    if s.writable {
                        "accepts writes"
                    } else {
                        "in recovery"
                    },
                    s.timeline,
                    s.from,
                    s.to,
                    bytes_text(s.bytes())
                )
            })
            .collect();
        let (a, b2) = (&b.sides[0].address, &b.sides[1].address);
        out.push(
            Finding::new(
                FindingId::SplitBrain,
                format!("split brain: {}: {}", b.reason, sides.join("; ")),
            )
            .with_hint(format!(
                "fence all but one of {a} and {b2} now (stop writes: a read-only default_transaction_read_only, a stopped service, a cut network), then list what each side wrote with `failover-verify compare --new-primary <the side you keep> --former-primary <the other>`"
            )),
        );
    }
    for n in &tree.nodes {
        if n.upstream_on_current != Some(false) {
            continue;
        }
        let received = inputs
            .iter()
            .find(|i| i.address == n.address)
            .and_then(|i| i.receiver.as_ref())
            .and_then(|r| r.received_tli);
        out.push(
            Finding::new(
                FindingId::UpstreamOffTimeline,
                format!(
                    "{} (timeline {}) streams from {} ({}{}), which is not on the current timeline {} of the primary",
                    n.address,
                    n.timeline.map_or_else(|| "?".into(), |t| t.to_string()),
                    n.upstream.as_deref().unwrap_or("an unknown upstream"),
                    n.upstream_status.as_deref().unwrap_or("?"),
                    received.map_or_else(String::new, |t| format!(", last received timeline {t}")),
                    primary.timeline
                ),
            )
            .with_hint(format!(
                "check first whether it holds WAL the primary lacks (see the tree), then point its primary_conninfo at the primary (timeline {})",
                primary.timeline
            )),
        );
    }
    out
}
