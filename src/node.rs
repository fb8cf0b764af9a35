//! What one server says about itself: identity, role, timeline, WAL positions and history.

use serde::{Deserialize, Serialize};

use crate::lsn::{Lsn, SystemId, TimelineId};
use crate::timeline::TimelineHistory;

/// How a node's timeline history was obtained, for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistorySource {
    /// Timeline 1 has no history file: nothing to read.
    #[default]
    NotNeeded,
    /// `TIMELINE_HISTORY` over a replication connection.
    Replication,
    /// `pg_read_file('pg_wal/….history')` over SQL.
    PgReadFile,
    /// It could not be read; see `history_problem`.
    Unavailable,
}

/// Everything read from one server at the start of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFacts {
    /// `server_version`, e.g. `15.18 (Debian 15.18-0+deb12u1)`.
    pub server_version: String,
    /// `server_version_num`, e.g. 150018.
    pub server_version_num: u32,
    /// `pg_control_system().system_identifier`: equal on every node of one cluster.
    pub system_identifier: SystemId,
    /// `pg_is_in_recovery()`: true on a standby.
    pub in_recovery: bool,
    /// The timeline the node writes (primary) or replays (standby) now.
    pub timeline: TimelineId,
    /// How the timeline was determined (`identify_system`, `pg_walfile_name`, ...).
    pub timeline_source: String,
    /// `pg_current_wal_insert_lsn()` on a primary.
    pub insert_lsn: Option<Lsn>,
    /// `pg_current_wal_lsn()` (written position) on a primary.
    pub current_lsn: Option<Lsn>,
    /// `pg_last_wal_receive_lsn()` on a standby.
    pub receive_lsn: Option<Lsn>,
    /// `pg_last_wal_replay_lsn()` on a standby.
    pub replay_lsn: Option<Lsn>,
    /// The end of this node's WAL for the divergence: the insert LSN on a primary, the larger
    /// of the received and replayed positions on a standby.
    pub end_of_wal: Lsn,
    /// `pg_control_checkpoint().checkpoint_lsn`.
    pub checkpoint_lsn: Option<Lsn>,
    /// `pg_control_checkpoint().redo_lsn`.
    pub redo_lsn: Option<Lsn>,
    /// `pg_control_checkpoint().timeline_id` (stale right after a promotion; informative only).
    pub checkpoint_timeline: Option<TimelineId>,
    /// `wal_segment_size` in bytes.
    pub wal_segment_size: u64,
    /// When the postmaster started, to tell two connection strings to one server apart.
    pub postmaster_start_time: Option<String>,
    /// The server's `port` setting.
    pub port: Option<u16>,
    /// The node's timeline history, when it could be read (timeline 1 has an empty one).
    pub history: Option<TimelineHistory>,
    /// How the history was read.
    pub history_source: HistorySource,
    /// Why the history could not be read, naming the missing privilege.
    pub history_problem: Option<String>,
    /// Whether the session role has the REPLICATION attribute (or is superuser).
    pub can_replicate: bool,
    /// When these facts were read (RFC 3339, UTC).
    pub read_at: String,
}

impl NodeFacts {
    /// Whether both fact sets were read from one and the same running server.
    pub fn same_server_as(&self, other: &NodeFacts) -> bool {
        self.system_identifier == other.system_identifier
            && self.postmaster_start_time.is_some()
            && self.postmaster_start_time == other.postmaster_start_time
            && self.port == other.port
    }

    /// The role this node plays now, in words.
    pub fn role(&self) -> &'static str {
        if self.in_recovery {
            "standby"
        } else {
            "primary"
        }
    }
}
