//! Patroni's JSON as the tool reads it: the members, the history, the report's `patroni` section, and the errors of reading them.

use crate::lsn::Lsn;
use crate::pg::conninfo::ConnInfoError;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What went wrong while asking Patroni; every message names the URL and what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PatroniError {
    /// The URL is not an http(s) URL.
    #[error("{url}: not an http:// or https:// URL of Patroni's REST API")]
    BadUrl {
        /// The URL as given.
        url: String,
    },
    /// Nothing answered: connection refused, DNS, timeout, TLS.
    #[error("{url}: cannot reach Patroni's REST API ({reason}); expected {expected}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// Why (connection refused, timed out, ...).
        reason: String,
        /// What an answer should have been.
        expected: &'static str,
    },
    /// An HTTP status other than 200 (Patroni answers 503 when it is not ready).
    #[error("{url}: HTTP {status}{body}; expected 200 with {expected}")]
    Status {
        /// The URL asked.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the body, for context (empty or ` (...)`).
        body: String,
        /// What an answer should have been.
        expected: &'static str,
    },
    /// An answer that is not what Patroni sends: HTML, other JSON.
    #[error("{url}: not Patroni's REST API ({reason}); expected {expected}")]
    NotPatroni {
        /// The URL asked.
        url: String,
        /// What the answer was.
        reason: String,
        /// What an answer should have been.
        expected: &'static str,
    },
    /// Several URLs were given and none answered; each one's reason follows.
    #[error("no Patroni URL answered: {0}")]
    NoneAnswered(String),
    /// The URLs belong to different Patroni clusters (scopes).
    #[error("the Patroni URLs belong to different clusters: {0}")]
    MixedClusters(String),
    /// No member of the cluster has the leader role.
    #[error("Patroni ({urls}) reports no running leader among {members}; expected one member with role `leader`")]
    NoLeader {
        /// The URLs that answered.
        urls: String,
        /// The members seen, `name (role, state)`.
        members: String,
    },
    /// The former primary could not be told from /cluster and /history.
    #[error("Patroni ({urls}): cannot determine the former primary: {reason}")]
    NoFormerPrimary {
        /// The URLs that answered.
        urls: String,
        /// Why not.
        reason: String,
    },
    /// A member lacks the `host`/`port` needed to connect to it.
    #[error("Patroni member {name} has no host and port in /cluster")]
    NoAddress {
        /// The member's name.
        name: String,
    },
    /// The conninfo template (`--patroni-conninfo`) with a member's host and port is unusable.
    #[error("--patroni-conninfo for member {member}: {source}")]
    Conninfo {
        /// The member's name.
        member: String,
        /// The parse error.
        #[source]
        source: ConnInfoError,
    },
    /// The template is a URL; only `key=value` templates can take a member's host and port.
    #[error(
        "--patroni-conninfo must be key=value pairs (e.g. `user=fv dbname=postgres`), not a URL"
    )]
    TemplateIsUrl,
}

/// One member of the cluster as `/cluster` describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
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

impl Member {
    /// True for the role of a cluster's primary (`leader`; `master` before Patroni 3).
    pub fn is_leader(&self) -> bool {
        matches!(self.role.as_str(), "leader" | "master" | "primary")
    }

    /// `host:port`, when both are known.
    pub fn address(&self) -> Option<String> {
        match (&self.host, self.port) {
            (Some(h), Some(p)) if h.contains(':') => Some(format!("[{h}]:{p}")),
            (Some(h), Some(p)) => Some(format!("{h}:{p}")),
            _ => None,
        }
    }
}

/// One promotion in `/history`: `[parent_tl, switchpoint, reason, timestamp, new_leader]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
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

/// What `/cluster` answered, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterView {
    /// The cluster's name (`scope`).
    pub scope: Option<String>,
    /// Its members.
    pub members: Vec<Member>,
}

/// The report's `patroni` section: where the nodes came from and the promotion Patroni logged.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
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
    pub promotion: Option<HistoryEntry>,
    /// Every promotion in `/history`, oldest first.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// The members as `/cluster` listed them.
    pub members: Vec<Member>,
}

/// The outcome of discovery: the report section and the two members to compare.
#[derive(Clone, Debug)]
pub struct Discovery {
    /// For the report.
    pub section: PatroniSection,
    /// The current leader, or why there is none.
    pub new_primary: Result<Member, String>,
    /// The former primary, or why it could not be determined.
    pub former_primary: Result<FormerChoice, String>,
}

impl Discovery {
    /// The new primary, or [`PatroniError::NoLeader`].
    pub fn new_primary(&self) -> Result<&Member, PatroniError> {
        self.new_primary
            .as_ref()
            .map_err(|members| PatroniError::NoLeader {
                urls: self.section.urls.join(", "),
                members: members.clone(),
            })
    }

    /// The former primary, or [`PatroniError::NoFormerPrimary`].
    pub fn former_primary(&self) -> Result<&FormerChoice, PatroniError> {
        self.former_primary
            .as_ref()
            .map_err(|reason| PatroniError::NoFormerPrimary {
                urls: self.section.urls.join(", "),
                reason: reason.clone(),
            })
    }
}

/// The member chosen as the former primary, with the rule that chose it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormerChoice {
    /// The member.
    pub member: Member,
    /// Which step of [`choose_former`]'s rule decided, in a sentence.
    pub rule: String,
    /// Other members that fit equally well (a tie the rule could not break).
    pub tied_with: Vec<String>,
}

/// The first `max` characters of `s` on one line.
pub(super) fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}

/// What `GET /cluster` must answer.
pub(super) const EXPECT_CLUSTER: &str = "Patroni's GET /cluster JSON with a `members` list";

/// What `GET /history` must answer.
pub(super) const EXPECT_HISTORY: &str =
    "Patroni's GET /history JSON list of [timeline, lsn, reason, ...]";

/// What `GET /patroni` must answer.
pub(super) const EXPECT_PATRONI: &str = "Patroni's GET /patroni JSON";

/// Parses `/cluster`: an object with `members`, each with `name` and `role`.
pub fn parse_cluster(url: &str, v: &serde_json::Value) -> Result<ClusterView, PatroniError> {
    let not = |reason: String| PatroniError::NotPatroni {
        url: url.to_string(),
        reason,
        expected: EXPECT_CLUSTER,
    };
    let members = v
        .get("members")
        .and_then(|m| m.as_array())
        .ok_or_else(|| not("JSON without a `members` list".into()))?;
    let mut out = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let s = |k: &str| m.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let (Some(name), Some(role)) = (s("name"), s("role")) else {
            return Err(not(format!("member {i} has no `name` and `role`")));
        };
        let lsn = ["lsn", "replay_lsn", "receive_lsn"]
            .iter()
            .find_map(|k| s(k).and_then(|x| x.parse::<Lsn>().ok()));
        out.push(Member {
            name,
            role,
            state: s("state"),
            host: s("host"),
            port: m
                .get("port")
                .and_then(|p| p.as_u64().or_else(|| p.as_str()?.parse().ok()))
                .and_then(|p| u16::try_from(p).ok()),
            api_url: s("api_url"),
            timeline: m
                .get("timeline")
                .and_then(|t| t.as_u64())
                .and_then(|t| u32::try_from(t).ok()),
            lsn,
            lag: m.get("lag").map(|l| match l {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        });
    }
    Ok(ClusterView {
        scope: v.get("scope").and_then(|s| s.as_str()).map(str::to_string),
        members: out,
    })
}

/// Parses `/history`: `[[parent_tl, switchpoint_lsn_as_integer, reason, timestamp, new_leader], ...]`
/// (older Patroni versions send only the first three or four).
pub fn parse_history(url: &str, v: &serde_json::Value) -> Result<Vec<HistoryEntry>, PatroniError> {
    let not = |reason: String| PatroniError::NotPatroni {
        url: url.to_string(),
        reason,
        expected: EXPECT_HISTORY,
    };
    let list = v
        .as_array()
        .ok_or_else(|| not("JSON that is not a list".into()))?;
    list.iter()
        .enumerate()
        .map(|(i, e)| {
            let bad = || not(format!("entry {i} is not [timeline, lsn, reason, ...]"));
            let a = e.as_array().filter(|a| a.len() >= 3).ok_or_else(bad)?;
            let tl = a[0]
                .as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(bad)?;
            let lsn = a[1].as_u64().ok_or_else(bad)?;
            let text = |j: usize| a.get(j).and_then(|x| x.as_str()).map(str::to_string);
            Ok(HistoryEntry {
                parent_timeline: tl,
                switchpoint_lsn: Lsn(lsn),
                reason: text(2).unwrap_or_default(),
                timestamp: text(3),
                new_leader: text(4),
            })
        })
        .collect()
}

/// Parses a Patroni timestamp (`2026-11-27 06:38:24.953+00:00` or RFC 3339).
pub(super) fn parse_time(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim().replacen(' ', "T", 1);
    OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339).ok()
}
