//! `failover-verify compare` end to end against real PostgreSQL clusters built by the sandbox.
//! Every expected number is computed here, independently of the tool: from the `.history` file
//! read off the new primary's disk, and from `pg_current_wal_insert_lsn()` on the former primary.

mod util;

use failover_verify::lsn::{Lsn, TimelineId};
use failover_verify::sandbox::{
    Cluster, ClusterOptions, LossyFailover, LossyFailoverSpec, PlannedSwitchover,
    PlannedSwitchoverSpec,
};
use util::{install_or_skip, lsn_at, run_tool, Run};

/// Runs `compare --format json` and parses the report.
async fn compare_json(new: &str, former: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "compare",
        "--new-primary",
        new,
        "--former-primary",
        former,
        "--format",
        "json",
        "--connect-timeout",
        "5",
    ];
    args.extend_from_slice(extra);
    run_tool(&args).await
}

#[tokio::test]
async fn lossy_forced_promotion_reports_switchpoint_and_lost_bytes() {
    let Some(install) = install_or_skip("lossy_forced_promotion") else {
        return;
    };
    let f = LossyFailover::build(&install, LossyFailoverSpec::with_lost_commits(7))
        .await
        .expect("lossy failover");
    let before = f
        .former_primary
        .query_one_string("SELECT pg_current_wal_insert_lsn()::text")
        .await
        .unwrap();
    let run = compare_json(&f.new_primary.conninfo(), &f.former_primary.conninfo(), &[]).await;
    let after = f
        .former_primary
        .query_one_string("SELECT pg_current_wal_insert_lsn()::text")
        .await
        .unwrap();
    let (before, after): (Lsn, Lsn) = (before.parse().unwrap(), after.parse().unwrap());

    assert_eq!(run.code, 1, "exit code for loss; stderr: {}", run.stderr);
    let j = run.json();
    assert_eq!(j["verdict"], "loss");
    assert_eq!(j["schema_version"], 2);
    // The report's exit code is the process's: one rule decides both.
    assert_eq!(j["exit_code"], run.code);
    let d = &j["divergence"];
    // The switchpoint is the one in the history file on the new primary's disk.
    assert_eq!(lsn_at(d, "switchpoint_lsn"), f.switchpoint);
    assert_eq!(d["former_timeline"], f.old_timeline.0);
    assert_eq!(d["new_timeline"], f.new_timeline.0);
    // The former's end is its insert LSN, read during the run (background WAL may move it).
    let end = lsn_at(d, "former_end_lsn");
    assert!(
        end >= before && end <= after,
        "{end} not in [{before}, {after}]"
    );
    assert!(end >= f.former_end_lsn);
    assert_eq!(
        d["lost_wal_bytes"].as_u64().unwrap(),
        end.0 - f.switchpoint.0,
        "lost bytes = former insert LSN - switchpoint"
    );
    assert!(
        end.0 - f.switchpoint.0 > 7 * 100,
        "7 commits write more than 700 bytes"
    );
    // Both nodes' facts are there, and the new primary's history came over replication.
    assert_eq!(
        j["new_primary"]["facts"]["system_identifier"],
        f.system_id.to_string()
    );
    assert_eq!(j["new_primary"]["facts"]["history_source"], "replication");
    assert_eq!(j["former_primary"]["facts"]["in_recovery"], false);
}

#[tokio::test]
async fn text_markdown_csv_and_output_file_render_the_same_verdict() {
    let Some(install) = install_or_skip("renderers") else {
        return;
    };
    let f = LossyFailover::build(&install, LossyFailoverSpec::with_lost_commits(2))
        .await
        .unwrap();
    let (new, former) = (f.new_primary.conninfo(), f.former_primary.conninfo());
    let text = run_tool(&[
        "compare",
        "--new-primary",
        &new,
        "--former-primary",
        &former,
    ])
    .await;
    assert_eq!(text.code, 1);
    assert!(
        text.stdout.starts_with("failover-verify: LOSS"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains(&f.switchpoint.to_string()));

    let md = run_tool(&[
        "compare",
        "--new-primary",
        &new,
        "--old-primary",
        &former,
        "--format",
        "markdown",
    ])
    .await;
    assert!(
        md.stdout.contains("## failover-verify: **loss**"),
        "{}",
        md.stdout
    );
    assert!(
        md.stdout.contains("| switchpoint | ") && md.stdout.contains(&f.switchpoint.to_string())
    );

    let csv = run_tool(&[
        "compare",
        "--new-primary",
        &new,
        "--former-primary",
        &former,
        "--format",
        "csv",
    ])
    .await;
    let mut rdr = csv::Reader::from_reader(csv.stdout.as_bytes());
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    assert!(rows
        .iter()
        .any(|r| &r[0] == "summary" && &r[1] == "verdict" && &r[2] == "loss"));
    assert!(rows.iter().any(|r| &r[0] == "divergence"
        && &r[1] == "switchpoint"
        && r[2] == f.switchpoint.to_string()));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let file_run = run_tool(&[
        "compare",
        "--new-primary",
        &new,
        "--former-primary",
        &former,
        "--format",
        "json",
        "--output",
        path.to_str().unwrap(),
    ])
    .await;
    assert_eq!(file_run.code, 1);
    assert!(
        file_run.stdout.is_empty(),
        "report goes to the file, not stdout"
    );
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(j["verdict"], "loss");
    // Only the report is left in the directory: the temporary file was renamed.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn planned_switchover_is_no_loss() {
    let Some(install) = install_or_skip("planned_switchover") else {
        return;
    };
    let s = PlannedSwitchover::build(&install, PlannedSwitchoverSpec::default())
        .await
        .expect("planned switchover");
    let run = compare_json(&s.new_primary.conninfo(), &s.former_primary.conninfo(), &[]).await;
    assert_eq!(
        run.code, 0,
        "stderr: {}\nstdout: {}",
        run.stderr, run.stdout
    );
    let j = run.json();
    assert_eq!(j["verdict"], "no_loss");
    let d = &j["divergence"];
    assert_eq!(d["lost_wal_bytes"], 0);
    assert_eq!(lsn_at(d, "switchpoint_lsn"), s.switchpoint);
    // The isolated former primary replayed to its own end of WAL, which is the switchpoint.
    assert_eq!(lsn_at(d, "former_end_lsn"), s.former_end_lsn);
    assert_eq!(j["former_primary"]["facts"]["in_recovery"], true);
}

#[tokio::test]
async fn former_primary_following_the_new_timeline_is_rewound() {
    let Some(install) = install_or_skip("rewound") else {
        return;
    };
    let s = PlannedSwitchover::build(&install, PlannedSwitchoverSpec::default())
        .await
        .unwrap();
    s.former_primary.follow(&s.new_primary).await.unwrap();
    s.former_primary
        .wait_caught_up(&s.new_primary)
        .await
        .unwrap();
    let run = compare_json(&s.new_primary.conninfo(), &s.former_primary.conninfo(), &[]).await;
    assert_eq!(run.code, 2, "stdout: {}", run.stdout);
    let j = run.json();
    assert_eq!(j["verdict"], "rewound");
    assert_eq!(j["former_primary"]["facts"]["timeline"], s.new_timeline.0);
}

#[tokio::test]
async fn two_unrelated_clusters() {
    let Some(install) = install_or_skip("unrelated") else {
        return;
    };
    let (a, b) = tokio::join!(
        Cluster::start_primary(&install, ClusterOptions::new("a")),
        Cluster::start_primary(&install, ClusterOptions::new("b")),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let run = compare_json(&a.conninfo(), &b.conninfo(), &[]).await;
    assert_eq!(run.code, 2);
    let j = run.json();
    assert_eq!(j["verdict"], "unrelated");
    let (ida, idb) = (
        a.system_identifier().await.unwrap(),
        b.system_identifier().await.unwrap(),
    );
    assert_ne!(ida, idb);
    let expl = j["explanation"].as_str().unwrap();
    assert!(
        expl.contains(&ida.to_string()) && expl.contains(&idb.to_string()),
        "{expl}"
    );
}

#[tokio::test]
async fn same_server_twice_is_inconclusive() {
    let Some(install) = install_or_skip("same_server") else {
        return;
    };
    let a = Cluster::start_primary(&install, ClusterOptions::new("a"))
        .await
        .unwrap();
    let run = compare_json(&a.conninfo(), &a.conninfo(), &[]).await;
    assert_eq!(run.code, 2);
    assert!(run.json()["explanation"]
        .as_str()
        .unwrap()
        .contains("same server"));
}

#[tokio::test]
async fn unreachable_former_primary_is_inconclusive_and_named() {
    let Some(install) = install_or_skip("unreachable_former") else {
        return;
    };
    let a = Cluster::start_primary(&install, ClusterOptions::new("a"))
        .await
        .unwrap();
    let port = util::closed_port();
    let former = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    let started = std::time::Instant::now();
    let run = compare_json(&a.conninfo(), &former, &[]).await;
    assert!(started.elapsed().as_secs() < 20, "bounded time");
    assert_eq!(run.code, 2, "stdout: {}", run.stdout);
    let j = run.json();
    assert_eq!(j["verdict"], "inconclusive");
    assert_eq!(j["incomplete"], true);
    let err = j["former_primary"]["error"].as_str().unwrap();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(j["explanation"]
        .as_str()
        .unwrap()
        .contains(&format!("127.0.0.1:{port}")));
}

#[tokio::test]
async fn unreachable_new_primary_is_a_connection_error() {
    let port = util::closed_port();
    let target = format!("host=127.0.0.1 port={port} user=postgres");
    let run = run_tool(&[
        "compare",
        "--new-primary",
        &target,
        "--former-primary",
        &target,
        "--connect-timeout",
        "3",
    ])
    .await;
    assert_eq!(run.code, 3);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.starts_with("error: new primary:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("127.0.0.1:{port}")),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.trim().lines().count(),
        1,
        "one line: {}",
        run.stderr
    );
}

#[tokio::test]
async fn bad_flags_and_conninfo_are_usage_errors() {
    let run = run_tool(&[
        "compare",
        "--new-primary",
        "host='unterminated",
        "--former-primary",
        "x=1",
    ])
    .await;
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("--new-primary"), "{}", run.stderr);
    let run = run_tool(&["compare", "--new-primary", "host=a"]).await;
    assert_eq!(run.code, 3, "missing --former-primary: {}", run.stderr);
    let run = run_tool(&[
        "compare",
        "--new-primary",
        "host=a",
        "--former-primary",
        "host=b",
        "--format",
        "yaml",
    ])
    .await;
    assert_eq!(run.code, 3);
}

#[tokio::test]
async fn two_promotions_in_a_row_use_the_end_of_timeline_one() {
    let Some(install) = install_or_skip("two_promotions") else {
        return;
    };
    // A (primary, tli 1) → B promoted with loss (tli 2) → C, a standby of B, promoted (tli 3).
    let f = LossyFailover::build(&install, LossyFailoverSpec::with_lost_commits(3))
        .await
        .unwrap();
    let b = &f.new_primary;
    b.execute("INSERT INTO fv_demo VALUES (100000, 'on tli 2')")
        .await
        .unwrap();
    let c = b.create_standby(ClusterOptions::new("c")).await.unwrap();
    c.wait_caught_up(b).await.unwrap();
    let tli = c.promote().await.unwrap();
    assert_eq!(tli, TimelineId(3));
    let history = c.history(TimelineId(3)).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[0].switchpoint, f.switchpoint,
        "timeline 1 ends where it did"
    );

    let run = compare_json(&c.conninfo(), &f.former_primary.conninfo(), &[]).await;
    assert_eq!(run.code, 1, "stdout: {} stderr: {}", run.stdout, run.stderr);
    let j = run.json();
    let d = &j["divergence"];
    assert_eq!(lsn_at(d, "switchpoint_lsn"), history[0].switchpoint);
    assert_eq!(d["former_timeline"], 1);
    assert_eq!(d["new_timeline"], 3);
    assert_eq!(d["timeline_path"], serde_json::json!([1, 2, 3]));
    let end = lsn_at(d, "former_end_lsn");
    assert_eq!(
        d["lost_wal_bytes"].as_u64().unwrap(),
        end.0 - history[0].switchpoint.0
    );
}

#[tokio::test]
async fn role_without_privileges_gets_the_grant_named() {
    let Some(install) = install_or_skip("no_privileges") else {
        return;
    };
    let spec = LossyFailoverSpec {
        base_sql: vec!["CREATE ROLE fv_plain LOGIN".into()],
        ..LossyFailoverSpec::with_lost_commits(2)
    };
    let f = LossyFailover::build(&install, spec).await.unwrap();
    let as_plain = |c: &Cluster| {
        format!(
            "host=127.0.0.1 port={} user=fv_plain dbname=postgres",
            c.port()
        )
    };
    let run = compare_json(&as_plain(&f.new_primary), &as_plain(&f.former_primary), &[]).await;
    assert_eq!(run.code, 2, "stdout: {} stderr: {}", run.stdout, run.stderr);
    let j = run.json();
    assert_eq!(j["verdict"], "inconclusive");
    let findings = j["findings"].to_string();
    assert!(findings.contains("REPLICATION"), "{findings}");
    assert!(
        findings.contains("GRANT EXECUTE ON FUNCTION pg_read_file"),
        "{findings}"
    );

    // The same role with REPLICATION reads the history and decides.
    f.new_primary
        .execute("ALTER ROLE fv_plain REPLICATION")
        .await
        .unwrap();
    let run = compare_json(&as_plain(&f.new_primary), &as_plain(&f.former_primary), &[]).await;
    assert_eq!(run.json()["verdict"], "loss", "{}", run.stdout);
}
