//! Talking to PostgreSQL: conninfo parsing, TLS, read-only SQL sessions and the replication client.
//!
//! Nothing here writes to a server: SQL sessions start with `default_transaction_read_only=on`
//! and the replication client only reads WAL (and reports an invalid flush position so it can
//! never be chosen as a synchronous standby).
#![deny(missing_docs)]

pub mod clientcert;
mod conn_options;
mod conn_syntax;
mod connect;
pub mod conninfo;
pub mod error;
pub mod keywords;
pub mod multihost;
mod pgpass;
pub mod service;

pub use conninfo::{
    ConnInfoError, ConnParams, Host, HostSpec, PasswordSource, SslMode, TargetSessionAttrs,
};
pub use error::{ErrorKind, PgError};
pub use multihost::HostChoice;
pub mod pace;
mod pace_watch;
pub mod session;
pub mod tls;

pub use connect::connect;
pub use pace::Pacer;
pub use session::{Session, SessionOptions};
mod repl_connect;
pub mod replication;

pub use repl_connect::connect_replication;
pub use replication::{
    IdentifySystem, ReplicationClient, ReplicationOptions, TimelineEnd, WalChunk, WalStream,
};
