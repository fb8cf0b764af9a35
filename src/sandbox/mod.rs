//! Throwaway PostgreSQL clusters for tests and `failover-verify demo`.
//!
//! [`PgInstall`] finds server binaries (system install, `PG_BINDIR`, or the version matrix
//! installed by `.ci/install-postgres-versions` under `FV_PG_VERSIONS_DIR`). [`Cluster`] is
//! one server in its own temporary directory on a free loopback port: primaries, streaming
//! standbys, cut-off, promotion, isolation of a former primary. [`scenario`] builds whole
//! failovers with known ground truth. When the process runs as root, every server program
//! runs as the `postgres` OS user through `runuser`. The library never prints.

mod cluster;
mod error;
mod install;
mod options;
mod process;
pub mod scenario;
mod standby;

pub use crate::timeline::HistoryEntry;
pub use cluster::{Cluster, ClusterOptions, StopMode, SANDBOX_DIR_ENV, SUPERUSER};
pub use error::{Result, SandboxError};
pub use install::{
    versions_dir, MatrixEntry, PgInstall, DEFAULT_VERSIONS_DIR, MATRIX_MAJORS, PG_BINDIR_ENV,
    VERSIONS_DIR_ENV,
};
pub use process::server_ids;
pub use scenario::{
    LossyFailover, LossyFailoverSpec, LostCommit, LostWorkload, PlannedSwitchover,
    PlannedSwitchoverSpec,
};
