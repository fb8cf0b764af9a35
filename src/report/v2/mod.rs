//! The JSON report, version 2: the wire types that `--format json` writes and the JSON Schema
//! describes (`docs/report-v2.schema.json`), separate from the analysis types they are made from.
//!
//! The analysis may reshape its own structs freely; what users parse changes only here, with
//! [`SCHEMA_VERSION`] and an entry in `CHANGELOG.md`. Every type derives `JsonSchema`, and a test
//! keeps the committed schema equal to the generated one. The conversions ([`Wire`]) are
//! field-for-field, so a field added to an analysis type does not reach the wire by accident:
//! it must be added here too.

mod checks;
mod downstream;
mod managers;
mod node;
mod tables;
mod transactions;
mod wire;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::finding::Finding;

/// The version of the JSON layout; bumped when a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 2;

/// Everything one run found, in the order a reader needs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "failover-verify report, version 2")]
pub struct Report {
    /// The JSON layout version: 2.
    pub schema_version: u32,
    /// The tool's name and version that produced this report.
    pub tool: String,
    /// When the run started (RFC 3339, UTC).
    pub generated_at: String,
    /// How long the run took, in milliseconds.
    pub duration_ms: u64,
    /// The answer: `no_loss`, `loss`, `rewound`, `unrelated` or `inconclusive`.
    pub verdict: Verdict,
    /// The process exit code this report gives (see the README's table): 0 no loss, 1 loss,
    /// 2 undecided. It follows from the verdict and the findings.
    pub exit_code: u8,
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
    pub tables: Option<TablesReport>,
    /// Things the reader should know or do, most severe first.
    pub findings: Vec<Finding>,
    /// The results of the declarative checks (`checks/*.toml`, `--checks-dir`), in catalog
    /// order; they never change the verdict.
    #[serde(default)]
    pub checks: Vec<CheckResult>,
    /// Patroni discovery (`--patroni`): the members, how the nodes were chosen, and the
    /// promotion in Patroni's `/history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patroni: Option<PatroniSection>,
    /// HA-manager discovery (`--patroni`, `--repmgr`, `--pg-auto-failover`, `--cnpg-status`),
    /// the same for every manager: the members, the promotions and demotions the manager
    /// recorded, and how the nodes were chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoverySection>,
    /// The former primary's downstream consumers (logical slots, standbys, pg_receivewal) and
    /// the lost transactions each already received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downstream: Option<Downstream>,
}

impl Report {
    /// The wire form of an analysed report.
    pub fn from_report(r: &super::Report) -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            tool: r.tool.clone(),
            generated_at: r.generated_at.clone(),
            duration_ms: r.duration_ms,
            verdict: r.verdict.wire(),
            exit_code: super::exit_code(r.verdict, &r.findings),
            explanation: r.explanation.clone(),
            incomplete: r.incomplete,
            new_primary: r.new_primary.wire(),
            former_primary: r.former_primary.wire(),
            divergence: r.divergence.wire(),
            transactions: r.transactions.wire(),
            tables: r.tables.wire(),
            findings: r.findings.clone(),
            checks: r.checks.wire(),
            patroni: r.patroni.wire(),
            discovery: r.discovery.wire(),
            downstream: r.downstream.wire(),
        }
    }
}

/// The JSON Schema of [`Report`], pretty-printed with a trailing newline.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Report);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}

pub use checks::*;
pub use downstream::*;
pub use managers::*;
pub use node::*;
pub use tables::*;
pub use transactions::*;
pub use wire::Wire;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_schema_is_the_generated_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/report-v2.schema.json");
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(path, schema_json()).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == schema_json(),
            "docs/report-v2.schema.json is stale: run `UPDATE_DOCS=1 cargo test --lib report::v2` and commit it"
        );
    }
}
