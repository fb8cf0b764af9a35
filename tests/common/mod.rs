//! The connection tests' cluster (sessions, replication, TLS, pacing): a thin layer over the
//! library's sandbox (`failover_verify::sandbox`), which does the initdb, the configuration,
//! the free port, running as `postgres` and the clean-up. What it adds: a `pg_hba.conf` with the
//! test roles, a shared cluster per test binary, and synchronous helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use failover_verify::sandbox::{self, ClusterOptions, PgInstall};

/// Roles of the shared cluster: (name, password).
pub const SCRAM_USER: (&str, &str) = ("scram_user", "scram-Secret-pw1");
pub const REPL_USER: (&str, &str) = ("repl_user", "repl-Secret-pw2");
pub const NOREPL_USER: (&str, &str) = ("norepl_user", "norepl-Secret-pw3");
pub const MD5_USER: (&str, &str) = ("md5_user", "md5-Secret-pw4");

pub const DEFAULT_HBA: &str = "\
local all all trust
local replication all trust
host all postgres 127.0.0.1/32 trust
host replication postgres 127.0.0.1/32 trust
host all md5_user 127.0.0.1/32 md5
host replication md5_user 127.0.0.1/32 md5
host replication repl_user 127.0.0.1/32 scram-sha-256
host replication norepl_user 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
";

/// A running sandbox cluster; `dir` holds its Unix socket, `data` is its data directory.
pub struct Cluster {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub port: u16,
    install: PgInstall,
    inner: Mutex<Option<sandbox::Cluster>>,
}

#[path = "../port/mod.rs"]
mod port;

/// A loopback port that was free a moment ago (`port::unused`).
pub fn free_port() -> u16 {
    port::unused()
}

/// Runs `fut` on a runtime of its own in a thread of its own, so that synchronous code (and
/// code inside another runtime) can wait for it.
fn block_on<T: Send>(fut: impl std::future::Future<Output = T> + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(fut)
        })
        .join()
        .expect("helper thread")
    })
}

/// `key = value` lines of a postgresql.conf fragment, quotes removed (the sandbox quotes).
fn settings(conf: &str) -> Vec<(String, String)> {
    conf.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .filter(|(k, _)| !k.is_empty() && !k.starts_with('#'))
        .collect()
}

impl Cluster {
    /// A PostgreSQL 15 cluster with `extra_conf` in its configuration and `hba` as its
    /// pg_hba.conf. `prepare` writes files for the data directory (certificates, say) into the
    /// directory it is given; they are copied in, owned by `postgres` with mode 0600, before the
    /// server starts.
    pub fn start_with(extra_conf: &str, hba: &str, prepare: impl FnOnce(&Path)) -> Cluster {
        let staging = tempfile::tempdir().expect("staging dir");
        prepare(staging.path());
        let mut opts = ClusterOptions::new("fv-pg-test").hba(hba);
        for entry in std::fs::read_dir(staging.path()).expect("staging dir") {
            let path = entry.expect("staged file").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).expect("staged files are text (PEM)");
            opts = opts.file(&name, &text);
        }
        for (k, v) in settings(extra_conf) {
            opts = opts.setting(&k, &v);
        }
        let install = PgInstall::find().expect("PostgreSQL server binaries");
        let c = block_on(sandbox::Cluster::start_primary(&install, opts)).expect("start cluster");
        Cluster {
            dir: c.dir().to_path_buf(),
            data: c.data_dir().to_path_buf(),
            port: c.port(),
            install,
            inner: Mutex::new(Some(c)),
        }
    }

    /// A cluster with the default pg_hba.conf.
    pub fn start() -> Cluster {
        Self::start_with("", DEFAULT_HBA, |_| {})
    }

    /// One cluster shared by all tests of this binary, with the test roles created.
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        SHARED.get_or_init(|| {
            let c = Cluster::start();
            c.exec_blocking(&format!(
                "CREATE ROLE {} LOGIN PASSWORD '{}';
                 CREATE ROLE {} LOGIN REPLICATION PASSWORD '{}';
                 CREATE ROLE {} LOGIN PASSWORD '{}';
                 SET password_encryption = 'md5';
                 CREATE ROLE {} LOGIN REPLICATION PASSWORD '{}';
                 RESET password_encryption;",
                SCRAM_USER.0,
                SCRAM_USER.1,
                REPL_USER.0,
                REPL_USER.1,
                NOREPL_USER.0,
                NOREPL_USER.1,
                MD5_USER.0,
                MD5_USER.1
            ));
            extern "C" fn stop_shared() {
                if let Some(c) = SHARED.get() {
                    c.stop();
                }
            }
            // SAFETY: registering a plain extern "C" function with no captured state.
            unsafe {
                libc::atexit(stop_shared);
            }
            c
        })
    }

    /// conninfo for TCP on 127.0.0.1 with the given extra keys.
    pub fn tcp(&self, extra: &str) -> String {
        format!("host=127.0.0.1 port={} dbname=postgres {extra}", self.port)
    }

    fn socket_conninfo(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.display(),
            self.port
        )
    }

    /// Runs SQL as the superuser over the Unix socket (trust).
    pub async fn exec(&self, sql: &str) {
        let client = self.superuser().await;
        client.batch_execute(sql).await.expect("setup SQL");
    }

    /// Like `exec` but callable from sync code (and from inside a runtime).
    pub fn exec_blocking(&self, sql: &str) {
        block_on(self.exec(sql));
    }

    /// A superuser client over the Unix socket, for checks that need superuser.
    pub async fn superuser(&self) -> tokio_postgres::Client {
        let (client, conn) =
            tokio_postgres::connect(&self.socket_conninfo(), tokio_postgres::NoTls)
                .await
                .expect("superuser connect");
        tokio::spawn(conn);
        client
    }

    /// `pg_ctl -D data ARGS…` as the server's user.
    pub fn pg_ctl(&self, args: &[&str]) {
        let mut cmd = if nix::unistd::geteuid().is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.install.bin("pg_ctl"));
            c
        } else {
            std::process::Command::new(self.install.bin("pg_ctl"))
        };
        cmd.arg("-D")
            .arg(&self.data)
            .args(args)
            .current_dir(&self.dir);
        let out = cmd.output().expect("spawn pg_ctl");
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server and removes its directory (the sandbox's clean-up).
    pub fn stop(&self) {
        let taken = self.inner.lock().map(|mut g| g.take()).unwrap_or(None);
        drop(taken);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The uid and gid of the `postgres` account the servers run as.
pub fn postgres_ids() -> (u32, u32) {
    sandbox::server_ids()
        .ok()
        .flatten()
        .expect("the tests run as root, with a postgres account")
}

/// An environment for `ConnParams::parse` from fixed pairs (HOME points nowhere by default).
pub fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let mut m: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    m.entry("HOME".into())
        .or_insert_with(|| "/nonexistent-home-for-tests".into());
    move |k: &str| m.get(k).cloned()
}
