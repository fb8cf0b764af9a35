//! The physical replication client against a real PostgreSQL 15: authentication methods,
//! IDENTIFY_SYSTEM, TIMELINE_HISTORY, byte-exact START_REPLICATION, timeline ends, and the
//! privilege errors a read-only operator is likely to hit.

mod common;

use std::time::{Duration, Instant};

use common::{env, Cluster, MD5_USER, NOREPL_USER, REPL_USER, SCRAM_USER};
use failover_verify::lsn::{Lsn, SystemId, TimelineId};
use failover_verify::pg::{
    connect_replication, ConnParams, ErrorKind, ReplicationClient, ReplicationOptions,
};

fn params(input: &str) -> ConnParams {
    ConnParams::parse(input, &env(&[])).expect("conninfo")
}

async fn repl(c: &Cluster) -> ReplicationClient {
    let (u, pw) = REPL_USER;
    connect_replication(
        &params(&c.tcp(&format!("user={u} password={pw} sslmode=disable"))),
        &ReplicationOptions::default(),
    )
    .await
    .expect("replication connect")
}

async fn lsn_of(client: &tokio_postgres::Client, sql: &str) -> Lsn {
    let s: String = client.query_one(sql, &[]).await.unwrap().get(0);
    s.parse().unwrap()
}

#[tokio::test]
async fn identify_system_matches_pg_control() {
    let c = Cluster::shared();
    let mut r = repl(c).await;
    assert!(r
        .server_parameter("server_version")
        .unwrap_or("")
        .starts_with("15"));
    let id = r.identify_system().await.unwrap();
    let su = c.superuser().await;
    let sysid: i64 = su
        .query_one("SELECT system_identifier FROM pg_control_system()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(id.system_id, SystemId(sysid as u64));
    assert_eq!(id.timeline, TimelineId(1));
    assert_eq!(id.dbname, None, "physical replication has no database");
    let current = lsn_of(&su, "SELECT pg_current_wal_lsn()::text").await;
    assert!(id.xlogpos.is_valid());
    assert!(id.xlogpos <= current, "{} > {}", id.xlogpos, current);
    r.close().await;
}

#[tokio::test]
async fn timeline_history_of_timeline_1_is_a_typed_error_and_connection_survives() {
    let c = Cluster::shared();
    let mut r = repl(c).await;
    let e = r.timeline_history(TimelineId(1)).await.unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::NoTimelineHistory { timeline: 1, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("timeline 1"), "{e}");
    // the connection is still usable
    assert_eq!(r.identify_system().await.unwrap().timeline, TimelineId(1));
}

#[tokio::test]
async fn streamed_wal_is_byte_identical_to_the_segment_file() {
    let c = Cluster::shared();
    let su = c.superuser().await;
    su.batch_execute(
        "CREATE TABLE wal_bytes_test AS SELECT g, md5(g::text) AS t FROM generate_series(1, 2000) g;",
    )
    .await
    .unwrap();
    let seg_size: i64 = su
        .query_one(
            "SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let seg_size = seg_size as u64;
    let flush = lsn_of(&su, "SELECT pg_current_wal_flush_lsn()::text").await;
    let walfile: String = su
        .query_one("SELECT pg_walfile_name(pg_current_wal_flush_lsn())", &[])
        .await
        .unwrap()
        .get(0);
    let seg_start = Lsn(flush.0 - flush.segment_offset(seg_size));
    let target = flush;
    assert!(
        target.0 - seg_start.0 >= 8192,
        "need at least one full page: segment start {seg_start}, flush {flush}"
    );

    let mut r = repl(c).await;
    let id = r.identify_system().await.unwrap();
    let mut stream = r.start_physical(seg_start, id.timeline).await.unwrap();
    let mut bytes = Vec::new();
    let mut expect_start = seg_start;
    while stream.received_up_to() < target {
        let chunk = stream
            .next_chunk()
            .await
            .unwrap()
            .expect("stream ended early");
        assert_eq!(chunk.start, expect_start, "chunks must be contiguous");
        expect_start = chunk.end();
        bytes.extend_from_slice(&chunk.data);
    }
    // while streaming we are visible as an async walsender that never reports a flush position
    let row = su
        .query_one(
            "SELECT state, sync_state, flush_lsn IS NULL, write_lsn IS NOT NULL FROM pg_stat_replication WHERE application_name = 'failover-verify' AND usename = $1",
            &[&REPL_USER.0],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "streaming");
    assert_eq!(row.get::<_, String>(1), "async");
    assert!(row.get::<_, bool>(2), "flush_lsn must stay NULL");
    assert!(row.get::<_, bool>(3));
    stream.stop().await.unwrap();

    let len = (target.0 - seg_start.0) as usize;
    assert!(bytes.len() >= len);
    let file = std::fs::read(c.data.join("pg_wal").join(&walfile)).unwrap();
    assert_eq!(file.len() as u64, seg_size);
    assert!(
        bytes[..len] == file[..len],
        "streamed WAL differs from {walfile}"
    );
    // first page is a long header with PG15's magic
    assert_eq!(u16::from_le_bytes([bytes[0], bytes[1]]), 0xD110);
    // after stop() the connection takes commands again
    assert_eq!(r.identify_system().await.unwrap().system_id, id.system_id);
}

#[tokio::test]
async fn idle_stream_times_out() {
    let c = Cluster::shared();
    let (u, pw) = REPL_USER;
    let opts = ReplicationOptions {
        idle_timeout: Duration::from_millis(700),
        ..ReplicationOptions::default()
    };
    let mut r = connect_replication(
        &params(&c.tcp(&format!("user={u} password={pw} sslmode=disable"))),
        &opts,
    )
    .await
    .unwrap();
    let id = r.identify_system().await.unwrap();
    let mut stream = r.start_physical(id.xlogpos, id.timeline).await.unwrap();
    let t0 = Instant::now();
    let err = loop {
        match stream.next_chunk().await {
            Ok(Some(_)) => continue, // background WAL may trickle in
            Ok(None) => panic!("a current timeline does not end"),
            Err(e) => break e,
        }
    };
    assert!(err.is_timeout(), "{err:?}");
    assert!(t0.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn auth_methods_on_replication_connections() {
    let c = Cluster::shared();
    // trust over TCP and over the Unix socket
    for input in [
        c.tcp("user=postgres sslmode=disable"),
        format!("host={} port={} user=postgres", c.dir.display(), c.port),
    ] {
        let mut r = connect_replication(&params(&input), &ReplicationOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{input}: {e}"));
        r.identify_system().await.unwrap();
    }
    // SCRAM (repl_user) and MD5 (md5_user)
    repl(c).await.identify_system().await.unwrap();
    let (u, pw) = MD5_USER;
    let mut r = connect_replication(
        &params(&c.tcp(&format!("user={u} password={pw} sslmode=disable"))),
        &ReplicationOptions::default(),
    )
    .await
    .expect("md5 replication");
    r.identify_system().await.unwrap();
    // wrong password
    let wrong = "Not-The-Password-42";
    let e = connect_replication(
        &params(&c.tcp(&format!(
            "user={} password={wrong} sslmode=disable",
            REPL_USER.0
        ))),
        &ReplicationOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Auth { .. }), "{e:?}");
    assert_eq!(e.sqlstate(), Some("28P01"));
    let shown = format!("{e} {e:?}");
    assert!(shown.contains(&format!("127.0.0.1:{}", c.port)));
    assert!(!shown.contains(wrong));
    // no password at all
    let e = connect_replication(
        &params(&c.tcp(&format!("user={} sslmode=disable", REPL_USER.0))),
        &ReplicationOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Auth { .. }), "{e:?}");
    assert!(e.to_string().contains("PGPASSWORD"), "{e}");
}

#[tokio::test]
async fn role_without_replication_gets_privilege_error_with_hint() {
    let c = Cluster::shared();
    let (u, pw) = NOREPL_USER;
    let e = connect_replication(
        &params(&c.tcp(&format!("user={u} password={pw} sslmode=disable"))),
        &ReplicationOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InsufficientPrivilege { .. }),
        "{e:?}"
    );
    assert_eq!(e.sqlstate(), Some("42501"));
    let msg = e.to_string();
    assert!(msg.contains("replication role"), "{msg}");
    assert!(
        msg.contains(&format!("ALTER ROLE \"{u}\" REPLICATION")),
        "{msg}"
    );
    assert!(msg.contains("pg_hba.conf"), "{msg}");

    // a role with no pg_hba.conf replication line
    let (u, pw) = SCRAM_USER;
    let e = connect_replication(
        &params(&c.tcp(&format!("user={u} password={pw} sslmode=disable"))),
        &ReplicationOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InsufficientPrivilege { .. }),
        "{e:?}"
    );
    assert_eq!(e.sqlstate(), Some("28000"));
    assert!(e.to_string().contains("pg_hba.conf"));
}

#[tokio::test]
async fn refused_and_silent_servers() {
    let port = common::free_port();
    let t0 = Instant::now();
    let e = connect_replication(
        &params(&format!(
            "host=127.0.0.1 port={port} user=u sslmode=disable"
        )),
        &ReplicationOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Connect { .. }), "{e:?}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")));
    assert!(t0.elapsed() < Duration::from_secs(2));

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    for mode in ["prefer", "disable"] {
        let opts = ReplicationOptions {
            connect_timeout: Duration::from_secs(1),
            ..ReplicationOptions::default()
        };
        let t0 = Instant::now();
        let e = connect_replication(
            &params(&format!("host=127.0.0.1 port={port} user=u sslmode={mode}")),
            &opts,
        )
        .await
        .unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(1800),
            "{took:?}"
        );
    }
    drop(listener);
}

/// Promotes a cluster in place (standby.signal, no upstream, then pg_ctl promote) to get
/// timeline 2, then reads the history file and streams timeline 1 to its end.
#[tokio::test]
async fn historic_timeline_ends_with_next_timeline_and_history_file() {
    let c = Cluster::start();
    let su = c.superuser().await;
    su.batch_execute(
        "CREATE TABLE before_promote AS SELECT generate_series(1, 100) g; CHECKPOINT;",
    )
    .await
    .unwrap();
    drop(su);
    c.pg_ctl(&["-w", "stop", "-m", "fast"]);
    std::fs::write(c.data.join("standby.signal"), "").unwrap();
    let (uid, gid) = common::postgres_ids();
    std::os::unix::fs::chown(c.data.join("standby.signal"), Some(uid), Some(gid)).unwrap();
    c.pg_ctl(&["-w", "-l", c.dir.join("log").to_str().unwrap(), "start"]);
    c.pg_ctl(&["-w", "promote"]);

    let mut r = connect_replication(
        &params(&c.tcp("user=postgres sslmode=disable")),
        &ReplicationOptions::default(),
    )
    .await
    .unwrap();
    let id = r.identify_system().await.unwrap();
    assert_eq!(id.timeline, TimelineId(2));

    let (name, content) = r.timeline_history(TimelineId(2)).await.unwrap();
    assert_eq!(name, "00000002.history");
    let on_disk = std::fs::read(c.data.join("pg_wal/00000002.history")).unwrap();
    assert_eq!(content, on_disk);
    let text = String::from_utf8(content).unwrap();
    let switch: Lsn = text
        .lines()
        .next()
        .and_then(|l| l.split('\t').nth(1))
        .expect("history line")
        .parse()
        .unwrap();
    assert!(text.starts_with("1\t"), "{text:?}");

    // stream timeline 1 from the start of the switchpoint's page to its end
    let start = Lsn(switch.0 - switch.0 % 8192);
    let mut stream = r.start_physical(start, TimelineId(1)).await.unwrap();
    let mut last = start;
    while let Some(chunk) = stream.next_chunk().await.unwrap() {
        assert_eq!(chunk.start, last);
        last = chunk.end();
    }
    assert_eq!(
        last, switch,
        "timeline 1 streams exactly up to the switchpoint"
    );
    let end = stream.timeline_end().cloned().expect("timeline end");
    assert_eq!(end.next_timeline, Some(TimelineId(2)));
    assert_eq!(end.next_start, Some(switch));
    stream.stop().await.unwrap();
    // and the connection is usable afterwards
    assert_eq!(r.identify_system().await.unwrap().timeline, TimelineId(2));
}
