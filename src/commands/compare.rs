//! `failover-verify compare`: read both nodes, place their timelines, and report the loss.

use std::time::Instant;

use crate::cli::CompareArgs;
use crate::divergence::{analyze, Verdict};
use crate::node::{read_facts, NodeFacts};
use crate::pg::conninfo::ConnParams;
use crate::pg::session::{connect, SessionOptions};
use crate::report::{Finding, NodeSection, Report, Severity, SCHEMA_VERSION};

use super::{now_rfc3339, tool_id, CommandError, Outcome};

/// The parsed inputs of a comparison.
#[derive(Debug, Clone)]
pub struct CompareInput {
    /// The promoted node.
    pub new_primary: ConnParams,
    /// The node that was primary before the failover.
    pub former_primary: ConnParams,
    /// Timeouts for every session.
    pub session: SessionOptions,
}

impl CompareInput {
    /// Parses the flags (conninfo strings with the process environment, timeouts).
    pub fn from_args(args: &CompareArgs) -> Result<Self, CommandError> {
        let parse = |flag: &'static str, s: &str| {
            ConnParams::parse_with_process_env(s).map_err(|e| CommandError::Usage {
                flag,
                message: e.to_string(),
            })
        };
        let (connect_timeout, statement_timeout, lock_timeout) = args.timeouts.durations();
        Ok(CompareInput {
            new_primary: parse("--new-primary", &args.new_primary)?,
            former_primary: parse("--former-primary", &args.former_primary)?,
            session: SessionOptions {
                connect_timeout,
                statement_timeout,
                lock_timeout,
                ..SessionOptions::default()
            },
        })
    }
}

/// Reads one node: connect read-only, then its facts. Errors become one line of text.
async fn read_node(
    params: &ConnParams,
    opts: &SessionOptions,
) -> (NodeSection, Option<NodeFacts>, Vec<Finding>) {
    let mut section = NodeSection {
        target: params.redacted(),
        ..NodeSection::default()
    };
    let session = match connect(params, opts).await {
        Ok(s) => s,
        Err(e) => {
            section.error = Some(e.to_string());
            return (section, None, Vec::new());
        }
    };
    match read_facts(&session, params, opts).await {
        Ok((facts, findings)) => {
            section.facts = Some(facts.clone());
            (section, Some(facts), findings)
        }
        Err(e) => {
            section.error = Some(e.to_string());
            (section, None, Vec::new())
        }
    }
}

/// Runs the comparison and builds the report.
pub async fn run(input: &CompareInput) -> Result<Outcome, CommandError> {
    let started = Instant::now();
    let generated_at = now_rfc3339();
    let ((new_section, new_facts, mut findings), (former_section, former_facts, former_findings)) = tokio::join!(
        read_node(&input.new_primary, &input.session),
        read_node(&input.former_primary, &input.session),
    );
    findings.extend(former_findings);
    let Some(new_facts) = new_facts else {
        return Err(CommandError::NewPrimary(
            new_section.error.unwrap_or_else(|| "unreadable".into()),
        ));
    };

    let (verdict, explanation, divergence) = match &former_facts {
        Some(former) => {
            let a = analyze(&new_facts, former);
            (a.verdict, a.explanation, a.divergence)
        }
        None => {
            let why = former_section.error.clone().unwrap_or_default();
            findings.push(Finding {
                severity: Severity::Warning,
                id: "former_unreachable".into(),
                message: format!("former primary: {why}"),
                hint: Some("start the former primary isolated (as a standby with no upstream) so it can be inspected, or pass the right conninfo".into()),
            });
            (
                Verdict::Inconclusive,
                format!("The former primary could not be read ({why}), so whether it wrote WAL past the switchpoint is unknown."),
                None,
            )
        }
    };
    if verdict == Verdict::Loss {
        findings.insert(
            0,
            Finding {
                severity: Severity::Critical,
                id: "keep_evidence".into(),
                message: "The former primary holds the only copy of the lost WAL.".into(),
                hint: Some("do not pg_rewind, reinitialise or let Patroni rejoin it until the lost transactions are accounted for".into()),
            },
        );
    }
    findings.sort_by_key(|f| f.severity);
    let incomplete = verdict == Verdict::Inconclusive;
    Ok(Outcome {
        report: Report {
            schema_version: SCHEMA_VERSION,
            tool: tool_id(),
            generated_at,
            duration_ms: started.elapsed().as_millis() as u64,
            verdict,
            explanation,
            incomplete,
            new_primary: new_section,
            former_primary: former_section,
            divergence,
            findings,
        },
        epilogue: None,
    })
}
