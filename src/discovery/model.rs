//! The manager-neutral discovery model (members, roles, promotion events, the choice of the
//! two nodes) and what every adapter shares: member conninfo, read-only sessions to a
//! manager database.

use crate::lsn::Lsn;
use crate::pg::conninfo::{ConnInfoError, ConnParams};
use crate::pg::session::SessionOptions;
use serde::{Deserialize, Serialize};

/// The HA manager a discovery came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Manager {
    /// Patroni (`--patroni`).
    Patroni,
    /// repmgr (`--repmgr`).
    Repmgr,
    /// pg_auto_failover (`--pg-auto-failover`).
    PgAutoFailover,
    /// CloudNativePG (`--cnpg-status`).
    Cnpg,
}

impl Manager {
    /// The manager's usual name.
    pub fn label(self) -> &'static str {
        match self {
            Manager::Patroni => "Patroni",
            Manager::Repmgr => "repmgr",
            Manager::PgAutoFailover => "pg_auto_failover",
            Manager::Cnpg => "CloudNativePG",
        }
    }

    /// The flag that selects it.
    pub fn flag(self) -> &'static str {
        match self {
            Manager::Patroni => "--patroni",
            Manager::Repmgr => "--repmgr",
            Manager::PgAutoFailover => "--pg-auto-failover",
            Manager::Cnpg => "--cnpg-status",
        }
    }
}

/// A member's role as the manager records it, reduced to what the tool acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The manager's current primary (leader).
    Primary,
    /// A standby (replica) the manager manages.
    Standby,
    /// A primary the manager has demoted or marked failed (typically the former primary).
    Demoted,
    /// A witness or monitor node without data of its own.
    Witness,
    /// Anything else (the manager's own word is in `manager_role`).
    Other,
}

/// One member of the cluster as the manager describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's name in the manager (repmgr `node_name`, pg_auto_failover `nodename`,
    /// CloudNativePG pod name, Patroni `name`).
    pub name: String,
    /// The role, reduced.
    pub role: Role,
    /// The manager's own word for the role and state (e.g. `primary (inactive)`,
    /// `reported primary, goal demoted`).
    pub manager_role: String,
    /// What the manager (or a probe of the server) says about its health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// PostgreSQL's host, when the manager records one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// PostgreSQL's port, when the manager records one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The member's timeline as the manager last saw it (repmgr records none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    /// The member's WAL position as the manager last saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<Lsn>,
    /// The member it replicates from, when the manager records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// The manager's full conninfo for the member (repmgr's `conninfo`); never reported,
    /// since it may hold a password.
    #[serde(skip)]
    pub conninfo: Option<String>,
}

impl Member {
    /// `host:port`, when both are known.
    pub fn address(&self) -> Option<String> {
        match (&self.host, self.port) {
            (Some(h), Some(p)) if h.contains(':') => Some(format!("[{h}]:{p}")),
            (Some(h), Some(p)) => Some(format!("{h}:{p}")),
            _ => None,
        }
    }
}

/// What kind of event the manager recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A member became primary (a failover or switchover).
    Promotion,
    /// A primary was demoted, marked failed or told to step down.
    Demotion,
}

/// A promotion or demotion the manager recorded, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Promotion or demotion.
    pub kind: EventKind,
    /// When the manager recorded it (as the manager wrote it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The member promoted or demoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// For a promotion: the timeline it started, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    /// The WAL position the manager recorded with it (Patroni: the switchpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<Lsn>,
    /// The manager's own description (repmgr `event`/`details`, pg_auto_failover
    /// `description`, ...).
    pub detail: String,
}

/// The report's `discovery` section: which manager, what it listed, and how the nodes were
/// chosen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoverySection {
    /// The manager.
    pub manager: Manager,
    /// Where its records were read (a redacted conninfo, a file, URLs).
    pub source: String,
    /// The cluster's name in the manager (Patroni scope, pg_auto_failover formation/group,
    /// CloudNativePG namespace/name), when it has one.
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
    pub members: Vec<Member>,
    /// The promotions and demotions the manager recorded, oldest first.
    #[serde(default)]
    pub events: Vec<Event>,
    /// Sources that did not answer (members whose own records could not be read), with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unanswered: Vec<String>,
    /// What the manager's records do not tell, and what to do about it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The member chosen as the former primary, with the rule that chose it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormerChoice {
    /// The member.
    pub member: Member,
    /// Which rule decided, in a sentence.
    pub rule: String,
    /// Other members that fit equally well.
    pub tied_with: Vec<String>,
}

/// The outcome of discovery, whichever manager it came from.
#[derive(Clone, Debug)]
pub struct Discovery {
    /// For the report.
    pub section: DiscoverySection,
    /// The current primary, or why there is none.
    pub new_primary: Result<Member, String>,
    /// The former primary, or why it could not be determined.
    pub former_primary: Result<FormerChoice, String>,
    /// The connection parameters every member shares (user, dbname, sslmode, ...): the
    /// manager's `*-conninfo` flag.
    pub template: String,
    /// The Patroni view, kept for the report's `patroni` section and its findings.
    pub patroni: Option<crate::patroni::Discovery>,
}

impl Discovery {
    /// The new primary, or [`DiscoveryError::NoPrimary`].
    pub fn new_primary(&self) -> Result<&Member, DiscoveryError> {
        if let Some(p) = &self.patroni {
            p.new_primary()?;
        }
        self.new_primary
            .as_ref()
            .map_err(|reason| DiscoveryError::NoPrimary {
                manager: self.section.manager.label(),
                source_: self.section.source.clone(),
                reason: reason.clone(),
            })
    }

    /// The former primary, or [`DiscoveryError::NoFormerPrimary`].
    pub fn former_primary(&self) -> Result<&FormerChoice, DiscoveryError> {
        if let Some(p) = &self.patroni {
            p.former_primary()?;
        }
        self.former_primary
            .as_ref()
            .map_err(|reason| DiscoveryError::NoFormerPrimary {
                manager: self.section.manager.label(),
                source_: self.section.source.clone(),
                reason: reason.clone(),
            })
    }

    /// The connection parameters of `member` (see [`member_conninfo`]), with the process
    /// environment for absent keys.
    pub fn conninfo(&self, member: &Member) -> Result<ConnParams, DiscoveryError> {
        member_conninfo(member, &self.template, &|k| std::env::var(k).ok())
    }
}

/// Why discovery failed; every message names the manager, where it was asked, and what was
/// expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// Patroni discovery failed (its own messages).
    #[error(transparent)]
    Patroni(#[from] crate::patroni::PatroniError),
    /// A conninfo flag does not parse.
    #[error("{flag}: {source}")]
    BadConninfo {
        /// The flag.
        flag: &'static str,
        /// The parse error.
        #[source]
        source: ConnInfoError,
    },
    /// The manager's database could not be reached or read.
    #[error("{manager} at {target}: {reason}")]
    Unreachable {
        /// The manager's name.
        manager: &'static str,
        /// Where (`host:port`).
        target: String,
        /// Why.
        reason: String,
    },
    /// The database answered, but does not hold the manager's records.
    #[error("{target} is not a {manager} {what}: {reason}")]
    NotManager {
        /// The manager's name.
        manager: &'static str,
        /// What was expected there (`node`, `monitor`, `Cluster status document`).
        what: &'static str,
        /// Where.
        target: String,
        /// What was found instead.
        reason: String,
    },
    /// No current primary among the members.
    #[error("{manager} ({source_}) names no current primary: {reason}")]
    NoPrimary {
        /// The manager's name.
        manager: &'static str,
        /// Where its records were read.
        source_: String,
        /// The members seen, or why.
        reason: String,
    },
    /// The former primary could not be told from the manager's records.
    #[error("{manager} ({source_}): cannot determine the former primary: {reason}")]
    NoFormerPrimary {
        /// The manager's name.
        manager: &'static str,
        /// Where its records were read.
        source_: String,
        /// Why not.
        reason: String,
    },
    /// A member's connection parameters cannot be built.
    #[error("member {member}: {reason}")]
    MemberConninfo {
        /// The member's name.
        member: String,
        /// Why.
        reason: String,
    },
    /// A status document (CloudNativePG) could not be read.
    #[error("{path}: {reason}")]
    Document {
        /// The file (or `-` for stdin).
        path: String,
        /// Why.
        reason: String,
    },
}

/// The connection parameters of `member`: the manager's own conninfo for it (repmgr), then
/// `template` (`key=value` pairs; `{name}`, and its alias `{pod}`, become the member's name,
/// `{namespace}`/`{cluster}` are left to the adapter), then the member's host and port from
/// the manager when it records them (later keys win, so the member's address always wins
/// unless the template names the host with `{name}`/`{pod}`).
pub fn member_conninfo(
    member: &Member,
    template: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ConnParams, DiscoveryError> {
    let t = template.trim();
    let bad = |reason: String| DiscoveryError::MemberConninfo {
        member: member.name.clone(),
        reason,
    };
    if t.starts_with("postgres://") || t.starts_with("postgresql://") {
        return Err(bad(
            "the member conninfo template must be key=value pairs (e.g. `user=fv dbname=postgres`), not a URL".into(),
        ));
    }
    let quoted_name = crate::quote::conninfo_value(&member.name);
    let templated = t
        .replace("{name}", &member.name)
        .replace("{pod}", &member.name);
    let names_host = t.contains("{name}") || t.contains("{pod}");
    let mut conninfo = member.conninfo.clone().unwrap_or_default();
    conninfo.push(' ');
    conninfo.push_str(&templated);
    if !names_host {
        match (&member.host, member.port) {
            (Some(h), Some(p)) => conninfo.push_str(&format!(" host={} port={p}", crate::quote::conninfo_value(h))),
            (Some(h), None) => conninfo.push_str(&format!(" host={}", crate::quote::conninfo_value(h))),
            _ if member.conninfo.is_some() => {}
            _ => {
                return Err(bad(format!(
                    "the manager records no address for {quoted_name}; give a conninfo template that names its host with {{name}} (e.g. `host={{name}}.example port=5432 user=fv`)"
                )))
            }
        }
    }
    ConnParams::parse(&conninfo, env).map_err(|e| bad(e.to_string()))
}

/// Opens a read-only session to a manager's database, naming the manager on failure.
pub(crate) async fn connect(
    manager: &'static str,
    params: &ConnParams,
    session: &SessionOptions,
) -> Result<crate::pg::session::Session, DiscoveryError> {
    crate::pg::connect(params, session)
        .await
        .map_err(|e| DiscoveryError::Unreachable {
            manager,
            target: params.target(),
            reason: e.to_string(),
        })
}
