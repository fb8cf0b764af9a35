//! Shared helpers for the tests that run a real HA manager (repmgr, pg_auto_failover): commands
//! as the `postgres` OS user with time limits, SQL polling, stopping every server on drop, and
//! the independent count of lost commits with `pg_waldump`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use failover_verify::lsn::Lsn;
use failover_verify::sandbox::PgInstall;

#[allow(unused_imports)] // each test binary uses a different part
pub use crate::util::{stop_postmaster, tail, Proc};

/// True when running as root: servers and managers then run through `runuser -u postgres`.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `program args...` as the postgres user, killed after `secs` seconds (coreutils `timeout`).
pub fn as_postgres(secs: u64, program: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("timeout");
    c.args(["-k", "5", &secs.to_string()]);
    if is_root() {
        c.args(["runuser", "-u", "postgres", "--"]);
    }
    c.arg(program).args(args);
    c
}

/// Runs `cmd`, panicking with its output unless it succeeds; returns stdout + stderr.
pub fn run_ok(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

/// A temporary directory owned by postgres, removed on drop.
pub fn pg_tempdir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir");
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(ok.success());
    }
    dir
}

/// One SQL statement as postgres over TCP; the first column of the first row as text.
pub async fn sql(port: u16, dbname: &str, query: &str) -> Result<Option<String>, String> {
    let conninfo = format!(
        "host=127.0.0.1 port={port} user=postgres dbname={dbname} connect_timeout=5 sslmode=disable"
    );
    let (client, conn) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_postgres::connect(&conninfo, tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| format!("connect to {port} timed out"))?
    .map_err(|e| format!("connect to {port}: {e}"))?;
    let task = tokio::spawn(conn);
    let rows = tokio::time::timeout(Duration::from_secs(30), client.simple_query(query))
        .await
        .map_err(|_| format!("{query}: timed out"))?
        .map_err(|e| format!("{query}: {e}"))?;
    drop(client);
    let _ = task.await;
    Ok(rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        })
        .flatten())
}

/// Polls a SQL value until `ok` holds, at most `secs` seconds.
pub async fn wait_sql(
    what: &str,
    secs: u64,
    port: u16,
    query: &str,
    ok: impl Fn(&Option<String>) -> bool,
) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = Err(String::new());
    while Instant::now() < deadline {
        last = sql(port, "postgres", query).await;
        if let Ok(v) = &last {
            if ok(v) {
                return v.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("timed out after {secs} s waiting for {what} ({query} on {port}); last: {last:?}");
}

/// Stops WAL delivery to the standby on `port` (DOMAIN.md §7) and returns where it stopped.
pub async fn cut_off(port: u16) -> String {
    sql(port, "postgres", "ALTER SYSTEM SET primary_conninfo = ''")
        .await
        .unwrap();
    sql(port, "postgres", "SELECT pg_reload_conf()")
        .await
        .unwrap();
    wait_sql(
        "the standby's walreceiver to stop",
        60,
        port,
        "SELECT count(*) = 0 FROM pg_stat_wal_receiver",
        |v| v.as_deref() == Some("t"),
    )
    .await;
    sql(port, "postgres", "SELECT pg_last_wal_replay_lsn()::text")
        .await
        .unwrap()
        .unwrap()
}

/// The switchpoint of `parent_tli` in a data directory's `.history` file of `parent_tli + 1`.
pub fn switchpoint(data_dir: &Path, parent_tli: u32) -> Lsn {
    let path = data_dir.join(format!("pg_wal/{:08X}.history", parent_tli + 1));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&parent_tli.to_string()))
        .unwrap_or_else(|| panic!("{}: no line for timeline {parent_tli}", path.display()));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The COMMIT records `pg_waldump` shows on timeline `tli` of `wal_dir` from `from` to the end
/// of valid WAL: the ground truth, computed without the tool. `None` (skipped) when
/// pg_waldump is missing outside CI.
pub fn waldump_commits(install: &PgInstall, wal_dir: &Path, tli: u32, from: Lsn) -> Option<usize> {
    if !install.has("pg_waldump") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install pg_waldump"
        );
        eprintln!("skipped: pg_waldump comparison: pg_waldump not installed");
        return None;
    }
    // A copy readable by this process whatever the directory's owner.
    let out = Command::new(install.bin("pg_waldump"))
        .args([
            "-p",
            wal_dir.to_str().unwrap(),
            "-t",
            &tli.to_string(),
            "-s",
            &from.to_string(),
            "-r",
            "Transaction",
        ])
        .output()
        .expect("pg_waldump runs");
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.lines()
            .filter(|l| l.contains("desc: COMMIT ") || l.contains("desc: COMMIT_PREPARED "))
            .count(),
    )
}

/// The data directory's `pg_wal`.
pub fn pg_wal(data: &Path) -> PathBuf {
    data.join("pg_wal")
}

/// `compare` through an HA manager's discovery (`flag conninfo`, every member reached with
/// `user=postgres`): checks that it reports a loss (exit 1) and that it picked the node on
/// `new_port` as the new primary (`node2`) and the one on `former_port` as the former
/// (`node1`), with a rule mentioning `rule`; returns the JSON report for further checks.
pub async fn compare_via_manager(
    flag: &str,
    conninfo: &str,
    manager: &str,
    (new_port, former_port): (u16, u16),
    rule: &str,
) -> serde_json::Value {
    let members = "user=postgres dbname=postgres sslmode=disable";
    let run = crate::util::run_tool(&[
        "compare",
        flag,
        conninfo,
        "--member-conninfo",
        members,
        "--format",
        "json",
        "--connect-timeout",
        "5",
    ])
    .await;
    assert_eq!(run.code, 1, "exit 1 for loss; stderr: {}", run.stderr);
    let j = run.json();
    assert_eq!(j["verdict"], "loss", "{}", j["explanation"]);
    let target = |v: &serde_json::Value| v["target"].as_str().unwrap_or_default().to_string();
    assert!(
        target(&j["new_primary"]).contains(&format!("port={new_port} ")),
        "{}",
        j["new_primary"]
    );
    assert!(
        target(&j["former_primary"]).contains(&format!("port={former_port} ")),
        "{}",
        j["former_primary"]
    );
    let d = &j["discovery"];
    assert_eq!(d["manager"], manager);
    assert_eq!(d["new_primary"], "node2");
    assert_eq!(d["former_primary"], "node1");
    assert!(
        d["former_primary_rule"].as_str().unwrap().contains(rule),
        "{}",
        d["former_primary_rule"]
    );
    j
}
