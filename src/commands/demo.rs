//! `failover-verify demo`: the incident this tool exists for, on throwaway local servers.
//!
//! A primary and an asynchronous standby are built in a temporary directory; a workload is
//! replicated; the standby is cut off; the primary commits more; the standby is promoted
//! (forced, like `patronictl failover --force`); a few rows are written on the new primary;
//! then the full comparison runs. Everything is removed at the end (also on Ctrl-C, when the
//! future is dropped) unless `--keep` is given.

use crate::cli::DemoArgs;
use crate::pg::conninfo::ConnParams;
use crate::pg::session::SessionOptions;
use crate::sandbox::scenario::insert_lost_commits;
use crate::sandbox::PgInstall;
use crate::sandbox::{LossyFailover, LossyFailoverSpec};

use super::compare::{self, CompareInput};
use super::{CommandError, Outcome};

/// Rows the new primary writes after the promotion (ordinary writes, not losses).
const POST_FAILOVER_ROWS: usize = 5;

/// Builds the incident, runs the comparison, and returns its report.
pub async fn run(args: &DemoArgs) -> Result<Outcome, CommandError> {
    let install = PgInstall::find().map_err(CommandError::NoServerBinaries)?;
    let lost = args.lost_transactions.max(1);
    let spec = LossyFailoverSpec {
        base_sql: vec!["CREATE SEQUENCE fv_demo_order_no".into()],
        ..LossyFailoverSpec::with_lost_commits(lost)
    };
    let first_id = spec.base_rows as i32 + 1;
    // The lost transactions insert rows and draw order numbers from a sequence, so the
    // checks have something to say (the new primary's sequence is behind).
    let mut incident = LossyFailover::build_with(&install, spec, async |former| {
        let commits = insert_lost_commits(former, first_id, lost).await?;
        former
            .execute(&format!(
                "SELECT nextval('fv_demo_order_no') FROM generate_series(1, {lost})"
            ))
            .await?;
        Ok(commits)
    })
    .await
    .map_err(CommandError::Demo)?;
    incident
        .new_primary
        .execute(&format!(
            "INSERT INTO fv_demo SELECT 1000000 + g, 'after-failover-' || g \
             FROM generate_series(1, {POST_FAILOVER_ROWS}) g"
        ))
        .await
        .map_err(CommandError::Demo)?;

    let parse = |s: String| ConnParams::parse(&s, &|_| None).map_err(CommandError::DemoConnInfo);
    let input = CompareInput {
        new_primary: parse(incident.new_primary.conninfo())?,
        former_primary: Some(parse(incident.former_primary.conninfo())?),
        former_wal_dir: None,
        former_archive: Vec::new(),
        restore_timeout: crate::wal::archive::DEFAULT_FETCH_TIMEOUT,
        former_timeline: None,
        session: SessionOptions::default(),
        tables: Some(crate::diff::DiffOptions::default()),
        busy_share: crate::diff::Throttle::gentle().busy_share,
        discovery: None,
        checks: Some(crate::checks::Catalog::builtin().map_err(CommandError::Checks)?),
        evidence_dir: None,
        command_line: String::new(),
    };
    let mut outcome = compare::run(&input).await?;
    if args.keep {
        incident.keep();
        outcome.epilogue = Some(format!(
            "demo: both servers keep running (stop them with `pg_ctl stop -D DIR` as the postgres user)\n  new primary:    {}   data: {}\n  former primary: {}   data: {}",
            incident.new_primary.conninfo(),
            incident.new_primary.data_dir().display(),
            incident.former_primary.conninfo(),
            incident.former_primary.data_dir().display(),
        ));
    }
    Ok(outcome)
}
