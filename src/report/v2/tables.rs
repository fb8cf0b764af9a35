//! Wire types of the row diff: tables, rows and their versions, classes, exports.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::wire::Wire;

/// Everything the table comparison found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TablesReport {
    /// Databases compared.
    pub databases: Vec<String>,
    /// Databases the lost WAL touched that could not be compared, with why and what to run.
    #[serde(default)]
    pub skipped_databases: Vec<SkippedDatabase>,
    /// The table filters as given.
    pub filters: Vec<String>,
    /// What attribution input was available.
    pub attribution: AttributionInfo,
    /// How each node was read, per database.
    pub snapshots: Vec<SnapshotInfo>,
    /// One entry per table seen on either node.
    pub tables: Vec<TableReport>,
    /// Sums of every table's counts.
    pub totals: ClassCounts,
    /// Sequences whose values differ between the nodes.
    pub sequences: Vec<SequenceDiff>,
    /// The recovery export, when `--export-dir` was given.
    pub export: Option<ExportSummary>,
    /// Things the reader should know (partial comparisons, fallbacks).
    pub warnings: Vec<String>,
    /// Wall time of the whole comparison, in milliseconds.
    pub elapsed_ms: u64,
}

/// What attribution input the comparison had.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AttributionInfo {
    /// True when lost xids or the new side's first xid were known.
    pub available: bool,
    /// Number of lost xids given.
    pub lost_xids: usize,
    /// The first xid the new primary could assign after promotion.
    pub new_side_first_xid: Option<u32>,
}

/// How one node was read in one database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotInfo {
    /// Which node.
    pub node: Node,
    /// `host:port`.
    pub target: String,
    /// The database.
    pub database: String,
    /// Whether it was a standby.
    pub in_recovery: bool,
    /// Connections used.
    pub connections: usize,
    /// Whether all connections shared one exported snapshot.
    pub shared_snapshot: bool,
}

/// Whether a table exists on both nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// On both nodes.
    Both,
    /// Only on the new primary.
    NewOnly,
    /// Only on the former primary (possibly created by a lost transaction).
    FormerOnly,
}

/// How a table was compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Every row, by checksummed key ranges (or whole-row multisets without a key).
    Full,
    /// Only the keys whose tuples the WAL of either node touched after the switchpoint.
    Wal,
    /// The former primary was not read: the lost rows were rebuilt from its decoded WAL and
    /// checked against the new primary by primary key.
    WalDecoded,
    /// Not compared (one side only, or an error).
    None,
}

/// Where a row version's image came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImageOrigin {
    /// The WAL record's tuple data.
    WalRecord,
    /// The WAL record's tuple data, with the bytes shared with the old version (an UPDATE's
    /// prefix and suffix) taken from that version.
    WalRecordAndOldTuple,
    /// A full-page image in the WAL.
    FullPageImage,
    /// The old tuple that `wal_level = logical` logged (REPLICA IDENTITY FULL).
    LoggedOldTuple,
    /// The new primary's row at the old version's ctid (its xmin precedes the switchpoint):
    /// the pre-image of an UPDATE or DELETE.
    NewPrimaryPreImage,
    /// The new primary's current row, read by primary key.
    NewPrimaryRow,
}

/// A lost row version whose image could not be rebuilt: counted and named, never dropped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotExamined {
    /// The ctid on the former primary (`(block,offset)`).
    pub ctid: String,
    /// What the lost transaction did there (`insert`, `update`, `delete`).
    pub op: String,
    /// The (sub)transaction that did it.
    pub xid: u32,
    /// The record's LSN.
    pub lsn: String,
    /// The primary key, when it is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<serde_json::Map<String, serde_json::Value>>,
    /// Why it could not be rebuilt.
    pub reason: String,
}

/// Row counts per difference kind and class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClassCounts {
    /// Rows inserted by lost transactions.
    pub lost_insert: u64,
    /// Rows updated by lost transactions.
    pub lost_update: u64,
    /// Rows deleted by lost transactions.
    pub lost_delete: u64,
    /// Rows inserted on the new primary after the promotion.
    pub post_failover_insert: u64,
    /// Rows updated on the new primary after the promotion.
    pub post_failover_update: u64,
    /// Rows deleted on the new primary after the promotion.
    pub post_failover_delete: u64,
    /// Rows changed on both sides after the switchpoint.
    pub conflict: u64,
    /// Differences no rule explains.
    pub unexplained: u64,
    /// Differences without attribution input.
    pub unknown: u64,
    /// Raw: versions on the former side whose key (or copy) is absent on the new side.
    pub missing_on_new: u64,
    /// Raw: versions on the new side whose key (or copy) is absent on the former side.
    pub extra_on_new: u64,
    /// Raw: keys on both sides with different values.
    pub changed: u64,
}

/// The raw kind of a row difference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// The former side has it, the new side does not.
    MissingOnNew,
    /// The new side has it, the former side does not.
    ExtraOnNew,
    /// Both have the key, with different values.
    Changed,
}

/// What a difference means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RowClass {
    /// Inserted by a lost transaction.
    LostInsert,
    /// Updated by a lost transaction.
    LostUpdate,
    /// Deleted by a lost transaction.
    LostDelete,
    /// Inserted on the new primary after the promotion.
    PostFailoverInsert,
    /// Updated on the new primary after the promotion.
    PostFailoverUpdate,
    /// Deleted on the new primary after the promotion.
    PostFailoverDelete,
    /// Changed by a lost transaction and again on the new primary.
    Conflict,
    /// No rule explains it.
    Unexplained,
    /// No attribution input was available.
    Unknown,
}

/// One row version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RowVersion {
    /// The version's `xmin`.
    pub xmin: u32,
    /// Column name → text value (pinned output settings), `null` for NULL.
    pub values: serde_json::Map<String, serde_json::Value>,
    /// Where the image came from (rows rebuilt from the WAL; absent when read from a server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageOrigin>,
}

/// One differing row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RowDiff {
    /// Primary key column → text value; `null` for tables without a key.
    pub key: Option<serde_json::Map<String, serde_json::Value>>,
    /// Raw kind.
    pub kind: DiffKind,
    /// Attribution.
    pub class: RowClass,
    /// The former primary's version.
    pub former: Option<RowVersion>,
    /// The new primary's version.
    pub new: Option<RowVersion>,
}

/// One table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TableReport {
    /// The database.
    pub database: String,
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Whether it exists on both nodes.
    pub presence: Presence,
    /// Catalog differences.
    pub schema_differences: Vec<SchemaDifference>,
    /// How it was compared.
    pub method: Method,
    /// Why the WAL-guided method could not decide this table (it was compared in full, or
    /// not at all with `--tables-mode wal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// Key columns used to match rows (empty: whole-row multisets).
    pub key_columns: Vec<String>,
    /// Columns compared.
    pub columns: Vec<String>,
    /// Their types (`format_type`, schema-qualified where needed), parallel to `columns`.
    pub column_types: Vec<String>,
    /// Generated columns among them (never written by the recovery script).
    pub generated_columns: Vec<String>,
    /// Rows compared (the larger side's count).
    pub rows_compared: u64,
    /// Rows whose key and digest were read one by one (the larger side's count): the rows of
    /// the small ranges bisection ends with, of named keys, or of a keyless table's mismatching
    /// digest buckets. The other rows were compared inside matching chunk digests.
    #[serde(default)]
    pub rows_fetched: u64,
    /// First-pass chunks.
    pub chunks: u64,
    /// Chunks whose digests differed (first pass).
    pub chunks_mismatched: u64,
    /// Queries sent per node.
    pub queries: u64,
    /// Counts per kind and class.
    pub counts: ClassCounts,
    /// The differing rows, in order, as long as they fit in 512 KiB of compact JSON for all
    /// tables together (`INLINE_ROWS_BYTES`).
    pub rows: Vec<RowDiff>,
    /// Differing rows left out of `rows` by that budget: `rows` and `rows_omitted` together are
    /// every differing row (`counts` counts them all; the export directory's CSV files list
    /// them all).
    #[serde(default)]
    pub rows_omitted: u64,
    /// Wall time for this table, in milliseconds.
    pub elapsed_ms: u64,
    /// Why the comparison of this table stopped, if it did.
    pub error: Option<String>,
    /// Lost row versions whose image could not be rebuilt from the WAL, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_examined: Vec<NotExamined>,
}

/// A sequence whose state differs between the nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SequenceDiff {
    /// The database.
    pub database: String,
    /// Schema name.
    pub schema: String,
    /// Sequence name.
    pub name: String,
    /// `last_value` on the new primary (`null` when never called or absent).
    pub new_last_value: Option<i64>,
    /// The value the new primary hands out next: its start value when never called, else
    /// `last_value` plus the increment (`null` when the new primary lacks the sequence).
    #[serde(default)]
    pub new_next_value: Option<i64>,
    /// `last_value` on the former primary: the last value it handed out (`null` when never
    /// called).
    pub former_last_value: Option<i64>,
    /// How many values the new primary must skip so that its next value is past the former
    /// primary's last one (`former_last_value - new_next_value + 1`); `null` when it need not.
    #[serde(default)]
    pub advance_by: Option<i64>,
    /// True when the new primary must advance past the former primary's value (its next
    /// value is at or below the former's last value, or it lacks the sequence).
    pub new_is_behind: bool,
}

/// Files written by the recovery export.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExportSummary {
    /// The directory.
    pub dir: String,
    /// Files written (relative to `dir`).
    pub files: Vec<String>,
    /// Statements in the script that would run (not commented out).
    pub statements: u64,
    /// Conflicts left commented out for review.
    pub commented_conflicts: u64,
}

/// A database that should have been compared and was not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SkippedDatabase {
    /// The database.
    pub database: String,
    /// Why it was not compared (missing on one side, no CONNECT privilege, ...).
    pub reason: String,
    /// What to do about it.
    pub hint: String,
}

/// How the two catalogs differ for one table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SchemaDifference {
    /// `column_only_on_new`, `column_only_on_former`, `type_differs` or `primary_key_differs`.
    pub kind: String,
    /// The column concerned, if any.
    pub column: Option<String>,
    /// The new primary's side (type or key columns).
    pub new: Option<String>,
    /// The former primary's side.
    pub former: Option<String>,
}

/// Which of the two servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Node {
    /// The promoted server.
    New,
    /// The server that was primary before the failover.
    Former,
}

impl Wire for crate::diff::report::TablesReport {
    type Out = TablesReport;
    fn wire(&self) -> TablesReport {
        TablesReport {
            databases: self.databases.wire(),
            skipped_databases: self.skipped_databases.wire(),
            filters: self.filters.wire(),
            attribution: self.attribution.wire(),
            snapshots: self.snapshots.wire(),
            tables: self.tables.wire(),
            totals: self.totals.wire(),
            sequences: self.sequences.wire(),
            export: self.export.wire(),
            warnings: self.warnings.wire(),
            elapsed_ms: self.elapsed_ms.wire(),
        }
    }
}

impl Wire for crate::diff::report::AttributionInfo {
    type Out = AttributionInfo;
    fn wire(&self) -> AttributionInfo {
        AttributionInfo {
            available: self.available.wire(),
            lost_xids: self.lost_xids.wire(),
            new_side_first_xid: self.new_side_first_xid.wire(),
        }
    }
}

impl Wire for crate::diff::report::SnapshotInfo {
    type Out = SnapshotInfo;
    fn wire(&self) -> SnapshotInfo {
        SnapshotInfo {
            node: self.node.wire(),
            target: self.target.wire(),
            database: self.database.wire(),
            in_recovery: self.in_recovery.wire(),
            connections: self.connections.wire(),
            shared_snapshot: self.shared_snapshot.wire(),
        }
    }
}

impl Wire for crate::diff::report::Presence {
    type Out = Presence;
    fn wire(&self) -> Presence {
        match self {
            crate::diff::report::Presence::Both => Presence::Both,
            crate::diff::report::Presence::NewOnly => Presence::NewOnly,
            crate::diff::report::Presence::FormerOnly => Presence::FormerOnly,
        }
    }
}

impl Wire for crate::diff::report::Method {
    type Out = Method;
    fn wire(&self) -> Method {
        match self {
            crate::diff::report::Method::Full => Method::Full,
            crate::diff::report::Method::Wal => Method::Wal,
            crate::diff::report::Method::WalDecoded => Method::WalDecoded,
            crate::diff::report::Method::None => Method::None,
        }
    }
}

impl Wire for crate::diff::report::ClassCounts {
    type Out = ClassCounts;
    fn wire(&self) -> ClassCounts {
        ClassCounts {
            lost_insert: self.lost_insert.wire(),
            lost_update: self.lost_update.wire(),
            lost_delete: self.lost_delete.wire(),
            post_failover_insert: self.post_failover_insert.wire(),
            post_failover_update: self.post_failover_update.wire(),
            post_failover_delete: self.post_failover_delete.wire(),
            conflict: self.conflict.wire(),
            unexplained: self.unexplained.wire(),
            unknown: self.unknown.wire(),
            missing_on_new: self.missing_on_new.wire(),
            extra_on_new: self.extra_on_new.wire(),
            changed: self.changed.wire(),
        }
    }
}

impl Wire for crate::diff::report::DiffKind {
    type Out = DiffKind;
    fn wire(&self) -> DiffKind {
        match self {
            crate::diff::report::DiffKind::MissingOnNew => DiffKind::MissingOnNew,
            crate::diff::report::DiffKind::ExtraOnNew => DiffKind::ExtraOnNew,
            crate::diff::report::DiffKind::Changed => DiffKind::Changed,
        }
    }
}

impl Wire for crate::diff::report::RowClass {
    type Out = RowClass;
    fn wire(&self) -> RowClass {
        match self {
            crate::diff::report::RowClass::LostInsert => RowClass::LostInsert,
            crate::diff::report::RowClass::LostUpdate => RowClass::LostUpdate,
            crate::diff::report::RowClass::LostDelete => RowClass::LostDelete,
            crate::diff::report::RowClass::PostFailoverInsert => RowClass::PostFailoverInsert,
            crate::diff::report::RowClass::PostFailoverUpdate => RowClass::PostFailoverUpdate,
            crate::diff::report::RowClass::PostFailoverDelete => RowClass::PostFailoverDelete,
            crate::diff::report::RowClass::Conflict => RowClass::Conflict,
            crate::diff::report::RowClass::Unexplained => RowClass::Unexplained,
            crate::diff::report::RowClass::Unknown => RowClass::Unknown,
        }
    }
}

impl Wire for crate::diff::report::RowVersion {
    type Out = RowVersion;
    fn wire(&self) -> RowVersion {
        RowVersion {
            xmin: self.xmin.wire(),
            values: self.values.wire(),
            image: self.image.wire(),
        }
    }
}

impl Wire for crate::diff::report::ImageOrigin {
    type Out = ImageOrigin;
    fn wire(&self) -> ImageOrigin {
        use crate::diff::report::ImageOrigin as I;
        match self {
            I::WalRecord => ImageOrigin::WalRecord,
            I::WalRecordAndOldTuple => ImageOrigin::WalRecordAndOldTuple,
            I::FullPageImage => ImageOrigin::FullPageImage,
            I::LoggedOldTuple => ImageOrigin::LoggedOldTuple,
            I::NewPrimaryPreImage => ImageOrigin::NewPrimaryPreImage,
            I::NewPrimaryRow => ImageOrigin::NewPrimaryRow,
        }
    }
}

impl Wire for crate::diff::report::NotExamined {
    type Out = NotExamined;
    fn wire(&self) -> NotExamined {
        NotExamined {
            ctid: self.ctid.wire(),
            op: self.op.wire(),
            xid: self.xid.wire(),
            lsn: self.lsn.wire(),
            key: self.key.wire(),
            reason: self.reason.wire(),
        }
    }
}

impl Wire for crate::diff::report::RowDiff {
    type Out = RowDiff;
    fn wire(&self) -> RowDiff {
        RowDiff {
            key: self.key.wire(),
            kind: self.kind.wire(),
            class: self.class.wire(),
            former: self.former.wire(),
            new: self.new.wire(),
        }
    }
}

impl Wire for crate::diff::report::TableReport {
    type Out = TableReport;
    fn wire(&self) -> TableReport {
        TableReport {
            database: self.database.wire(),
            schema: self.schema.wire(),
            table: self.table.wire(),
            presence: self.presence.wire(),
            schema_differences: self.schema_differences.wire(),
            method: self.method.wire(),
            fallback_reason: self.fallback_reason.wire(),
            key_columns: self.key_columns.wire(),
            columns: self.columns.wire(),
            column_types: self.column_types.wire(),
            generated_columns: self.generated_columns.wire(),
            rows_compared: self.rows_compared.wire(),
            rows_fetched: self.rows_fetched.wire(),
            chunks: self.chunks.wire(),
            chunks_mismatched: self.chunks_mismatched.wire(),
            queries: self.queries.wire(),
            counts: self.counts.wire(),
            rows: self.rows.wire(),
            rows_omitted: 0,
            elapsed_ms: self.elapsed_ms.wire(),
            error: self.error.wire(),
            not_examined: self.not_examined.wire(),
        }
    }
}

impl Wire for crate::diff::report::SequenceDiff {
    type Out = SequenceDiff;
    fn wire(&self) -> SequenceDiff {
        SequenceDiff {
            database: self.database.wire(),
            schema: self.schema.wire(),
            name: self.name.wire(),
            new_last_value: self.new_last_value.wire(),
            new_next_value: self.new_next_value.wire(),
            former_last_value: self.former_last_value.wire(),
            advance_by: self.advance_by.wire(),
            new_is_behind: self.new_is_behind.wire(),
        }
    }
}

impl Wire for crate::diff::report::ExportSummary {
    type Out = ExportSummary;
    fn wire(&self) -> ExportSummary {
        ExportSummary {
            dir: self.dir.wire(),
            files: self.files.wire(),
            statements: self.statements.wire(),
            commented_conflicts: self.commented_conflicts.wire(),
        }
    }
}

impl Wire for crate::diff::report::SkippedDatabase {
    type Out = SkippedDatabase;
    fn wire(&self) -> SkippedDatabase {
        SkippedDatabase {
            database: self.database.wire(),
            reason: self.reason.wire(),
            hint: self.hint.wire(),
        }
    }
}

impl Wire for crate::diff::catalog::SchemaDifference {
    type Out = SchemaDifference;
    fn wire(&self) -> SchemaDifference {
        SchemaDifference {
            kind: self.kind.wire(),
            column: self.column.wire(),
            new: self.new.wire(),
            former: self.former.wire(),
        }
    }
}

impl Wire for crate::diff::error::Node {
    type Out = Node;
    fn wire(&self) -> Node {
        match self {
            crate::diff::error::Node::New => Node::New,
            crate::diff::error::Node::Former => Node::Former,
        }
    }
}
