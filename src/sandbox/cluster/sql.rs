//! Sessions on a sandbox cluster: connecting, running SQL, and reading its WAL position,
//! identity and timeline history.

use crate::lsn::{Lsn, SystemId, TimelineId};
use crate::sandbox::error::{Result, SandboxError};
use crate::timeline::HistoryEntry;
use tokio_postgres::types::FromSqlOwned;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use super::Cluster;

impl Cluster {
    /// A superuser connection to database `dbname` (the connection task is spawned on tokio).
    pub async fn connect_db(&self, dbname: &str) -> Result<Client> {
        let conninfo = format!("{} connect_timeout=10", self.conninfo_db(dbname));
        let fut = tokio_postgres::connect(&conninfo, NoTls);
        let redacted = self
            .conninfo_db(dbname)
            .split(" password=")
            .next()
            .unwrap_or("")
            .to_string();
        let (client, conn) = match tokio::time::timeout(self.opts.timeout, fut).await {
            Ok(Ok(x)) => x,
            Ok(Err(source)) => {
                return Err(SandboxError::Connect {
                    cluster: self.name().to_string(),
                    conninfo: redacted,
                    source,
                })
            }
            Err(_) => {
                return Err(SandboxError::Timeout {
                    cluster: self.name().to_string(),
                    what: format!("a connection to {redacted}"),
                    waited: self.opts.timeout,
                    last: "connecting".to_string(),
                })
            }
        };
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// A superuser connection to database `postgres`.
    pub async fn connect(&self) -> Result<Client> {
        self.connect_db("postgres").await
    }

    pub(super) fn sql_err(&self, sql: &str, source: tokio_postgres::Error) -> SandboxError {
        SandboxError::Sql {
            cluster: self.name().to_string(),
            sql: sql.to_string(),
            source,
        }
    }

    /// Runs `sql` (one or more statements, simple protocol) in database `postgres`.
    pub async fn execute(&self, sql: &str) -> Result<()> {
        self.execute_in("postgres", sql).await
    }

    /// Runs `sql` (one or more statements, simple protocol) in database `dbname`.
    pub async fn execute_in(&self, dbname: &str, sql: &str) -> Result<()> {
        let c = self.connect_db(dbname).await?;
        self.bounded(sql, c.batch_execute(sql)).await
    }

    pub(super) async fn bounded<T>(
        &self,
        sql: &str,
        fut: impl std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.opts.timeout, fut).await {
            Ok(r) => r.map_err(|e| self.sql_err(sql, e)),
            Err(_) => Err(SandboxError::Timeout {
                cluster: self.name().to_string(),
                what: format!("query {sql}"),
                waited: self.opts.timeout,
                last: "running".to_string(),
            }),
        }
    }

    /// Every row of `sql` as text columns (`None` for NULL), via the simple protocol.
    pub async fn query_rows(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let c = self.connect().await?;
        let msgs = self.bounded(sql, c.simple_query(sql)).await?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).map(str::to_string))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .collect())
    }

    /// The first column of the first row as text; `None` when there is no row or it is NULL.
    pub async fn query_opt_string(&self, sql: &str) -> Result<Option<String>> {
        let rows = self.query_rows(sql).await?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten()))
    }

    /// The first column of the first row as text; an error when there is none or it is NULL.
    pub async fn query_one_string(&self, sql: &str) -> Result<String> {
        self.query_opt_string(sql)
            .await?
            .ok_or_else(|| SandboxError::unexpected(self.name(), format!("no value from {sql}")))
    }

    /// The single value of `sql` as `T` (extended protocol: `T` must match the SQL type,
    /// e.g. `i64` for `bigint`, `bool`, `String` for `text`).
    pub async fn query_scalar<T: FromSqlOwned>(&self, sql: &str) -> Result<T> {
        let c = self.connect().await?;
        let row = self.bounded(sql, c.query_one(sql, &[])).await?;
        row.try_get::<_, T>(0).map_err(|e| self.sql_err(sql, e))
    }

    pub(super) async fn query_lsn(&self, sql: &str) -> Result<Option<Lsn>> {
        match self.query_opt_string(sql).await? {
            None => Ok(None),
            Some(s) => s.parse::<Lsn>().map(Some).map_err(|e| {
                SandboxError::unexpected(self.name(), format!("{sql} returned {s:?}: {e}"))
            }),
        }
    }

    // ---------------------------------------------------------------- facts

    /// `pg_current_wal_lsn()` (fails on a standby).
    pub async fn current_wal_lsn(&self) -> Result<Lsn> {
        let sql = "SELECT pg_current_wal_lsn()";
        self.query_lsn(sql)
            .await?
            .ok_or_else(|| SandboxError::unexpected(self.name(), format!("{sql} returned NULL")))
    }

    /// `pg_last_wal_replay_lsn()`: end of the last replayed record; `None` on a primary that
    /// never was in recovery.
    pub async fn replay_lsn(&self) -> Result<Option<Lsn>> {
        self.query_lsn("SELECT pg_last_wal_replay_lsn()").await
    }

    /// `pg_last_wal_receive_lsn()`: WAL received and flushed by streaming; `None` if none.
    pub async fn receive_lsn(&self) -> Result<Option<Lsn>> {
        self.query_lsn("SELECT pg_last_wal_receive_lsn()").await
    }

    /// `pg_is_in_recovery()`.
    pub async fn is_in_recovery(&self) -> Result<bool> {
        self.query_scalar::<bool>("SELECT pg_is_in_recovery()")
            .await
    }

    /// `pg_control_system().system_identifier`.
    pub async fn system_identifier(&self) -> Result<SystemId> {
        let s = self
            .query_one_string("SELECT system_identifier FROM pg_control_system()")
            .await?;
        s.parse::<u64>()
            .or_else(|_| s.parse::<i64>().map(|v| v as u64))
            .map(SystemId)
            .map_err(|_| SandboxError::unexpected(self.name(), format!("system_identifier {s:?}")))
    }

    /// The timeline this node is on. On a primary: the first 8 hex digits of
    /// `pg_walfile_name(pg_current_wal_lsn())` (right after a promotion `pg_control_checkpoint`
    /// still shows the old one). On a standby: `pg_stat_wal_receiver.received_tli` while
    /// streaming, else `pg_control_checkpoint().timeline_id` (the last restartpoint's).
    pub async fn timeline(&self) -> Result<TimelineId> {
        let s = if !self.is_in_recovery().await? {
            let f = self
                .query_one_string("SELECT pg_walfile_name(pg_current_wal_lsn())")
                .await?;
            return u32::from_str_radix(f.get(..8).unwrap_or(""), 16)
                .map(TimelineId)
                .map_err(|_| {
                    SandboxError::unexpected(self.name(), format!("WAL file name {f:?}"))
                });
        } else if let Some(t) = self
            .query_opt_string(
                "SELECT received_tli FROM pg_stat_wal_receiver WHERE received_tli > 0",
            )
            .await?
        {
            t
        } else {
            self.query_one_string("SELECT timeline_id FROM pg_control_checkpoint()")
                .await?
        };
        s.parse::<u32>()
            .map(TimelineId)
            .map_err(|_| SandboxError::unexpected(self.name(), format!("timeline {s:?}")))
    }

    /// Reads `pg_wal/<tli>.history` directly from the data directory.
    pub fn read_history_file(&self, tli: TimelineId) -> Result<String> {
        let p = self.data_dir.join("pg_wal").join(tli.history_file_name());
        std::fs::read_to_string(&p)
            .map_err(|e| SandboxError::io(self.name(), format!("read {}", p.display()), e))
    }

    /// Reads and parses `pg_wal/<tli>.history`.
    pub fn history(&self, tli: TimelineId) -> Result<Vec<HistoryEntry>> {
        let text = self.read_history_file(tli)?;
        crate::timeline::TimelineHistory::parse(&format!("{tli}.history"), tli, &text)
            .map(|h| h.entries)
            .map_err(|e| SandboxError::unexpected(self.name(), e.to_string()))
    }
}
