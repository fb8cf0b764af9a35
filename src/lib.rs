//! failover-verify: after a PostgreSQL failover, prove whether the promoted replica lost
//! committed data, how much, and which rows.
//!
//! Data flows one way: flags → connections ([`pg`]) → facts ([`node`]) → divergence
//! ([`divergence`]) → WAL accounting ([`wal`]) → [`report`] model → renderer. Rows from the WAL
//! alone: tuple images ([`wal::tuple`]) → deformed and printed as text ([`values`]).
//! The library computes and returns values; it never prints. [`bundle`] seals what a run read
//! (reports, the lost range's WAL, histories, node facts) into a checksummed evidence bundle,
//! and reads one back for a re-analysis with no server. [`guard`] is the pg_rewind stand-in's
//! computation: a diverged target's WAL copied aside before an HA manager rewinds it.

pub mod bundle;
pub mod checks;
pub mod cli;
pub mod commands;
pub mod diff;
pub mod divergence;
pub mod evidence;
pub mod finding;
pub mod guard;
pub mod lsn;
pub mod node;
pub mod patroni;
pub mod patroni_audit;
pub mod pg;
pub mod progress;
pub mod report;
pub mod sandbox;
pub mod state;
pub mod timeline;
pub mod timing;
pub mod values;
pub mod wal;
