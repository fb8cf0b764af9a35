//! The report: its model ([`model`]), the tables every format shows ([`rows`]), the versioned
//! wire form ([`v2`]) and one renderer per format.
//!
//! Commands build a [`Report`]; nothing else decides how it looks.

pub mod cluster;
pub mod cluster_html;
pub mod csv;
pub mod discovery;
pub mod downstream;
pub mod html;
pub mod json;
pub mod markdown;
pub mod model;
pub mod patroni;
pub mod prometheus;
pub mod rows;
pub mod text;
pub mod v2;

use std::io::{self, Write};
use std::path::Path;

pub use crate::finding::{Finding, FindingId, Severity};
pub use model::{exit_code, now_rfc3339, tool_id, Format, NodeSection, Report};
pub(crate) use rows::{
    check_detail_rows, check_rows, checks_with_rows, database_loss_rows, differing_row_count,
    differing_rows, divergence_rows, lost_ddl_rows, lost_xid_rows, lost_xids_note, lsn_or_dash,
    minute_rows, node_rows, row_diff_rows, table_loss_rows, transaction_rows,
};
pub use rows::{lost_ddl_line, LISTED_CHECK_ROWS, LISTED_MINUTES, LISTED_ROWS, LISTED_XIDS};

/// The version of the JSON layout ([`v2`]); bumped when a field changes meaning or disappears.
pub use v2::SCHEMA_VERSION;

/// Renders `report` in `format` into `out`.
pub fn render(report: &Report, format: Format, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Text => text::render(report, out),
        Format::Json => json::render(report, out),
        Format::Markdown => markdown::render(report, out),
        Format::Csv => csv::render(report, out),
        Format::Html => html::render(report, out),
        Format::Prometheus => prometheus::render(report, out),
    }
}

/// Renders a `cluster` report in `format` into `out`.
pub fn render_cluster(
    report: &cluster::ClusterReport,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Text => cluster::render_text(report, out),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, report).map_err(io::Error::other)?;
            writeln!(out)
        }
        Format::Markdown => cluster::render_markdown(report, out),
        Format::Csv => cluster::render_csv(report, out),
        Format::Prometheus => prometheus::render_cluster(report, out),
        Format::Html => {
            // The fork tree as a picture, then the text tables.
            let mut text = Vec::new();
            cluster::render_text(report, &mut text)?;
            let page = cluster_html::render(report, &String::from_utf8_lossy(&text));
            writeln!(out, "{page}")
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, then rename,
/// so a reader (or a crash) never sees half a report.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".failover-verify-");
    // Like any new file: 0666 minus the umask. tempfile's default, 0600, would hide a metrics
    // file from node_exporter, which runs as another user.
    #[cfg(unix)]
    builder
        .permissions(<std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o666));
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    // A report is for sharing: the usual 0644, not the temporary file's 0600.
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::{ClassCounts, Method, Presence, TableReport, TablesReport};
    use crate::divergence::Verdict;
    use crate::evidence::Transactions;

    fn table(name: &str, method: Method, reason: Option<&str>, error: Option<&str>) -> TableReport {
        TableReport {
            database: "db".into(),
            schema: "s".into(),
            table: name.into(),
            presence: Presence::Both,
            schema_differences: Vec::new(),
            method,
            fallback_reason: reason.map(str::to_string),
            key_columns: vec!["id".into()],
            columns: vec!["id".into()],
            column_types: vec!["integer".into()],
            generated_columns: Vec::new(),
            rows_compared: 7,
            chunks: 0,
            chunks_mismatched: 0,
            queries: 0,
            rows_fetched: 0,
            counts: ClassCounts::default(),
            rows: Vec::new(),
            elapsed_ms: 1,
            error: error.map(str::to_string),
            not_examined: Vec::new(),
        }
    }

    fn report() -> Report {
        let rewritten = "relfilenode 1663/5/16390 was created after the switchpoint";
        Report {
            schema_version: SCHEMA_VERSION,
            tool: "failover-verify test".into(),
            generated_at: "2026-01-01T00:00:00Z".into(),
            duration_ms: 1,
            verdict: Verdict::Loss,
            explanation: "test".into(),
            incomplete: false,
            new_primary: NodeSection::default(),
            former_primary: NodeSection::default(),
            divergence: None,
            transactions: None,
            tables: Some(TablesReport {
                tables: vec![
                    table("guided", Method::Wal, None, None),
                    table("rewritten", Method::Full, Some(rewritten), None),
                    table(
                        "undecided",
                        Method::None,
                        Some("no primary key common to both nodes"),
                        Some("not decided from the WAL: no primary key common to both nodes"),
                    ),
                ],
                ..TablesReport::default()
            }),
            findings: Vec::new(),
            checks: Vec::new(),
            patroni: None,
            discovery: None,
            downstream: None,
        }
    }

    fn rendered(format: Format) -> String {
        let mut out = Vec::new();
        render(&report(), format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The line (or row) of one table in a rendered report.
    fn line_of<'a>(text: &'a str, table: &str) -> &'a str {
        text.lines()
            .find(|l| l.contains(&format!("db.s.{table}")))
            .unwrap_or_else(|| panic!("no line for {table} in\n{text}"))
    }

    #[test]
    fn every_format_says_the_lost_ddl_by_relation() {
        use crate::evidence::ddl::{DdlAction, LostDdlRelation};
        let rel = |name: &str, action| LostDdlRelation {
            database: Some("db2".into()),
            relation: name.into(),
            kind: "table".into(),
            action,
            xid: Some(crate::lsn::Xid(742)),
            oid: 16400,
        };
        let mut r = report();
        r.transactions = Some(Transactions {
            lost_ddl: 2,
            lost_ddl_relations: vec![
                rel("public.x", DdlAction::Created),
                rel("public.y", DdlAction::Dropped),
            ],
            ..Transactions::default()
        });
        let line = "table public.x created by lost xid 742 in database db2; \
                    table public.y dropped by lost xid 742 in database db2";
        assert_eq!(
            lost_ddl_line(r.transactions.as_ref().unwrap()).unwrap(),
            line
        );
        for format in [Format::Text, Format::Markdown, Format::Html, Format::Csv] {
            let mut out = Vec::new();
            render(&r, format, &mut out).unwrap();
            let out = String::from_utf8(out).unwrap();
            assert!(out.contains(line), "{format:?}: no lost DDL line\n{out}");
        }
        // Nothing named: no line.
        r.transactions.as_mut().unwrap().lost_ddl_relations.clear();
        assert!(lost_ddl_line(r.transactions.as_ref().unwrap()).is_none());
    }

    #[test]
    fn every_format_shows_the_method_and_the_fallback_reason() {
        for format in [Format::Text, Format::Markdown, Format::Csv] {
            let out = rendered(format);
            if format != Format::Csv {
                assert!(
                    out.contains("method"),
                    "{format:?}: no method column\n{out}"
                );
            }
            let guided = line_of(&out, "guided");
            assert!(guided.contains("wal"), "{format:?}: {guided}");
            assert!(!guided.contains("full"), "{format:?}: {guided}");
            let full = line_of(&out, "rewritten");
            assert!(full.contains("full"), "{format:?}: {full}");
            assert!(
                full.contains("not from the WAL: relfilenode 1663/5/16390 was created"),
                "{format:?}: {full}"
            );
            let none = line_of(&out, "undecided");
            assert!(none.contains("none"), "{format:?}: {none}");
            assert_eq!(
                none.matches("no primary key common").count(),
                1,
                "{format:?}: the reason once: {none}"
            );
        }
        let html = rendered(Format::Html);
        assert!(html.contains("<th>method</th>"), "{html}");
        assert!(html.contains("<td>wal</td>"));
        assert!(html.contains("not from the WAL: relfilenode 1663/5/16390"));
    }
}
