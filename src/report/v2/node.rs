//! Wire types of the nodes and their divergence: each node's facts, timeline history, and
//! the verdict.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::lsn::{Lsn, SystemId, TimelineId};

use super::wire::Wire;

/// One node as the report shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeSection {
    /// The connection target with any password masked.
    pub target: String,
    /// What the node said about itself, if it could be reached.
    pub facts: Option<NodeFacts>,
    /// Why it could not be read, if it could not.
    pub error: Option<String>,
    /// For a multi-host connection string (or one with `target_session_attrs`): the host
    /// that answered and why that one. Absent for a single host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_choice: Option<HostChoice>,
}

/// Which host of a multi-host connection string was used (libpq's rules), and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HostChoice {
    /// Every host of the string (`host:port` or socket path), in the order given.
    pub hosts: Vec<String>,
    /// `target_session_attrs` (any, read-write, read-only, primary, standby, prefer-standby).
    pub target_session_attrs: String,
    /// Whether `load_balance_hosts=random` shuffled the order.
    pub load_balanced: bool,
    /// The host used.
    pub reached: String,
    /// Why this host: its role and the rule that picked it.
    pub reason: String,
    /// Hosts tried and not used, in the order tried, each with the reason.
    pub skipped: Vec<SkippedHost>,
}

/// A host of a multi-host string that was not used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SkippedHost {
    /// `host:port` or the socket path.
    pub target: String,
    /// Why (the connection error, or its role).
    pub why: String,
}

/// How a node's timeline history was obtained, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistorySource {
    /// Timeline 1 has no history file: nothing to read.
    NotNeeded,
    /// `TIMELINE_HISTORY` over a replication connection.
    Replication,
    /// `pg_read_file('pg_wal/….history')` over SQL.
    PgReadFile,
    /// It could not be read; see `history_problem`.
    Unavailable,
}

/// Everything read from one server at the start of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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

/// One line of a history file: `parent` ended at `switchpoint` and a child timeline began there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimelineEntry {
    /// The ancestor timeline that ended.
    pub parent: TimelineId,
    /// The first WAL position of the child timeline; the parent's records at or after it are lost.
    pub switchpoint: Lsn,
    /// The free-text reason PostgreSQL wrote (e.g. `no recovery target specified`).
    pub reason: String,
}

/// The parsed history of one timeline: its ancestors, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimelineHistory {
    /// The timeline this history describes.
    pub timeline: TimelineId,
    /// Its ancestors, oldest first; empty for timeline 1.
    pub entries: Vec<TimelineEntry>,
}

/// The answer a cron job and an on-call engineer act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The former primary wrote nothing past the switchpoint: no committed data can be lost.
    NoLoss,
    /// The former primary wrote WAL past the switchpoint that the new primary never received.
    Loss,
    /// The former primary already follows the new timeline: any evidence of loss is gone.
    Rewound,
    /// The two servers belong to different clusters (different system identifiers).
    Unrelated,
    /// The question cannot be decided with what could be read (unreachable, missing privilege).
    Inconclusive,
}

/// Where the timelines forked and what the former primary wrote after the fork.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Divergence {
    /// The timeline the former primary is on (the one that holds the lost WAL).
    pub former_timeline: TimelineId,
    /// The new primary's current timeline.
    pub new_timeline: TimelineId,
    /// The first WAL position of the new primary's branch; the former's WAL from here on is lost.
    pub switchpoint_lsn: Option<Lsn>,
    /// The former primary's end of WAL, read once at the start of the run.
    pub former_end_lsn: Lsn,
    /// `max(0, former_end_lsn - switchpoint_lsn)`.
    pub lost_wal_bytes: u64,
    /// The new primary's timelines from the fork to now, e.g. `[1, 2, 3]` for two promotions.
    pub timeline_path: Vec<TimelineId>,
}

impl Wire for crate::report::NodeSection {
    type Out = NodeSection;
    fn wire(&self) -> NodeSection {
        NodeSection {
            target: self.target.wire(),
            facts: self.facts.wire(),
            error: self.error.wire(),
            host_choice: self.host_choice.as_ref().map(|c| HostChoice {
                hosts: c.hosts.clone(),
                target_session_attrs: c.target_session_attrs.clone(),
                load_balanced: c.load_balanced,
                reached: c.reached.clone(),
                reason: c.reason.clone(),
                skipped: c
                    .skipped
                    .iter()
                    .map(|s| SkippedHost {
                        target: s.target.clone(),
                        why: s.why.clone(),
                    })
                    .collect(),
            }),
        }
    }
}

impl Wire for crate::node::HistorySource {
    type Out = HistorySource;
    fn wire(&self) -> HistorySource {
        match self {
            crate::node::HistorySource::NotNeeded => HistorySource::NotNeeded,
            crate::node::HistorySource::Replication => HistorySource::Replication,
            crate::node::HistorySource::PgReadFile => HistorySource::PgReadFile,
            crate::node::HistorySource::Unavailable => HistorySource::Unavailable,
        }
    }
}

impl Wire for crate::node::NodeFacts {
    type Out = NodeFacts;
    fn wire(&self) -> NodeFacts {
        NodeFacts {
            server_version: self.server_version.wire(),
            server_version_num: self.server_version_num.wire(),
            system_identifier: self.system_identifier.wire(),
            in_recovery: self.in_recovery.wire(),
            timeline: self.timeline.wire(),
            timeline_source: self.timeline_source.wire(),
            insert_lsn: self.insert_lsn.wire(),
            current_lsn: self.current_lsn.wire(),
            receive_lsn: self.receive_lsn.wire(),
            replay_lsn: self.replay_lsn.wire(),
            end_of_wal: self.end_of_wal.wire(),
            checkpoint_lsn: self.checkpoint_lsn.wire(),
            redo_lsn: self.redo_lsn.wire(),
            checkpoint_timeline: self.checkpoint_timeline.wire(),
            wal_segment_size: self.wal_segment_size.wire(),
            postmaster_start_time: self.postmaster_start_time.wire(),
            port: self.port.wire(),
            history: self.history.wire(),
            history_source: self.history_source.wire(),
            history_problem: self.history_problem.wire(),
            can_replicate: self.can_replicate.wire(),
            read_at: self.read_at.wire(),
        }
    }
}

impl Wire for crate::timeline::HistoryEntry {
    type Out = TimelineEntry;
    fn wire(&self) -> TimelineEntry {
        TimelineEntry {
            parent: self.parent.wire(),
            switchpoint: self.switchpoint.wire(),
            reason: self.reason.wire(),
        }
    }
}

impl Wire for crate::timeline::TimelineHistory {
    type Out = TimelineHistory;
    fn wire(&self) -> TimelineHistory {
        TimelineHistory {
            timeline: self.timeline.wire(),
            entries: self.entries.wire(),
        }
    }
}

impl Wire for crate::divergence::Verdict {
    type Out = Verdict;
    fn wire(&self) -> Verdict {
        match self {
            crate::divergence::Verdict::NoLoss => Verdict::NoLoss,
            crate::divergence::Verdict::Loss => Verdict::Loss,
            crate::divergence::Verdict::Rewound => Verdict::Rewound,
            crate::divergence::Verdict::Unrelated => Verdict::Unrelated,
            crate::divergence::Verdict::Inconclusive => Verdict::Inconclusive,
        }
    }
}

impl Wire for crate::divergence::Divergence {
    type Out = Divergence;
    fn wire(&self) -> Divergence {
        Divergence {
            former_timeline: self.former_timeline.wire(),
            new_timeline: self.new_timeline.wire(),
            switchpoint_lsn: self.switchpoint_lsn.wire(),
            former_end_lsn: self.former_end_lsn.wire(),
            lost_wal_bytes: self.lost_wal_bytes.wire(),
            timeline_path: self.timeline_path.wire(),
        }
    }
}
