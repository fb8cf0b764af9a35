//! The report of `failover-verify cluster` ([`ClusterReport`]): the primary, the standbys and
//! slots it knows about, and the nodes inspected directly, each placed on the primary's
//! timeline history or flagged as diverged. Rendered in every `--format`.

use crate::quote::markdown_cell;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};
use tabled::builder::Builder;
use tabled::settings::Style;

use super::{lsn_or_dash, NodeSection};
use crate::divergence::{Divergence, Verdict};
use crate::finding::Finding;
use crate::lsn::{Lsn, SystemId, TimelineId};

/// The version of the cluster report's JSON layout.
pub const CLUSTER_SCHEMA_VERSION: u32 = 1;

/// The overall answer of `cluster`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterVerdict {
    /// Every node that was read is on the primary's timeline history.
    Healthy,
    /// At least one node left the primary's history with WAL of its own: it holds lost WAL.
    Diverged,
    /// No diverged node, but something could not be read or placed.
    Inconclusive,
}

impl ClusterVerdict {
    /// The verdict as it appears in reports, metrics and the state file.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterVerdict::Healthy => "healthy",
            ClusterVerdict::Diverged => "diverged",
            ClusterVerdict::Inconclusive => "inconclusive",
        }
    }

    /// Every verdict, for one metric series each.
    pub const ALL: [ClusterVerdict; 3] = [
        ClusterVerdict::Healthy,
        ClusterVerdict::Diverged,
        ClusterVerdict::Inconclusive,
    ];
}

/// Where a `--node` stands relative to the primary's timeline history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// The primary itself, on the primary's timeline, or on an ancestor timeline ending at or
    /// before the point where that timeline ends in the primary's history: it can follow.
    OnHistory,
    /// On an older timeline and wrote WAL past the point where that timeline ends in the
    /// primary's history: it holds WAL the primary never received.
    Diverged,
    /// Could not be connected to or read.
    Unreadable,
    /// Belongs to another cluster (another system identifier).
    Unrelated,
    /// Read, but could not be placed (history unreadable, same server as the primary, newer
    /// timeline than the primary, ...); the explanation says why.
    Undecided,
}

impl NodeStatus {
    /// The status as text.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::OnHistory => "on_history",
            NodeStatus::Diverged => "diverged",
            NodeStatus::Unreadable => "unreadable",
            NodeStatus::Unrelated => "unrelated",
            NodeStatus::Undecided => "undecided",
        }
    }
}

/// One row of `pg_stat_replication` on the primary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StandbyRow {
    /// `application_name` (the standby's `cluster_name` or what its conninfo says).
    pub application_name: String,
    /// `client_addr`, absent for a Unix-socket connection.
    pub client_addr: Option<String>,
    /// `client_port`.
    pub client_port: Option<i32>,
    /// `state`: `streaming`, `catchup`, `backup`, `startup`, `stopping`.
    pub state: Option<String>,
    /// `sync_state`: `async`, `sync`, `potential`, `quorum`.
    pub sync_state: Option<String>,
    /// `sent_lsn` (absent without `pg_monitor`).
    pub sent_lsn: Option<Lsn>,
    /// `write_lsn`.
    pub write_lsn: Option<Lsn>,
    /// `flush_lsn`.
    pub flush_lsn: Option<Lsn>,
    /// `replay_lsn`.
    pub replay_lsn: Option<Lsn>,
    /// The primary's current WAL position minus `replay_lsn`, in bytes.
    pub lag_bytes: Option<u64>,
    /// `write_lag` in seconds.
    pub write_lag_seconds: Option<f64>,
    /// `flush_lag` in seconds.
    pub flush_lag_seconds: Option<f64>,
    /// `replay_lag` in seconds.
    pub replay_lag_seconds: Option<f64>,
    /// The replication slot this standby streams through, if any.
    pub slot_name: Option<String>,
}

/// One row of `pg_replication_slots` on the primary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRow {
    /// `slot_name`.
    pub slot_name: String,
    /// `slot_type`: `physical` or `logical`.
    pub slot_type: String,
    /// `active`: a consumer is connected now.
    pub active: bool,
    /// `restart_lsn`: the oldest WAL the slot keeps.
    pub restart_lsn: Option<Lsn>,
    /// `wal_status` (PostgreSQL 13+): `reserved`, `extended`, `unreserved`, `lost`.
    pub wal_status: Option<String>,
    /// The primary's current WAL position minus `restart_lsn`: WAL the slot holds back.
    pub lag_bytes: Option<u64>,
}

/// A node inspected directly with `--node`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeCheck {
    /// The node as read (target with password masked, facts or error).
    pub node: NodeSection,
    /// `host:port` (or the socket path), for messages and metric labels.
    pub address: String,
    /// Where it stands.
    pub status: NodeStatus,
    /// The comparison's verdict with the primary as the new primary, when it was read.
    pub verdict: Option<Verdict>,
    /// One sentence.
    pub explanation: String,
    /// Where its timeline forks from the primary's, and how much WAL it has past that point.
    pub divergence: Option<Divergence>,
}

impl NodeCheck {
    /// Bytes of WAL this node has that the primary never received (0 unless diverged).
    pub fn lost_wal_bytes(&self) -> u64 {
        match self.status {
            NodeStatus::Diverged => self.divergence.as_ref().map_or(0, |d| d.lost_wal_bytes),
            _ => 0,
        }
    }
}

/// Everything `cluster` found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterReport {
    /// The JSON layout version ([`CLUSTER_SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Always `cluster`, to tell this report from a `compare` report.
    pub kind: String,
    /// The tool's name and version.
    pub tool: String,
    /// When the run started (RFC 3339, UTC).
    pub generated_at: String,
    /// How long the run took, in milliseconds.
    pub duration_ms: u64,
    /// `healthy`, `diverged` or `inconclusive`.
    pub verdict: ClusterVerdict,
    /// One sentence that explains the verdict.
    pub explanation: String,
    /// The primary as read.
    pub primary: NodeSection,
    /// The primary's `pg_current_wal_lsn()` when the standbys and slots were read.
    pub current_lsn: Option<Lsn>,
    /// The standbys streaming from the primary (`pg_stat_replication`).
    pub standbys: Vec<StandbyRow>,
    /// The primary's replication slots.
    pub slots: Vec<SlotRow>,
    /// The nodes given with `--node`.
    pub nodes: Vec<NodeCheck>,
    /// Things the reader should know or do, most severe first.
    pub findings: Vec<Finding>,
    /// The fork tree of every node read: the timeline branches, where each forked, which
    /// node sits where, split brains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<crate::forktree::ForkTree>,
}

impl ClusterReport {
    /// The primary's system identifier, when it was read.
    pub fn system_identifier(&self) -> Option<SystemId> {
        self.primary.facts.as_ref().map(|f| f.system_identifier)
    }

    /// The primary's timeline, when it was read.
    pub fn timeline(&self) -> Option<TimelineId> {
        self.primary.facts.as_ref().map(|f| f.timeline)
    }

    /// How many `--node`s are diverged.
    pub fn diverged_nodes(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.status == NodeStatus::Diverged)
            .count()
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), |x| x.to_string())
}

fn bytes_or_dash(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |b| b.to_string())
}

/// Rows of the primary table: (field, value).
fn primary_rows(r: &ClusterReport) -> Vec<[String; 2]> {
    let mut rows = vec![["target".to_string(), r.primary.target.clone()]];
    if let Some(f) = &r.primary.facts {
        rows.push(["server version".into(), f.server_version.clone()]);
        rows.push(["system identifier".into(), f.system_identifier.to_string()]);
        rows.push(["role".into(), f.role().into()]);
        rows.push(["timeline".into(), f.timeline.to_string()]);
        rows.push(["current WAL".into(), lsn_or_dash(r.current_lsn)]);
    }
    if let Some(e) = &r.primary.error {
        rows.push(["error".into(), e.clone()]);
    }
    rows
}

/// The standby table, header first.
fn standby_rows(r: &ClusterReport) -> Vec<[String; 8]> {
    let mut rows = vec![[
        "application_name".to_string(),
        "client".into(),
        "state".into(),
        "sync".into(),
        "sent / flush / replay LSN".into(),
        "lag bytes".into(),
        "replay lag s".into(),
        "slot".into(),
    ]];
    rows.extend(r.standbys.iter().map(|s| {
        [
            s.application_name.clone(),
            match (&s.client_addr, s.client_port) {
                (Some(a), Some(p)) => format!("{a}:{p}"),
                (Some(a), None) => a.clone(),
                _ => "local".into(),
            },
            opt(&s.state),
            opt(&s.sync_state),
            format!(
                "{} / {} / {}",
                lsn_or_dash(s.sent_lsn),
                lsn_or_dash(s.flush_lsn),
                lsn_or_dash(s.replay_lsn)
            ),
            bytes_or_dash(s.lag_bytes),
            s.replay_lag_seconds
                .map_or_else(|| "-".into(), |v| format!("{v:.3}")),
            opt(&s.slot_name),
        ]
    }));
    rows
}

/// The slot table, header first.
fn slot_rows(r: &ClusterReport) -> Vec<[String; 6]> {
    let mut rows = vec![[
        "slot".to_string(),
        "type".into(),
        "active".into(),
        "restart LSN".into(),
        "wal_status".into(),
        "retained bytes".into(),
    ]];
    rows.extend(r.slots.iter().map(|s| {
        [
            s.slot_name.clone(),
            s.slot_type.clone(),
            s.active.to_string(),
            lsn_or_dash(s.restart_lsn),
            opt(&s.wal_status),
            bytes_or_dash(s.lag_bytes),
        ]
    }));
    rows
}

/// The node table, header first.
fn node_rows(r: &ClusterReport) -> Vec<[String; 6]> {
    let mut rows = vec![[
        "node".to_string(),
        "status".into(),
        "role".into(),
        "timeline".into(),
        "end of WAL".into(),
        "lost WAL bytes".into(),
    ]];
    rows.extend(r.nodes.iter().map(|n| {
        let f = n.node.facts.as_ref();
        [
            n.address.clone(),
            n.status.as_str().into(),
            f.map_or("-".into(), |f| f.role().into()),
            f.map_or("-".into(), |f| f.timeline.to_string()),
            f.map_or("-".into(), |f| f.end_of_wal.to_string()),
            match n.status {
                NodeStatus::Diverged => n.lost_wal_bytes().to_string(),
                NodeStatus::OnHistory => "0".into(),
                _ => "-".into(),
            },
        ]
    }));
    rows
}

fn grid<const N: usize>(rows: &[[String; N]]) -> String {
    let mut b = Builder::default();
    for r in rows {
        b.push_record(r.iter().cloned());
    }
    b.build().with(Style::sharp()).to_string()
}

pub(super) fn render_text(r: &ClusterReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "failover-verify cluster: {}",
        r.verdict.as_str().to_uppercase()
    )?;
    writeln!(out, "{}", r.explanation)?;
    writeln!(out)?;
    writeln!(out, "Primary")?;
    writeln!(out, "{}", grid(&primary_rows(r)))?;
    writeln!(out)?;
    if r.standbys.is_empty() {
        writeln!(out, "Standbys: none streaming")?;
    } else {
        writeln!(out, "Standbys ({})", r.standbys.len())?;
        writeln!(out, "{}", grid(&standby_rows(r)))?;
    }
    if !r.slots.is_empty() {
        writeln!(out)?;
        writeln!(out, "Replication slots ({})", r.slots.len())?;
        writeln!(out, "{}", grid(&slot_rows(r)))?;
    }
    if !r.nodes.is_empty() {
        writeln!(out)?;
        writeln!(out, "Nodes inspected ({})", r.nodes.len())?;
        writeln!(out, "{}", grid(&node_rows(r)))?;
        // Flagged nodes are explained under Findings, with what to do.
        for n in r.nodes.iter().filter(|n| n.status == NodeStatus::OnHistory) {
            writeln!(out, "- {}", n.explanation)?;
        }
    }
    if let Some(t) = r.tree.as_ref().filter(|t| !t.branches.is_empty()) {
        writeln!(out)?;
        writeln!(out, "Fork tree")?;
        for line in t.ascii() {
            writeln!(out, "  {line}")?;
        }
    }
    if !r.findings.is_empty() {
        writeln!(out)?;
        writeln!(out, "Findings")?;
        for f in &r.findings {
            writeln!(out, "- [{:?}] {}", f.severity, f.message)?;
            if let Some(h) = &f.hint {
                writeln!(out, "  hint: {h}")?;
            }
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "{} · generated {} · {} ms",
        r.tool, r.generated_at, r.duration_ms
    )
}

fn md_table<const N: usize>(out: &mut dyn Write, rows: &[[String; N]]) -> io::Result<()> {
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r.iter().map(|c| markdown_cell(c)).collect();
        writeln!(out, "| {} |", cells.join(" | "))?;
        if i == 0 {
            writeln!(out, "|{}", "---|".repeat(N))?;
        }
    }
    Ok(())
}

pub(super) fn render_markdown(r: &ClusterReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "## failover-verify cluster: **{}**",
        r.verdict.as_str()
    )?;
    writeln!(out)?;
    writeln!(out, "{}", r.explanation)?;
    writeln!(out)?;
    writeln!(out, "### Primary")?;
    writeln!(out)?;
    let mut primary = vec![["".to_string(), "value".to_string()]];
    primary.extend(primary_rows(r));
    md_table(out, &primary)?;
    writeln!(out)?;
    writeln!(out, "### Standbys")?;
    writeln!(out)?;
    if r.standbys.is_empty() {
        writeln!(out, "None streaming.")?;
    } else {
        md_table(out, &standby_rows(r))?;
    }
    if !r.slots.is_empty() {
        writeln!(out)?;
        writeln!(out, "### Replication slots")?;
        writeln!(out)?;
        md_table(out, &slot_rows(r))?;
    }
    if !r.nodes.is_empty() {
        writeln!(out)?;
        writeln!(out, "### Nodes inspected")?;
        writeln!(out)?;
        md_table(out, &node_rows(r))?;
        let fine: Vec<&NodeCheck> = r
            .nodes
            .iter()
            .filter(|n| n.status == NodeStatus::OnHistory)
            .collect();
        if !fine.is_empty() {
            writeln!(out)?;
        }
        for n in fine {
            writeln!(out, "- {}", markdown_cell(&n.explanation))?;
        }
    }
    if let Some(t) = r.tree.as_ref().filter(|t| !t.branches.is_empty()) {
        writeln!(out)?;
        writeln!(out, "### Fork tree")?;
        writeln!(out)?;
        writeln!(out, "```")?;
        for line in t.ascii() {
            writeln!(out, "{line}")?;
        }
        writeln!(out, "```")?;
    }
    if !r.findings.is_empty() {
        writeln!(out)?;
        writeln!(out, "### Findings")?;
        writeln!(out)?;
        for f in &r.findings {
            write!(out, "- **{:?}** {}", f.severity, markdown_cell(&f.message))?;
            match &f.hint {
                Some(h) => writeln!(out, " — {}", markdown_cell(h))?,
                None => writeln!(out)?,
            }
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "_{} · generated {} · {} ms_",
        r.tool, r.generated_at, r.duration_ms
    )
}

pub(super) fn render_csv(r: &ClusterReport, out: &mut dyn Write) -> io::Result<()> {
    let mut w = ::csv::Writer::from_writer(out);
    let mut row = |a: &str, b: &str, c: &str| w.write_record([a, b, c]);
    row("section", "field", "value")?;
    row("summary", "verdict", r.verdict.as_str())?;
    row("summary", "explanation", &r.explanation)?;
    for [field, value] in primary_rows(r) {
        row("primary", &field, &value)?;
    }
    for s in standby_rows(r).iter().skip(1) {
        row("standby", &s[0], &s[1..].join(";"))?;
    }
    for s in slot_rows(r).iter().skip(1) {
        row("slot", &s[0], &s[1..].join(";"))?;
    }
    for n in node_rows(r).iter().skip(1) {
        row("node", &n[0], &n[1..].join(";"))?;
    }
    if let Some(t) = &r.tree {
        for b in &t.branches {
            row(
                "tree_branch",
                &b.label,
                &format!(
                    "parent {};fork {};{}",
                    b.parent
                        .map_or_else(|| "-".into(), |p| t.branches[p].label.clone()),
                    lsn_or_dash(b.fork_lsn),
                    if b.current {
                        "current"
                    } else if b.on_current_path {
                        "ancestor of current"
                    } else {
                        "off the current timeline"
                    }
                ),
            )?;
        }
        for n in &t.nodes {
            row("tree_node", &n.address, &crate::forktree::node_line(n))?;
        }
        for b in &t.split_brains {
            row("split_brain", "", &b.reason)?;
        }
    }
    for f in &r.findings {
        row("finding", f.id.as_str(), &f.message)?;
    }
    w.flush()
}
