//! HTML: one self-contained file (inline CSS and SVG, no external assets) that shows the fork
//! at a glance — the timelines, the switchpoint, the lost WAL range, the loss window and the
//! per-table losses — followed by the same tables as the other formats.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::{
    differing_rows, divergence_rows, lost_xid_rows, node_rows, row_diff_rows, table_loss_rows,
    transaction_rows, Report, LISTED_ROWS, LISTED_XIDS,
};
use crate::divergence::{human_bytes, Verdict};
use crate::finding::Severity;

/// Escapes text for HTML element content and attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The banner colour of a verdict.
fn verdict_colour(v: Verdict) -> &'static str {
    match v {
        Verdict::NoLoss => "#1a7f37",
        Verdict::Loss => "#cf222e",
        Verdict::Rewound | Verdict::Inconclusive => "#9a6700",
        Verdict::Unrelated => "#57606a",
    }
}

/// An HTML table from rows; the first row is the header when `header` is set.
fn table<const N: usize>(rows: &[[String; N]], header: bool) -> String {
    let mut s = String::from("<table>");
    for (i, r) in rows.iter().enumerate() {
        let tag = if header && i == 0 { "th" } else { "td" };
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<{tag}>{}</{tag}>", esc(c));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    s
}

/// The timeline picture: the shared history, the fork at the switchpoint, the former
/// timeline's lost WAL in red, the new timeline in green, and the loss window.
fn timeline_svg(report: &Report) -> Option<String> {
    let d = report.divergence.as_ref()?;
    let sp = d.switchpoint_lsn?;
    let lost = d.lost_wal_bytes > 0;
    let (w, h) = (900.0_f64, 230.0_f64);
    let x_fork = 380.0;
    let y_old = 150.0;
    let y_new = 70.0;
    let x_lost_end = if lost { 760.0 } else { x_fork };
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="timeline fork">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="5" refY="5" markerUnits="userSpaceOnUse" markerWidth="22" markerHeight="22" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#1a7f37"/></marker></defs>
<line x1="30" y1="{y_old}" x2="{x_fork}" y2="{y_old}" stroke="#57606a" stroke-width="8" stroke-linecap="round"/>
<text x="30" y="{ty}" class="lbl">shared history (timeline {ft})</text>
<path d="M{x_fork},{y_old} C{c1},{y_old} {c2},{y_new} {c3},{y_new} L{xe},{y_new}" fill="none" stroke="#1a7f37" stroke-width="8" marker-end="url(#arrow)"/>
<text x="{c3}" y="{tn}" class="lbl" fill="#1a7f37">new primary: timeline {nt} ({path})</text>
"##,
        ty = y_old + 30.0,
        ft = d.former_timeline,
        c1 = x_fork + 60.0,
        c2 = x_fork + 60.0,
        c3 = x_fork + 120.0,
        xe = w - 40.0,
        tn = y_new - 18.0,
        nt = d.new_timeline,
        path = esc(&d
            .timeline_path
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" → ")),
    );
    if lost {
        let _ = write!(
            s,
            r##"<line x1="{x_fork}" y1="{y_old}" x2="{x_lost_end}" y2="{y_old}" stroke="#cf222e" stroke-width="8" stroke-dasharray="14 6"/>
<text x="{xm}" y="{ty}" class="lbl" fill="#cf222e" text-anchor="middle">lost: {bytes} of WAL on timeline {ft}</text>
<text x="{x_lost_end}" y="{tl}" class="lbl" fill="#cf222e" text-anchor="end">former primary, timeline {ft}: end of WAL {end}</text>
"##,
            xm = (x_fork + x_lost_end) / 2.0 + 40.0,
            ty = y_old + 30.0,
            bytes = esc(&human_bytes(d.lost_wal_bytes)),
            ft = d.former_timeline,
            tl = y_old - 14.0,
            end = d.former_end_lsn,
        );
    }
    let _ = write!(
        s,
        r##"<circle cx="{x_fork}" cy="{y_old}" r="9" fill="#fff" stroke="#24292f" stroke-width="3"/>
<text x="{x_fork}" y="{tf}" class="lbl" text-anchor="middle">switchpoint {sp}</text>
"##,
        tf = y_old + 52.0,
    );
    if let Some(t) = &report.transactions {
        if let (Some(a), Some(b)) = (&t.first_lost_commit_time, &t.last_lost_commit_time) {
            let _ = write!(
                s,
                r##"<text x="{x}" y="{y}" class="lbl" fill="#cf222e" text-anchor="middle">{n} lost commit(s), {a} → {b}</text>"##,
                x = (x_fork + x_lost_end) / 2.0 + 40.0,
                y = y_old + 52.0 + 20.0,
                n = t.lost_commits,
                a = esc(a),
                b = esc(b),
            );
        }
    }
    s.push_str("</svg>");
    Some(s)
}

/// Horizontal bars of row changes per table.
fn table_bars_svg(report: &Report) -> Option<String> {
    let t = report.transactions.as_ref()?;
    let rows: Vec<(String, u64, u64, u64)> = t
        .tables
        .iter()
        .filter(|x| x.kind != "catalog")
        .map(|x| {
            (
                x.table
                    .clone()
                    .unwrap_or_else(|| format!("relfilenode {}", x.relfilenode)),
                x.inserts,
                x.updates,
                x.deletes,
            )
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let max = rows
        .iter()
        .map(|r| r.1 + r.2 + r.3)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let bar_w = 420.0;
    let h = 30.0 * rows.len() as f64 + 40.0;
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 900 {h}" width="900" height="{h}" role="img" aria-label="lost rows per table">"##
    );
    for (i, (name, ins, upd, del)) in rows.iter().enumerate() {
        let y = 10.0 + 30.0 * i as f64;
        let _ = write!(
            s,
            r##"<text x="250" y="{ty}" class="lbl" text-anchor="end">{name}</text>"##,
            ty = y + 15.0,
            name = esc(name)
        );
        let mut x = 260.0;
        for (n, colour) in [(*ins, "#cf222e"), (*upd, "#bc4c00"), (*del, "#8250df")] {
            let wpx = bar_w * n as f64 / max;
            if n > 0 {
                let _ = write!(
                    s,
                    r##"<rect x="{x}" y="{y}" width="{wpx:.1}" height="20" fill="{colour}"><title>{n}</title></rect>"##
                );
            }
            x += wpx;
        }
        let _ = write!(
            s,
            r##"<text x="{tx}" y="{ty}" class="lbl">{ins} ins · {upd} upd · {del} del</text>"##,
            tx = x + 8.0,
            ty = y + 15.0
        );
    }
    let ly = h - 12.0;
    let _ = write!(
        s,
        r##"<rect x="260" y="{ry}" width="12" height="12" fill="#cf222e"/><text x="276" y="{ly}" class="lbl">inserts</text><rect x="350" y="{ry}" width="12" height="12" fill="#bc4c00"/><text x="366" y="{ly}" class="lbl">updates</text><rect x="440" y="{ry}" width="12" height="12" fill="#8250df"/><text x="456" y="{ly}" class="lbl">deletes</text></svg>"##,
        ry = ly - 10.0
    );
    Some(s)
}

/// Writes `report` as one self-contained HTML page.
pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>failover-verify: {verdict}</title>
<style>
body{{font:14px/1.45 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#24292f;margin:24px auto;max-width:960px;padding:0 16px}}
.banner{{color:#fff;background:{colour};padding:14px 18px;border-radius:8px;font-size:22px;font-weight:600}}
.expl{{font-size:16px;margin:12px 0 20px}}
h2{{font-size:17px;border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:28px}}
table{{border-collapse:collapse;margin:8px 0;font-size:13px}}
td,th{{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}}
th{{background:#f6f8fa}}
svg .lbl{{font:13px -apple-system,"Segoe UI",Helvetica,Arial,sans-serif}}
.sev-critical{{color:#cf222e;font-weight:600}} .sev-warning{{color:#9a6700;font-weight:600}} .sev-info{{color:#57606a}}
footer{{color:#57606a;font-size:12px;margin-top:28px}}
</style></head><body>
<div class="banner">{verdict_upper}{incomplete}</div>
<p class="expl">{explanation}</p>{ddl_line}
"##,
        verdict = report.verdict.as_str(),
        verdict_upper = report.verdict.as_str().replace('_', " ").to_uppercase(),
        colour = verdict_colour(report.verdict),
        incomplete = if report.incomplete {
            " (incomplete)"
        } else {
            ""
        },
        explanation = esc(&report.explanation),
        ddl_line = report
            .transactions
            .as_ref()
            .and_then(super::lost_ddl_line)
            .map(|l| format!("<p class=\"expl\"><b>Lost DDL:</b> {}.</p>", esc(&l)))
            .unwrap_or_default(),
    );
    if let Some(svg) = timeline_svg(report) {
        let _ = write!(s, "<h2>What happened</h2>{svg}");
    }
    if let Some(svg) = table_bars_svg(report) {
        let _ = write!(s, "<h2>Rows changed by lost transactions</h2>{svg}");
    }
    if let Some(d) = &report.divergence {
        let _ = write!(
            s,
            "<h2>Divergence</h2>{}",
            table(&divergence_rows(d), false)
        );
    }
    if let Some(t) = &report.transactions {
        let _ = write!(
            s,
            "<h2>WAL accounting</h2>{}",
            table(&transaction_rows(t), false)
        );
        let tables = table_loss_rows(t);
        if tables.len() > 1 {
            let _ = write!(s, "<h2>Per table</h2>{}", table(&tables, true));
        }
        let ddl = super::lost_ddl_rows(t);
        if ddl.len() > 1 {
            let _ = write!(s, "<h2>Lost DDL</h2>{}", table(&ddl, true));
        }
        let dbs = super::database_loss_rows(t);
        if dbs.len() > 2 {
            let _ = write!(s, "<h2>Per database</h2>{}", table(&dbs, true));
        }
        if t.commits_per_minute.len() > 1 {
            let (rows, more) = super::minute_rows(t, super::LISTED_MINUTES);
            let _ = write!(s, "<h2>Loss timeline</h2>{}", table(&rows, true));
            if more > 0 {
                let _ = write!(s, "<p>{more} more minute(s) in the JSON report.</p>");
            }
        }
        let xids = lost_xid_rows(t, LISTED_XIDS);
        if xids.len() > 1 {
            let _ = write!(s, "<h2>Lost transactions</h2>{}", table(&xids, true));
            if let Some(note) = super::lost_xids_note(t, LISTED_XIDS) {
                let _ = write!(s, "<p>{}</p>", esc(&note));
            }
        }
    }
    let nodes = node_rows(report);
    if !nodes.is_empty() {
        let mut rows = vec![[
            "".to_string(),
            "new primary".into(),
            "former primary".into(),
        ]];
        rows.extend(nodes);
        let _ = write!(s, "<h2>Nodes</h2>{}", table(&rows, true));
    }
    if let Some(t) = &report.tables {
        let _ = write!(s, "<h2>Rows</h2>{}", table(&row_diff_rows(t), true));
        let diff = differing_rows(t, LISTED_ROWS);
        if diff.len() > 1 {
            let _ = write!(s, "<h2>Differing rows</h2>{}", table(&diff, true));
        }
    }
    if let Some(p) = &report.patroni {
        s.push_str(&super::patroni::render_html(p, &esc));
    }
    if let Some(d) = report
        .discovery
        .as_ref()
        .filter(|d| super::discovery::shown(d))
    {
        s.push_str(&super::discovery::render_html(d, &esc));
    }
    if let Some(d) = &report.downstream {
        s.push_str(&super::downstream::render_html(d, &esc));
    }
    if !report.findings.is_empty() {
        s.push_str("<h2>Findings</h2><ul>");
        for f in &report.findings {
            let class = match f.severity {
                Severity::Critical => "sev-critical",
                Severity::Warning => "sev-warning",
                Severity::Info => "sev-info",
            };
            let _ = write!(
                s,
                r#"<li><span class="{class}">{:?}</span> {}"#,
                f.severity,
                esc(&f.message)
            );
            if let Some(h) = &f.hint {
                let _ = write!(s, "<br><em>What to do:</em> {}", esc(h));
            }
            s.push_str("</li>");
        }
        s.push_str("</ul>");
    }
    let _ = write!(
        s,
        "<footer>{} · generated {} · {} ms</footer></body></html>",
        esc(&report.tool),
        esc(&report.generated_at),
        report.duration_ms
    );
    s.push('\n');
    out.write_all(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
