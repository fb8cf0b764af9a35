//! The `checks/` catalog end to end: a lossy failover whose former primary has, beyond the
//! new primary, an advanced sequence, a replication slot, a publication, a subscription, a
//! prepared transaction, rows in an unlogged table, an extension and a different
//! `synchronous_commit`. Every expected value is read independently from the servers (as
//! superuser, with plain SQL) or fixed by the scenario, never taken from the tool.

mod util;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value};

use failover_verify::checks::{run_checks, Catalog, CheckResult, CheckStatus};
use failover_verify::pg::connect;
use failover_verify::pg::conninfo::ConnParams;
use failover_verify::pg::session::{Session, SessionOptions};
use failover_verify::report::Severity;
use failover_verify::sandbox::{
    Cluster, ClusterOptions, LossyFailover, LossyFailoverSpec, LostWorkload,
};
use util::{closed_port, install_or_skip, run_tool, Run};

/// The built-in check ids, read from the file names and `id = "..."` lines of `checks/`.
fn shipped_ids() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("checks");
    let mut ids: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let line = text
                .lines()
                .find(|l| l.starts_with("id = "))
                .unwrap_or_else(|| panic!("{} has no id line", p.display()));
            line["id = ".len()..].trim_matches('"').to_string()
        })
        .collect();
    ids.sort();
    ids
}

fn by_id<'a>(checks: &'a [Value], id: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {checks:?}"))
}

/// The key values of a check's rows, joined with `.`.
fn row_keys(c: &Value, key: &[&str]) -> Vec<String> {
    c["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            key.iter()
                .map(|k| {
                    r[*k]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or(r[*k].to_string())
                })
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect()
}

async fn session(conninfo: &str) -> Session {
    let params = ConnParams::parse(conninfo, &|_| None).unwrap();
    connect(&params, &SessionOptions::default()).await.unwrap()
}

fn as_role(c: &Cluster, role: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user={role} dbname=postgres",
        c.port()
    )
}

async fn compare(f: &LossyFailover, extra: &[&str]) -> Run {
    let (new, former) = (f.new_primary.conninfo(), f.former_primary.conninfo());
    let mut args = vec![
        "compare",
        "--new-primary",
        new.as_str(),
        "--former-primary",
        former.as_str(),
    ];
    args.extend_from_slice(extra);
    run_tool(&args).await
}

/// Builds the scenario described at the top of this file.
async fn build() -> Option<LossyFailover> {
    let install = install_or_skip("checks")?;
    let spec = LossyFailoverSpec {
        primary: ClusterOptions::new("primary").setting("max_prepared_transactions", "5"),
        standby: ClusterOptions::new("standby").setting("max_prepared_transactions", "5"),
        base_sql: vec![
            "CREATE ROLE fv_plain LOGIN".into(),
            "CREATE SEQUENCE fv_seq; SELECT nextval('fv_seq')".into(),
            "CREATE SEQUENCE fv_seq_clean; SELECT nextval('fv_seq_clean')".into(),
            "CREATE UNLOGGED TABLE fv_unlogged(id int); \
             INSERT INTO fv_unlogged SELECT generate_series(1, 5)"
                .into(),
            "CREATE UNLOGGED TABLE fv_unlogged_empty(id int)".into(),
            "CREATE PUBLICATION fv_pub_base FOR TABLE fv_demo".into(),
        ],
        lost_workload: LostWorkload::Statements(vec![
            "SELECT nextval('fv_seq') FROM generate_series(1, 100)".into(),
            "SELECT pg_create_physical_replication_slot('fv_lost_slot')".into(),
            "CREATE PUBLICATION fv_pub_lost FOR TABLE fv_demo".into(),
            "CREATE SUBSCRIPTION fv_sub_lost CONNECTION 'host=127.0.0.1 port=1 dbname=postgres' \
             PUBLICATION fv_pub_lost \
             WITH (connect = false, enabled = false, create_slot = false, slot_name = NONE)"
                .into(),
            "BEGIN; INSERT INTO fv_demo VALUES (1000, 'prepared'); PREPARE TRANSACTION 'fv_gid_1'"
                .into(),
            "INSERT INTO fv_unlogged VALUES (6), (7)".into(),
            "INSERT INTO fv_demo VALUES (500, 'lost')".into(),
            "CREATE EXTENSION pgcrypto".into(),
        ]),
        ..LossyFailoverSpec::default()
    };
    let f = LossyFailover::build(&install, spec)
        .await
        .expect("lossy failover");
    // synchronous_commit differs: local on the former primary, the default (on) on the new.
    f.former_primary
        .execute("ALTER SYSTEM SET synchronous_commit = 'local'")
        .await
        .unwrap();
    f.former_primary
        .execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    for _ in 0..100 {
        let v = f
            .former_primary
            .query_one_string("SHOW synchronous_commit")
            .await
            .unwrap();
        if v == "local" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Some(f)
}

#[tokio::test]
async fn lossy_failover_checks_report_exactly_what_the_former_primary_has() {
    let Some(f) = build().await else { return };

    // Ground truth, read as superuser.
    let new_seq: i64 = f
        .new_primary
        .query_scalar("SELECT last_value FROM fv_seq")
        .await
        .unwrap();
    let former_seq: i64 = f
        .former_primary
        .query_scalar("SELECT last_value FROM fv_seq")
        .await
        .unwrap();
    assert_eq!(former_seq, 101, "1 nextval before the cut-off, 100 after");
    assert!(
        new_seq < former_seq,
        "the new primary's fv_seq ({new_seq}) is behind"
    );
    let pgcrypto_version = f
        .former_primary
        .query_one_string("SELECT extversion FROM pg_extension WHERE extname = 'pgcrypto'")
        .await
        .unwrap();
    let new_sync = f
        .new_primary
        .query_one_string("SHOW synchronous_commit")
        .await
        .unwrap();
    assert_eq!(new_sync, "on");

    let run = compare(&f, &["--format", "json"]).await;
    assert_eq!(run.code, 1, "loss; stderr: {}", run.stderr);
    let j = run.json();
    assert_eq!(j["verdict"], "loss", "checks never change the verdict");
    let checks = j["checks"].as_array().expect("a checks array");
    let ids: Vec<String> = checks
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        shipped_ids(),
        "every built-in check ran, in catalog order"
    );

    let seq = by_id(checks, "sequences_behind");
    assert_eq!(seq["status"], "finding", "{seq}");
    assert_eq!(seq["severity"], "critical");
    assert_eq!(
        seq["rows"],
        json!([{
            "schema": "public", "sequence": "fv_seq",
            "new_next_value": new_seq + 1, "former_last_value": 101, "advance_by": 101 - new_seq
        }]),
        "fv_seq_clean (no lost nextval) is not listed"
    );
    assert_eq!(
        seq["columns"],
        json!([
            "schema",
            "sequence",
            "new_next_value",
            "former_last_value",
            "advance_by"
        ])
    );
    assert!(seq["summary"].as_str().unwrap().contains("public.fv_seq"));

    let slots = by_id(checks, "replication_slots");
    assert_eq!(slots["status"], "finding");
    assert_eq!(row_keys(slots, &["slot_name"]), ["fv_lost_slot"]);
    assert_eq!(slots["rows"][0]["slot_type"], "physical");

    let pubs = by_id(checks, "publications");
    assert_eq!(pubs["status"], "finding");
    assert_eq!(
        row_keys(pubs, &["pubname"]),
        ["fv_pub_lost"],
        "fv_pub_base was replicated and is not listed"
    );

    let subs = by_id(checks, "subscriptions");
    assert_eq!(subs["status"], "finding", "{subs}");
    assert_eq!(
        row_keys(subs, &["database", "subname"]),
        ["postgres.fv_sub_lost"]
    );
    assert_eq!(subs["rows"][0]["enabled"], false);
    assert_eq!(subs["rows"][0]["publications"], "fv_pub_lost");

    let px = by_id(checks, "prepared_xacts");
    assert_eq!(px["status"], "finding");
    assert_eq!(px["runs_on"], "former");
    assert_eq!(
        row_keys(px, &["gid", "database", "owner"]),
        ["fv_gid_1.postgres.postgres"]
    );

    let unlogged = by_id(checks, "unlogged_tables");
    assert_eq!(unlogged["status"], "finding", "{unlogged}");
    assert_eq!(
        unlogged["rows"],
        json!([{
            "schema": "public", "table": "fv_unlogged",
            "new_rows": 0, "former_rows": 7, "ahead_by": 7
        }]),
        "5 rows before the cut-off + 2 after, none on the promoted standby; the empty one is not listed"
    );

    let ext = by_id(checks, "extensions");
    assert_eq!(ext["status"], "finding");
    assert_eq!(
        ext["rows"],
        json!([{
            "extname": "pgcrypto", "new_extversion": null,
            "former_extversion": pgcrypto_version, "present_on": "former"
        }])
    );

    let settings = by_id(checks, "replication_settings");
    assert_eq!(settings["status"], "finding");
    let rows = settings["rows"].as_array().unwrap();
    let differing: Vec<&Value> = rows.iter().filter(|r| r["differs"] == true).collect();
    assert_eq!(
        differing,
        [&json!({
            "name": "synchronous_commit", "new_setting": "on",
            "former_setting": "local", "differs": true
        })]
    );
    let wal_level = rows.iter().find(|r| r["name"] == "wal_level").unwrap();
    assert_eq!(
        (&wal_level["new_setting"], &wal_level["former_setting"]),
        (&json!("replica"), &json!("replica")),
        "side by side shows equal settings too"
    );

    let rewind = by_id(checks, "pg_rewind_readiness");
    assert_eq!(
        rewind["status"], "ok",
        "the sandbox sets wal_log_hints = on"
    );
    assert!(
        rewind["summary"]
            .as_str()
            .unwrap()
            .starts_with("pg_rewind can rejoin the former primary"),
        "{rewind}"
    );

    // The same run rendered as text, Markdown and CSV.
    let text = compare(&f, &[]).await;
    assert_eq!(text.code, 1);
    let t = &text.stdout;
    let checks_at = t.find("\nChecks\n").expect("a Checks section in text");
    let section = &t[checks_at..];
    assert!(
        section.contains("│ finding │ critical │ sequences_behind"),
        "{section}"
    );
    assert!(
        section.contains("│ ok      │ info     │ pg_rewind_readiness"),
        "{section}"
    );
    assert!(section.contains("sequences_behind: Sequences behind the former primary"));
    assert!(section.contains("│ public │ fv_seq   │"), "{section}");
    assert!(section.contains("remedy: On the new primary, before re-applying lost rows"));

    let md = compare(&f, &["--format", "markdown"]).await;
    assert!(md.stdout.contains("### Checks"), "{}", md.stdout);
    assert!(md
        .stdout
        .contains("| finding | warning | unlogged_tables | 1 ahead on the former primary: public.fv_unlogged |"));
    assert!(md
        .stdout
        .contains("#### prepared_xacts: Prepared transactions left on the former primary"));
    assert!(
        md.stdout.contains("| fv_gid_1 | postgres | postgres |"),
        "{}",
        md.stdout
    );

    let csv = compare(&f, &["--format", "csv"]).await;
    let mut rdr = csv::Reader::from_reader(csv.stdout.as_bytes());
    let records: Vec<[String; 3]> = rdr
        .records()
        .map(|r| {
            let r = r.unwrap();
            [r[0].to_string(), r[1].to_string(), r[2].to_string()]
        })
        .collect();
    assert!(records.contains(&[
        "check".into(),
        "extensions".into(),
        "finding;warning;1 differ: pgcrypto".into()
    ]));
    assert!(records.contains(&[
        "check_row".into(),
        "replication_slots".into(),
        records
            .iter()
            .find(|r| r[0] == "check_row" && r[1] == "replication_slots")
            .unwrap()[2]
            .clone()
    ]));
    let slot_row = records
        .iter()
        .find(|r| r[0] == "check_row" && r[1] == "replication_slots")
        .unwrap();
    assert!(
        slot_row[2].starts_with("slot_name=fv_lost_slot;slot_type=physical;"),
        "{slot_row:?}"
    );

    // --no-checks leaves the section out.
    let none = compare(&f, &["--format", "json", "--no-checks"]).await;
    assert_eq!(none.json()["checks"], json!([]));
}

#[tokio::test]
async fn clean_nodes_privileges_and_user_checks() {
    let Some(f) = build().await else { return };
    let catalog = Catalog::builtin().unwrap();

    // Clean: the new primary against itself. Every check is ok.
    let new = session(&f.new_primary.conninfo()).await;
    let results = run_checks(&catalog, Some(&new), Some(&new)).await;
    assert_eq!(results.len(), shipped_ids().len());
    for r in &results {
        assert_eq!(r.status, CheckStatus::Ok, "{r:?}");
        assert!(r.rows.is_empty() || r.id == "replication_settings", "{r:?}");
    }
    let settings = results
        .iter()
        .find(|r| r.id == "replication_settings")
        .unwrap();
    assert!(
        !settings.rows.is_empty(),
        "side by side shows the settings even when equal"
    );
    assert!(
        settings.summary.ends_with("compared, none differ"),
        "{}",
        settings.summary
    );

    // The former primary unreachable: its checks are skipped, not errors.
    let results = run_checks(&catalog, Some(&new), None).await;
    for r in &results {
        assert_eq!(r.status, CheckStatus::Skipped, "{r:?}");
        assert!(
            r.summary.contains("the former primary is not connected"),
            "{r:?}"
        );
    }

    // A role without privileges: the checks that need them are skipped with the grant named.
    let plain_new = session(&as_role(&f.new_primary, "fv_plain")).await;
    let plain_former = session(&as_role(&f.former_primary, "fv_plain")).await;
    let results = run_checks(&catalog, Some(&plain_new), Some(&plain_former)).await;
    let get = |id: &str| -> &CheckResult { results.iter().find(|r| r.id == id).unwrap() };
    let seq = get("sequences_behind");
    assert_eq!(seq.status, CheckStatus::Skipped, "{seq:?}");
    assert_eq!(
        seq.severity,
        Severity::Warning,
        "a skipped critical check is a warning"
    );
    assert!(
        seq.summary.contains("permission denied for sequence"),
        "{}",
        seq.summary
    );
    assert!(
        seq.summary.contains("GRANT pg_read_all_data TO <role>"),
        "{}",
        seq.summary
    );
    assert!(
        seq.remedy.starts_with("GRANT pg_read_all_data"),
        "{}",
        seq.remedy
    );
    let unlogged = get("unlogged_tables");
    assert_eq!(unlogged.status, CheckStatus::Skipped, "{unlogged:?}");
    assert!(
        unlogged
            .summary
            .contains("permission denied for table fv_unlogged"),
        "{}",
        unlogged.summary
    );
    // Catalog views readable by everyone still work for the plain role.
    for id in [
        "replication_slots",
        "publications",
        "subscriptions",
        "prepared_xacts",
        "extensions",
    ] {
        assert_eq!(get(id).status, CheckStatus::Finding, "{:?}", get(id));
    }
    // The grant named works: with pg_read_all_data the sequences check runs.
    f.new_primary
        .execute("GRANT pg_read_all_data TO fv_plain")
        .await
        .unwrap();
    f.former_primary
        .execute("GRANT pg_read_all_data TO fv_plain")
        .await
        .unwrap();
    let plain_new = session(&as_role(&f.new_primary, "fv_plain")).await;
    let plain_former = session(&as_role(&f.former_primary, "fv_plain")).await;
    let results = run_checks(&catalog, Some(&plain_new), Some(&plain_former)).await;
    let seq = results.iter().find(|r| r.id == "sequences_behind").unwrap();
    assert_eq!(seq.status, CheckStatus::Finding, "{seq:?}");
    assert_eq!(seq.rows[0]["sequence"], json!("fv_seq"));

    // A user's --checks-dir: one check overrides a built-in, one is new.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("extensions.toml"),
        r#"# a user override of the built-in extensions check
id = "extensions"
title = "Extensions only on the former primary (user)"
severity = "info"
description = "Only extensions the new primary lacks."
remedy = "CREATE EXTENSION on the new primary."
[sql]
new = "SELECT extname FROM pg_extension"
former = "SELECT extname FROM pg_extension"
[compare]
mode = "rows_only_on_former"
key = ["extname"]
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("demo_rows.toml"),
        r#"id = "fv_demo_rows"
title = "Rows of fv_demo"
severity = "warning"
description = "More committed rows in fv_demo on the former primary."
remedy = "Re-apply them."
finding_summary = "fv_demo has {n} table(s) ahead: {keys}"
[sql]
new = "SELECT 'fv_demo' AS t, count(*) AS n FROM fv_demo"
former = "SELECT 'fv_demo' AS t, count(*) AS n FROM fv_demo"
[compare]
mode = "greater_on_former"
key = ["t"]
value = "n"
"#,
    )
    .unwrap();
    let dir_s = dir.path().to_str().unwrap();
    let run = compare(&f, &["--format", "json", "--checks-dir", dir_s]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let j = run.json();
    let checks = j["checks"].as_array().unwrap();
    assert_eq!(checks.len(), shipped_ids().len() + 1);
    let ext = by_id(checks, "extensions");
    assert_eq!(ext["title"], "Extensions only on the former primary (user)");
    assert_eq!(ext["overrides_builtin"], true);
    assert_eq!(
        ext["origin"],
        dir.path().join("extensions.toml").display().to_string()
    );
    assert_eq!(ext["rows"], json!([{"extname": "pgcrypto"}]));
    let mine = by_id(checks, "fv_demo_rows");
    assert_eq!(mine["status"], "finding");
    assert_eq!(
        mine["rows"],
        json!([{"t": "fv_demo", "new_n": 10, "former_n": 11, "ahead_by": 1}]),
        "10 base rows; 1 lost committed insert (the prepared one is not committed)"
    );
    assert_eq!(mine["summary"], "fv_demo has 1 table(s) ahead: fv_demo");
    assert_eq!(
        by_id(checks, "sequences_behind")["overrides_builtin"],
        false
    );

    // The text list shows the user checks and the override.
    let list = run_tool(&["checks", "list", "--checks-dir", dir_s]).await;
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(list.stdout.contains("fv_demo_rows"), "{}", list.stdout);
    assert!(
        list.stdout.contains(&format!(
            "{} overrides the built-in checks/extensions.toml",
            dir.path().join("extensions.toml").display()
        )),
        "{}",
        list.stdout
    );
}

#[tokio::test]
async fn checks_list_lists_every_builtin() {
    let run = run_tool(&["checks", "list", "--format", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let j = run.json();
    let rows = j["checks"].as_array().unwrap();
    let mut ids: Vec<String> = rows
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, shipped_ids());
    for r in rows {
        assert_eq!(r["origin"], "builtin");
        assert!(["critical", "warning", "info"].contains(&r["severity"].as_str().unwrap()));
        assert!(["new", "former", "both"].contains(&r["runs_on"].as_str().unwrap()));
        assert!(!r["title"].as_str().unwrap().is_empty());
    }
    let px = rows.iter().find(|r| r["id"] == "prepared_xacts").unwrap();
    assert_eq!(
        (&px["severity"], &px["runs_on"]),
        (&json!("critical"), &json!("former"))
    );
    assert_eq!(j["overrides"], json!([]));

    let csv = run_tool(&["checks", "list", "--format", "csv"]).await;
    assert!(
        csv.stdout.starts_with("id,severity,runs_on,title,origin\n"),
        "{}",
        csv.stdout
    );
    assert_eq!(csv.stdout.lines().count(), shipped_ids().len() + 1);
    let md = run_tool(&["checks", "list", "--format", "markdown"]).await;
    assert!(md.stdout.contains("| sequences_behind | critical | both | Sequences behind the former primary | builtin |"), "{}", md.stdout);
}

#[tokio::test]
async fn a_malformed_user_file_fails_with_exit_code_3_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("foo.toml");
    let cases: BTreeMap<&str, (&str, &str)> = BTreeMap::from([
        (
            "unknown mode",
            (
                "id = \"x\"\ntitle = \"t\"\nseverity = \"info\"\ndescription = \"d\"\nremedy = \"r\"\n[sql]\nformer = \"SELECT 1 AS a\"\n[compare]\nmode = \"x\"\n",
                ": compare.mode: unknown compare mode \"x\"",
            ),
        ),
        (
            "unknown key",
            (
                "id = \"x\"\ntitle = \"t\"\nseverity = \"info\"\ndescription = \"d\"\nremedy = \"r\"\ncolour = \"red\"\n[sql]\nformer = \"SELECT 1 AS a\"\n[compare]\nmode = \"rows_on_former\"\n",
                ":6: unknown field `colour`",
            ),
        ),
        (
            "empty sql",
            (
                "id = \"x\"\ntitle = \"t\"\nseverity = \"info\"\ndescription = \"d\"\nremedy = \"r\"\n[sql]\nformer = \"\"\n[compare]\nmode = \"rows_on_former\"\n",
                ": sql.former: empty SQL",
            ),
        ),
    ]);
    let port = closed_port().to_string();
    let target = format!("host=127.0.0.1 port={port}");
    for (case, (text, expected)) in cases {
        std::fs::write(&file, text).unwrap();
        let d = dir.path().to_str().unwrap();
        for args in [
            vec!["checks", "list", "--checks-dir", d],
            // compare fails before it connects (the port is closed: a connection error
            // would read differently).
            vec![
                "compare",
                "--new-primary",
                &target,
                "--former-primary",
                &target,
                "--checks-dir",
                d,
            ],
        ] {
            let run = run_tool(&args).await;
            assert_eq!(run.code, 3, "{case}: {args:?}: {}", run.stderr);
            assert!(
                run.stderr
                    .starts_with(&format!("error: {}{expected}", file.display())),
                "{case}: {}",
                run.stderr
            );
            assert!(run.stdout.is_empty());
        }
    }
}
