//! The rebuild's inputs, its result and error, and the per-database state every part works on.

use std::collections::BTreeSet;

use crate::diff::classify::Attribution;
use crate::diff::options::TableFilter;
use crate::diff::report::TablesReport;
use crate::evidence::ddl::LostDdlRelation;
use crate::finding::Finding;
use crate::pg::Session;
use crate::wal::tuplelog::TupleLog;
use crate::wal::RelFileLocator;

/// Tids or keys per query.
pub(super) const PER_QUERY: usize = 5_000;

/// `FirstNormalObjectId`: relations below it are system catalogs.
pub(super) const FIRST_NORMAL_OID: u32 = 16384;

/// How many rows a finding names before "...".
pub(super) const NAMED: usize = 5;

/// What the rows are rebuilt from.
pub struct WalRowsInput<'a> {
    /// The tuple images the scan kept.
    pub log: &'a TupleLog,
    /// The lost xids and the new primary's first xid.
    pub attribution: &'a Attribution,
    /// Relfilenodes the lost WAL created (new tables, rewrites).
    pub created_after_switchpoint: &'a BTreeSet<RelFileLocator>,
    /// The lost DDL, by relation.
    pub lost_ddl: &'a [LostDdlRelation],
    /// Why the lost WAL may not hold every lost change, when it may not.
    pub incomplete: Option<String>,
    /// Which tables to report (`--table`, `--schema`, `--exclude-table`).
    pub filter: Option<&'a TableFilter>,
}

/// The report and what the reader should know.
#[derive(Debug, Default)]
pub struct WalRows {
    /// The tables with lost rows, as the live row diff reports them.
    pub report: TablesReport,
    /// Descriptor drift, rows not examined, and the like.
    pub findings: Vec<Finding>,
}

impl WalRows {
    /// Lost row versions not examined, over every table.
    pub fn not_examined(&self) -> usize {
        self.report
            .tables
            .iter()
            .map(|t| t.not_examined.len())
            .sum()
    }
}

/// A problem that stops the whole run (the new primary could not be read).
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct WalRowsError {
    pub(super) what: String,
    #[source]
    pub(super) source: crate::pg::PgError,
}

pub(super) fn pg(what: impl Into<String>) -> impl FnOnce(crate::pg::PgError) -> WalRowsError {
    let what = what.into();
    move |source| WalRowsError { what, source }
}

/// One table on the new primary.
pub(super) struct TableInfo {
    pub(super) oid: u32,
    pub(super) schema: String,
    pub(super) name: String,
    pub(super) toast: Option<(u32, u32, String)>,
}

/// One database's part of the rebuild: its session and the report being filled.
pub(super) struct DbRows<'a, 'b> {
    pub(super) session: &'a Session,
    /// The time limit of one catalog read.
    pub(super) timeout: std::time::Duration,
    pub(super) db: &'a str,
    pub(super) input: &'a WalRowsInput<'b>,
    pub(super) out: &'a mut WalRows,
}
