//! pg_auto_failover discovery (`--pg-auto-failover MONITOR_CONNINFO`): read the monitor's
//! `pgautofailover.node` (host, port, reported and goal state, reported timeline and LSN) and
//! `pgautofailover.event` (every state change, with its time).
//!
//! The new primary is the node whose goal state is a primary's (`single`, `wait_primary`,
//! `primary`, `join_primary`, `apply_settings`); the former primary is the node the monitor
//! last told to step down (goal `draining`, `demote_timeout` or `demoted`), else a node that
//! still reports an older timeline than the new primary.

use super::{
    connect, Discovery, DiscoveryError, DiscoverySection, Event, EventKind, FormerChoice, Manager,
    Member, Role,
};
use crate::lsn::Lsn;
use crate::pg::conninfo::ConnParams;
use crate::pg::session::{Session, SessionOptions};

const MANAGER: &str = "pg_auto_failover";

/// Goal states of a node that is (or is becoming) the writable primary.
const PRIMARY_STATES: &[&str] = &[
    "single",
    "wait_primary",
    "primary",
    "join_primary",
    "apply_settings",
];
/// Goal states the monitor gives a primary it takes the role away from.
const DEMOTED_STATES: &[&str] = &["draining", "demote_timeout", "demoted"];

/// The most events read from the monitor (the newest ones).
const MAX_EVENTS: i64 = 10_000;

/// One row of `pgautofailover.node`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRow {
    /// `formationid`.
    pub formation: String,
    /// `groupid`.
    pub group: i32,
    /// `nodename`.
    pub name: String,
    /// `nodehost`.
    pub host: String,
    /// `nodeport`.
    pub port: i32,
    /// `goalstate`.
    pub goal: String,
    /// `reportedstate`.
    pub reported: String,
    /// `reportedtli`.
    pub tli: i32,
    /// `reportedlsn`.
    pub lsn: Option<Lsn>,
    /// `health` (1 healthy, 0 unhealthy, -1 unknown).
    pub health: i32,
    /// `reportedpgisrunning`.
    pub pg_running: Option<bool>,
    /// `reporttime`, UTC.
    pub report_time: String,
}

/// One row of `pgautofailover.event`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    /// `eventtime`, UTC.
    pub time: String,
    /// `formationid`.
    pub formation: String,
    /// `groupid`.
    pub group: i32,
    /// `nodename`.
    pub name: String,
    /// `reportedstate`.
    pub reported: String,
    /// `goalstate`.
    pub goal: String,
    /// `reportedtli`.
    pub tli: i32,
    /// `reportedlsn`.
    pub lsn: Option<Lsn>,
    /// `description`.
    pub description: String,
}

fn ts(col: &str) -> String {
    format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
}

const CHECK_SQL: &str = "SELECT to_regclass('pgautofailover.node') IS NOT NULL AND to_regclass('pgautofailover.event') IS NOT NULL";

async fn read(s: &Session) -> Result<(Vec<NodeRow>, Vec<EventRow>), String> {
    let ok: bool = s
        .query_one(CHECK_SQL, &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    if !ok {
        return Err("no pgautofailover.node and pgautofailover.event here (connect to the monitor's database, usually `dbname=pg_auto_failover`)".into());
    }
    let nodes_sql = format!(
        "SELECT formationid::text, groupid::int4, nodename::text, nodehost::text, nodeport::int4, \
                goalstate::text, reportedstate::text, reportedtli::int4, reportedlsn::text, \
                health::int4, reportedpgisrunning, {} \
           FROM pgautofailover.node ORDER BY formationid, groupid, nodeid",
        ts("reporttime")
    );
    let nodes = s
        .query(nodes_sql.as_str(), &[])
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| NodeRow {
            formation: r.get(0),
            group: r.get(1),
            name: r.get(2),
            host: r.get(3),
            port: r.get(4),
            goal: r.get(5),
            reported: r.get(6),
            tli: r.get(7),
            lsn: r.get::<_, Option<String>>(8).and_then(|l| l.parse().ok()),
            health: r.get(9),
            pg_running: r.get(10),
            report_time: r.get(11),
        })
        .collect();
    let events_sql = format!(
        "SELECT * FROM (SELECT eventid, {}, formationid::text, groupid::int4, nodename::text, \
                reportedstate::text, goalstate::text, reportedtli::int4, reportedlsn::text, \
                coalesce(description, '')::text \
           FROM pgautofailover.event ORDER BY eventid DESC LIMIT $1) e ORDER BY eventid",
        ts("eventtime")
    );
    let events = s
        .query(events_sql.as_str(), &[&MAX_EVENTS])
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| EventRow {
            time: r.get(1),
            formation: r.get(2),
            group: r.get(3),
            name: r.get(4),
            reported: r.get(5),
            goal: r.get(6),
            tli: r.get(7),
            lsn: r.get::<_, Option<String>>(8).and_then(|l| l.parse().ok()),
            description: r.get(9),
        })
        .collect();
    Ok((nodes, events))
}

/// Reads the monitor at `conninfo` and builds the discovery.
pub async fn discover(
    conninfo: &str,
    template: &str,
    session: &SessionOptions,
) -> Result<Discovery, DiscoveryError> {
    let params = ConnParams::parse_with_process_env(conninfo).map_err(|source| {
        DiscoveryError::BadConninfo {
            flag: "--pg-auto-failover",
            source,
        }
    })?;
    let (nodes, events) = async {
        let s = connect(MANAGER, &params, session).await?;
        let r = read(&s).await;
        s.close().await;
        r.map_err(|reason| DiscoveryError::NotManager {
            manager: MANAGER,
            what: "monitor",
            target: params.target(),
            reason,
        })
    }
    .await?;
    if nodes.is_empty() {
        return Err(DiscoveryError::NotManager {
            manager: MANAGER,
            what: "monitor with nodes",
            target: params.target(),
            reason: "pgautofailover.node is empty".into(),
        });
    }
    Ok(build(&params.redacted(), &nodes, &events, template))
}

fn member_of(n: &NodeRow) -> Member {
    let role = if PRIMARY_STATES.contains(&n.goal.as_str()) {
        Role::Primary
    } else if DEMOTED_STATES.contains(&n.goal.as_str()) {
        Role::Demoted
    } else {
        Role::Standby
    };
    Member {
        name: n.name.clone(),
        role,
        manager_role: format!("reported {}, goal {}", n.reported, n.goal),
        state: Some(format!(
            "{}, postgres {} (reported {})",
            match n.health {
                1 => "healthy",
                0 => "unhealthy",
                _ => "health unknown",
            },
            match n.pg_running {
                Some(true) => "running",
                Some(false) => "not running",
                None => "state unknown",
            },
            n.report_time
        )),
        host: Some(n.host.clone()),
        port: u16::try_from(n.port).ok(),
        timeline: u32::try_from(n.tli).ok(),
        lsn: n.lsn,
        upstream: None,
        conninfo: None,
    }
}

/// Builds the discovery from the monitor's rows: pure, tested on recorded rows.
pub fn build(source: &str, nodes: &[NodeRow], events: &[EventRow], template: &str) -> Discovery {
    let mut groups: Vec<(String, i32)> = nodes
        .iter()
        .map(|n| (n.formation.clone(), n.group))
        .collect();
    groups.dedup();
    let (formation, group) = groups[0].clone();
    let in_group = |f: &str, g: i32| f == formation && g == group;
    let members: Vec<Member> = nodes
        .iter()
        .filter(|n| in_group(&n.formation, n.group))
        .map(member_of)
        .collect();
    let events_in: Vec<&EventRow> = events
        .iter()
        .filter(|e| in_group(&e.formation, e.group))
        .collect();
    // Promotions: the first event showing a node on a newer timeline than any seen before;
    // demotions: the monitor setting a node's goal to `demoted`.
    let mut out = Vec::new();
    let mut max_tli = events_in.first().map_or(0, |e| e.tli);
    for e in &events_in {
        if e.tli > max_tli {
            max_tli = e.tli;
            out.push(Event {
                kind: EventKind::Promotion,
                time: Some(e.time.clone()),
                member: Some(e.name.clone()),
                timeline: u32::try_from(e.tli).ok(),
                lsn: e.lsn,
                detail: e.description.clone(),
            });
        }
        if e.goal == "demoted"
            && e.reported != "demoted"
            && e.description.starts_with("Setting goal state")
        {
            out.push(Event {
                kind: EventKind::Demotion,
                time: Some(e.time.clone()),
                member: Some(e.name.clone()),
                timeline: None,
                lsn: e.lsn,
                detail: e.description.clone(),
            });
        }
    }
    let primaries: Vec<&Member> = members.iter().filter(|m| m.role == Role::Primary).collect();
    let top = primaries.iter().filter_map(|m| m.timeline).max();
    let best: Vec<&&Member> = primaries.iter().filter(|m| m.timeline == top).collect();
    let new_primary = if groups.len() > 1 {
        Err(format!(
            "the monitor manages several groups ({}); only one group per run is supported: name the nodes with --new-primary and --former-primary",
            groups.iter().map(|(f, g)| format!("{f}/{g}")).collect::<Vec<_>>().join(", ")
        ))
    } else {
        match best.as_slice() {
            [one] => Ok((**one).clone()),
            _ => Err(format!(
                "no single node has a primary's goal state: {}",
                members
                    .iter()
                    .map(|m| format!("{} ({})", m.name, m.manager_role))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    };
    let former_primary = match &new_primary {
        Ok(np) => choose_former(np, &members, &events_in),
        Err(_) => Err("there is no current primary to compare it with".into()),
    };
    Discovery {
        section: DiscoverySection {
            manager: Manager::PgAutoFailover,
            source: source.to_string(),
            cluster: Some(format!("formation {formation}, group {group}")),
            new_primary: new_primary.as_ref().ok().map(|m| m.name.clone()),
            former_primary: former_primary.as_ref().ok().map(|c| c.member.name.clone()),
            former_primary_rule: former_primary.as_ref().ok().map(|c| c.rule.clone()),
            members,
            events: out,
            unanswered: Vec::new(),
            notes: vec![
                "timelines and LSNs are the nodes' last reports to the monitor; compare reads the servers themselves".into(),
            ],
        },
        new_primary,
        former_primary,
        template: template.to_string(),
        patroni: None,
    }
}

fn choose_former(
    new_primary: &Member,
    members: &[Member],
    events: &[&EventRow],
) -> Result<FormerChoice, String> {
    // The last node the monitor told to step down.
    if let Some(e) = events
        .iter()
        .rev()
        .find(|e| DEMOTED_STATES.contains(&e.goal.as_str()) && e.name != new_primary.name)
    {
        if let Some(m) = members.iter().find(|m| m.name == e.name) {
            return Ok(FormerChoice {
                member: m.clone(),
                rule: format!(
                    "the monitor last took the primary role away from {} (goal state {} at {}, reported timeline {})",
                    e.name, e.goal, e.time, e.tli
                ),
                tied_with: Vec::new(),
            });
        }
    }
    // Else: nodes still reporting an older timeline.
    let older: Vec<&Member> = members
        .iter()
        .filter(|m| {
            m.name != new_primary.name
                && matches!((m.timeline, new_primary.timeline), (Some(a), Some(b)) if a < b)
        })
        .collect();
    let best = older.iter().filter_map(|m| m.lsn).max();
    let top: Vec<&&Member> = older.iter().filter(|m| m.lsn == best).collect();
    match top.as_slice() {
        [] => Err(format!(
            "the monitor's events record no demotion and no node reports a timeline older than {}'s; name it with --former-primary",
            new_primary.name
        )),
        [one] => Ok(FormerChoice {
            member: (**one).clone(),
            rule: format!(
                "the node still reporting an older timeline than {} with the most WAL",
                new_primary.name
            ),
            tied_with: Vec::new(),
        }),
        many => Ok(FormerChoice {
            member: (*many[0]).clone(),
            rule: format!(
                "ambiguous: {} report an older timeline with the same WAL; chose {}, the first listed",
                many.iter().map(|m| m.name.clone()).collect::<Vec<_>>().join(", "),
                many[0].name
            ),
            tied_with: many[1..].iter().map(|m| m.name.clone()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, port: i32, goal: &str, reported: &str, tli: i32, lsn: &str) -> NodeRow {
        NodeRow {
            formation: "default".into(),
            group: 0,
            name: name.into(),
            host: "127.0.0.1".into(),
            port,
            goal: goal.into(),
            reported: reported.into(),
            tli,
            lsn: lsn.parse().ok(),
            health: 1,
            pg_running: Some(true),
            report_time: "2026-12-03T10:36:50Z".into(),
        }
    }

    fn ev(name: &str, reported: &str, goal: &str, tli: i32, desc: &str) -> EventRow {
        EventRow {
            time: "2026-12-03T10:36:50.323597Z".into(),
            formation: "default".into(),
            group: 0,
            name: name.into(),
            reported: reported.into(),
            goal: goal.into(),
            tli,
            lsn: "0/303E6C8".parse().ok(),
            description: desc.into(),
        }
    }

    /// Rows recorded on a real monitor after `pg_autoctl perform failover` with node1 down.
    fn after_failover() -> (Vec<NodeRow>, Vec<EventRow>) {
        (
            vec![
                node("node1", 25602, "demoted", "primary", 1, "0/303E6C8"),
                node(
                    "node2",
                    25603,
                    "wait_primary",
                    "wait_primary",
                    2,
                    "0/3040C38",
                ),
            ],
            vec![
                ev(
                    "node1",
                    "primary",
                    "primary",
                    1,
                    "New state is reported by node 1",
                ),
                ev(
                    "node1",
                    "primary",
                    "draining",
                    1,
                    "Setting goal state of node 1 to draining",
                ),
                ev(
                    "node2",
                    "stop_replication",
                    "wait_primary",
                    2,
                    "Setting goal state of node 2 to wait_primary and node 1 to demoted",
                ),
                ev(
                    "node1",
                    "primary",
                    "demoted",
                    1,
                    "Setting goal state of node 2 to wait_primary and node 1 to demoted",
                ),
            ],
        )
    }

    #[test]
    fn the_monitor_names_the_new_and_the_demoted_primary() {
        let (n, e) = after_failover();
        let d = build("src", &n, &e, "user=fv");
        assert_eq!(d.new_primary.as_ref().unwrap().name, "node2");
        let f = d.former_primary.as_ref().unwrap();
        assert_eq!(f.member.name, "node1");
        assert!(f.rule.contains("goal state demoted"), "{}", f.rule);
        let kinds: Vec<EventKind> = d.section.events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EventKind::Promotion, EventKind::Demotion]);
        assert_eq!(d.section.events[0].timeline, Some(2));
        assert_eq!(d.section.members[1].port, Some(25603));
    }

    #[test]
    fn without_a_demotion_event_the_older_timeline_decides() {
        let (n, _) = after_failover();
        let d = build("src", &n, &[], "");
        let f = d.former_primary.unwrap();
        assert_eq!(f.member.name, "node1");
        assert!(f.rule.contains("older timeline"), "{}", f.rule);
    }

    #[test]
    fn two_primaries_on_one_timeline_are_not_guessed() {
        let (mut n, e) = after_failover();
        n[0].goal = "primary".into();
        n[0].tli = 2;
        let d = build("src", &n, &e, "");
        assert!(d.new_primary.unwrap_err().contains("no single node"));
    }
}
