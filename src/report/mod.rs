//! The report model (one serde data model) and its renderers: text, JSON, Markdown and CSV.
//!
//! Commands build a [`Report`]; nothing else decides how it looks.

pub mod cluster;
pub mod csv;
pub mod html;
pub mod json;
pub mod markdown;
pub mod patroni;
pub mod prometheus;
pub mod text;
pub mod v2;

use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::divergence::{Divergence, Verdict};
use crate::evidence::Transactions;
use crate::node::NodeFacts;

pub use crate::finding::{Finding, FindingId, Severity};

/// The version of the JSON layout ([`v2`]); bumped when a field changes meaning or disappears.
pub use v2::SCHEMA_VERSION;

/// Everything one run found, in the order a reader needs it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// The JSON layout version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The tool's name and version that produced this report.
    pub tool: String,
    /// When the run started (RFC 3339, UTC).
    pub generated_at: String,
    /// How long the run took, in milliseconds.
    pub duration_ms: u64,
    /// The answer: `no_loss`, `loss`, `rewound`, `unrelated` or `inconclusive`.
    pub verdict: Verdict,
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
    pub tables: Option<crate::diff::TablesReport>,
    /// Things the reader should know or do, most severe first.
    pub findings: Vec<Finding>,
    /// The results of the declarative checks (`checks/*.toml`, `--checks-dir`), in catalog
    /// order; they never change the verdict.
    #[serde(default)]
    pub checks: Vec<crate::checks::CheckResult>,
    /// Patroni discovery (`--patroni`): the members, how the nodes were chosen, and the
    /// promotion in Patroni's `/history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patroni: Option<crate::patroni::PatroniSection>,
}

/// One node as the report shows it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NodeSection {
    /// The connection target with any password masked.
    pub target: String,
    /// What the node said about itself, if it could be reached.
    pub facts: Option<NodeFacts>,
    /// Why it could not be read, if it could not.
    pub error: Option<String>,
}

/// The exit code of a finished report, the one rule for every command and format: 1 when the
/// verdict is a loss or any finding implies one ([`crate::finding::Implies::Loss`]), 0 for no
/// loss, 2 when the question was not decided (rewound, unrelated, inconclusive).
pub fn exit_code(verdict: Verdict, findings: &[Finding]) -> u8 {
    let loss_finding = findings
        .iter()
        .any(|f| f.id.implies() == crate::finding::Implies::Loss);
    match verdict {
        Verdict::Loss => 1,
        _ if loss_finding => 1,
        Verdict::NoLoss => 0,
        Verdict::Rewound | Verdict::Unrelated | Verdict::Inconclusive => 2,
    }
}

/// The output formats of `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text with tables (the default).
    Text,
    /// Machine-readable JSON with a `schema_version`.
    Json,
    /// Markdown that pastes into an incident ticket.
    Markdown,
    /// `section,field,value` rows for spreadsheets.
    Csv,
    /// One self-contained HTML page with the timelines drawn as SVG.
    Html,
    /// Prometheus text format for node_exporter's textfile collector.
    Prometheus,
}

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

/// The rows of the node comparison shared by the text and Markdown renderers:
/// (field, new primary, former primary).
pub(crate) fn node_rows(report: &Report) -> Vec<[String; 3]> {
    fn get(s: &NodeSection, f: impl Fn(&NodeFacts) -> String) -> String {
        match (&s.facts, &s.error) {
            (Some(facts), _) => f(facts),
            (None, Some(_)) => "unreachable".into(),
            (None, None) => "-".into(),
        }
    }
    type Field = (&'static str, fn(&NodeFacts) -> String);
    let fields: [Field; 10] = [
        ("server version", |f| f.server_version.clone()),
        ("system identifier", |f| f.system_identifier.to_string()),
        ("role", |f| f.role().to_string()),
        ("timeline", |f| f.timeline.to_string()),
        ("end of WAL", |f| f.end_of_wal.to_string()),
        ("insert LSN", |f| lsn_or_dash(f.insert_lsn)),
        ("receive / replay LSN", |f| {
            format!(
                "{} / {}",
                lsn_or_dash(f.receive_lsn),
                lsn_or_dash(f.replay_lsn)
            )
        }),
        ("checkpoint / redo LSN", |f| {
            format!(
                "{} / {}",
                lsn_or_dash(f.checkpoint_lsn),
                lsn_or_dash(f.redo_lsn)
            )
        }),
        ("history", |f| match &f.history {
            Some(h) if h.entries.is_empty() => "none (timeline 1)".into(),
            Some(h) => h
                .entries
                .iter()
                .map(|e| format!("{}→{}", e.parent, e.switchpoint))
                .collect::<Vec<_>>()
                .join(", "),
            None => "unreadable".into(),
        }),
        ("read at", |f| f.read_at.clone()),
    ];
    let used = |s: &NodeSection| s.facts.is_some() || s.error.is_some();
    if !used(&report.new_primary) && !used(&report.former_primary) {
        return Vec::new();
    }
    let mut rows = vec![[
        "target".to_string(),
        report.new_primary.target.clone(),
        report.former_primary.target.clone(),
    ]];
    rows.extend(fields.iter().map(|(name, f)| {
        [
            name.to_string(),
            get(&report.new_primary, f),
            get(&report.former_primary, f),
        ]
    }));
    rows
}

/// The rows of the divergence table shared by the text and Markdown renderers: (field, value).
pub(crate) fn divergence_rows(d: &Divergence) -> Vec<[String; 2]> {
    vec![
        [
            "timelines".into(),
            d.timeline_path
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(" → "),
        ],
        ["former timeline".into(), d.former_timeline.to_string()],
        ["new timeline".into(), d.new_timeline.to_string()],
        ["switchpoint".into(), lsn_or_dash(d.switchpoint_lsn)],
        ["former end of WAL".into(), d.former_end_lsn.to_string()],
        [
            "lost WAL".into(),
            if d.lost_wal_bytes < 1024 {
                format!("{} bytes", d.lost_wal_bytes)
            } else {
                format!(
                    "{} bytes ({})",
                    d.lost_wal_bytes,
                    crate::divergence::human_bytes(d.lost_wal_bytes)
                )
            },
        ],
    ]
}

/// An optional LSN as text, `-` when absent.
pub(crate) fn lsn_or_dash(v: Option<crate::lsn::Lsn>) -> String {
    v.map_or_else(|| "-".into(), |l| l.to_string())
}

/// How many lost transactions the text and Markdown reports list (JSON and CSV list the first
/// and the last 100; the complete list goes to a file, see `lost_xids_file`).
pub const LISTED_XIDS: usize = 20;

/// How many minutes of the loss timeline the text, Markdown and HTML reports list.
pub const LISTED_MINUTES: usize = 30;

/// What the text, Markdown and HTML reports say under a lost-transaction list cut to `listed`
/// rows: how many there are and where the rest is; `None` when every one is shown.
pub(crate) fn lost_xids_note(t: &Transactions, listed: usize) -> Option<String> {
    let shown = listed.min(t.lost_xids.len());
    if t.lost_commits <= shown {
        return None;
    }
    let rest = match (&t.lost_xids_file, t.lost_xids_omitted) {
        (Some(f), _) => format!("all of them are in {f}"),
        (None, 0) => "the JSON and CSV reports list all".into(),
        (None, _) => format!(
            "the JSON and CSV reports list the first and last {}; the complete list goes to a file with --lost-xids-file (wal) or --export-dir (compare)",
            t.lost_xids.len() / 2
        ),
    };
    Some(format!("First {shown} of {}; {rest}.", t.lost_commits))
}

/// The header and rows of the per-database loss table.
pub(crate) fn database_loss_rows(t: &Transactions) -> Vec<[String; 6]> {
    let mut rows = vec![[
        "database".to_string(),
        "lost commits".into(),
        "inserts".into(),
        "updates (HOT)".into(),
        "deletes".into(),
        "truncates".into(),
    ]];
    rows.extend(t.databases.iter().map(|d| {
        [
            match (&d.database, d.database_oid) {
                (Some(n), _) => n.clone(),
                (None, Some(oid)) => format!("OID {oid}"),
                (None, None) => "-".into(),
            },
            d.commits.to_string(),
            d.inserts.to_string(),
            format!("{} ({})", d.updates, d.hot_updates),
            d.deletes.to_string(),
            d.truncates.to_string(),
        ]
    }));
    rows
}

/// The header and the first `limit` rows of the loss timeline (lost commits per minute), and
/// how many minutes were left out.
pub(crate) fn minute_rows(t: &Transactions, limit: usize) -> (Vec<[String; 2]>, usize) {
    let mut rows = vec![["minute (UTC)".to_string(), "lost commits".into()]];
    rows.extend(
        t.commits_per_minute
            .iter()
            .take(limit)
            .map(|m| [m.minute.clone(), m.commits.to_string()]),
    );
    (rows, t.commits_per_minute.len().saturating_sub(limit))
}

/// Summary rows of the `transactions` section: (field, value).
pub(crate) fn transaction_rows(t: &Transactions) -> Vec<[String; 2]> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    vec![
        ["WAL read from".into(), t.source.clone()],
        [
            "decoded".into(),
            format!(
                "{} → {} ({})",
                t.scan_start_lsn,
                lsn_or_dash(t.end_lsn),
                opt(&t.end_reason)
            ),
        ],
    ]
    .into_iter()
    .chain(coverage_rows(t))
    .chain([
        [
            "lost commits".into(),
            match &t.coverage {
                Some(c) if !c.complete => format!("at least {}", t.lost_commits),
                _ => t.lost_commits.to_string(),
            },
        ],
        [
            "row changes (user tables)".into(),
            format!("{} in {} table(s)", t.row_changes, t.tables_changed),
        ],
        [
            "complete list".into(),
            match (&t.lost_xids_file, t.lost_xids_omitted) {
                (Some(f), _) => f.clone(),
                (None, 0) => "in the report".into(),
                (None, n) => format!(
                    "not written: {n} left out of the report (--lost-xids-file PATH or --export-dir DIR writes them)"
                ),
            },
        ],
        ["first lost commit".into(), opt(&t.first_lost_commit_time)],
        ["last lost commit".into(), opt(&t.last_lost_commit_time)],
        ["prepared, in doubt".into(), t.in_doubt.len().to_string()],
        ["lost DDL".into(), t.lost_ddl.to_string()],
        [
            "aborted / in flight (not lost)".into(),
            format!("{} / {}", t.aborts_after_switchpoint, t.in_flight),
        ],
        [
            "records after switchpoint".into(),
            t.records_after_switchpoint.to_string(),
        ],
        [
            "pg_walinspect check".into(),
            t.walinspect.as_ref().map_or("not installed".into(), |w| {
                format!(
                    "{} commits ({})",
                    w.commits,
                    if w.agrees { "agrees" } else { "DISAGREES" }
                )
            }),
        ],
    ])
    .collect()
}

/// Rows saying which LSN range the WAL files covered, for WAL read from files.
fn coverage_rows(t: &Transactions) -> Vec<[String; 2]> {
    let Some(c) = &t.coverage else {
        return Vec::new();
    };
    let mut rows = vec![[
        "evidence covered".into(),
        format!(
            "{} → {} ({} segment(s); {})",
            c.covered_from,
            c.covered_to,
            c.segments.len(),
            if c.complete { "complete" } else { "INCOMPLETE" }
        ),
    ]];
    if !c.complete {
        rows.push([
            "not covered".into(),
            format!(
                "{} → {}: {}",
                lsn_or_dash(c.uncovered_from),
                c.uncovered_to
                    .map_or_else(|| "unknown end".to_string(), |l| l.to_string()),
                if c.missing_segments.is_empty() {
                    c.reason.clone()
                } else {
                    format!("no source held {}", c.missing_segments.join(", "))
                }
            ),
        ]);
    }
    rows
}

/// The header and rows of the per-table loss table.
pub(crate) fn table_loss_rows(t: &Transactions) -> Vec<[String; 6]> {
    let mut rows = vec![[
        "database".to_string(),
        "table".into(),
        "inserts".into(),
        "updates (HOT)".into(),
        "deletes".into(),
        "truncates".into(),
    ]];
    rows.extend(t.tables.iter().map(|x| {
        [
            x.database.clone().unwrap_or_else(|| "-".into()),
            x.table
                .clone()
                .map(|n| {
                    if x.kind == "table" {
                        n
                    } else {
                        format!("{n} ({})", x.kind)
                    }
                })
                .unwrap_or_else(|| format!("relfilenode {} ({})", x.relfilenode, x.kind)),
            x.inserts.to_string(),
            format!("{} ({})", x.updates, x.hot_updates),
            x.deletes.to_string(),
            x.truncates.to_string(),
        ]
    }));
    rows
}

/// The header and the first `limit` rows of the lost-transaction list.
pub(crate) fn lost_xid_rows(t: &Transactions, limit: usize) -> Vec<[String; 6]> {
    let mut rows = vec![[
        "xid".to_string(),
        "commit LSN".into(),
        "commit time".into(),
        "database".into(),
        "changes (ins/upd/del)".into(),
        "notes".into(),
    ]];
    rows.extend(t.lost_xids.iter().take(limit).map(|x| {
        let mut notes = Vec::new();
        if !x.subxids.is_empty() {
            notes.push(format!("{} subxact(s)", x.subxids.len()));
        }
        if let Some(g) = &x.prepared_gid {
            notes.push(format!("COMMIT PREPARED '{g}'"));
        }
        if x.ddl {
            notes.push(format!("DDL ({} catalog row(s))", x.catalog_rows));
        }
        [
            x.xid.to_string(),
            x.commit_lsn.to_string(),
            x.commit_time.clone().unwrap_or_else(|| "-".into()),
            x.database.clone().unwrap_or_else(|| "-".into()),
            format!("{}/{}/{}", x.inserts, x.updates, x.deletes),
            notes.join(", "),
        ]
    }));
    rows
}

/// The lost DDL in words, one clause per relation (`table public.x created by lost xid 7 in
/// database d; …`), or `None` when no relation was named.
pub fn lost_ddl_line(t: &Transactions) -> Option<String> {
    if t.lost_ddl_relations.is_empty() {
        return None;
    }
    Some(
        t.lost_ddl_relations
            .iter()
            .map(|r| r.describe())
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// The header and rows of the lost-DDL table: (database, relation, kind, action, xid).
pub(crate) fn lost_ddl_rows(t: &Transactions) -> Vec<[String; 5]> {
    let mut rows = vec![[
        "database".to_string(),
        "relation".into(),
        "kind".into(),
        "action".into(),
        "lost xid".into(),
    ]];
    rows.extend(t.lost_ddl_relations.iter().map(|r| {
        [
            r.database.clone().unwrap_or_else(|| "-".into()),
            r.relation.clone(),
            r.kind.clone(),
            r.action.as_str().to_string(),
            r.xid.map_or_else(|| "-".into(), |x| x.to_string()),
        ]
    }));
    rows
}

// ---------------------------------------------------------------- checks

/// How many rows of one check the text and Markdown reports list (JSON and CSV list all).
pub const LISTED_CHECK_ROWS: usize = 20;

/// The checks summary table shared by the text and Markdown renderers:
/// (status, severity, check, summary).
pub(crate) fn check_rows(report: &Report) -> Vec<[String; 4]> {
    report
        .checks
        .iter()
        .map(|c| {
            let name = if c.origin == "builtin" {
                c.id.clone()
            } else if c.overrides_builtin {
                format!("{} (user, overrides builtin)", c.id)
            } else {
                format!("{} (user)", c.id)
            };
            [
                c.status.as_str().to_string(),
                crate::checks::severity_name(c.severity).to_string(),
                name,
                c.summary.clone(),
            ]
        })
        .collect()
}

/// The checks whose rows the reports detail: findings with rows.
pub(crate) fn checks_with_rows(
    report: &Report,
) -> impl Iterator<Item = &crate::checks::CheckResult> {
    report
        .checks
        .iter()
        .filter(|c| c.status == crate::checks::CheckStatus::Finding && !c.rows.is_empty())
}

/// The rows of one check as text: the header (its columns), then at most `limit` rows.
pub(crate) fn check_detail_rows(c: &crate::checks::CheckResult, limit: usize) -> Vec<Vec<String>> {
    let mut rows = vec![c.columns.clone()];
    rows.extend(c.rows.iter().take(limit).map(|r| {
        c.columns
            .iter()
            .map(|col| {
                r.get(col)
                    .map(crate::checks::display_value)
                    .unwrap_or_default()
            })
            .collect()
    }));
    rows
}

/// How many differing rows the text, Markdown and HTML reports list (JSON and CSV list all).
pub const LISTED_ROWS: usize = 25;

/// A serde enum value as its snake_case name (`lost_insert`, `both`, ...).
pub(crate) fn snake<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The per-table counts of the row diff: header and rows. `method` says how each table was
/// compared (`wal`: only the keys the WAL of either node touched; `full`: every row; `none`:
/// not compared) and the notes say why a table was not decided from the WAL.
pub(crate) fn row_diff_rows(t: &crate::diff::TablesReport) -> Vec<[String; 10]> {
    let mut rows = vec![[
        "table".to_string(),
        "method".into(),
        "compared".into(),
        "lost ins/upd/del".into(),
        "post-failover ins/upd/del".into(),
        "conflicts".into(),
        "unexplained".into(),
        "unattributed".into(),
        "presence".into(),
        "notes".into(),
    ]];
    rows.extend(t.tables.iter().map(|x| {
        let c = &x.counts;
        let mut notes: Vec<String> = x
            .schema_differences
            .iter()
            .map(|d| format!("{} {}", d.kind, d.column.clone().unwrap_or_default()))
            .collect();
        if let Some(why) = &x.fallback_reason {
            // An undecided table's error already gives the reason.
            if !x.error.as_deref().is_some_and(|e| e.contains(why.as_str())) {
                notes.push(format!("not from the WAL: {why}"));
            }
        }
        if let Some(e) = &x.error {
            notes.push(format!("error: {e}"));
        }
        [
            format!("{}.{}.{}", x.database, x.schema, x.table),
            snake(&x.method),
            x.rows_compared.to_string(),
            format!("{}/{}/{}", c.lost_insert, c.lost_update, c.lost_delete),
            format!(
                "{}/{}/{}",
                c.post_failover_insert, c.post_failover_update, c.post_failover_delete
            ),
            c.conflict.to_string(),
            c.unexplained.to_string(),
            c.unknown.to_string(),
            snake(&x.presence),
            notes.join("; "),
        ]
    }));
    rows
}

/// The first `limit` differing rows of the row diff: header and rows.
pub(crate) fn differing_rows(t: &crate::diff::TablesReport, limit: usize) -> Vec<[String; 5]> {
    let mut rows = vec![[
        "table".to_string(),
        "key".into(),
        "class".into(),
        "former (xmin)".into(),
        "new (xmin)".into(),
    ]];
    let version = |v: &Option<crate::diff::RowVersion>| {
        v.as_ref().map_or_else(
            || "-".to_string(),
            |v| {
                format!(
                    "{} ({})",
                    serde_json::Value::Object(v.values.clone()),
                    v.xmin
                )
            },
        )
    };
    // With several databases compared, the same table name can be in each: name the database.
    let many = t.databases.len() > 1;
    rows.extend(
        t.tables
            .iter()
            .flat_map(|x| x.rows.iter().map(move |r| (x, r)))
            .take(limit)
            .map(|(x, r)| {
                [
                    if many {
                        format!("{}.{}.{}", x.database, x.schema, x.table)
                    } else {
                        format!("{}.{}", x.schema, x.table)
                    },
                    r.key.as_ref().map_or_else(
                        || "(no key)".into(),
                        |k| serde_json::Value::Object(k.clone()).to_string(),
                    ),
                    snake(&r.class),
                    version(&r.former),
                    version(&r.new),
                ]
            }),
    );
    rows
}

/// Rows differing in all tables.
pub(crate) fn differing_row_count(t: &crate::diff::TablesReport) -> usize {
    t.tables.iter().map(|x| x.rows.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::{ClassCounts, Method, Presence, TableReport, TablesReport};

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
