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

/// The most JSON the differing rows of `tables[].rows` take in one report (compact, summed over
/// the tables in order); the rows past it are counted in `rows_omitted`, so the report stays
/// small whatever the loss (the export directory lists every row).
pub const INLINE_ROWS_BYTES: usize = 512 * 1024;

/// Leaves in `tables[].rows` only the rows that fit in `budget` bytes of compact JSON, in
/// order across the tables, and counts the others in each table's `rows_omitted`.
pub fn cap_inline_rows(tables: &mut TablesReport, budget: usize) {
    let mut used = 0usize;
    for t in &mut tables.tables {
        let mut keep = 0;
        for r in &t.rows {
            let size = serde_json::to_vec(r).map_or(0, |v| v.len());
            if used + size > budget {
                used = budget;
                break;
            }
            used += size;
            keep += 1;
        }
        t.rows_omitted += (t.rows.len() - keep) as u64;
        t.rows.truncate(keep);
    }
}

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
        let mut tables = r.tables.wire();
        if let Some(t) = &mut tables {
            cap_inline_rows(t, INLINE_ROWS_BYTES);
        }
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
            tables,
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

    /// The rows past the budget are counted, not listed, in order across the tables; under
    /// the budget nothing changes.
    #[test]
    fn inline_rows_stop_at_the_budget_and_count_the_rest() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/reports/loss_rows_conflicts.json"
        );
        let fixture: crate::report::Report =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let wire = Report::from_report(&fixture);
        let mut tables = wire.tables.expect("the fixture has tables");
        let before: Vec<usize> = tables.tables.iter().map(|t| t.rows.len()).collect();
        assert!(before.iter().sum::<usize>() >= 4, "{before:?}");
        let unchanged = tables.clone();
        cap_inline_rows(&mut tables, usize::MAX);
        assert_eq!(tables, unchanged);

        // Every table's rows many times over, then a budget of a few rows.
        for t in &mut tables.tables {
            let rows = t.rows.clone();
            for _ in 0..99 {
                t.rows.extend(rows.iter().cloned());
            }
        }
        let all: Vec<usize> = tables.tables.iter().map(|t| t.rows.len()).collect();
        let size = |r: &RowDiff| serde_json::to_vec(r).unwrap().len();
        let first = &tables
            .tables
            .iter()
            .find(|t| !t.rows.is_empty())
            .unwrap()
            .rows;
        let budget = first.iter().take(3).map(size).sum::<usize>();
        let mut capped = tables.clone();
        cap_inline_rows(&mut capped, budget);
        let kept: usize = capped.tables.iter().map(|t| t.rows.len()).sum();
        assert_eq!(kept, 3);
        let used: usize = capped.tables.iter().flat_map(|t| &t.rows).map(size).sum();
        assert!(used <= budget, "{used} > {budget}");
        for (t, n) in capped.tables.iter().zip(&all) {
            assert_eq!(
                t.rows.len() as u64 + t.rows_omitted,
                *n as u64,
                "{}",
                t.table
            );
        }
        // The rows kept are the first ones, in order.
        let listed: Vec<&RowDiff> = capped.tables.iter().flat_map(|t| &t.rows).collect();
        let original: Vec<&RowDiff> = tables.tables.iter().flat_map(|t| &t.rows).take(3).collect();
        assert_eq!(listed, original);
    }

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
