//! The serde model of the table comparison ([`TablesReport`]), complete: renderers bound it.

use serde::{Deserialize, Serialize};

use super::catalog::SchemaDifference;
use super::error::Node;

/// Version of this JSON layout.
pub const TABLES_SCHEMA_VERSION: u32 = 1;

/// Everything the table comparison found.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TablesReport {
    /// Layout version ([`TABLES_SCHEMA_VERSION`]).
    #[serde(default)]
    pub schema_version: u32,
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

/// A database that should have been compared and was not.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SkippedDatabase {
    /// The database.
    pub database: String,
    /// Why it was not compared (missing on one side, no CONNECT privilege, ...).
    pub reason: String,
    /// What to do about it.
    pub hint: String,
}

/// What attribution input the comparison had.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AttributionInfo {
    /// True when lost xids or the new side's first xid were known.
    pub available: bool,
    /// Number of lost xids given.
    pub lost_xids: usize,
    /// The first xid the new primary could assign after promotion.
    pub new_side_first_xid: Option<u32>,
}

/// How one node was read in one database.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

impl ClassCounts {
    /// Counts one row.
    pub fn add(&mut self, kind: DiffKind, class: RowClass) {
        match kind {
            DiffKind::MissingOnNew => self.missing_on_new += 1,
            DiffKind::ExtraOnNew => self.extra_on_new += 1,
            DiffKind::Changed => self.changed += 1,
        }
        match class {
            RowClass::LostInsert => self.lost_insert += 1,
            RowClass::LostUpdate => self.lost_update += 1,
            RowClass::LostDelete => self.lost_delete += 1,
            RowClass::PostFailoverInsert => self.post_failover_insert += 1,
            RowClass::PostFailoverUpdate => self.post_failover_update += 1,
            RowClass::PostFailoverDelete => self.post_failover_delete += 1,
            RowClass::Conflict => self.conflict += 1,
            RowClass::Unexplained => self.unexplained += 1,
            RowClass::Unknown => self.unknown += 1,
        }
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, o: &ClassCounts) {
        self.lost_insert += o.lost_insert;
        self.lost_update += o.lost_update;
        self.lost_delete += o.lost_delete;
        self.post_failover_insert += o.post_failover_insert;
        self.post_failover_update += o.post_failover_update;
        self.post_failover_delete += o.post_failover_delete;
        self.conflict += o.conflict;
        self.unexplained += o.unexplained;
        self.unknown += o.unknown;
        self.missing_on_new += o.missing_on_new;
        self.extra_on_new += o.extra_on_new;
        self.changed += o.changed;
    }

    /// Rows that were lost (insert, update, delete, conflict).
    pub fn lost(&self) -> u64 {
        self.lost_insert + self.lost_update + self.lost_delete + self.conflict
    }
}

/// The raw kind of a row difference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Serialize, Deserialize)]
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
    /// Every differing row.
    pub rows: Vec<RowDiff>,
    /// Wall time for this table, in milliseconds.
    pub elapsed_ms: u64,
    /// Why the comparison of this table stopped, if it did.
    pub error: Option<String>,
    /// Lost row versions whose image could not be rebuilt from the WAL, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_examined: Vec<NotExamined>,
}

/// A sequence whose state differs between the nodes.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Serialize, Deserialize)]
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
