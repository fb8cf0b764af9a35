//! The evidence bundle of a compare run, sealed once the report is built.

use std::time::Instant;

use crate::commands::CommandError;
use crate::finding::{Finding, FindingId};
use crate::node::NodeFacts;
use crate::report::Report;

use super::input::CompareInput;

/// What the run kept for its evidence bundle besides the report.
pub(super) struct Sealed {
    /// The WAL range decoded, if any.
    pub(super) wal: Option<crate::bundle::WalRange>,
    /// Why no WAL was decoded, when the reading failed.
    pub(super) wal_missing: Option<String>,
    /// The relfilenode names the accounting used.
    pub(super) names:
        std::collections::BTreeMap<crate::wal::RelFileLocator, crate::evidence::names::RelName>,
    /// The former primary's databases (`oid → name`).
    pub(super) databases: std::collections::BTreeMap<u32, String>,
}

/// Adds the `evidence_bundle` finding to `report`, then writes the bundle and renames it into
/// place; on error nothing is left at or beside the target.
pub(super) fn seal_bundle(
    staging: crate::bundle::Staging,
    report: &mut Report,
    input: &CompareInput,
    new_facts: &NodeFacts,
    former_facts: Option<&NodeFacts>,
    sealed: Sealed,
) -> Result<(), CommandError> {
    let wal_missing = match &sealed.wal {
        Some(_) => None,
        None => Some(sealed.wal_missing.unwrap_or_else(|| {
            format!(
                "the run decoded no WAL (verdict {}: {})",
                report.verdict.as_str(),
                report.explanation
            )
        })),
    };
    let (history, notes) = crate::bundle::writer::histories(&[
        ("new-primary", Some(new_facts)),
        ("former-primary", former_facts),
    ]);
    let target = staging.target().display().to_string();
    report.findings.push(Finding {
        severity: FindingId::EvidenceBundle.severity(),
        id: FindingId::EvidenceBundle,
        message: format!(
            "evidence bundle written to {target}{}",
            if sealed.wal.is_some() {
                " with the lost range's WAL segments"
            } else {
                " (no WAL: none was decoded)"
            }
        ),
        hint: Some(format!(
            "check it with `sha256sum -c SHA256SUMS` in that directory; re-analyse it without any server with `failover-verify compare --from-evidence {target}`"
        )),
    });
    let t = Instant::now();
    let contents = crate::bundle::BundleContents {
        report,
        command: input.command_line.clone(),
        wal: sealed.wal,
        wal_missing,
        history,
        names: &sealed.names,
        databases: &sealed.databases,
        end_from_wal: former_facts.is_none(),
        notes,
        secrets: [Some(&input.new_primary), input.former_primary.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|p| p.password().map(str::to_string))
            .collect(),
    };
    // Hashing and writing gigabytes of WAL blocks: keep the runtime's other tasks going.
    let finish = || staging.finish(contents);
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(finish),
        _ => finish(),
    }?;
    crate::timing::record("compare: evidence bundle", t);
    Ok(())
}
