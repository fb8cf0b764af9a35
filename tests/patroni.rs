//! `compare --patroni` against a real Patroni cluster: etcd (Debian's etcd-server 3.4) and
//! three Patroni members (PyPI, installed by `.ci/install-patroni`) running PostgreSQL as the
//! `postgres` OS user, in synchronous mode, without pg_rewind.
//!
//! The lossy failover: the asynchronous replica is cut off from WAL with Patroni's own
//! `nostream` tag (set in its YAML and applied with `POST /reload`: Patroni empties
//! `primary_conninfo` itself, so it does not undo the cut the way it undoes an
//! `ALTER SYSTEM SET primary_conninfo = ''`), the leader commits, and
//! `patronictl failover --candidate <async> --force` promotes the replica that missed those
//! commits. Patroni demotes the former leader and, with `use_pg_rewind: false` and
//! `remove_data_directory_on_diverged_timelines: false`, leaves it running diverged on the
//! old timeline with its WAL intact. The tool then has to find both nodes from the REST API
//! alone and count exactly the commits made after the cut.
//!
//! The error tests (unreachable URL, a web server that is not Patroni, a Patroni that answers
//! 503) need no Patroni and always run.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use failover_verify::sandbox::PgInstall;
use util::{closed_port, run_tool, Run};

/// Where `.ci/install-patroni` puts the venv (override with the same variable).
const VENV_ENV: &str = "FV_PATRONI_VENV";
const DEFAULT_VENV: &str = "/opt/failover-verify/patroni-venv";

/// Transactions the leader commits after the asynchronous replica is cut off.
const LOST: usize = 6;

// ------------------------------------------------------------------------ environment

/// What the real-Patroni test needs on this machine.
struct Tools {
    venv: PathBuf,
    etcd: PathBuf,
    install: PgInstall,
    /// Run Patroni (and so PostgreSQL) through `runuser -u postgres` (we are root).
    as_postgres: bool,
}

/// The tools, or `None` with a printed notice; under CI a missing tool fails the test.
fn tools_or_skip(test: &str) -> Option<Tools> {
    let venv = std::env::var_os(VENV_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_VENV));
    let etcd = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("etcd"))
            .find(|f| f.is_file())
    });
    let mut missing = Vec::new();
    for b in ["patroni", "patronictl"] {
        if !venv.join("bin").join(b).is_file() {
            missing.push(format!("{}", venv.join("bin").join(b).display()));
        }
    }
    if etcd.is_none() {
        missing.push("etcd on PATH (Debian's etcd-server)".into());
    }
    let install = PgInstall::find();
    if let Err(e) = &install {
        missing.push(format!("PostgreSQL server binaries ({e})"));
    }
    if !missing.is_empty() {
        let msg = format!(
            "{test}: missing {}; run .ci/install-patroni",
            missing.join(", ")
        );
        if std::env::var_os("CI").is_some() {
            panic!("{msg}");
        }
        eprintln!("skipped: {msg}");
        return None;
    }
    // SAFETY: geteuid has no preconditions.
    let as_postgres = unsafe { libc::geteuid() } == 0;
    Some(Tools {
        venv,
        etcd: etcd.expect("checked"),
        install: install.expect("checked"),
        as_postgres,
    })
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    closed_port()
}

// ------------------------------------------------------------------------ processes

/// A child process in its own process group, stopped (TERM, then KILL) on drop.
struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    /// Starts `cmd` in a new process group with stdout and stderr appended to `log`.
    fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_string(),
            child,
        }
    }

    /// SIGTERM to the group, up to `grace` to exit, then SIGKILL to the group.
    fn stop(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pgid = self.child.id() as i32;
        // SAFETY: kill(2) on a process group we created.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("{}: did not stop within {grace:?}; killing it", self.name);
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(30));
    }
}

/// Stops a postmaster left behind (its pid is the first line of `postmaster.pid`).
fn stop_postmaster(data_dir: &Path) {
    let Ok(text) = std::fs::read_to_string(data_dir.join("postmaster.pid")) else {
        return;
    };
    let Some(pid) = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
    else {
        return;
    };
    // SAFETY: kill(2); signal 0 only probes.
    let alive = |pid| unsafe { libc::kill(pid, 0) } == 0;
    if !alive(pid) {
        return;
    }
    unsafe { libc::kill(pid, libc::SIGQUIT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if alive(pid) {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ------------------------------------------------------------------------ HTTP and SQL

/// A short-timeout HTTP agent for the test's own polling (independent of the tool's client).
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(2)))
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// `GET url` as JSON, `None` on any failure.
fn get_json(url: &str) -> Option<serde_json::Value> {
    let mut resp = agent().get(url).call().ok()?;
    if resp.status().as_u16() != 200 {
        return None;
    }
    serde_json::from_str(&resp.body_mut().read_to_string().ok()?).ok()
}

/// Runs one SQL statement and returns the first column of the first row as text.
async fn sql(port: u16, query: &str) -> Result<Option<String>, String> {
    let conninfo = format!(
        "host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=5 sslmode=disable"
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

// ------------------------------------------------------------------------ the cluster

/// One Patroni member's files and ports.
struct MemberDir {
    name: String,
    rest_port: u16,
    pg_port: u16,
    dir: PathBuf,
    proc: Option<Proc>,
}

impl MemberDir {
    fn config(&self) -> PathBuf {
        self.dir.join("patroni.yml")
    }
    fn log(&self) -> PathBuf {
        self.dir.join("patroni.log")
    }
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }
    fn rest(&self) -> String {
        format!("http://127.0.0.1:{}", self.rest_port)
    }
}

/// etcd and three Patroni members in a temporary directory; everything is stopped on drop,
/// with the logs printed when the test failed.
struct PatroniCluster {
    tools: Tools,
    dir: tempfile::TempDir,
    etcd: Option<Proc>,
    etcd_port: u16,
    members: Vec<MemberDir>,
}

impl Drop for PatroniCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for m in &self.members {
                eprintln!(
                    "---- {} ({}):\n{}",
                    m.name,
                    m.log().display(),
                    tail(&m.log(), 60)
                );
            }
            eprintln!(
                "---- etcd:\n{}",
                tail(&self.dir.path().join("etcd.log"), 20)
            );
        }
        for m in &mut self.members {
            if let Some(mut p) = m.proc.take() {
                p.stop(Duration::from_secs(30));
            }
        }
        for m in &self.members {
            stop_postmaster(&m.data());
        }
        if let Some(mut e) = self.etcd.take() {
            e.stop(Duration::from_secs(10));
        }
    }
}

impl PatroniCluster {
    /// Starts etcd, then the members in `names` order (the first bootstraps and leads).
    fn start(tools: Tools, names: &[&str]) -> PatroniCluster {
        let dir = tempfile::Builder::new()
            .prefix("fv-patroni-")
            .tempdir()
            .expect("temp dir");
        let mut c = PatroniCluster {
            tools,
            dir,
            etcd: None,
            etcd_port: free_port(),
            members: Vec::new(),
        };
        for name in names {
            let dir = c.dir.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            c.members.push(MemberDir {
                name: name.to_string(),
                rest_port: free_port(),
                pg_port: free_port(),
                dir,
                proc: None,
            });
        }
        for i in 0..c.members.len() {
            c.write_config(i, false);
        }
        if c.tools.as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(c.dir.path())
                .status()
                .expect("chown");
            assert!(ok.success(), "chown -R postgres {}", c.dir.path().display());
        }
        c.start_etcd();
        c.start_member(0);
        c.wait_json(
            "the first member to lead",
            90,
            &c.members[0].rest(),
            "/cluster",
            |v| {
                members(v)
                    .iter()
                    .any(|m| m["role"] == "leader" && m["state"] == "running")
            },
        );
        for i in 1..c.members.len() {
            c.start_member(i);
        }
        c
    }

    /// Writes member `i`'s patroni.yml (with `nostream: true` when `cut`).
    fn write_config(&self, i: usize, cut: bool) {
        let m = &self.members[i];
        let tags = if cut { "tags:\n  nostream: true\n" } else { "" };
        let yml = format!(
            r#"scope: fv-patroni-test
name: {name}
log:
  level: INFO
restapi:
  listen: 127.0.0.1:{rest}
  connect_address: 127.0.0.1:{rest}
etcd3:
  hosts: 127.0.0.1:{etcd}
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 1
    retry_timeout: 5
    maximum_lag_on_failover: 10737418240
    synchronous_mode: true
    postgresql:
      use_pg_rewind: false
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: 'on'
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 256MB
  initdb:
    - encoding: UTF8
    - locale: C
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {data}
  bin_dir: {bin}
  pgpass: {dir}/pgpass
  authentication:
    superuser: {{username: postgres, password: fv-super}}
    replication: {{username: replicator, password: fv-repl}}
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
  use_pg_rewind: false
  remove_data_directory_on_rewind_failure: false
  remove_data_directory_on_diverged_timelines: false
  parameters:
    unix_socket_directories: '{dir}'
{tags}"#,
            name = m.name,
            rest = m.rest_port,
            etcd = self.etcd_port,
            pg = m.pg_port,
            data = m.data().display(),
            bin = self.tools.install.bindir.display(),
            dir = m.dir.display(),
        );
        std::fs::write(m.config(), yml).expect("write patroni.yml");
    }

    /// A command run as the `postgres` OS user when we are root.
    fn command(&self, program: &Path) -> Command {
        if self.tools.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn start_etcd(&mut self) {
        let data = self.dir.path().join("etcd-data");
        let peer = free_port();
        let client = format!("http://127.0.0.1:{}", self.etcd_port);
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut cmd = self.command(&self.tools.etcd.clone());
        cmd.arg("--name")
            .arg("fv")
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("fv={peer_url}"));
        self.etcd = Some(Proc::spawn("etcd", cmd, &self.dir.path().join("etcd.log")));
        self.wait_json("etcd to be healthy", 30, &client, "/health", |v| {
            v["health"] == "true"
        });
    }

    fn start_member(&mut self, i: usize) {
        let mut cmd = self.command(&self.tools.venv.join("bin/patroni"));
        cmd.arg(self.members[i].config());
        let p = Proc::spawn(&self.members[i].name, cmd, &self.members[i].log());
        self.members[i].proc = Some(p);
    }

    /// Polls `GET base+path` until `ok` holds, at most `secs` seconds.
    fn wait_json(
        &self,
        what: &str,
        secs: u64,
        base: &str,
        path: &str,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(v) = get_json(&format!("{base}{path}")) {
                if ok(&v) {
                    return v;
                }
                last = Some(v);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("timed out after {secs} s waiting for {what}; last {path}: {last:?}");
    }

    fn member(&self, name: &str) -> &MemberDir {
        self.members
            .iter()
            .find(|m| m.name == name)
            .expect("member")
    }
}

/// The `members` array of a `/cluster` answer.
fn members(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v["members"].as_array().cloned().unwrap_or_default()
}

/// Polls a SQL value until `ok` holds, at most `secs` seconds.
async fn wait_sql(
    what: &str,
    secs: u64,
    port: u16,
    query: &str,
    ok: impl Fn(&Option<String>) -> bool,
) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = Err(String::new());
    while Instant::now() < deadline {
        last = sql(port, query).await;
        if let Ok(v) = &last {
            if ok(v) {
                return v.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("timed out after {secs} s waiting for {what} ({query} on {port}); last: {last:?}");
}

// ------------------------------------------------------------------------ the tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_lossy_failover_to_the_async_replica_is_found_and_accounted() {
    let Some(tools) = tools_or_skip("patroni_lossy_failover_to_the_async_replica") else {
        return;
    };
    let started = Instant::now();
    // node-c bootstraps and leads: were the tool to fall back on name order, it would pick
    // the former synchronous standby (node-a or node-b) and this test would fail.
    let c = tokio::task::block_in_place(|| {
        PatroniCluster::start(tools, &["node-c", "node-a", "node-b"])
    });
    let leader_rest = c.members[0].rest();
    let healthy = tokio::task::block_in_place(|| {
        c.wait_json(
            "a leader, a sync standby and a streaming async replica",
            150,
            &leader_rest,
            "/cluster",
            |v| {
                let ms = members(v);
                ms.len() == 3
                    && ms.iter().filter(|m| m["role"] == "leader").count() == 1
                    && ms.iter().filter(|m| m["role"] == "sync_standby").count() == 1
                    && ms
                        .iter()
                        .filter(|m| m["role"] != "leader")
                        .all(|m| m["state"] == "streaming")
            },
        )
    });
    let ms = members(&healthy);
    let name_of = |role: &str| {
        ms.iter()
            .find(|m| m["role"] == role)
            .and_then(|m| m["name"].as_str())
            .expect("role")
            .to_string()
    };
    let former = name_of("leader");
    let sync = name_of("sync_standby");
    let async_name = ms
        .iter()
        .find(|m| m["role"] == "replica")
        .and_then(|m| m["name"].as_str())
        .expect("an async replica")
        .to_string();
    assert_eq!(former, "node-c");
    eprintln!(
        "patroni test: leader {former}, sync {sync}, async {async_name} ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    let leader_port = c.member(&former).pg_port;
    let async_idx = c.members.iter().position(|m| m.name == async_name).unwrap();
    let async_port = c.members[async_idx].pg_port;

    // A table both sides know, replayed by the async replica before the cut.
    sql(
        leader_port,
        "CREATE TABLE patroni_lost (id int PRIMARY KEY, note text)",
    )
    .await
    .unwrap();
    let lsn = sql(leader_port, "SELECT pg_current_wal_lsn()::text")
        .await
        .unwrap()
        .unwrap();
    wait_sql(
        "the async replica to replay the table",
        60,
        async_port,
        &format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"),
        |v| v.as_deref() == Some("t"),
    )
    .await;

    // Cut the async replica off: Patroni's nostream tag, applied by a reload of its config.
    c.write_config(async_idx, true);
    let reload = agent()
        .post(format!("{}/reload", c.members[async_idx].rest()))
        .send_empty()
        .expect("POST /reload");
    assert!(
        reload.status().is_success(),
        "POST /reload: {}",
        reload.status()
    );
    wait_sql(
        "the async replica's walreceiver to stop",
        60,
        async_port,
        "SELECT (SELECT count(*) FROM pg_stat_wal_receiver) = 0 AND current_setting('primary_conninfo') = ''",
        |v| v.as_deref() == Some("t"),
    )
    .await;
    let cut_at = sql(async_port, "SELECT pg_last_wal_replay_lsn()::text")
        .await
        .unwrap()
        .unwrap();

    // Commits the async replica never sees (the sync standby acknowledges each one).
    for i in 1..=LOST {
        sql(
            leader_port,
            &format!("INSERT INTO patroni_lost VALUES ({i}, 'committed after the cut')"),
        )
        .await
        .unwrap();
    }
    let leader_end = sql(leader_port, "SELECT pg_current_wal_lsn()::text")
        .await
        .unwrap()
        .unwrap();
    let still_cut = sql(
        async_port,
        &format!(
            "SELECT pg_last_wal_replay_lsn() = '{cut_at}'::pg_lsn AND pg_last_wal_replay_lsn() < '{leader_end}'::pg_lsn"
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        still_cut.as_deref(),
        Some("t"),
        "the async replica stayed at {cut_at}"
    );

    // The forced failover to the replica that missed them.
    let mut ctl = Command::new(c.tools.venv.join("bin/patronictl"));
    ctl.arg("-c").arg(c.member(&former).config()).args([
        "failover",
        "--candidate",
        &async_name,
        "--force",
    ]);
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::from(ctl).output(),
    )
    .await
    .expect("patronictl failover within 90 s")
    .expect("patronictl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // patronictl exits 0 even when the REST API answered `503, Failover failed`.
    assert!(
        text.contains("Successfully failed over") && !text.contains("Failover failed"),
        "patronictl failover: {text}"
    );

    // The async replica leads timeline 2; the former leader is back, diverged, on timeline 1.
    let after = tokio::task::block_in_place(|| {
        c.wait_json(
            "the new leader on timeline 2 and the former leader running on timeline 1",
            120,
            &c.member(&sync).rest(),
            "/cluster",
            |v| {
                let ms = members(v);
                let find = |n: &str| ms.iter().find(|m| m["name"] == n).cloned();
                matches!(find(&async_name), Some(m) if m["role"] == "leader" && m["state"] == "running" && m["timeline"] == 2)
                    && matches!(find(&former), Some(m) if m["state"] == "running" && m["timeline"] == 1)
            },
        )
    });
    let history = tokio::task::block_in_place(|| {
        c.wait_json(
            "the promotion in /history",
            60,
            &c.member(&async_name).rest(),
            "/history",
            |v| v.as_array().is_some_and(|a| !a.is_empty()),
        )
    });
    wait_sql(
        "the former leader to accept connections",
        60,
        c.member(&former).pg_port,
        "SELECT pg_is_in_recovery()",
        |v| v.is_some(),
    )
    .await;
    eprintln!(
        "patroni test: failed over ({:.1} s); /cluster {after}; /history {history}",
        started.elapsed().as_secs_f64()
    );

    // The tool, told only where Patroni is.
    let urls = [c.member(&sync).rest(), c.member(&async_name).rest()];
    let run = run_tool(&[
        "compare",
        "--patroni",
        &urls[0],
        "--patroni",
        &urls[1],
        "--patroni-conninfo",
        "user=postgres dbname=postgres sslmode=disable",
        "--format",
        "json",
        "--connect-timeout",
        "5",
    ])
    .await;
    assert_eq!(run.code, 1, "exit 1 for loss; stderr: {}", run.stderr);
    let j = run.json();
    assert_eq!(j["verdict"], "loss", "{}", j["explanation"]);
    let new_port = c.member(&async_name).pg_port;
    let former_port = c.member(&former).pg_port;
    let target = |v: &serde_json::Value| v["target"].as_str().unwrap_or_default().to_string();
    assert!(
        target(&j["new_primary"]).contains(&format!("host=127.0.0.1 port={new_port} ")),
        "new primary found by itself: {}",
        j["new_primary"]
    );
    assert!(
        target(&j["former_primary"]).contains(&format!("host=127.0.0.1 port={former_port} ")),
        "former primary found by itself: {} (rule: {})",
        j["former_primary"],
        j["patroni"]["former_primary_rule"]
    );
    let p = &j["patroni"];
    assert_eq!(p["new_primary"], async_name.as_str());
    assert_eq!(p["former_primary"], former.as_str());
    eprintln!(
        "patroni test: former primary chosen as: {}",
        p["former_primary_rule"]
    );
    assert_eq!(p["members"].as_array().map(Vec::len), Some(3));
    assert_eq!(p["urls"].as_array().map(Vec::len), Some(2));
    // The lost transactions are exactly the commits made after the cut.
    assert_eq!(
        j["transactions"]["lost_commits"].as_u64(),
        Some(LOST as u64),
        "{}",
        j["transactions"]
    );
    // Patroni's history entry for the promotion is in the report, and agrees with the fork.
    let promo = &p["promotion"];
    assert_eq!(promo["parent_timeline"], 1);
    assert_eq!(promo["new_leader"], async_name.as_str());
    assert!(promo["timestamp"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(promo["reason"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(promo["switchpoint_lsn"], j["divergence"]["switchpoint_lsn"]);
    assert_eq!(
        promo["switchpoint_lsn"].as_str(),
        Some(cut_at.as_str()),
        "the switchpoint is where the async replica was cut off"
    );
    assert!(
        !j["findings"].as_array().unwrap().iter().any(
            |f| f["id"] == "patroni_history_disagrees" || f["id"] == "patroni_former_ambiguous"
        ),
        "{}",
        j["findings"]
    );

    // The same run rendered as Markdown, with a dead URL first: the others still answer.
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let run = run_tool(&[
        "compare",
        "--patroni",
        &dead,
        "--patroni",
        &urls[1],
        "--patroni-conninfo",
        "user=postgres dbname=postgres sslmode=disable",
        "--format",
        "markdown",
        "--no-checks",
    ])
    .await;
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    assert!(run.stdout.contains("### Patroni"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains(&format!("| promoted member | {async_name} |")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("| did not answer |"), "{}", run.stdout);
    assert!(run.stdout.contains(&dead), "{}", run.stdout);

    // Naming the former primary by hand overrides the choice (the sync standby works too).
    let sync_port = c.member(&sync).pg_port;
    let run = run_tool(&[
        "compare",
        "--patroni",
        &urls[1],
        "--patroni-conninfo",
        "user=postgres dbname=postgres sslmode=disable",
        "--former-primary",
        &format!("host=127.0.0.1 port={sync_port} user=postgres dbname=postgres sslmode=disable"),
        "--format",
        "json",
        "--no-checks",
    ])
    .await;
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let j = run.json();
    assert!(target(&j["former_primary"]).contains(&format!("port={sync_port} ")));
    assert!(j["patroni"]["former_primary"].is_null());
    assert_eq!(
        j["transactions"]["lost_commits"].as_u64(),
        Some(LOST as u64)
    );

    // `cluster --patroni`: the leader is the primary, the other members are placed on its
    // history; both former timeline-1 nodes hold WAL the leader never received.
    let run = run_tool(&[
        "cluster",
        "--patroni",
        &urls[0],
        "--patroni-conninfo",
        "user=postgres dbname=postgres sslmode=disable",
        "--format",
        "json",
    ])
    .await;
    assert_eq!(run.code, 1, "exit 1 for diverged; stderr: {}", run.stderr);
    let j = run.json();
    assert_eq!(j["verdict"], "diverged", "{}", j["explanation"]);
    assert!(target(&j["primary"]).contains(&format!("port={new_port} ")));
    let nodes = j["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2, "{}", j["nodes"]);
    for n in nodes {
        assert_eq!(n["status"], "diverged", "{n}");
    }

    tokio::task::block_in_place(|| drop(c));
    eprintln!(
        "patroni test: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A tiny HTTP server answering every request with one canned response; stopped on drop.
struct CannedServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CannedServer {
    fn start(status: &str, content_type: &str, body: &str) -> CannedServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = conn else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                // Read the request head, then answer.
                let mut reader = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if line == "\r\n" || line == "\n" {
                        break;
                    }
                    line.clear();
                }
                let _ = s.write_all(response.as_bytes());
                let _ = s.flush();
                let mut rest = [0u8; 1];
                let _ = s.shutdown(std::net::Shutdown::Write);
                let _ = s.read(&mut rest);
            }
        });
        CannedServer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for CannedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The `error:` line of a failed run (the message is one line; a `hint:` may follow).
fn error_line(run: &Run) -> String {
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.starts_with("error: patroni: ")),
        "stderr: {}",
        run.stderr
    );
    assert!(
        lines.iter().skip(1).all(|l| l.starts_with("hint: ")),
        "one error line, then hints: {}",
        run.stderr
    );
    lines[0].to_string()
}

#[tokio::test]
async fn patroni_unreachable_url_exits_3_naming_it() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let run = run_tool(&["compare", "--patroni", &url, "--patroni-timeout", "5"]).await;
    assert_eq!(run.code, 3, "stderr: {}", run.stderr);
    assert!(run.stdout.is_empty(), "no report: {}", run.stdout);
    let line = error_line(&run);
    assert!(line.contains(&format!("{url}/cluster")), "{line}");
    assert!(line.contains("connection refused"), "{line}");
    assert!(line.contains("expected Patroni's GET /cluster"), "{line}");
}

#[tokio::test]
async fn patroni_url_of_another_web_server_exits_3_naming_it() {
    // A web page.
    let html = CannedServer::start(
        "200 OK",
        "text/html; charset=utf-8",
        "<!DOCTYPE html><html><body><h1>It works!</h1></body></html>",
    );
    let run = run_tool(&["compare", "--patroni", &html.url()]).await;
    assert_eq!(run.code, 3, "stderr: {}", run.stderr);
    let line = error_line(&run);
    assert!(line.contains(&format!("{}/cluster", html.url())), "{line}");
    assert!(line.contains("answered text/html, not JSON"), "{line}");

    // JSON, but not Patroni's.
    let json = CannedServer::start("200 OK", "application/json", r#"{"status": "ok"}"#);
    let run = run_tool(&["compare", "--patroni", &json.url()]).await;
    assert_eq!(run.code, 3, "stderr: {}", run.stderr);
    let line = error_line(&run);
    assert!(line.contains(&format!("{}/cluster", json.url())), "{line}");
    assert!(line.contains("without a `members` list"), "{line}");

    // A Patroni that is not ready.
    let busy = CannedServer::start(
        "503 Service Unavailable",
        "text/plain",
        "Service Unavailable",
    );
    let run = run_tool(&["compare", "--patroni", &busy.url()]).await;
    assert_eq!(run.code, 3, "stderr: {}", run.stderr);
    let line = error_line(&run);
    assert!(
        line.contains(&format!("{}/cluster: HTTP 503", busy.url())),
        "{line}"
    );

    // Several URLs, none of them Patroni: one line naming each.
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let run = run_tool(&["compare", "--patroni", &dead, "--patroni", &html.url()]).await;
    assert_eq!(run.code, 3, "stderr: {}", run.stderr);
    let line = error_line(&run);
    assert!(line.contains("no Patroni URL answered"), "{line}");
    assert!(line.contains(&dead) && line.contains(&html.url()), "{line}");
}
