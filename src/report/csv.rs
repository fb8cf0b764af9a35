//! CSV: one `section,field,value` row per fact, for spreadsheets and ticket attachments.

use std::io::{self, Write};

use super::{
    differing_rows, divergence_rows, lost_xid_rows, node_rows, row_diff_rows, table_loss_rows,
    transaction_rows, Report,
};

/// Writes `report` as `section,field,value` rows.
pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let mut w = ::csv::Writer::from_writer(out);
    let mut row = |a: &str, b: &str, c: &str| w.write_record([a, b, c]);
    row("section", "field", "value")?;
    row("summary", "verdict", report.verdict.as_str())?;
    row("summary", "explanation", &report.explanation)?;
    row("summary", "incomplete", &report.incomplete.to_string())?;
    if let Some(l) = report.transactions.as_ref().and_then(super::lost_ddl_line) {
        row("summary", "lost_ddl", &l)?;
    }
    for [field, new, former] in node_rows(report) {
        row("new_primary", &field, &new)?;
        row("former_primary", &field, &former)?;
    }
    if let Some(d) = &report.divergence {
        for [field, value] in divergence_rows(d) {
            row("divergence", &field, &value)?;
        }
    }
    if let Some(t) = &report.transactions {
        for [field, value] in transaction_rows(t) {
            row("transactions", &field, &value)?;
        }
        for r in table_loss_rows(t).iter().skip(1) {
            row(
                "table_loss",
                &format!("{}.{}", r[0], r[1]),
                &r[2..].join(";"),
            )?;
        }
        for r in super::lost_ddl_rows(t).iter().skip(1) {
            row("lost_ddl", &format!("{}.{}", r[0], r[1]), &r[2..].join(";"))?;
        }
        for r in super::database_loss_rows(t).iter().skip(1) {
            row("database_loss", &r[0], &r[1..].join(";"))?;
        }
        for r in super::minute_rows(t, usize::MAX).0.iter().skip(1) {
            row("commits_per_minute", &r[0], &r[1])?;
        }
        for r in lost_xid_rows(t, usize::MAX).iter().skip(1) {
            row("lost_xid", &r[0], &r[1..].join(";"))?;
        }
    }
    if let Some(t) = &report.tables {
        for r in row_diff_rows(t).iter().skip(1) {
            row("table_diff", &r[0], &r[1..].join(";"))?;
        }
        for r in differing_rows(t, usize::MAX).iter().skip(1) {
            row("row", &r[0], &r[1..].join(";"))?;
        }
    }
    if let Some(p) = &report.patroni {
        for [section, field, value] in super::patroni::csv_rows(p) {
            row(&section, &field, &value)?;
        }
    }
    if let Some(d) = report
        .discovery
        .as_ref()
        .filter(|d| super::discovery::shown(d))
    {
        for [section, field, value] in super::discovery::csv_rows(d) {
            row(&section, &field, &value)?;
        }
    }
    if let Some(d) = &report.downstream {
        for r in super::downstream::rows(d).iter().skip(1) {
            row("downstream", &r[0], &r[1..].join(";"))?;
        }
    }
    for f in &report.findings {
        row("finding", f.id.as_str(), &f.message)?;
    }
    // Checks: one `check` row each (status;severity;summary), then one `check_row` per row.
    for c in &report.checks {
        row(
            "check",
            &c.id,
            &format!(
                "{};{};{}",
                c.status.as_str(),
                crate::checks::severity_name(c.severity),
                c.summary
            ),
        )?;
        for r in &c.rows {
            let cells: Vec<String> = c
                .columns
                .iter()
                .map(|col| {
                    let v = r.get(col).map(crate::checks::display_value);
                    format!("{col}={}", v.unwrap_or_default())
                })
                .collect();
            row("check_row", &c.id, &cells.join(";"))?;
        }
    }
    w.flush()
}
