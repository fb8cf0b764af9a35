//! Read-only SQL sessions against a real PostgreSQL 15: authentication paths, read-only
//! enforcement, timeouts, and error mapping.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{env, Cluster, MD5_USER, SCRAM_USER};
use failover_verify::pg::{connect, ConnParams, ErrorKind, PasswordSource, SessionOptions};

fn params(input: &str, pairs: &[(&str, &str)]) -> ConnParams {
    ConnParams::parse(input, &env(pairs)).expect("conninfo")
}

async fn show(s: &failover_verify::pg::Session, what: &str) -> String {
    s.simple_value(&format!("SHOW {what}"))
        .await
        .expect("SHOW")
        .expect("a value")
}

#[tokio::test]
async fn trust_connect_over_tcp_and_unix_socket() {
    let c = Cluster::shared();
    let p = params(&c.tcp("user=postgres sslmode=disable"), &[]);
    let s = connect(&p, &SessionOptions::default())
        .await
        .expect("connect");
    assert_eq!(s.target(), format!("127.0.0.1:{}", c.port));
    let row = s
        .query_one("SELECT current_user::text, 40 + 2", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "postgres");
    assert_eq!(row.get::<_, i32>(1), 42);
    s.close().await;

    let p = params(
        &format!(
            "host={} port={} user=postgres dbname=postgres",
            c.dir.display(),
            c.port
        ),
        &[],
    );
    assert!(p.is_unix_socket());
    let s = connect(&p, &SessionOptions::default())
        .await
        .expect("unix connect");
    assert!(s.target().ends_with(&format!(".s.PGSQL.{}", c.port)));
    assert_eq!(show(&s, "application_name").await, "failover-verify");
}

#[tokio::test]
async fn scram_via_conninfo_url_and_pgpassword() {
    let c = Cluster::shared();
    let (user, pw) = SCRAM_USER;
    // conninfo
    let p = params(
        &c.tcp(&format!("user={user} password='{pw}' sslmode=disable")),
        &[],
    );
    let s = connect(&p, &SessionOptions::default())
        .await
        .expect("conninfo SCRAM");
    assert_eq!(show(&s, "is_superuser").await, "off");
    // URL with percent-encoding
    let url = format!(
        "postgresql://{user}:{}@127.0.0.1:{}/postgres?sslmode=disable",
        pw.replace('-', "%2D"),
        c.port
    );
    let s = connect(&params(&url, &[]), &SessionOptions::default())
        .await
        .expect("URL SCRAM");
    assert_eq!(
        s.simple_value("SELECT current_user")
            .await
            .unwrap()
            .as_deref(),
        Some(user)
    );
    // PGPASSWORD
    let p = params(
        &c.tcp(&format!("user={user} sslmode=disable")),
        &[("PGPASSWORD", pw)],
    );
    assert_eq!(p.password_source(), &PasswordSource::Env);
    connect(&p, &SessionOptions::default())
        .await
        .expect("PGPASSWORD SCRAM");
    // MD5 auth path through tokio-postgres too
    let p = params(
        &c.tcp(&format!(
            "user={} password={} sslmode=disable",
            MD5_USER.0, MD5_USER.1
        )),
        &[],
    );
    connect(&p, &SessionOptions::default()).await.expect("md5");
}

#[tokio::test]
async fn passfile_is_used_at_0600_and_ignored_at_0644() {
    let c = Cluster::shared();
    let (user, pw) = SCRAM_USER;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pgpass");
    std::fs::write(
        &file,
        format!(
            "# test\n127.0.0.1:{}:postgres:{user}:{}\n",
            c.port,
            pw.replace(':', "\\:")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let f = file.display().to_string();
    let input = c.tcp(&format!("user={user} sslmode=disable"));

    let p = params(&input, &[("PGPASSFILE", &f)]);
    assert!(matches!(p.password_source(), PasswordSource::Passfile(_)));
    assert!(p.warnings().is_empty());
    connect(&p, &SessionOptions::default())
        .await
        .expect("passfile SCRAM");

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = params(&input, &[("PGPASSFILE", &f)]);
    assert_eq!(p.password(), None);
    assert_eq!(p.warnings().len(), 1, "{:?}", p.warnings());
    assert!(p.warnings()[0].contains(&f));
    let e = connect(&p, &SessionOptions::default()).await.unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Auth { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("no password was supplied") || msg.contains("none was supplied"),
        "{msg}"
    );
    assert!(
        msg.contains("PGPASSWORD") && msg.contains(".pgpass"),
        "{msg}"
    );
}

#[tokio::test]
async fn wrong_password_is_auth_error_without_the_password() {
    let c = Cluster::shared();
    let wrong = "Wr0ng-Pa55word-xyz";
    let p = params(
        &c.tcp(&format!(
            "user={} password={wrong} sslmode=disable",
            SCRAM_USER.0
        )),
        &[],
    );
    let e = connect(&p, &SessionOptions::default()).await.unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Auth { .. }), "{e:?}");
    assert_eq!(e.sqlstate(), Some("28P01"));
    let target = format!("127.0.0.1:{}", c.port);
    assert_eq!(e.target(), Some(target.as_str()));
    let shown = format!("{e} {e:?}");
    assert!(shown.contains(&target), "{shown}");
    assert!(!shown.contains(wrong), "{shown}");
    assert!(e.hint().is_some());
    assert!(!e.to_string().contains('\n'));
}

#[tokio::test]
async fn session_is_read_only_and_timeouts_apply() {
    let c = Cluster::shared();
    let p = params(
        &c.tcp("user=postgres sslmode=disable options='-c default_transaction_read_only=off -c search_path=pg_catalog'"),
        &[],
    );
    let opts = SessionOptions {
        statement_timeout: Duration::from_millis(300),
        ..SessionOptions::default()
    };
    let s = connect(&p, &opts).await.expect("connect");
    assert_eq!(show(&s, "default_transaction_read_only").await, "on");
    assert_eq!(show(&s, "transaction_read_only").await, "on");
    assert_eq!(
        show(&s, "search_path").await,
        "pg_catalog",
        "user options are kept"
    );
    assert_eq!(show(&s, "application_name").await, "failover-verify");
    assert_eq!(show(&s, "statement_timeout").await, "300ms");
    assert_eq!(show(&s, "lock_timeout").await, "5s");
    assert_eq!(
        show(&s, "idle_in_transaction_session_timeout").await,
        "5min"
    );

    let e = s
        .query("CREATE TABLE must_not_exist (a int)", &[])
        .await
        .unwrap_err();
    assert_eq!(e.sqlstate(), Some("25006"), "{e}");
    assert!(matches!(e.kind(), ErrorKind::Query { .. }));
    assert!(e.to_string().contains(&format!("127.0.0.1:{}", c.port)));
    let e = s
        .simple_query("INSERT INTO pg_catalog.pg_description VALUES (0,0,0,'x')")
        .await
        .unwrap_err();
    assert_eq!(e.sqlstate(), Some("25006"), "{e}");

    let t0 = Instant::now();
    let e = s.query("SELECT pg_sleep(5)", &[]).await.unwrap_err();
    assert_eq!(e.sqlstate(), Some("57014"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    // the session is still usable afterwards
    assert_eq!(
        s.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0),
        1
    );

    // nothing was created
    let su = c.superuser().await;
    let n: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname = 'must_not_exist'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn insufficient_privilege_maps_with_hint() {
    let c = Cluster::shared();
    let (user, pw) = SCRAM_USER;
    let p = params(
        &c.tcp(&format!("user={user} password={pw} sslmode=disable")),
        &[],
    );
    let s = connect(&p, &SessionOptions::default()).await.unwrap();
    let e = s
        .query("SELECT pg_read_binary_file('postgresql.conf')", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InsufficientPrivilege { .. }),
        "{e:?}"
    );
    assert_eq!(e.sqlstate(), Some("42501"));
    assert!(e.hint().unwrap().contains("GRANT"), "{e}");
}

#[tokio::test]
async fn cancel_interrupts_a_running_query() {
    let c = Cluster::shared();
    let p = params(&c.tcp("user=postgres sslmode=disable"), &[]);
    let s = std::sync::Arc::new(connect(&p, &SessionOptions::default()).await.unwrap());
    let s2 = s.clone();
    let t0 = Instant::now();
    let q = tokio::spawn(async move { s2.query("SELECT pg_sleep(20)", &[]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.cancel().await.expect("cancel");
    let e = q.await.unwrap().unwrap_err();
    assert_eq!(e.sqlstate(), Some("57014"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn refused_port_is_connect_error_fast() {
    let port = common::free_port(); // bound then released: nothing listens
    let p = params(
        &format!("host=127.0.0.1 port={port} user=u password=pw123456 sslmode=disable"),
        &[],
    );
    let t0 = Instant::now();
    let e = connect(&p, &SessionOptions::default()).await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert!(matches!(e.kind(), ErrorKind::Connect { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    assert!(!msg.contains("pw123456"));
}

#[tokio::test]
async fn silent_server_times_out_within_connect_timeout() {
    // Accepts TCP (kernel backlog) but never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    for input in [
        format!("host=127.0.0.1 port={port} user=u sslmode=prefer"),
        format!("host=127.0.0.1 port={port} user=u sslmode=disable"),
    ] {
        let p = params(&input, &[]);
        let opts = SessionOptions {
            connect_timeout: Duration::from_secs(1),
            ..SessionOptions::default()
        };
        let t0 = Instant::now();
        let e = connect(&p, &opts).await.unwrap_err();
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(1800),
            "{took:?}"
        );
        assert!(e.is_timeout(), "{e:?}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }
    // conninfo connect_timeout overrides the session default (libpq raises 1 to 2 s)
    let p = params(
        &format!("host=127.0.0.1 port={port} user=u connect_timeout=2"),
        &[],
    );
    let t0 = Instant::now();
    let e = connect(&p, &SessionOptions::default()).await.unwrap_err();
    assert!(e.is_timeout());
    assert!(
        t0.elapsed() < Duration::from_millis(2800),
        "{:?}",
        t0.elapsed()
    );
    drop(listener);
}

/// `compare` opens the session that names the lost tables while the WAL is decoded; one that
/// the server ended meanwhile (`idle_session_timeout`, a restart, an administrator) is opened
/// again, so that the tables are still named.
#[tokio::test]
async fn a_names_session_the_server_ended_is_opened_again() {
    use failover_verify::evidence::names;
    use failover_verify::wal::RelFileLocator;
    use std::collections::BTreeSet;

    let c = Cluster::shared();
    c.exec("CREATE TABLE IF NOT EXISTS names_reopened (id int)")
        .await;
    let su = c.superuser().await;
    let row = su
        .query_one(
            "SELECT pg_relation_filenode('names_reopened')::int8,
                    (SELECT oid::int8 FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .expect("filenode");
    let rel = RelFileLocator {
        spc: 1663,
        db: row.get::<_, i64>(1) as u32,
        rel: row.get::<_, i64>(0) as u32,
    };
    let p = params(&c.tcp("user=postgres sslmode=disable"), &[]);
    let opts = SessionOptions::default();
    let listed = names::open(&p, &opts).await;
    let session = &listed.as_ref().expect("session and databases").0;
    let pid: i32 = session
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    su.execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .expect("terminate");
    let since = Instant::now();
    while !session.client().is_closed() {
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "the session stays open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (found, problems, databases) =
        names::resolve_listed(listed, &p, &opts, &BTreeSet::from([rel])).await;
    assert!(problems.is_empty(), "{problems:?}");
    assert!(databases.values().any(|d| d == "postgres"), "{databases:?}");
    let name = found.get(&rel).expect("named");
    assert_eq!(
        name.table.as_deref(),
        Some("public.names_reopened"),
        "{name:?}"
    );
    assert_eq!(name.kind, "table");
}
