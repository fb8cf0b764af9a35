//! Wire types of the WAL accounting: lost transactions, tables, databases, DDL, coverage.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::lsn::{Lsn, Xid};

use super::wire::Wire;

/// The `transactions` section of the report: what the lost WAL contains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Transactions {
    /// Where the WAL was read (`replication from host:port`, `pg_wal over SQL on …`, `directory …`).
    pub source: String,
    /// Where decoding began (at or before the switchpoint).
    pub scan_start_lsn: Lsn,
    /// The end of the last record decoded.
    pub end_lsn: Option<Lsn>,
    /// Why decoding stopped (`requested end reached`, `zeroed page`, ...).
    pub end_reason: Option<String>,
    /// The WAL format's PostgreSQL major version (from the page magic).
    pub wal_format: Option<u32>,
    /// Number of lost commits (COMMIT and COMMIT PREPARED after the switchpoint).
    pub lost_commits: usize,
    /// The lost transactions, in WAL order: all of them, or at scale the first and the last
    /// ones only (`lost_xids_omitted` says how many are left out between them).
    pub lost_xids: Vec<LostXid>,
    /// How many lost transactions `lost_xids` leaves out (between its first and last entries);
    /// `lost_xids_file` has them all.
    #[serde(default)]
    pub lost_xids_omitted: u64,
    /// The file holding every lost transaction (CSV or JSON Lines), when one was written.
    #[serde(default)]
    pub lost_xids_file: Option<String>,
    /// Lost commits and row changes per database.
    #[serde(default)]
    pub databases: Vec<DatabaseLoss>,
    /// The loss timeline: lost commits per minute of commit time.
    #[serde(default)]
    pub commits_per_minute: Vec<MinuteLoss>,
    /// The first lost commit time (RFC 3339): the start of the loss window.
    pub first_lost_commit_time: Option<String>,
    /// The last lost commit time: the end of the loss window.
    pub last_lost_commit_time: Option<String>,
    /// Aborts after the switchpoint: not losses.
    pub aborts_after_switchpoint: usize,
    /// Transactions with changes but no commit or abort (in flight at the failover): not losses.
    pub in_flight: usize,
    /// Transactions PREPAREd after the switchpoint and never resolved: in doubt.
    pub in_doubt: Vec<InDoubtTx>,
    /// Rows the lost transactions inserted, updated or deleted in user tables (the headline
    /// number): the sum of `inserts + updates + deletes` over `tables[]` of every kind but
    /// `catalog`.
    /// Rows written into system catalogs by DDL and TOAST chunks are not counted.
    pub row_changes: u64,
    /// User tables with lost row changes or TRUNCATEs (the entries of `tables[]` of every kind
    /// but `catalog`).
    pub tables_changed: usize,
    /// Row changes of the lost transactions per table (system catalogs included, as kind
    /// `catalog`; a TOAST relation counts against its owner).
    pub tables: Vec<TableLoss>,
    /// Lost transactions that changed the schema (catalog changes).
    pub lost_ddl: usize,
    /// The relations that lost transactions created, altered or dropped, by name.
    pub lost_ddl_relations: Vec<LostDdlRelation>,
    /// What about the lost DDL could not be named, and why (empty when everything was).
    pub lost_ddl_unnamed: Vec<String>,
    /// Sequences advanced after the switchpoint.
    pub sequences: Vec<SequenceLoss>,
    /// WAL records after the switchpoint (all kinds, background ones included).
    pub records_after_switchpoint: u64,
    /// Heap tuples the lost transactions wrote or deleted.
    pub touched_tuples: usize,
    /// The pg_walinspect cross-check, when that extension was already installed.
    pub walinspect: Option<WalinspectCheck>,
    /// The first xid the new primary could assign after its promotion (from the WAL before
    /// the switchpoint); new-side row versions at or after it are post-failover writes.
    pub new_side_first_xid: Option<Xid>,
    /// Limits of this accounting the reader should know.
    pub caveats: Vec<String>,
    /// For WAL read from files (a directory, an archive): the LSN range the files covered and
    /// what no source held. `None` for a running node (its WAL is complete).
    pub coverage: Option<Coverage>,
}

/// One lost transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LostXid {
    /// Its top-level xid on the former timeline (the new primary reuses these numbers).
    pub xid: Xid,
    /// Its committed subtransactions.
    pub subxids: Vec<Xid>,
    /// The commit record's LSN.
    pub commit_lsn: Lsn,
    /// The commit time (RFC 3339, UTC).
    pub commit_time: Option<String>,
    /// The database it ran in.
    pub database: Option<String>,
    /// Whether it was a COMMIT PREPARED, and its GID.
    pub prepared_gid: Option<String>,
    /// Whether it changed the schema.
    pub ddl: bool,
    /// Rows inserted into user tables (as `tables[].inserts`).
    pub inserts: u64,
    /// Rows updated in user tables, HOT updates included (as `tables[].updates`).
    pub updates: u64,
    /// The HOT subset of `updates`.
    pub hot_updates: u64,
    /// Rows deleted from user tables.
    pub deletes: u64,
    /// Rows it inserted, updated or deleted in system catalogs (DDL), not in the counts above.
    pub catalog_rows: u64,
}

/// A prepared transaction whose fate the new primary does not know.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InDoubtTx {
    /// Its xid on the former timeline.
    pub xid: Xid,
    /// Its GID.
    pub gid: Option<String>,
    /// The PREPARE record's LSN.
    pub lsn: Lsn,
}

/// Lost row changes in one table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TableLoss {
    /// The database.
    pub database: Option<String>,
    /// `schema.table`, or `None` when the relfilenode could not be mapped.
    pub table: Option<String>,
    /// `table`, `toast` (counted against its owner), `catalog`, `unknown`, ...
    pub kind: String,
    /// `spc/db/relfilenode`.
    pub relfilenode: String,
    /// Inserted tuples.
    pub inserts: u64,
    /// Updated tuples, HOT updates included.
    pub updates: u64,
    /// The HOT subset of `updates`.
    pub hot_updates: u64,
    /// Deleted tuples.
    pub deletes: u64,
    /// TRUNCATEs.
    pub truncates: u64,
}

/// A sequence that moved after the switchpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SequenceLoss {
    /// The database.
    pub database: Option<String>,
    /// `schema.sequence`, when known.
    pub sequence: Option<String>,
    /// The last value logged on the former primary (up to 32 ahead of the last `nextval`).
    pub last_logged_value: Option<i64>,
}

/// Our count against pg_walinspect's on the same range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WalinspectCheck {
    /// Commits pg_walinspect saw between the switchpoint and the end.
    pub commits: i64,
    /// Whether that equals `lost_commits`.
    pub agrees: bool,
}

/// Which part of the former primary's WAL the files covered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Coverage {
    /// The sources, in the order they were tried (`directory …`, `restore command `…``).
    pub sources: Vec<String>,
    /// The first position read (the scan start).
    pub covered_from: Lsn,
    /// Where the evidence stops: decoding ended here.
    pub covered_to: Lsn,
    /// Whether the evidence reaches the former primary's end of WAL. When `false`, every count
    /// in the report is a lower bound.
    pub complete: bool,
    /// The first position no source held (when incomplete).
    pub uncovered_from: Option<Lsn>,
    /// The end of the uncovered range, when the former primary's end of WAL is known; `None`
    /// with `complete = false` means the end is unknown.
    pub uncovered_to: Option<Lsn>,
    /// The segments no source held, from the first missing one (up to the former's end when
    /// known; else only the first, since the archive cannot tell how far the WAL went).
    pub missing_segments: Vec<String>,
    /// Why the evidence stops where it does.
    pub reason: String,
    /// The segment files read, in order, with their source.
    pub segments: Vec<SegmentRead>,
    /// Segments that two sources hold with different bytes where both are valid WAL.
    pub disagreements: Vec<String>,
}

/// One segment file that was read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SegmentRead {
    /// Its file name.
    pub file: String,
    /// Its source.
    pub source: String,
}

/// Lost commits in one database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DatabaseLoss {
    /// Its name, when known.
    pub database: Option<String>,
    /// Its OID, when the WAL named it.
    pub database_oid: Option<u32>,
    /// Lost commits that ran in it.
    pub commits: u64,
    /// Row changes in its tables, summed over `tables` (TOAST and catalogs left out).
    pub inserts: u64,
    /// Updates, HOT included.
    pub updates: u64,
    /// The HOT subset of `updates`.
    pub hot_updates: u64,
    /// Deleted tuples.
    pub deletes: u64,
    /// TRUNCATEs.
    pub truncates: u64,
}

/// Lost commits in one minute.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MinuteLoss {
    /// The start of the minute (RFC 3339, UTC).
    pub minute: String,
    /// Lost commits whose commit time falls in it.
    pub commits: u64,
}

/// What a lost transaction did to a relation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DdlAction {
    /// The relation exists only on the former primary: a lost transaction created it.
    Created,
    /// A lost transaction changed its definition (a column, an index, its storage, a grant).
    Altered,
    /// A lost transaction dropped it: the new primary still has it.
    Dropped,
    /// A lost commit removed its file, and the former primary could not be asked whether the
    /// relation was dropped or only rewritten (TRUNCATE, VACUUM FULL, ALTER COLUMN TYPE).
    DroppedOrRewritten,
}

/// One relation that lost DDL created, altered or dropped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LostDdlRelation {
    /// The database.
    pub database: Option<String>,
    /// `schema.name`.
    pub relation: String,
    /// `table`, `index`, `sequence`, `view`, `materialized view`, ...
    pub kind: String,
    /// What the lost transaction did to it.
    pub action: DdlAction,
    /// The lost transaction (top-level xid on the former timeline), when known.
    pub xid: Option<Xid>,
    /// The relation's OID (on the former primary; on the new one for dropped relations).
    pub oid: u32,
}

impl Wire for crate::evidence::Transactions {
    type Out = Transactions;
    fn wire(&self) -> Transactions {
        Transactions {
            source: self.source.wire(),
            scan_start_lsn: self.scan_start_lsn.wire(),
            end_lsn: self.end_lsn.wire(),
            end_reason: self.end_reason.wire(),
            wal_format: self.wal_format.wire(),
            lost_commits: self.lost_commits.wire(),
            lost_xids: self.lost_xids.wire(),
            lost_xids_omitted: self.lost_xids_omitted.wire(),
            lost_xids_file: self.lost_xids_file.wire(),
            databases: self.databases.wire(),
            commits_per_minute: self.commits_per_minute.wire(),
            first_lost_commit_time: self.first_lost_commit_time.wire(),
            last_lost_commit_time: self.last_lost_commit_time.wire(),
            aborts_after_switchpoint: self.aborts_after_switchpoint.wire(),
            in_flight: self.in_flight.wire(),
            in_doubt: self.in_doubt.wire(),
            row_changes: self.row_changes.wire(),
            tables_changed: self.tables_changed.wire(),
            tables: self.tables.wire(),
            lost_ddl: self.lost_ddl.wire(),
            lost_ddl_relations: self.lost_ddl_relations.wire(),
            lost_ddl_unnamed: self.lost_ddl_unnamed.wire(),
            sequences: self.sequences.wire(),
            records_after_switchpoint: self.records_after_switchpoint.wire(),
            touched_tuples: self.touched_tuples.wire(),
            walinspect: self.walinspect.wire(),
            new_side_first_xid: self.new_side_first_xid.wire(),
            caveats: self.caveats.wire(),
            coverage: self.coverage.wire(),
        }
    }
}

impl Wire for crate::evidence::LostXid {
    type Out = LostXid;
    fn wire(&self) -> LostXid {
        LostXid {
            xid: self.xid.wire(),
            subxids: self.subxids.wire(),
            commit_lsn: self.commit_lsn.wire(),
            commit_time: self.commit_time.wire(),
            database: self.database.wire(),
            prepared_gid: self.prepared_gid.wire(),
            ddl: self.ddl.wire(),
            inserts: self.inserts.wire(),
            updates: self.updates.wire(),
            hot_updates: self.hot_updates.wire(),
            deletes: self.deletes.wire(),
            catalog_rows: self.catalog_rows.wire(),
        }
    }
}

impl Wire for crate::evidence::InDoubtTx {
    type Out = InDoubtTx;
    fn wire(&self) -> InDoubtTx {
        InDoubtTx {
            xid: self.xid.wire(),
            gid: self.gid.wire(),
            lsn: self.lsn.wire(),
        }
    }
}

impl Wire for crate::evidence::TableLoss {
    type Out = TableLoss;
    fn wire(&self) -> TableLoss {
        TableLoss {
            database: self.database.wire(),
            table: self.table.wire(),
            kind: self.kind.wire(),
            relfilenode: self.relfilenode.wire(),
            inserts: self.inserts.wire(),
            updates: self.updates.wire(),
            hot_updates: self.hot_updates.wire(),
            deletes: self.deletes.wire(),
            truncates: self.truncates.wire(),
        }
    }
}

impl Wire for crate::evidence::SequenceLoss {
    type Out = SequenceLoss;
    fn wire(&self) -> SequenceLoss {
        SequenceLoss {
            database: self.database.wire(),
            sequence: self.sequence.wire(),
            last_logged_value: self.last_logged_value.wire(),
        }
    }
}

impl Wire for crate::evidence::WalinspectCheck {
    type Out = WalinspectCheck;
    fn wire(&self) -> WalinspectCheck {
        WalinspectCheck {
            commits: self.commits.wire(),
            agrees: self.agrees.wire(),
        }
    }
}

impl Wire for crate::evidence::Coverage {
    type Out = Coverage;
    fn wire(&self) -> Coverage {
        Coverage {
            sources: self.sources.wire(),
            covered_from: self.covered_from.wire(),
            covered_to: self.covered_to.wire(),
            complete: self.complete.wire(),
            uncovered_from: self.uncovered_from.wire(),
            uncovered_to: self.uncovered_to.wire(),
            missing_segments: self.missing_segments.wire(),
            reason: self.reason.wire(),
            segments: self.segments.wire(),
            disagreements: self.disagreements.wire(),
        }
    }
}

impl Wire for crate::evidence::SegmentRead {
    type Out = SegmentRead;
    fn wire(&self) -> SegmentRead {
        SegmentRead {
            file: self.file.wire(),
            source: self.source.wire(),
        }
    }
}

impl Wire for crate::evidence::DatabaseLoss {
    type Out = DatabaseLoss;
    fn wire(&self) -> DatabaseLoss {
        DatabaseLoss {
            database: self.database.wire(),
            database_oid: self.database_oid.wire(),
            commits: self.commits.wire(),
            inserts: self.inserts.wire(),
            updates: self.updates.wire(),
            hot_updates: self.hot_updates.wire(),
            deletes: self.deletes.wire(),
            truncates: self.truncates.wire(),
        }
    }
}

impl Wire for crate::evidence::MinuteLoss {
    type Out = MinuteLoss;
    fn wire(&self) -> MinuteLoss {
        MinuteLoss {
            minute: self.minute.wire(),
            commits: self.commits.wire(),
        }
    }
}

impl Wire for crate::evidence::ddl::DdlAction {
    type Out = DdlAction;
    fn wire(&self) -> DdlAction {
        match self {
            crate::evidence::ddl::DdlAction::Created => DdlAction::Created,
            crate::evidence::ddl::DdlAction::Altered => DdlAction::Altered,
            crate::evidence::ddl::DdlAction::Dropped => DdlAction::Dropped,
            crate::evidence::ddl::DdlAction::DroppedOrRewritten => DdlAction::DroppedOrRewritten,
        }
    }
}

impl Wire for crate::evidence::ddl::LostDdlRelation {
    type Out = LostDdlRelation;
    fn wire(&self) -> LostDdlRelation {
        LostDdlRelation {
            database: self.database.wire(),
            relation: self.relation.wire(),
            kind: self.kind.wire(),
            action: self.action.wire(),
            xid: self.xid.wire(),
            oid: self.oid.wire(),
        }
    }
}
