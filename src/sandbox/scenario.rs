//! Whole failovers with known ground truth, shared by the integration tests and the demo.
//!
//! Both scenarios create the table `fv_demo(id int primary key, v text)` with `base_rows`
//! rows (`v = 'base-<id>'`) on the primary and wait until the standby has replayed it.

use super::cluster::{Cluster, ClusterOptions};
use super::error::{Result, SandboxError};
use super::install::PgInstall;
use crate::lsn::{Lsn, SystemId, TimelineId, Xid};
use crate::timeline::HistoryEntry;

/// What the former primary commits after the standby was cut off (all of it is lost).
#[derive(Clone, Debug, Default)]
pub enum LostWorkload {
    /// `lost_commits` single-row inserts into `fv_demo` (ids after the base rows,
    /// `v = 'lost-<n>'`), each in its own transaction; recorded in [`LossyFailover::lost`].
    #[default]
    Inserts,
    /// Each string run as its own simple-protocol batch (one implicit transaction unless it
    /// has its own BEGIN/COMMIT); `lost_commits` is ignored.
    Statements(Vec<String>),
    /// Nothing is written after the cut-off.
    Nothing,
}

/// How to build a [`LossyFailover`].
#[derive(Clone, Debug)]
pub struct LossyFailoverSpec {
    /// Options of the primary (default name `primary`).
    pub primary: ClusterOptions,
    /// Options of the standby that gets promoted (default name `standby`).
    pub standby: ClusterOptions,
    /// Rows in `fv_demo` before the cut-off (replicated).
    pub base_rows: usize,
    /// Extra SQL batches run on the primary before the cut-off (replicated).
    pub base_sql: Vec<String>,
    /// Number of lost transactions for [`LostWorkload::Inserts`].
    pub lost_commits: usize,
    /// The lost workload.
    pub lost_workload: LostWorkload,
}

impl Default for LossyFailoverSpec {
    fn default() -> Self {
        LossyFailoverSpec {
            primary: ClusterOptions::new("primary"),
            standby: ClusterOptions::new("standby"),
            base_rows: 10,
            base_sql: Vec::new(),
            lost_commits: 3,
            lost_workload: LostWorkload::Inserts,
        }
    }
}

impl LossyFailoverSpec {
    /// The default spec with `n` lost single-row insert transactions.
    pub fn with_lost_commits(n: usize) -> Self {
        LossyFailoverSpec {
            lost_commits: n,
            ..Default::default()
        }
    }
}

/// One lost transaction of [`LostWorkload::Inserts`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostCommit {
    /// The `fv_demo.id` it inserted.
    pub id: i32,
    /// Its transaction id (`txid_current()` modulo 2^32).
    pub xid: Xid,
    /// `pg_current_wal_insert_lsn()` right after COMMIT returned (≥ end of its commit record).
    pub lsn_after_commit: Lsn,
}

/// A failover that lost committed data: the standby was cut off, the primary committed more,
/// then the standby was promoted. The former primary still runs as a primary on the old
/// timeline with its divergent WAL.
#[derive(Debug)]
pub struct LossyFailover {
    /// The former primary (still a primary, old timeline).
    pub former_primary: Cluster,
    /// The promoted standby.
    pub new_primary: Cluster,
    /// Shared system identifier.
    pub system_id: SystemId,
    /// The timeline before the promotion.
    pub old_timeline: TimelineId,
    /// The timeline the promotion created.
    pub new_timeline: TimelineId,
    /// The new primary's `.history` file, read from its `pg_wal`.
    pub history: Vec<HistoryEntry>,
    /// The last history entry's switchpoint: where the new timeline branched off.
    pub switchpoint: Lsn,
    /// The former primary's `pg_current_wal_lsn()` after the cut-off, before the lost workload.
    pub cut_off_lsn: Lsn,
    /// The former primary's `pg_current_wal_lsn()` right after the lost workload.
    pub former_end_lsn: Lsn,
    /// The lost transactions, for [`LostWorkload::Inserts`] (empty otherwise).
    pub lost: Vec<LostCommit>,
    /// Rows of `fv_demo` on both nodes before the cut-off.
    pub base_rows: usize,
}

/// Creates `fv_demo` with `rows` rows plus runs `extra`, on `primary`.
async fn base_workload(primary: &Cluster, rows: usize, extra: &[String]) -> Result<()> {
    primary
        .execute(&format!(
            "CREATE TABLE fv_demo(id int PRIMARY KEY, v text);
             INSERT INTO fv_demo SELECT g, 'base-' || g FROM generate_series(1, {rows}) g;"
        ))
        .await?;
    for sql in extra {
        primary.execute(sql).await?;
    }
    Ok(())
}

/// Runs `n` single-row insert transactions on `primary`, ids from `first_id`.
pub async fn insert_lost_commits(
    primary: &Cluster,
    first_id: i32,
    n: usize,
) -> Result<Vec<LostCommit>> {
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let id = first_id + k as i32;
        let sql = format!(
            "BEGIN; INSERT INTO fv_demo VALUES ({id}, 'lost-{id}'); SELECT txid_current(); \
             COMMIT; SELECT pg_current_wal_insert_lsn();"
        );
        let rows = primary.query_rows(&sql).await?;
        let bad = || SandboxError::unexpected(primary.name(), format!("{sql} returned {rows:?}"));
        let xid = rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(bad)?;
        let lsn = rows
            .get(1)
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|s| s.parse::<Lsn>().ok())
            .ok_or_else(bad)?;
        out.push(LostCommit {
            id,
            xid: Xid(xid as u32),
            lsn_after_commit: lsn,
        });
    }
    Ok(out)
}

impl LossyFailover {
    /// Builds the scenario with `spec.lost_workload`.
    pub async fn build(install: &PgInstall, spec: LossyFailoverSpec) -> Result<LossyFailover> {
        let workload = spec.lost_workload.clone();
        let first_id = spec.base_rows as i32 + 1;
        let n = spec.lost_commits;
        Self::build_with(
            install,
            spec,
            async move |primary: &Cluster| match workload {
                LostWorkload::Inserts => insert_lost_commits(primary, first_id, n).await,
                LostWorkload::Statements(stmts) => {
                    for s in &stmts {
                        primary.execute(s).await?;
                    }
                    Ok(Vec::new())
                }
                LostWorkload::Nothing => Ok(Vec::new()),
            },
        )
        .await
    }

    /// Builds the scenario with a custom lost workload: `lost` runs on the former primary
    /// after the cut-off and returns whatever [`LostCommit`]s it wants recorded.
    pub async fn build_with<F>(
        install: &PgInstall,
        spec: LossyFailoverSpec,
        lost: F,
    ) -> Result<LossyFailover>
    where
        F: AsyncFnOnce(&Cluster) -> Result<Vec<LostCommit>>,
    {
        let primary = Cluster::start_primary(install, spec.primary.clone()).await?;
        let standby = primary.create_standby(spec.standby.clone()).await?;
        base_workload(&primary, spec.base_rows, &spec.base_sql).await?;
        standby.wait_caught_up(&primary).await?;
        let old_timeline = primary.timeline().await?;
        let system_id = primary.system_identifier().await?;
        standby.cut_off().await?;
        let cut_off_lsn = primary.current_wal_lsn().await?;
        let lost = lost(&primary).await?;
        let former_end_lsn = primary.current_wal_lsn().await?;
        let new_timeline = standby.promote().await?;
        let history = standby.history(new_timeline)?;
        let switchpoint = history
            .last()
            .map(|h| h.switchpoint)
            .ok_or_else(|| SandboxError::unexpected(standby.name(), "empty history file"))?;
        Ok(LossyFailover {
            former_primary: primary,
            new_primary: standby,
            system_id,
            old_timeline,
            new_timeline,
            history,
            switchpoint,
            cut_off_lsn,
            former_end_lsn,
            lost,
            base_rows: spec.base_rows,
        })
    }

    /// Leaves both servers running and their directories in place after drop.
    pub fn keep(&mut self) {
        self.former_primary.keep();
        self.new_primary.keep();
    }
}

/// How to build a [`PlannedSwitchover`].
#[derive(Clone, Debug)]
pub struct PlannedSwitchoverSpec {
    /// Options of the primary (default name `primary`).
    pub primary: ClusterOptions,
    /// Options of the standby that gets promoted (default name `standby`).
    pub standby: ClusterOptions,
    /// Rows in `fv_demo`.
    pub base_rows: usize,
    /// Extra SQL batches run on the primary before the switchover.
    pub base_sql: Vec<String>,
}

impl Default for PlannedSwitchoverSpec {
    fn default() -> Self {
        PlannedSwitchoverSpec {
            primary: ClusterOptions::new("primary"),
            standby: ClusterOptions::new("standby"),
            base_rows: 10,
            base_sql: Vec::new(),
        }
    }
}

/// A switchover without loss: the primary was stopped cleanly, the standby received all of
/// its WAL and was promoted, and the former primary was restarted as an isolated standby
/// (no upstream; it does not follow the new timeline).
#[derive(Debug)]
pub struct PlannedSwitchover {
    /// The former primary, now an isolated standby on the old timeline.
    pub former_primary: Cluster,
    /// The promoted standby.
    pub new_primary: Cluster,
    /// The timeline before the promotion.
    pub old_timeline: TimelineId,
    /// The timeline the promotion created.
    pub new_timeline: TimelineId,
    /// The new primary's `.history` file.
    pub history: Vec<HistoryEntry>,
    /// Where the new timeline branched off.
    pub switchpoint: Lsn,
    /// The former primary's `pg_current_wal_lsn()` just before its clean stop.
    pub lsn_before_stop: Lsn,
    /// The former primary's end of WAL: `pg_last_wal_replay_lsn()` once isolated.
    pub former_end_lsn: Lsn,
}

impl PlannedSwitchover {
    /// Builds the scenario.
    pub async fn build(install: &PgInstall, spec: PlannedSwitchoverSpec) -> Result<Self> {
        let primary = Cluster::start_primary(install, spec.primary.clone()).await?;
        let standby = primary.create_standby(spec.standby.clone()).await?;
        base_workload(&primary, spec.base_rows, &spec.base_sql).await?;
        standby.wait_caught_up(&primary).await?;
        let old_timeline = primary.timeline().await?;
        let lsn_before_stop = primary.current_wal_lsn().await?;
        primary.stop(super::StopMode::Fast).await?;
        standby.wait_replayed_beyond(lsn_before_stop).await?;
        let new_timeline = standby.promote().await?;
        let former_end_lsn = primary.isolate_as_standby().await?;
        let history = standby.history(new_timeline)?;
        let switchpoint = history
            .last()
            .map(|h| h.switchpoint)
            .ok_or_else(|| SandboxError::unexpected(standby.name(), "empty history file"))?;
        Ok(PlannedSwitchover {
            former_primary: primary,
            new_primary: standby,
            old_timeline,
            new_timeline,
            history,
            switchpoint,
            lsn_before_stop,
            former_end_lsn,
        })
    }

    /// Leaves both servers running and their directories in place after drop.
    pub fn keep(&mut self) {
        self.former_primary.keep();
        self.new_primary.keep();
    }
}
