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
    /// The history file's text as the server sent it (kept for an evidence bundle; not
    /// part of the report).
    #[serde(skip)]
    pub history_file: Option<String>,
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

use crate::finding::{Finding, FindingId};
use crate::pg::connect_replication;
use crate::pg::conninfo::ConnParams;
use crate::pg::error::PgError;
use crate::pg::replication::{ReplicationClient, ReplicationOptions};
use crate::pg::session::{Session, SessionOptions};

/// One query for everything SQL can tell; LSNs as text so they parse into [`Lsn`].
const FACTS_SQL: &str = "\
SELECT current_setting('server_version'),
       current_setting('server_version_num')::int4,
       (SELECT system_identifier::text FROM pg_control_system()),
       pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END,
       pg_last_wal_receive_lsn()::text,
       pg_last_wal_replay_lsn()::text,
       (SELECT received_tli::int4 FROM pg_stat_wal_receiver LIMIT 1),
       c.checkpoint_lsn::text, c.redo_lsn::text, c.timeline_id::int4,
       (SELECT setting::int8 FROM pg_settings WHERE name = 'wal_segment_size'),
       pg_postmaster_start_time()::text,
       current_setting('port')::int4,
       (SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user),
       to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
  FROM pg_control_checkpoint() c";

/// Why the facts of a node could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    /// A query or connection failed.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// The server answered with something that is not what PostgreSQL sends.
    #[error("{target}: unexpected answer to {what}: {detail}")]
    Unexpected {
        /// host:port.
        target: String,
        /// Which value.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
}

fn parse_lsn(
    target: &str,
    what: &'static str,
    v: Option<String>,
) -> Result<Option<Lsn>, FactsError> {
    v.map(|s| {
        s.parse::<Lsn>().map_err(|e| FactsError::Unexpected {
            target: target.to_string(),
            what,
            detail: e.to_string(),
        })
    })
    .transpose()
}

/// Reads a node's facts over an open read-only session, plus its timeline and history over a
/// replication connection when the role may open one. Findings say what could not be read.
pub async fn read_facts(
    session: &Session,
    params: &ConnParams,
    opts: &SessionOptions,
) -> Result<(NodeFacts, Vec<Finding>), FactsError> {
    let target = params.target();
    let row = session.query_one(FACTS_SQL, &[]).await?;
    let mut findings = Vec::new();
    let in_recovery: bool = row.get(3);
    let insert_lsn = parse_lsn(&target, "pg_current_wal_insert_lsn", row.get(4))?;
    let current_lsn = parse_lsn(&target, "pg_current_wal_lsn", row.get(5))?;
    let walfile_tli: Option<String> = row.get(6);
    let receive_lsn = parse_lsn(&target, "pg_last_wal_receive_lsn", row.get(7))?;
    let replay_lsn = parse_lsn(&target, "pg_last_wal_replay_lsn", row.get(8))?;
    let received_tli: Option<i32> = row.get(9);
    let checkpoint_tli: Option<i32> = row.get(12);
    let sysid: Option<String> = row.get(2);
    let system_identifier = sysid
        .as_deref()
        .and_then(|s| s.parse::<u64>().ok())
        .map(SystemId)
        .ok_or_else(|| FactsError::Unexpected {
            target: target.clone(),
            what: "pg_control_system().system_identifier",
            detail: format!("{sysid:?}"),
        })?;
    let can_replicate: Option<bool> = row.get(16);
    let end_of_wal = if in_recovery {
        receive_lsn.max(replay_lsn).unwrap_or_default()
    } else {
        insert_lsn.unwrap_or_default()
    };
    let mut facts = NodeFacts {
        server_version: row.get(0),
        server_version_num: u32::try_from(row.get::<_, i32>(1)).unwrap_or_default(),
        system_identifier,
        in_recovery,
        insert_lsn,
        current_lsn,
        receive_lsn,
        replay_lsn,
        end_of_wal,
        checkpoint_lsn: parse_lsn(&target, "checkpoint_lsn", row.get(10))?,
        redo_lsn: parse_lsn(&target, "redo_lsn", row.get(11))?,
        checkpoint_timeline: checkpoint_tli.map(|t| TimelineId(t as u32)),
        wal_segment_size: row.get::<_, Option<i64>>(13).unwrap_or_default() as u64,
        postmaster_start_time: row.get(14),
        port: row
            .get::<_, Option<i32>>(15)
            .and_then(|p| u16::try_from(p).ok()),
        can_replicate: can_replicate.unwrap_or(false),
        read_at: row.get(17),
        ..NodeFacts::default()
    };

    // The timeline: IDENTIFY_SYSTEM is exact on both roles; without REPLICATION fall back to
    // the WAL file name (primary), the WAL receiver, or the last checkpoint (standby).
    let mut repl = None;
    if facts.can_replicate {
        match connect_replication(params, &replication_options(opts)).await {
            Ok(mut client) => match client.identify_system().await {
                Ok(id) => {
                    facts.timeline = id.timeline;
                    facts.timeline_source = "IDENTIFY_SYSTEM".into();
                    repl = Some(client);
                }
                Err(e) => findings.push(replication_finding(&target, &e)),
            },
            Err(e) => findings.push(replication_finding(&target, &e)),
        }
    }
    if facts.timeline_source.is_empty() {
        let from_walfile = walfile_tli
            .as_deref()
            .and_then(|s| u32::from_str_radix(s, 16).ok());
        let (tli, source) = match (from_walfile, received_tli, checkpoint_tli) {
            (Some(t), _, _) => (t, "pg_walfile_name(pg_current_wal_lsn())"),
            (None, Some(t), _) => (t as u32, "pg_stat_wal_receiver.received_tli"),
            (None, None, Some(t)) => (t as u32, "pg_control_checkpoint().timeline_id"),
            (None, None, None) => (0, "unknown"),
        };
        facts.timeline = TimelineId(tli);
        facts.timeline_source = source.into();
    }

    read_history(session, repl.as_mut(), &mut facts, &target).await;
    if let Some(problem) = &facts.history_problem {
        findings.push(Finding {
            severity: FindingId::HistoryUnreadable.severity(),
            id: FindingId::HistoryUnreadable,
            message: format!(
                "{target}: the history of timeline {} could not be read: {problem}",
                facts.timeline
            ),
            hint: Some(
                "give the role the REPLICATION attribute (ALTER ROLE name REPLICATION, plus a pg_hba.conf replication line), or GRANT EXECUTE ON FUNCTION pg_read_file(text) TO name".into(),
            ),
        });
    }
    Ok((facts, findings))
}

/// Replication timeouts derived from the session's.
pub fn replication_options(opts: &SessionOptions) -> ReplicationOptions {
    ReplicationOptions {
        connect_timeout: opts.connect_timeout,
        command_timeout: opts.statement_timeout,
        ..ReplicationOptions::default()
    }
}

/// A finding for a replication connection that could not be used.
fn replication_finding(target: &str, e: &PgError) -> Finding {
    Finding {
        severity: FindingId::ReplicationUnavailable.severity(),
        id: FindingId::ReplicationUnavailable,
        message: format!("{target}: replication connection not used: {e}"),
        hint: e.hint().map(str::to_string),
    }
}

/// Reads the `.history` file of the node's timeline: replication first, then `pg_read_file`.
async fn read_history(
    session: &Session,
    repl: Option<&mut ReplicationClient>,
    facts: &mut NodeFacts,
    target: &str,
) {
    let tli = facts.timeline;
    if tli.0 <= 1 {
        facts.history = Some(TimelineHistory::root(TimelineId(tli.0.max(1))));
        facts.history_source = HistorySource::NotNeeded;
        return;
    }
    let file = tli.history_file_name();
    let mut problems = Vec::new();
    if let Some(client) = repl {
        match client.timeline_history(tli).await {
            Ok((_name, content)) => {
                return set_history(facts, target, &file, &content, HistorySource::Replication)
            }
            Err(e) => problems.push(format!("TIMELINE_HISTORY: {e}")),
        }
    } else {
        problems.push("the role lacks the REPLICATION attribute".to_string());
    }
    let sql = "SELECT pg_read_file('pg_wal/' || $1)";
    match session.query_one(sql, &[&file]).await {
        Ok(row) => {
            let content: String = row.get(0);
            set_history(
                facts,
                target,
                &file,
                content.as_bytes(),
                HistorySource::PgReadFile,
            )
        }
        Err(e) => {
            problems.push(format!("pg_read_file: {e}"));
            facts.history_source = HistorySource::Unavailable;
            facts.history_problem = Some(problems.join("; "));
        }
    }
}

/// Parses and stores a history file's content, or records why it is unusable.
fn set_history(
    facts: &mut NodeFacts,
    target: &str,
    file: &str,
    content: &[u8],
    source: HistorySource,
) {
    let text = String::from_utf8_lossy(content);
    match TimelineHistory::parse(&format!("{target}:pg_wal/{file}"), facts.timeline, &text) {
        Ok(h) => {
            facts.history = Some(h);
            facts.history_source = source;
            facts.history_file = Some(text.into_owned());
        }
        Err(e) => {
            facts.history_source = HistorySource::Unavailable;
            facts.history_problem = Some(e.to_string());
        }
    }
}
