//! Real-server tests of the sandbox harness (`failover_verify::sandbox`).
//!
//! They need PostgreSQL server binaries (`apt install postgresql`, or `PG_BINDIR`). The
//! version-matrix test also uses the majors installed by `.ci/install-postgres-versions`.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use failover_verify::lsn::TimelineId;
use failover_verify::sandbox::{
    Cluster, ClusterOptions, LossyFailover, LossyFailoverSpec, LostWorkload, PgInstall,
    PlannedSwitchover, PlannedSwitchoverSpec, SandboxError,
};

fn install() -> PgInstall {
    PgInstall::find().expect("PostgreSQL server binaries (apt install postgresql, or PG_BINDIR)")
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).is_ok()
}

async fn count(c: &Cluster, sql: &str) -> i64 {
    c.query_scalar::<i64>(sql).await.unwrap()
}

/// pg_basebackup standby streams: a row written on the primary shows up on the standby.
#[tokio::test]
async fn basebackup_standby_streams_rows() {
    let pg = install();
    let primary = Cluster::start_primary(&pg, ClusterOptions::new("bb-primary"))
        .await
        .unwrap();
    assert!(!primary.is_in_recovery().await.unwrap());
    assert_eq!(primary.timeline().await.unwrap(), TimelineId(1));
    let standby = primary
        .create_standby(ClusterOptions::new("bb-standby"))
        .await
        .unwrap();
    assert_ne!(primary.port(), standby.port());
    assert!(standby.is_in_recovery().await.unwrap());
    assert_eq!(
        primary.system_identifier().await.unwrap(),
        standby.system_identifier().await.unwrap()
    );
    let state = primary
        .query_one_string(
            "SELECT state FROM pg_stat_replication WHERE application_name = 'bb-standby'",
        )
        .await
        .unwrap();
    assert_eq!(state, "streaming");
    primary
        .execute("CREATE TABLE t(id int primary key); INSERT INTO t VALUES (42);")
        .await
        .unwrap();
    standby.wait_caught_up(&primary).await.unwrap();
    assert_eq!(
        count(&standby, "SELECT count(*) FROM t WHERE id = 42").await,
        1
    );
    assert_eq!(standby.timeline().await.unwrap(), TimelineId(1));
    // A standby rejects writes: proves the SQL helpers report server errors.
    let err = standby
        .execute("INSERT INTO t VALUES (1)")
        .await
        .unwrap_err();
    assert!(matches!(err, SandboxError::Sql { .. }), "{err}");
}

/// The cold-copy path (used with binaries that have no pg_basebackup) streams too, and the
/// primary is back up afterwards.
#[tokio::test]
async fn cold_copy_standby_streams_rows() {
    let pg = install();
    let primary = Cluster::start_primary(&pg, ClusterOptions::new("cc-primary"))
        .await
        .unwrap();
    primary.execute("CREATE TABLE t(id int)").await.unwrap();
    let standby = primary
        .create_standby(ClusterOptions::new("cc-standby").force_cold_copy(true))
        .await
        .unwrap();
    primary.execute("INSERT INTO t VALUES (7)").await.unwrap();
    standby.wait_caught_up(&primary).await.unwrap();
    assert_eq!(
        count(&standby, "SELECT count(*) FROM t WHERE id = 7").await,
        1
    );
    // The copy got its own port and socket dir, not the primary's.
    let port: String = standby.query_one_string("SHOW port").await.unwrap();
    assert_eq!(port, standby.port().to_string());
    let sock = standby
        .query_one_string("SHOW unix_socket_directories")
        .await
        .unwrap();
    assert_eq!(sock, standby.dir().display().to_string());
}

/// Cut off → write → promote: the new primary is on timeline 2, the switchpoint precedes the
/// former primary's end of WAL, and the rows written after the cut-off exist only on the
/// former primary, which still accepts queries.
#[tokio::test]
async fn lossy_failover_loses_rows_written_after_cut_off() {
    let pg = install();
    let started = Instant::now();
    let s = LossyFailover::build(&pg, LossyFailoverSpec::with_lost_commits(3))
        .await
        .unwrap();
    eprintln!("lossy scenario built in {:?}", started.elapsed());
    assert_eq!(s.old_timeline, TimelineId(1));
    assert_eq!(s.new_timeline, TimelineId(2));
    assert_eq!(s.new_primary.timeline().await.unwrap(), TimelineId(2));
    assert_eq!(s.former_primary.timeline().await.unwrap(), TimelineId(1));
    assert!(!s.new_primary.is_in_recovery().await.unwrap());
    assert!(!s.former_primary.is_in_recovery().await.unwrap());
    assert_eq!(s.history.len(), 1);
    assert_eq!(s.history[0].parent, TimelineId(1));
    assert!(
        s.switchpoint <= s.cut_off_lsn,
        "{} > {}",
        s.switchpoint,
        s.cut_off_lsn
    );
    assert!(
        s.switchpoint < s.former_end_lsn,
        "{} >= {}",
        s.switchpoint,
        s.former_end_lsn
    );
    assert_eq!(
        s.new_primary.system_identifier().await.unwrap(),
        s.former_primary.system_identifier().await.unwrap()
    );
    // The history file on disk really has that switchpoint.
    let text = s.new_primary.read_history_file(TimelineId(2)).unwrap();
    assert!(
        text.starts_with(&format!("1\t{}\t", s.switchpoint)),
        "{text:?}"
    );

    assert_eq!(s.lost.len(), 3);
    let ids: Vec<i32> = s.lost.iter().map(|l| l.id).collect();
    assert_eq!(ids, vec![11, 12, 13]);
    for (a, b) in s.lost.iter().zip(s.lost.iter().skip(1)) {
        assert!(a.lsn_after_commit < b.lsn_after_commit);
        assert!(a.xid < b.xid);
    }
    assert!(s.lost[0].lsn_after_commit > s.switchpoint);
    let lost = "SELECT count(*) FROM fv_demo WHERE v LIKE 'lost-%'";
    let base = "SELECT count(*) FROM fv_demo WHERE v LIKE 'base-%'";
    assert_eq!(count(&s.new_primary, lost).await, 0);
    assert_eq!(count(&s.former_primary, lost).await, 3);
    assert_eq!(count(&s.new_primary, base).await, 10);
    assert_eq!(count(&s.former_primary, base).await, 10);
    // Both nodes are writable primaries now (the split brain the tool investigates).
    s.new_primary
        .execute("INSERT INTO fv_demo VALUES (1000, 'after')")
        .await
        .unwrap();
    assert!(s.former_primary.current_wal_lsn().await.unwrap() >= s.former_end_lsn);
}

/// A custom lost workload via a closure, with 1 MB WAL segments.
#[tokio::test]
async fn lossy_failover_with_custom_workload_and_small_segments() {
    let pg = install();
    let mut spec = LossyFailoverSpec::default();
    spec.primary = spec.primary.wal_segsize_mb(1);
    spec.base_rows = 5;
    let s = LossyFailover::build_with(&pg, spec, async |p: &Cluster| {
        p.execute("UPDATE fv_demo SET v = 'changed' WHERE id = 1")
            .await?;
        p.execute("DELETE FROM fv_demo WHERE id = 2").await?;
        Ok(Vec::new())
    })
    .await
    .unwrap();
    assert_eq!(
        s.former_primary
            .query_one_string("SHOW wal_segment_size")
            .await
            .unwrap(),
        "1MB"
    );
    assert_eq!(
        s.new_primary
            .query_one_string("SELECT v FROM fv_demo WHERE id = 1")
            .await
            .unwrap(),
        "base-1"
    );
    assert_eq!(
        s.former_primary
            .query_one_string("SELECT v FROM fv_demo WHERE id = 1")
            .await
            .unwrap(),
        "changed"
    );
    assert_eq!(
        count(&s.new_primary, "SELECT count(*) FROM fv_demo WHERE id = 2").await,
        1
    );
    assert_eq!(
        count(
            &s.former_primary,
            "SELECT count(*) FROM fv_demo WHERE id = 2"
        )
        .await,
        0
    );
    assert!(s.switchpoint < s.former_end_lsn);
}

/// Statements workload: `LostWorkload::Statements` runs each batch on the former primary.
#[tokio::test]
async fn lossy_failover_with_statement_workload() {
    let pg = install();
    let spec = LossyFailoverSpec {
        lost_workload: LostWorkload::Statements(vec![
            "CREATE TABLE lost_t(x int)".into(),
            "INSERT INTO lost_t VALUES (1), (2)".into(),
        ]),
        ..Default::default()
    };
    let s = LossyFailover::build(&pg, spec).await.unwrap();
    assert!(s.lost.is_empty());
    assert_eq!(
        count(&s.former_primary, "SELECT count(*) FROM lost_t").await,
        2
    );
    assert_eq!(
        count(
            &s.new_primary,
            "SELECT count(*) FROM pg_class WHERE relname = 'lost_t'"
        )
        .await,
        0
    );
}

/// Dropping a cluster stops its server (port closed) and removes its directory; a kept
/// cluster keeps running.
#[tokio::test]
async fn drop_stops_server_and_removes_directory() {
    let pg = install();
    let c = Cluster::start_primary(&pg, ClusterOptions::new("dropme"))
        .await
        .unwrap();
    let (port, dir) = (c.port(), c.dir().to_path_buf());
    assert!(port_open(port));
    assert!(dir.join("data/PG_VERSION").exists());
    drop(c);
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert!(!port_open(port), "port {port} still accepts connections");

    let mut kept = Cluster::start_primary(&pg, ClusterOptions::new("keepme"))
        .await
        .unwrap();
    kept.keep();
    let (port, dir, conninfo) = (kept.port(), kept.dir().to_path_buf(), kept.conninfo());
    assert!(conninfo.contains(&format!("port={port}")));
    drop(kept);
    assert!(dir.join("data/postmaster.pid").exists());
    assert!(port_open(port));
    // Clean up by hand, as a demo user would.
    let data = dir.join("data");
    let pg_ctl = pg.bin("pg_ctl");
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
        c
    } else {
        std::process::Command::new(&pg_ctl)
    };
    let st = cmd
        .arg("stop")
        .arg("-D")
        .arg(&data)
        .args(["-m", "immediate", "-w"])
        .current_dir("/")
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A panic inside a test still cleans up: Drop runs during unwinding.
#[tokio::test]
async fn drop_runs_on_panic() {
    let pg = install();
    let c = Cluster::start_primary(&pg, ClusterOptions::new("panicky"))
        .await
        .unwrap();
    let (port, dir) = (c.port(), c.dir().to_path_buf());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _c = c;
        panic!("boom");
    }));
    assert!(r.is_err());
    assert!(!dir.exists());
    assert!(!port_open(port));
}

/// A planned switchover loses nothing: switchpoint == the former primary's end of WAL.
#[tokio::test]
async fn planned_switchover_switchpoint_is_former_end_of_wal() {
    let pg = install();
    let s = PlannedSwitchover::build(&pg, PlannedSwitchoverSpec::default())
        .await
        .unwrap();
    assert_eq!(s.new_timeline, TimelineId(2));
    assert!(s.former_primary.is_in_recovery().await.unwrap());
    assert!(!s.new_primary.is_in_recovery().await.unwrap());
    assert!(s.former_end_lsn > s.lsn_before_stop);
    assert_eq!(s.switchpoint, s.former_end_lsn);
    // The isolated former primary does not follow: it stays on timeline 1 and does not see
    // writes made on the new primary.
    s.new_primary
        .execute("INSERT INTO fv_demo VALUES (500, 'new')")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(
            &s.former_primary,
            "SELECT count(*) FROM fv_demo WHERE id = 500"
        )
        .await,
        0
    );
    assert_eq!(
        s.former_primary.replay_lsn().await.unwrap(),
        Some(s.former_end_lsn)
    );
}

/// A failing start reports the server log's tail.
#[tokio::test]
async fn start_failure_carries_log_tail() {
    let pg = install();
    let err = Cluster::start_primary(
        &pg,
        ClusterOptions::new("broken").setting("shared_buffers", "not-a-size"),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SandboxError::StartFailed { .. }), "{msg}");
    assert!(msg.contains("shared_buffers"), "{msg}");
    assert!(msg.contains("[broken]"), "{msg}");
}

/// SCRAM password authentication: connections and replication use the password.
#[tokio::test]
async fn scram_password_cluster_and_standby() {
    let pg = install();
    let primary = Cluster::start_primary(&pg, ClusterOptions::new("scram").password("s3cr'et"))
        .await
        .unwrap();
    assert!(primary.conninfo().contains("password="));
    let hba_method = primary
        .query_one_string(
            "SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host' AND 'all' = ANY(database)",
        )
        .await
        .unwrap();
    assert_eq!(hba_method, "scram-sha-256");
    // Without the password the server refuses.
    let bad = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            primary.port()
        ),
        tokio_postgres::NoTls,
    )
    .await;
    assert!(bad.is_err());
    let standby = primary
        .create_standby(ClusterOptions::new("scram-sb"))
        .await
        .unwrap();
    primary.execute("CREATE TABLE s(x int)").await.unwrap();
    standby.wait_caught_up(&primary).await.unwrap();
    assert_eq!(
        count(
            &standby,
            "SELECT count(*) FROM pg_class WHERE relname = 's'"
        )
        .await,
        1
    );
}

/// The lossy scenario on every major of the version matrix (cold-copy standbys for the npm
/// binaries, which have no pg_basebackup).
#[tokio::test]
async fn version_matrix_lossy_scenario() {
    let mut ran = 0;
    for entry in PgInstall::matrix_entries() {
        let Some(pg) = entry.install else {
            println!(
                "skipped: PG{} not installed (run .ci/install-postgres-versions)",
                entry.major
            );
            continue;
        };
        let started = Instant::now();
        let s = LossyFailover::build(&pg, LossyFailoverSpec::with_lost_commits(2))
            .await
            .unwrap_or_else(|e| panic!("PG{}: {e}", entry.major));
        let v: String = s
            .new_primary
            .query_one_string("SHOW server_version")
            .await
            .unwrap();
        assert!(v.starts_with(&format!("{}.", entry.major)), "{v}");
        assert_eq!(s.new_timeline, TimelineId(2), "PG{}", entry.major);
        assert!(s.switchpoint < s.former_end_lsn, "PG{}", entry.major);
        let lost = "SELECT count(*) FROM fv_demo WHERE v LIKE 'lost-%'";
        assert_eq!(count(&s.new_primary, lost).await, 0, "PG{}", entry.major);
        assert_eq!(count(&s.former_primary, lost).await, 2, "PG{}", entry.major);
        println!(
            "PG{} ({}; pg_basebackup: {}): lossy scenario ok in {:?}, switchpoint {}, former end {}",
            entry.major,
            pg.bindir.display(),
            pg.has("pg_basebackup"),
            started.elapsed(),
            s.switchpoint,
            s.former_end_lsn
        );
        ran += 1;
    }
    assert!(ran >= 1, "no PostgreSQL installation at all");
}

/// After a planned switchover the former primary can follow the new one cleanly (timeline
/// switch by streaming) and then sees new writes.
#[tokio::test]
async fn former_primary_follows_after_planned_switchover() {
    let pg = install();
    let s = PlannedSwitchover::build(&pg, PlannedSwitchoverSpec::default())
        .await
        .unwrap();
    s.former_primary.follow(&s.new_primary).await.unwrap();
    s.new_primary
        .execute("INSERT INTO fv_demo VALUES (600, 'followed')")
        .await
        .unwrap();
    s.former_primary
        .wait_caught_up(&s.new_primary)
        .await
        .unwrap();
    assert_eq!(
        count(
            &s.former_primary,
            "SELECT count(*) FROM fv_demo WHERE id = 600"
        )
        .await,
        1
    );
    assert_eq!(s.former_primary.timeline().await.unwrap(), TimelineId(2));
}

/// pg_rewind puts a diverged former primary back onto the new timeline: the lost rows vanish
/// from it (the evidence is gone, as with Patroni's use_pg_rewind).
#[tokio::test]
async fn rewind_former_primary_onto_new_primary() {
    let pg = install();
    if !pg.has("pg_rewind") {
        println!("skipped: no pg_rewind in {}", pg.bindir.display());
        return;
    }
    let s = LossyFailover::build(&pg, LossyFailoverSpec::with_lost_commits(2))
        .await
        .unwrap();
    let out = s.former_primary.rewind_onto(&s.new_primary).await.unwrap();
    assert!(
        out.contains(&format!(
            "servers diverged at WAL location {} on timeline 1",
            s.switchpoint
        )),
        "{out}"
    );
    assert!(s.former_primary.is_in_recovery().await.unwrap());
    s.former_primary
        .wait_caught_up(&s.new_primary)
        .await
        .unwrap();
    let lost = "SELECT count(*) FROM fv_demo WHERE v LIKE 'lost-%'";
    assert_eq!(count(&s.former_primary, lost).await, 0);
    assert_eq!(s.former_primary.timeline().await.unwrap(), TimelineId(2));
}

/// A synchronous standby: the primary lists it as `sync`.
#[tokio::test]
async fn synchronous_standby_is_sync() {
    let pg = install();
    let primary = Cluster::start_primary(&pg, ClusterOptions::new("sync-primary"))
        .await
        .unwrap();
    let standby = primary
        .create_standby(ClusterOptions::new("sync-standby").synchronous(true))
        .await
        .unwrap();
    let st = primary
        .query_one_string(
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'sync-standby'",
        )
        .await
        .unwrap();
    assert_eq!(st, "sync");
    // A commit returns only once the standby has it.
    primary.execute("CREATE TABLE s(x int)").await.unwrap();
    let recv = standby.receive_lsn().await.unwrap().unwrap();
    assert!(recv >= primary.current_wal_lsn().await.unwrap() || recv.0 > 0);
    // The standby did not inherit synchronous_standby_names from the primary's auto.conf.
    assert_eq!(
        standby
            .query_one_string("SHOW synchronous_standby_names")
            .await
            .unwrap(),
        ""
    );
}
