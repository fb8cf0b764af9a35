//! The fork tree of a cluster's nodes: which timeline branch each node sits on, where each
//! branch forked from its parent, how far each node's WAL runs past that fork, which nodes hold
//! WAL the current timeline lacks, split brain, and standbys following an off-timeline upstream.
//!
//! Pure computation over what each node said about itself ([`NodeFacts`]) and its WAL receiver
//! ([`WalReceiver`]); the `cluster` command reads the nodes and renders the result.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::lsn::{Lsn, SystemId, TimelineId};
use crate::node::NodeFacts;
use crate::timeline::{HistoryEntry, TimelineHistory};

/// A standby's `pg_stat_wal_receiver` row: whom it streams from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalReceiver {
    /// `status`: `streaming`, `catchup`, `waiting`, `starting`, `stopping`, ...
    pub status: Option<String>,
    /// `sender_host`: the upstream's host as the standby's `primary_conninfo` names it.
    pub sender_host: Option<String>,
    /// `sender_port`.
    pub sender_port: Option<u16>,
    /// `received_tli`: the timeline of the WAL last received.
    pub received_tli: Option<TimelineId>,
    /// `flushed_lsn` (PostgreSQL 13+; `received_lsn` before).
    pub flushed_lsn: Option<Lsn>,
    /// `slot_name`: the slot it streams through on the upstream.
    pub slot_name: Option<String>,
}

/// One node as the tree builder sees it.
#[derive(Clone, Debug, Default)]
pub struct TreeInput {
    /// `host:port`.
    pub address: String,
    /// What it said about itself; `None` when it could not be read.
    pub facts: Option<NodeFacts>,
    /// Its WAL receiver, when it has one running.
    pub receiver: Option<WalReceiver>,
    /// Why it could not be read.
    pub error: Option<String>,
}

/// One branch of the tree: a timeline as one particular history defines it (two promotions
/// without a shared archive can both create a "timeline 2": those are two branches).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch {
    /// Index in [`ForkTree::branches`].
    pub id: usize,
    /// The timeline id.
    pub timeline: TimelineId,
    /// `timeline 2`, or `timeline 2 (b)` when another branch has the same id.
    pub label: String,
    /// The branch it forked from (none for the root).
    pub parent: Option<usize>,
    /// Where it forked from its parent (the switchpoint in its history file).
    pub fork_lsn: Option<Lsn>,
    /// The timeline history that defines it, oldest ancestor first.
    pub history: Vec<HistoryEntry>,
    /// The current timeline or one of its ancestors.
    pub on_current_path: bool,
    /// The current primary's branch.
    pub current: bool,
}

/// Where one node sits in the tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeNode {
    /// `host:port`.
    pub address: String,
    /// Its branch, when it was read and its history is known.
    pub branch: Option<usize>,
    /// `primary` or `standby`.
    pub role: Option<String>,
    /// The timeline it is on.
    pub timeline: Option<TimelineId>,
    /// The end of its WAL (insert LSN on a primary, received/replayed on a standby).
    pub end_of_wal: Option<Lsn>,
    /// Bytes of WAL past its branch's fork point (none on the root branch).
    pub past_fork_bytes: Option<u64>,
    /// WAL it has that the current timeline does not: `[from, to)`.
    pub unique_wal: Option<(Lsn, Lsn)>,
    /// Its upstream as `host:port` (from `pg_stat_wal_receiver`).
    pub upstream: Option<String>,
    /// The WAL receiver's status.
    pub upstream_status: Option<String>,
    /// Whether the upstream is on the current timeline; `None` when it cannot be told.
    pub upstream_on_current: Option<bool>,
    /// The primary the tree was built around.
    pub is_current_primary: bool,
    /// Why it is not in the tree (unreadable, another cluster, history unknown).
    pub not_examined: Option<String>,
}

/// Two nodes that wrote past the point where their timelines fork.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitBrain {
    /// Why it is a split brain, in a sentence.
    pub reason: String,
    /// One side: `(address, timeline, from, to)` — the WAL it wrote past the fork.
    pub sides: Vec<SplitSide>,
}

/// One side of a split brain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSide {
    /// `host:port`.
    pub address: String,
    /// Its timeline.
    pub timeline: TimelineId,
    /// Whether it accepts writes now.
    pub writable: bool,
    /// Where its WAL leaves the other side's.
    pub from: Lsn,
    /// The end of its WAL.
    pub to: Lsn,
}

impl SplitSide {
    /// Bytes written on this side past the fork.
    pub fn bytes(&self) -> u64 {
        self.to.saturating_bytes_since(self.from)
    }
}

/// The whole tree.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkTree {
    /// Every branch, parents before children.
    pub branches: Vec<Branch>,
    /// Every node, in the order given.
    pub nodes: Vec<TreeNode>,
    /// Pairs of nodes in a split brain.
    pub split_brains: Vec<SplitBrain>,
}

type Key = (TimelineId, Vec<(TimelineId, Lsn)>);

fn key_of(h: &TimelineHistory) -> Key {
    (
        h.timeline,
        h.entries
            .iter()
            .map(|e| (e.parent, e.switchpoint))
            .collect(),
    )
}

/// Where the WAL of two histories stops being the same: the fork point, or, when one history
/// is a prefix of the other, where the older timeline ends in the newer history, or for two
/// identical histories the start of their timeline (two promotions at one switchpoint).
pub fn divergence_point(a: &TimelineHistory, b: &TimelineHistory) -> Lsn {
    if let Some(f) = a.fork_point(b) {
        return f;
    }
    if a.timeline == b.timeline {
        return a.entries.last().map_or(Lsn(0), |e| e.switchpoint);
    }
    b.end_of(a.timeline)
        .or_else(|| a.end_of(b.timeline))
        .unwrap_or(Lsn(0))
}

/// Where a history's own timeline begins (0 for timeline 1).
fn start_of(h: &TimelineHistory) -> Lsn {
    h.entries.last().map_or(Lsn(0), |e| e.switchpoint)
}

/// Whether `a`'s timeline is `b`'s or one of its ancestors, by full history.
fn is_prefix(a: &Key, b: &Key) -> bool {
    if a == b {
        return true;
    }
    let (ta, ea) = a;
    let (_, eb) = b;
    eb.len() > ea.len() && eb[..ea.len()] == ea[..] && eb[ea.len()].0 == *ta
}

fn loopback(h: &str) -> bool {
    matches!(h, "127.0.0.1" | "localhost" | "::1" | "[::1]")
}

fn split_address(a: &str) -> (String, Option<u16>) {
    match a.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            p.parse().ok(),
        ),
        None => (a.to_string(), None),
    }
}

/// Builds the tree around `current` (an index into `inputs`: the primary), for the nodes of
/// `system` (others are left out as not examined).
pub fn build(inputs: &[TreeInput], current: Option<usize>, system: Option<SystemId>) -> ForkTree {
    let current_hist = current
        .and_then(|i| inputs.get(i))
        .and_then(|n| n.facts.as_ref())
        .and_then(|f| f.history.clone());
    let current_key = current_hist.as_ref().map(key_of);

    // Every branch named by some node's history, ancestors included.
    let mut keys: BTreeMap<Key, ()> = BTreeMap::new();
    let usable = |n: &TreeInput| -> Option<TimelineHistory> {
        let f = n.facts.as_ref()?;
        if system.is_some_and(|s| s != f.system_identifier) {
            return None;
        }
        f.history.clone()
    };
    for n in inputs {
        if let Some(h) = usable(n) {
            let (tli, entries) = key_of(&h);
            for i in 0..entries.len() {
                keys.insert((entries[i].0, entries[..i].to_vec()), ());
            }
            keys.insert((tli, entries), ());
        }
    }
    // Parents first: by depth, then timeline, then switchpoints.
    let mut ordered: Vec<Key> = keys.into_keys().collect();
    ordered.sort_by(|a, b| (a.1.len(), a.0, &a.1).cmp(&(b.1.len(), b.0, &b.1)));
    let mut per_tli: BTreeMap<TimelineId, usize> = BTreeMap::new();
    for k in &ordered {
        *per_tli.entry(k.0).or_default() += 1;
    }
    let mut seen_tli: BTreeMap<TimelineId, usize> = BTreeMap::new();
    let mut branches: Vec<Branch> = Vec::with_capacity(ordered.len());
    for k in &ordered {
        let (tli, entries) = k;
        let parent = entries.last().and_then(|(ptli, _)| {
            let pkey: Key = (*ptli, entries[..entries.len() - 1].to_vec());
            ordered.iter().position(|x| *x == pkey)
        });
        let n = seen_tli.entry(*tli).or_default();
        let label = if per_tli[tli] > 1 {
            format!("timeline {tli} ({})", (b'a' + (*n as u8).min(25)) as char)
        } else {
            format!("timeline {tli}")
        };
        *n += 1;
        branches.push(Branch {
            id: branches.len(),
            timeline: *tli,
            label,
            parent,
            fork_lsn: entries.last().map(|e| e.1),
            history: entries
                .iter()
                .map(|(p, s)| HistoryEntry {
                    parent: *p,
                    switchpoint: *s,
                    reason: String::new(),
                })
                .collect(),
            on_current_path: current_key.as_ref().is_some_and(|c| is_prefix(k, c)),
            current: current_key.as_ref() == Some(k),
        });
    }

    let branch_of = |n: &TreeInput| -> Option<usize> {
        let k = key_of(&usable(n)?);
        ordered.iter().position(|x| *x == k)
    };
    let mut nodes: Vec<TreeNode> = inputs
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let branch = branch_of(n);
            let f = n.facts.as_ref();
            let not_examined = match (f, branch) {
                (_, Some(_)) => None,
                (None, _) => Some(n.error.clone().unwrap_or_else(|| "unreadable".into())),
                (Some(f), None) if system.is_some_and(|s| s != f.system_identifier) => {
                    Some(format!(
                        "another cluster (system identifier {})",
                        f.system_identifier
                    ))
                }
                (Some(f), None) => Some(format!(
                    "the history of timeline {} is unknown: {}",
                    f.timeline,
                    f.history_problem.as_deref().unwrap_or("not read")
                )),
            };
            let unique_wal = match (usable(n), &current_hist, f) {
                (Some(h), Some(c), Some(f)) if Some(i) != current => {
                    let from = if key_of(&h) == key_of(c) {
                        None
                    } else if is_prefix(&key_of(&h), &key_of(c)) {
                        c.end_of(h.timeline)
                    } else {
                        Some(divergence_point(&h, c))
                    };
                    from.filter(|from| f.end_of_wal > *from)
                        .map(|from| (from, f.end_of_wal))
                }
                _ => None,
            };
            TreeNode {
                address: n.address.clone(),
                branch,
                role: f.map(|f| f.role().to_string()),
                timeline: f.map(|f| f.timeline),
                end_of_wal: f.map(|f| f.end_of_wal),
                past_fork_bytes: branch
                    .and_then(|b| branches[b].fork_lsn)
                    .zip(f)
                    .map(|(fork, f)| f.end_of_wal.saturating_bytes_since(fork)),
                unique_wal,
                upstream: n.receiver.as_ref().and_then(|r| {
                    r.sender_host.as_ref().map(|h| match r.sender_port {
                        Some(p) => format!("{h}:{p}"),
                        None => h.clone(),
                    })
                }),
                upstream_status: n.receiver.as_ref().and_then(|r| r.status.clone()),
                upstream_on_current: None,
                is_current_primary: Some(i) == current,
                not_examined,
            }
        })
        .collect();

    // Upstreams: a known node (by host:port, loopback names being one host), else the
    // timeline the receiver last received.
    let current_tli = current_hist.as_ref().map(|h| h.timeline);
    for i in 0..nodes.len() {
        let Some(r) = &inputs[i].receiver else {
            continue;
        };
        let up = r.sender_host.as_deref().map(|h| (h, r.sender_port));
        let upstream_idx = up.and_then(|(h, p)| {
            inputs.iter().position(|m| {
                let (mh, mp) = split_address(&m.address);
                mp.is_some() && mp == p && (mh == h || (loopback(&mh) && loopback(h)))
            })
        });
        nodes[i].upstream_on_current = match upstream_idx.and_then(|u| nodes[u].branch) {
            Some(b) => Some(branches[b].current),
            None => match (r.received_tli, current_tli, nodes[i].branch) {
                (_, None, _) => None,
                (Some(t), Some(c), _) => Some(t == c),
                (None, Some(_), Some(b)) => Some(branches[b].current),
                (None, Some(_), None) => None,
            },
        };
    }

    let split_brains = split_brains(inputs, &nodes, system);
    ForkTree {
        branches,
        nodes,
        split_brains,
    }
}

/// Pairs of nodes that both wrote past their divergence point: both accept writes now, or
/// both are on timelines created by promotions after the point where their histories fork.
fn split_brains(
    inputs: &[TreeInput],
    nodes: &[TreeNode],
    system: Option<SystemId>,
) -> Vec<SplitBrain> {
    let mut out = Vec::new();
    let facts: Vec<Option<(&NodeFacts, &TimelineHistory)>> = inputs
        .iter()
        .map(|n| {
            let f = n.facts.as_ref()?;
            if system.is_some_and(|s| s != f.system_identifier) {
                return None;
            }
            Some((f, f.history.as_ref()?))
        })
        .collect();
    for a in 0..inputs.len() {
        for b in a + 1..inputs.len() {
            let (Some((fa, ha)), Some((fb, hb))) = (facts[a], facts[b]) else {
                continue;
            };
            if fa.same_server_as(fb) || fa.system_identifier != fb.system_identifier {
                continue;
            }
            let both_writable = !fa.in_recovery && !fb.in_recovery;
            let ka = key_of(ha);
            let kb = key_of(hb);
            let related = is_prefix(&ka, &kb) || is_prefix(&kb, &ka);
            let from = divergence_point(ha, hb);
            let two_promotions = !related
                && start_of(ha) >= from
                && start_of(hb) >= from
                && fa.end_of_wal > from
                && fb.end_of_wal > from;
            if !both_writable && !two_promotions {
                continue;
            }
            let reason = if both_writable {
                format!(
                    "{} and {} both accept writes (neither is in recovery)",
                    nodes[a].address, nodes[b].address
                )
            } else {
                format!(
                    "{} (timeline {}) and {} (timeline {}) were both promoted from the WAL before {from}, and each wrote past it",
                    nodes[a].address, fa.timeline, nodes[b].address, fb.timeline
                )
            };
            let side = |n: &TreeNode, f: &NodeFacts| SplitSide {
                address: n.address.clone(),
                timeline: f.timeline,
                writable: !f.in_recovery,
                from,
                to: f.end_of_wal.max(from),
            };
            out.push(SplitBrain {
                reason,
                sides: vec![side(&nodes[a], fa), side(&nodes[b], fb)],
            });
        }
    }
    out
}

impl ForkTree {
    /// The tree as ASCII lines: each branch with its fork point, then its nodes.
    pub fn ascii(&self) -> Vec<String> {
        let mut out = Vec::new();
        let roots: Vec<usize> = self
            .branches
            .iter()
            .filter(|b| b.parent.is_none())
            .map(|b| b.id)
            .collect();
        for (i, r) in roots.iter().enumerate() {
            self.ascii_branch(*r, "", i + 1 == roots.len(), true, &mut out);
        }
        for n in self.nodes.iter().filter(|n| n.branch.is_none()) {
            out.push(format!(
                "? {}: not examined: {}",
                n.address,
                n.not_examined.as_deref().unwrap_or("unknown")
            ));
        }
        out
    }

    fn ascii_branch(&self, id: usize, prefix: &str, last: bool, root: bool, out: &mut Vec<String>) {
        let b = &self.branches[id];
        let (head, child_prefix) = if root {
            (String::new(), String::new())
        } else if last {
            (format!("{prefix}└─ "), format!("{prefix}   "))
        } else {
            (format!("{prefix}├─ "), format!("{prefix}│  "))
        };
        let mark = if b.current {
            " [current]"
        } else if b.on_current_path {
            " [ancestor of current]"
        } else {
            " [off the current timeline]"
        };
        let fork = b
            .fork_lsn
            .map_or_else(String::new, |l| format!(" forked at {l}"));
        out.push(format!("{head}{}{fork}{mark}", b.label));
        let children: Vec<usize> = self
            .branches
            .iter()
            .filter(|c| c.parent == Some(id))
            .map(|c| c.id)
            .collect();
        let nodes: Vec<&TreeNode> = self.nodes.iter().filter(|n| n.branch == Some(id)).collect();
        let inner = |i: usize, total: usize| {
            if i + 1 == total {
                "└─ "
            } else {
                "├─ "
            }
        };
        let total = nodes.len() + children.len();
        for (i, n) in nodes.iter().enumerate() {
            out.push(format!(
                "{child_prefix}{}● {}",
                inner(i, total),
                node_line(n)
            ));
        }
        for (j, c) in children.iter().enumerate() {
            let pos = nodes.len() + j;
            self.ascii_branch(*c, &child_prefix, pos + 1 == total, false, out);
        }
    }
}

/// One node's line in the tree.
pub fn node_line(n: &TreeNode) -> String {
    let mut s = format!(
        "{} {}{}, WAL to {}",
        n.address,
        n.role.as_deref().unwrap_or("?"),
        if n.is_current_primary {
            " (current primary)"
        } else {
            ""
        },
        crate::lsn::lsn_or_dash(n.end_of_wal),
    );
    if let Some(b) = n.past_fork_bytes {
        s.push_str(&format!(", {b} bytes past the fork"));
    }
    if let Some((from, to)) = n.unique_wal {
        s.push_str(&format!(
            "; holds {} bytes the current timeline lacks ({from}..{to})",
            to.saturating_bytes_since(from)
        ));
    }
    if let Some(u) = &n.upstream {
        s.push_str(&format!(
            "; follows {u} ({}){}",
            n.upstream_status.as_deref().unwrap_or("?"),
            if n.upstream_on_current == Some(false) {
                ", not on the current timeline"
            } else {
                ""
            }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(tli: u32, entries: &[(u32, u64)]) -> TimelineHistory {
        TimelineHistory {
            timeline: TimelineId(tli),
            entries: entries
                .iter()
                .map(|(p, s)| HistoryEntry {
                    parent: TimelineId(*p),
                    switchpoint: Lsn(*s),
                    reason: String::new(),
                })
                .collect(),
        }
    }

    fn node(addr: &str, tli: u32, entries: &[(u32, u64)], end: u64, writable: bool) -> TreeInput {
        TreeInput {
            address: addr.into(),
            facts: Some(NodeFacts {
                system_identifier: SystemId(7),
                in_recovery: !writable,
                timeline: TimelineId(tli),
                end_of_wal: Lsn(end),
                history: Some(hist(tli, entries)),
                port: addr.rsplit(':').next().and_then(|p| p.parse().ok()),
                postmaster_start_time: Some(addr.into()),
                ..NodeFacts::default()
            }),
            receiver: None,
            error: None,
        }
    }

    #[test]
    fn two_promotions_and_a_node_left_on_the_oldest_timeline() {
        let mut n4 = node("127.0.0.1:4", 1, &[], 0x900, false);
        n4.facts.as_mut().unwrap().in_recovery = true;
        n4.receiver = Some(WalReceiver {
            status: Some("streaming".into()),
            sender_host: Some("localhost".into()),
            sender_port: Some(1),
            received_tli: Some(TimelineId(1)),
            ..WalReceiver::default()
        });
        let inputs = vec![
            node("127.0.0.1:1", 1, &[], 0x1500, true),
            node("127.0.0.1:2", 2, &[(1, 0x1000)], 0x2400, false),
            // (made a standby below)
            node("127.0.0.1:3", 3, &[(1, 0x1000), (2, 0x2000)], 0x3000, true),
            n4,
            TreeInput {
                address: "127.0.0.1:9".into(),
                error: Some("connection refused".into()),
                ..TreeInput::default()
            },
        ];
        let mut inputs = inputs;
        inputs[1].facts.as_mut().unwrap().in_recovery = true;
        let t = build(&inputs, Some(2), Some(SystemId(7)));
        assert_eq!(t.branches.len(), 3);
        assert_eq!(t.branches[1].parent, Some(0));
        assert_eq!(t.branches[2].fork_lsn, Some(Lsn(0x2000)));
        assert!(t.branches[2].current && t.branches[0].on_current_path);
        assert_eq!(t.nodes[0].unique_wal, Some((Lsn(0x1000), Lsn(0x1500))));
        assert_eq!(t.nodes[1].unique_wal, Some((Lsn(0x2000), Lsn(0x2400))));
        assert_eq!(t.nodes[1].past_fork_bytes, Some(0x1400));
        assert_eq!(t.nodes[3].unique_wal, None);
        assert_eq!(t.nodes[3].upstream_on_current, Some(false));
        assert!(t.nodes[4]
            .not_examined
            .as_deref()
            .unwrap()
            .contains("refused"));
        // Nodes 1 and 3 both accept writes: a split brain; 2 and 3 are one line of promotions.
        assert_eq!(t.split_brains.len(), 1);
        assert!(t.split_brains[0].reason.contains("both accept writes"));
        assert_eq!(t.split_brains[0].sides[0].from, Lsn(0x1000));
        let art = t.ascii().join("\n");
        assert!(
            art.contains("timeline 3 forked at 0/2000 [current]"),
            "{art}"
        );
        assert!(art.contains("? 127.0.0.1:9"), "{art}");
    }

    #[test]
    fn two_promotions_of_one_timeline_are_a_split_brain_even_when_one_stopped() {
        let mut b = node("h:2", 2, &[(1, 0x1000)], 0x1800, false);
        b.facts.as_mut().unwrap().in_recovery = true;
        let inputs = vec![node("h:1", 2, &[(1, 0x1200)], 0x2000, false), b];
        let t = build(&inputs, Some(0), Some(SystemId(7)));
        assert_eq!(t.branches.len(), 3, "timeline 1 and two timelines 2");
        assert!(t.branches.iter().any(|b| b.label == "timeline 2 (b)"));
        assert_eq!(t.split_brains.len(), 1);
        let s = &t.split_brains[0];
        assert_eq!(s.sides[0].from, Lsn(0x1000));
        assert_eq!(s.sides[0].bytes(), 0x1000);
        assert_eq!(s.sides[1].bytes(), 0x800);
        // A lossy failover shape (old timeline vs a promotion) is no split brain by history.
        let mut old = node("h:3", 1, &[], 0x1500, false);
        old.facts.as_mut().unwrap().in_recovery = true;
        let inputs = vec![node("h:1", 2, &[(1, 0x1200)], 0x2000, false), old];
        let t = build(&inputs, Some(0), Some(SystemId(7)));
        assert!(t.split_brains.is_empty());
        assert_eq!(t.nodes[1].unique_wal, Some((Lsn(0x1200), Lsn(0x1500))));
    }
}
