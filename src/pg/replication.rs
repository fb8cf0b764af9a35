//! A small physical-replication client on `postgres-protocol`.
//!
//! tokio-postgres 0.7 cannot send `replication=true` at startup, so this module speaks the
//! protocol itself: TCP or Unix socket, optional SSLRequest + TLS (see [`super::tls`]),
//! StartupMessage, trust / cleartext / MD5 / SCRAM-SHA-256 authentication, then the
//! replication commands `IDENTIFY_SYSTEM`, `TIMELINE_HISTORY` and
//! `START_REPLICATION PHYSICAL … TIMELINE …` (no slot). Every wait is bounded.
//!
//! It only reads. Standby status updates report the received position as `write` and an
//! invalid (0/0) `flush` and `apply`: a walsender whose standby reports no valid flush
//! position is never chosen as a synchronous standby, so this client can neither release
//! nor hold up commits on the server it reads from.

mod client;
mod commands;
mod startup;
mod stream;

pub(super) use client::Io;
pub use client::{IdentifySystem, ReplicationClient, ReplicationOptions, TimelineEnd, WalChunk};
pub use stream::WalStream;

#[cfg(test)]
mod tests;
