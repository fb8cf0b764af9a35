//! Minimal test-only PostgreSQL 15 cluster helper (to be replaced by `src/sandbox/`).
//!
//! Runs `initdb`/`pg_ctl` as the `postgres` OS user in a temp dir, on a free loopback port,
//! and stops the server with `pg_ctl stop -m immediate` on drop (or at process exit for the
//! shared cluster).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

pub const BIN: &str = "/usr/lib/postgresql/15/bin";

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

pub struct Cluster {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub port: u16,
    stopped: AtomicBool,
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn as_postgres(args: &[&str]) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).args(args);
    c
}

impl Cluster {
    /// initdb + start with `extra_conf` appended to postgresql.conf and `hba` as pg_hba.conf.
    /// `prepare` runs before start with the data dir path (e.g. to copy certificates).
    pub fn start_with(extra_conf: &str, hba: &str, prepare: impl FnOnce(&Path)) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("fv-pg-test-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let (uid, gid) = postgres_ids();
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown");
        let data = dir.join("data");
        run(as_postgres(&[
            &format!("{BIN}/initdb"),
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "--no-instructions",
        ])
        .current_dir(&dir));
        let port = free_port();
        let conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nwal_level = replica\nmax_wal_senders = 5\nfsync = off\nshared_buffers = 16MB\nmax_connections = 40\n{extra_conf}\n",
            dir.display()
        );
        append(&data.join("postgresql.conf"), &conf);
        std::fs::write(data.join("pg_hba.conf"), hba).expect("write hba");
        prepare(&data);
        run(as_postgres(&[
            &format!("{BIN}/pg_ctl"),
            "-D",
            data.to_str().unwrap(),
            "-l",
            dir.join("log").to_str().unwrap(),
            "-w",
            "-t",
            "60",
            "start",
        ])
        .current_dir(&dir));
        Cluster {
            dir,
            data,
            port,
            stopped: AtomicBool::new(false),
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

    /// Runs SQL as the superuser over the Unix socket (trust) via tokio-postgres.
    pub async fn exec(&self, sql: &str) {
        let (client, conn) = tokio_postgres::connect(
            &format!(
                "host={} port={} user=postgres dbname=postgres",
                self.dir.display(),
                self.port
            ),
            tokio_postgres::NoTls,
        )
        .await
        .expect("superuser connect");
        let task = tokio::spawn(conn);
        client.batch_execute(sql).await.expect("setup SQL");
        drop(client);
        let _ = task.await;
    }

    /// Like `exec` but callable from sync code (and from inside a runtime).
    pub fn exec_blocking(&self, sql: &str) {
        let sql = sql.to_string();
        let dir = self.dir.clone();
        let port = self.port;
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let (client, conn) = tokio_postgres::connect(
                    &format!(
                        "host={} port={port} user=postgres dbname=postgres",
                        dir.display()
                    ),
                    tokio_postgres::NoTls,
                )
                .await
                .expect("superuser connect");
                let task = tokio::spawn(conn);
                client.batch_execute(&sql).await.expect("setup SQL");
                drop(client);
                let _ = task.await;
            })
        })
        .join()
        .expect("setup thread");
    }

    /// A superuser client over the Unix socket, for checks that need superuser.
    pub async fn superuser(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(
            &format!(
                "host={} port={} user=postgres dbname=postgres",
                self.dir.display(),
                self.port
            ),
            tokio_postgres::NoTls,
        )
        .await
        .expect("superuser connect");
        tokio::spawn(conn);
        client
    }

    /// `pg_ctl` as postgres with the given arguments after `-D data`.
    pub fn pg_ctl(&self, args: &[&str]) {
        let mut all = vec![
            format!("{BIN}/pg_ctl"),
            "-D".into(),
            self.data.display().to_string(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        run(as_postgres(&refs).current_dir(&self.dir));
    }

    pub fn stop(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = as_postgres(&[
            &format!("{BIN}/pg_ctl"),
            "-D",
            self.data.to_str().unwrap_or_default(),
            "-w",
            "stop",
            "-m",
            "immediate",
        ])
        .current_dir(&self.dir)
        .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open conf");
    f.write_all(text.as_bytes()).expect("append conf");
}

pub fn postgres_ids() -> (u32, u32) {
    let out = Command::new("id")
        .args(["-u", "postgres"])
        .output()
        .expect("id");
    let uid = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("uid");
    let out = Command::new("id")
        .args(["-g", "postgres"])
        .output()
        .expect("id");
    let gid = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("gid");
    (uid, gid)
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
