//! Text: a verdict banner, the explanation, and tables for a terminal or a log.

use std::io::{self, Write};

use tabled::builder::Builder;
use tabled::settings::Style;

use super::{divergence_rows, node_rows, Report};

/// Writes `report` as text with tables.
pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "failover-verify: {}{}",
        report.verdict.as_str().to_uppercase(),
        if report.incomplete {
            " (incomplete)"
        } else {
            ""
        }
    )?;
    writeln!(out, "{}", report.explanation)?;
    writeln!(out)?;

    let mut b = Builder::default();
    b.push_record(["", "new primary", "former primary"]);
    for row in node_rows(report) {
        b.push_record(row);
    }
    writeln!(out, "Nodes")?;
    writeln!(out, "{}", b.build().with(Style::sharp()))?;

    if let Some(d) = &report.divergence {
        let mut b = Builder::default();
        for row in divergence_rows(d) {
            b.push_record(row);
        }
        writeln!(out)?;
        writeln!(out, "Divergence")?;
        writeln!(out, "{}", b.build().with(Style::sharp()))?;
    }

    if !report.findings.is_empty() {
        writeln!(out)?;
        writeln!(out, "Findings")?;
        for f in &report.findings {
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
        report.tool, report.generated_at, report.duration_ms
    )
}
