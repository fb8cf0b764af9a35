//! Recovery export: per table a CSV of the lost row versions, and one reviewable SQL script per
//! database that would re-apply them to the new primary without overwriting later writes.
//!
//! Inserts are guarded with `ON CONFLICT DO NOTHING` (tables with a key), updates and deletes
//! by the new side's current values (compared as text under the pinned settings, so types
//! without an equality operator such as `json` work), conflicts are left commented out with
//! both versions shown, and sequences get guarded `setval` suggestions. Files are written to a
//! temporary file and renamed. The tool never runs the script.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use super::error::DiffError;
use super::report::{ExportSummary, RowClass, RowDiff, RowVersion, TableReport, TablesReport};
use super::sql::{ident, literal, qualified, typed};

/// Writes the export for `report` into `dir` (created if missing).
pub fn write_export(dir: &Path, report: &TablesReport) -> Result<ExportSummary, DiffError> {
    let io = |path: &Path, source| DiffError::Export {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut summary = ExportSummary {
        dir: dir.display().to_string(),
        files: Vec::new(),
        statements: 0,
        commented_conflicts: 0,
    };
    let many = report.databases.len() > 1;
    for db in &report.databases {
        let tables: Vec<&TableReport> =
            report.tables.iter().filter(|t| &t.database == db).collect();
        let mut script = header(db);
        for (i, t) in tables.iter().enumerate() {
            if !t.rows.iter().any(|r| exported(r.class)) && t.presence == super::Presence::Both {
                continue;
            }
            table_section(&mut script, t, &mut summary);
            let lost: Vec<&RowDiff> = t.rows.iter().filter(|r| exported(r.class)).collect();
            if !lost.is_empty() {
                let name = format!(
                    "{:03}_{}.lost.csv",
                    i + 1,
                    file_stem(db, &t.schema, &t.table)
                );
                let bytes = csv_bytes(t, &lost);
                write_atomic(dir, &name, &bytes)?;
                summary.files.push(name);
            }
        }
        sequence_section(&mut script, report, db, &mut summary);
        script.push_str("\n-- Review everything above, then:\nCOMMIT;\n");
        let name = if many {
            format!("recovery-{}.sql", file_stem(db, "", ""))
        } else {
            "recovery.sql".to_string()
        };
        write_atomic(dir, &name, script.as_bytes())?;
        summary.files.push(name);
    }
    Ok(summary)
}

fn exported(c: RowClass) -> bool {
    matches!(
        c,
        RowClass::LostInsert | RowClass::LostUpdate | RowClass::LostDelete | RowClass::Conflict
    )
}

fn file_stem(db: &str, schema: &str, table: &str) -> String {
    [db, schema, table]
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Writes `dir/name` through a temporary file in `dir` and a rename.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), DiffError> {
    let path = dir.join(name);
    let err = |source| DiffError::Export {
        path: path.clone(),
        source,
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(&path).map_err(|e| err(e.error))?;
    Ok(())
}

fn header(db: &str) -> String {
    format!(
        "-- failover-verify recovery script for database {db:?}.\n\
         -- Re-applies row versions lost in the failover to the NEW primary. Review it first:\n\
         -- every statement is guarded so it changes nothing that was written after the\n\
         -- promotion; conflicts are commented out with both versions shown.\n\
         -- The tool never runs this script.\n\
         SET TimeZone = 'UTC';\nSET DateStyle = 'ISO, YMD';\nSET IntervalStyle = 'postgres';\n\
         SET extra_float_digits = 3;\nSET bytea_output = 'hex';\n\
         SET standard_conforming_strings = on;\nSET search_path = '';\nBEGIN;\n"
    )
}

fn value<'a>(v: &'a RowVersion, col: &str) -> Option<&'a str> {
    v.values.get(col).and_then(|x| x.as_str())
}

struct Cols<'a> {
    t: &'a TableReport,
}

impl Cols<'_> {
    fn writable(&self) -> Vec<(&String, &String)> {
        self.t
            .columns
            .iter()
            .zip(&self.t.column_types)
            .filter(|(c, _)| !self.t.generated_columns.contains(c))
            .collect()
    }

    fn all(&self) -> Vec<(&String, &String)> {
        self.t.columns.iter().zip(&self.t.column_types).collect()
    }

    fn insert(&self, v: &RowVersion) -> String {
        let w = self.writable();
        let names: Vec<String> = w.iter().map(|(c, _)| ident(c)).collect();
        let vals: Vec<String> = w.iter().map(|(c, ty)| typed(value(v, c), ty)).collect();
        let guard = if self.t.key_columns.is_empty() {
            ""
        } else {
            " ON CONFLICT DO NOTHING"
        };
        format!(
            "INSERT INTO {} ({}) VALUES ({}){guard};",
            qualified(&self.t.schema, &self.t.table),
            names.join(", "),
            vals.join(", ")
        )
    }

    /// `ROW(c::text, …) IS NOT DISTINCT FROM ROW('v', …)`: the row still equals `v`.
    fn unchanged(&self, v: &RowVersion) -> String {
        let a = self.all();
        let lhs: Vec<String> = a
            .iter()
            .map(|(c, _)| format!("{}::text", ident(c)))
            .collect();
        let rhs: Vec<String> = a.iter().map(|(c, _)| typed(value(v, c), "text")).collect();
        format!(
            "ROW({}) IS NOT DISTINCT FROM ROW({})",
            lhs.join(", "),
            rhs.join(", ")
        )
    }

    fn key_match(&self, v: &RowVersion) -> String {
        let types = |k: &String| {
            self.t
                .columns
                .iter()
                .position(|c| c == k)
                .map(|i| self.t.column_types[i].as_str())
                .unwrap_or("text")
        };
        let cols: Vec<String> = self.t.key_columns.iter().map(|k| ident(k)).collect();
        let vals: Vec<String> = self
            .t
            .key_columns
            .iter()
            .map(|k| typed(value(v, k), types(k)))
            .collect();
        format!("({}) = ({})", cols.join(", "), vals.join(", "))
    }

    fn update(&self, from_new: &RowVersion, to: &RowVersion) -> String {
        let w = self.writable();
        let names: Vec<String> = w.iter().map(|(c, _)| ident(c)).collect();
        let vals: Vec<String> = w.iter().map(|(c, ty)| typed(value(to, c), ty)).collect();
        format!(
            "UPDATE {} SET ({}) = ROW({}) WHERE {} AND {};",
            qualified(&self.t.schema, &self.t.table),
            names.join(", "),
            vals.join(", "),
            self.key_match(from_new),
            self.unchanged(from_new)
        )
    }

    fn delete(&self, v: &RowVersion) -> String {
        let t = qualified(&self.t.schema, &self.t.table);
        if self.t.key_columns.is_empty() {
            format!(
                "DELETE FROM {t} WHERE ctid = (SELECT ctid FROM {t} WHERE {} LIMIT 1);",
                self.unchanged(v)
            )
        } else {
            format!(
                "DELETE FROM {t} WHERE {} AND {};",
                self.key_match(v),
                self.unchanged(v)
            )
        }
    }
}

fn json(v: &Option<RowVersion>) -> String {
    match v {
        None => "(absent)".into(),
        Some(v) => format!(
            "xmin {} {}",
            v.xmin,
            serde_json::Value::Object(v.values.clone())
        ),
    }
}

fn comment_out(s: &str) -> String {
    s.lines().map(|l| format!("-- {l}\n")).collect()
}

fn table_section(script: &mut String, t: &TableReport, summary: &mut ExportSummary) {
    let name = qualified(&t.schema, &t.table);
    let _ = writeln!(script, "\n-- ===== {name}");
    match t.presence {
        super::Presence::FormerOnly => {
            let _ = writeln!(
                script,
                "-- This table exists only on the former primary ({} rows): it may have been \
                 created by a lost transaction. Recreate it from the former primary (pg_dump -t).",
                t.rows_compared
            );
            return;
        }
        super::Presence::NewOnly => {
            let _ = writeln!(script, "-- This table exists only on the new primary.");
            return;
        }
        super::Presence::Both => {}
    }
    let c = Cols { t };
    for r in &t.rows {
        match (r.class, &r.former, &r.new) {
            (RowClass::LostInsert, Some(f), _) => {
                let _ = writeln!(script, "-- lost insert (former xmin {})", f.xmin);
                let _ = writeln!(script, "{}", c.insert(f));
                summary.statements += 1;
            }
            (RowClass::LostUpdate, Some(f), Some(n)) => {
                let _ = writeln!(
                    script,
                    "-- lost update (former xmin {}, new xmin {})",
                    f.xmin, n.xmin
                );
                let _ = writeln!(script, "{}", c.update(n, f));
                summary.statements += 1;
            }
            (RowClass::LostDelete, _, Some(n)) => {
                let _ = writeln!(script, "-- lost delete (new xmin {})", n.xmin);
                let _ = writeln!(script, "{}", c.delete(n));
                summary.statements += 1;
            }
            (RowClass::Conflict, Some(f), Some(n)) => {
                let _ = writeln!(
                    script,
                    "-- CONFLICT: changed by a lost transaction and again after the promotion."
                );
                let _ = writeln!(script, "--   former: {}", json(&r.former));
                let _ = writeln!(script, "--   new:    {}", json(&r.new));
                script.push_str(&comment_out(&c.update(n, f)));
                summary.commented_conflicts += 1;
            }
            _ => {}
        }
    }
}

fn sequence_section(
    script: &mut String,
    report: &TablesReport,
    db: &str,
    summary: &mut ExportSummary,
) {
    let behind: Vec<_> = report
        .sequences
        .iter()
        .filter(|s| s.database == db && s.new_is_behind)
        .collect();
    if behind.is_empty() {
        return;
    }
    script.push_str(
        "\n-- ===== sequences\n-- The new primary must hand out values beyond what the former primary \
         already used (rows above may carry them). Each setval only moves a sequence forward: \
         afterwards its next value is the former primary's last value plus the increment.\n",
    );
    for s in behind {
        let Some(v) = s.former_last_value else {
            continue;
        };
        let q = qualified(&s.schema, &s.name);
        let _ = writeln!(
            script,
            "SELECT pg_catalog.setval({}, {v}) FROM {q} WHERE last_value < {v} OR (last_value = {v} AND NOT is_called);",
            literal(&q)
        );
        summary.statements += 1;
    }
}

/// The CSV of one table's lost row versions: a header (`class`, `xmin`, the columns), then one
/// line per version. It reads back with `COPY … FROM … (FORMAT csv, HEADER)`: NULL is an
/// unquoted empty field and an empty string is `""`, which COPY's CSV format tells apart.
fn csv_bytes(t: &TableReport, rows: &[&RowDiff]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut head = vec!["class", "xmin"];
    head.extend(t.columns.iter().map(String::as_str));
    csv_record(&mut out, head.into_iter().map(Some));
    for r in rows {
        // Lost deletes: the version the former primary deleted is the one still on the new side.
        let (v, class) = match r.class {
            RowClass::LostDelete => (r.new.as_ref(), "lost_delete"),
            RowClass::LostInsert => (r.former.as_ref(), "lost_insert"),
            RowClass::LostUpdate => (r.former.as_ref(), "lost_update"),
            _ => (r.former.as_ref(), "conflict"),
        };
        let Some(v) = v else { continue };
        let xmin = v.xmin.to_string();
        let fields = [Some(class), Some(xmin.as_str())]
            .into_iter()
            .chain(t.columns.iter().map(|c| value(v, c)));
        csv_record(&mut out, fields);
    }
    out
}

/// One CSV line (RFC 4180 quoting, `\n` terminated) in the form PostgreSQL's CSV `COPY`
/// reads back exactly: `None` (NULL) is an unquoted empty field; an empty string is quoted
/// (`""`); a value is quoted when it holds the delimiter, a quote, CR or LF, or is `\.` (the
/// end-of-data marker of `COPY FROM STDIN`).
fn csv_record<'a>(out: &mut Vec<u8>, fields: impl Iterator<Item = Option<&'a str>>) {
    for (i, f) in fields.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let Some(v) = f else { continue };
        crate::quote::csv_field(out, v);
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::report::{ClassCounts, DiffKind, Method, Presence};

    fn version(xmin: u32, values: &[(&str, Option<&str>)]) -> RowVersion {
        RowVersion {
            xmin,
            values: values
                .iter()
                .map(|(c, v)| {
                    (
                        c.to_string(),
                        v.map(|s| serde_json::Value::String(s.into()))
                            .unwrap_or(serde_json::Value::Null),
                    )
                })
                .collect(),
            image: None,
        }
    }

    fn table(rows: Vec<RowDiff>) -> TableReport {
        TableReport {
            database: "db".into(),
            schema: "public".into(),
            table: "t".into(),
            presence: Presence::Both,
            schema_differences: Vec::new(),
            method: Method::Full,
            fallback_reason: None,
            key_columns: vec!["id".into()],
            columns: vec!["id".into(), "a".into(), "b, \"c\"".into()],
            column_types: vec!["integer".into(), "text".into(), "text".into()],
            generated_columns: Vec::new(),
            rows_compared: 0,
            rows_fetched: 0,
            chunks: 0,
            chunks_mismatched: 0,
            queries: 0,
            counts: ClassCounts::default(),
            rows,
            elapsed_ms: 0,
            error: None,
            not_examined: Vec::new(),
        }
    }

    fn lost(v: RowVersion) -> RowDiff {
        RowDiff {
            key: None,
            kind: DiffKind::MissingOnNew,
            class: RowClass::LostInsert,
            former: Some(v),
            new: None,
        }
    }

    #[test]
    fn csv_tells_null_from_empty_string() {
        let t = table(vec![
            lost(version(
                7,
                &[("id", Some("1")), ("a", None), ("b, \"c\"", Some(""))],
            )),
            lost(version(
                8,
                &[("id", Some("2")), ("a", Some("")), ("b, \"c\"", None)],
            )),
            lost(version(
                9,
                &[
                    ("id", Some("3")),
                    ("a", Some("x,\"y\"\r\nz")),
                    ("b, \"c\"", Some("\\.")),
                ],
            )),
        ]);
        let rows: Vec<&RowDiff> = t.rows.iter().collect();
        let bytes = csv_bytes(&t, &rows);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "class,xmin,id,a,\"b, \"\"c\"\"\"\n\
             lost_insert,7,1,,\"\"\n\
             lost_insert,8,2,\"\",\n\
             lost_insert,9,3,\"x,\"\"y\"\"\r\nz\",\"\\.\"\n"
        );
        // The SQL keeps them apart too: a NULL literal and an empty string literal.
        let c = Cols { t: &t };
        assert_eq!(
            c.insert(t.rows[0].former.as_ref().unwrap()),
            "INSERT INTO \"public\".\"t\" (\"id\", \"a\", \"b, \"\"c\"\"\") \
             VALUES ('1'::integer, NULL::text, ''::text) ON CONFLICT DO NOTHING;"
        );
    }
}
