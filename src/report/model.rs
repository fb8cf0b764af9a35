//! The report model: what one run found ([`Report`]), the formats it renders to, and the one
//! rule from findings to an exit code.

use serde::{Deserialize, Serialize};

use crate::divergence::{Divergence, Verdict};
use crate::evidence::Transactions;
use crate::finding::Finding;
use crate::node::NodeFacts;

/// Everything one run found, in the order a reader needs it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// The JSON layout version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The tool's name and version that produced this report.
    pub tool: String,
    /// When the run started (RFC 3339, UTC).
    pub generated_at: String,
    /// How long the run took, in milliseconds.
    pub duration_ms: u64,
    /// The answer: `no_loss`, `loss`, `rewound`, `unrelated` or `inconclusive`.
    pub verdict: Verdict,
    /// One sentence that explains the verdict.
    pub explanation: String,
    /// True when a part of the analysis could not run (see `findings`).
    pub incomplete: bool,
    /// The promoted node.
    pub new_primary: NodeSection,
    /// The node that was primary before the failover.
    pub former_primary: NodeSection,
    /// Where the timelines forked and how much WAL lies beyond.
    pub divergence: Option<Divergence>,
    /// What the lost WAL contains: lost commits, their window, the tables they changed.
    pub transactions: Option<Transactions>,
    /// Which rows differ, and why: lost writes, post-failover writes, conflicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<crate::diff::TablesReport>,
    /// Things the reader should know or do, most severe first.
    pub findings: Vec<Finding>,
    /// The results of the declarative checks (`checks/*.toml`, `--checks-dir`), in catalog
    /// order; they never change the verdict.
    #[serde(default)]
    pub checks: Vec<crate::checks::CheckResult>,
    /// Patroni discovery (`--patroni`): the members, how the nodes were chosen, and the
    /// promotion in Patroni's `/history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patroni: Option<crate::patroni::PatroniSection>,
    /// HA-manager discovery (`--patroni`, `--repmgr`, `--pg-auto-failover`, `--cnpg-status`),
    /// manager-neutral: the members, the recorded promotions, how the nodes were chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<crate::discovery::DiscoverySection>,
    /// The former primary's downstream consumers (logical slots, standbys, pg_receivewal) and
    /// the lost transactions each already received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downstream: Option<crate::downstream::Downstream>,
}

/// One node as the report shows it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NodeSection {
    /// The connection target with any password masked.
    pub target: String,
    /// What the node said about itself, if it could be reached.
    pub facts: Option<NodeFacts>,
    /// Why it could not be read, if it could not.
    pub error: Option<String>,
    /// For a multi-host connection string (or one with `target_session_attrs`): the host
    /// that answered and why that one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_choice: Option<crate::pg::HostChoice>,
}

/// `failover-verify <version>`, for reports.
pub fn tool_id() -> String {
    format!("failover-verify {}", env!("CARGO_PKG_VERSION"))
}

/// Now as RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The exit code of a finished report, the one rule for every command and format: 1 when the
/// verdict is a loss or any finding implies one ([`crate::finding::Implies::Loss`]), 0 for no
/// loss, 2 when the question was not decided (rewound, unrelated, inconclusive).
pub fn exit_code(verdict: Verdict, findings: &[Finding]) -> u8 {
    let loss_finding = findings
        .iter()
        .any(|f| f.id.implies() == crate::finding::Implies::Loss);
    match verdict {
        Verdict::Loss => 1,
        _ if loss_finding => 1,
        Verdict::NoLoss => 0,
        Verdict::Rewound | Verdict::Unrelated | Verdict::Inconclusive => 2,
    }
}

/// The output formats of `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text with tables (the default).
    Text,
    /// Machine-readable JSON with a `schema_version`.
    Json,
    /// Markdown that pastes into an incident ticket.
    Markdown,
    /// `section,field,value` rows for spreadsheets.
    Csv,
    /// One self-contained HTML page with the timelines drawn as SVG.
    Html,
    /// Prometheus text format for node_exporter's textfile collector.
    Prometheus,
}
