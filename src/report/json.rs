//! JSON: the report's wire form ([`super::v2::Report`]) as serde writes it, pretty-printed, with
//! a trailing newline.

use std::io::{self, Write};

use super::Report;

/// Writes `report` as pretty JSON, in the version 2 wire format.
pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let wire = super::v2::Report::from_report(report);
    serde_json::to_writer_pretty(&mut *out, &wire).map_err(io::Error::other)?;
    writeln!(out)
}
