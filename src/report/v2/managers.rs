//! Wire types of what the HA managers said: Patroni's members and history, discovery.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::lsn::Lsn;

use super::wire::Wire;

/// One member of the cluster as `/cluster` describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PatroniMember {
    /// The member's name (Patroni's `name`).
    pub name: String,
    /// `leader`, `replica`, `sync_standby`, `quorum_standby`, `standby_leader`, ...
    pub role: String,
    /// `running`, `streaming`, `stopped`, `starting`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// PostgreSQL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// PostgreSQL's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The member's own REST API (`.../patroni`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// The member's timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    /// The member's WAL position (`lsn`, else `replay_lsn`, else `receive_lsn`); none for a leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<Lsn>,
    /// The lag Patroni computed (bytes, or `unknown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<String>,
}

/// One promotion in `/history`: `[parent_tl, switchpoint, reason, timestamp, new_leader]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PatroniHistoryEntry {
    /// The timeline that ended.
    pub parent_timeline: u32,
    /// Where it ended (Patroni sends it as an integer).
    pub switchpoint_lsn: Lsn,
    /// PostgreSQL's reason line from the `.history` file.
    pub reason: String,
    /// When Patroni recorded the promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The member promoted (Patroni 2.1+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_leader: Option<String>,
}

/// The report's `patroni` section: where the nodes came from and the promotion Patroni logged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PatroniSection {
    /// The REST URLs that answered.
    pub urls: Vec<String>,
    /// The URLs that did not, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unanswered: Vec<String>,
    /// The cluster's name (`scope`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The member compared as the new primary (none when `--new-primary` named it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_primary: Option<String>,
    /// The member compared as the former primary (none when a flag named it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub former_primary: Option<String>,
    /// How the former primary was chosen, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub former_primary_rule: Option<String>,
    /// The last promotion in `/history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PatroniHistoryEntry>,
    /// Every promotion in `/history`, oldest first.
    #[serde(default)]
    pub history: Vec<PatroniHistoryEntry>,
    /// The members as `/cluster` listed them.
    pub members: Vec<PatroniMember>,
}

/// The HA manager a discovery came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryManager {
    /// Patroni (`--patroni`).
    Patroni,
    /// repmgr (`--repmgr`).
    Repmgr,
    /// pg_auto_failover (`--pg-auto-failover`).
    PgAutoFailover,
    /// CloudNativePG (`--cnpg-status`).
    Cnpg,
}

/// A member's role, reduced to what the tool acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryRole {
    /// The manager's current primary.
    Primary,
    /// A standby.
    Standby,
    /// A primary the manager demoted or marked failed.
    Demoted,
    /// A witness without data of its own.
    Witness,
    /// Anything else (see `manager_role`).
    Other,
}

/// One member as the HA manager describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DiscoveryMember {
    /// The member's name in the manager (node name, pod name).
    pub name: String,
    /// The role, reduced.
    pub role: DiscoveryRole,
    /// The manager's own word for the role and state.
    pub manager_role: String,
    /// Health as the manager (or a probe of the server) reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// PostgreSQL's host, when the manager records one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// PostgreSQL's port, when the manager records one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The timeline as the manager last saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    /// The WAL position as the manager last saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<Lsn>,
    /// The member it replicates from, when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

/// Promotion or demotion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryEventKind {
    /// A member became primary.
    Promotion,
    /// A primary was demoted or told to step down.
    Demotion,
}

/// A promotion or demotion the manager recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DiscoveryEvent {
    /// Promotion or demotion.
    pub kind: DiscoveryEventKind,
    /// When the manager recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The member promoted or demoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// For a promotion: the timeline it started, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    /// The WAL position recorded with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<Lsn>,
    /// The manager's own description.
    pub detail: String,
}

/// The report's `discovery` section, the same for every HA manager.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DiscoverySection {
    /// The manager.
    pub manager: DiscoveryManager,
    /// Where its records were read (a redacted conninfo, a file, URLs).
    pub source: String,
    /// The cluster's name in the manager, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The member compared as the new primary (none when a flag named it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_primary: Option<String>,
    /// The member compared as the former primary (none when a flag named it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub former_primary: Option<String>,
    /// How the former primary was chosen, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub former_primary_rule: Option<String>,
    /// The members, as the manager lists them.
    pub members: Vec<DiscoveryMember>,
    /// The promotions and demotions the manager recorded, oldest first.
    #[serde(default)]
    pub events: Vec<DiscoveryEvent>,
    /// Members whose own records could not be read, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unanswered: Vec<String>,
    /// What the manager's records do not tell, and what to do about it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Wire for crate::patroni::Member {
    type Out = PatroniMember;
    fn wire(&self) -> PatroniMember {
        PatroniMember {
            name: self.name.wire(),
            role: self.role.wire(),
            state: self.state.wire(),
            host: self.host.wire(),
            port: self.port.wire(),
            api_url: self.api_url.wire(),
            timeline: self.timeline.wire(),
            lsn: self.lsn.wire(),
            lag: self.lag.wire(),
        }
    }
}

impl Wire for crate::patroni::HistoryEntry {
    type Out = PatroniHistoryEntry;
    fn wire(&self) -> PatroniHistoryEntry {
        PatroniHistoryEntry {
            parent_timeline: self.parent_timeline.wire(),
            switchpoint_lsn: self.switchpoint_lsn.wire(),
            reason: self.reason.wire(),
            timestamp: self.timestamp.wire(),
            new_leader: self.new_leader.wire(),
        }
    }
}

impl Wire for crate::patroni::PatroniSection {
    type Out = PatroniSection;
    fn wire(&self) -> PatroniSection {
        PatroniSection {
            urls: self.urls.wire(),
            unanswered: self.unanswered.wire(),
            scope: self.scope.wire(),
            new_primary: self.new_primary.wire(),
            former_primary: self.former_primary.wire(),
            former_primary_rule: self.former_primary_rule.wire(),
            promotion: self.promotion.wire(),
            history: self.history.wire(),
            members: self.members.wire(),
        }
    }
}

impl Wire for crate::discovery::Member {
    type Out = DiscoveryMember;
    fn wire(&self) -> DiscoveryMember {
        use crate::discovery::Role as R;
        DiscoveryMember {
            name: self.name.wire(),
            role: match self.role {
                R::Primary => DiscoveryRole::Primary,
                R::Standby => DiscoveryRole::Standby,
                R::Demoted => DiscoveryRole::Demoted,
                R::Witness => DiscoveryRole::Witness,
                R::Other => DiscoveryRole::Other,
            },
            manager_role: self.manager_role.wire(),
            state: self.state.wire(),
            host: self.host.wire(),
            port: self.port.wire(),
            timeline: self.timeline.wire(),
            lsn: self.lsn.wire(),
            upstream: self.upstream.wire(),
        }
    }
}

impl Wire for crate::discovery::Event {
    type Out = DiscoveryEvent;
    fn wire(&self) -> DiscoveryEvent {
        DiscoveryEvent {
            kind: match self.kind {
                crate::discovery::EventKind::Promotion => DiscoveryEventKind::Promotion,
                crate::discovery::EventKind::Demotion => DiscoveryEventKind::Demotion,
            },
            time: self.time.wire(),
            member: self.member.wire(),
            timeline: self.timeline.wire(),
            lsn: self.lsn.wire(),
            detail: self.detail.wire(),
        }
    }
}

impl Wire for crate::discovery::DiscoverySection {
    type Out = DiscoverySection;
    fn wire(&self) -> DiscoverySection {
        use crate::discovery::Manager as M;
        DiscoverySection {
            manager: match self.manager {
                M::Patroni => DiscoveryManager::Patroni,
                M::Repmgr => DiscoveryManager::Repmgr,
                M::PgAutoFailover => DiscoveryManager::PgAutoFailover,
                M::Cnpg => DiscoveryManager::Cnpg,
            },
            source: self.source.wire(),
            cluster: self.cluster.wire(),
            new_primary: self.new_primary.wire(),
            former_primary: self.former_primary.wire(),
            former_primary_rule: self.former_primary_rule.wire(),
            members: self.members.wire(),
            events: self.events.wire(),
            unanswered: self.unanswered.wire(),
            notes: self.notes.wire(),
        }
    }
}
