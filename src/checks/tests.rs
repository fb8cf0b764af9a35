//! Unit tests: parsing and validation of check files, the catalog, and every comparison mode
//! on hand-made rows.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::catalog::BUILTIN;
use super::summary::{default_summaries, fill_summary};
use super::*;
use crate::finding::Severity;

const GOOD: &str = r#"
id = "my_check"
title = "My check"
severity = "warning"
description = "d"
remedy = "r"

[sql]
new = "SELECT 1 AS k, 2 AS v"
former = "SELECT 1 AS k, 3 AS v;"

[compare]
mode = "values_differ"
key = ["k"]
"#;

fn parse(text: &str) -> Result<Check, CatalogError> {
    Check::from_toml(text, Origin::User(PathBuf::from("checks/foo.toml")))
}

fn err(text: &str) -> String {
    parse(text).expect_err("must be rejected").to_string()
}

#[test]
fn a_good_file_parses() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.id, "my_check");
    assert_eq!(c.severity, Severity::Warning);
    assert_eq!(c.compare.mode, CompareMode::ValuesDiffer);
    assert_eq!(c.compare.key, ["k"]);
    assert_eq!(c.runs_on(), RunsOn::Both);
    assert_eq!(c.former_sql.as_deref(), Some("SELECT 1 AS k, 3 AS v;"));
}

#[test]
fn unknown_keys_are_rejected_with_file_line_and_key() {
    let e = err(&GOOD.replace("remedy = \"r\"", "remedy = \"r\"\ncolour = \"red\""));
    assert!(e.starts_with("checks/foo.toml:7: "), "{e}");
    assert!(e.contains("unknown field `colour`"), "{e}");
    let e = err(&GOOD.replace("key = [\"k\"]", "key = [\"k\"]\nkeys = [\"x\"]"));
    assert!(e.contains("unknown field `keys`"), "{e}");
    let e = err(&GOOD.replace("[sql]", "[sql]\nstandby = \"SELECT 1\""));
    assert!(e.contains("unknown field `standby`"), "{e}");
    let e = err(&GOOD.replace("title = \"My check\"\n", ""));
    assert!(e.contains("missing field `title`"), "{e}");
}

#[test]
fn unknown_mode_and_severity_are_named() {
    let e = err(&GOOD.replace("values_differ", "x"));
    assert!(
        e.starts_with("checks/foo.toml: compare.mode: unknown compare mode \"x\" (known: rows_only_on_former,"),
        "{e}"
    );
    let e = err(&GOOD.replace("\"warning\"", "\"fatal\""));
    assert_eq!(
        e,
        "checks/foo.toml: severity: unknown severity \"fatal\" (critical, warning or info)"
    );
}

#[test]
fn empty_or_writing_sql_is_rejected() {
    let e = err(&GOOD.replace("\"SELECT 1 AS k, 2 AS v\"", "\"  \""));
    assert_eq!(e, "checks/foo.toml: sql.new: empty SQL");
    let e = err(&GOOD.replace("\"SELECT 1 AS k, 3 AS v;\"", "\" ;; \""));
    assert_eq!(e, "checks/foo.toml: sql.former: empty SQL");
    let e = err(&GOOD.replace("SELECT 1 AS k, 2 AS v", "UPDATE t SET v = 1"));
    assert!(e.contains("sql.new: must be one read-only query starting with SELECT, WITH, VALUES or TABLE, not \"update\""), "{e}");
    let e = err(&GOOD.replace("SELECT 1 AS k, 2 AS v", "SELECT 1; DROP TABLE t"));
    assert!(e.contains("sql.new: must be a single statement"), "{e}");
    let e = err(&GOOD.replace(
        "SELECT 1 AS k, 2 AS v",
        "SELECT SET_CONFIG('default_transaction_read_only', 'off', false)",
    ));
    assert!(e.contains("sql.new: calls \"set_config\""), "{e}");
    let e = err(&GOOD.replace(
        "SELECT 1 AS k, 2 AS v",
        "SELECT pg_create_physical_replication_slot('s')",
    ));
    assert!(
        e.contains("calls \"pg_create_physical_replication_slot\""),
        "{e}"
    );
    // Comments are not the first word, and a column named like a prefix is fine.
    let ok = GOOD.replace(
        "SELECT 1 AS k, 2 AS v",
        "-- leading comment\\n/* block */ select 1 as k, 2 as lo_value, txid_current_if_assigned() as v",
    );
    parse(&ok).unwrap();
}

#[test]
fn sql_must_match_the_mode() {
    let e = err(&GOOD.replace("former = \"SELECT 1 AS k, 3 AS v;\"\n", ""));
    assert_eq!(
        e,
        "checks/foo.toml: sql.former: missing: compare mode \"values_differ\" needs it"
    );
    let e = err(&GOOD.replace("values_differ", "rows_on_former"));
    assert_eq!(
        e,
        "checks/foo.toml: sql.new: not used by compare mode \"rows_on_former\""
    );
    let e = err(&GOOD.replace("key = [\"k\"]", "key = []"));
    assert_eq!(
        e,
        "checks/foo.toml: compare.key: compare mode \"values_differ\" needs key columns"
    );
    let e = err(&GOOD.replace("values_differ", "greater_on_former"));
    assert!(
        e.contains("compare.value: compare mode \"greater_on_former\" needs"),
        "{e}"
    );
    let e = err(&GOOD.replace("key = [\"k\"]", "key = [\"k\"]\nvalue = \"v\""));
    assert!(
        e.contains("compare.value: not used by compare mode \"values_differ\""),
        "{e}"
    );
    let e = err(&GOOD.replace("key = [\"k\"]", "key = [\"k\"]\nvalues = [\"k\"]"));
    assert_eq!(
        e,
        "checks/foo.toml: compare.values: \"k\" is also a key column"
    );
    let e = err(&GOOD.replace("id = \"my_check\"", "id = \"My Check\""));
    assert!(
        e.starts_with("checks/foo.toml: id: \"My Check\" is not a valid id"),
        "{e}"
    );
}

#[test]
fn builtin_catalog_holds_every_shipped_file() {
    let catalog = Catalog::builtin().expect("the built-in checks parse");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("checks");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded, "every checks/*.toml must be in BUILTIN");
    let ids: Vec<&str> = catalog.checks().iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "extensions",
            "pg_rewind_readiness",
            "prepared_xacts",
            "publications",
            "replication_settings",
            "replication_slots",
            "sequences_behind",
            "subscriptions",
            "unlogged_tables"
        ]
    );
    for c in catalog.checks() {
        assert_eq!(c.origin, Origin::Builtin(format!("{}.toml", c.id)));
        // Each shipped file starts with a comment header that names it.
        let text = BUILTIN
            .iter()
            .find(|(n, _)| *n == format!("{}.toml", c.id))
            .unwrap()
            .1;
        assert!(text.starts_with(&format!("# {}: ", c.id)), "{}", c.id);
    }
    let rows = catalog.list_rows();
    assert_eq!(rows.len(), 9);
    let seq = rows.iter().find(|r| r.id == "sequences_behind").unwrap();
    assert_eq!(
        (seq.severity, seq.runs_on, seq.origin.as_str()),
        (Severity::Critical, RunsOn::Both, "builtin")
    );
    let px = rows.iter().find(|r| r.id == "prepared_xacts").unwrap();
    assert_eq!(px.runs_on, RunsOn::Former);
}

#[test]
fn load_dir_overrides_adds_and_rejects_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.toml"),
        GOOD.replace("my_check", "extensions"),
    )
    .unwrap();
    std::fs::write(dir.path().join("b.toml"), GOOD).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let c = Catalog::load_dir(dir.path()).unwrap();
    assert_eq!(c.checks().len(), 10);
    let ext = c.get("extensions").unwrap();
    assert_eq!(ext.title, "My check");
    assert_eq!(ext.origin, Origin::User(dir.path().join("a.toml")));
    assert_eq!(
        c.overrides(),
        [Override {
            id: "extensions".into(),
            builtin: "checks/extensions.toml".into(),
            user: dir.path().join("a.toml").display().to_string(),
        }]
    );
    assert_eq!(c.checks().last().unwrap().id, "my_check");
    let row = c
        .list_rows()
        .into_iter()
        .find(|r| r.id == "extensions")
        .unwrap();
    assert!(
        row.origin.ends_with("a.toml (overrides builtin)"),
        "{}",
        row.origin
    );

    std::fs::write(dir.path().join("c.toml"), GOOD).unwrap();
    let e = Catalog::load_dir(dir.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: duplicate check id \"my_check\" (already defined in {})",
            dir.path().join("c.toml").display(),
            dir.path().join("b.toml").display()
        )
    );
    let e = Catalog::load_dir(&dir.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot read the checks directory"), "{e}");
}

// ---------------------------------------------------------------- comparison modes

fn row(pairs: &[(&str, Value)]) -> Row {
    pairs
        .iter()
        .map(|(c, v)| (c.to_string(), v.clone()))
        .collect()
}

fn cmp(mode: CompareMode, key: &[&str], value: Option<&str>, values: &[&str]) -> Comparison {
    Comparison {
        mode,
        key: key.iter().map(|s| s.to_string()).collect(),
        value: value.map(str::to_string),
        next: None,
        values: values.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn greater_than_next_reports_what_to_advance() {
    // The new side never called s1 (next: its start), called s2 up to 9 (next 10), and
    // lacks s3; the former handed out 3, 9 and 5, and never called s4.
    let c = Comparison {
        next: Some("next_value".into()),
        ..cmp(
            CompareMode::GreaterOnFormer,
            &["sequence"],
            Some("last_value"),
            &[],
        )
    };
    c.validate().unwrap();
    let row = |s: &str, col: &str, v: Value| -> Row {
        vec![("sequence".into(), Value::from(s)), (col.into(), v)]
    };
    let new = vec![
        row("s1", "next_value", Value::from(1)),
        row("s2", "next_value", Value::from(10)),
        row("s4", "next_value", Value::from(1)),
    ];
    let former = vec![
        row("s1", "last_value", Value::from(3)),
        row("s2", "last_value", Value::from(9)),
        row("s3", "last_value", Value::from(5)),
        row("s4", "last_value", Value::Null),
    ];
    let ev = evaluate(&c, Some(&new), Some(&former)).unwrap();
    assert!(ev.finding);
    assert_eq!(ev.keys, ["s1", "s3"]);
    assert_eq!(
        ev.columns,
        [
            "sequence",
            "new_next_value",
            "former_last_value",
            "advance_by"
        ]
    );
    assert_eq!(ev.rows[0]["new_next_value"], Value::from(1));
    assert_eq!(ev.rows[0]["former_last_value"], Value::from(3));
    assert_eq!(ev.rows[0]["advance_by"], Value::from(3));
    assert_eq!(ev.rows[1]["new_next_value"], Value::Null);
    // At the next value exactly: one value collides.
    let former = vec![row("s2", "last_value", Value::from(10))];
    let ev = evaluate(&c, Some(&new), Some(&former)).unwrap();
    assert_eq!(ev.rows[0]["advance_by"], Value::from(1));
    // `next` belongs to greater_on_former only.
    let bad = Comparison {
        next: Some("n".into()),
        ..cmp(CompareMode::ValuesDiffer, &["k"], None, &[])
    };
    assert_eq!(bad.validate().unwrap_err().0, "next");
}

#[test]
fn rows_only_on_former_and_new() {
    let new = vec![row(&[("slot", json!("a")), ("t", json!("physical"))])];
    let former = vec![
        row(&[("slot", json!("a")), ("t", json!("physical"))]),
        row(&[("slot", json!("b")), ("t", json!("logical"))]),
    ];
    let c = cmp(CompareMode::RowsOnlyOnFormer, &["slot"], None, &[]);
    let ev = evaluate(&c, Some(&new), Some(&former)).unwrap();
    assert!(ev.finding);
    assert_eq!(ev.columns, ["slot", "t"]);
    assert_eq!(ev.keys, ["b"]);
    assert_eq!(ev.rows.len(), 1);
    assert_eq!(ev.rows[0]["t"], json!("logical"));
    assert_eq!(ev.total, 2);
    let ev = evaluate(
        &cmp(CompareMode::RowsOnlyOnNew, &["slot"], None, &[]),
        Some(&new),
        Some(&former),
    )
    .unwrap();
    assert!(!ev.finding && ev.rows.is_empty());
    // Nothing on either side: no finding.
    let ev = evaluate(&c, Some(&[]), Some(&[])).unwrap();
    assert!(!ev.finding);
    // A key column missing from the result is an error naming it.
    let e = evaluate(
        &cmp(CompareMode::RowsOnlyOnFormer, &["name"], None, &[]),
        Some(&new),
        Some(&former),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "column \"name\" (compare.key) is not in the former primary's result"
    );
    // Duplicate keys are refused.
    let dup = vec![former[0].clone(), former[0].clone()];
    let e = evaluate(&c, Some(&new), Some(&dup)).unwrap_err();
    assert!(
        matches!(e, EvalError::DuplicateKey { node: "former", .. }),
        "{e}"
    );
}

#[test]
fn composite_keys_compare_by_all_columns() {
    let new = vec![row(&[("s", json!("public")), ("n", json!("x"))])];
    let former = vec![
        row(&[("s", json!("public")), ("n", json!("x"))]),
        row(&[("s", json!("other")), ("n", json!("x"))]),
    ];
    let ev = evaluate(
        &cmp(CompareMode::RowsOnlyOnFormer, &["s", "n"], None, &[]),
        Some(&new),
        Some(&former),
    )
    .unwrap();
    assert_eq!(ev.keys, ["other.x"]);
}

#[test]
fn rows_on_former_and_new() {
    let former = vec![row(&[("gid", json!("g1")), ("db", json!("postgres"))])];
    let c = cmp(CompareMode::RowsOnFormer, &["gid"], None, &[]);
    let ev = evaluate(&c, None, Some(&former)).unwrap();
    assert!(ev.finding);
    assert_eq!(ev.keys, ["g1"]);
    assert_eq!(ev.columns, ["gid", "db"]);
    let ev = evaluate(&c, None, Some(&[])).unwrap();
    assert!(!ev.finding);
    // Without a key the first column names the row.
    let ev = evaluate(
        &cmp(CompareMode::RowsOnNew, &[], None, &[]),
        Some(&former),
        None,
    )
    .unwrap();
    assert_eq!(ev.keys, ["g1"]);
}

#[test]
fn values_differ_reports_changed_and_one_sided_keys() {
    let new = vec![
        row(&[("ext", json!("plpgsql")), ("v", json!("1.0"))]),
        row(&[("ext", json!("hstore")), ("v", json!("1.7"))]),
        row(&[("ext", json!("only_new")), ("v", json!("1"))]),
    ];
    let former = vec![
        row(&[("ext", json!("plpgsql")), ("v", json!("1.0"))]),
        row(&[("ext", json!("hstore")), ("v", json!("1.8"))]),
        row(&[("ext", json!("pgcrypto")), ("v", json!("1.3"))]),
    ];
    let ev = evaluate(
        &cmp(CompareMode::ValuesDiffer, &["ext"], None, &["v"]),
        Some(&new),
        Some(&former),
    )
    .unwrap();
    assert!(ev.finding);
    assert_eq!(ev.columns, ["ext", "new_v", "former_v", "present_on"]);
    assert_eq!(ev.keys, ["hstore", "pgcrypto", "only_new"]);
    assert_eq!(ev.total, 4);
    assert_eq!(ev.rows[0]["new_v"], json!("1.7"));
    assert_eq!(ev.rows[0]["former_v"], json!("1.8"));
    assert_eq!(ev.rows[0]["present_on"], json!("both"));
    assert_eq!(ev.rows[1]["new_v"], Value::Null);
    assert_eq!(ev.rows[1]["present_on"], json!("former"));
    assert_eq!(ev.rows[2]["present_on"], json!("new"));
    // Default `values`: every non-key column.
    let ev2 = evaluate(
        &cmp(CompareMode::ValuesDiffer, &["ext"], None, &[]),
        Some(&new),
        Some(&former),
    )
    .unwrap();
    assert_eq!(ev2.rows, ev.rows);
    // Same on both sides: nothing.
    let ev = evaluate(
        &cmp(CompareMode::ValuesDiffer, &["ext"], None, &["v"]),
        Some(&new[..1]),
        Some(&former[..1]),
    )
    .unwrap();
    assert!(!ev.finding && ev.rows.is_empty() && ev.total == 1);
}

#[test]
fn side_by_side_shows_every_key_and_flags_differences() {
    let new = vec![
        row(&[
            ("name", json!("synchronous_commit")),
            ("setting", json!("on")),
        ]),
        row(&[("name", json!("wal_level")), ("setting", json!("replica"))]),
    ];
    let former = vec![
        row(&[
            ("name", json!("synchronous_commit")),
            ("setting", json!("local")),
        ]),
        row(&[("name", json!("wal_level")), ("setting", json!("replica"))]),
    ];
    let c = cmp(CompareMode::SideBySide, &["name"], None, &["setting"]);
    let ev = evaluate(&c, Some(&new), Some(&former)).unwrap();
    assert!(ev.finding);
    assert_eq!(ev.rows.len(), 2);
    assert_eq!(ev.keys, ["synchronous_commit"]);
    assert_eq!(ev.rows[0]["differs"], json!(true));
    assert_eq!(ev.rows[0]["former_setting"], json!("local"));
    assert_eq!(ev.rows[1]["differs"], json!(false));
    let ev = evaluate(&c, Some(&new[1..]), Some(&former[1..])).unwrap();
    assert!(!ev.finding);
    assert_eq!(ev.rows.len(), 1, "side_by_side shows equal rows too");
    let (_, ok) = default_summaries(CompareMode::SideBySide);
    assert_eq!(fill_summary(ok, &ev), "1 compared, none differ");
}

#[test]
fn greater_on_former_compares_numbers_and_ignores_null() {
    let k = |n: &str, v: Value| row(&[("seq", json!(n)), ("last", v)]);
    let new = vec![
        k("behind", json!(33)),
        k("ahead", json!(33)),
        k("equal", json!(5)),
        k("text_num", json!("10")),
        k("big", json!(9_007_199_254_740_993_i64)),
    ];
    let former = vec![
        k("behind", json!(101)),
        k("ahead", json!(1)),
        k("equal", json!(5)),
        k("never_called", Value::Null),
        k("missing_on_new", json!(7)),
        k("text_num", json!("11")),
        // Beyond f64 precision: compared exactly.
        k("big", json!(9_007_199_254_740_994_i64)),
    ];
    let c = cmp(CompareMode::GreaterOnFormer, &["seq"], Some("last"), &[]);
    let ev = evaluate(&c, Some(&new), Some(&former)).unwrap();
    assert_eq!(ev.keys, ["behind", "missing_on_new", "text_num", "big"]);
    assert_eq!(ev.columns, ["seq", "new_last", "former_last", "ahead_by"]);
    assert_eq!(ev.rows[0]["ahead_by"], json!(68));
    assert_eq!(ev.rows[0]["new_last"], json!(33));
    assert_eq!(ev.rows[0]["former_last"], json!(101));
    assert_eq!(ev.rows[1]["new_last"], Value::Null);
    assert_eq!(ev.rows[1]["ahead_by"], Value::Null);
    assert_eq!(ev.rows[2]["ahead_by"], json!(1));
    assert_eq!(ev.rows[3]["ahead_by"], json!(1));
    assert_eq!(ev.total, 7);
    let e = evaluate(&c, Some(&new), Some(&[k("x", json!(true))])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "\"last\" is not numeric on the former primary: true"
    );
}

#[test]
fn summaries_fill_placeholders_and_cap_keys() {
    let ev = Evaluation {
        finding: true,
        keys: (1..=7).map(|i| format!("k{i}")).collect(),
        total: 9,
        ..Evaluation::default()
    };
    assert_eq!(
        fill_summary("{n} of {total}: {keys}", &ev),
        "7 of 9: k1, k2, k3, k4, k5, … (2 more)"
    );
}
