//! One throwaway PostgreSQL server: its directory, configuration, life cycle, standbys,
//! promotion and isolation (its SQL sessions are in sql.rs).

mod sql;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::{Result, SandboxError};
use super::install::PgInstall;
pub use super::options::{ClusterOptions, StopMode};
use super::process::{self, tail_lines, PgCommand, ServerUser};

/// Environment variable naming the parent directory of cluster directories (default: the
/// system temp dir).
pub const SANDBOX_DIR_ENV: &str = "FV_SANDBOX_DIR";

/// The superuser every sandbox cluster is created with.
pub const SUPERUSER: &str = "postgres";

/// The file (inside the data directory) holding the settings the sandbox manages.
const SANDBOX_CONF: &str = "fv_sandbox.conf";

/// Settings that describe a node's upstream; dropped from a copied `postgresql.auto.conf`.
pub(super) const RECOVERY_KEYS: [&str; 6] = [
    "primary_conninfo",
    "primary_slot_name",
    "restore_command",
    "recovery_target_timeline",
    "synchronous_standby_names",
    "synchronous_commit",
];

/// A throwaway PostgreSQL server on a free loopback port, in its own temporary directory.
///
/// Dropping it stops the server (`pg_ctl stop -m immediate`) and deletes the directory,
/// unless [`Cluster::keep`] was called.
#[derive(Debug)]
pub struct Cluster {
    pub(super) install: PgInstall,
    pub(super) opts: ClusterOptions,
    pub(super) dir: PathBuf,
    pub(super) data_dir: PathBuf,
    pub(super) log_file: PathBuf,
    pub(super) port: u16,
    pub(super) user: Option<ServerUser>,
    pub(super) kept: bool,
}

/// Polls until a deadline, then fails with a [`SandboxError::Timeout`].
pub(super) struct Waiter {
    cluster: String,
    log_file: PathBuf,
    what: String,
    start: Instant,
    timeout: Duration,
}

impl Waiter {
    pub(super) async fn tick(&self, last: &str) -> Result<()> {
        if self.start.elapsed() >= self.timeout {
            return Err(SandboxError::Timeout {
                cluster: self.cluster.clone(),
                what: self.what.clone(),
                waited: self.timeout,
                last: format!(
                    "{last}\n--- tail of {} ---\n{}",
                    self.log_file.display(),
                    std::fs::read_to_string(&self.log_file)
                        .map(|t| tail_lines(&t, 15))
                        .unwrap_or_default()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(())
    }
}

fn pick_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| SandboxError::io("sandbox", "bind 127.0.0.1:0 to pick a port", e))?;
    let port = l
        .local_addr()
        .map_err(|e| SandboxError::io("sandbox", "local_addr", e))?
        .port();
    Ok(port)
}

pub(super) fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

fn is_port_conflict(err: &SandboxError) -> bool {
    match err {
        SandboxError::StartFailed { log_tail, .. } => {
            log_tail.contains("could not bind")
                || log_tail.contains("Address already in use")
                || log_tail.contains("could not create any TCP/IP sockets")
        }
        _ => false,
    }
}

impl Cluster {
    /// Creates the directory of a new, not yet initialised cluster (cleaned up on drop).
    pub(super) fn allocate(install: &PgInstall, opts: ClusterOptions) -> Result<Cluster> {
        let user = process::server_user()?;
        let base = std::env::var_os(SANDBOX_DIR_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix(&format!("fv-{}-", opts.name))
            .tempdir_in(&base)
            .map_err(|e| {
                SandboxError::io(
                    &opts.name,
                    format!("create a temp dir in {}", base.display()),
                    e,
                )
            })?
            .keep();
        let c = Cluster {
            install: install.clone(),
            data_dir: dir.join("data"),
            log_file: dir.join("server.log"),
            dir,
            port: pick_port()?,
            user,
            kept: false,
            opts,
        };
        process::chown_to(&c.dir, c.user, &c.opts.name)?;
        Ok(c)
    }

    /// Runs initdb and starts a new primary on a free port.
    pub async fn start_primary(install: &PgInstall, opts: ClusterOptions) -> Result<Cluster> {
        let mut c = Cluster::allocate(install, opts)?;
        c.initdb().await?;
        c.write_hba()?;
        c.write_sandbox_conf()?;
        for (name, content) in &c.opts.files {
            process::write_server_file(&c.data_dir.join(name), content, c.user, c.name())?;
        }
        c.start_on_free_port().await?;
        Ok(c)
    }

    pub(super) async fn initdb(&self) -> Result<()> {
        let mut cmd = self
            .cmd("initdb")
            .arg("-D")
            .arg(&self.data_dir)
            .args([
                "-U",
                SUPERUSER,
                "--encoding=UTF8",
                "--locale=C",
                "-A",
                "trust",
            ])
            .arg("--no-sync");
        if let Some(mb) = self.opts.wal_segsize_mb {
            cmd = cmd.arg(format!("--wal-segsize={mb}"));
        }
        if self.opts.data_checksums {
            cmd = cmd.arg("--data-checksums");
        }
        if let Some(pw) = &self.opts.password {
            let pwfile = self.dir.join("pwfile");
            process::write_server_file(&pwfile, pw, self.user, self.name())?;
            cmd = cmd.arg(format!("--pwfile={}", pwfile.display()));
        }
        let r = cmd.run(self.name(), self.opts.timeout).await;
        let _ = std::fs::remove_file(self.dir.join("pwfile"));
        r.map(|_| ())
    }

    pub(super) fn write_hba(&self) -> Result<()> {
        if let Some(hba) = &self.opts.hba {
            return process::write_server_file(
                &self.data_dir.join("pg_hba.conf"),
                hba,
                self.user,
                self.name(),
            );
        }
        let method = if self.opts.password.is_some() {
            "scram-sha-256"
        } else {
            "trust"
        };
        let hba = format!(
            "# written by the failover-verify sandbox\n\
             local all all trust\n\
             local replication all trust\n\
             host all all 127.0.0.1/32 {method}\n\
             host replication all 127.0.0.1/32 {method}\n"
        );
        process::write_server_file(
            &self.data_dir.join("pg_hba.conf"),
            &hba,
            self.user,
            self.name(),
        )
    }

    /// (Re)writes `fv_sandbox.conf` (port, socket dir, WAL settings) and includes it once.
    pub(super) fn write_sandbox_conf(&self) -> Result<()> {
        let o = &self.opts;
        let mut s = String::from("# managed by the failover-verify sandbox; rewritten on copy\n");
        let mut set = |k: &str, v: &str| s.push_str(&format!("{k} = {}\n", quote(v)));
        set("listen_addresses", "127.0.0.1");
        set("port", &self.port.to_string());
        set("unix_socket_directories", &self.dir.display().to_string());
        set("wal_level", &o.wal_level);
        set("max_wal_senders", "10");
        set("max_replication_slots", "10");
        if self.install.version_major >= 13 {
            set("wal_keep_size", "4GB");
        } else {
            set("wal_keep_segments", "256");
        }
        set("hot_standby", "on");
        set("fsync", "off");
        set("full_page_writes", "on");
        set("wal_log_hints", "on");
        set("max_connections", "40");
        set("shared_buffers", "32MB");
        set("log_line_prefix", "%m [%p] %q%a ");
        set(
            "track_commit_timestamp",
            if o.track_commit_timestamp {
                "on"
            } else {
                "off"
            },
        );
        if o.password.is_some() {
            set("password_encryption", "scram-sha-256");
        }
        for (k, v) in &o.settings {
            set(k, v);
        }
        process::write_server_file(
            &self.data_dir.join(SANDBOX_CONF),
            &s,
            self.user,
            self.name(),
        )?;
        let main = self.data_dir.join("postgresql.conf");
        let text = std::fs::read_to_string(&main)
            .map_err(|e| SandboxError::io(self.name(), format!("read {}", main.display()), e))?;
        let include = format!("include '{SANDBOX_CONF}'");
        if !text.lines().any(|l| l.trim() == include) {
            let text = format!("{text}\n{include}\n");
            process::write_server_file(&main, &text, self.user, self.name())?;
        }
        Ok(())
    }

    pub(super) fn cmd(&self, program: &str) -> PgCommand {
        PgCommand::new(&self.install, self.install.bin(program), self.user).current_dir(&self.dir)
    }

    /// Starts the server, picking another port when the chosen one was taken meanwhile.
    pub(super) async fn start_on_free_port(&mut self) -> Result<()> {
        let mut attempt = 0;
        loop {
            match self.start().await {
                Err(e) if attempt < 5 && is_port_conflict(&e) => {
                    attempt += 1;
                    self.port = pick_port()?;
                    self.write_sandbox_conf()?;
                }
                r => return r,
            }
        }
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub async fn start(&self) -> Result<()> {
        let offset = std::fs::metadata(&self.log_file)
            .map(|m| m.len())
            .unwrap_or(0);
        let secs = self.opts.timeout.as_secs().max(1);
        let cmd = self
            .cmd("pg_ctl")
            .arg("start")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_file)
            .args(["-w", "-s", "-t", &secs.to_string()]);
        match cmd
            .run(self.name(), self.opts.timeout + Duration::from_secs(5))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(SandboxError::StartFailed {
                cluster: self.name().to_string(),
                command: cmd.display(),
                detail: e.to_string(),
                log: self.log_file.clone(),
                log_tail: self.log_since(offset, 30),
            }),
        }
    }

    /// Stops the server (a no-op when it is not running).
    pub async fn stop(&self, mode: StopMode) -> Result<()> {
        if !self.data_dir.join("postmaster.pid").exists() {
            return Ok(());
        }
        let secs = self.opts.timeout.as_secs().max(1);
        self.cmd("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", mode.as_arg(), "-w", "-s", "-t", &secs.to_string()])
            .run(self.name(), self.opts.timeout + Duration::from_secs(5))
            .await
            .map(|_| ())
    }

    /// Stops the server cleanly (fast) and starts it again.
    pub async fn restart(&self) -> Result<()> {
        self.stop(StopMode::Fast).await?;
        self.start().await
    }

    /// Whether `pg_ctl status` sees a running server.
    pub async fn is_running(&self) -> Result<bool> {
        let out = self
            .cmd("pg_ctl")
            .arg("status")
            .arg("-D")
            .arg(&self.data_dir)
            .run_status(self.name(), self.opts.timeout)
            .await?;
        Ok(out.status.success())
    }

    /// Leaves the server running and its directory in place when this value is dropped.
    pub fn keep(&mut self) {
        self.kept = true;
    }

    /// Whether [`Cluster::keep`] was called.
    pub fn is_kept(&self) -> bool {
        self.kept
    }

    /// `host=127.0.0.1 port=N user=postgres dbname=postgres` (plus `password=` with SCRAM).
    pub fn conninfo(&self) -> String {
        self.conninfo_db("postgres")
    }

    /// Like [`Cluster::conninfo`] for database `dbname`.
    pub fn conninfo_db(&self, dbname: &str) -> String {
        // Quoted when needed: a database name may hold spaces, quotes or `=`.
        let plain = !dbname.is_empty()
            && dbname
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        let db = if plain {
            dbname.to_string()
        } else {
            crate::quote::conninfo_value(dbname)
        };
        let mut s = format!(
            "host=127.0.0.1 port={} user={SUPERUSER} dbname={db}",
            self.port
        );
        if let Some(pw) = &self.opts.password {
            s.push_str(&format!(" password={}", crate::quote::conninfo_value(pw)));
        }
        s
    }

    /// `postgres://postgres@127.0.0.1:N/postgres` (with the password when set).
    pub fn url(&self) -> String {
        let auth = match &self.opts.password {
            Some(pw) => format!(
                "{SUPERUSER}:{}",
                percent_encoding::utf8_percent_encode(pw, percent_encoding::NON_ALPHANUMERIC)
            ),
            None => SUPERUSER.to_string(),
        };
        format!("postgres://{auth}@127.0.0.1:{}/postgres", self.port)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory (`PGDATA`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The cluster's own directory: data dir, server log and Unix socket.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server log file.
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.opts.name
    }

    /// The installation it runs from.
    pub fn install(&self) -> &PgInstall {
        &self.install
    }

    /// The options it was created with.
    pub fn options(&self) -> &ClusterOptions {
        &self.opts
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.log_since(0, lines)
    }

    pub(super) fn log_since(&self, offset: u64, lines: usize) -> String {
        match std::fs::read(&self.log_file) {
            Ok(bytes) => {
                let start = (offset as usize).min(bytes.len());
                tail_lines(&String::from_utf8_lossy(&bytes[start..]), lines)
            }
            Err(e) => format!("(cannot read {}: {e})", self.log_file.display()),
        }
    }

    pub(super) fn waiter(&self, what: impl Into<String>) -> Waiter {
        Waiter {
            cluster: self.name().to_string(),
            log_file: self.log_file.clone(),
            what: what.into(),
            start: Instant::now(),
            timeout: self.opts.timeout,
        }
    }

    // ---------------------------------------------------------------- SQL
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let pidfile = self.data_dir.join("postmaster.pid");
        if pidfile.exists() {
            let cmd = self
                .cmd("pg_ctl")
                .arg("stop")
                .arg("-D")
                .arg(&self.data_dir)
                .args(["-m", "immediate", "-w", "-s", "-t", "10"]);
            cmd.run_blocking(Duration::from_secs(15));
            if let Ok(text) = std::fs::read_to_string(&pidfile) {
                let pid = text
                    .lines()
                    .next()
                    .and_then(|l| l.trim().parse::<i32>().ok());
                // Only a process that is still this data directory's postmaster.
                let comm =
                    pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok());
                if let (Some(pid), Some(comm)) = (pid, comm) {
                    if comm.trim() == "postgres" || comm.trim() == "postmaster" {
                        // SAFETY: kill has no memory-safety preconditions.
                        unsafe {
                            libc::kill(pid, libc::SIGKILL);
                        }
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_quotes() {
        assert_eq!(ClusterOptions::new("a b/c").name, "a_b_c");
        assert_eq!(quote("it's"), "'it''s'");
    }
}
