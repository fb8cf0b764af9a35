//! `compare` is read-only, provably: a full run (checks, WAL decoding over replication, table
//! names resolved in every database) against a lossy failover changes nothing on either server.
//!
//! Three independent witnesses:
//! 1. **What the tool sent.** Every connection goes through a recording TCP proxy. The test
//!    parses the recorded client bytes (PostgreSQL protocol v3): startup parameters, every
//!    simple and extended-protocol statement, every replication command and every standby
//!    status update. SQL sessions must start with `application_name=failover-verify` and a
//!    final `default_transaction_read_only=on`; statements must be reads; replication
//!    connections must be physical, use only IDENTIFY_SYSTEM / TIMELINE_HISTORY /
//!    START_REPLICATION without a slot, and report flush = apply = 0/0.
//! 2. **What the servers logged** (`log_connections`, `log_statement=all`,
//!    `log_replication_commands`, `%a` in `log_line_prefix`): every connection the servers saw
//!    during the run came through the proxy (same count), and no walsender became synchronous
//!    although the former primary's `synchronous_standby_names` names `failover-verify`.
//! 3. **What the servers hold.** Catalog snapshots before and after are equal, and so is the
//!    next transaction id (`pg_snapshot_xmax(pg_current_snapshot())`): no transaction of any
//!    session got an xid, so nothing was written. On the former primary, `pg_waldump` over
//!    the WAL written from the run's start shows no record with an xid and no transaction
//!    record; the same detector finds the lost commits in the lost range (it can fail).
//!
//! The end of the former's WAL is the one read at the start: the proxy holds the tool's
//! START_REPLICATION (after the facts were read) while the test forces WAL on the former
//! (`pg_switch_wal()`, `CHECKPOINT`); the report's end stays before that WAL.

mod util;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use failover_verify::lsn::Lsn;
use failover_verify::sandbox::scenario::insert_lost_commits;
use failover_verify::sandbox::{Cluster, ClusterOptions, LossyFailover, LossyFailoverSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use util::install_or_skip;

// ------------------------------------------------------------------ recording proxy

/// Every connection's recorded client bytes.
type Captures = Arc<Mutex<Vec<Arc<Mutex<Vec<u8>>>>>>;

/// Holds the first client message containing `pattern` until released.
struct Hold {
    pattern: &'static [u8],
    armed: AtomicBool,
    held: Notify,
    release: Notify,
}

/// A TCP proxy in front of one server that records every byte each client sends.
struct Proxy {
    port: u16,
    conns: Captures,
}

impl Proxy {
    async fn start(upstream: u16, hold: Option<Arc<Hold>>) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let conns: Captures = Arc::default();
        let list = conns.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let capture: Arc<Mutex<Vec<u8>>> = Arc::default();
                list.lock().unwrap().push(capture.clone());
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let hold = hold.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let hit = {
                            let mut c = capture.lock().unwrap();
                            c.extend_from_slice(&buf[..n]);
                            hold.as_ref().is_some_and(|h| {
                                contains(&c, h.pattern) && h.armed.swap(false, Ordering::SeqCst)
                            })
                        };
                        if hit {
                            let h = hold.as_ref().unwrap();
                            h.held.notify_one();
                            h.release.notified().await;
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = sw.shutdown().await;
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    let _ = cw.shutdown().await;
                });
            }
        });
        Proxy { port, conns }
    }

    fn conninfo(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname='{}'",
            self.port,
            dbname.replace('\\', "\\\\").replace('\'', "\\'")
        )
    }

    fn recorded(&self) -> Vec<Vec<u8>> {
        self.conns
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.lock().unwrap().clone())
            .collect()
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// One client connection, parsed from the bytes it sent.
#[derive(Debug, Default)]
struct ClientConn {
    cancel_request: bool,
    startup: Vec<(String, String)>,
    /// (message type, body).
    messages: Vec<(u8, Vec<u8>)>,
}

impl ClientConn {
    fn param(&self, k: &str) -> Option<&str> {
        self.startup
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// Statement texts: `Q` (simple query) and `P` (parse) messages.
    fn statements(&self) -> Vec<String> {
        let cstr = |b: &[u8]| {
            String::from_utf8_lossy(b.split(|x| *x == 0).next().unwrap_or_default()).into_owned()
        };
        self.messages
            .iter()
            .filter_map(|(t, body)| match t {
                b'Q' => Some(cstr(body)),
                b'P' => {
                    let name_end = body.iter().position(|x| *x == 0)?;
                    Some(cstr(&body[name_end + 1..]))
                }
                _ => None,
            })
            .collect()
    }
}

fn be32(b: &[u8]) -> usize {
    u32::from_be_bytes(b[..4].try_into().unwrap()) as usize
}

/// Parses one recorded client stream (no TLS: the sandbox servers answer SSLRequest with N).
fn parse_client(b: &[u8]) -> ClientConn {
    let mut c = ClientConn::default();
    let mut i = 0;
    // Untyped start-up packets: SSLRequest, GSSENCRequest, CancelRequest, StartupMessage.
    while i + 8 <= b.len() {
        let (len, code) = (be32(&b[i..]), be32(&b[i + 4..]));
        assert!(len >= 8 && i + len <= b.len(), "truncated start-up packet");
        match code {
            80877103 | 80877104 => i += len,
            80877102 => {
                c.cancel_request = true;
                return c;
            }
            196608 => {
                let fields: Vec<String> = b[i + 8..i + len]
                    .split(|x| *x == 0)
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect();
                for kv in fields.chunks(2) {
                    if let [k, v] = kv {
                        if !k.is_empty() {
                            c.startup.push((k.clone(), v.clone()));
                        }
                    }
                }
                i += len;
                break;
            }
            other => panic!("unexpected start-up code {other}"),
        }
    }
    while i + 5 <= b.len() {
        let t = b[i];
        let len = be32(&b[i + 1..]);
        let end = (i + 1 + len).min(b.len());
        c.messages.push((t, b[i + 5..end].to_vec()));
        i += 1 + len;
    }
    c
}

// ------------------------------------------------------------------ what counts as a write

/// Why `sql` is not an obviously read-only statement, or `None` when it is.
fn write_reason(sql: &str) -> Option<String> {
    // A simple-query string may hold several statements: judge each one.
    split_statements(sql)
        .into_iter()
        .find_map(|one| statement_write_reason(&one))
}

/// Splits SQL on `;` outside single-quoted strings and double-quoted identifiers.
fn split_statements(sql: &str) -> Vec<String> {
    let (mut out, mut cur) = (Vec::new(), String::new());
    let (mut squote, mut dquote) = (false, false);
    for c in sql.chars() {
        match c {
            '\'' if !dquote => squote = !squote,
            '"' if !squote => dquote = !dquote,
            ';' if !squote && !dquote => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

/// Session settings the tool may pin: output formats, the search path, timeouts, and
/// read-only mode switched on (never off).
fn harmless_set(upper: &str) -> bool {
    let rest = upper.trim_start_matches("SET").trim();
    let rest = rest.strip_prefix("SESSION ").unwrap_or(rest).trim();
    if let Some(tx) = rest.strip_prefix("TRANSACTION ") {
        // SET TRANSACTION SNAPSHOT '…' / ISOLATION LEVEL … READ ONLY
        return tx.trim() == "SNAPSHOT" || (tx.contains("READ ONLY") && !tx.contains("READ WRITE"));
    }
    let name = rest
        .split(|c: char| c == '=' || c.is_whitespace())
        .next()
        .unwrap_or_default();
    const PINNED: [&str; 10] = [
        "JIT",
        "TIMEZONE",
        "DATESTYLE",
        "INTERVALSTYLE",
        "EXTRA_FLOAT_DIGITS",
        "BYTEA_OUTPUT",
        "STANDARD_CONFORMING_STRINGS",
        "SEARCH_PATH",
        "STATEMENT_TIMEOUT",
        "LOCK_TIMEOUT",
    ];
    if PINNED.contains(&name) {
        return true;
    }
    if name == "DEFAULT_TRANSACTION_READ_ONLY" || name == "TRANSACTION_READ_ONLY" {
        let value = rest[name.len()..]
            .trim_start_matches([' ', '='])
            .trim()
            .trim_matches('\'');
        return matches!(value, "ON" | "TRUE" | "1");
    }
    false
}

/// Why one statement could write, or `None` when it is read-only.
fn statement_write_reason(sql: &str) -> Option<String> {
    // Quoted identifiers and string literals are names and values, not keywords.
    let unquoted: String = {
        let (mut out, mut q) = (String::new(), None::<char>);
        for c in sql.chars() {
            match (q, c) {
                (None, '\'' | '"') => {
                    q = Some(c);
                    out.push(' ');
                }
                (Some(open), c) if c == open => q = None,
                (Some(_), _) => {}
                (None, c) => out.push(c),
            }
        }
        out
    };
    let sql = unquoted.as_str();
    let upper = sql.to_uppercase();
    let words: Vec<&str> = upper
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let first = *words.first()?;
    const ALLOWED_FIRST: [&str; 10] = [
        "SELECT",
        "SHOW",
        "WITH",
        "VALUES",
        "TABLE",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
    ];
    if first == "SET" {
        let trimmed = upper.trim();
        return (!harmless_set(trimmed)).then(|| format!("statement {trimmed}"));
    }
    if !ALLOWED_FIRST.contains(&first) {
        return Some(format!("statement kind {first}"));
    }
    // Data-modifying CTEs, and read-write transactions.
    for w in [
        "INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "CREATE", "ALTER", "DROP", "GRANT",
        "REVOKE", "COPY", "VACUUM", "ANALYZE", "CLUSTER", "REINDEX", "LOCK", "INTO",
    ] {
        if words.contains(&w) {
            return Some(format!("keyword {w}"));
        }
    }
    if upper.contains("READ WRITE") || upper.contains("DEFAULT_TRANSACTION_READ_ONLY") {
        return Some("read-write transaction".into());
    }
    // Functions that write, assign an xid, or act on other sessions or the server.
    for f in [
        "PG_SWITCH_WAL",
        "PG_CREATE_",
        "PG_DROP_REPLICATION_SLOT",
        "PG_REPLICATION_SLOT_ADVANCE",
        "PG_TERMINATE_BACKEND",
        "PG_CANCEL_BACKEND",
        "PG_RELOAD_CONF",
        "PG_ROTATE_LOGFILE",
        "PG_PROMOTE",
        "PG_WAL_REPLAY_",
        "PG_STAT_RESET",
        "PG_LOGICAL_EMIT_MESSAGE",
        "PG_REPLICATION_ORIGIN_",
        "SET_CONFIG",
        "NEXTVAL",
        "SETVAL",
        "TXID_CURRENT(",
        "PG_CURRENT_XACT_ID(",
        "LO_",
        "PG_ADVISORY",
        "PG_FILE_WRITE",
        "DBLINK",
    ] {
        if upper.contains(f) {
            return Some(format!("function {f}"));
        }
    }
    None
}

#[test]
fn the_write_detector_can_fail() {
    for w in [
        "INSERT INTO t VALUES (1)",
        "with x as (delete from t returning *) select * from x",
        "SELECT * INTO t2 FROM t",
        "BEGIN READ WRITE",
        "SET TRANSACTION READ WRITE",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "SELECT nextval('s')",
        "SELECT txid_current()",
        "CREATE EXTENSION pg_walinspect",
        "GRANT pg_monitor TO x",
        "  checkpoint",
        "SET default_transaction_read_only = off",
        "SET TimeZone = 'UTC'; SET transaction_read_only = false",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "SET ROLE postgres",
        "SELECT 1; DELETE FROM t",
    ] {
        assert!(write_reason(w).is_some(), "{w}");
    }
    assert_eq!(
        write_reason(
            "SET TimeZone = 'UTC'; SET search_path = ''; SET default_transaction_read_only = on"
        ),
        None
    );
    assert_eq!(
        write_reason("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"),
        None
    );
    assert_eq!(
        write_reason("SET TRANSACTION SNAPSHOT '00000003-0000001B-1'"),
        None
    );
    assert_eq!(
        write_reason("SAVEPOINT t1; ROLLBACK TO SAVEPOINT t1; RELEASE t1"),
        None
    );
    assert_eq!(write_reason("SELECT 1"), None);
    assert_eq!(
        write_reason("SELECT pg_read_binary_file('pg_wal/' || $1, $2, $3)"),
        None
    );
}

// ------------------------------------------------------------------ server-side witnesses

/// Catalogs and counters that any write would change.
const SNAPSHOT: [(&str, &str); 16] = [
    ("pg_class", "SELECT oid, relname, relnamespace, relkind, relfilenode, relpersistence, relacl FROM pg_class ORDER BY oid"),
    ("pg_namespace", "SELECT oid, nspname, nspacl FROM pg_namespace ORDER BY oid"),
    ("pg_extension", "SELECT extname, extversion FROM pg_extension ORDER BY 1"),
    ("pg_replication_slots", "SELECT slot_name, slot_type, database, temporary FROM pg_replication_slots ORDER BY 1"),
    ("pg_settings", "SELECT name, setting, source FROM pg_settings WHERE source <> 'default' ORDER BY 1"),
    ("postgresql.auto.conf", "SELECT pg_read_file('postgresql.auto.conf')"),
    ("pg_roles", "SELECT rolname, rolsuper, rolreplication, rolcanlogin, rolconnlimit, rolvaliduntil, rolconfig FROM pg_roles ORDER BY 1"),
    ("pg_auth_members", "SELECT roleid, member, grantor FROM pg_auth_members ORDER BY 1, 2"),
    ("pg_db_role_setting", "SELECT setdatabase, setrole, setconfig FROM pg_db_role_setting ORDER BY 1, 2"),
    ("pg_database", "SELECT datname, datallowconn, datconnlimit, datacl FROM pg_database ORDER BY 1"),
    ("pg_proc acl", "SELECT oid, proname, proacl FROM pg_proc WHERE proacl IS NOT NULL ORDER BY oid"),
    ("pg_publication", "SELECT pubname FROM pg_publication ORDER BY 1"),
    ("pg_prepared_xacts", "SELECT gid, transaction FROM pg_prepared_xacts ORDER BY 1"),
    ("pg_stat_user_tables", "SELECT relid, n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd FROM pg_stat_user_tables ORDER BY 1"),
    ("pg_stat_database", "SELECT datname, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database ORDER BY 1"),
    // The next xid: unchanged only if no session of any kind got a transaction id.
    ("next xid", "SELECT pg_snapshot_xmax(pg_current_snapshot())"),
];

type Snapshot = BTreeMap<&'static str, Vec<Vec<Option<String>>>>;

async fn snapshot(c: &Cluster) -> Snapshot {
    let mut s = BTreeMap::new();
    for (name, sql) in SNAPSHOT {
        s.insert(name, c.query_rows(sql).await.unwrap());
    }
    s
}

fn assert_same(node: &str, before: &Snapshot, after: &Snapshot) {
    for (name, rows) in before {
        assert_eq!(
            Some(rows),
            after.get(name),
            "{node}: {name} changed during the run"
        );
    }
}

/// (start, end) byte offsets of a server log around a run.
fn log_len(c: &Cluster) -> usize {
    std::fs::metadata(c.log_file())
        .map(|m| m.len() as usize)
        .unwrap_or(0)
}

fn log_between(c: &Cluster, from: usize, to: usize) -> String {
    let b = std::fs::read(c.log_file()).unwrap();
    String::from_utf8_lossy(&b[from.min(b.len())..to.min(b.len())]).into_owned()
}

/// `pg_waldump` records (one line each) of `c`'s timeline `tli` in `[from, to)`.
fn waldump(c: &Cluster, tli: u32, from: Lsn, to: Lsn) -> Vec<String> {
    let out = std::process::Command::new(c.install().bin("pg_waldump"))
        .arg("-p")
        .arg(c.data_dir().join("pg_wal"))
        .args(["-t", &tli.to_string()])
        .args(["-s", &from.to_string(), "-e", &to.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run pg_waldump");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pg_waldump failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter(|l| l.starts_with("rmgr:"))
        .map(str::to_string)
        .collect()
}

/// Records that belong to a transaction: a non-zero `tx:` or the Transaction rmgr.
fn transactional(records: &[String]) -> Vec<&String> {
    records
        .iter()
        .filter(|l| {
            l.starts_with("rmgr: Transaction")
                || l.split("tx: ")
                    .nth(1)
                    .and_then(|r| r.split(',').next())
                    .is_some_and(|x| x.trim() != "0")
        })
        .collect()
}

const HOSTILE_TABLE: &str = "weird \"name\"; DROP TABLE x";
const HOSTILE_DB: &str = "weird db \"ä\"; --";

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn logged(name: &str) -> ClusterOptions {
    ClusterOptions::new(name)
        .setting("log_connections", "on")
        .setting("log_statement", "all")
        .setting("log_replication_commands", "on")
        .setting("log_line_prefix", "%m [%p] %q[app=%a] ")
        // No background transactions (autovacuum's ANALYZE commits): the xid must not move.
        .setting("autovacuum", "off")
}

async fn observer(c: &Cluster) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(
        &format!("{} application_name=fv-observer", c.conninfo()),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    client
}

#[tokio::test]
async fn a_full_compare_writes_nothing_on_either_server() {
    let Some(install) = install_or_skip("readonly") else {
        return;
    };
    if !install.has("pg_waldump") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install pg_waldump"
        );
        eprintln!("skipped: readonly: pg_waldump not installed");
        return;
    }
    let spec = LossyFailoverSpec {
        primary: logged("primary"),
        standby: logged("standby"),
        base_rows: 10,
        base_sql: vec![
            "CREATE TABLE x(id int)".into(),
            format!(
                "CREATE TABLE {}(id int, {} text)",
                ident(HOSTILE_TABLE),
                ident("col \"q\"; -- ä")
            ),
            format!("CREATE DATABASE {}", ident(HOSTILE_DB)),
        ],
        lost_commits: 0,
        ..LossyFailoverSpec::default()
    };
    let f = LossyFailover::build_with(&install, spec, async |p: &Cluster| {
        p.execute(&format!(
            "INSERT INTO {} VALUES (1, 'lost')",
            ident(HOSTILE_TABLE)
        ))
        .await?;
        p.execute_in(
            HOSTILE_DB,
            "CREATE TABLE \"SELECT\"(\"from\" int); INSERT INTO \"SELECT\" VALUES (1), (2)",
        )
        .await?;
        insert_lost_commits(p, 11, 3).await
    })
    .await
    .expect("lossy failover");
    // The former primary would wait for a synchronous standby called failover-verify.
    f.former_primary
        .execute("ALTER SYSTEM SET synchronous_standby_names = '\"failover-verify\"'")
        .await
        .unwrap();
    f.former_primary
        .execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let hold = Arc::new(Hold {
        pattern: b"START_REPLICATION",
        armed: AtomicBool::new(true),
        held: Notify::new(),
        release: Notify::new(),
    });
    let new_proxy = Proxy::start(f.new_primary.port(), None).await;
    let former_proxy = Proxy::start(f.former_primary.port(), Some(hold.clone())).await;

    let (new_before, former_before) = (
        snapshot(&f.new_primary).await,
        snapshot(&f.former_primary).await,
    );
    let start_lsn: Lsn = f
        .former_primary
        .query_one_string("SELECT pg_current_wal_insert_lsn()")
        .await
        .unwrap()
        .parse()
        .unwrap();
    let (new_log0, former_log0) = (log_len(&f.new_primary), log_len(&f.former_primary));

    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_failover-verify"));
    cmd.args([
        "compare",
        "--new-primary",
        &new_proxy.conninfo("postgres"),
        "--former-primary",
        &former_proxy.conninfo("postgres"),
        "--format",
        "json",
        "--connect-timeout",
        "10",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    for (k, _) in std::env::vars() {
        if k.starts_with("PG") {
            cmd.env_remove(k);
        }
    }
    let child = cmd.spawn().unwrap();

    // The tool read its facts and wants the former's WAL: make background WAL now.
    tokio::time::timeout(Duration::from_secs(60), hold.held.notified())
        .await
        .expect("the tool never asked for the former primary's WAL");
    let obs = observer(&f.former_primary).await;
    let at_hold: Lsn = obs
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .unwrap()
        .get::<_, String>(0)
        .parse()
        .unwrap();
    obs.batch_execute("SELECT pg_switch_wal(); CHECKPOINT;")
        .await
        .unwrap();
    let after_forced: Lsn = obs
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .unwrap()
        .get::<_, String>(0)
        .parse()
        .unwrap();
    assert!(after_forced > at_hold);
    hold.release.notify_one();

    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("compare finished")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "loss; stderr: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (new_log1, former_log1) = (log_len(&f.new_primary), log_len(&f.former_primary));

    // --- the report used the end read at the start
    let d = &report["divergence"];
    let end = util::lsn_at(d, "former_end_lsn");
    assert!(
        start_lsn <= end && end <= at_hold && end < after_forced,
        "former_end_lsn {end}: read before the forced WAL [{start_lsn}, {at_hold}], not after ({after_forced})"
    );
    let t = &report["transactions"];
    assert_eq!(
        t["source"].as_str().map(|s| s.starts_with("replication")),
        Some(true),
        "{t}"
    );
    let decoded_end = util::lsn_at(t, "end_lsn");
    assert!(
        decoded_end <= end,
        "decoded to {decoded_end}, past the end {end}"
    );
    assert_eq!(t["lost_commits"], 5, "{t}");
    // Every feature ran: checks, WAL over replication, names in every database.
    assert!(!report["checks"].as_array().unwrap().is_empty());
    assert_eq!(report["incomplete"], false);

    // --- hostile identifiers come back exactly, in the right database
    let tables = t["tables"].as_array().unwrap();
    let has = |db: &str, table: &str, inserts: u64| {
        tables.iter().any(|x| {
            x["database"] == db && x["table"] == table && x["inserts"].as_u64() == Some(inserts)
        })
    };
    assert!(
        has("postgres", &format!("public.{HOSTILE_TABLE}"), 1),
        "{tables:#?}"
    );
    assert!(has(HOSTILE_DB, "public.SELECT", 2), "{tables:#?}");
    assert!(has("postgres", "public.fv_demo", 3), "{tables:#?}");

    // --- witness 1: what the tool sent
    let mut sql_sessions = 0;
    let mut status_updates = 0;
    let mut statements = 0;
    let mut commands = Vec::new();
    for (node, proxy) in [("new", &new_proxy), ("former", &former_proxy)] {
        for raw in proxy.recorded() {
            let c = parse_client(&raw);
            if c.cancel_request {
                continue;
            }
            assert_eq!(
                c.param("application_name"),
                Some("failover-verify"),
                "{node}: {c:?}"
            );
            assert!(
                !c.messages.iter().any(|(t, _)| *t == b'F'),
                "{node}: fast-path function call"
            );
            match c.param("replication") {
                None => {
                    sql_sessions += 1;
                    let options = c.param("options").unwrap_or_default();
                    let last = options
                        .rfind("default_transaction_read_only=")
                        .expect("read-only option");
                    assert!(
                        options[last..].starts_with("default_transaction_read_only=on"),
                        "{node}: {options}"
                    );
                    for s in c.statements() {
                        assert_eq!(write_reason(&s), None, "{node}: {s}");
                        statements += 1;
                    }
                }
                Some(r) => {
                    assert_eq!(r, "true", "{node}: physical replication only");
                    for s in c.statements() {
                        let ok = s == "IDENTIFY_SYSTEM"
                            || s.starts_with("TIMELINE_HISTORY ")
                            || (s.starts_with("START_REPLICATION PHYSICAL ")
                                && !s.contains("SLOT"));
                        assert!(ok, "{node}: replication command {s}");
                        commands.push(s);
                    }
                    for (t, body) in &c.messages {
                        if *t == b'd' && body.first() == Some(&b'r') {
                            status_updates += 1;
                            let flush = u64::from_be_bytes(body[9..17].try_into().unwrap());
                            let apply = u64::from_be_bytes(body[17..25].try_into().unwrap());
                            assert_eq!((flush, apply), (0, 0), "{node}: reported a flush position");
                        }
                    }
                }
            }
        }
    }
    assert!(
        sql_sessions >= 3,
        "sessions: both nodes, plus name resolution"
    );
    assert!(
        commands.iter().any(|c| c.starts_with("START_REPLICATION")),
        "{commands:?}"
    );
    assert!(status_updates >= 1, "the stream reported its position");
    assert!(statements >= 10, "{statements} statements seen");
    let mut logged = 0;

    // --- witness 2: what the servers logged
    for (c, from, to, proxy) in [
        (&f.new_primary, new_log0, new_log1, &new_proxy),
        (&f.former_primary, former_log0, former_log1, &former_proxy),
    ] {
        let log = log_between(c, from, to);
        let tool_conns = log
            .lines()
            .filter(|l| {
                l.contains("connection authorized")
                    && l.contains("application_name=failover-verify")
            })
            .count();
        let proxied = proxy
            .recorded()
            .iter()
            .filter(|r| !parse_client(r).cancel_request)
            .count();
        assert_eq!(
            tool_conns,
            proxied,
            "{}: every connection went through the proxy",
            c.name()
        );
        for l in log.lines().filter(|l| l.contains("[app=failover-verify]")) {
            let stmt = l.split_once("statement: ").map(|x| x.1).or_else(|| {
                l.split_once("execute ")
                    .and_then(|x| x.1.split_once(": "))
                    .map(|x| x.1)
            });
            if let Some(s) = stmt {
                assert_eq!(write_reason(s), None, "{}: logged {l}", c.name());
                logged += 1;
            }
        }
        assert!(
            !log.contains("is now a synchronous standby"),
            "{}: a walsender became synchronous",
            c.name()
        );
    }
    assert!(
        logged >= statements,
        "the servers logged {logged} of {statements} statements"
    );
    let former_log = log_between(&f.former_primary, former_log0, former_log1);
    assert!(former_log.contains("received replication command: START_REPLICATION"));

    // --- witness 3: what the servers hold
    let (new_after, former_after) = (
        snapshot(&f.new_primary).await,
        snapshot(&f.former_primary).await,
    );
    assert_same("new primary", &new_before, &new_after);
    assert_same("former primary", &former_before, &former_after);
    assert!(
        !former_before["pg_class"].is_empty() && former_before["next xid"][0][0].is_some(),
        "the snapshot read something"
    );

    // No transaction record in the former's WAL since the run's start (WAL flushed first).
    let end_check: Lsn = obs
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .unwrap()
        .get::<_, String>(0)
        .parse()
        .unwrap();
    obs.batch_execute("SELECT pg_switch_wal()").await.unwrap();
    let tli = f.old_timeline.0;
    let since_start = waldump(&f.former_primary, tli, start_lsn, end_check);
    assert!(
        since_start
            .iter()
            .any(|l| l.contains("CHECKPOINT") || l.contains("SWITCH")),
        "the forced background WAL is there: {since_start:#?}"
    );
    assert!(
        transactional(&since_start).is_empty(),
        "transaction records after the run's start: {:#?}",
        transactional(&since_start)
    );
    // The same detector sees the lost commits in the lost range.
    let lost = waldump(&f.former_primary, tli, f.cut_off_lsn, f.former_end_lsn);
    let commits = transactional(&lost)
        .into_iter()
        .filter(|l| l.contains("COMMIT"))
        .count();
    assert_eq!(commits, 5, "the detector finds the 5 lost commits");
}
