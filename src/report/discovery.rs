//! The `discovery` section of a report (repmgr, pg_auto_failover or CloudNativePG discovery),
//! in every format: one small block per renderer, built from the same rows. A Patroni
//! discovery is shown by its own section ([`super::patroni`]) instead.

use std::fmt::Write as _;
use std::io::{self, Write};

use tabled::builder::Builder;
use tabled::settings::Style;

use crate::discovery::{DiscoverySection, EventKind, Manager};

/// True when the section is rendered here (Patroni has its own block).
pub(crate) fn shown(d: &DiscoverySection) -> bool {
    d.manager != Manager::Patroni
}

/// A member's `name (host:port)`, looked up in the section.
fn named(d: &DiscoverySection, name: &Option<String>) -> String {
    match name {
        None => "named by a flag".into(),
        Some(n) => match d
            .members
            .iter()
            .find(|m| m.name == *n)
            .and_then(|m| m.address())
        {
            Some(a) => format!("{n} ({a})"),
            None => n.clone(),
        },
    }
}

/// The summary rows: (field, value).
pub(crate) fn summary_rows(d: &DiscoverySection) -> Vec<[String; 2]> {
    let mut rows = vec![
        ["manager".to_string(), d.manager.label().to_string()],
        ["read from".into(), d.source.clone()],
    ];
    if let Some(c) = &d.cluster {
        rows.push(["cluster".into(), c.clone()]);
    }
    rows.push(["new primary".into(), named(d, &d.new_primary)]);
    rows.push(["former primary".into(), named(d, &d.former_primary)]);
    if let Some(r) = &d.former_primary_rule {
        rows.push(["former primary chosen as".into(), r.clone()]);
    }
    for e in &d.events {
        let what = match e.kind {
            EventKind::Promotion => "promotion",
            EventKind::Demotion => "demotion",
        };
        let mut v = format!(
            "{} {}",
            e.time.as_deref().unwrap_or("-"),
            e.member.as_deref().unwrap_or("-")
        );
        if let Some(t) = e.timeline {
            let _ = write!(v, " (timeline {t})");
        }
        let _ = write!(v, ": {}", e.detail);
        rows.push([what.into(), v]);
    }
    for u in &d.unanswered {
        rows.push(["did not answer".into(), u.clone()]);
    }
    for n in &d.notes {
        rows.push(["note".into(), n.clone()]);
    }
    rows
}

/// The member table, header first: member, role, manager's role, state, address, timeline, WAL.
pub(crate) fn member_rows(d: &DiscoverySection) -> Vec<[String; 7]> {
    let dash = || "-".to_string();
    let mut rows = vec![[
        "member".to_string(),
        "role".into(),
        "as the manager says".into(),
        "state".into(),
        "host:port".into(),
        "timeline".into(),
        "WAL position".into(),
    ]];
    rows.extend(d.members.iter().map(|m| {
        [
            m.name.clone(),
            serde_json::to_value(m.role)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            m.manager_role.clone(),
            m.state.clone().unwrap_or_else(dash),
            m.address().or_else(|| m.host.clone()).unwrap_or_else(dash),
            m.timeline.map_or_else(dash, |t| t.to_string()),
            m.lsn.map_or_else(dash, |l| l.to_string()),
        ]
    }));
    rows
}

/// Text: a heading naming the manager, the summary table and the member table.
pub(crate) fn render_text(d: &DiscoverySection, out: &mut dyn Write) -> io::Result<()> {
    let grid = |rows: Vec<Vec<String>>| {
        let mut b = Builder::default();
        for r in rows {
            b.push_record(r);
        }
        b.build().with(Style::sharp()).to_string()
    };
    writeln!(out)?;
    writeln!(out, "Discovery ({})", d.manager.label())?;
    writeln!(
        out,
        "{}",
        grid(summary_rows(d).into_iter().map(Vec::from).collect())
    )?;
    writeln!(
        out,
        "{}",
        grid(member_rows(d).into_iter().map(Vec::from).collect())
    )
}

/// Escapes a Markdown table cell.
fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Markdown: a `### Discovery (manager)` heading and two pipe tables.
pub(crate) fn render_markdown(d: &DiscoverySection, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out)?;
    writeln!(out, "### Discovery ({})", d.manager.label())?;
    writeln!(out)?;
    writeln!(out, "| | value |")?;
    writeln!(out, "|---|---|")?;
    for [k, v] in summary_rows(d) {
        writeln!(out, "| {} | {} |", md_cell(&k), md_cell(&v))?;
    }
    writeln!(out)?;
    for (i, r) in member_rows(d).iter().enumerate() {
        let cells: Vec<String> = r.iter().map(|c| md_cell(c)).collect();
        writeln!(out, "| {} |", cells.join(" | "))?;
        if i == 0 {
            writeln!(out, "|{}", "---|".repeat(r.len()))?;
        }
    }
    Ok(())
}

/// CSV: `discovery,<field>,<value>` rows, then one `discovery_member,<name>,<role;...>` each.
pub(crate) fn csv_rows(d: &DiscoverySection) -> Vec<[String; 3]> {
    let mut rows: Vec<[String; 3]> = summary_rows(d)
        .into_iter()
        .map(|[k, v]| ["discovery".into(), k, v])
        .collect();
    rows.extend(
        member_rows(d)
            .into_iter()
            .skip(1)
            .map(|r| ["discovery_member".into(), r[0].clone(), r[1..].join(";")]),
    );
    rows
}

/// HTML: a heading naming the manager and two tables (`esc` escapes text).
pub(crate) fn render_html(d: &DiscoverySection, esc: &dyn Fn(&str) -> String) -> String {
    let mut s = format!("<h2>Discovery ({})</h2><table>", esc(d.manager.label()));
    for [k, v] in summary_rows(d) {
        let _ = write!(s, "<tr><td>{}</td><td>{}</td></tr>", esc(&k), esc(&v));
    }
    s.push_str("</table><table>");
    for (i, r) in member_rows(d).iter().enumerate() {
        let tag = if i == 0 { "th" } else { "td" };
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<{tag}>{}</{tag}>", esc(c));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    s
}
