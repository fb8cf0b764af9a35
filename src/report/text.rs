//! Text: a verdict banner, the explanation, and tables for a terminal or a log.

use std::io::{self, Write};

use tabled::builder::Builder;
use tabled::settings::Style;

use super::{check_detail_rows, check_rows, checks_with_rows, LISTED_CHECK_ROWS};
use super::{
    database_loss_rows, differing_row_count, differing_rows, divergence_rows, lost_xid_rows,
    lost_xids_note, minute_rows, node_rows, row_diff_rows, table_loss_rows, transaction_rows,
    Report, LISTED_MINUTES, LISTED_ROWS, LISTED_XIDS,
};

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
    if let Some(l) = report.transactions.as_ref().and_then(super::lost_ddl_line) {
        writeln!(out, "Lost DDL: {l}.")?;
    }
    writeln!(out)?;

    let nodes = node_rows(report);
    if !nodes.is_empty() {
        let mut b = Builder::default();
        b.push_record(["", "new primary", "former primary"]);
        for row in nodes {
            b.push_record(row);
        }
        writeln!(out, "Nodes")?;
        writeln!(out, "{}", b.build().with(Style::sharp()))?;
    }

    if let Some(d) = &report.divergence {
        let mut b = Builder::default();
        for row in divergence_rows(d) {
            b.push_record(row);
        }
        writeln!(out)?;
        writeln!(out, "Divergence")?;
        writeln!(out, "{}", b.build().with(Style::sharp()))?;
    }

    if let Some(t) = &report.transactions {
        writeln!(out)?;
        writeln!(out, "WAL accounting")?;
        writeln!(
            out,
            "{}",
            grid(transaction_rows(t).into_iter().map(Vec::from).collect())
        )?;
        if !t.tables.is_empty() {
            writeln!(out)?;
            writeln!(out, "Changes by lost transactions, per table")?;
            writeln!(
                out,
                "{}",
                grid(table_loss_rows(t).into_iter().map(Vec::from).collect())
            )?;
        }
        if !t.lost_ddl_relations.is_empty() {
            writeln!(out)?;
            writeln!(out, "Relations created, altered or dropped by lost DDL")?;
            writeln!(
                out,
                "{}",
                grid(super::lost_ddl_rows(t).into_iter().map(Vec::from).collect())
            )?;
        }
        if t.databases.len() > 1 {
            writeln!(out)?;
            writeln!(out, "Lost commits per database")?;
            writeln!(
                out,
                "{}",
                grid(database_loss_rows(t).into_iter().map(Vec::from).collect())
            )?;
        }
        if t.commits_per_minute.len() > 1 {
            let (rows, more) = minute_rows(t, LISTED_MINUTES);
            writeln!(out)?;
            writeln!(out, "Loss timeline (lost commits per minute)")?;
            writeln!(out, "{}", grid(rows.into_iter().map(Vec::from).collect()))?;
            if more > 0 {
                writeln!(out, "({more} more minute(s) in --format json)")?;
            }
        }
        if !t.lost_xids.is_empty() {
            writeln!(out)?;
            writeln!(out, "Lost transactions")?;
            writeln!(
                out,
                "{}",
                grid(
                    lost_xid_rows(t, LISTED_XIDS)
                        .into_iter()
                        .map(Vec::from)
                        .collect()
                )
            )?;
            if let Some(note) = lost_xids_note(t, LISTED_XIDS) {
                writeln!(out, "{note}")?;
            }
        }
    }

    if let Some(t) = &report.tables {
        writeln!(out)?;
        writeln!(
            out,
            "Rows ({} table(s), {} ms)",
            t.tables.len(),
            t.elapsed_ms
        )?;
        writeln!(
            out,
            "{}",
            grid(row_diff_rows(t).into_iter().map(Vec::from).collect())
        )?;
        let n = differing_row_count(t);
        if n > 0 {
            writeln!(out)?;
            writeln!(
                out,
                "Differing rows{}",
                if n > LISTED_ROWS {
                    format!(" (first {LISTED_ROWS} of {n}; all in --format json or csv)")
                } else {
                    String::new()
                }
            )?;
            writeln!(
                out,
                "{}",
                grid(
                    differing_rows(t, LISTED_ROWS)
                        .into_iter()
                        .map(Vec::from)
                        .collect()
                )
            )?;
        }
        if let Some(e) = &t.export {
            writeln!(
                out,
                "Recovery export: {} ({} statement(s), {} conflict(s) left commented out)",
                e.dir, e.statements, e.commented_conflicts
            )?;
        }
    }
    if let Some(p) = &report.patroni {
        super::patroni::render_text(p, out)?;
    }
    if let Some(d) = report
        .discovery
        .as_ref()
        .filter(|d| super::discovery::shown(d))
    {
        super::discovery::render_text(d, out)?;
    }
    if let Some(d) = &report.downstream {
        super::downstream::render_text(d, out)?;
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
    render_checks(report, out)?;
    writeln!(out)?;
    writeln!(
        out,
        "{} · generated {} · {} ms",
        report.tool, report.generated_at, report.duration_ms
    )
}

/// The checks section: a summary table, then the rows of each finding (bounded).
fn render_checks(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    if report.checks.is_empty() {
        return Ok(());
    }
    let mut b = Builder::default();
    b.push_record(["status", "severity", "check", "summary"]);
    for row in check_rows(report) {
        b.push_record(row);
    }
    writeln!(out)?;
    writeln!(out, "Checks")?;
    writeln!(out, "{}", b.build().with(Style::sharp()))?;
    for c in checks_with_rows(report) {
        writeln!(out)?;
        let more = if c.rows_total > LISTED_CHECK_ROWS {
            format!(
                " (first {LISTED_CHECK_ROWS} of {}; all in --format json)",
                c.rows_total
            )
        } else {
            String::new()
        };
        writeln!(out, "{}: {}{more}", c.id, c.title)?;
        let mut b = Builder::default();
        for row in check_detail_rows(c, LISTED_CHECK_ROWS) {
            b.push_record(row);
        }
        writeln!(out, "{}", b.build().with(Style::sharp()))?;
        writeln!(out, "  remedy: {}", c.remedy)?;
    }
    Ok(())
}

/// A table with sharp borders from rows of cells.
fn grid(rows: Vec<Vec<String>>) -> String {
    let mut b = Builder::default();
    for r in rows {
        b.push_record(r);
    }
    b.build().with(Style::sharp()).to_string()
}
