//! JSON: the whole [`Report`] as serde writes it, pretty-printed, with a trailing newline.

use std::io::{self, Write};

use super::Report;

/// Writes `report` as pretty JSON.
pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report).map_err(io::Error::other)?;
    writeln!(out)
}
