//! The `patroni` section of a report (Patroni discovery, `--patroni`), in every format:
//! one small block per renderer, built from the same rows.

use crate::quote::markdown_cell;
use std::fmt::Write as _;
use std::io::{self, Write};

use tabled::builder::Builder;
use tabled::settings::Style;

use crate::patroni::{HistoryEntry, PatroniSection};

/// A member's `name (host:port)`, looked up in the section.
fn named(p: &PatroniSection, name: &Option<String>) -> String {
    match name {
        None => "named by a flag".into(),
        Some(n) => match p
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

/// A promotion as one line: `timeline 1 → 2 at 0/4000088: reason`.
pub(crate) fn promotion_line(e: &HistoryEntry) -> String {
    format!(
        "timeline {} → {} at {}: {}",
        e.parent_timeline,
        e.parent_timeline + 1,
        e.switchpoint_lsn,
        e.reason
    )
}

/// The summary rows: (field, value).
pub(crate) fn summary_rows(p: &PatroniSection) -> Vec<[String; 2]> {
    let mut rows = vec![
        ["REST API".to_string(), p.urls.join(", ")],
        [
            "scope".into(),
            p.scope.clone().unwrap_or_else(|| "-".into()),
        ],
        ["new primary".into(), named(p, &p.new_primary)],
        ["former primary".into(), named(p, &p.former_primary)],
    ];
    if let Some(r) = &p.former_primary_rule {
        rows.push(["former primary chosen as".into(), r.clone()]);
    }
    match &p.promotion {
        Some(e) => {
            rows.push(["last promotion".into(), promotion_line(e)]);
            rows.push([
                "promoted at".into(),
                e.timestamp.clone().unwrap_or_else(|| "-".into()),
            ]);
            rows.push([
                "promoted member".into(),
                e.new_leader.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        None => rows.push(["last promotion".into(), "none in /history".into()]),
    }
    for u in &p.unanswered {
        rows.push(["did not answer".into(), u.clone()]);
    }
    rows
}

/// The member table, header first: member, role, state, address, timeline, WAL, lag.
pub(crate) fn member_rows(p: &PatroniSection) -> Vec<[String; 7]> {
    let dash = || "-".to_string();
    let mut rows = vec![[
        "member".to_string(),
        "role".into(),
        "state".into(),
        "host:port".into(),
        "timeline".into(),
        "WAL position".into(),
        "lag".into(),
    ]];
    rows.extend(p.members.iter().map(|m| {
        [
            m.name.clone(),
            m.role.clone(),
            m.state.clone().unwrap_or_else(dash),
            m.address().unwrap_or_else(dash),
            m.timeline.map_or_else(dash, |t| t.to_string()),
            m.lsn.map_or_else(dash, |l| l.to_string()),
            m.lag.clone().unwrap_or_else(dash),
        ]
    }));
    rows
}

/// Text: a `Patroni` heading, the summary table and the member table.
pub(crate) fn render_text(p: &PatroniSection, out: &mut dyn Write) -> io::Result<()> {
    let grid = |rows: Vec<Vec<String>>| {
        let mut b = Builder::default();
        for r in rows {
            b.push_record(r);
        }
        b.build().with(Style::sharp()).to_string()
    };
    writeln!(out)?;
    writeln!(out, "Patroni")?;
    writeln!(
        out,
        "{}",
        grid(summary_rows(p).into_iter().map(Vec::from).collect())
    )?;
    writeln!(
        out,
        "{}",
        grid(member_rows(p).into_iter().map(Vec::from).collect())
    )
}

/// Markdown: a `### Patroni` heading and two pipe tables.
pub(crate) fn render_markdown(p: &PatroniSection, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out)?;
    writeln!(out, "### Patroni")?;
    writeln!(out)?;
    writeln!(out, "| | value |")?;
    writeln!(out, "|---|---|")?;
    for [k, v] in summary_rows(p) {
        writeln!(out, "| {} | {} |", markdown_cell(&k), markdown_cell(&v))?;
    }
    writeln!(out)?;
    let rows = member_rows(p);
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r.iter().map(|c| markdown_cell(c)).collect();
        writeln!(out, "| {} |", cells.join(" | "))?;
        if i == 0 {
            writeln!(out, "|{}", "---|".repeat(r.len()))?;
        }
    }
    Ok(())
}

/// CSV: `patroni,<field>,<value>` rows, then one `patroni_member,<name>,<role;state;...>` each.
pub(crate) fn csv_rows(p: &PatroniSection) -> Vec<[String; 3]> {
    let mut rows: Vec<[String; 3]> = summary_rows(p)
        .into_iter()
        .map(|[k, v]| ["patroni".into(), k, v])
        .collect();
    rows.extend(
        member_rows(p)
            .into_iter()
            .skip(1)
            .map(|r| ["patroni_member".into(), r[0].clone(), r[1..].join(";")]),
    );
    rows
}

/// HTML: a `Patroni` heading and two tables (`esc` escapes text).
pub(crate) fn render_html(p: &PatroniSection, esc: &dyn Fn(&str) -> String) -> String {
    let mut s = String::from("<h2>Patroni</h2><table>");
    for [k, v] in summary_rows(p) {
        let _ = write!(s, "<tr><td>{}</td><td>{}</td></tr>", esc(&k), esc(&v));
    }
    s.push_str("</table><table>");
    for (i, r) in member_rows(p).iter().enumerate() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsn::Lsn;
    use crate::patroni::Member;

    fn section() -> PatroniSection {
        let m = |name: &str, role: &str, port: u16, tl: u32| Member {
            name: name.into(),
            role: role.into(),
            state: Some("running".into()),
            host: Some("127.0.0.1".into()),
            port: Some(port),
            api_url: None,
            timeline: Some(tl),
            lsn: (role != "leader").then_some(Lsn(0x4018360)),
            lag: Some("0".into()),
        };
        let promo = HistoryEntry {
            parent_timeline: 1,
            switchpoint_lsn: Lsn(0x4000088),
            reason: "no recovery target specified".into(),
            timestamp: Some("2026-11-27T06:38:22+00:00".into()),
            new_leader: Some("pg2".into()),
        };
        PatroniSection {
            urls: vec!["http://127.0.0.1:8008".into()],
            unanswered: vec!["http://127.0.0.1:9/cluster: refused".into()],
            scope: Some("demo".into()),
            new_primary: Some("pg2".into()),
            former_primary: Some("pg1".into()),
            former_primary_rule: Some("the only member still on timeline 1 | <x>".into()),
            promotion: Some(promo.clone()),
            history: vec![promo],
            members: vec![
                m("pg1", "replica", 5431, 1),
                m("pg2", "leader", 5432, 2),
                m("pg3", "replica", 5433, 2),
            ],
        }
    }

    #[test]
    fn every_format_shows_the_promotion_and_the_members() {
        let p = section();
        let mut text = Vec::new();
        render_text(&p, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("Patroni"));
        assert!(text.contains("pg1 (127.0.0.1:5431)"), "{text}");
        assert!(text.contains("timeline 1 → 2 at 0/4000088"), "{text}");
        let mut md = Vec::new();
        render_markdown(&p, &mut md).unwrap();
        let md = String::from_utf8(md).unwrap();
        assert!(md.contains("### Patroni"));
        assert!(md.contains("| promoted member | pg2 |"), "{md}");
        assert!(md.contains("timeline 1 \\| <x>"), "pipes escaped: {md}");
        assert!(md.contains("| pg3 | replica | running | 127.0.0.1:5433 | 2 | 0/4018360 | 0 |"));
        let csv = csv_rows(&p);
        assert!(csv.contains(&[
            "patroni".to_string(),
            "promoted at".into(),
            "2026-11-27T06:38:22+00:00".into()
        ]));
        assert!(csv
            .iter()
            .any(|r| r[0] == "patroni_member" && r[1] == "pg2"));
        let esc = |s: &str| s.replace('<', "&lt;").replace('>', "&gt;");
        let html = render_html(&p, &esc);
        assert!(html.starts_with("<h2>Patroni</h2>"));
        assert!(
            html.contains("&lt;x&gt;") && !html.contains("<x>"),
            "{html}"
        );
        assert!(html.contains("<td>pg2</td><td>leader</td>"), "{html}");
    }
}
