//! Lost transactions that already left the database, end to end: a real logical subscription
//! on a third server, a `pg_recvlogical` consumer and a `pg_receivewal` client of the former
//! primary, each having read part (or all) of what the failover lost. The expected counts come
//! from what each consumer actually holds: the rows on the subscriber, the COMMIT lines in
//! pg_recvlogical's output file, and the WAL positions the test recorded after each commit.

mod util;

use std::process::Stdio;
use std::time::{Duration, Instant};

use failover_verify::lsn::Lsn;
use failover_verify::sandbox::{Cluster, ClusterOptions};
use util::{install_or_skip, run_tool};

fn opts(name: &str) -> ClusterOptions {
    ClusterOptions::new(name)
        .wal_level("logical")
        .setting("wal_receiver_status_interval", "1s")
}

/// One committed single-row insert: its id, xid and the WAL position right after it.
struct Commit {
    id: i32,
    xid: u32,
    after: Lsn,
}

async fn commit_row(c: &Cluster, id: i32) -> Commit {
    let rows = c
        .query_rows(&format!(
            "BEGIN; INSERT INTO t VALUES ({id}, 'lost-{id}'); SELECT txid_current(); COMMIT;
             SELECT pg_current_wal_insert_lsn()::text;"
        ))
        .await
        .unwrap();
    let xid = rows[0][0].clone().unwrap().parse::<u64>().unwrap() as u32;
    let after = rows[1][0].clone().unwrap().parse().unwrap();
    Commit { id, xid, after }
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn slot_lsn(c: &Cluster, slot: &str) -> Option<Lsn> {
    c.query_opt_string(&format!(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{slot}'"
    ))
    .await
    .unwrap()
    .and_then(|s| s.parse().ok())
}

#[tokio::test]
async fn consumers_that_received_lost_transactions_are_named_with_exact_counts() {
    let Some(install) = install_or_skip("downstream_consumers") else {
        return;
    };
    for bin in ["pg_recvlogical", "pg_receivewal"] {
        if !install.has(bin) {
            assert!(std::env::var_os("CI").is_none(), "CI must install {bin}");
            eprintln!("skipped: downstream_consumers: {bin} not installed");
            return;
        }
    }
    let former = Cluster::start_primary(&install, opts("former"))
        .await
        .unwrap();
    let new = former.create_standby(opts("new")).await.unwrap();
    let sub = Cluster::start_primary(&install, opts("subscriber"))
        .await
        .unwrap();
    let ddl = "CREATE TABLE t(id int PRIMARY KEY, v text)";
    former.execute(ddl).await.unwrap();
    sub.execute(ddl).await.unwrap();
    former
        .execute("INSERT INTO t SELECT g, 'base' FROM generate_series(1, 10) g")
        .await
        .unwrap();
    former
        .execute("CREATE PUBLICATION pub FOR ALL TABLES")
        .await
        .unwrap();
    sub.execute(&format!(
        "CREATE SUBSCRIPTION s CONNECTION '{}' PUBLICATION pub",
        former.conninfo()
    ))
    .await
    .unwrap();
    former
        .execute("SELECT pg_create_logical_replication_slot('cdc', 'test_decoding')")
        .await
        .unwrap();
    wait_for("the initial copy", async || {
        sub.query_scalar::<i64>("SELECT count(*) FROM t")
            .await
            .unwrap()
            == 10
    })
    .await;

    // pg_receivewal streams the former primary's WAL, flushing every record.
    let wal_dir = tempfile::tempdir().unwrap();
    let mut receivewal = tokio::process::Command::new(install.bin("pg_receivewal"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &former.port().to_string(),
            "-U",
            "postgres",
        ])
        .arg("-D")
        .arg(wal_dir.path())
        .args(["--synchronous", "--no-loop", "-s", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for("pg_receivewal to stream", async || {
        former
            .query_scalar::<i64>(
                "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'pg_receivewal'",
            )
            .await
            .unwrap()
            == 1
    })
    .await;

    new.wait_caught_up(&former).await.unwrap();
    new.cut_off().await.unwrap();

    // Lost commits 1-3 reach the subscriber, which confirms them, then it is disabled.
    let mut lost = Vec::new();
    for id in 1001..=1003 {
        lost.push(commit_row(&former, id).await);
    }
    let third = lost[2].after;
    wait_for(
        "the subscriber to confirm the third lost commit",
        async || slot_lsn(&former, "s").await.is_some_and(|l| l >= third),
    )
    .await;
    sub.execute("ALTER SUBSCRIPTION s DISABLE").await.unwrap();
    wait_for("the subscription's walsender to stop", async || {
        former
            .query_scalar::<bool>(
                "SELECT NOT active FROM pg_replication_slots WHERE slot_name = 's'",
            )
            .await
            .unwrap()
    })
    .await;

    // pg_recvlogical reads the cdc slot up to the end of the second lost commit.
    let out_file = wal_dir.path().join("cdc.out");
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(install.bin("pg_recvlogical"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &former.port().to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", "postgres", "--slot", "cdc", "--start", "--no-loop"])
            .args(["-E", &lost[1].after.to_string(), "-f"])
            .arg(&out_file)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status(),
    )
    .await
    .expect("pg_recvlogical stops at its end position")
    .unwrap();
    assert!(status.success());
    wait_for("the cdc slot to be released", async || {
        former
            .query_scalar::<bool>(
                "SELECT NOT active FROM pg_replication_slots WHERE slot_name = 'cdc'",
            )
            .await
            .unwrap()
    })
    .await;

    // Two more lost commits that no logical consumer read.
    for id in 1004..=1005 {
        lost.push(commit_row(&former, id).await);
    }
    let last = lost[4].after;
    wait_for("pg_receivewal to flush the last lost commit", async || {
        former
            .query_opt_string(
                "SELECT flush_lsn::text FROM pg_stat_replication WHERE application_name = 'pg_receivewal'",
            )
            .await
            .unwrap()
            .and_then(|s| s.parse::<Lsn>().ok())
            .is_some_and(|l| l >= last)
    })
    .await;
    new.promote().await.unwrap();

    // What each consumer holds, read from the consumer itself.
    let on_sub: Vec<i32> = sub
        .query_rows("SELECT id::text FROM t WHERE id > 1000 ORDER BY id")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r[0].clone().unwrap().parse().unwrap())
        .collect();
    let sub_xids: Vec<u32> = lost
        .iter()
        .filter(|c| on_sub.contains(&c.id))
        .map(|c| c.xid)
        .collect();
    let text = std::fs::read_to_string(&out_file).unwrap();
    let cdc_xids: Vec<u32> = lost
        .iter()
        .filter(|c| text.lines().any(|l| l == format!("COMMIT {}", c.xid)))
        .map(|c| c.xid)
        .collect();
    assert_eq!(
        on_sub,
        vec![1001, 1002, 1003],
        "the subscriber applied the first three"
    );
    assert!(!cdc_xids.is_empty() && cdc_xids.len() < 5, "{text}");

    let run = run_tool(&[
        "compare",
        "--new-primary",
        &new.conninfo(),
        "--former-primary",
        &former.conninfo(),
        "--format",
        "json",
        "--no-tables",
    ])
    .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let j = run.json();
    assert_eq!(
        j["transactions"]["lost_commits"], 5,
        "{}",
        j["transactions"]
    );
    let consumers = j["downstream"]["consumers"].as_array().unwrap();
    let consumer = |name: &str| {
        consumers
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {consumers:?}"))
    };
    for (name, xids) in [("s", &sub_xids), ("cdc", &cdc_xids)] {
        let c = consumer(name);
        assert_eq!(c["kind"], "logical_slot");
        assert_eq!(c["database"], "postgres");
        let r = &c["received"];
        assert_eq!(r["transactions"], xids.len(), "{name}: {c}");
        assert_eq!(r["sent_unconfirmed"], 0, "{name}: {c}");
        assert_eq!(r["exact"], true);
        assert_eq!(r["first_xid"], *xids.iter().min().unwrap(), "{name}: {c}");
        assert_eq!(r["last_xid"], *xids.iter().max().unwrap(), "{name}: {c}");
        assert_eq!(r["tables"], serde_json::json!(["public.t"]));
        assert_eq!(r["row_changes"], xids.len());
    }
    let wal = consumer("pg_receivewal");
    assert_eq!(wal["kind"], "physical_sender");
    assert_eq!(wal["received"]["transactions"], 5);
    let sp: Lsn = j["divergence"]["switchpoint_lsn"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wal["wal_past_switchpoint"].as_u64().unwrap() >= last.0 - sp.0);

    let findings = j["findings"].as_array().unwrap();
    let of = |id: &str| -> Vec<String> {
        findings
            .iter()
            .filter(|f| f["id"] == id)
            .map(|f| f["message"].as_str().unwrap().to_string())
            .collect()
    };
    let got = of("downstream_received_lost");
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().any(|m| m.starts_with("logical slot s ")
        && m.contains(&format!("confirmed {} of the 5 lost", sub_xids.len()))));
    assert!(got.iter().any(|m| m.starts_with("logical slot cdc ")
        && m.contains(&format!("confirmed {} of the 5 lost", cdc_xids.len()))));
    assert_eq!(of("wal_shipped_past_switchpoint").len(), 1);

    eprintln!(
        "subscriber holds {} lost transaction(s), pg_recvlogical {}, of 5",
        sub_xids.len(),
        cdc_xids.len()
    );
    // The text report lists every consumer in its own table.
    let text = run_tool(&[
        "compare",
        "--new-primary",
        &new.conninfo(),
        "--former-primary",
        &former.conninfo(),
        "--no-tables",
    ])
    .await;
    assert!(
        text.stdout
            .contains("Downstream consumers of the former primary"),
        "{}",
        text.stdout
    );
    for name in ["│ s ", "│ cdc ", "│ pg_receivewal "] {
        assert!(text.stdout.contains(name), "{name} in\n{}", text.stdout);
    }

    let table = text.stdout.find("Downstream consumers").unwrap();
    eprintln!("{}", &text.stdout[table..]);
    receivewal.kill().await.ok();
    let _ = receivewal.wait().await;
}
