//! CSV: one `section,field,value` row per fact, for spreadsheets and ticket attachments.

use std::io::{self, Write};

use super::{divergence_rows, node_rows, Report};

/// Writes `report` as `section,field,value` rows.
pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let mut w = ::csv::Writer::from_writer(out);
    let mut row = |a: &str, b: &str, c: &str| w.write_record([a, b, c]);
    row("section", "field", "value")?;
    row("summary", "verdict", report.verdict.as_str())?;
    row("summary", "explanation", &report.explanation)?;
    row("summary", "incomplete", &report.incomplete.to_string())?;
    for [field, new, former] in node_rows(report) {
        row("new_primary", &field, &new)?;
        row("former_primary", &field, &former)?;
    }
    if let Some(d) = &report.divergence {
        for [field, value] in divergence_rows(d) {
            row("divergence", &field, &value)?;
        }
    }
    for f in &report.findings {
        row("finding", &f.id, &f.message)?;
    }
    w.flush()
}
