//! `failover-verify compare --from-evidence DIR`: the WAL accounting redone from an evidence
//! bundle alone, and with `--new-primary` the checks that need only the new primary.

use std::path::PathBuf;
use std::time::Instant;

use crate::bundle::OpenedBundle;
use crate::checks::Catalog;
use crate::cli::CompareArgs;
use crate::divergence::{Analysis, Divergence, Verdict};
use crate::evidence::{self, scan, SequenceLoss};
use crate::finding::{Finding, FindingId};
use crate::pg::conninfo::ConnParams;
use crate::pg::session::SessionOptions;
use crate::report::{NodeSection, Report, SCHEMA_VERSION};

use super::compare::{settle_with_wal, transaction_findings};
use super::{CommandError, Outcome};
use crate::report::{now_rfc3339, tool_id};

/// The parsed inputs of a re-analysis.
#[derive(Debug, Clone)]
pub struct FromEvidenceInput {
    /// The bundle's directory.
    pub dir: PathBuf,
    /// The live new primary to check against the bundle, if given.
    pub new_primary: Option<ConnParams>,
    /// Timeouts for its sessions.
    pub session: SessionOptions,
    /// The checks to run on the new primary (`None`: `--no-checks`).
    pub checks: Option<Catalog>,
}

impl FromEvidenceInput {
    /// One-line notices about the connection string, for the command layer to print.
    pub fn notices(&self) -> Vec<String> {
        self.new_primary
            .iter()
            .flat_map(|p| p.warnings().iter().map(|w| format!("--new-primary: {w}")))
            .collect()
    }

    /// Parses the flags of `compare --from-evidence`.
    pub fn from_args(args: &CompareArgs) -> Result<Self, CommandError> {
        let dir = args.from_evidence.clone().ok_or(CommandError::Usage {
            flag: "--from-evidence",
            message: "name the bundle's directory".into(),
        })?;
        let new_primary = args
            .new_primary
            .as_deref()
            .map(|s| {
                ConnParams::parse_with_process_env(s).map_err(|e| CommandError::Usage {
                    flag: "--new-primary",
                    message: e.to_string(),
                })
            })
            .transpose()?;
        Ok(FromEvidenceInput {
            dir,
            new_primary,
            session: args.timeouts.session_options(),
            checks: if args.no_checks {
                None
            } else {
                Some(Catalog::load(args.checks_dir.as_deref())?)
            },
        })
    }
}

/// Checks the bundle, decodes its WAL again, and builds the report.
pub async fn run(input: &FromEvidenceInput) -> Result<Outcome, CommandError> {
    let started = Instant::now();
    let generated_at = now_rfc3339();
    let dir = input.dir.clone();
    let bundle = tokio::task::spawn_blocking(move || OpenedBundle::open(&dir)).await??;
    let wal = bundle.wal()?.clone();
    let names = bundle.names()?;
    let Some(divergence) = bundle.meta.divergence.clone() else {
        return Err(CommandError::Bundle(crate::bundle::BundleError::Meta {
            file: bundle
                .root
                .join(crate::bundle::META_FILE)
                .display()
                .to_string(),
            problem: "it places no divergence, so the lost range is unknown".into(),
        }));
    };

    // The WAL accounting, from the bundled segments only.
    let wal_dir = bundle.wal_dir();
    let (tli, start, end, sp) = (
        wal.timeline,
        wal.scan_start,
        wal.requested_end,
        wal.switchpoint,
    );
    let scanned = tokio::task::spawn_blocking(move || {
        scan::scan_dir(
            &wal_dir,
            tli,
            start,
            end,
            sp,
            &scan::ScanOptions::bounded(None),
        )
    })
    .await?
    .map_err(CommandError::Wal)?;
    let label = format!(
        "evidence bundle {} ({} segment(s) of timeline {}, first read as: {})",
        bundle.root.display(),
        wal.segments.len(),
        wal.timeline,
        wal.source
    );
    let databases = bundle.meta.databases.clone();
    let ev = evidence::account(scanned, &label, names, databases, Vec::new());
    let mut analysis = Analysis {
        verdict: Verdict::Inconclusive,
        explanation: String::new(),
        divergence: Some(divergence.clone()),
    };
    settle_with_wal(&mut analysis, &ev, bundle.meta.end_from_wal);
    let mut findings = transaction_findings(&ev, "--export-dir DIR on a live run");
    findings.push(Finding {
        severity: FindingId::FromEvidence.severity(),
        id: FindingId::FromEvidence,
        message: format!(
            "re-analysed from the evidence bundle {} (completed {} by `{}`): its {} file(s) match SHA256SUMS; no server or archive was read for the WAL",
            bundle.root.display(),
            bundle.meta.created_at,
            bundle.meta.command,
            bundle.files_checked
        ),
        hint: Some("the row diff and the checks that need the former primary are not re-run; the bundle's report.json holds the live run's".into()),
    });

    // With the live new primary: is it still the cluster and the fork the bundle describes?
    let mut checks = Vec::new();
    let new_section = match &input.new_primary {
        Some(params) => {
            let mut new = super::read_node(params, &input.session, None).await; // a few reads: not paced
            findings.append(&mut new.findings);
            let Some(facts) = new.facts.take() else {
                return Err(CommandError::NewPrimary(new.take_error()));
            };
            if let Some(bundled) = &bundle.new_primary.facts {
                if bundled.system_identifier != facts.system_identifier {
                    return Err(CommandError::NotTheBundlesCluster {
                        target: params.target(),
                        found: facts.system_identifier,
                        expected: bundled.system_identifier,
                    });
                }
            }
            findings.push(divergence_finding(&divergence, &facts, &params.target()));
            if let Some(t) = &analysis_transactions(&ev) {
                findings.extend(sequence_findings(params, &input.session, t).await);
            }
            if let Some(catalog) = &input.checks {
                checks = crate::checks::run_checks(catalog, new.session.as_ref(), None).await;
            }
            if let Some(s) = new.session {
                s.close().await;
            }
            new.section
        }
        None => bundled_section(&bundle.new_primary),
    };
    findings.sort_by_key(|f| f.severity);
    let incomplete = analysis.verdict == Verdict::Inconclusive
        || checks.iter().any(|c| {
            matches!(
                c.status,
                crate::checks::CheckStatus::Error | crate::checks::CheckStatus::Skipped
            )
        });
    Ok(Outcome {
        report: Report {
            schema_version: SCHEMA_VERSION,
            tool: tool_id(),
            generated_at,
            duration_ms: started.elapsed().as_millis() as u64,
            verdict: analysis.verdict,
            explanation: analysis.explanation,
            incomplete,
            new_primary: new_section,
            former_primary: bundled_section(&bundle.former_primary),
            divergence: analysis.divergence,
            transactions: Some(ev.transactions),
            findings,
            checks,
            tables: None,
            patroni: None,
            discovery: None,
            downstream: None,
        },
        epilogue: None,
    })
}

fn analysis_transactions(ev: &evidence::Evidence) -> Option<&[SequenceLoss]> {
    (!ev.transactions.sequences.is_empty()).then_some(ev.transactions.sequences.as_slice())
}

/// A node section read back from the bundle, marked as such.
fn bundled_section(s: &NodeSection) -> NodeSection {
    NodeSection {
        target: format!("{} (as recorded in the evidence bundle)", s.target),
        ..s.clone()
    }
}

/// Whether the live new primary's history still shows the bundle's fork.
fn divergence_finding(d: &Divergence, facts: &crate::node::NodeFacts, target: &str) -> Finding {
    let Some(sp) = d.switchpoint_lsn else {
        return Finding {
            severity: FindingId::EvidenceDivergenceMismatch.severity(),
            id: FindingId::EvidenceDivergenceMismatch,
            message: "the bundle records no switchpoint to check the new primary against".into(),
            hint: None,
        };
    };
    let ends = facts
        .history
        .as_ref()
        .and_then(|h| h.end_of(d.former_timeline));
    match (&facts.history, ends) {
        (Some(_), Some(end)) if end == sp => Finding {
            severity: FindingId::EvidenceDivergenceConfirmed.severity(),
            id: FindingId::EvidenceDivergenceConfirmed,
            message: format!(
                "{target} (timeline {}) still forks from timeline {} at {sp}, as the bundle records",
                facts.timeline, d.former_timeline
            ),
            hint: None,
        },
        (Some(_), other) => Finding {
            severity: FindingId::EvidenceDivergenceMismatch.severity(),
            id: FindingId::EvidenceDivergenceMismatch,
            message: format!(
                "{target} (timeline {}) does not fork from timeline {} at {sp} as the bundle records: its history {}",
                facts.timeline,
                d.former_timeline,
                match other {
                    Some(e) => format!("ends that timeline at {e}"),
                    None => "does not contain that timeline".into(),
                }
            ),
            hint: Some("check that the bundle belongs to this failover; the lost commits it counts may not apply to this new primary".into()),
        },
        (None, _) => Finding {
            severity: FindingId::EvidenceDivergenceMismatch.severity(),
            id: FindingId::EvidenceDivergenceMismatch,
            message: format!(
                "{target}: its timeline history could not be read, so the bundle's fork could not be checked against it"
            ),
            hint: Some("grant the role REPLICATION or EXECUTE on pg_read_file, then re-run".into()),
        },
    }
}

/// Lost sequence values the new primary has not caught up with: new `nextval`s may hand out
/// numbers that lost rows already used.
async fn sequence_findings(
    params: &ConnParams,
    opts: &SessionOptions,
    sequences: &[SequenceLoss],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in sequences {
        let (Some(db), Some(name), Some(logged)) = (&s.database, &s.sequence, s.last_logged_value)
        else {
            continue;
        };
        let session = match crate::pg::connect(&params.with_dbname(db), opts).await {
            Ok(s) => s,
            Err(e) => {
                out.push(Finding {
                    severity: FindingId::SequenceUnchecked.severity(),
                    id: FindingId::SequenceUnchecked,
                    message: format!(
                        "sequence {name} in {db}: not checked on the new primary: {e}"
                    ),
                    hint: None,
                });
                continue;
            }
        };
        let sql =
            "SELECT last_value FROM pg_sequences WHERE schemaname || '.' || sequencename = $1";
        let row = session.query_opt(sql, &[name]).await;
        session.close().await;
        let current: Option<i64> = match row {
            Ok(Some(r)) => r.get(0),
            Ok(None) => None,
            Err(e) => {
                out.push(Finding {
                    severity: FindingId::SequenceUnchecked.severity(),
                    id: FindingId::SequenceUnchecked,
                    message: format!(
                        "sequence {name} in {db}: not checked on the new primary: {e}"
                    ),
                    hint: None,
                });
                continue;
            }
        };
        if current.is_none_or(|c| c < logged) {
            out.push(Finding {
                severity: FindingId::SequenceBehindLost.severity(),
                id: FindingId::SequenceBehindLost,
                message: format!(
                    "sequence {name} in {db} is at {} on the new primary, but the lost WAL logged it up to {logged}: new values can collide with lost rows",
                    current.map_or_else(|| "no value yet".into(), |c| c.to_string())
                ),
                hint: Some(format!("on the new primary: SELECT setval('{name}', {logged}); before re-applying lost rows")),
            });
        }
    }
    out
}
