//! `failover-verify cluster`: the check to run when nothing has happened yet. Lists every
//! standby and replication slot the primary knows about with its lag in bytes, and places
//! each `--node` on the primary's timeline history, flagging a node that diverged (it stayed
//! on an older timeline and wrote WAL past the point where that timeline ends in the
//! primary's history: it holds lost WAL and is one pg_rewind away from destroying it).

use std::time::Instant;

use futures_util::future::join_all;

use crate::cli::{ClusterArgs, CompareArgs};
use crate::divergence::{analyze, human_bytes, Verdict};
use crate::finding::{Finding, FindingId};
use crate::lsn::Lsn;
use crate::node::NodeFacts;
use crate::pg::conninfo::ConnParams;
use crate::pg::session::{Session, SessionOptions, APPLICATION_NAME};
use crate::report::cluster::{
    ClusterReport, ClusterVerdict, NodeCheck, NodeStatus, SlotRow, StandbyRow,
    CLUSTER_SCHEMA_VERSION,
};

use super::{now_rfc3339, tool_id, CommandError, Exit};

/// The parsed inputs of `cluster`.
#[derive(Debug, Clone)]
pub struct ClusterInput {
    /// The primary.
    pub primary: ConnParams,
    /// Other nodes to inspect directly.
    pub nodes: Vec<ConnParams>,
    /// Timeouts for every session.
    pub session: SessionOptions,
    /// With --patroni: Patroni's dynamic configuration (`GET /config`) for the audit, or why
    /// it could not be read.
    pub patroni_config: Option<Result<serde_json::Value, String>>,
}

impl ClusterInput {
    /// Parses the flags (conninfo strings with the process environment, timeouts).
    pub fn from_args(args: &ClusterArgs) -> Result<Self, CommandError> {
        let parse = |flag: &'static str, s: &str| {
            ConnParams::parse_with_process_env(s).map_err(|e| CommandError::Usage {
                flag,
                message: e.to_string(),
            })
        };
        let (connect_timeout, _, _) = args.timeouts.durations();
        // --patroni: the leader is the primary (unless --primary), every other member a node.
        let patroni = super::compare::patroni_discovery(&args.patroni, connect_timeout)?;
        let primary = match (&args.primary, &patroni) {
            (Some(s), _) => parse("--primary", s)?,
            (None, Some(d)) => super::compare::patroni_member(&args.patroni, d.new_primary()?)?,
            (None, None) => {
                return Err(CommandError::Usage {
                    flag: "--primary",
                    message: "name the primary (a conninfo), or pass --patroni".into(),
                })
            }
        };
        let mut nodes: Vec<ConnParams> = args
            .nodes
            .iter()
            .map(|s| parse("--node", s))
            .collect::<Result<_, _>>()?;
        if let Some(d) = &patroni {
            for m in d.section.members.iter().filter(|m| !m.is_leader()) {
                if m.address().is_some() {
                    let p = super::compare::patroni_member(&args.patroni, m)?;
                    if p.target() != primary.target() {
                        nodes.push(p);
                    }
                }
            }
        }
        let patroni_config = patroni
            .as_ref()
            .map(|_| super::compare::patroni_config(&args.patroni, connect_timeout));
        Ok(ClusterInput {
            primary,
            nodes: dedup_by_target(nodes),
            session: args.timeouts.session_options(),
            patroni_config,
        })
    }
}

/// The nodes with one entry per `host:port` (the first wins): one server, one check.
fn dedup_by_target(nodes: Vec<ConnParams>) -> Vec<ConnParams> {
    let mut seen = std::collections::HashSet::new();
    nodes
        .into_iter()
        .filter(|p| seen.insert(p.target()))
        .collect()
}

/// `compare --new-primary X` without a former primary is the cluster check of X.
pub fn args_from_compare(args: &CompareArgs) -> ClusterArgs {
    ClusterArgs {
        primary: args.new_primary.clone(),
        nodes: Vec::new(),
        patroni: args.patroni.clone(),
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

fn lsn_col(row: &tokio_postgres::Row, i: usize) -> Option<Lsn> {
    row.get::<_, Option<String>>(i).and_then(|s| s.parse().ok())
}

/// `pg_stat_replication`, with the slot each walsender streams through. Leaves out this tool's
/// own replication connections (`$1` = its application_name, never past `startup`): the one
/// `read_facts` opened for IDENTIFY_SYSTEM may not have exited yet.
const STANDBYS_SQL: &str = "\
SELECT r.application_name::text, host(r.client_addr), r.client_port, r.state::text,
       r.sync_state::text, r.sent_lsn::text, r.write_lsn::text, r.flush_lsn::text,
       r.replay_lsn::text,
       extract(epoch FROM r.write_lag)::float8, extract(epoch FROM r.flush_lag)::float8,
       extract(epoch FROM r.replay_lag)::float8,
       (SELECT s.slot_name::text FROM pg_replication_slots s WHERE s.active_pid = r.pid LIMIT 1)
  FROM pg_stat_replication r
 WHERE NOT (r.application_name = $1 AND r.state = 'startup')
 ORDER BY r.application_name, r.client_addr, r.client_port";

/// `pg_replication_slots`; `wal_status` exists from PostgreSQL 13 on.
fn slots_sql(server_version_num: u32) -> String {
    let wal_status = if server_version_num >= 130000 {
        "wal_status::text"
    } else {
        "NULL::text"
    };
    format!(
        "SELECT slot_name::text, slot_type::text, active, restart_lsn::text, {wal_status}
           FROM pg_replication_slots ORDER BY slot_name"
    )
}

/// Reads the primary's current WAL position, standbys and slots.
async fn read_replication(
    session: &Session,
    facts: &NodeFacts,
) -> Result<(Option<Lsn>, Vec<StandbyRow>, Vec<SlotRow>), String> {
    let current: Option<Lsn> = if facts.in_recovery {
        None
    } else {
        let row = session
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .map_err(|e| e.to_string())?;
        row.get::<_, Option<String>>(0).and_then(|s| s.parse().ok())
    };
    let lag = |l: Option<Lsn>| match (current, l) {
        (Some(c), Some(l)) => Some(c.saturating_bytes_since(l)),
        _ => None,
    };
    let standbys = session
        .query(STANDBYS_SQL, &[&APPLICATION_NAME])
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|row| {
            let replay_lsn = lsn_col(row, 8);
            StandbyRow {
                application_name: row.get::<_, Option<String>>(0).unwrap_or_default(),
                client_addr: row.get(1),
                client_port: row.get(2),
                state: row.get(3),
                sync_state: row.get(4),
                sent_lsn: lsn_col(row, 5),
                write_lsn: lsn_col(row, 6),
                flush_lsn: lsn_col(row, 7),
                replay_lsn,
                lag_bytes: lag(replay_lsn),
                write_lag_seconds: row.get(9),
                flush_lag_seconds: row.get(10),
                replay_lag_seconds: row.get(11),
                slot_name: row.get(12),
            }
        })
        .collect();
    let slots = session
        .query(slots_sql(facts.server_version_num).as_str(), &[])
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|row| {
            let restart_lsn = lsn_col(row, 3);
            SlotRow {
                slot_name: row.get::<_, Option<String>>(0).unwrap_or_default(),
                slot_type: row.get::<_, Option<String>>(1).unwrap_or_default(),
                active: row.get::<_, Option<bool>>(2).unwrap_or(false),
                restart_lsn,
                wal_status: row.get(4),
                lag_bytes: lag(restart_lsn),
            }
        })
        .collect();
    Ok((current, standbys, slots))
}

/// `528 bytes`, or `1.5 KiB (1536 bytes)`: exact and readable.
pub(crate) fn bytes_text(n: u64) -> String {
    if n < 1024 {
        human_bytes(n)
    } else {
        format!("{} ({n} bytes)", human_bytes(n))
    }
}

/// Places one `--node` on the primary's timeline history.
fn place(primary: &NodeFacts, address: String, read: super::ReadNode) -> NodeCheck {
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
    let (primary, nodes) = tokio::join!(
        super::read_node(&input.primary, &input.session, None),
        nodes
    );
    let primary_address = input.primary.target();
    let (Some(pfacts), Some(session)) = (primary.facts.clone(), primary.session) else {
        for n in nodes {
            if let Some(s) = n.session {
                s.close().await;
            }
        }
        return Err(CommandError::Primary(
            primary.section.error.unwrap_or_else(|| "unreadable".into()),
        ));
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

    let mut checks = Vec::with_capacity(nodes.len());
    for (params, mut read) in input.nodes.iter().zip(nodes) {
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
                    c.address, input.primary.redacted(), c.node.target
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
    let (verdict, explanation) = if !diverged.is_empty() {
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
    })
}
