//! Errors of the sandbox: every variant names the cluster and the command or query involved.

use std::path::PathBuf;
use std::time::Duration;

/// Result type of the sandbox.
pub type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// What went wrong while creating, driving or inspecting a throwaway cluster.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No usable PostgreSQL installation was found.
    #[error(
        "no PostgreSQL server binaries found (looked at: {searched}). Install them with \
         `apt install postgresql`, or set PG_BINDIR to a directory holding initdb, pg_ctl and \
         postgres (extra majors: run .ci/install-postgres-versions)"
    )]
    NotFound {
        /// The places that were searched, in order.
        searched: String,
    },
    /// A bindir lacks a required binary.
    #[error("{bindir}: missing required binary `{binary}` (need initdb, pg_ctl and postgres)")]
    MissingBinary {
        /// The directory that was inspected.
        bindir: PathBuf,
        /// The binary that is missing.
        binary: String,
    },
    /// `postgres --version` failed or printed something unexpected.
    #[error(
        "{bindir}: cannot read the version from `postgres --version`: {detail} (if a shared \
         library is missing, re-run .ci/install-postgres-versions or set LD_LIBRARY_PATH)"
    )]
    Version {
        /// The directory of the binary.
        bindir: PathBuf,
        /// Output or error of the command.
        detail: String,
    },
    /// The process runs as root but there is no `postgres` OS user to run the server as.
    #[error("running as root, but there is no `postgres` OS user to run PostgreSQL as (PostgreSQL refuses to run as root): create one with `useradd -r postgres`")]
    NoPostgresUser,
    /// A filesystem operation failed.
    #[error("[{cluster}] {context}: {source}")]
    Io {
        /// Which cluster (or "sandbox").
        cluster: String,
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An external command exited with a failure status.
    #[error("[{cluster}] `{command}` failed ({status}): {output}")]
    Command {
        /// Which cluster.
        cluster: String,
        /// The command line.
        command: String,
        /// Exit status as text.
        status: String,
        /// The tail of the command's stdout/stderr.
        output: String,
    },
    /// A server did not start; carries the tail of its log.
    #[error("[{cluster}] server failed to start (`{command}`): {detail}\n--- tail of {log} ---\n{log_tail}")]
    StartFailed {
        /// Which cluster.
        cluster: String,
        /// The command line used to start it.
        command: String,
        /// The command's own output.
        detail: String,
        /// The log file.
        log: PathBuf,
        /// The last lines the server logged during this start.
        log_tail: String,
    },
    /// Connecting over SQL failed.
    #[error("[{cluster}] cannot connect to `{conninfo}`: {source}")]
    Connect {
        /// Which cluster.
        cluster: String,
        /// The connection string (without password).
        conninfo: String,
        /// The driver's error.
        source: tokio_postgres::Error,
    },
    /// A SQL statement failed.
    #[error("[{cluster}] SQL failed: {sql}: {source}")]
    Sql {
        /// Which cluster.
        cluster: String,
        /// The statement.
        sql: String,
        /// The driver's error (use `as_db_error()` for the server's message).
        source: tokio_postgres::Error,
    },
    /// A wait or a command exceeded its time limit.
    #[error("[{cluster}] timed out after {waited:?} waiting for {what} (last seen: {last})")]
    Timeout {
        /// Which cluster.
        cluster: String,
        /// What was awaited.
        what: String,
        /// How long it waited.
        waited: Duration,
        /// The last observed state.
        last: String,
    },
    /// A query answered something the sandbox cannot use (NULL, unparsable, wrong state).
    #[error("[{cluster}] unexpected result: {what}")]
    Unexpected {
        /// Which cluster.
        cluster: String,
        /// Description.
        what: String,
    },
    /// The requested operation is not supported with this installation.
    #[error("[{cluster}] not supported: {what}")]
    Unsupported {
        /// Which cluster.
        cluster: String,
        /// Description.
        what: String,
    },
}

impl SandboxError {
    /// Shorthand for an [`SandboxError::Io`] error.
    pub(crate) fn io(cluster: &str, context: impl Into<String>, source: std::io::Error) -> Self {
        SandboxError::Io {
            cluster: cluster.to_string(),
            context: context.into(),
            source,
        }
    }

    /// Shorthand for an [`SandboxError::Unexpected`] error.
    pub(crate) fn unexpected(cluster: &str, what: impl Into<String>) -> Self {
        SandboxError::Unexpected {
            cluster: cluster.to_string(),
            what: what.into(),
        }
    }
}
