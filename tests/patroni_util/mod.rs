//! The real Patroni cluster harness shared by the Patroni test files: etcd (Debian's
//! etcd-server 3.4) and Patroni members (PyPI, from `.ci/install-patroni`) running PostgreSQL
//! as the `postgres` OS user, in synchronous mode. A copy of tests/patroni.rs's harness with
//! `use_pg_rewind` and extra `postgresql:` YAML as parameters.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use failover_verify::sandbox::PgInstall;

use crate::util::closed_port;
#[allow(unused_imports)] // each test binary uses a different part
pub use crate::util::{stop_postmaster, tail, Proc};

/// Where `.ci/install-patroni` puts the venv (override with the same variable).
pub const VENV_ENV: &str = "FV_PATRONI_VENV";
/// The default venv.
pub const DEFAULT_VENV: &str = "/opt/failover-verify/patroni-venv";

// ------------------------------------------------------------------------ environment

/// What the real-Patroni test needs on this machine.
pub struct Tools {
    pub venv: PathBuf,
    pub etcd: PathBuf,
    pub install: PgInstall,
    /// Run Patroni (and so PostgreSQL) through `runuser -u postgres` (we are root).
    pub as_postgres: bool,
}

/// The tools, or `None` with a printed notice; under CI a missing tool fails the test.
pub fn tools_or_skip(test: &str) -> Option<Tools> {
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
pub fn free_port() -> u16 {
    closed_port()
}

// ------------------------------------------------------------------------ HTTP and SQL

/// A short-timeout HTTP agent for the test's own polling (independent of the tool's client).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(2)))
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// `GET url` as JSON, `None` on any failure.
pub fn get_json(url: &str) -> Option<serde_json::Value> {
    let mut resp = agent().get(url).call().ok()?;
    if resp.status().as_u16() != 200 {
        return None;
    }
    serde_json::from_str(&resp.body_mut().read_to_string().ok()?).ok()
}

/// Runs one SQL statement and returns the first column of the first row as text.
pub async fn sql(port: u16, query: &str) -> Result<Option<String>, String> {
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
pub struct MemberDir {
    pub name: String,
    pub rest_port: u16,
    pub pg_port: u16,
    pub dir: PathBuf,
    pub proc: Option<Proc>,
}

impl MemberDir {
    pub fn config(&self) -> PathBuf {
        self.dir.join("patroni.yml")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("patroni.log")
    }
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }
    pub fn rest(&self) -> String {
        format!("http://127.0.0.1:{}", self.rest_port)
    }
}

/// etcd and three Patroni members in a temporary directory; everything is stopped on drop,
/// with the logs printed when the test failed.
pub struct PatroniCluster {
    pub tools: Tools,
    pub dir: tempfile::TempDir,
    pub etcd: Option<Proc>,
    pub etcd_port: u16,
    pub members: Vec<MemberDir>,
    /// Extra YAML under each member's `postgresql:` (indented by the caller).
    pub extra_postgresql: Vec<String>,
    /// Whether the DCS bootstrap enables pg_rewind.
    pub use_pg_rewind: bool,
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
    pub fn start(tools: Tools, names: &[&str]) -> PatroniCluster {
        Self::start_with(tools, names, false, |_| String::new())
    }

    /// Like [`start`] with `use_pg_rewind` and extra `postgresql:` YAML per member (given its
    /// directory), e.g. `bin_name: {pg_rewind: ...}`.
    pub fn start_with(
        tools: Tools,
        names: &[&str],
        use_pg_rewind: bool,
        extra: impl Fn(&Path) -> String,
    ) -> PatroniCluster {
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
            extra_postgresql: Vec::new(),
            use_pg_rewind,
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
            let extra_yaml = extra(&c.dir.path().join(name));
            c.extra_postgresql.push(extra_yaml);
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
    pub fn write_config(&self, i: usize, cut: bool) {
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
      use_pg_rewind: {rewind}
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
  use_pg_rewind: {rewind}
  remove_data_directory_on_rewind_failure: false
  remove_data_directory_on_diverged_timelines: false
  parameters:
    unix_socket_directories: '{dir}'
{extra}{tags}"#,
            name = m.name,
            rest = m.rest_port,
            etcd = self.etcd_port,
            pg = m.pg_port,
            data = m.data().display(),
            bin = self.tools.install.bindir.display(),
            dir = m.dir.display(),
            rewind = self.use_pg_rewind,
            extra = self.extra_postgresql[i],
        );
        std::fs::write(m.config(), yml).expect("write patroni.yml");
    }

    /// A command run as the `postgres` OS user when we are root.
    pub fn command(&self, program: &Path) -> Command {
        if self.tools.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    pub fn start_etcd(&mut self) {
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

    pub fn start_member(&mut self, i: usize) {
        let mut cmd = self.command(&self.tools.venv.join("bin/patroni"));
        cmd.arg(self.members[i].config());
        let p = Proc::spawn(&self.members[i].name, cmd, &self.members[i].log());
        self.members[i].proc = Some(p);
    }

    /// Polls `GET base+path` until `ok` holds, at most `secs` seconds.
    pub fn wait_json(
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

    pub fn member(&self, name: &str) -> &MemberDir {
        self.members
            .iter()
            .find(|m| m.name == name)
            .expect("member")
    }
}

/// The `members` array of a `/cluster` answer.
pub fn members(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v["members"].as_array().cloned().unwrap_or_default()
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
