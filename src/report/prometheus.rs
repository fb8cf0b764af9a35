//! Prometheus text exposition format (version 0.0.4) for node_exporter's textfile collector.
//!
//! Every family has one `# HELP` and one `# TYPE` line followed by its samples; every sample
//! carries `system_identifier` and `command` (`compare` or `cluster`), so a `compare` job and a
//! `cluster` job may write files into the same collector directory without colliding. Families
//! shared by both commands have identical help texts (node_exporter rejects conflicting ones).
//! No sample has a timestamp: the textfile collector refuses them. A value that is not known
//! (the WAL was not decoded, no row diff ran) is left out rather than written as 0.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::cluster::{ClusterReport, ClusterVerdict, NodeStatus};
use super::Report;
use crate::divergence::Verdict;

/// Every verdict of `compare`, one `failover_verify_verdict` series each.
const VERDICTS: [Verdict; 5] = [
    Verdict::NoLoss,
    Verdict::Loss,
    Verdict::Rewound,
    Verdict::Unrelated,
    Verdict::Inconclusive,
];

/// (name, help) of every family this module writes.
const LOST_WAL: (&str, &str) = (
    "failover_verify_lost_wal_bytes",
    "Bytes of WAL a former primary (or diverged node) wrote after the switchpoint that the primary never received.",
);
const LOST_TX: (&str, &str) = (
    "failover_verify_lost_transactions",
    "Committed transactions found in the lost WAL (present only when the WAL was decoded).",
);
const LOST_ROWS: (&str, &str) = (
    "failover_verify_lost_rows",
    "Rows lost: inserted, updated or deleted by lost transactions and not changed since on the new primary (row comparison: lost_insert + lost_update + lost_delete, conflicts not included; present only when it ran).",
);
const LOST_ROW_CHANGES: (&str, &str) = (
    "failover_verify_lost_row_changes",
    "Rows the lost transactions inserted, updated or deleted in user tables, from the decoded WAL (the headline number: system catalog rows and TOAST chunks not included; present only when the WAL was decoded).",
);
const VERDICT: (&str, &str) = (
    "failover_verify_verdict",
    "1 for the verdict of the last run, 0 for the others (compare: no_loss, loss, rewound, unrelated, inconclusive; cluster: healthy, diverged, inconclusive).",
);
const TIMELINE: (&str, &str) = (
    "failover_verify_timeline",
    "The (new) primary's current timeline.",
);
const LAST_RUN: (&str, &str) = (
    "failover_verify_last_run_timestamp_seconds",
    "When the last run started, in seconds since the Unix epoch.",
);
const DURATION: (&str, &str) = (
    "failover_verify_duration_seconds",
    "How long the last run took, in seconds.",
);
const DIVERGED: (&str, &str) = (
    "failover_verify_diverged_nodes",
    "Nodes inspected with --node that left the primary's timeline history with WAL of their own.",
);
const STANDBYS: (&str, &str) = (
    "failover_verify_standbys",
    "Standbys listed in the primary's pg_stat_replication.",
);
const STANDBY_LAG: (&str, &str) = (
    "failover_verify_standby_lag_bytes",
    "The primary's current WAL position minus the standby's replay position, in bytes.",
);
const SLOT_ACTIVE: (&str, &str) = (
    "failover_verify_slot_active",
    "1 when a consumer is connected to the replication slot, 0 otherwise.",
);
const SLOT_RETAINED: (&str, &str) = (
    "failover_verify_slot_retained_bytes",
    "The primary's current WAL position minus the slot's restart_lsn, in bytes.",
);

/// One sample: extra labels (after the common ones) and a value already formatted.
type Sample = (Vec<(&'static str, String)>, String);

/// Builds the exposition text family by family.
struct Exposition {
    text: String,
    common: Vec<(&'static str, String)>,
}

impl Exposition {
    fn new(system_identifier: String, command: &str) -> Self {
        Exposition {
            text: String::new(),
            common: vec![
                ("system_identifier", system_identifier),
                ("command", command.to_string()),
            ],
        }
    }

    /// Writes a gauge family; a family without samples is left out entirely.
    fn gauge(&mut self, (name, help): (&str, &str), samples: Vec<Sample>) {
        if samples.is_empty() {
            return;
        }
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} gauge");
        for (labels, value) in samples {
            let all: Vec<String> = self
                .common
                .iter()
                .chain(labels.iter())
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let _ = writeln!(self.text, "{name}{{{}}} {value}", all.join(","));
        }
    }

    /// One sample without extra labels.
    fn one(&mut self, family: (&str, &str), value: String) {
        self.gauge(family, vec![(Vec::new(), value)]);
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape_label(s: &str) -> String {
    s.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// Escapes a help text: backslash and newline.
fn escape_help(s: &str) -> String {
    s.replace('\\', r"\\").replace('\n', r"\n")
}

/// Seconds since the epoch of an RFC 3339 time, or of now when it does not parse.
fn epoch_seconds(rfc3339: &str) -> String {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    format!("{:.3}", t.unix_timestamp_nanos() as f64 / 1e9)
}

/// Milliseconds as seconds.
fn seconds(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

fn flag(b: bool) -> String {
    if b { "1" } else { "0" }.to_string()
}

/// Rows that differ because of lost transactions, from the row comparison. `Report` has no
/// row-comparison section yet (it is being added as `tables`); until it is merged this is
/// unknown, and unknown values are left out of the exposition rather than written as 0.
fn lost_rows(report: &Report) -> Option<u64> {
    report
        .tables
        .as_ref()
        .map(|t| t.totals.lost_insert + t.totals.lost_update + t.totals.lost_delete)
}

/// Writes a `compare` (or `wal`, `demo`) report as metrics.
pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let facts = report.new_primary.facts.as_ref();
    let sysid = facts.map_or_else(String::new, |f| f.system_identifier.to_string());
    let mut e = Exposition::new(sysid, "compare");
    if let Some(d) = &report.divergence {
        e.one(LOST_WAL, d.lost_wal_bytes.to_string());
    }
    if let Some(t) = &report.transactions {
        e.one(LOST_TX, t.lost_commits.to_string());
        e.one(LOST_ROW_CHANGES, t.row_changes.to_string());
    }
    if let Some(n) = lost_rows(report) {
        e.one(LOST_ROWS, n.to_string());
    }
    e.gauge(
        VERDICT,
        VERDICTS
            .iter()
            .map(|v| {
                (
                    vec![("verdict", v.as_str().to_string())],
                    flag(*v == report.verdict),
                )
            })
            .collect(),
    );
    if let Some(f) = facts {
        e.one(TIMELINE, f.timeline.0.to_string());
    }
    e.one(LAST_RUN, epoch_seconds(&report.generated_at));
    e.one(DURATION, seconds(report.duration_ms));
    out.write_all(e.text.as_bytes())
}

/// Writes a `cluster` report as metrics.
pub fn render_cluster(report: &ClusterReport, out: &mut dyn Write) -> io::Result<()> {
    let sysid = report
        .system_identifier()
        .map_or_else(String::new, |s| s.to_string());
    let mut e = Exposition::new(sysid, "cluster");
    e.gauge(
        LOST_WAL,
        report
            .nodes
            .iter()
            .filter(|n| matches!(n.status, NodeStatus::OnHistory | NodeStatus::Diverged))
            .map(|n| {
                (
                    vec![("node", n.address.clone())],
                    n.lost_wal_bytes().to_string(),
                )
            })
            .collect(),
    );
    e.gauge(
        VERDICT,
        ClusterVerdict::ALL
            .iter()
            .map(|v| {
                (
                    vec![("verdict", v.as_str().to_string())],
                    flag(*v == report.verdict),
                )
            })
            .collect(),
    );
    if let Some(t) = report.timeline() {
        e.one(TIMELINE, t.0.to_string());
    }
    e.one(LAST_RUN, epoch_seconds(&report.generated_at));
    e.one(DURATION, seconds(report.duration_ms));
    e.one(DIVERGED, report.diverged_nodes().to_string());
    e.one(STANDBYS, report.standbys.len().to_string());
    e.gauge(
        STANDBY_LAG,
        report
            .standbys
            .iter()
            .filter_map(|s| {
                s.lag_bytes.map(|lag| {
                    (
                        vec![
                            ("application_name", s.application_name.clone()),
                            ("client_addr", s.client_addr.clone().unwrap_or_default()),
                            (
                                "client_port",
                                s.client_port.map_or_else(String::new, |p| p.to_string()),
                            ),
                        ],
                        lag.to_string(),
                    )
                })
            })
            .collect(),
    );
    let slot_labels = |s: &super::cluster::SlotRow| {
        vec![
            ("slot", s.slot_name.clone()),
            ("slot_type", s.slot_type.clone()),
        ]
    };
    e.gauge(
        SLOT_ACTIVE,
        report
            .slots
            .iter()
            .map(|s| (slot_labels(s), flag(s.active)))
            .collect(),
    );
    e.gauge(
        SLOT_RETAINED,
        report
            .slots
            .iter()
            .filter_map(|s| s.lag_bytes.map(|b| (slot_labels(s), b.to_string())))
            .collect(),
    );
    out.write_all(e.text.as_bytes())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use super::*;
    use crate::divergence::Divergence;
    use crate::evidence::Transactions;
    use crate::lsn::{Lsn, SystemId, TimelineId};
    use crate::node::NodeFacts;
    use crate::report::cluster::{NodeCheck, SlotRow, StandbyRow, CLUSTER_SCHEMA_VERSION};
    use crate::report::{NodeSection, SCHEMA_VERSION};

    /// One parsed sample: name, labels, value.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) struct Parsed {
        pub name: String,
        pub labels: BTreeMap<String, String>,
        pub value: f64,
    }

    fn is_name(s: &str, first_extra: &str) -> bool {
        let mut chars = s.chars();
        match chars.next() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' || first_extra.contains(c) => {}
            _ => return false,
        }
        chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || first_extra.contains(c))
    }

    /// Parses a label set `{a="x",b="y"}` (the text between the braces), undoing escapes.
    fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        let mut rest = s;
        while !rest.is_empty() {
            let eq = rest.find('=').ok_or(format!("no '=' in {rest:?}"))?;
            let key = &rest[..eq];
            if !is_name(key, "") || key.starts_with("__") {
                return Err(format!("bad label name {key:?}"));
            }
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or(format!("label {key} value not quoted"))?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some((i, '"')) => break i,
                    Some((_, '\n')) => return Err("raw newline in label value".into()),
                    Some((_, c)) => value.push(c),
                    None => return Err(format!("unterminated value of {key}")),
                }
            };
            if out.insert(key.to_string(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
            rest = &rest[end + 1..];
            rest = match rest.strip_prefix(',') {
                Some(r) => r,
                None if rest.is_empty() => rest,
                None => return Err(format!("garbage after label {key}: {rest:?}")),
            };
        }
        Ok(out)
    }

    /// Parses text exposition format strictly: HELP and TYPE once per family, before its
    /// samples; families contiguous; no duplicate series; no timestamps; float values;
    /// a trailing newline.
    pub(crate) fn parse_exposition(text: &str) -> Result<Vec<Parsed>, String> {
        if !text.is_empty() && !text.ends_with('\n') {
            return Err("no trailing newline".into());
        }
        let mut samples = Vec::new();
        let mut helped = HashSet::new();
        let mut typed = HashSet::new();
        let mut finished: HashSet<String> = HashSet::new();
        let mut current: Option<String> = None;
        let mut series = HashSet::new();
        let mut enter = |name: &str, current: &mut Option<String>| -> Result<(), String> {
            if current.as_deref() != Some(name) {
                if let Some(prev) = current.take() {
                    finished.insert(prev);
                }
                if finished.contains(name) {
                    return Err(format!("family {name} is not contiguous"));
                }
                *current = Some(name.to_string());
            }
            Ok(())
        };
        for (no, line) in text.lines().enumerate() {
            let err = |m: String| format!("line {}: {m}: {line:?}", no + 1);
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').ok_or_else(|| err("no help".into()))?;
                if !is_name(name, ":") || help.is_empty() {
                    return Err(err("bad HELP".into()));
                }
                enter(name, &mut current).map_err(err)?;
                if !helped.insert(name.to_string()) || !samples_of(&samples, name).is_empty() {
                    return Err(err("HELP repeated or after samples".into()));
                }
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or_else(|| err("no type".into()))?;
                if !is_name(name, ":")
                    || !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind)
                {
                    return Err(err("bad TYPE".into()));
                }
                enter(name, &mut current).map_err(err)?;
                if !typed.insert(name.to_string()) || !samples_of(&samples, name).is_empty() {
                    return Err(err("TYPE repeated or after samples".into()));
                }
            } else if line.starts_with('#') || line.trim().is_empty() {
                continue;
            } else {
                let (series_part, value) = match line.find('{') {
                    Some(_) => {
                        let close = line.rfind('}').ok_or_else(|| err("no '}'".into()))?;
                        (
                            &line[..close + 1],
                            line[close + 1..].trim_start_matches(' '),
                        )
                    }
                    None => line.split_once(' ').ok_or_else(|| err("no value".into()))?,
                };
                let (name, labels) = match series_part.split_once('{') {
                    Some((n, l)) => (n, parse_labels(&l[..l.len() - 1]).map_err(err)?),
                    None => (series_part, BTreeMap::new()),
                };
                if !is_name(name, ":") {
                    return Err(err("bad metric name".into()));
                }
                if value.contains(' ') {
                    return Err(err("a timestamp (refused by the textfile collector)".into()));
                }
                let value: f64 = value.parse().map_err(|_| err("value not a float".into()))?;
                enter(name, &mut current).map_err(err)?;
                if !typed.contains(name) {
                    return Err(err("sample before its TYPE".into()));
                }
                if !series.insert(format!("{name}{labels:?}")) {
                    return Err(err("duplicate series".into()));
                }
                samples.push(Parsed {
                    name: name.to_string(),
                    labels,
                    value,
                });
            }
        }
        Ok(samples)
    }

    fn samples_of<'a>(samples: &'a [Parsed], name: &str) -> Vec<&'a Parsed> {
        samples.iter().filter(|s| s.name == name).collect()
    }

    fn value(samples: &[Parsed], name: &str, label: Option<(&str, &str)>) -> Option<f64> {
        let found: Vec<_> = samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k).map(String::as_str) == Some(v)))
            .collect();
        assert!(found.len() <= 1, "{name} {label:?}: {found:?}");
        found.first().map(|s| s.value)
    }

    fn facts(tli: u32) -> NodeFacts {
        NodeFacts {
            system_identifier: SystemId(7312345678901234567),
            timeline: TimelineId(tli),
            ..NodeFacts::default()
        }
    }

    fn compare_report() -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            tool: "failover-verify test".into(),
            generated_at: "2026-01-02T03:04:05Z".into(),
            duration_ms: 1500,
            verdict: Verdict::Loss,
            explanation: "lost".into(),
            incomplete: false,
            new_primary: NodeSection {
                target: "host=a".into(),
                facts: Some(facts(2)),
                error: None,
                host_choice: None,
            },
            former_primary: NodeSection::default(),
            checks: Vec::new(),
            tables: None,
            patroni: None,
            discovery: None,
            downstream: None,
            divergence: Some(Divergence {
                former_timeline: TimelineId(1),
                new_timeline: TimelineId(2),
                switchpoint_lsn: Some(Lsn(0x3000060)),
                former_end_lsn: Lsn(0x3000460),
                lost_wal_bytes: 1024,
                timeline_path: vec![TimelineId(1), TimelineId(2)],
            }),
            transactions: Some(Transactions {
                lost_commits: 7,
                row_changes: 12,
                ..Transactions::default()
            }),
            findings: Vec::new(),
        }
    }

    #[test]
    fn compare_metrics_parse_back_with_the_right_numbers() {
        let mut out = Vec::new();
        render(&compare_report(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let s = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            value(&s, "failover_verify_lost_wal_bytes", None),
            Some(1024.0)
        );
        assert_eq!(
            value(&s, "failover_verify_lost_transactions", None),
            Some(7.0)
        );
        assert_eq!(
            value(&s, "failover_verify_lost_row_changes", None),
            Some(12.0)
        );
        assert_eq!(value(&s, "failover_verify_lost_rows", None), None);
        assert_eq!(value(&s, "failover_verify_timeline", None), Some(2.0));
        assert_eq!(
            value(&s, "failover_verify_duration_seconds", None),
            Some(1.5)
        );
        assert_eq!(
            value(&s, "failover_verify_last_run_timestamp_seconds", None),
            Some(1767323045.0)
        );
        // One verdict series per verdict, exactly one of them 1.
        let verdicts = samples_of(&s, "failover_verify_verdict");
        assert_eq!(verdicts.len(), 5);
        assert_eq!(verdicts.iter().filter(|v| v.value == 1.0).count(), 1);
        assert_eq!(
            value(&s, "failover_verify_verdict", Some(("verdict", "loss"))),
            Some(1.0)
        );
        assert_eq!(
            value(&s, "failover_verify_verdict", Some(("verdict", "no_loss"))),
            Some(0.0)
        );
        for x in &s {
            assert_eq!(x.labels["system_identifier"], "7312345678901234567");
            assert_eq!(x.labels["command"], "compare");
        }
    }

    #[test]
    fn unknown_values_are_left_out() {
        let mut r = compare_report();
        r.verdict = Verdict::Inconclusive;
        r.divergence = None;
        r.transactions = None;
        let mut out = Vec::new();
        render(&r, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let s = parse_exposition(&text).unwrap();
        assert!(!text.contains("failover_verify_lost_wal_bytes"), "{text}");
        assert!(
            !text.contains("failover_verify_lost_transactions"),
            "{text}"
        );
        assert_eq!(
            value(
                &s,
                "failover_verify_verdict",
                Some(("verdict", "inconclusive"))
            ),
            Some(1.0)
        );
    }

    #[test]
    fn cluster_metrics_parse_back_and_escape_labels() {
        let mut node_facts = facts(1);
        node_facts.end_of_wal = Lsn(0x3000460);
        let r = ClusterReport {
            schema_version: CLUSTER_SCHEMA_VERSION,
            kind: "cluster".into(),
            tool: "t".into(),
            generated_at: "2026-01-02T03:04:05.250Z".into(),
            duration_ms: 20,
            verdict: ClusterVerdict::Diverged,
            explanation: "x".into(),
            primary: NodeSection {
                target: "host=a".into(),
                facts: Some(facts(2)),
                error: None,
                host_choice: None,
            },
            current_lsn: Some(Lsn(0x5000000)),
            standbys: vec![StandbyRow {
                application_name: "we\"ird\\name\nx".into(),
                client_addr: Some("10.0.0.2".into()),
                client_port: Some(40000),
                lag_bytes: Some(0),
                ..StandbyRow::default()
            }],
            slots: vec![SlotRow {
                slot_name: "gone".into(),
                slot_type: "physical".into(),
                active: false,
                restart_lsn: Some(Lsn(0x4000000)),
                wal_status: Some("reserved".into()),
                lag_bytes: Some(0x1000000),
            }],
            nodes: vec![NodeCheck {
                node: NodeSection {
                    target: "host=b".into(),
                    facts: Some(node_facts),
                    error: None,
                    host_choice: None,
                },
                address: "10.0.0.1:5432".into(),
                status: NodeStatus::Diverged,
                verdict: Some(Verdict::Loss),
                explanation: "d".into(),
                divergence: Some(Divergence {
                    former_timeline: TimelineId(1),
                    new_timeline: TimelineId(2),
                    switchpoint_lsn: Some(Lsn(0x3000060)),
                    former_end_lsn: Lsn(0x3000460),
                    lost_wal_bytes: 1024,
                    timeline_path: vec![TimelineId(1), TimelineId(2)],
                }),
            }],
            findings: Vec::new(),
            tree: None,
        };
        let mut out = Vec::new();
        render_cluster(&r, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let s = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            value(
                &s,
                "failover_verify_lost_wal_bytes",
                Some(("node", "10.0.0.1:5432"))
            ),
            Some(1024.0)
        );
        assert_eq!(value(&s, "failover_verify_diverged_nodes", None), Some(1.0));
        assert_eq!(
            value(&s, "failover_verify_verdict", Some(("verdict", "diverged"))),
            Some(1.0)
        );
        assert_eq!(samples_of(&s, "failover_verify_verdict").len(), 3);
        assert_eq!(value(&s, "failover_verify_slot_active", None), Some(0.0));
        assert_eq!(
            value(&s, "failover_verify_slot_retained_bytes", None),
            Some(16777216.0)
        );
        let lag = samples_of(&s, "failover_verify_standby_lag_bytes");
        assert_eq!(lag.len(), 1);
        assert_eq!(lag[0].labels["application_name"], "we\"ird\\name\nx");
        assert_eq!(lag[0].value, 0.0);
        assert_eq!(
            value(&s, "failover_verify_last_run_timestamp_seconds", None),
            Some(1767323045.25)
        );
        for x in &s {
            assert_eq!(x.labels["command"], "cluster");
        }
    }

    #[test]
    fn the_parser_rejects_what_the_collector_rejects() {
        for bad in [
            "x 1\n",                                           // no TYPE
            "# TYPE x gauge\nx 1 1700000000\n",                // timestamp
            "# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n",    // duplicate series
            "# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\nx 2\n", // not contiguous
            "# TYPE x gauge\nx{a=1} 1\n",                      // unquoted label
            "# TYPE x gauge\nx one\n",                         // not a number
            "# TYPE x gauge\nx 1",                             // no trailing newline
            "# TYPE x gauge\nx 1\n# HELP x late\n",            // HELP after samples
        ] {
            assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
        }
        assert!(parse_exposition("# HELP x h\n# TYPE x gauge\nx{a=\"\\\"\"} 1.5\n").is_ok());
    }
}
