//! Errors of the table comparison; each names the node (role and `host:port`) and the table.

use std::path::PathBuf;

use crate::pg::PgError;

/// Which of the two servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Node {
    /// The promoted server.
    New,
    /// The server that was primary before the failover.
    Former,
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Node::New => "new primary",
            Node::Former => "former primary",
        })
    }
}

/// An error of the table comparison.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiffError {
    /// A flag value is invalid.
    #[error("invalid table comparison option: {message}")]
    Options {
        /// What is wrong.
        message: String,
    },
    /// Connecting or setting up the session failed.
    #[error("{node} {target}, database {database:?}: {what}: {source}")]
    Session {
        /// Which server.
        node: Node,
        /// `host:port`.
        target: String,
        /// The database.
        database: String,
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: PgError,
    },
    /// The consistent snapshot could not be taken or shared.
    #[error("{node} {target}: cannot share a consistent snapshot: {message}")]
    Snapshot {
        /// Which server.
        node: Node,
        /// `host:port`.
        target: String,
        /// Why.
        message: String,
    },
    /// A query about one table failed.
    #[error("{node} {target}, table {table}: {what}: {source}")]
    Query {
        /// Which server.
        node: Node,
        /// `host:port`.
        target: String,
        /// The table (`db.schema.table`), or `catalog`.
        table: String,
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: PgError,
    },
    /// A server returned something we cannot interpret.
    #[error("{node} {target}, table {table}: unexpected result: {message}")]
    Unexpected {
        /// Which server.
        node: Node,
        /// `host:port`.
        target: String,
        /// The table.
        table: String,
        /// What was wrong.
        message: String,
    },
    /// Writing the recovery export failed.
    #[error("writing {path}: {source}")]
    Export {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
