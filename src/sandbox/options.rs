//! How a sandbox cluster is set up (ClusterOptions and its setters) and how it is stopped.

use std::time::Duration;

/// How `pg_ctl stop` shuts a server down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// Wait for clients to disconnect.
    Smart,
    /// Disconnect clients, write a shutdown checkpoint (a clean stop).
    Fast,
    /// Crash stop: no checkpoint; recovery runs at the next start.
    Immediate,
}

impl StopMode {
    pub(super) fn as_arg(self) -> &'static str {
        match self {
            StopMode::Smart => "smart",
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// How a new cluster is set up; build with [`ClusterOptions::new`] and the chained setters.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Name used in errors, the directory prefix and as a standby's `application_name`.
    pub name: String,
    /// WAL segment size in MB (initdb `--wal-segsize`); `None` keeps the default 16 MB.
    pub wal_segsize_mb: Option<u32>,
    /// `wal_level` (default `replica`).
    pub wal_level: String,
    /// Extra `postgresql.conf` settings, written after the sandbox's own.
    pub settings: Vec<(String, String)>,
    /// initdb `--data-checksums`.
    pub data_checksums: bool,
    /// `track_commit_timestamp`.
    pub track_commit_timestamp: bool,
    /// When set, TCP connections use SCRAM with this password for the `postgres` superuser.
    pub password: Option<String>,
    /// For standbys: make it the primary's synchronous standby.
    pub synchronous: bool,
    /// For standbys: copy the stopped primary's directory even when `pg_basebackup` exists.
    pub force_cold_copy: bool,
    /// Upper bound of every wait and command of this cluster (default 60 s).
    pub timeout: Duration,
    /// The whole `pg_hba.conf`, instead of the sandbox's (trust, or SCRAM with a password).
    pub hba: Option<String>,
    /// Files written into the data directory before the first start (name, content), owned
    /// by the server's user with mode 0600: server certificates and keys, for example.
    pub files: Vec<(String, String)>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions::new("pg")
    }
}

impl ClusterOptions {
    /// Defaults for a cluster called `name`.
    pub fn new(name: &str) -> Self {
        ClusterOptions {
            name: sanitize_name(name),
            wal_segsize_mb: None,
            wal_level: "replica".to_string(),
            settings: Vec::new(),
            data_checksums: false,
            track_commit_timestamp: false,
            password: None,
            synchronous: false,
            force_cold_copy: false,
            hba: None,
            files: Vec::new(),
            timeout: Duration::from_secs(60),
        }
    }

    /// Sets the name (letters, digits, `_` and `-` are kept; others become `_`).
    pub fn name(mut self, name: &str) -> Self {
        self.name = sanitize_name(name);
        self
    }

    /// Sets the WAL segment size in MB (a power of two from 1 to 1024).
    pub fn wal_segsize_mb(mut self, mb: u32) -> Self {
        self.wal_segsize_mb = Some(mb);
        self
    }

    /// Sets `wal_level` (`replica` or `logical`).
    pub fn wal_level(mut self, level: &str) -> Self {
        self.wal_level = level.to_string();
        self
    }

    /// Adds a `postgresql.conf` setting (the value is quoted for you).
    pub fn setting(mut self, key: &str, value: &str) -> Self {
        self.settings.push((key.to_string(), value.to_string()));
        self
    }

    /// Turns data checksums on or off (needed by `pg_rewind` unless `wal_log_hints`).
    pub fn data_checksums(mut self, on: bool) -> Self {
        self.data_checksums = on;
        self
    }

    /// Turns `track_commit_timestamp` on or off.
    pub fn track_commit_timestamp(mut self, on: bool) -> Self {
        self.track_commit_timestamp = on;
        self
    }

    /// Requires SCRAM password authentication over TCP with this superuser password.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_string());
        self
    }

    /// For standbys: become the primary's synchronous standby.
    pub fn synchronous(mut self, on: bool) -> Self {
        self.synchronous = on;
        self
    }

    /// For standbys: use the cold-copy path even when `pg_basebackup` is installed.
    pub fn force_cold_copy(mut self, on: bool) -> Self {
        self.force_cold_copy = on;
        self
    }

    /// Replaces the sandbox's `pg_hba.conf` with `text`.
    pub fn hba(mut self, text: &str) -> Self {
        self.hba = Some(text.to_string());
        self
    }

    /// Writes `name` (relative to the data directory) with `content` before the first start.
    pub fn file(mut self, name: &str, content: &str) -> Self {
        self.files.push((name.to_string(), content.to_string()));
        self
    }

    /// Sets the upper bound of every wait and command.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

fn sanitize_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "pg".to_string()
    } else {
        s
    }
}
