//! Patroni as a discovery source: the manager-neutral form of what `--patroni` found.

use super::model as d;

/// The manager-neutral form of a Patroni discovery, with `template` (`--patroni-conninfo`)
/// for every member's conninfo; the Patroni view is kept inside it for the report's `patroni`
/// section.
pub fn from_patroni(p: &crate::patroni::Discovery, template: &str) -> d::Discovery {
    let member = |m: &crate::patroni::Member| d::Member {
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
    let events = p
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
            source: p.section.urls.join(", "),
            cluster: p.section.scope.clone(),
            new_primary: p.section.new_primary.clone(),
            former_primary: p.section.former_primary.clone(),
            former_primary_rule: p.section.former_primary_rule.clone(),
            members: p.section.members.iter().map(member).collect(),
            events,
            unanswered: p.section.unanswered.clone(),
            notes: Vec::new(),
        },
        new_primary: p.new_primary.as_ref().map(member).map_err(|members| {
            crate::patroni::PatroniError::NoLeader {
                urls: p.section.urls.join(", "),
                members: members.clone(),
            }
            .to_string()
        }),
        former_primary: p
            .former_primary
            .as_ref()
            .map(|c| d::FormerChoice {
                member: member(&c.member),
                rule: c.rule.clone(),
                tied_with: c.tied_with.clone(),
            })
            .map_err(Clone::clone),
        template: template.to_string(),
        patroni: Some(p.clone()),
    }
}
