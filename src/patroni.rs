//! Patroni discovery: read a Patroni cluster's REST API (`GET /cluster`, `GET /history`, and
//! a member's `GET /patroni` when needed) and pick the new primary and the former primary.
//!
//! The HTTP part is a thin blocking client ([`Client`]) with connect and total timeouts; the
//! parsing ([`parse_cluster`], [`parse_history`]) and the choice ([`choose_former`]) are pure
//! functions, tested on recorded answers. The result goes into the report as a
//! [`PatroniSection`]. Nothing here prints or writes to PostgreSQL.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::lsn::Lsn;
use crate::pg::conninfo::{ConnInfoError, ConnParams};

/// The largest answer read from Patroni (a /cluster of a few hundred members is far smaller).
const MAX_BODY: u64 = 4 * 1024 * 1024;

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

/// HTTP timeouts for every request to Patroni.
#[derive(Clone, Copy, Debug)]
pub struct HttpOptions {
    /// Time allowed to open the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole request, connection included.
    pub timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
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

impl Discovery {
    /// The manager-neutral form ([`crate::discovery::Discovery`]), with `template`
    /// (`--patroni-conninfo`) for every member's conninfo; this view is kept inside it for the
    /// report's `patroni` section.
    pub fn neutral(&self, template: &str) -> crate::discovery::Discovery {
        use crate::discovery as d;
        let member = |m: &Member| d::Member {
            name: m.name.clone(),
            role: if m.is_leader() {
                d::Role::Primary
            } else {
                d::Role::Standby
            },
            manager_role: m.role.clone(),
            state: m.state.clone(),
            host: m.host.clone(),
            port: m.port,
            timeline: m.timeline,
            lsn: m.lsn,
            upstream: None,
            conninfo: None,
        };
        let events = self
            .section
            .history
            .iter()
            .map(|h| d::Event {
                kind: d::EventKind::Promotion,
                time: h.timestamp.clone(),
                member: h.new_leader.clone(),
                timeline: Some(h.parent_timeline + 1),
                lsn: Some(h.switchpoint_lsn),
                detail: h.reason.clone(),
            })
            .collect();
        d::Discovery {
            section: d::DiscoverySection {
                manager: d::Manager::Patroni,
                source: self.section.urls.join(", "),
                cluster: self.section.scope.clone(),
                new_primary: self.section.new_primary.clone(),
                former_primary: self.section.former_primary.clone(),
                former_primary_rule: self.section.former_primary_rule.clone(),
                members: self.section.members.iter().map(member).collect(),
                events,
                unanswered: self.section.unanswered.clone(),
                notes: Vec::new(),
            },
            new_primary: self.new_primary.as_ref().map(member).map_err(|members| {
                PatroniError::NoLeader {
                    urls: self.section.urls.join(", "),
                    members: members.clone(),
                }
                .to_string()
            }),
            former_primary: self
                .former_primary
                .as_ref()
                .map(|c| d::FormerChoice {
                    member: member(&c.member),
                    rule: c.rule.clone(),
                    tied_with: c.tied_with.clone(),
                })
                .map_err(Clone::clone),
            template: template.to_string(),
            patroni: Some(self.clone()),
        }
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

/// A blocking HTTP client for Patroni's REST API with connect and total timeouts.
pub struct Client {
    agent: ureq::Agent,
}

impl Client {
    /// A client whose every request is bounded by `opts`.
    pub fn new(opts: HttpOptions) -> Client {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(opts.connect_timeout.min(opts.timeout)))
            .timeout_global(Some(opts.timeout))
            .http_status_as_error(false)
            .max_redirects(3)
            .user_agent(format!("failover-verify/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client { agent }
    }

    /// `GET url`, expecting 200 and a JSON body; `expected` names what for error messages.
    pub fn get_json(
        &self,
        url: &str,
        expected: &'static str,
    ) -> Result<serde_json::Value, PatroniError> {
        let unreachable = |reason: String| PatroniError::Unreachable {
            url: url.to_string(),
            reason,
            expected,
        };
        let mut resp = self
            .agent
            .get(url)
            .header("Accept", "application/json")
            .call()
            .map_err(|e| unreachable(http_reason(&e)))?;
        let status = resp.status().as_u16();
        let mime = resp.body().mime_type().map(str::to_string);
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| unreachable(http_reason(&e)))?;
        if status != 200 {
            let snippet = if body.trim_start().starts_with('<') {
                "an HTML page".to_string()
            } else {
                one_line(&body, 80)
            };
            return Err(PatroniError::Status {
                url: url.to_string(),
                status,
                body: if snippet.is_empty() {
                    String::new()
                } else {
                    format!(" ({snippet})")
                },
                expected,
            });
        }
        serde_json::from_str(&body).map_err(|_| PatroniError::NotPatroni {
            url: url.to_string(),
            reason: match mime {
                Some(m) if m != "application/json" => format!("answered {m}, not JSON"),
                _ => "the body is not JSON".into(),
            },
            expected,
        })
    }
}

/// A ureq error as a short reason: `connection refused`, `timed out`, ...
fn http_reason(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::ConnectionReset => "connection reset".into(),
            std::io::ErrorKind::TimedOut => "timed out".into(),
            _ => io.to_string(),
        },
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::BodyExceedsLimit(n) => format!("answer larger than {n} bytes"),
        other => other.to_string(),
    }
}

/// The first `max` characters of `s` on one line.
fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}

/// The base of a Patroni REST URL: scheme and authority, with a trailing `/`, `/patroni` or
/// `/cluster` removed; a bare `host:port` gets `http://`.
pub fn base_url(url: &str) -> Result<String, PatroniError> {
    let url = url.trim();
    let with_scheme = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let lower = with_scheme.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
        return Err(PatroniError::BadUrl {
            url: url.to_string(),
        });
    }
    let mut base = with_scheme.trim_end_matches('/').to_string();
    for suffix in ["/patroni", "/cluster", "/history"] {
        if let Some(b) = base.strip_suffix(suffix) {
            base = b.trim_end_matches('/').to_string();
        }
    }
    Ok(base)
}

/// What `GET /cluster` must answer.
const EXPECT_CLUSTER: &str = "Patroni's GET /cluster JSON with a `members` list";
/// What `GET /history` must answer.
const EXPECT_HISTORY: &str = "Patroni's GET /history JSON list of [timeline, lsn, reason, ...]";
/// What `GET /patroni` must answer.
const EXPECT_PATRONI: &str = "Patroni's GET /patroni JSON";

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
fn parse_time(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim().replacen(' ', "T", 1);
    OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339).ok()
}

/// How long before the promotion's timestamp a demoted leader may have been started again
/// (the promotion may be slower than Patroni's two-second pause after releasing the key).
pub const RESTART_SLACK: Duration = Duration::from_secs(30);

/// Picks the former primary: the member that led `parent_tl`, the timeline that the last
/// promotion in `/history` ended. Patroni does not record that leader by name, so:
///
/// 1. **Named by history.** If `/history` also holds the promotion that *started* `parent_tl`
///    (an entry whose parent is `parent_tl - 1`), its `new_leader` led `parent_tl` until the
///    last promotion: that member is chosen (when it is listed in `/cluster` and is not the
///    current leader).
/// 2. **Still on the old timeline.** Otherwise (the first failover of a cluster, or an older
///    Patroni that records no names) the candidates are the non-leader members whose
///    `timeline` is still `parent_tl`: a former primary that was not rewound cannot follow the
///    new timeline, so it stays there. One candidate is chosen.
/// 3. **Most WAL.** Among several (typically the former primary and the former synchronous
///    standby, which cannot follow either), the one with the highest WAL position: a primary
///    holds at least what its standbys received.
/// 4. **Restarted at the promotion.** On a tie, the one whose PostgreSQL started last, when
///    that is after every other's start and no earlier than the promotion's timestamp less
///    [`RESTART_SLACK`] (`postmaster_start_time` from its `GET /patroni`, fetched by
///    `start_time`; a member without an answer does not compete): a demoted leader is stopped and started again
///    (Patroni's graceful failover stops it, releases the leader key, and starts it as a
///    replica two seconds later; a crashed one comes back later still), while a former standby
///    is only reconfigured and keeps running.
/// 5. Still tied: the first by name, with the others in [`FormerChoice::tied_with`]. Any of
///    them holds the old timeline's WAL as far as it was replicated; the report says so, and
///    `--former-primary` names the node outright.
pub fn choose_former(
    leader: &Member,
    members: &[Member],
    history: &[HistoryEntry],
    start_time: &dyn Fn(&Member) -> Option<String>,
) -> Result<FormerChoice, String> {
    let promotion = history.last().ok_or_else(|| {
        "Patroni's /history is empty: this cluster has never promoted a replica".to_string()
    })?;
    let parent = promotion.parent_timeline;
    let others = || members.iter().filter(|m| m.name != leader.name);

    // 1. The promotion that started the parent timeline names its leader.
    let named = history
        .iter()
        .rev()
        .skip(1)
        .find(|e| e.parent_timeline + 1 == parent)
        .and_then(|e| e.new_leader.clone())
        .filter(|n| *n != leader.name);
    if let Some(name) = &named {
        if let Some(m) = others().find(|m| m.name == *name) {
            return Ok(FormerChoice {
                member: m.clone(),
                rule: format!(
                    "/history names {name} as the member promoted to timeline {parent}, so it led timeline {parent} until the last promotion"
                ),
                tied_with: Vec::new(),
            });
        }
    }

    // 2. Members still on the parent timeline.
    let candidates: Vec<&Member> = others()
        .filter(|m| m.timeline == Some(parent) && m.address().is_some())
        .collect();
    match candidates.len() {
        0 => {
            return Err(match named {
                Some(n) => format!(
                    "/history names {n} as timeline {parent}'s leader, but /cluster does not list it (is its Patroni running?), and no other member stayed on timeline {parent}; name it with --former-primary"
                ),
                None => format!(
                    "no member stayed on timeline {parent}, the timeline the last promotion ended (was the former primary rewound, reinitialised, or is its Patroni down?); name it with --former-primary"
                ),
            })
        }
        1 => {
            return Ok(FormerChoice {
                member: candidates[0].clone(),
                rule: format!(
                    "the only member still on timeline {parent}, the timeline the last promotion ended"
                ),
                tied_with: Vec::new(),
            })
        }
        _ => {}
    }

    // 3. The most WAL.
    let best = candidates.iter().filter_map(|m| m.lsn).max();
    let top: Vec<&Member> = candidates
        .iter()
        .copied()
        .filter(|m| m.lsn == best)
        .collect();
    let names = |v: &[&Member]| v.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
    if top.len() == 1 {
        return Ok(FormerChoice {
            member: top[0].clone(),
            rule: format!(
                "of the members still on timeline {parent} ({}), the one with the most WAL ({})",
                names(&candidates).join(", "),
                best.map(|l| l.to_string()).unwrap_or_default()
            ),
            tied_with: Vec::new(),
        });
    }

    // 4. Restarted at the promotion.
    let promoted_at = promotion
        .timestamp
        .as_deref()
        .and_then(parse_time)
        .map(|t| t - RESTART_SLACK);
    if let Some(at) = promoted_at {
        let mut started: Vec<(OffsetDateTime, &Member)> = top
            .iter()
            .filter_map(|m| Some((start_time(m).as_deref().and_then(parse_time)?, *m)))
            .collect();
        started.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
        let last_alone = match started.as_slice() {
            [(t, m)] => (*t >= at).then_some(*m),
            [(t, m), (next, _), ..] => (*t >= at && t > next).then_some(*m),
            [] => None,
        };
        if let Some(m) = last_alone {
            return Ok(FormerChoice {
                member: m.clone(),
                rule: format!(
                    "of the members still on timeline {parent} with the same WAL ({}), the one whose PostgreSQL restarted last, at the promotion (a demoted leader restarts; a former standby keeps running)",
                    names(&top).join(", ")
                ),
                tied_with: Vec::new(),
            });
        }
    }

    // 5. A tie.
    let mut tied = top.clone();
    tied.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(FormerChoice {
        member: tied[0].clone(),
        rule: format!(
            "ambiguous: members {} all stayed on timeline {parent} with the same WAL; chose {}, the first by name",
            names(&tied).join(", "),
            tied[0].name
        ),
        tied_with: tied[1..].iter().map(|m| m.name.clone()).collect(),
    })
}

/// One URL's answers.
struct Answer {
    base: String,
    cluster: ClusterView,
    history: Result<Vec<HistoryEntry>, PatroniError>,
}

/// Asks one URL for `/cluster` and `/history`.
fn ask(client: &Client, url: &str) -> Result<Answer, PatroniError> {
    let base = base_url(url)?;
    let curl = format!("{base}/cluster");
    let cluster = parse_cluster(&curl, &client.get_json(&curl, EXPECT_CLUSTER)?)?;
    let hurl = format!("{base}/history");
    let history = client
        .get_json(&hurl, EXPECT_HISTORY)
        .and_then(|v| parse_history(&hurl, &v));
    Ok(Answer {
        base,
        cluster,
        history,
    })
}

/// Asks every URL (in parallel, each bounded by the client's timeouts), merges what answered
/// (members by name, the first URL's view first; the longest history), and picks the new
/// primary (the member with role `leader`) and the former primary ([`choose_former`]).
///
/// Fails only when no URL answered as Patroni does, or the URLs are different clusters; a
/// missing leader or former primary is left in the [`Discovery`] for the caller to judge
/// (a flag may name that node).
pub fn discover(urls: &[String], opts: HttpOptions) -> Result<Discovery, PatroniError> {
    let client = Client::new(opts);
    let answers: Vec<Result<Answer, PatroniError>> = std::thread::scope(|s| {
        let handles: Vec<_> = urls
            .iter()
            .map(|u| {
                let client = &client;
                s.spawn(move || ask(client, u))
            })
            .collect();
        handles
            .into_iter()
            .zip(urls)
            .map(|(h, u)| {
                h.join().unwrap_or_else(|_| {
                    Err(PatroniError::Unreachable {
                        url: u.clone(),
                        reason: "the request thread panicked".into(),
                        expected: EXPECT_CLUSTER,
                    })
                })
            })
            .collect()
    });
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for a in answers {
        match a {
            Ok(a) => ok.push(a),
            Err(e) => failed.push(e),
        }
    }
    if ok.is_empty() {
        return Err(if failed.len() == 1 {
            failed.remove(0)
        } else {
            PatroniError::NoneAnswered(
                failed
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        });
    }
    let scopes: Vec<&str> = ok
        .iter()
        .filter_map(|a| a.cluster.scope.as_deref())
        .collect();
    if scopes.iter().any(|s| *s != scopes[0]) {
        return Err(PatroniError::MixedClusters(
            ok.iter()
                .map(|a| {
                    format!(
                        "{} is {}",
                        a.base,
                        a.cluster.scope.as_deref().unwrap_or("?")
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    let mut members: Vec<Member> = Vec::new();
    for a in &ok {
        for m in &a.cluster.members {
            if !members.iter().any(|x| x.name == m.name) {
                members.push(m.clone());
            }
        }
    }
    let mut unanswered: Vec<String> = failed.iter().map(|e| e.to_string()).collect();
    let mut history: Vec<HistoryEntry> = Vec::new();
    for a in &ok {
        match &a.history {
            Ok(h) if h.len() > history.len() => history = h.clone(),
            Ok(_) => {}
            Err(e) => unanswered.push(e.to_string()),
        }
    }
    let leaders: Vec<&Member> = members.iter().filter(|m| m.is_leader()).collect();
    let new_primary = match leaders.as_slice() {
        [one] => Ok((*one).clone()),
        _ => Err(members
            .iter()
            .map(|m| {
                format!(
                    "{} ({}, {})",
                    m.name,
                    m.role,
                    m.state.as_deref().unwrap_or("?")
                )
            })
            .collect::<Vec<_>>()
            .join(", ")),
    };
    let start_time = |m: &Member| -> Option<String> {
        let url = m.api_url.as_deref()?;
        let v = client.get_json(url, EXPECT_PATRONI).ok()?;
        v.get("postmaster_start_time")?.as_str().map(str::to_string)
    };
    let former_primary = match &new_primary {
        Ok(leader) => choose_former(leader, &members, &history, &start_time),
        Err(_) => Err("there is no leader to compare it with".into()),
    };
    let section = PatroniSection {
        urls: ok.iter().map(|a| a.base.clone()).collect(),
        unanswered,
        scope: ok.iter().find_map(|a| a.cluster.scope.clone()),
        new_primary: new_primary.as_ref().ok().map(|m| m.name.clone()),
        former_primary: former_primary.as_ref().ok().map(|c| c.member.name.clone()),
        former_primary_rule: former_primary.as_ref().ok().map(|c| c.rule.clone()),
        promotion: history.last().cloned(),
        history,
        members,
    };
    Ok(Discovery {
        section,
        new_primary,
        former_primary,
    })
}

/// The connection parameters of `member`: its `host` and `port` from `/cluster`, everything
/// else (user, dbname, password, sslmode, ...) from `template` (`key=value` pairs) and the
/// PG* environment through `env`.
pub fn member_conninfo(
    member: &Member,
    template: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ConnParams, PatroniError> {
    let t = template.trim();
    if t.starts_with("postgres://") || t.starts_with("postgresql://") {
        return Err(PatroniError::TemplateIsUrl);
    }
    let (Some(host), Some(port)) = (&member.host, member.port) else {
        return Err(PatroniError::NoAddress {
            name: member.name.clone(),
        });
    };
    let quoted = host.replace('\\', "\\\\").replace('\'', "\\'");
    // Later keys win, so the member's address overrides any host/port in the template.
    let conninfo = format!("{t} host='{quoted}' port={port}");
    ConnParams::parse(&conninfo, env).map_err(|source| PatroniError::Conninfo {
        member: member.name.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, role: &str, tl: Option<u32>, lsn: Option<u64>) -> Member {
        Member {
            name: name.into(),
            role: role.into(),
            state: Some("running".into()),
            host: Some("127.0.0.1".into()),
            port: Some(5432),
            api_url: Some(format!("http://127.0.0.1:8008/{name}")),
            timeline: tl,
            lsn: lsn.map(Lsn),
            lag: None,
        }
    }

    fn entry(tl: u32, leader: Option<&str>) -> HistoryEntry {
        HistoryEntry {
            parent_timeline: tl,
            switchpoint_lsn: Lsn(0x300_0000 * u64::from(tl)),
            reason: "no recovery target specified".into(),
            timestamp: Some("2026-11-27T06:38:22.336657+00:00".into()),
            new_leader: leader.map(str::to_string),
        }
    }

    const CLUSTER: &str = r#"{"members": [
        {"name": "pg1", "role": "replica", "state": "running", "api_url": "http://127.0.0.1:28001/patroni", "host": "127.0.0.1", "port": 25431, "timeline": 1, "receive_lag": 280, "receive_lsn": "0/4000088", "replay_lag": 0, "replay_lsn": "0/4018360", "lag": 0, "lsn": "0/4018360"},
        {"name": "pg2", "role": "leader", "state": "running", "api_url": "http://127.0.0.1:28002/patroni", "host": "127.0.0.1", "port": 25432, "timeline": 2, "tags": {"nostream": true}},
        {"name": "pg3", "role": "replica", "state": "running", "api_url": "http://127.0.0.1:28003/patroni", "host": "127.0.0.1", "port": 25433, "timeline": 1, "lag": "unknown", "lsn": "0/4018360"}
    ], "scope": "fvtest"}"#;

    #[test]
    fn parses_a_real_cluster_answer() {
        let v: serde_json::Value = serde_json::from_str(CLUSTER).unwrap();
        let c = parse_cluster("u", &v).unwrap();
        assert_eq!(c.scope.as_deref(), Some("fvtest"));
        assert_eq!(c.members.len(), 3);
        assert_eq!(c.members[0].lsn, Some("0/4018360".parse().unwrap()));
        assert_eq!(c.members[0].address().as_deref(), Some("127.0.0.1:25431"));
        assert!(c.members[1].is_leader());
        assert_eq!(c.members[1].lsn, None);
        assert_eq!(c.members[2].lag.as_deref(), Some("unknown"));
    }

    #[test]
    fn rejects_json_that_is_not_patroni() {
        let v: serde_json::Value = serde_json::from_str(r#"{"status": "ok"}"#).unwrap();
        let e = parse_cluster("http://x/cluster", &v)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("http://x/cluster: not Patroni's REST API"),
            "{e}"
        );
        assert!(e.contains("members"), "{e}");
        let v: serde_json::Value = serde_json::from_str(r#"{"members": [{"x": 1}]}"#).unwrap();
        assert!(parse_cluster("u", &v).is_err());
        let v: serde_json::Value = serde_json::from_str(r#"[[1, "x", "r"]]"#).unwrap();
        assert!(parse_history("u", &v).is_err());
    }

    #[test]
    fn parses_history_of_several_patroni_versions() {
        let v: serde_json::Value = serde_json::from_str(
            r#"[[1, 67109000, "no recovery target specified"],
                [2, 83886240, "no recovery target specified", "2026-11-27T06:38:22+00:00"],
                [3, 100663456, "no recovery target specified", "2026-11-27T06:40:00+00:00", "pg3"]]"#,
        )
        .unwrap();
        let h = parse_history("u", &v).unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].switchpoint_lsn.to_string(), "0/4000088");
        assert_eq!(h[0].timestamp, None);
        assert_eq!(h[2].new_leader.as_deref(), Some("pg3"));
    }

    #[test]
    fn history_names_the_former_leader() {
        // pg1 led TL1, pg2 was promoted to TL2, then pg3 to TL3: pg2 led TL2.
        let leader = member("pg3", "leader", Some(3), None);
        let members = [
            member("pg1", "replica", Some(2), Some(9)),
            member("pg2", "replica", Some(2), Some(5)),
            leader.clone(),
        ];
        let h = [entry(1, Some("pg2")), entry(2, Some("pg3"))];
        let c = choose_former(&leader, &members, &h, &|_| None).unwrap();
        assert_eq!(c.member.name, "pg2");
        assert!(c.rule.contains("/history names pg2"), "{}", c.rule);
    }

    #[test]
    fn a_single_member_on_the_old_timeline() {
        let leader = member("b", "leader", Some(2), None);
        let members = [
            member("a", "replica", Some(1), Some(5)),
            leader.clone(),
            member("c", "replica", Some(2), Some(9)),
        ];
        let c = choose_former(&leader, &members, &[entry(1, Some("b"))], &|_| None).unwrap();
        assert_eq!(c.member.name, "a");
        assert!(c.tied_with.is_empty());
    }

    #[test]
    fn most_wal_then_restart_time_then_name() {
        let leader = member("b", "leader", Some(2), None);
        let h = [entry(1, Some("b"))];
        // More WAL wins.
        let members = [
            member("a", "replica", Some(1), Some(9)),
            leader.clone(),
            member("c", "replica", Some(1), Some(5)),
        ];
        assert_eq!(
            choose_former(&leader, &members, &h, &|_| None)
                .unwrap()
                .member
                .name,
            "a"
        );
        // Same WAL: the one restarted after the promotion.
        let members = [
            member("a", "replica", Some(1), Some(9)),
            leader.clone(),
            member("c", "replica", Some(1), Some(9)),
        ];
        let started = |m: &Member| {
            Some(if m.name == "c" {
                "2026-11-27 06:38:24.953091+00:00".to_string()
            } else {
                "2026-11-27 06:30:56.252682+00:00".to_string()
            })
        };
        let c = choose_former(&leader, &members, &h, &started).unwrap();
        assert_eq!(c.member.name, "c");
        assert!(
            c.rule.contains("restarted last, at the promotion"),
            "{}",
            c.rule
        );
        // A young cluster: the former standby started shortly before the promotion, the
        // demoted leader after it; the later start wins.
        let young = |m: &Member| {
            Some(if m.name == "c" {
                "2026-11-27 06:38:24.953091+00:00".to_string()
            } else {
                "2026-11-27 06:38:12.357283+00:00".to_string()
            })
        };
        assert_eq!(
            choose_former(&leader, &members, &h, &young)
                .unwrap()
                .member
                .name,
            "c"
        );
        // Both started long before the promotion: nothing to tell.
        let old = |_: &Member| Some("2026-11-27 05:00:00+00:00".to_string());
        assert!(!choose_former(&leader, &members, &h, &old)
            .unwrap()
            .tied_with
            .is_empty());
        // Nothing tells them apart: the first by name, the tie reported.
        let c = choose_former(&leader, &members, &h, &|_| None).unwrap();
        assert_eq!(c.member.name, "a");
        assert_eq!(c.tied_with, vec!["c".to_string()]);
        assert!(c.rule.starts_with("ambiguous"), "{}", c.rule);
    }

    #[test]
    fn nothing_to_choose() {
        let leader = member("b", "leader", Some(2), None);
        let members = [leader.clone(), member("c", "replica", Some(2), Some(9))];
        let e = choose_former(&leader, &members, &[], &|_| None).unwrap_err();
        assert!(e.contains("/history is empty"), "{e}");
        let e = choose_former(&leader, &members, &[entry(1, None)], &|_| None).unwrap_err();
        assert!(e.contains("no member stayed on timeline 1"), "{e}");
    }

    #[test]
    fn base_urls() {
        assert_eq!(base_url("http://h:8008/").unwrap(), "http://h:8008");
        assert_eq!(base_url("h:8008").unwrap(), "http://h:8008");
        assert_eq!(
            base_url("https://h:8008/patroni").unwrap(),
            "https://h:8008"
        );
        assert!(base_url("ftp://h").is_err());
        assert!(base_url("http://").is_err());
    }

    #[test]
    fn conninfo_from_template_and_member() {
        let m = member("pg1", "replica", Some(1), None);
        let env = |k: &str| (k == "PGPASSWORD").then(|| "pw".to_string());
        let p = member_conninfo(&m, "user=fv dbname=app host=ignored port=1", &env).unwrap();
        assert_eq!(p.target(), "127.0.0.1:5432");
        assert_eq!(p.user(), "fv");
        assert_eq!(p.dbname(), "app");
        assert_eq!(p.password(), Some("pw"));
        assert!(matches!(
            member_conninfo(&m, "postgres://x@y/z", &env),
            Err(PatroniError::TemplateIsUrl)
        ));
    }
}
