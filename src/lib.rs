//! failover-verify: after a PostgreSQL failover, prove whether the promoted replica lost
//! committed data, how much, and which rows.
//!
//! Data flows one way: flags → connections ([`pg`]) → facts ([`node`]) → divergence
//! ([`divergence`]) → WAL accounting ([`wal`], [`evidence`]) → row diff ([`diff`]) → [`report`]
//! model → renderer. Rows from the WAL alone: tuple images ([`wal::tuple`]) → deformed and
//! printed as text ([`values`]). The library computes and returns values; it never prints.
//!
//! # Module map
//! Layers from the top down. A module may import from its own layer and the layers below it,
//! never from above, and no two modules (nor two files) import each other in a circle:
//! `tests/architecture.rs` reads the imports and holds the code to this map.
//!
//! - L1 `commands`: one module per subcommand: flags → a plan (no I/O) → gather (HA-manager
//!   discovery first, `commands::discover`) → analyse → build the report; the cron decision;
//!   output to files and stdout. `main.rs` (above everything) only parses and
//!   dispatches.
//! - L1 `cli`: the command-line flags (clap).
//! - L1 `state`: the cron state file (what was already reported).
//! - L1 `progress`: progress on stderr for long runs.
//! - L1 `bundle`: evidence bundles: seals what a run read (reports, the lost range's WAL,
//!   histories, node facts) with checksums, and reads one back for a re-analysis.
//! - L2 `report`: the report model, its versioned wire form (`report::v2`) and one renderer
//!   per format.
//! - L3 `evidence`: the WAL accounting of the lost range: lost commits, tables, DDL, in-doubt.
//! - L3 `diff`: row-level comparison of tables (WAL-guided and by checksums), recovery export.
//! - L3 `checks`: the catalogue of SQL checks run on both nodes, and their comparison.
//! - L3 `patroni_audit`: what in a Patroni configuration will destroy evidence after the
//!   next lossy failover.
//! - L3 `divergence`: where the timelines forked and what each side wrote after it.
//! - L3 `forktree`: the tree of timelines over every node read, evidence holders, split brain.
//! - L3 `downstream`: the former primary's consumers (logical slots, standbys,
//!   `pg_receivewal`) and the lost transactions each already received.
//! - L4 `guard`: the rewind guard's capture: a stopped former primary's `pg_control` and
//!   history, its divergent WAL copied before pg_rewind runs.
//! - L4 `node`: the facts read from one server (identity, LSNs, timeline, settings).
//! - L4 `discovery`: what an HA manager says about the cluster (repmgr, pg_auto_failover,
//!   CloudNativePG, and Patroni through [`patroni`]), in one manager-neutral form.
//! - L4 `patroni`: Patroni's REST API: discovery of the members and the history.
//! - L4 `pg`: connection strings, read-only sessions, pacing, replication protocol, TLS.
//! - L4 `wal`: the sans-IO WAL decoder, segment sources (directories, archives, streaming) and
//!   tuple images.
//! - L4 `values`: relation descriptors and tuple values printed as PostgreSQL prints them.
//! - L4 `sandbox`: throwaway clusters for `demo` and the tests.
//! - L5 `lsn`: log sequence numbers and WAL segment names.
//! - L5 `timeline`: timeline history files, one entry type for the crate.
//! - L5 `finding`: findings, severities and the `FindingId` catalogue.
//! - L5 `timing`: durations and phase timers.
//! - L5 `quote`: quoting for CSV, Markdown, conninfo values and shell words.

pub mod bundle;
pub mod checks;
pub mod cli;
pub mod commands;
pub mod diff;
pub mod discovery;
pub mod divergence;
pub mod downstream;
pub mod evidence;
pub mod finding;
pub mod forktree;
pub mod guard;
pub mod lsn;
pub mod node;
pub mod patroni;
pub mod patroni_audit;
pub mod pg;
pub mod progress;
pub mod quote;
pub mod report;
pub mod sandbox;
pub mod state;
pub mod timeline;
pub mod timing;
pub mod values;
pub mod wal;
