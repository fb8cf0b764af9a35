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
use crate::forktree::{self, ForkTree, TreeInput, WalReceiver};
use crate::lsn::{Lsn, TimelineId};
use crate::node::NodeFacts;
use crate::pg::conninfo::ConnParams;
use crate::pg::session::{Session, SessionOptions, APPLICATION_NAME};
use crate::report::cluster::{
    ClusterReport, ClusterVerdict, NodeCheck, NodeStatus, SlotRow, StandbyRow,
    CLUSTER_SCHEMA_VERSION,
};

use super::discover::DiscoveryPlan;
use super::{CommandError, Exit};
use crate::report::{now_rfc3339, tool_id};

/// The parsed inputs of `cluster`.
#[derive(Debug, Clone)]
pub struct ClusterInput {
    /// The primary; `None` with `--node` alone: the writable node on the newest timeline.
    pub primary: Option<ConnParams>,
    /// Other nodes to inspect directly.
    pub nodes: Vec<ConnParams>,
    /// Timeouts for every session.
    pub session: SessionOptions,
    /// With --patroni: Patroni's dynamic configuration (`GET /config`) for the audit, or why
    /// it could not be read.
    pub patroni_config: Option<Result<serde_json::Value, String>>,
}

impl ClusterInput {
    /// One-line notices about the connection strings, for the command layer to print.
    pub fn notices(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .primary
            .iter()
            .flat_map(|p| p.warnings().iter())
            .map(|w| format!("--primary: {w}"))
            .collect();
        for n in &self.nodes {
            out.extend(n.warnings().iter().map(|w| format!("--node: {w}")));
        }
        out.dedup();
        out
    }
}

/// What the cluster flags say, before any server or HA manager is asked.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    /// `--primary`, when given.
    pub primary: Option<ConnParams>,
    /// `--node`s.
    pub nodes: Vec<ConnParams>,
    /// Timeouts for every session.
    pub session: SessionOptions,
    /// The HA manager to ask (`--patroni`, `--repmgr`, ...): it names the primary (unless
    /// `--primary`) and every other member with data is a node.
    pub manager: Option<DiscoveryPlan>,
}

impl ClusterPlan {
    /// Parses the flags (conninfo strings with the process environment, timeouts). Pure: no
    /// server and no HA manager is asked.
    pub fn from_args(args: &ClusterArgs) -> Result<Self, CommandError> {
        let parse = |flag: &'static str, s: &str| {
            ConnParams::parse_with_process_env(s).map_err(|e| CommandError::Usage {
                flag,
                message: e.to_string(),
            })
        };
        let manager = DiscoveryPlan::from_args(&args.patroni, &args.discovery, &args.timeouts);
        let primary = match &args.primary {
            Some(s) => Some(parse("--primary", s)?),
            None if manager.is_some() || !args.nodes.is_empty() => None,
            None => {
                return Err(CommandError::Usage {
                    flag: "--primary",
                    message: "name the primary (a conninfo), or pass --patroni, --repmgr, --pg-auto-failover, --cnpg-status or --node".into(),
                })
            }
        };
        let nodes = args
            .nodes
            .iter()
            .map(|s| parse("--node", s))
            .collect::<Result<_, _>>()?;
        Ok(ClusterPlan {
            primary,
            nodes,
            session: args.timeouts.session_options(),
            manager,
        })
    }

    /// The gather step's first part: asks the HA manager the plan names (if any), within the
    /// run's timeouts, for the primary, the other members, and Patroni's configuration.
    pub async fn resolve(self) -> Result<ClusterInput, CommandError> {
        let ClusterPlan {
            mut primary,
            mut nodes,
            session,
            manager,
        } = self;
        let Some(manager) = manager else {
            return Ok(ClusterInput {
                primary,
                nodes: dedup_by_target(nodes),
                session,
                patroni_config: None,
            });
        };
        let d = manager.discover().await?;
        if primary.is_none() {
            primary = Some(d.conninfo(d.new_primary()?)?);
        }
        use crate::discovery::Role;
        for m in d
            .section
            .members
            .iter()
            .filter(|m| !matches!(m.role, Role::Primary | Role::Witness))
        {
            match d.conninfo(m) {
                Ok(p) if primary.as_ref().is_none_or(|x| p.target() != x.target()) => nodes.push(p),
                Ok(_) => {}
                // A member the manager gives no address for is left out, as Patroni's are.
                Err(_) if m.address().is_none() && m.conninfo.is_none() => {}
                Err(e) => return Err(e.into()),
            }
        }
        let patroni_config = match d.patroni {
            Some(_) => manager.patroni_config().await,
            None => None,
        };
        Ok(ClusterInput {
            primary,
            nodes: dedup_by_target(nodes),
            session,
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

/// `pg_stat_wal_receiver`: whom a standby streams from (`flushed_lsn` is PostgreSQL 13+).
fn receiver_sql(server_version_num: u32) -> String {
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
async fn read_receiver(read: &super::ReadNode) -> Option<WalReceiver> {
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
fn pick_primary(reads: &[(ConnParams, super::ReadNode)]) -> Option<usize> {
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

/// The findings of the fork tree: split brains (with the WAL written on each side) and
/// standbys following an upstream that is not on the current timeline.
fn tree_findings(tree: &ForkTree, primary: &NodeFacts, inputs: &[TreeInput]) -> Vec<Finding> {
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
