//! The `downstream` section of the compare report in text, Markdown and HTML: one row per
//! consumer of the former primary with how far it got and the lost transactions it received.

use std::fmt::Write as _;
use std::io::{self, Write};

use tabled::builder::Builder;
use tabled::settings::Style;

use crate::downstream::Downstream;

/// The consumer table, header first.
pub(crate) fn rows(d: &Downstream) -> Vec<[String; 7]> {
    let mut rows = vec![[
        "consumer".to_string(),
        "kind".into(),
        "database".into(),
        "confirmed (sent)".into(),
        "WAL past switchpoint".into(),
        "lost xacts received".into(),
        "xids / tables".into(),
    ]];
    for c in &d.consumers {
        let r = c.received.as_ref();
        rows.push([
            match &c.application_name {
                Some(a) if *a != c.name => format!("{} ({a})", c.name),
                _ => c.name.clone(),
            },
            c.kind.as_str().into(),
            c.database.clone().unwrap_or_else(|| "-".into()),
            format!(
                "{} ({})",
                super::lsn_or_dash(c.confirmed_lsn),
                super::lsn_or_dash(c.sent_lsn)
            ),
            c.wal_past_switchpoint.to_string(),
            r.map_or_else(
                || "not decoded".into(),
                |r| {
                    let mut s = format!("{}{}", if r.exact { "" } else { "≥ " }, r.transactions);
                    if r.sent_unconfirmed > 0 {
                        s.push_str(&format!(" (+{} sent, unconfirmed)", r.sent_unconfirmed));
                    }
                    s
                },
            ),
            r.filter(|r| r.transactions > 0).map_or_else(
                || "-".into(),
                |r| {
                    format!(
                        "{}..{} {}",
                        r.first_xid.map_or_else(|| "?".into(), |x| x.to_string()),
                        r.last_xid.map_or_else(|| "?".into(), |x| x.to_string()),
                        r.tables.join(", ")
                    )
                },
            ),
        ]);
    }
    rows
}

fn title(d: &Downstream) -> String {
    format!(
        "Downstream consumers of the former primary (switchpoint {})",
        d.switchpoint
    )
}

/// Text: a heading and a grid (nothing when there is no consumer and nothing to say).
pub(crate) fn render_text(d: &Downstream, out: &mut dyn Write) -> io::Result<()> {
    if d.consumers.is_empty() && d.not_examined.is_none() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "{}", title(d))?;
    if let Some(why) = &d.not_examined {
        return writeln!(out, "not examined: {why}");
    }
    let mut b = Builder::default();
    for r in rows(d) {
        b.push_record(r);
    }
    writeln!(out, "{}", b.build().with(Style::sharp()))
}

/// Markdown: a heading and a pipe table.
pub(crate) fn render_markdown(d: &Downstream, out: &mut dyn Write) -> io::Result<()> {
    if d.consumers.is_empty() && d.not_examined.is_none() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "### {}", title(d))?;
    writeln!(out)?;
    if let Some(why) = &d.not_examined {
        return writeln!(out, "not examined: {}", why.replace('|', "\\|"));
    }
    for (i, r) in rows(d).iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .map(|c| c.replace('|', "\\|").replace(['\n', '\r'], " "))
            .collect();
        writeln!(out, "| {} |", cells.join(" | "))?;
        if i == 0 {
            writeln!(out, "|{}", "---|".repeat(r.len()))?;
        }
    }
    Ok(())
}

/// HTML: a heading and a table (`esc` escapes text).
pub(crate) fn render_html(d: &Downstream, esc: &dyn Fn(&str) -> String) -> String {
    if d.consumers.is_empty() && d.not_examined.is_none() {
        return String::new();
    }
    let mut s = format!("<h2>{}</h2>", esc(&title(d)));
    if let Some(why) = &d.not_examined {
        let _ = write!(s, "<p>not examined: {}</p>", esc(why));
        return s;
    }
    s.push_str("<table>");
    for (i, r) in rows(d).iter().enumerate() {
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
