//! Patroni: its REST API read by a small HTTP client ([`client`]), its JSON as the tool reads it
//! ([`model`]), and the discovery of the new and the former primary ([`discovery`]). Nothing
//! here prints or writes to PostgreSQL; the result goes into the report as a
//! [`PatroniSection`].

pub mod client;
pub mod discovery;
pub mod model;

pub use client::{base_url, Client, HttpOptions};
pub use discovery::{choose_former, discover, member_conninfo, RESTART_SLACK};
pub use model::{
    parse_cluster, parse_history, ClusterView, Discovery, FormerChoice, HistoryEntry, Member,
    PatroniError, PatroniSection,
};
