//! Least privilege: `examples/least-privilege.sql`, run verbatim on the primary before the
//! cut-off (so the role exists on both nodes), is enough for a complete report; a role with
//! only `pg_monitor` gets a report that says which parts could not run and which grant would
//! enable each; the verdict is `inconclusive` only where the loss cannot be decided.

mod util;

use failover_verify::sandbox::{LossyFailover, LossyFailoverSpec};
use util::{install_or_skip, run_tool, Run};

const LEAST_SQL: &str = include_str!("../examples/least-privilege.sql");

fn conninfo(port: u16, user: &str) -> String {
    format!("host=127.0.0.1 port={port} user={user} dbname=postgres")
}

async fn compare(f: &LossyFailover, new_user: &str, former_user: &str) -> Run {
    run_tool(&[
        "compare",
        "--new-primary",
        &conninfo(f.new_primary.port(), new_user),
        "--former-primary",
        &conninfo(f.former_primary.port(), former_user),
        "--format",
        "json",
        "--connect-timeout",
        "5",
    ])
    .await
}

fn finding<'a>(report: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
}

fn ids(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

/// Checks that did not run (skipped or error), as (id, summary).
fn not_run(report: &serde_json::Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "skipped" || c["status"] == "error")
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["summary"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn least_privilege_role_is_enough_and_pg_monitor_alone_says_what_is_missing() {
    let Some(install) = install_or_skip("privileges") else {
        return;
    };
    let spec = LossyFailoverSpec {
        base_sql: vec![
            LEAST_SQL.to_string(),
            "CREATE ROLE fv_monitor LOGIN; GRANT pg_monitor TO fv_monitor;".into(),
            // The SQL fallback of the file (its commented lines), without REPLICATION.
            "CREATE ROLE fv_sql LOGIN; GRANT pg_monitor TO fv_sql; \
             GRANT EXECUTE ON FUNCTION pg_read_file(text) TO fv_sql; \
             GRANT EXECUTE ON FUNCTION pg_read_binary_file(text, bigint, bigint) TO fv_sql;"
                .into(),
        ],
        ..LossyFailoverSpec::with_lost_commits(4)
    };
    let f = LossyFailover::build(&install, spec)
        .await
        .expect("lossy failover");
    assert!(f.new_timeline.0 >= 2);
    // The roles were replicated before the cut-off.
    for role in ["failover_verify", "fv_monitor", "fv_sql"] {
        let n: i64 = f
            .new_primary
            .query_scalar(&format!(
                "SELECT count(*) FROM pg_roles WHERE rolname = '{role}'"
            ))
            .await
            .unwrap();
        assert_eq!(n, 1, "{role} on the new primary");
    }
    let superuser = compare(&f, "postgres", "postgres").await;
    assert_eq!(superuser.code, 1, "{}", superuser.stderr);
    let sup = superuser.json();

    // 1. The role of examples/least-privilege.sql: the same complete report as a superuser.
    let run = compare(&f, "failover_verify", "failover_verify").await;
    assert_eq!(run.code, 1, "loss; stderr: {}", run.stderr);
    let r = run.json();
    assert_eq!(r["verdict"], "loss");
    assert_eq!(
        r["incomplete"],
        false,
        "findings {:?}, checks not run {:?}",
        ids(&r),
        not_run(&r)
    );
    assert_eq!(r["new_primary"]["facts"]["history_source"], "replication");
    assert_eq!(r["transactions"]["lost_commits"], 4);
    assert!(r["transactions"]["source"]
        .as_str()
        .unwrap()
        .starts_with("replication"));
    assert_eq!(
        r["divergence"]["switchpoint_lsn"],
        sup["divergence"]["switchpoint_lsn"]
    );
    assert_eq!(
        r["transactions"]["tables"], sup["transactions"]["tables"],
        "names resolved"
    );
    assert!(not_run(&r).is_empty(), "{:?}", not_run(&r));
    for id in [
        "history_unreadable",
        "wal_unreadable",
        "replication_unavailable",
    ] {
        assert!(finding(&r, id).is_none(), "{id}: {:?}", finding(&r, id));
    }

    // 2. pg_monitor alone on both: the new primary (timeline 2) cannot give its history, so
    //    the switchpoint is unknown: inconclusive, and the finding names both ways to fix it.
    let run = compare(&f, "fv_monitor", "fv_monitor").await;
    assert_eq!(run.code, 2, "inconclusive; stderr: {}", run.stderr);
    let r = run.json();
    assert_eq!(r["verdict"], "inconclusive");
    assert_eq!(r["incomplete"], true);
    let h = finding(&r, "history_unreadable").expect("history_unreadable finding");
    let hint = h["hint"].as_str().unwrap();
    assert!(hint.contains("REPLICATION"), "{hint}");
    assert!(
        hint.contains("GRANT EXECUTE ON FUNCTION pg_read_file(text)"),
        "{hint}"
    );
    assert!(
        r["explanation"].as_str().unwrap().contains("history"),
        "{}",
        r["explanation"]
    );

    // 3. The least-privilege role on the new primary, pg_monitor alone on the former
    //    (timeline 1: no history needed): the loss is decided from WAL positions, and the
    //    report says the lost transactions could not be counted, naming the grants.
    let run = compare(&f, "failover_verify", "fv_monitor").await;
    assert_eq!(run.code, 1, "loss from WAL bytes; stderr: {}", run.stderr);
    let r = run.json();
    assert_eq!(r["verdict"], "loss");
    assert_eq!(
        r["incomplete"], true,
        "the lost transactions were not counted"
    );
    assert_eq!(
        r["divergence"]["lost_wal_bytes"].as_u64().map(|b| b > 0),
        Some(true)
    );
    assert!(r["transactions"].is_null(), "{}", r["transactions"]);
    let w = finding(&r, "wal_unreadable").expect("wal_unreadable finding");
    let hint = w["hint"].as_str().unwrap();
    assert!(hint.contains("REPLICATION"), "{hint}");
    assert!(
        hint.contains("GRANT EXECUTE ON FUNCTION pg_read_binary_file(text, bigint, bigint)"),
        "{hint}"
    );

    // 4. The SQL fallback (pg_monitor + EXECUTE on pg_read_file / pg_read_binary_file, no
    //    REPLICATION): history and WAL come over SQL, and the report is complete again.
    let run = compare(&f, "fv_sql", "fv_sql").await;
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let r = run.json();
    assert_eq!(r["verdict"], "loss");
    assert_eq!(r["new_primary"]["facts"]["history_source"], "pg_read_file");
    assert_eq!(r["transactions"]["lost_commits"], 4);
    assert!(
        !r["transactions"]["source"]
            .as_str()
            .unwrap()
            .starts_with("replication"),
        "{}",
        r["transactions"]["source"]
    );
    assert_eq!(
        r["incomplete"],
        false,
        "findings {:?}, checks {:?}",
        ids(&r),
        not_run(&r)
    );
}
