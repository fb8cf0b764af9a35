//! Standbys of a sandbox cluster: creating one, waiting for it, cutting its WAL delivery off,
//! promoting it, following a new primary, isolating a former primary, rewinding it.

use std::time::Duration;

use super::cluster::{quote, Cluster, ClusterOptions, StopMode, RECOVERY_KEYS, SUPERUSER};
use super::error::{Result, SandboxError};
use super::process::{self, PgCommand};
use crate::lsn::{Lsn, TimelineId};

impl Cluster {
    /// A streaming standby of this primary, by `pg_basebackup -R -X stream` when installed,
    /// otherwise by a cold copy (this primary is stopped cleanly, copied, and restarted).
    /// Returns once the standby is streaming.
    pub async fn create_standby(&self, opts: ClusterOptions) -> Result<Cluster> {
        if self.install.version_major < 12 {
            return Err(SandboxError::Unsupported {
                cluster: self.name().to_string(),
                what: format!(
                    "standbys need PostgreSQL 12+ (standby.signal); this is {}",
                    self.install.version_string
                ),
            });
        }
        let mut opts = opts;
        // The copy has this primary's initdb-time settings; keep the password so the copy's
        // conninfo matches its real authentication.
        if opts.password.is_none() {
            opts.password = self.opts.password.clone();
        }
        let mut sb = Cluster::allocate(&self.install, opts)?;
        if self.install.has("pg_basebackup") && !sb.opts.force_cold_copy {
            let mut cmd = sb
                .cmd("pg_basebackup")
                .arg("-D")
                .arg(&sb.data_dir)
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    SUPERUSER,
                ])
                .args(["-X", "stream", "-c", "fast", "-R", "--no-sync"]);
            if let Some(pw) = &self.opts.password {
                cmd = cmd.env("PGPASSWORD", pw);
            }
            cmd.run(sb.name(), sb.opts.timeout * 2).await?;
        } else {
            self.execute("CHECKPOINT").await?;
            self.stop(StopMode::Fast).await?;
            let copied = PgCommand::new(&sb.install, "cp", sb.user)
                .current_dir(&sb.dir)
                .arg("-a")
                .arg(&self.data_dir)
                .arg(&sb.data_dir)
                .run(sb.name(), sb.opts.timeout * 2)
                .await;
            self.start().await?;
            copied?;
        }
        for f in ["postmaster.pid", "postmaster.opts"] {
            let _ = std::fs::remove_file(sb.data_dir.join(f));
        }
        sb.write_sandbox_conf()?;
        sb.configure_recovery(Some(self))?;
        sb.start_on_free_port().await?;
        sb.wait_streaming().await?;
        if sb.opts.synchronous {
            self.execute(&format!(
                "ALTER SYSTEM SET synchronous_standby_names = '\"{}\"'",
                sb.name()
            ))
            .await?;
            self.execute("SELECT pg_reload_conf()").await?;
            let sql = format!(
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = '{}'",
                sb.name()
            );
            let w = self.waiter(format!("standby {} to become synchronous", sb.name()));
            loop {
                let last = match self.query_opt_string(&sql).await {
                    Ok(Some(s)) if s == "sync" => break,
                    Ok(s) => format!("sync_state {s:?}"),
                    Err(e) => e.to_string(),
                };
                w.tick(&last).await?;
            }
        }
        Ok(sb)
    }

    /// Rewrites `postgresql.auto.conf` and `standby.signal` so this node starts as a standby of
    /// `upstream` (or of nobody, with `None`).
    fn configure_recovery(&self, upstream: Option<&Cluster>) -> Result<()> {
        let auto = self.data_dir.join("postgresql.auto.conf");
        let old = std::fs::read_to_string(&auto).unwrap_or_default();
        let mut text: String = old
            .lines()
            .filter(|l| {
                let key = l.split('=').next().unwrap_or("").trim();
                !RECOVERY_KEYS.contains(&key)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let conninfo = match upstream {
            Some(p) => {
                let mut s = format!(
                    "host=127.0.0.1 port={} user={SUPERUSER} application_name={}",
                    p.port,
                    self.name()
                );
                if let Some(pw) = &p.opts.password {
                    s.push_str(&format!(" password={}", crate::quote::conninfo_value(pw)));
                }
                s
            }
            None => String::new(),
        };
        text.push_str(&format!("primary_conninfo = {}\n", quote(&conninfo)));
        text.push_str("restore_command = ''\n");
        text.push_str("recovery_target_timeline = 'latest'\n");
        process::write_server_file(&auto, &text, self.user, self.name())?;
        process::write_server_file(
            &self.data_dir.join("standby.signal"),
            "",
            self.user,
            self.name(),
        )
    }

    /// Waits until `pg_stat_wal_receiver` on this standby reports `streaming`.
    pub async fn wait_streaming(&self) -> Result<()> {
        let w = self.waiter("the WAL receiver to be streaming");
        loop {
            let last = match self
                .query_opt_string("SELECT status FROM pg_stat_wal_receiver")
                .await
            {
                Ok(Some(s)) if s == "streaming" => return Ok(()),
                Ok(s) => format!("status {s:?}"),
                Err(e) => e.to_string(),
            };
            w.tick(&last).await?;
        }
    }

    /// Waits until this standby has replayed everything `primary` has written so far.
    pub async fn wait_caught_up(&self, primary: &Cluster) -> Result<Lsn> {
        let target = primary.current_wal_lsn().await?;
        let w = self.waiter(format!("replay to reach {target} of {}", primary.name()));
        loop {
            let last = match self.replay_lsn().await {
                Ok(Some(l)) if l >= target => return Ok(l),
                Ok(l) => format!("replay lsn {l:?}"),
                Err(e) => e.to_string(),
            };
            w.tick(&last).await?;
        }
    }

    /// Waits until this standby has received WAL beyond `lsn` and replayed all it received;
    /// returns the replay LSN (used after the primary was stopped cleanly).
    pub async fn wait_replayed_beyond(&self, lsn: Lsn) -> Result<Lsn> {
        let w = self.waiter(format!("WAL beyond {lsn} to be received and replayed"));
        loop {
            let last = match (self.receive_lsn().await, self.replay_lsn().await) {
                (Ok(Some(recv)), Ok(Some(replay))) if recv > lsn && replay >= recv => {
                    return Ok(replay)
                }
                (Ok(recv), Ok(replay)) => format!("receive {recv:?}, replay {replay:?}"),
                (Err(e), _) | (_, Err(e)) => e.to_string(),
            };
            w.tick(&last).await?;
        }
    }

    /// Stops WAL delivery to this standby: clears `primary_conninfo` (ALTER SYSTEM + reload,
    /// a restart before PG13) and waits until `pg_stat_wal_receiver` is empty. WAL already
    /// received is still replayed, and will be applied by a promotion.
    pub async fn cut_off(&self) -> Result<()> {
        self.execute("ALTER SYSTEM SET primary_conninfo = ''")
            .await?;
        if self.install.version_major < 13 {
            self.restart().await?;
        } else {
            self.execute("SELECT pg_reload_conf()").await?;
        }
        let w = self.waiter("the WAL receiver to stop after cut-off");
        loop {
            let last = match self
                .query_scalar::<i64>("SELECT count(*) FROM pg_stat_wal_receiver")
                .await
            {
                Ok(0) => return Ok(()),
                Ok(n) => format!("{n} WAL receiver(s)"),
                Err(e) => e.to_string(),
            };
            w.tick(&last).await?;
        }
    }

    /// Promotes this standby (`pg_promote(true, timeout)`), waits until it is out of recovery
    /// and its new timeline's `.history` file exists, and returns the new timeline.
    pub async fn promote(&self) -> Result<TimelineId> {
        let secs = self.opts.timeout.as_secs().max(1);
        let ok = self
            .query_scalar::<bool>(&format!("SELECT pg_promote(true, {secs})"))
            .await?;
        if !ok {
            return Err(SandboxError::Timeout {
                cluster: self.name().to_string(),
                what: "pg_promote to finish".to_string(),
                waited: self.opts.timeout,
                last: format!("pg_promote returned false\n{}", self.log_tail(20)),
            });
        }
        let w = self.waiter("promotion to finish (out of recovery, history file written)");
        loop {
            let last = match self.is_in_recovery().await {
                Ok(true) => "still in recovery".to_string(),
                Ok(false) => {
                    let tli = self.timeline().await?;
                    let p = self.data_dir.join("pg_wal").join(tli.history_file_name());
                    if p.exists() {
                        return Ok(tli);
                    }
                    format!("{} not there yet", p.display())
                }
                Err(e) => e.to_string(),
            };
            w.tick(&last).await?;
        }
    }

    /// Makes this node a streaming standby of `new_primary` (standby.signal, primary_conninfo,
    /// `recovery_target_timeline='latest'`, restart) and waits until it streams.
    pub async fn follow(&self, new_primary: &Cluster) -> Result<()> {
        self.stop(StopMode::Fast).await?;
        self.configure_recovery(Some(new_primary))?;
        self.start().await?;
        self.wait_streaming().await
    }

    /// Restarts this node as a standby with no upstream (`primary_conninfo=''`,
    /// `restore_command=''`): it replays its own WAL to the end and writes nothing. Returns
    /// `pg_last_wal_replay_lsn()` once it is in recovery and replay has stopped moving.
    pub async fn isolate_as_standby(&self) -> Result<Lsn> {
        self.stop(StopMode::Fast).await?;
        self.configure_recovery(None)?;
        self.start().await?;
        let w = self.waiter("the isolated node to finish replaying its own WAL");
        let mut prev: Option<Lsn> = None;
        loop {
            let last = match (self.is_in_recovery().await, self.replay_lsn().await) {
                (Ok(true), Ok(Some(l))) => {
                    if prev == Some(l) {
                        return Ok(l);
                    }
                    prev = Some(l);
                    format!("replay lsn {l}")
                }
                (Ok(r), Ok(l)) => format!("in recovery {r}, replay lsn {l:?}"),
                (Err(e), _) | (_, Err(e)) => e.to_string(),
            };
            w.tick(&last).await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Rewinds this (former primary) onto `new_primary` with `pg_rewind`, then follows it.
    /// Destroys the divergent WAL evidence, as Patroni's `use_pg_rewind` does. Returns the tail
    /// of pg_rewind's output.
    pub async fn rewind_onto(&self, new_primary: &Cluster) -> Result<String> {
        if !self.install.has("pg_rewind") {
            return Err(SandboxError::Unsupported {
                cluster: self.name().to_string(),
                what: format!(
                    "pg_rewind is not installed in {}",
                    self.install.bindir.display()
                ),
            });
        }
        // pg_rewind reads the source's timeline from its control file, which a fresh
        // promotion updates only at the next checkpoint.
        new_primary.execute("CHECKPOINT").await?;
        self.stop(StopMode::Fast).await?;
        let mut cmd = self
            .cmd("pg_rewind")
            .arg(format!("--target-pgdata={}", self.data_dir.display()))
            .arg(format!("--source-server={}", new_primary.conninfo()));
        if let Some(pw) = &new_primary.opts.password {
            cmd = cmd.env("PGPASSWORD", pw);
        }
        let out = cmd.run(self.name(), self.opts.timeout * 2).await?;
        // pg_rewind copies the source's config files too: restore ours.
        self.write_hba()?;
        self.write_sandbox_conf()?;
        self.configure_recovery(Some(new_primary))?;
        self.start().await?;
        self.wait_streaming().await?;
        Ok(process::output_tail(&out))
    }
}
