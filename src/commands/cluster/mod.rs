//! `failover-verify cluster`: the check to run when nothing has happened yet. Lists every
//! standby and replication slot the primary knows about with its lag in bytes, and places
//! each `--node` on the primary's timeline history, flagging a node that diverged (it stayed
//! on an older timeline and wrote WAL past the point where that timeline ends in the
//! primary's history: it holds lost WAL and is one pg_rewind away from destroying it).

mod input;
mod place;
mod standbys;

use std::time::Instant;

use futures_util::future::join_all;

use crate::cli::{ClusterArgs, CompareArgs};
use crate::divergence::human_bytes;
use crate::finding::{Finding, FindingId};
use crate::forktree::{self, TreeInput};
use crate::pg::conninfo::ConnParams;
use crate::report::cluster::{
    ClusterReport, ClusterVerdict, NodeCheck, NodeStatus, CLUSTER_SCHEMA_VERSION,
};

use super::{CommandError, Exit};
use crate::report::{now_rfc3339, tool_id};
pub use input::{ClusterInput, ClusterPlan};
use place::{pick_primary, place, read_receiver, tree_findings};
use standbys::bytes_text;
use standbys::read_replication;

/// `compare --new-primary X` without a former primary is the cluster check of X.
pub fn args_from_compare(args: &CompareArgs) -> ClusterArgs {
    ClusterArgs {
        primary: args.new_primary.clone(),
        nodes: Vec::new(),
        patroni: args.patroni.clone(),
        discovery: args.discovery.clone(),
        state: args.state.clone(),
        output: args.output.clone(),
        timeouts: args.timeouts.clone(),
    }
}

/// The exit code of a cluster report: 0 healthy, 1 diverged, 2 inconclusive.
pub fn exit_for(v: ClusterVerdict) -> Exit {
    match v {
        ClusterVerdict::Healthy => Exit::NoLoss,
        ClusterVerdict::Diverged => Exit::Loss,
        ClusterVerdict::Inconclusive => Exit::Undecided,
    }
}

/// Runs the cluster check and builds its report. Fails only when the primary cannot be read.
pub async fn run(input: &ClusterInput) -> Result<ClusterReport, CommandError> {
    let started = Instant::now();
    let generated_at = now_rfc3339();
    let nodes = join_all(
        input
            .nodes
            .iter()
            .map(|p| super::read_node(p, &input.session, None)),
    );
    let given_primary = async {
        match &input.primary {
            Some(p) => Some(super::read_node(p, &input.session, None).await),
            None => None,
        }
    };
    let (primary, nodes) = tokio::join!(given_primary, nodes);
    let mut reads: Vec<(ConnParams, super::ReadNode)> =
        input.nodes.iter().cloned().zip(nodes).collect();
    let (primary_params, mut primary) = match (primary, &input.primary) {
        (Some(r), Some(p)) => (p.clone(), r),
        _ => match pick_primary(&reads) {
            Some(i) => reads.remove(i),
            None => {
                let why: Vec<String> = reads
                    .iter()
                    .map(|(p, r)| match (&r.facts, &r.section.error) {
                        (Some(_), _) => format!("{} is in recovery", p.target()),
                        (None, e) => e.clone().unwrap_or_else(|| p.target()),
                    })
                    .collect();
                for (_, r) in reads {
                    if let Some(s) = r.session {
                        s.close().await;
                    }
                }
                return Err(CommandError::NoWritableNode(why.join("; ")));
            }
        },
    };
    let mut receivers = Vec::with_capacity(reads.len());
    for (_, r) in &reads {
        receivers.push(read_receiver(r).await);
    }
    let primary_receiver = read_receiver(&primary).await;
    let primary_address = primary_params.target();
    let (Some(pfacts), Some(session)) = (primary.facts.clone(), primary.session.take()) else {
        for (_, n) in reads {
            if let Some(s) = n.session {
                s.close().await;
            }
        }
        return Err(CommandError::Primary(primary.take_error()));
    };
    let mut findings = primary.findings;
    let mut incomplete = false;
    // The Patroni configuration audit: what will destroy the next lossy failover's evidence.
    match &input.patroni_config {
        Some(Ok(dynamic)) => {
            let show = |name: &'static str| {
                let session = &session;
                async move {
                    session
                        .query_one(&format!("SELECT current_setting('{name}')"), &[])
                        .await
                        .ok()
                        .and_then(|r| r.get::<_, Option<String>>(0))
                }
            };
            let audit = crate::patroni_audit::AuditInput {
                dynamic: dynamic.clone(),
                archive_mode: show("archive_mode").await,
                archive_command: show("archive_command").await,
            };
            findings.extend(crate::patroni_audit::audit(&audit));
        }
        Some(Err(e)) => findings.push(Finding::new(
            FindingId::PatroniAuditIncomplete,
            format!("Patroni's configuration could not be read for the audit: {e}"),
        )),
        None => {}
    }

    if pfacts.in_recovery {
        incomplete = true;
        findings.push(Finding {
            severity: FindingId::PrimaryInRecovery.severity(),
            id: FindingId::PrimaryInRecovery,
            message: format!(
                "{primary_address} is in recovery (a standby), not a primary: was there a failover?"
            ),
            hint: Some("point --primary at the current primary; to check what the failover lost, run `failover-verify compare --new-primary <new> --former-primary <this node>`".into()),
        });
    }

    let (current_lsn, standbys, slots) = match read_replication(&session, &pfacts).await {
        Ok(x) => x,
        Err(e) => {
            incomplete = true;
            findings.push(Finding {
                severity: FindingId::ReplicationUnreadable.severity(),
                id: FindingId::ReplicationUnreadable,
                message: format!(
                    "{primary_address}: pg_stat_replication / pg_replication_slots could not be read: {e}"
                ),
                hint: Some("GRANT pg_monitor TO the role".into()),
            });
            (None, Vec::new(), Vec::new())
        }
    };
    session.close().await;

    if standbys.iter().any(|s| s.replay_lsn.is_none()) {
        findings.push(Finding {
            severity: FindingId::ReplicationColumnsHidden.severity(),
            id: FindingId::ReplicationColumnsHidden,
            message: format!(
                "{primary_address}: the WAL positions of some standbys are hidden from this role, so their lag is unknown"
            ),
            hint: Some("GRANT pg_monitor TO the role".into()),
        });
    }
    if standbys.is_empty() && !pfacts.in_recovery {
        findings.push(Finding {
            severity: FindingId::NoStandbys.severity(),
            id: FindingId::NoStandbys,
            message: format!("{primary_address}: no standby is streaming from the primary"),
            hint: None,
        });
    }
    for s in slots.iter().filter(|s| !s.active) {
        findings.push(Finding {
            severity: FindingId::InactiveSlot.severity(),
            id: FindingId::InactiveSlot,
            message: format!(
                "replication slot {} ({}) is inactive: the node that used it no longer streams; it holds back {} of WAL since {} (wal_status {})",
                s.slot_name,
                s.slot_type,
                s.lag_bytes.map_or_else(|| "an unknown amount".into(), human_bytes),
                crate::report::lsn_or_dash(s.restart_lsn),
                s.wal_status.as_deref().unwrap_or("-"),
            ),
            hint: Some("find out where that node went (a former primary? keep it isolated until it is checked); if it is gone for good, the slot only fills the primary's disk".into()),
        });
    }

    // The fork tree: the primary first, then every other node read (the primary's own
    // address given again with --node is left out).
    let mut tree_inputs = vec![TreeInput {
        address: primary_address.clone(),
        facts: Some(pfacts.clone()),
        receiver: primary_receiver,
        error: None,
    }];
    for ((params, read), receiver) in reads.iter().zip(&receivers) {
        if read
            .facts
            .as_ref()
            .is_some_and(|f| f.same_server_as(&pfacts))
        {
            continue;
        }
        tree_inputs.push(TreeInput {
            address: params.target(),
            facts: read.facts.clone(),
            receiver: receiver.clone(),
            error: read.section.error.clone(),
        });
    }
    let tree = forktree::build(&tree_inputs, Some(0), Some(pfacts.system_identifier));
    findings.extend(tree_findings(&tree, &pfacts, &tree_inputs));

    let mut checks = Vec::with_capacity(reads.len());
    for (params, mut read) in reads {
        findings.append(&mut read.findings);
        if let Some(s) = read.session.take() {
            s.close().await;
        }
        checks.push(place(&pfacts, params.target(), read));
    }
    for c in &checks {
        let (id, hint) = match c.status {
            NodeStatus::Diverged => (
                FindingId::DivergedNode,
                Some(format!(
                    "do not pg_rewind, reinitialise or let the HA manager rejoin {}: it holds the only copy of that WAL; run `failover-verify compare --new-primary '{}' --former-primary '{}'` to list the lost transactions",
                    c.address, primary_params.redacted(), c.node.target
                )),
            ),
            NodeStatus::Unreadable => (FindingId::NodeUnreadable, None),
            NodeStatus::Unrelated => (
                FindingId::NodeUnrelated,
                Some("check the --node connection string".into()),
            ),
            NodeStatus::Undecided => (FindingId::NodeUndecided, None),
            NodeStatus::OnHistory => continue,
        };
        if c.status != NodeStatus::Diverged {
            incomplete = true;
        }
        let message = if c.explanation.contains(&c.address) {
            c.explanation.clone()
        } else {
            format!("{}: {}", c.address, c.explanation)
        };
        findings.push(Finding::new(id, message).with_hint_opt(hint));
    }
    findings.sort_by_key(|f| f.severity);

    let diverged: Vec<&NodeCheck> = checks
        .iter()
        .filter(|c| c.status == NodeStatus::Diverged)
        .collect();
    let (verdict, explanation) = if !tree.split_brains.is_empty() {
        (
            ClusterVerdict::Diverged,
            format!(
                "Split brain: {}.",
                tree.split_brains
                    .iter()
                    .map(|b| b.reason.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )
    } else if !diverged.is_empty() {
        (
            ClusterVerdict::Diverged,
            format!(
                "{} node(s) left the primary's timeline history with WAL the primary never received: {}.",
                diverged.len(),
                diverged
                    .iter()
                    .map(|c| format!(
                        "{} ({} on timeline {})",
                        c.address,
                        bytes_text(c.lost_wal_bytes()),
                        c.divergence.as_ref().map_or_else(String::new, |d| d.former_timeline.to_string())
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    } else if incomplete {
        let problems: Vec<String> = findings
            .iter()
            .filter(|f| {
                matches!(
                    f.id,
                    FindingId::PrimaryInRecovery
                        | FindingId::ReplicationUnreadable
                        | FindingId::NodeUnreadable
                        | FindingId::NodeUnrelated
                        | FindingId::NodeUndecided
                )
            })
            .map(|f| f.message.clone())
            .collect();
        (
            ClusterVerdict::Inconclusive,
            format!(
                "The cluster could not be checked completely: {}",
                problems.join(" ")
            ),
        )
    } else {
        let mut s = format!(
            "The primary {primary_address} (timeline {}) has {} standby(s) streaming",
            pfacts.timeline,
            standbys.len()
        );
        if !checks.is_empty() {
            s.push_str(&format!(
                ", and all {} inspected node(s) are on its timeline history",
                checks.len()
            ));
        }
        s.push('.');
        (ClusterVerdict::Healthy, s)
    };

    Ok(ClusterReport {
        schema_version: CLUSTER_SCHEMA_VERSION,
        kind: "cluster".into(),
        tool: tool_id(),
        generated_at,
        duration_ms: started.elapsed().as_millis() as u64,
        verdict,
        explanation,
        primary: primary.section,
        current_lsn,
        standbys,
        slots,
        nodes: checks,
        findings,
        tree: Some(tree),
    })
}
