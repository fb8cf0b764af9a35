//! CloudNativePG discovery (`--cnpg-status FILE|-`): read a `Cluster` resource as
//! `kubectl get clusters.postgresql.cnpg.io NAME -o json` prints it, and take from its
//! status `currentPrimary`, `targetPrimary`, `timelineID`, `instanceNames`, `instancesStatus`
//! and `instancesReportedState` (each pod's `isPrimary`, `timeLineID` and `ip`), as defined by
//! CloudNativePG's API types (`api/v1/cluster_types.go`, `ClusterStatus`).
//!
//! The status does not name the former primary: it is the instance that still reports an
//! older timeline than the cluster's (or still reports itself primary). CloudNativePG rewinds
//! a former primary when it rejoins, so it may be gone by the time this runs; the error says
//! so. Members are reached through a conninfo template naming the pod (`{pod}`).

use std::collections::BTreeSet;
use std::io::Read;

use serde_json::Value;

use super::{
    Discovery, DiscoveryError, DiscoverySection, Event, EventKind, FormerChoice, Manager, Member,
    Role,
};

/// The largest document read.
const MAX_DOCUMENT: u64 = 16 * 1024 * 1024;

/// Reads the document at `path` (`-`: stdin) and builds the discovery.
pub fn discover_file(path: &str, template: &str) -> Result<Discovery, DiscoveryError> {
    let doc_err = |reason: String| DiscoveryError::Document {
        path: path.to_string(),
        reason,
    };
    let mut text = String::new();
    let read = if path == "-" {
        std::io::stdin()
            .take(MAX_DOCUMENT)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(MAX_DOCUMENT).read_to_string(&mut text))
    };
    read.map_err(|e| doc_err(format!("cannot read it ({e})")))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        doc_err(format!(
            "not JSON ({e}); expected the output of `kubectl get clusters.postgresql.cnpg.io NAME -o json`"
        ))
    })?;
    parse(path, &v, template)
}

/// Builds the discovery from a parsed document (a `Cluster`, or a `List` holding one).
pub fn parse(path: &str, v: &Value, template: &str) -> Result<Discovery, DiscoveryError> {
    let not = |reason: String| {
        DiscoveryError::NotManager {
        manager: "CloudNativePG",
        what: "Cluster status document",
        target: path.to_string(),
        reason: format!(
            "{reason}; expected the output of `kubectl get clusters.postgresql.cnpg.io NAME -o json`"
        ),
    }
    };
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let cluster = match s(v, "kind").as_deref() {
        Some("List") => {
            let items = v
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            match items.as_slice() {
                [one] => one.clone(),
                other => {
                    return Err(not(format!(
                        "a List of {} items, not one Cluster",
                        other.len()
                    )))
                }
            }
        }
        _ => v.clone(),
    };
    let api = s(&cluster, "apiVersion").unwrap_or_default();
    if s(&cluster, "kind").as_deref() != Some("Cluster") || !api.starts_with("postgresql.cnpg.io/")
    {
        return Err(not(format!(
            "kind {:?}, apiVersion {:?}, not a postgresql.cnpg.io Cluster",
            s(&cluster, "kind").unwrap_or_default(),
            api
        )));
    }
    let meta = cluster.get("metadata").cloned().unwrap_or(Value::Null);
    let name = s(&meta, "name").unwrap_or_default();
    let namespace = s(&meta, "namespace").unwrap_or_else(|| "default".into());
    let status = cluster
        .get("status")
        .filter(|st| st.is_object())
        .ok_or_else(|| not("the Cluster has no status (has the operator reconciled it?)".into()))?;
    let current = s(status, "currentPrimary").filter(|p| !p.is_empty());
    let target = s(status, "targetPrimary").filter(|p| !p.is_empty());
    let timeline = status
        .get("timelineID")
        .and_then(Value::as_u64)
        .and_then(|t| u32::try_from(t).ok());
    let reported = status
        .get("instancesReportedState")
        .and_then(Value::as_object);
    let buckets = status.get("instancesStatus").and_then(Value::as_object);
    // Every pod named anywhere in the status.
    let mut pods: BTreeSet<String> = BTreeSet::new();
    if let Some(a) = status.get("instanceNames").and_then(Value::as_array) {
        pods.extend(a.iter().filter_map(Value::as_str).map(str::to_string));
    }
    if let Some(r) = reported {
        pods.extend(r.keys().cloned());
    }
    if let Some(b) = buckets {
        for list in b.values().filter_map(Value::as_array) {
            pods.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
        }
    }
    pods.extend(current.iter().cloned());
    let members: Vec<Member> = pods
        .iter()
        .map(|pod| {
            let r = reported.and_then(|r| r.get(pod));
            let is_primary = r.and_then(|r| r.get("isPrimary")).and_then(Value::as_bool);
            let bucket = buckets.and_then(|b| {
                b.iter()
                    .find(|(_, l)| {
                        l.as_array()
                            .is_some_and(|l| l.iter().any(|x| x.as_str() == Some(pod)))
                    })
                    .map(|(k, _)| k.clone())
            });
            let role = if current.as_deref() == Some(pod.as_str()) {
                Role::Primary
            } else if is_primary == Some(true) {
                Role::Demoted
            } else {
                Role::Standby
            };
            Member {
                name: pod.clone(),
                role,
                manager_role: match (current.as_deref() == Some(pod.as_str()), is_primary) {
                    (true, _) => "currentPrimary".into(),
                    (false, Some(true)) => "reports isPrimary, but is not currentPrimary".into(),
                    (false, _) => "replica".into(),
                },
                state: bucket,
                host: r.and_then(|r| s(r, "ip")).filter(|ip| !ip.is_empty()),
                port: None,
                timeline: r
                    .and_then(|r| r.get("timeLineID"))
                    .and_then(Value::as_u64)
                    .and_then(|t| u32::try_from(t).ok()),
                lsn: None,
                upstream: None,
                conninfo: None,
            }
        })
        .collect();
    let mut events = Vec::new();
    if let (Some(t), Some(p)) = (s(status, "currentPrimaryTimestamp"), &current) {
        events.push(Event {
            kind: EventKind::Promotion,
            time: Some(t),
            member: Some(p.clone()),
            timeline,
            lsn: None,
            detail: "currentPrimaryTimestamp: the last promotion to primary".into(),
        });
    }
    if let (Some(t), Some(p)) = (s(status, "targetPrimaryTimestamp"), &target) {
        events.push(Event {
            kind: EventKind::Promotion,
            time: Some(t),
            member: Some(p.clone()),
            timeline: None,
            lsn: None,
            detail: "targetPrimaryTimestamp: the last request for a new primary".into(),
        });
    }
    events.sort_by(|a, b| a.time.cmp(&b.time));
    let new_primary = match (&current, &target) {
        (None, _) => Err("status.currentPrimary is empty".to_string()),
        (Some(c), Some(t)) if c != t => Err(format!(
            "a failover or switchover is in progress (currentPrimary {c}, targetPrimary {t}); run again when they agree"
        )),
        (Some(c), _) => members
            .iter()
            .find(|m| m.name == *c)
            .cloned()
            .ok_or_else(|| format!("currentPrimary {c} is not an instance")),
    };
    let former_primary = match &new_primary {
        Ok(np) => choose_former(np, &members, timeline),
        Err(_) => Err("there is no current primary to compare it with".into()),
    };
    let mut notes = vec![
        "CloudNativePG's status does not name the former primary; it is the instance left on an older timeline".to_string(),
        "CloudNativePG rewinds a former primary when it rejoins: copy its pg_wal (or use the WAL archive with --former-restore-command) before it does".to_string(),
    ];
    if members.iter().all(|m| m.host.is_none())
        && !(template.contains("{pod}") || template.contains("{name}"))
    {
        notes.push(
            "no instance reports an IP: the conninfo template must name the host with {pod}".into(),
        );
    }
    Ok(Discovery {
        section: DiscoverySection {
            manager: Manager::Cnpg,
            source: path.to_string(),
            cluster: Some(format!("{namespace}/{name}")),
            new_primary: new_primary.as_ref().ok().map(|m| m.name.clone()),
            former_primary: former_primary.as_ref().ok().map(|c| c.member.name.clone()),
            former_primary_rule: former_primary.as_ref().ok().map(|c| c.rule.clone()),
            members,
            events,
            unanswered: Vec::new(),
            notes,
        },
        new_primary,
        former_primary,
        template: template
            .replace("{namespace}", &namespace)
            .replace("{cluster}", &name),
        patroni: None,
    })
}

fn choose_former(
    new_primary: &Member,
    members: &[Member],
    timeline: Option<u32>,
) -> Result<FormerChoice, String> {
    let current_tl = timeline.or(new_primary.timeline);
    let older: Vec<&Member> = members
        .iter()
        .filter(|m| m.name != new_primary.name)
        .filter(|m| matches!((m.timeline, current_tl), (Some(a), Some(b)) if a < b))
        .collect();
    let primaries: Vec<&Member> = older
        .iter()
        .copied()
        .filter(|m| m.role == Role::Demoted)
        .collect();
    let pick = if primaries.len() == 1 {
        primaries
    } else {
        older.clone()
    };
    match pick.as_slice() {
        [one] => Ok(FormerChoice {
            member: (*one).clone(),
            rule: format!(
                "the only instance still on an older timeline ({} < {}){}",
                one.timeline.unwrap_or_default(),
                current_tl.unwrap_or_default(),
                if one.role == Role::Demoted {
                    ", and it still reports itself primary"
                } else {
                    ""
                }
            ),
            tied_with: Vec::new(),
        }),
        [] => {
            let demoted: Vec<&Member> =
                members.iter().filter(|m| m.role == Role::Demoted).collect();
            match demoted.as_slice() {
                [one] => Ok(FormerChoice {
                    member: (*one).clone(),
                    rule: "the only instance other than currentPrimary that reports itself primary".into(),
                    tied_with: Vec::new(),
                }),
                _ => Err(format!(
                    "no instance reports an older timeline than {} (has CloudNativePG already rewound the former primary? then its lost WAL is only in the WAL archive: --former-restore-command); name it with --former-primary",
                    current_tl.map_or_else(|| "the cluster's".into(), |t| t.to_string())
                )),
            }
        }
        many => {
            let mut names: Vec<&Member> = many.to_vec();
            names.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(FormerChoice {
                member: names[0].clone(),
                rule: format!(
                    "ambiguous: instances {} are on older timelines; chose {}, the first by name",
                    names
                        .iter()
                        .map(|m| m.name.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                    names[0].name
                ),
                tied_with: names[1..].iter().map(|m| m.name.clone()).collect(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Cluster` after a failover from cluster-example-1 to cluster-example-2, shaped by
    /// CloudNativePG's `ClusterStatus` (api/v1/cluster_types.go): the former primary is back,
    /// not yet rewound, and still reports timeline 1.
    fn after_failover() -> Value {
        serde_json::json!({
            "apiVersion": "postgresql.cnpg.io/v1",
            "kind": "Cluster",
            "metadata": {"name": "cluster-example", "namespace": "prod"},
            "spec": {"instances": 3},
            "status": {
                "instances": 3,
                "readyInstances": 2,
                "instanceNames": ["cluster-example-1", "cluster-example-2", "cluster-example-3"],
                "instancesStatus": {
                    "healthy": ["cluster-example-2", "cluster-example-3"],
                    "failed": ["cluster-example-1"]
                },
                "instancesReportedState": {
                    "cluster-example-1": {"isPrimary": false, "timeLineID": 1, "ip": "10.244.0.11"},
                    "cluster-example-2": {"isPrimary": true, "timeLineID": 2, "ip": "10.244.0.12"},
                    "cluster-example-3": {"isPrimary": false, "timeLineID": 2, "ip": "10.244.0.13"}
                },
                "timelineID": 2,
                "currentPrimary": "cluster-example-2",
                "currentPrimaryTimestamp": "2026-12-03T10:40:12.123456Z",
                "targetPrimary": "cluster-example-2",
                "targetPrimaryTimestamp": "2026-12-03T10:40:09.000001Z",
                "phase": "Failing over",
                "phaseReason": "Failing over from cluster-example-1 to cluster-example-2"
            }
        })
    }

    #[test]
    fn the_status_names_the_new_primary_and_the_instance_left_behind() {
        let d = parse(
            "status.json",
            &after_failover(),
            "host={pod}.{namespace} user=fv",
        )
        .unwrap();
        assert_eq!(d.section.cluster.as_deref(), Some("prod/cluster-example"));
        let np = d.new_primary.as_ref().unwrap();
        assert_eq!(np.name, "cluster-example-2");
        assert_eq!(np.timeline, Some(2));
        let f = d.former_primary.as_ref().unwrap();
        assert_eq!(f.member.name, "cluster-example-1");
        assert!(f.rule.contains("older timeline (1 < 2)"), "{}", f.rule);
        assert_eq!(d.section.members.len(), 3);
        assert_eq!(d.section.members[0].state.as_deref(), Some("failed"));
        assert_eq!(d.section.events.len(), 2);
        assert_eq!(
            d.section.events[1].member.as_deref(),
            Some("cluster-example-2")
        );
        let p = d.conninfo(&f.member).unwrap();
        assert_eq!(p.target(), "cluster-example-1.prod:5432");
        // Without a template naming the pod, the reported IP is the host.
        let d = parse("status.json", &after_failover(), "user=fv").unwrap();
        let p = d.conninfo(d.new_primary.as_ref().unwrap()).unwrap();
        assert!(p.target().starts_with("10.244.0.12:"), "{}", p.target());
    }

    #[test]
    fn a_failover_in_progress_or_a_rewound_former_is_not_guessed() {
        let mut v = after_failover();
        v["status"]["targetPrimary"] = "cluster-example-3".into();
        let d = parse("s", &v, "").unwrap();
        let e = d.new_primary().unwrap_err().to_string();
        assert!(e.contains("in progress"), "{e}");
        let mut v = after_failover();
        v["status"]["instancesReportedState"]["cluster-example-1"]["timeLineID"] = 2.into();
        let d = parse("s", &v, "").unwrap();
        let e = d.former_primary().unwrap_err().to_string();
        assert!(e.contains("rewound"), "{e}");
        assert!(e.contains("--former-primary"), "{e}");
    }

    #[test]
    fn a_list_of_one_cluster_is_accepted_and_other_documents_are_named() {
        let list =
            serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [after_failover()]});
        assert!(parse("s", &list, "").is_ok());
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod"});
        let e = parse("pod.json", &pod, "").unwrap_err().to_string();
        assert!(
            e.starts_with("pod.json is not a CloudNativePG Cluster status document"),
            "{e}"
        );
        assert!(e.contains("kubectl get clusters.postgresql.cnpg.io"), "{e}");
        let mut v = after_failover();
        v.as_object_mut().unwrap().remove("status");
        let e = parse("s", &v, "").unwrap_err().to_string();
        assert!(e.contains("no status"), "{e}");
    }
}
