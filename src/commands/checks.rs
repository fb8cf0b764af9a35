//! `failover-verify checks list`: the catalog (built-in checks plus `--checks-dir`) as a
//! table, JSON or CSV. Nothing connects to a server.

use std::io::{self, Write};

use serde::Serialize;
use tabled::builder::Builder;
use tabled::settings::Style;

use crate::checks::{severity_name, Catalog, ListRow, Override};
use crate::cli::{ChecksArgs, ChecksCommand};
use crate::report::Format;

use super::CommandError;

/// Runs a `checks` subcommand and returns what to write on stdout.
pub fn run(args: &ChecksArgs) -> Result<Vec<u8>, CommandError> {
    match &args.command {
        ChecksCommand::List(a) => {
            let catalog = Catalog::load(a.checks_dir.as_deref())?;
            let mut buf = Vec::new();
            render_list(&catalog, a.format, &mut buf).map_err(|e| CommandError::Usage {
                flag: "--format",
                message: format!("cannot render the list: {e}"),
            })?;
            Ok(buf)
        }
    }
}

/// The JSON layout of `checks list --format json`.
#[derive(Serialize)]
struct ListJson<'a> {
    checks: Vec<ListRow>,
    overrides: &'a [Override],
}

/// Writes the catalog's [`Catalog::list_rows`] in `format`.
pub fn render_list(catalog: &Catalog, format: Format, out: &mut dyn Write) -> io::Result<()> {
    let rows = catalog.list_rows();
    let header = ["id", "severity", "runs on", "title", "origin"];
    let cells = |r: &ListRow| {
        [
            r.id.clone(),
            severity_name(r.severity).to_string(),
            r.runs_on.as_str().to_string(),
            r.title.clone(),
            r.origin.clone(),
        ]
    };
    match format {
        Format::Text => {
            let mut b = Builder::default();
            b.push_record(header);
            for r in &rows {
                b.push_record(cells(r));
            }
            writeln!(out, "{}", b.build().with(Style::sharp()))?;
            for o in catalog.overrides() {
                writeln!(out, "{} overrides the built-in {}", o.user, o.builtin)?;
            }
            Ok(())
        }
        Format::Markdown => {
            writeln!(out, "| {} |", header.join(" | "))?;
            writeln!(out, "|{}", "---|".repeat(header.len()))?;
            for r in &rows {
                let c = cells(r).map(|c| crate::quote::markdown_cell(&c));
                writeln!(out, "| {} |", c.join(" | "))?;
            }
            Ok(())
        }
        Format::Csv => {
            let mut w = ::csv::Writer::from_writer(out);
            w.write_record(["id", "severity", "runs_on", "title", "origin"])?;
            for r in &rows {
                w.write_record(cells(r))?;
            }
            w.flush()
        }
        Format::Json => {
            let doc = ListJson {
                checks: rows,
                overrides: catalog.overrides(),
            };
            serde_json::to_writer_pretty(&mut *out, &doc).map_err(io::Error::other)?;
            writeln!(out)
        }
        Format::Html | Format::Prometheus => Err(io::Error::other(
            "checks list writes text, json, markdown or csv",
        )),
    }
}
