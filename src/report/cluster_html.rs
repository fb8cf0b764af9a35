//! HTML for the cluster report: one self-contained page with the fork tree drawn as an SVG in
//! the style of the compare report's timeline picture (shared history grey, the current
//! timeline green, WAL the current timeline lacks red and dashed), then the report's tables.

use std::fmt::Write as _;

use super::cluster::{ClusterReport, ClusterVerdict};
use crate::forktree::ForkTree;
use crate::lsn::Lsn;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn colour(v: ClusterVerdict) -> &'static str {
    match v {
        ClusterVerdict::Healthy => "#1a7f37",
        ClusterVerdict::Diverged => "#cf222e",
        ClusterVerdict::Inconclusive => "#9a6700",
    }
}

const GREY: &str = "#57606a";
const GREEN: &str = "#1a7f37";
const RED: &str = "#cf222e";

/// The fork tree as an SVG: one row per branch (parents above children), WAL positions on an
/// ordinal x axis (every fork point and node end gets its own column, in LSN order).
pub fn tree_svg(t: &ForkTree) -> Option<String> {
    if t.branches.is_empty() {
        return None;
    }
    // Rows: depth-first from the roots.
    let mut order = Vec::new();
    fn visit(t: &ForkTree, id: usize, order: &mut Vec<usize>) {
        order.push(id);
        for c in t.branches.iter().filter(|c| c.parent == Some(id)) {
            visit(t, c.id, order);
        }
    }
    for r in t.branches.iter().filter(|b| b.parent.is_none()) {
        visit(t, r.id, &mut order);
    }
    let row_of = |id: usize| order.iter().position(|x| *x == id).unwrap_or(0);
    // Columns: every fork point and node end, in LSN order.
    let mut points: Vec<Lsn> = t.branches.iter().filter_map(|b| b.fork_lsn).collect();
    points.extend(t.nodes.iter().filter_map(|n| n.end_of_wal));
    points.sort();
    points.dedup();
    let (w, x0, x_end) = (900.0_f64, 40.0_f64, 820.0_f64);
    let step = (x_end - x0 - 40.0) / points.len().max(1) as f64;
    let x_of = |l: Lsn| x0 + 40.0 + step * points.iter().position(|p| *p == l).unwrap_or(0) as f64;
    let row_h = 90.0;
    let top = if t.split_brains.is_empty() {
        40.0
    } else {
        70.0
    };
    let h = top + row_h * order.len() as f64 + 30.0;
    let y_of = |id: usize| top + 20.0 + row_h * row_of(id) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="fork tree">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="5" refY="5" markerUnits="userSpaceOnUse" markerWidth="22" markerHeight="22" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{GREEN}"/></marker></defs>"##
    );
    if !t.split_brains.is_empty() {
        let _ = write!(
            s,
            r##"<text x="{x0}" y="28" class="lbl" fill="{RED}" font-weight="600">SPLIT BRAIN: {}</text>"##,
            esc(&t
                .split_brains
                .iter()
                .map(|b| b.reason.clone())
                .collect::<Vec<_>>()
                .join("; "))
        );
    }
    for &id in &order {
        let b = &t.branches[id];
        let y = y_of(id);
        let x_start = b.fork_lsn.map_or(x0, x_of);
        let children: Vec<&crate::forktree::Branch> =
            t.branches.iter().filter(|c| c.parent == Some(id)).collect();
        let nodes_here: Vec<&crate::forktree::TreeNode> =
            t.nodes.iter().filter(|n| n.branch == Some(id)).collect();
        let far = nodes_here
            .iter()
            .filter_map(|n| n.end_of_wal)
            .chain(children.iter().filter_map(|c| c.fork_lsn))
            .max();
        let x_far = far.map_or(x_start + 30.0, x_of).max(x_start + 30.0);
        if let (Some(fork), Some(p)) = (b.fork_lsn, b.parent) {
            // The connector from the parent's row, as in the timeline picture.
            let yp = y_of(p);
            let stroke = if b.on_current_path { GREEN } else { RED };
            let _ = write!(
                s,
                r##"<path d="M{x},{yp} C{c1},{yp} {c1},{y} {c2},{y}" fill="none" stroke="{stroke}" stroke-width="4"/>
<circle cx="{x}" cy="{yp}" r="7" fill="#fff" stroke="#24292f" stroke-width="3"/>"##,
                x = x_of(fork),
                c1 = x_of(fork) + 20.0,
                c2 = x_of(fork) + 40.0,
            );
        }
        if b.current {
            let _ = write!(
                s,
                r##"<line x1="{x_start}" y1="{y}" x2="{x_end}" y2="{y}" stroke="{GREEN}" stroke-width="8" marker-end="url(#arrow)"/>"##
            );
        } else if b.on_current_path {
            // Kept up to where the current path leaves it; past that, WAL nobody kept.
            let kept = children
                .iter()
                .filter(|c| c.on_current_path)
                .filter_map(|c| c.fork_lsn)
                .map(x_of)
                .next()
                .unwrap_or(x_far);
            let _ = write!(
                s,
                r##"<line x1="{x_start}" y1="{y}" x2="{kept}" y2="{y}" stroke="{GREY}" stroke-width="8" stroke-linecap="round"/>"##
            );
            if x_far > kept {
                let _ = write!(
                    s,
                    r##"<line x1="{kept}" y1="{y}" x2="{x_far}" y2="{y}" stroke="{RED}" stroke-width="8" stroke-dasharray="14 6"/>"##
                );
            }
        } else {
            let _ = write!(
                s,
                r##"<line x1="{x_start}" y1="{y}" x2="{x_far}" y2="{y}" stroke="{RED}" stroke-width="8" stroke-dasharray="14 6"/>"##
            );
        }
        let fill = if b.current {
            GREEN
        } else if b.on_current_path {
            GREY
        } else {
            RED
        };
        let _ = write!(
            s,
            r##"<text x="{x}" y="{ty}" class="lbl" fill="{fill}">{label}{fork}{mark}</text>"##,
            x = x_start + 8.0,
            ty = y - 16.0,
            label = esc(&b.label),
            fork = b
                .fork_lsn
                .map_or_else(String::new, |l| format!(", forked at {l}")),
            mark = if b.current {
                " (current)"
            } else if b.on_current_path {
                ""
            } else {
                " (off the current timeline)"
            },
        );
        for (i, n) in nodes_here.iter().enumerate() {
            let x = n.end_of_wal.map_or(x_start, x_of);
            let holds = n.unique_wal.is_some();
            let stroke = if holds { RED } else { "#24292f" };
            let _ = write!(
                s,
                r##"<circle cx="{x}" cy="{y}" r="9" fill="#fff" stroke="{stroke}" stroke-width="3"><title>{title}</title></circle>
<text x="{tx}" y="{ty}" class="lbl" text-anchor="{anchor}" fill="{stroke}">{addr} ({role}{cur}){extra}</text>"##,
                title = esc(&crate::forktree::node_line(n)),
                ty = y + 28.0 + 16.0 * (i % 2) as f64,
                // Clear of the fork connectors on the left, inside the picture on the right.
                tx = if x < w * 0.6 { x - 12.0 } else { x + 12.0 },
                anchor = if x < w * 0.6 { "start" } else { "end" },
                addr = esc(&n.address),
                role = esc(n.role.as_deref().unwrap_or("?")),
                cur = if n.is_current_primary {
                    ", current primary"
                } else {
                    ""
                },
                extra = match n.unique_wal {
                    Some((a, b)) => format!(": {} bytes only here", b.saturating_bytes_since(a)),
                    None => String::new(),
                },
            );
        }
    }
    let unplaced: Vec<String> = t
        .nodes
        .iter()
        .filter(|n| n.branch.is_none())
        .map(|n| {
            format!(
                "{}: {}",
                n.address,
                n.not_examined.as_deref().unwrap_or("not examined")
            )
        })
        .collect();
    if !unplaced.is_empty() {
        let _ = write!(
            s,
            r##"<text x="{x0}" y="{y}" class="lbl" fill="{GREY}">not examined: {}</text>"##,
            esc(&unplaced.join("; ")),
            y = h - 10.0
        );
    }
    s.push_str("</svg>");
    Some(s)
}

/// The cluster report as one self-contained HTML page: the tree picture, then the text tables.
pub fn render(report: &ClusterReport, text: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>failover-verify cluster: {verdict}</title>
<style>
body{{font:14px/1.45 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#24292f;margin:24px auto;max-width:960px;padding:0 16px}}
.banner{{color:#fff;background:{colour};padding:14px 18px;border-radius:8px;font-size:22px;font-weight:600}}
.expl{{font-size:16px;margin:12px 0 20px}}
h2{{font-size:17px;border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:28px}}
svg .lbl{{font:13px -apple-system,"Segoe UI",Helvetica,Arial,sans-serif}}
pre{{font-size:12px;overflow-x:auto}}
</style></head><body>
<div class="banner">CLUSTER: {verdict_upper}</div>
<p class="expl">{explanation}</p>"##,
        verdict = report.verdict.as_str(),
        verdict_upper = report.verdict.as_str().to_uppercase(),
        colour = colour(report.verdict),
        explanation = esc(&report.explanation),
    );
    if let Some(svg) = report.tree.as_ref().and_then(tree_svg) {
        let _ = write!(s, "<h2>Fork tree</h2>{svg}");
    }
    let _ = write!(s, "<h2>Report</h2><pre>{}</pre></body></html>", esc(text));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forktree::{Branch, TreeNode};
    use crate::lsn::TimelineId;

    #[test]
    fn draws_each_branch_and_node() {
        let branch = |id, tli, parent, fork: Option<u64>, current, path| Branch {
            id,
            timeline: TimelineId(tli),
            label: format!("timeline {tli}"),
            parent,
            fork_lsn: fork.map(Lsn),
            history: Vec::new(),
            on_current_path: path,
            current,
        };
        let node = |addr: &str, b, end, unique: Option<(u64, u64)>| TreeNode {
            address: addr.into(),
            branch: Some(b),
            role: Some("standby".into()),
            timeline: None,
            end_of_wal: Some(Lsn(end)),
            past_fork_bytes: None,
            unique_wal: unique.map(|(a, b)| (Lsn(a), Lsn(b))),
            upstream: None,
            upstream_status: None,
            upstream_on_current: None,
            is_current_primary: false,
            not_examined: None,
        };
        let t = ForkTree {
            branches: vec![
                branch(0, 1, None, None, false, true),
                branch(1, 2, Some(0), Some(0x100), true, true),
            ],
            nodes: vec![
                node("a:1", 0, 0x180, Some((0x100, 0x180))),
                node("<b>:2", 1, 0x200, None),
            ],
            split_brains: Vec::new(),
        };
        let svg = tree_svg(&t).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 3, "two nodes and one fork");
        assert!(svg.contains("stroke-dasharray"), "the WAL only a:1 holds");
        assert!(svg.contains("timeline 2, forked at 0/100 (current)"));
        assert!(svg.contains("&lt;b&gt;:2"));
        assert!(svg.contains("128 bytes only here"));
    }
}
