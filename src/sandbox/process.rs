//! Running PostgreSQL's programs, as the `postgres` OS user when this process is root.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use super::error::{Result, SandboxError};
use super::install::PgInstall;

/// The OS account that owns and runs the servers, when this process is root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ServerUser {
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
}

/// `Some(postgres user)` when this process runs as root (PostgreSQL refuses root), else `None`.
pub(crate) fn server_user() -> Result<Option<ServerUser>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    lookup_user("postgres").map(Some)
}

fn lookup_user(name: &str) -> Result<ServerUser> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(ServerUser {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }),
        _ => Err(SandboxError::NoPostgresUser),
    }
}

/// The uid and gid of the account the servers run as (`postgres`) when this process is root,
/// for callers that hand it files of their own; `None` when not root.
pub fn server_ids() -> Result<Option<(u32, u32)>> {
    Ok(server_user()?.map(|u| (u.uid, u.gid)))
}

/// Hands `path` to the server user (when root); a no-op otherwise.
pub(crate) fn chown_to(path: &Path, user: Option<ServerUser>, cluster: &str) -> Result<()> {
    if let Some(u) = user {
        std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid))
            .map_err(|e| SandboxError::io(cluster, format!("chown {}", path.display()), e))?;
    }
    Ok(())
}

/// Writes a file with mode 0600 owned by the server user (so the server can read and replace it).
pub(crate) fn write_server_file(
    path: &Path,
    contents: &str,
    user: Option<ServerUser>,
    cluster: &str,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents)
        .map_err(|e| SandboxError::io(cluster, format!("write {}", path.display()), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| SandboxError::io(cluster, format!("chmod {}", path.display()), e))?;
    chown_to(path, user, cluster)
}

/// A command line to run as the server user, with the installation's library path.
pub(crate) struct PgCommand {
    argv: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    user: Option<ServerUser>,
    cwd: Option<OsString>,
}

impl PgCommand {
    /// `program` (a path) run as `user` (through `runuser -u postgres --` when `Some`).
    pub(crate) fn new(
        install: &PgInstall,
        program: impl AsRef<OsStr>,
        user: Option<ServerUser>,
    ) -> Self {
        let mut envs = Vec::new();
        if let Some(lib) = install.lib_dir() {
            let mut v = lib.as_os_str().to_os_string();
            if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
                if !old.is_empty() {
                    v.push(":");
                    v.push(old);
                }
            }
            envs.push((OsString::from("LD_LIBRARY_PATH"), v));
        }
        PgCommand {
            argv: vec![program.as_ref().to_os_string()],
            envs,
            user,
            cwd: None,
        }
    }

    /// Sets an environment variable for the program.
    pub(crate) fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((OsString::from(key), value.as_ref().to_os_string()));
        self
    }

    /// Appends one argument.
    pub(crate) fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.argv.push(a.as_ref().to_os_string());
        self
    }

    /// Appends arguments.
    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self.argv.push(a.as_ref().to_os_string());
        }
        self
    }

    /// Runs in directory `dir` (the server user must be able to enter it).
    pub(crate) fn current_dir(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.as_os_str().to_os_string());
        self
    }

    /// The command line as text, for error messages.
    pub(crate) fn display(&self) -> String {
        let mut s = String::new();
        if self.user.is_some() {
            s.push_str("runuser -u postgres -- ");
        }
        let parts: Vec<String> = self
            .argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        s.push_str(&parts.join(" "));
        s
    }

    fn build_std(&self) -> std::process::Command {
        let mut cmd = if self.user.is_some() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]);
            c.args(&self.argv);
            c
        } else {
            let mut c = std::process::Command::new(&self.argv[0]);
            c.args(&self.argv[1..]);
            c
        };
        for k in [
            "PGDATA",
            "PGHOST",
            "PGHOSTADDR",
            "PGPORT",
            "PGUSER",
            "PGPASSWORD",
            "PGDATABASE",
            "PGSERVICE",
            "PGOPTIONS",
            "PGAPPNAME",
            "PGSSLMODE",
        ] {
            cmd.env_remove(k);
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd.env("LC_ALL", "C");
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs it to completion within `timeout`; a non-zero exit is an error naming `cluster`.
    pub(crate) async fn run(&self, cluster: &str, timeout: Duration) -> Result<Output> {
        let out = self.run_status(cluster, timeout).await?;
        if !out.status.success() {
            return Err(SandboxError::Command {
                cluster: cluster.to_string(),
                command: self.display(),
                status: out.status.to_string(),
                output: output_tail(&out),
            });
        }
        Ok(out)
    }

    /// Runs it to completion within `timeout` and returns its output whatever the exit status.
    pub(crate) async fn run_status(&self, cluster: &str, timeout: Duration) -> Result<Output> {
        let mut cmd = tokio::process::Command::from(self.build_std());
        // Its own process group, so that dropping this future (Ctrl-C, a timeout) kills the
        // whole command: `runuser` does not pass SIGKILL on to the program it runs, and an
        // orphaned pg_basebackup would keep writing into a directory being removed.
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| SandboxError::io(cluster, format!("spawn `{}`", self.display()), e))?;
        let mut group = GroupGuard(child.id());
        let result = tokio::time::timeout(timeout, child.wait_with_output()).await;
        if matches!(result, Ok(Ok(_))) {
            group.0 = None; // finished by itself: leave what it started (a postmaster) alone
        }
        match result {
            Ok(r) => r.map_err(|e| {
                SandboxError::io(cluster, format!("wait for `{}`", self.display()), e)
            }),
            Err(_) => Err(SandboxError::Timeout {
                cluster: cluster.to_string(),
                what: format!("`{}` to finish", self.display()),
                waited: timeout,
                last: "still running (killed)".to_string(),
            }),
        }
    }

    /// Runs it synchronously (for `Drop`), killing it after `timeout`; returns whether it succeeded.
    pub(crate) fn run_blocking(&self, timeout: Duration) -> bool {
        let mut cmd = self.build_std();
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let Ok(mut child) = cmd.spawn() else {
            return false;
        };
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(st)) => return st.success(),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }
}

/// Kills a command's whole process group when dropped before the command finished.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) on a process group this process created; no memory is touched.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// The last lines of a command's stdout and stderr, for error messages.
pub(crate) fn output_tail(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.trim().is_empty() {
        if !s.trim().is_empty() {
            s.push('\n');
        }
        s.push_str(&err);
    }
    tail_lines(&s, 20)
}

/// The last `n` lines of `s`.
pub(crate) fn tail_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}
