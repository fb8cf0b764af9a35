//! Patroni discovery: ask every URL's REST API (`GET /cluster`, `GET /history`, and a member's
//! `GET /patroni` when needed), then pick the new primary and the former primary
//! ([`choose_former`], a pure function tested on recorded answers).

use std::time::Duration;

use time::OffsetDateTime;

use crate::pg::conninfo::ConnParams;

use super::client::{base_url, Client, HttpOptions};
use super::model::*;

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
    use crate::lsn::Lsn;

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
