//! repmgr discovery (`--repmgr CONNINFO`): read `repmgr.nodes` and `repmgr.events` from any
//! node, then from every node listed there, and use the freshest copy (the one with the
//! latest event: repmgr's metadata is replicated, so a former primary still holds the view
//! from before the promotion).
//!
//! The new primary is the node recorded as an active primary. The former primary is the node
//! repmgr marked as an *inactive* primary (`repmgr standby promote` and repmgrd's failover do
//! that to the old primary), else the node the events name as primary before the last
//! promotion. repmgr records no timelines or LSNs; `compare` reads those from the servers.

use futures_util::future::join_all;

use super::{
    connect, member_conninfo, Discovery, DiscoveryError, DiscoverySection, Event, EventKind,
    FormerChoice, Manager, Member, Role,
};
use crate::pg::conninfo::ConnParams;
use crate::pg::session::{Session, SessionOptions};

const MANAGER: &str = "repmgr";

/// repmgr events that make a node primary.
const PRIMARY_EVENTS: &[&str] = &[
    "primary_register",
    "standby_promote",
    "repmgrd_failover_promote",
    "standby_switchover",
];

/// One row of `repmgr.nodes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRow {
    /// `node_id`.
    pub id: i32,
    /// `upstream_node_id`.
    pub upstream: Option<i32>,
    /// `active`.
    pub active: bool,
    /// `node_name`.
    pub name: String,
    /// `type`: `primary`, `standby`, `witness`, `bdr`.
    pub kind: String,
    /// `conninfo`.
    pub conninfo: String,
}

/// One row of `repmgr.events`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    /// `node_id`.
    pub node_id: i32,
    /// `event` (`standby_promote`, ...).
    pub event: String,
    /// `successful`.
    pub successful: bool,
    /// `event_timestamp`, UTC, RFC 3339.
    pub time: String,
    /// `details`.
    pub details: Option<String>,
}

/// One node's copy of the metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// Where it was read (`host:port`).
    pub target: String,
    /// Whether that server is in recovery.
    pub in_recovery: bool,
    /// `repmgr.nodes`.
    pub nodes: Vec<NodeRow>,
    /// The promotion-related events, oldest first.
    pub events: Vec<EventRow>,
    /// The latest `event_timestamp` of any event (how fresh this copy is).
    pub latest: Option<String>,
}

const CHECK_SQL: &str = "SELECT to_regclass('repmgr.nodes') IS NOT NULL AND to_regclass('repmgr.events') IS NOT NULL, pg_is_in_recovery()";
const NODES_SQL: &str = "SELECT node_id::int4, upstream_node_id::int4, active, node_name::text, type::text, conninfo::text FROM repmgr.nodes ORDER BY node_id";
const TS: &str = "to_char(event_timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";

/// Reads one node's copy of the metadata.
async fn read_view(s: &Session) -> Result<View, String> {
    let row = s
        .query_one(CHECK_SQL, &[])
        .await
        .map_err(|e| e.to_string())?;
    if !row.get::<_, bool>(0) {
        return Err(
            "no repmgr.nodes and repmgr.events here (connect to the database repmgr uses, usually `dbname=repmgr`)"
                .into(),
        );
    }
    let in_recovery: bool = row.get(1);
    let nodes = s
        .query(NODES_SQL, &[])
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| NodeRow {
            id: r.get(0),
            upstream: r.get(1),
            active: r.get(2),
            name: r.get(3),
            kind: r.get(4),
            conninfo: r.get(5),
        })
        .collect();
    let events_sql = format!(
        "SELECT node_id::int4, event::text, successful, {TS}, details::text FROM repmgr.events \
          WHERE event = ANY($1) ORDER BY event_timestamp, node_id"
    );
    let kinds: Vec<String> = PRIMARY_EVENTS.iter().map(|s| s.to_string()).collect();
    let events = s
        .query(events_sql.as_str(), &[&kinds])
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| EventRow {
            node_id: r.get(0),
            event: r.get(1),
            successful: r.get(2),
            time: r.get(3),
            details: r.get(4),
        })
        .collect();
    let latest_sql = format!("SELECT max({TS}) FROM repmgr.events");
    let latest = s
        .query_one(latest_sql.as_str(), &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    Ok(View {
        target: s.target().to_string(),
        in_recovery,
        nodes,
        events,
        latest,
    })
}

/// A node's address from its repmgr conninfo, when it parses.
fn address(conninfo: &str) -> (Option<String>, Option<u16>) {
    match ConnParams::parse(conninfo, &|_| None).map(|p| (p.host().clone(), p.port())) {
        Ok((crate::pg::conninfo::Host::Tcp(h), port)) => (Some(h), Some(port)),
        _ => (None, None),
    }
}

/// Asks the node at `conninfo`, then every node it lists, and builds the discovery.
pub async fn discover(
    conninfo: &str,
    template: &str,
    session: &SessionOptions,
) -> Result<Discovery, DiscoveryError> {
    let params = ConnParams::parse_with_process_env(conninfo).map_err(|source| {
        DiscoveryError::BadConninfo {
            flag: "--repmgr",
            source,
        }
    })?;
    let result = async {
        let first_session = connect(MANAGER, &params, session).await?;
        let first =
            read_view(&first_session)
                .await
                .map_err(|reason| DiscoveryError::NotManager {
                    manager: MANAGER,
                    what: "node",
                    target: params.target(),
                    reason,
                })?;
        first_session.close().await;
        // Every other listed node's own copy, and whether it is reachable: its repmgr
        // conninfo with the keys of --repmgr (user, dbname, sslmode, ... that worked on the
        // first node) over it, and its own address over those.
        let given = if conninfo.trim_start().starts_with("postgres") {
            String::new()
        } else {
            conninfo.to_string()
        };
        let others: Vec<(String, Result<ConnParams, String>)> = first
            .nodes
            .iter()
            .map(|n| {
                let mut m = member_of(n, &first.nodes);
                m.conninfo = Some(format!("{} {given}", n.conninfo));
                (
                    n.name.clone(),
                    member_conninfo(&m, "", &|k| std::env::var(k).ok()).map_err(|e| e.to_string()),
                )
            })
            .filter(|(_, p)| p.as_ref().map_or(true, |p| p.target() != params.target()))
            .collect();
        let reads = join_all(others.iter().map(|(name, p)| async move {
            let p = p.clone()?;
            let s = crate::pg::connect(&p, session)
                .await
                .map_err(|e| e.to_string())?;
            let v = read_view(&s).await;
            s.close().await;
            v.map_err(|e| format!("{}: {e}", p.target()))
                .map(|v| (name.clone(), v))
        }))
        .await;
        Ok::<_, DiscoveryError>((first, others, reads))
    }
    .await?;
    let (first, others, reads) = result;
    let first_name = first
        .nodes
        .iter()
        .find(|n| {
            ConnParams::parse(&n.conninfo, &|_| None).is_ok_and(|p| p.target() == params.target())
        })
        .map(|n| n.name.clone());
    let mut views: Vec<(Option<String>, View)> = vec![(first_name, first)];
    let mut unanswered = Vec::new();
    for ((name, _), r) in others.iter().zip(reads) {
        match r {
            Ok((n, v)) => views.push((Some(n), v)),
            Err(e) => unanswered.push(format!("{name}: {e}")),
        }
    }
    Ok(build(&params.redacted(), views, unanswered, template))
}

/// The node row as a neutral member (`nodes` to name its upstream).
fn member_of(n: &NodeRow, nodes: &[NodeRow]) -> Member {
    let (host, port) = address(&n.conninfo);
    let role = match (n.kind.as_str(), n.active) {
        ("primary", true) => Role::Primary,
        ("primary", false) => Role::Demoted,
        ("standby", _) => Role::Standby,
        ("witness", _) => Role::Witness,
        _ => Role::Other,
    };
    Member {
        name: n.name.clone(),
        role,
        manager_role: if n.active {
            n.kind.clone()
        } else {
            format!("{} (inactive)", n.kind)
        },
        state: None,
        host,
        port,
        timeline: None,
        lsn: None,
        upstream: n
            .upstream
            .and_then(|u| nodes.iter().find(|x| x.id == u))
            .map(|x| x.name.clone()),
        conninfo: Some(n.conninfo.clone()),
    }
}

/// Builds the discovery from the copies read (`(node name, view)`, the first one asked
/// first): pure, so that the rules are tested on recorded metadata.
pub fn build(
    source: &str,
    views: Vec<(Option<String>, View)>,
    unanswered: Vec<String>,
    template: &str,
) -> Discovery {
    // The freshest copy: the latest event; on a tie, a server not in recovery.
    let chosen = views
        .iter()
        .max_by(|a, b| {
            (a.1.latest.as_deref(), !a.1.in_recovery)
                .cmp(&(b.1.latest.as_deref(), !b.1.in_recovery))
        })
        .map(|(n, v)| (n.clone(), v.clone()));
    let (chosen_name, view) = chosen.expect("at least the first view");
    let mut members: Vec<Member> = view
        .nodes
        .iter()
        .map(|n| member_of(n, &view.nodes))
        .collect();
    for m in &mut members {
        m.state = Some(
            match views
                .iter()
                .find(|(n, _)| n.as_deref() == Some(m.name.as_str()))
            {
                Some((_, v)) if v.in_recovery => "reachable, in recovery".into(),
                Some(_) => "reachable, not in recovery".into(),
                None if unanswered
                    .iter()
                    .any(|u| u.starts_with(&format!("{}: ", m.name))) =>
                {
                    "unreachable".into()
                }
                None => "not asked".into(),
            },
        );
    }
    let name_of = |id: i32| {
        view.nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.name.clone())
    };
    let events: Vec<Event> = view
        .events
        .iter()
        .filter(|e| e.successful && e.event != "primary_register")
        .map(|e| Event {
            kind: EventKind::Promotion,
            time: Some(e.time.clone()),
            member: name_of(e.node_id),
            timeline: None,
            lsn: None,
            detail: match &e.details {
                Some(d) if !d.is_empty() => format!("{}: {d}", e.event),
                _ => e.event.clone(),
            },
        })
        .collect();
    let primaries: Vec<&Member> = members.iter().filter(|m| m.role == Role::Primary).collect();
    let new_primary = match primaries.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "repmgr.nodes (read on {}) has no active primary among {}",
            view.target,
            list(&members)
        )),
        many => Err(format!(
            "repmgr.nodes (read on {}) has several active primaries: {}",
            view.target,
            many.iter()
                .map(|m| m.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    };
    let former_primary = match &new_primary {
        Ok(np) => choose_former(np, &members, &view),
        Err(_) => Err("there is no current primary to compare it with".into()),
    };
    let mut notes = vec![
        "repmgr records no timelines or WAL positions; compare reads them from the servers"
            .to_string(),
    ];
    if let Some(n) = &chosen_name {
        notes.push(format!(
            "the metadata was read on {n} ({}), the copy with the latest event{}",
            view.target,
            view.latest
                .as_deref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default()
        ));
    }
    Discovery {
        section: DiscoverySection {
            manager: Manager::Repmgr,
            source: source.to_string(),
            cluster: None,
            new_primary: new_primary.as_ref().ok().map(|m| m.name.clone()),
            former_primary: former_primary.as_ref().ok().map(|c| c.member.name.clone()),
            former_primary_rule: former_primary.as_ref().ok().map(|c| c.rule.clone()),
            members,
            events,
            unanswered,
            notes,
        },
        new_primary,
        former_primary,
        template: template.to_string(),
        patroni: None,
    }
}

fn list(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| format!("{} ({})", m.name, m.manager_role))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The former primary: the node marked inactive primary, else the node the events name as
/// primary before the last promotion.
fn choose_former(
    new_primary: &Member,
    members: &[Member],
    view: &View,
) -> Result<FormerChoice, String> {
    let name_of = |id: i32| {
        view.nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.name.clone())
    };
    // The node primary before the last promotion of the new primary, per the events.
    let ok_events: Vec<&EventRow> = view.events.iter().filter(|e| e.successful).collect();
    let last_promotion = ok_events.iter().rposition(|e| {
        e.event != "primary_register"
            && name_of(e.node_id).as_deref() == Some(new_primary.name.as_str())
    });
    let before = last_promotion.and_then(|i| {
        ok_events[..i]
            .iter()
            .rev()
            .find(|e| name_of(e.node_id).is_some_and(|n| n != new_primary.name))
            .copied()
    });
    let by_events = before.and_then(|e| name_of(e.node_id).map(|n| (n, e)));
    let demoted: Vec<&Member> = members
        .iter()
        .filter(|m| m.role == Role::Demoted && m.name != new_primary.name)
        .collect();
    match demoted.as_slice() {
        [one] => {
            return Ok(FormerChoice {
                member: (*one).clone(),
                rule: format!(
                    "repmgr marked {} as an inactive primary (repmgr.nodes: type primary, active false), as it does to the old primary when it promotes a standby",
                    one.name
                ),
                tied_with: Vec::new(),
            })
        }
        [] => {}
        many => {
            if let Some((n, e)) = &by_events {
                if let Some(m) = many.iter().find(|m| m.name == *n) {
                    return Ok(FormerChoice {
                        member: (*m).clone(),
                        rule: format!(
                            "of the inactive primaries in repmgr.nodes, the one the events name as primary before {}'s promotion ({} at {})",
                            new_primary.name, e.event, e.time
                        ),
                        tied_with: Vec::new(),
                    });
                }
            }
            let mut names: Vec<&Member> = many.to_vec();
            names.sort_by(|a, b| a.name.cmp(&b.name));
            return Ok(FormerChoice {
                member: names[0].clone(),
                rule: format!(
                    "ambiguous: repmgr.nodes marks {} as inactive primaries; chose {}, the first by name",
                    names.iter().map(|m| m.name.clone()).collect::<Vec<_>>().join(", "),
                    names[0].name
                ),
                tied_with: names[1..].iter().map(|m| m.name.clone()).collect(),
            });
        }
    }
    if let Some((n, e)) = by_events {
        if let Some(m) = members.iter().find(|m| m.name == n) {
            return Ok(FormerChoice {
                member: m.clone(),
                rule: format!(
                    "the repmgr events name {n} as primary before {}'s promotion ({} at {})",
                    new_primary.name, e.event, e.time
                ),
                tied_with: Vec::new(),
            });
        }
    }
    Err(format!(
        "repmgr.nodes marks no inactive primary and repmgr.events records no primary before {}'s promotion; name it with --former-primary",
        new_primary.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i32, up: Option<i32>, active: bool, kind: &str) -> NodeRow {
        NodeRow {
            id,
            upstream: up,
            active,
            name: format!("node{id}"),
            kind: kind.into(),
            conninfo: format!(
                "host=127.0.0.1 port={} user=repmgr dbname=repmgr connect_timeout=2",
                25500 + id
            ),
        }
    }

    fn ev(id: i32, event: &str, time: &str) -> EventRow {
        EventRow {
            node_id: id,
            event: event.into(),
            successful: true,
            time: time.into(),
            details: Some(format!("details of {event}")),
        }
    }

    /// As recorded on a real two-node cluster after `repmgr standby promote` on node2 with
    /// node1 stopped: the promoted node's copy, and the former primary's stale one.
    fn after_promote() -> Vec<(Option<String>, View)> {
        let new = View {
            target: "127.0.0.1:25502".into(),
            in_recovery: false,
            nodes: vec![
                node(1, None, false, "primary"),
                node(2, None, true, "primary"),
            ],
            events: vec![
                ev(1, "primary_register", "2026-12-03T10:33:13.769508Z"),
                ev(2, "standby_promote", "2026-12-03T10:34:58.516144Z"),
            ],
            latest: Some("2026-12-03T10:34:58.516144Z".into()),
        };
        let old = View {
            target: "127.0.0.1:25501".into(),
            in_recovery: true,
            nodes: vec![
                node(1, None, true, "primary"),
                node(2, Some(1), true, "standby"),
            ],
            events: vec![ev(1, "primary_register", "2026-12-03T10:33:13.769508Z")],
            latest: Some("2026-12-03T10:34:51.003715Z".into()),
        };
        vec![(Some("node1".into()), old), (Some("node2".into()), new)]
    }

    #[test]
    fn the_freshest_copy_names_the_new_and_the_former_primary() {
        let d = build("src", after_promote(), vec![], "user=fv");
        assert_eq!(d.new_primary.as_ref().unwrap().name, "node2");
        let f = d.former_primary.as_ref().unwrap();
        assert_eq!(f.member.name, "node1");
        assert!(f.rule.contains("inactive primary"), "{}", f.rule);
        assert_eq!(d.section.events.len(), 1);
        assert_eq!(d.section.events[0].member.as_deref(), Some("node2"));
        assert_eq!(
            d.section.members[0].state.as_deref(),
            Some("reachable, in recovery")
        );
        assert_eq!(d.section.members[0].port, Some(25501));
        assert!(d.section.notes.iter().any(|n| n.contains("read on node2")));
    }

    #[test]
    fn the_events_name_the_former_when_no_node_is_marked_inactive() {
        let mut views = after_promote();
        views[1].1.nodes[0].active = true;
        views[1].1.nodes[0].kind = "standby".into();
        let d = build("src", views, vec![], "");
        let f = d.former_primary.unwrap();
        assert_eq!(f.member.name, "node1");
        assert!(f.rule.contains("primary_register"), "{}", f.rule);
    }

    #[test]
    fn no_active_primary_is_reported_with_the_members() {
        let mut views = after_promote();
        views.truncate(1);
        views[0].1.nodes[0].active = false;
        let d = build("src", views, vec!["node2: connection refused".into()], "");
        let e = d.new_primary.unwrap_err();
        assert!(e.contains("no active primary"), "{e}");
        assert!(d.former_primary.is_err());
        assert_eq!(d.section.members[1].state.as_deref(), Some("unreachable"));
    }
}
