//! Shared helpers for the integration tests: find PostgreSQL, run the real binary, read JSON.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use failover_verify::lsn::Lsn;
use failover_verify::sandbox::PgInstall;

/// The PostgreSQL installation, or `None` with a printed notice when the binaries are missing.
/// Under CI (`CI` set) a missing installation fails the test instead: CI installs it.
pub fn install_or_skip(test: &str) -> Option<PgInstall> {
    match PgInstall::find() {
        Ok(i) => Some(i),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: {test}: PostgreSQL server binaries not installed ({e})");
            None
        }
        Err(e) => panic!("{test}: CI must install PostgreSQL: {e}"),
    }
}

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

impl Run {
    /// stdout parsed as JSON (panics with the output when it is not JSON). A report (schema
    /// version 2) must also validate against the committed JSON Schema.
    pub fn json(&self) -> serde_json::Value {
        let v = serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        });
        validate_report(&v);
        v
    }
}

/// Checks a JSON report against `docs/report-v2.schema.json`; other JSON (the cluster report,
/// `checks list`) passes through unchecked.
pub fn validate_report(v: &serde_json::Value) {
    use std::sync::OnceLock;
    if v.get("schema_version") != Some(&serde_json::json!(2)) || v.get("verdict").is_none() {
        return;
    }
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/report-v2.schema.json");
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("the committed schema"))
                .expect("the schema is JSON");
        jsonschema::validator_for(&schema).expect("the schema compiles")
    });
    let errors: Vec<String> = validator
        .iter_errors(v)
        .map(|e| format!("{e} (at {})", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the report does not match docs/report-v2.schema.json:\n{}",
        errors.join("\n")
    );
}

/// Copies the regular files of a `pg_wal` directory into `to`, as a DBA's `cp pg_wal/*` would.
/// A running server removes files while they are listed (a recycled segment, `xlogtemp.N`): a
/// file gone by the time it is copied was not part of the WAL to read, and is skipped.
pub fn copy_wal_dir(from: &std::path::Path, to: &std::path::Path) {
    for e in std::fs::read_dir(from)
        .expect("pg_wal is readable")
        .flatten()
    {
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        match std::fs::copy(e.path(), to.join(e.file_name())) {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => panic!("copying {}: {err}", e.path().display()),
        }
    }
}

/// Runs the real `failover-verify` binary with `args`, bounded to two minutes.
pub async fn run_tool(args: &[&str]) -> Run {
    run_tool_env(args, &[]).await
}

/// Runs the binary with extra environment variables (and no inherited PG* variables).
pub async fn run_tool_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_failover-verify"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, _) in std::env::vars() {
        if k.starts_with("PG") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("failover-verify did not finish within 120 s")
        .expect("failover-verify could not be started");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The LSN in field `key` of a JSON object.
pub fn lsn_at(v: &serde_json::Value, key: &str) -> Lsn {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
        .parse()
        .unwrap()
}

#[path = "../port/mod.rs"]
mod port;

/// A loopback port with nothing listening on it (`port::unused`).
pub fn closed_port() -> u16 {
    port::unused()
}

// ------------------------------------------------------------------------ processes (HA manager tests)

/// A child process in its own process group, stopped (TERM, then KILL) on drop.
pub struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    /// Starts `cmd` in a new process group with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
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
    pub fn stop(&mut self, grace: Duration) {
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
pub fn stop_postmaster(data_dir: &Path) {
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
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
