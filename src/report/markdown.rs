//! Markdown: headings and pipe tables that paste cleanly into GitHub, GitLab or Jira tickets.

use crate::quote::markdown_cell;
use std::io::{self, Write};

use super::{check_detail_rows, check_rows, checks_with_rows, LISTED_CHECK_ROWS};
use super::{
    database_loss_rows, differing_row_count, differing_rows, divergence_rows, lost_xid_rows,
    lost_xids_note, minute_rows, node_rows, row_diff_rows, table_loss_rows, transaction_rows,
    Report, LISTED_MINUTES, LISTED_ROWS, LISTED_XIDS,
};

/// Writes one pipe table with a header row.
fn table<const N: usize>(
    out: &mut dyn Write,
    header: [&str; N],
    rows: &[[String; N]],
) -> io::Result<()> {
    writeln!(out, "| {} |", header.join(" | "))?;
    writeln!(out, "|{}", "---|".repeat(N))?;
    for r in rows {
        let cells: Vec<String> = r.iter().map(|c| markdown_cell(c)).collect();
        writeln!(out, "| {} |", cells.join(" | "))?;
    }
    Ok(())
}

/// Writes `report` as Markdown.
pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "## failover-verify: **{}**{}",
        report.verdict.as_str(),
        if report.incomplete {
            " (incomplete)"
        } else {
            ""
        }
    )?;
    writeln!(out)?;
    writeln!(out, "{}", report.explanation)?;
    if let Some(l) = report.transactions.as_ref().and_then(super::lost_ddl_line) {
        writeln!(out)?;
        writeln!(out, "**Lost DDL:** {}.", l.replace('|', "\\|"))?;
    }
    writeln!(out)?;
    writeln!(out, "### Nodes")?;
    writeln!(out)?;
    table(
        out,
        ["", "new primary", "former primary"],
        &node_rows(report),
    )?;
    if let Some(d) = &report.divergence {
        writeln!(out)?;
        writeln!(out, "### Divergence")?;
        writeln!(out)?;
        table(out, ["", "value"], &divergence_rows(d))?;
    }
    if let Some(t) = &report.transactions {
        writeln!(out)?;
        writeln!(out, "### WAL accounting")?;
        writeln!(out)?;
        table(out, ["", "value"], &transaction_rows(t))?;
        let tables = table_loss_rows(t);
        if tables.len() > 1 {
            writeln!(out)?;
            writeln!(out, "#### Per table")?;
            writeln!(out)?;
            let header = tables[0].clone();
            table(out, header.each_ref().map(String::as_str), &tables[1..])?;
        }
        let ddl = super::lost_ddl_rows(t);
        if ddl.len() > 1 {
            writeln!(out)?;
            writeln!(out, "#### Lost DDL")?;
            writeln!(out)?;
            let header = ddl[0].clone();
            table(out, header.each_ref().map(String::as_str), &ddl[1..])?;
        }
        let dbs = database_loss_rows(t);
        if dbs.len() > 2 {
            writeln!(out)?;
            writeln!(out, "#### Per database")?;
            writeln!(out)?;
            let header = dbs[0].clone();
            table(out, header.each_ref().map(String::as_str), &dbs[1..])?;
        }
        if t.commits_per_minute.len() > 1 {
            let (rows, more) = minute_rows(t, LISTED_MINUTES);
            writeln!(out)?;
            writeln!(out, "#### Loss timeline")?;
            writeln!(out)?;
            let header = rows[0].clone();
            table(out, header.each_ref().map(String::as_str), &rows[1..])?;
            if more > 0 {
                writeln!(out)?;
                writeln!(out, "_{more} more minute(s) in the JSON report._")?;
            }
        }
        let xids = lost_xid_rows(t, LISTED_XIDS);
        if xids.len() > 1 {
            writeln!(out)?;
            writeln!(out, "#### Transactions")?;
            writeln!(out)?;
            let header = xids[0].clone();
            table(out, header.each_ref().map(String::as_str), &xids[1..])?;
            if let Some(note) = lost_xids_note(t, LISTED_XIDS) {
                writeln!(out)?;
                writeln!(out, "_{note}_")?;
            }
        }
    }
    if let Some(t) = &report.tables {
        writeln!(out)?;
        writeln!(out, "### Rows")?;
        writeln!(out)?;
        let rows = row_diff_rows(t);
        let header = rows[0].clone();
        table(out, header.each_ref().map(String::as_str), &rows[1..])?;
        let diff = differing_rows(t, LISTED_ROWS);
        if diff.len() > 1 {
            writeln!(out)?;
            writeln!(out, "#### Differing rows")?;
            writeln!(out)?;
            let header = diff[0].clone();
            table(out, header.each_ref().map(String::as_str), &diff[1..])?;
            let n = differing_row_count(t);
            if n > LISTED_ROWS {
                writeln!(out)?;
                writeln!(
                    out,
                    "_First {LISTED_ROWS} of {n}; the JSON and CSV reports list all._"
                )?;
            }
        }
    }
    if let Some(p) = &report.patroni {
        super::patroni::render_markdown(p, out)?;
    }
    if let Some(d) = report
        .discovery
        .as_ref()
        .filter(|d| super::discovery::shown(d))
    {
        super::discovery::render_markdown(d, out)?;
    }
    if let Some(d) = &report.downstream {
        super::downstream::render_markdown(d, out)?;
    }
    if !report.findings.is_empty() {
        writeln!(out)?;
        writeln!(out, "### Findings")?;
        writeln!(out)?;
        for f in &report.findings {
            write!(out, "- **{:?}** {}", f.severity, markdown_cell(&f.message))?;
            if let Some(h) = &f.hint {
                write!(out, " _Hint:_ {}", markdown_cell(h))?;
            }
            writeln!(out)?;
        }
    }
    render_checks(report, out)?;
    writeln!(out)?;
    writeln!(
        out,
        "_{} · generated {} · {} ms_",
        report.tool, report.generated_at, report.duration_ms
    )
}

/// The checks section: a summary table, then each finding's rows (bounded) and remedy.
fn render_checks(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    if report.checks.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "### Checks")?;
    writeln!(out)?;
    table(
        out,
        ["status", "severity", "check", "summary"],
        &check_rows(report),
    )?;
    for c in checks_with_rows(report) {
        writeln!(out)?;
        writeln!(out, "#### {}: {}", c.id, markdown_cell(&c.title))?;
        writeln!(out)?;
        let rows = check_detail_rows(c, LISTED_CHECK_ROWS);
        let line = |r: &[String]| {
            let cells: Vec<String> = r.iter().map(|x| markdown_cell(x)).collect();
            format!("| {} |", cells.join(" | "))
        };
        writeln!(out, "{}", line(&rows[0]))?;
        writeln!(out, "|{}", "---|".repeat(rows[0].len()))?;
        for r in &rows[1..] {
            writeln!(out, "{}", line(r))?;
        }
        if c.rows_total > LISTED_CHECK_ROWS {
            writeln!(out)?;
            writeln!(
                out,
                "_First {LISTED_CHECK_ROWS} of {}; the JSON report lists all._",
                c.rows_total
            )?;
        }
        writeln!(out)?;
        writeln!(out, "_Remedy:_ {}", markdown_cell(&c.remedy))?;
    }
    Ok(())
}
