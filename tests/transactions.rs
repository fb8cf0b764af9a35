//! Exact lost-transaction accounting on real forced promotions, checked against `pg_waldump`
//! on the same WAL and against what the test's own workload committed.

mod util;

use std::collections::BTreeSet;
use std::path::Path;

use failover_verify::lsn::{Lsn, TimelineId};
use failover_verify::sandbox::{Cluster, ClusterOptions, PgInstall, StopMode};
use serde_json::Value;
use util::{install_or_skip, lsn_at, run_tool, Run};

/// A forced promotion after a rich lost workload, with what the test knows about it.
struct Incident {
    former: Cluster,
    new: Cluster,
    switchpoint: Lsn,
    /// Lost commits the workload made.
    expected_commits: usize,
}

/// `wal_level = logical`, as many HA clusters run: TRUNCATE is WAL-logged as a heap record
/// only then, and subtransactions' records carry their top-level xid.
fn opts(name: &str) -> ClusterOptions {
    ClusterOptions::new(name)
        .wal_level("logical")
        .setting("max_prepared_transactions", "5")
        .setting("wal_keep_size", "256MB")
}

/// Primary + standby; a transaction that starts before the cut-off and commits after it; then
/// subtransactions, 2PC (one committed, one left in doubt), an abort, a second database, DDL,
/// TOAST, COPY (multi-insert), a sequence, full-page images and a record crossing a segment.
async fn rich_incident(install: &PgInstall, base_sql: &[&str]) -> Incident {
    let primary = Cluster::start_primary(install, opts("primary"))
        .await
        .unwrap();
    primary
        .execute(
            "CREATE TABLE t1(id int PRIMARY KEY, v text);
             CREATE TABLE t2(id int PRIMARY KEY, pad text);
             CREATE SEQUENCE s1;
             INSERT INTO t1 SELECT g, 'base' FROM generate_series(1, 100) g;
             CREATE TABLE t5(id int);
             INSERT INTO t5 VALUES (1);
             TRUNCATE t5;",
        )
        .await
        .unwrap();
    primary.execute("CREATE DATABASE db2").await.unwrap();
    primary
        .execute_in("db2", "CREATE TABLE t3(id int PRIMARY KEY)")
        .await
        .unwrap();
    for sql in base_sql {
        primary.execute(sql).await.unwrap();
    }
    let standby = primary.create_standby(opts("standby")).await.unwrap();
    primary.execute("CHECKPOINT").await.unwrap(); // the next changes carry full-page images
    let spanning = primary.connect().await.unwrap();
    spanning
        .batch_execute("BEGIN; INSERT INTO t1 VALUES (1000, 'spans the switchpoint')")
        .await
        .unwrap();
    standby.wait_caught_up(&primary).await.unwrap();
    standby.cut_off().await.unwrap();

    spanning.batch_execute("COMMIT").await.unwrap(); // 1
    let lost = [
        "INSERT INTO t1 SELECT g, 'lost' FROM generate_series(101, 105) g", // 2
        "UPDATE t1 SET v = v || 'x' WHERE id <= 3",                          // 3
        "DELETE FROM t1 WHERE id = 4",                                       // 4
        "BEGIN; INSERT INTO t1 VALUES (2000, 'top'); SAVEPOINT a; INSERT INTO t1 VALUES (2001, 'sub'); RELEASE a;
         SAVEPOINT b; INSERT INTO t1 VALUES (2002, 'rolled back'); ROLLBACK TO b; COMMIT", // 5
        "BEGIN; INSERT INTO t1 VALUES (3000, 'aborted'); ROLLBACK",
        "BEGIN; INSERT INTO t1 VALUES (4000, '2pc'); PREPARE TRANSACTION 'fv_committed'",
        "COMMIT PREPARED 'fv_committed'", // 6
        "BEGIN; INSERT INTO t1 VALUES (4001, 'in doubt'); PREPARE TRANSACTION 'fv_in_doubt'",
        "BEGIN; CREATE TABLE t4(id int); INSERT INTO t4 VALUES (1); COMMIT", // 7
        "INSERT INTO t2 SELECT 1, string_agg(md5(g::text), '') FROM generate_series(1, 400) g", // 8 (TOAST)
        "COPY t1(id) FROM PROGRAM 'seq 5000 5009'",                          // 9 (multi-insert)
        "SELECT nextval('s1')",                                              // 10
        "SELECT pg_logical_emit_message(false, 'fv', repeat('x', 17 * 1024 * 1024))",
        // t5's file is no longer named by its OID (it was truncated before): the TRUNCATE
        // record lists relation OIDs, which must not be looked up as relfilenodes.
        "TRUNCATE t5",
    ];
    for sql in lost {
        primary.execute(sql).await.unwrap();
    }
    primary
        .execute_in("db2", "INSERT INTO t3 VALUES (1), (2)")
        .await
        .unwrap(); // 11
    drop(spanning);
    standby.promote().await.unwrap();
    let history = standby.history(TimelineId(2)).unwrap();
    Incident {
        switchpoint: history[0].switchpoint,
        former: primary,
        new: standby,
        expected_commits: 12,
    }
}

/// `(xid, commit LSN, time)` of every COMMIT / COMMIT_PREPARED pg_waldump shows in `[from, to)`.
fn waldump_commits(
    install: &PgInstall,
    wal: &Path,
    from: Lsn,
    to: Lsn,
) -> Option<Vec<(u64, Lsn, String)>> {
    if !install.has("pg_waldump") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install pg_waldump"
        );
        eprintln!("skipped: pg_waldump comparison: pg_waldump not installed");
        return None;
    }
    let out = std::process::Command::new(install.bin("pg_waldump"))
        .env("TZ", "UTC")
        .args([
            "-p",
            wal.to_str().unwrap(),
            "-t",
            "1",
            "-s",
            &from.to_string(),
            "-e",
            &to.to_string(),
            "-r",
            "Transaction",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut commits = Vec::new();
    for line in text.lines() {
        let Some((_, desc)) = line.split_once("desc: ") else {
            continue;
        };
        let field = |name: &str| {
            line.split(name)
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .trim()
                .to_string()
        };
        let lsn: Lsn = field("lsn: ").parse().unwrap();
        let (xid, time) = if let Some(rest) = desc.strip_prefix("COMMIT_PREPARED ") {
            let (x, t) = rest.split_once(": ").unwrap();
            (x.parse().unwrap(), t)
        } else if let Some(t) = desc.strip_prefix("COMMIT ") {
            (field("tx: ").parse().unwrap(), t)
        } else {
            continue;
        };
        commits.push((xid, lsn, time.split(';').next().unwrap().trim().to_string()));
    }
    Some(commits)
}

/// `2026-11-27T05:53:08.5243Z` and `2026-11-27 05:53:08.5243 UTC` → the same text.
fn norm_time(s: &str) -> String {
    let s = s.replace(" UTC", "").replace('T', " ").replace('Z', "");
    match s.split_once('.') {
        Some((a, frac)) => format!("{a}.{:0<6}", frac),
        None => format!("{s}.000000"),
    }
}

fn commits_of(t: &Value) -> Vec<(u64, Lsn, String)> {
    t["lost_xids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["xid"].as_u64().unwrap(),
                lsn_at(x, "commit_lsn"),
                norm_time(x["commit_time"].as_str().unwrap()),
            )
        })
        .collect()
}

fn table<'a>(t: &'a Value, name: &str) -> &'a Value {
    t["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["table"] == name)
        .unwrap_or_else(|| panic!("{name} not in {}", t["tables"]))
}

/// Runs `compare --format json` against `new`, with `former` (when not empty) and `extra` flags.
async fn compare(new: &Cluster, former: &str, extra: &[&str]) -> Run {
    let new = new.conninfo();
    let mut args = vec!["compare", "--new-primary", &new, "--format", "json"];
    if !former.is_empty() {
        args.extend(["--former-primary", former]);
    }
    args.extend_from_slice(extra);
    run_tool(&args).await
}

#[tokio::test]
async fn lost_commits_match_pg_waldump_and_the_workload() {
    let Some(install) = install_or_skip("lost_commits_match_pg_waldump") else {
        return;
    };
    let inc = rich_incident(&install, &["CREATE EXTENSION pg_walinspect"]).await;
    let run = compare(&inc.new, &inc.former.conninfo(), &[]).await;
    assert_eq!(run.code, 1, "stderr: {}\n{}", run.stderr, run.stdout);
    let j = run.json();
    let t = &j["transactions"];
    let end = lsn_at(&j["divergence"], "former_end_lsn");
    assert!(
        t["source"]
            .as_str()
            .unwrap()
            .starts_with("replication from"),
        "{}",
        t["source"]
    );

    // The same commits as pg_waldump on the same WAL, and as many as the workload made.
    let ours = commits_of(t);
    assert_eq!(ours.len(), inc.expected_commits, "{:#?}", ours);
    assert_eq!(t["lost_commits"], inc.expected_commits);
    if let Some(theirs) = waldump_commits(
        &install,
        &inc.former.data_dir().join("pg_wal"),
        inc.switchpoint,
        end,
    ) {
        let theirs: Vec<_> = theirs
            .into_iter()
            .map(|(x, l, t)| (x, l, norm_time(&t)))
            .collect();
        assert_eq!(ours, theirs);
    }
    // pg_walinspect (installed before the failover) agrees.
    assert_eq!(t["walinspect"]["agrees"], true, "{}", t["walinspect"]);

    // Per-table counts from what the workload did.
    let t1 = table(t, "public.t1");
    assert_eq!(t1["database"], "postgres");
    assert_eq!(
        t1["inserts"],
        1 + 5 + 2 + 1 + 10,
        "spanning + 5 + savepoints + 2PC + COPY"
    );
    // `updates` counts every update; `hot_updates` is the HOT subset.
    assert_eq!(t1["updates"], 3);
    assert!(t1["hot_updates"].as_u64().unwrap() <= 3);
    assert_eq!(t1["deletes"], 1);
    assert_eq!(
        table(t, "public.t2")["inserts"],
        1,
        "TOAST chunks are not rows"
    );
    assert_eq!(table(t, "public.t4")["inserts"], 1);
    let t5 = table(t, "public.t5");
    assert_eq!(
        (t5["truncates"].as_u64(), t5["kind"].as_str()),
        (Some(1), Some("table"))
    );
    let t3 = table(t, "public.t3");
    assert_eq!(
        (t3["database"].as_str(), t3["inserts"].as_u64()),
        (Some("db2"), Some(2))
    );
    assert!(t["lost_ddl"].as_u64().unwrap() >= 1);
    assert_eq!(t["sequences"].as_array().unwrap().len(), 1);
    assert_eq!(t["sequences"][0]["sequence"], "public.s1");

    // Subtransactions and 2PC.
    let xids = t["lost_xids"].as_array().unwrap();
    assert!(
        xids.iter()
            .any(|x| x["subxids"].as_array().unwrap().len() == 1),
        "the RELEASEd savepoint"
    );
    assert!(xids.iter().any(|x| x["prepared_gid"] == "fv_committed"));
    assert_eq!(t["in_doubt"].as_array().unwrap().len(), 1);
    assert_eq!(t["in_doubt"][0]["gid"], "fv_in_doubt");
    assert!(
        t["aborts_after_switchpoint"].as_u64().unwrap() >= 2,
        "ROLLBACK and ROLLBACK TO"
    );
    // The spanning transaction's insert happened before the switchpoint and is counted.
    let first = &xids[0];
    assert_eq!(first["inserts"], 1);
    assert!(
        t["first_lost_commit_time"].as_str().unwrap()
            <= t["last_lost_commit_time"].as_str().unwrap()
    );

    // The same numbers from a copy of pg_wal with both servers stopped (`wal --dir`).
    inc.former.stop(StopMode::Immediate).await.unwrap();
    inc.new.stop(StopMode::Immediate).await.unwrap();
    let copy = tempfile::tempdir().unwrap();
    util::copy_wal_dir(&inc.former.data_dir().join("pg_wal"), copy.path());
    let sp = inc.switchpoint.to_string();
    let dir = copy.path().to_str().unwrap();
    let run = run_tool(&[
        "wal",
        "--dir",
        dir,
        "--timeline",
        "1",
        "--from",
        &sp,
        "--format",
        "json",
    ])
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let w = run.json();
    assert_eq!(commits_of(&w["transactions"]), ours);
    let dir_t1: Vec<&Value> = w["transactions"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["inserts"] == 19)
        .collect();
    assert_eq!(
        dir_t1.len(),
        1,
        "t1's counts without names: {}",
        w["transactions"]["tables"]
    );
    assert!(w["transactions"]["source"]
        .as_str()
        .unwrap()
        .starts_with("directory"));
}

#[tokio::test]
async fn former_wal_dir_decides_when_the_former_primary_cannot_start() {
    let Some(install) = install_or_skip("former_wal_dir") else {
        return;
    };
    let inc = rich_incident(&install, &[]).await;
    inc.former.stop(StopMode::Immediate).await.unwrap();
    let wal = inc.former.data_dir().join("pg_wal");
    let run = compare(&inc.new, "", &["--former-wal-dir", wal.to_str().unwrap()]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stderr, run.stdout);
    let j = run.json();
    assert_eq!(j["verdict"], "loss");
    assert_eq!(lsn_at(&j["divergence"], "switchpoint_lsn"), inc.switchpoint);
    assert_eq!(j["divergence"]["former_timeline"], 1);
    assert_eq!(j["transactions"]["lost_commits"], inc.expected_commits);
    let end = lsn_at(&j["divergence"], "former_end_lsn");
    assert_eq!(
        j["divergence"]["lost_wal_bytes"].as_u64().unwrap(),
        end.0 - inc.switchpoint.0
    );
    assert!(
        end.0 - inc.switchpoint.0 > 17 * 1024 * 1024,
        "the 17 MB message is past the switchpoint"
    );
}

#[tokio::test]
async fn wal_over_sql_when_the_role_lacks_replication() {
    let Some(install) = install_or_skip("wal_over_sql") else {
        return;
    };
    let inc = rich_incident(
        &install,
        &["CREATE ROLE fv_sql LOGIN; GRANT pg_monitor TO fv_sql;
             GRANT EXECUTE ON FUNCTION pg_read_binary_file(text, bigint, bigint) TO fv_sql;
             GRANT EXECUTE ON FUNCTION pg_read_file(text) TO fv_sql;
             CREATE ROLE fv_plain LOGIN;"],
    )
    .await;
    let as_role = |c: &Cluster, role: &str| {
        format!(
            "host=127.0.0.1 port={} user={role} dbname=postgres",
            c.port()
        )
    };
    let args = |new: String, former: String| {
        vec![
            "compare".to_string(),
            "--new-primary".into(),
            new,
            "--former-primary".into(),
            former,
            "--format".into(),
            "json".into(),
        ]
    };
    let a = args(as_role(&inc.new, "fv_sql"), as_role(&inc.former, "fv_sql"));
    let run = run_tool(&a.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let j = run.json();
    assert_eq!(j["verdict"], "loss", "{}", run.stdout);
    assert!(j["transactions"]["source"]
        .as_str()
        .unwrap()
        .starts_with("pg_wal over SQL"));
    assert_eq!(j["transactions"]["lost_commits"], inc.expected_commits);

    // Without either grant the loss is still decided from WAL bytes, and the finding says
    // which grant would count the transactions.
    let a = args(
        as_role(&inc.new, "fv_sql"),
        as_role(&inc.former, "fv_plain"),
    );
    let run = run_tool(&a.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let j = run.json();
    assert_eq!(j["verdict"], "loss", "{}", run.stdout);
    assert!(j["transactions"].is_null());
    let f = j["findings"].to_string();
    assert!(
        f.contains("wal_unreadable")
            && f.contains("pg_read_binary_file")
            && f.contains("REPLICATION"),
        "{f}"
    );
}

#[tokio::test]
async fn former_sync_standby_serves_as_the_wal_source() {
    let Some(install) = install_or_skip("sync_standby_source") else {
        return;
    };
    // P with a synchronous standby S and an asynchronous A; A is cut off and promoted.
    let p = Cluster::start_primary(&install, opts("p")).await.unwrap();
    p.execute("CREATE TABLE t(id int PRIMARY KEY)")
        .await
        .unwrap();
    let s = p.create_standby(opts("s").synchronous(true)).await.unwrap();
    let a = p.create_standby(opts("a")).await.unwrap();
    a.wait_caught_up(&p).await.unwrap();
    a.cut_off().await.unwrap();
    for i in 0..4 {
        p.execute(&format!("INSERT INTO t VALUES ({i})"))
            .await
            .unwrap();
    }
    s.wait_caught_up(&p).await.unwrap();
    a.promote().await.unwrap();
    p.stop(StopMode::Immediate).await.unwrap(); // the former primary is gone
    let run = compare(&a, &s.conninfo(), &[]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stderr, run.stdout);
    let j = run.json();
    assert_eq!(j["former_primary"]["facts"]["in_recovery"], true);
    assert_eq!(j["transactions"]["lost_commits"], 4);
    let src = j["transactions"]["source"].as_str().unwrap();
    assert!(src.contains(&format!("127.0.0.1:{}", s.port())), "{src}");
    assert_eq!(table(&j["transactions"], "public.t")["inserts"], 4);
}

#[tokio::test]
async fn background_wal_alone_is_no_loss() {
    let Some(install) = install_or_skip("background_wal") else {
        return;
    };
    let primary = Cluster::start_primary(&install, opts("primary"))
        .await
        .unwrap();
    let standby = primary.create_standby(opts("standby")).await.unwrap();
    standby.wait_caught_up(&primary).await.unwrap();
    standby.cut_off().await.unwrap();
    primary
        .execute("CHECKPOINT; SELECT pg_switch_wal()")
        .await
        .unwrap(); // WAL, but no commit
    standby.promote().await.unwrap();
    let run = compare(&standby, &primary.conninfo(), &[]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    let j = run.json();
    assert_eq!(j["verdict"], "no_loss");
    assert!(j["divergence"]["lost_wal_bytes"].as_u64().unwrap() > 0);
    assert_eq!(j["transactions"]["lost_commits"], 0);
    assert!(j["explanation"]
        .as_str()
        .unwrap()
        .contains("no transaction committed"));
}

#[tokio::test]
async fn version_matrix_counts_lost_commits() {
    for entry in PgInstall::matrix_entries() {
        let Some(install) = entry.install else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI installs PG{}",
                entry.major
            );
            eprintln!(
                "skipped: PG{} not installed (run .ci/install-postgres-versions)",
                entry.major
            );
            continue;
        };
        let primary = Cluster::start_primary(&install, opts("primary"))
            .await
            .unwrap();
        primary
            .execute("CREATE TABLE t(id int PRIMARY KEY, v text)")
            .await
            .unwrap();
        let standby = primary.create_standby(opts("standby")).await.unwrap();
        standby.wait_caught_up(&primary).await.unwrap();
        standby.cut_off().await.unwrap();
        let mut xids = BTreeSet::new();
        for i in 0..6 {
            let x: String = primary
                .query_one_string(&format!("WITH i AS (INSERT INTO t VALUES ({i}, 'x') RETURNING 1) SELECT txid_current()::text FROM i"))
                .await
                .unwrap();
            xids.insert(x.parse::<u64>().unwrap() & 0xffff_ffff);
        }
        // Separate statements: a multi-statement batch is one implicit transaction.
        primary
            .execute("UPDATE t SET v = 'y' WHERE id < 2")
            .await
            .unwrap();
        primary.execute("DELETE FROM t WHERE id = 5").await.unwrap();
        standby.promote().await.unwrap();
        let run = compare(&standby, &primary.conninfo(), &[]).await;
        let j = run.json();
        assert_eq!(j["verdict"], "loss", "PG{}: {}", entry.major, run.stdout);
        let t = &j["transactions"];
        assert_eq!(t["wal_format"], entry.major, "PG{}", entry.major);
        assert_eq!(
            t["lost_commits"], 8,
            "PG{}: 6 inserts + update + delete",
            entry.major
        );
        let ours: BTreeSet<u64> = commits_of(t).iter().map(|c| c.0).collect();
        assert!(
            xids.is_subset(&ours),
            "PG{}: {xids:?} ⊄ {ours:?}",
            entry.major
        );
        let tt = table(t, "public.t");
        assert_eq!(tt["inserts"], 6);
        assert_eq!(tt["updates"], 2, "HOT updates included");
        assert_eq!(tt["deletes"], 1);
        eprintln!(
            "PG{}: {} lost commits decoded",
            entry.major, t["lost_commits"]
        );
    }
}
