//! `failover-verify wal`: account a directory of WAL with no connection at all, for a former
//! primary that cannot start (its `pg_wal` copied off the disk) or a WAL archive.

use std::time::Instant;

use crate::cli::WalArgs;
use crate::divergence::{Analysis, Divergence, Verdict};
use crate::evidence::lostlist::ListTarget;
use crate::evidence::scan::ScanOptions;
use crate::evidence::{self, Source};
use crate::lsn::TimelineId;
use crate::pg::session::SessionOptions;
use crate::report::{Finding, NodeSection, Report, SCHEMA_VERSION};

use super::compare::parse_lsn_flag;
use super::{CommandError, Outcome};
use crate::report::{now_rfc3339, tool_id};

/// Decodes `--dir` from `--from` (the switchpoint) to `--to` or the end of valid WAL.
pub async fn run(args: &WalArgs) -> Result<Outcome, CommandError> {
    let started = Instant::now();
    let generated_at = now_rfc3339();
    let switchpoint = parse_lsn_flag("--from", &args.from)?;
    let to = args
        .to
        .as_deref()
        .map(|s| parse_lsn_flag("--to", s))
        .transpose()?;
    if !args.dir.is_dir() {
        return Err(CommandError::Usage {
            flag: "--dir",
            message: format!("{} is not a directory", args.dir.display()),
        });
    }
    let tli = TimelineId(args.timeline);
    // No row diff here: the accounting stays bounded whatever the size of the loss, and the
    // complete list of lost transactions is streamed to --lost-xids-file.
    let scan_opts = ScanOptions::bounded(args.lost_xids_file.clone().map(ListTarget::at));
    let (evidence, mut findings) = evidence::gather(
        &Source::Directory(args.dir.clone()),
        evidence::Names::Unmapped,
        &SessionOptions::default(),
        &crate::timeline::TimelineHistory::root(tli),
        switchpoint,
        to,
        None,
        &scan_opts,
    )
    .await;
    let mut ev = evidence.map_err(|e| match e {
        evidence::scan::ScanError::List(l) => CommandError::Usage {
            flag: "--lost-xids-file",
            message: l.to_string(),
        },
        e => CommandError::Wal(e),
    })?;
    ev.name_lost_ddl(None, None, &SessionOptions::default())
        .await;
    let end = ev.lost.end_lsn.unwrap_or(switchpoint).max(switchpoint);
    let mut analysis = Analysis {
        verdict: Verdict::Inconclusive,
        explanation: String::new(),
        divergence: Some(Divergence {
            former_timeline: tli,
            new_timeline: tli,
            switchpoint_lsn: Some(switchpoint),
            former_end_lsn: end,
            lost_wal_bytes: end.saturating_bytes_since(switchpoint),
            timeline_path: vec![tli],
        }),
    };
    super::compare::settle_with_wal(&mut analysis, &ev, false);
    findings.extend(super::compare::transaction_findings(
        &ev,
        "--lost-xids-file PATH",
    ));
    findings.sort_by_key(|f: &Finding| f.severity);
    Ok(Outcome {
        report: Report {
            schema_version: SCHEMA_VERSION,
            tool: tool_id(),
            generated_at,
            duration_ms: started.elapsed().as_millis() as u64,
            verdict: analysis.verdict,
            explanation: analysis.explanation,
            incomplete: false,
            new_primary: NodeSection::default(),
            former_primary: NodeSection::default(),
            divergence: analysis.divergence,
            transactions: Some(ev.transactions),
            findings,
            checks: Vec::new(),
            tables: None,
            patroni: None,
            discovery: None,
            downstream: None,
        },
        epilogue: None,
    })
}
