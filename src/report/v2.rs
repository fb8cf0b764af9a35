//! The JSON report, version 2: the wire types that `--format json` writes and the JSON Schema
//! describes (`docs/report-v2.schema.json`), separate from the analysis types they are made from.
//!
//! The analysis may reshape its own structs freely; what users parse changes only here, with
//! [`SCHEMA_VERSION`] and an entry in `CHANGELOG.md`. Every type derives `JsonSchema`, and a test
//! keeps the committed schema equal to the generated one. The conversions ([`Wire`]) are
//! field-for-field, so a field added to an analysis type does not reach the wire by accident:
//! it must be added here too.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::finding::{Finding, FindingId, Severity};
use crate::lsn::{Lsn, SystemId, TimelineId, Xid};

/// The version of the JSON layout; bumped when a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 2;

/// Everything one run found, in the order a reader needs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "failover-verify report, version 2")]
pub struct Report {
    /// The JSON layout version: 2.
    pub schema_version: u32,
    /// The tool's name and version that produced this report.
    pub tool: String,
    /// When the run started (RFC 3339, UTC).
    pub generated_at: String,
    /// How long the run took, in milliseconds.
    pub duration_ms: u64,
    /// The answer: `no_loss`, `loss`, `rewound`, `unrelated` or `inconclusive`.
    pub verdict: Verdict,
    /// The process exit code this report gives (see the README's table): 0 no loss, 1 loss,
    /// 2 undecided. It follows from the verdict and the findings.
    pub exit_code: u8,
    /// One sentence that explains the verdict.
    pub explanation: String,
    /// True when a part of the analysis could not run (see `findings`).
    pub incomplete: bool,
    /// The promoted node.
    pub new_primary: NodeSection,
    /// The node that was primary before the failover.
    pub former_primary: NodeSection,
    /// Where the timelines forked and how much WAL lies beyond.
    pub divergence: Option<Divergence>,
    /// What the lost WAL contains: lost commits, their window, the tables they changed.
    pub transactions: Option<Transactions>,
    /// Which rows differ, and why: lost writes, post-failover writes, conflicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<TablesReport>,
    /// Things the reader should know or do, most severe first.
    pub findings: Vec<Finding>,
    /// The results of the declarative checks (`checks/*.toml`, `--checks-dir`), in catalog
    /// order; they never change the verdict.
    #[serde(default)]
    pub checks: Vec<CheckResult>,
    /// Patroni discovery (`--patroni`): the members, how the nodes were chosen, and the
    /// promotion in Patroni's `/history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patroni: Option<PatroniSection>,
    /// HA-manager discovery (`--patroni`, `--repmgr`, `--pg-auto-failover`, `--cnpg-status`),
    /// the same for every manager: the members, the promotions and demotions the manager
    /// recorded, and how the nodes were chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoverySection>,
    /// The former primary's downstream consumers (logical slots, standbys, pg_receivewal) and
    /// the lost transactions each already received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downstream: Option<Downstream>,
}

impl Report {
    /// The wire form of an analysed report.
    pub fn from_report(r: &super::Report) -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            tool: r.tool.clone(),
            generated_at: r.generated_at.clone(),
            duration_ms: r.duration_ms,
            verdict: r.verdict.wire(),
            exit_code: super::exit_code(r.verdict, &r.findings),
            explanation: r.explanation.clone(),
            incomplete: r.incomplete,
            new_primary: r.new_primary.wire(),
            former_primary: r.former_primary.wire(),
            divergence: r.divergence.wire(),
            transactions: r.transactions.wire(),
            tables: r.tables.wire(),
            findings: r.findings.clone(),
            checks: r.checks.wire(),
            patroni: r.patroni.wire(),
            discovery: r.discovery.wire(),
            downstream: r.downstream.wire(),
        }
    }
}

/// The JSON Schema of [`Report`], pretty-printed with a trailing newline.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Report);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}

/// Field-for-field conversion of an analysis type into its wire type.
pub trait Wire {
    /// The wire type.
    type Out;
    /// Converts.
    fn wire(&self) -> Self::Out;
}

macro_rules! wire_as_clone {
    ($($t:ty),*) => { $( impl Wire for $t { type Out = $t; fn wire(&self) -> $t { self.clone() } } )* };
}
wire_as_clone!(
    String, bool, u8, u16, u32, u64, usize, i32, i64, f64, Lsn, TimelineId, Xid, SystemId,
    Severity, FindingId, Finding, serde_json::Value,
    serde_json::Map<String, serde_json::Value>
);

impl<T: Wire> Wire for Option<T> {
    type Out = Option<T::Out>;
    fn wire(&self) -> Self::Out {
        self.as_ref().map(Wire::wire)
    }
}

impl<T: Wire> Wire for Vec<T> {
    type Out = Vec<T::Out>;
    fn wire(&self) -> Self::Out {
        self.iter().map(Wire::wire).collect()
    }
}

impl<T: Wire> Wire for BTreeMap<String, T> {
    type Out = BTreeMap<String, T::Out>;
    fn wire(&self) -> Self::Out {
        self.iter().map(|(k, v)| (k.clone(), v.wire())).collect()
    }
}

// ---- the sections

/// One node as the report shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeSection {
    /// The connection target with any password masked.
    pub target: String,
    /// What the node said about itself, if it could be reached.
    pub facts: Option<NodeFacts>,
    /// Why it could not be read, if it could not.
    pub error: Option<String>,
    /// For a multi-host connection string (or one with `target_session_attrs`): the host
    /// that answered and why that one. Absent for a single host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_choice: Option<HostChoice>,
}

/// Which host of a multi-host connection string was used (libpq's rules), and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HostChoice {
    /// Every host of the string (`host:port` or socket path), in the order given.
    pub hosts: Vec<String>,
    /// `target_session_attrs` (any, read-write, read-only, primary, standby, prefer-standby).
    pub target_session_attrs: String,
    /// Whether `load_balance_hosts=random` shuffled the order.
    pub load_balanced: bool,
    /// The host used.
    pub reached: String,
    /// Why this host: its role and the rule that picked it.
    pub reason: String,
    /// Hosts tried and not used, in the order tried, each with the reason.
    pub skipped: Vec<SkippedHost>,
}

/// A host of a multi-host string that was not used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SkippedHost {
    /// `host:port` or the socket path.
    pub target: String,
    /// Why (the connection error, or its role).
    pub why: String,
}

/// How a node's timeline history was obtained, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistorySource {
    /// Timeline 1 has no history file: nothing to read.
    NotNeeded,
    /// `TIMELINE_HISTORY` over a replication connection.
    Replication,
    /// `pg_read_file('pg_wal/….history')` over SQL.
    PgReadFile,
    /// It could not be read; see `history_problem`.
    Unavailable,
}

/// Everything read from one server at the start of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeFacts {
    /// `server_version`, e.g. `15.18 (Debian 15.18-0+deb12u1)`.
    pub server_version: String,
    /// `server_version_num`, e.g. 150018.
    pub server_version_num: u32,
    /// `pg_control_system().system_identifier`: equal on every node of one cluster.
    pub system_identifier: SystemId,
    /// `pg_is_in_recovery()`: true on a standby.
    pub in_recovery: bool,
    /// The timeline the node writes (primary) or replays (standby) now.
    pub timeline: TimelineId,
    /// How the timeline was determined (`identify_system`, `pg_walfile_name`, ...).
    pub timeline_source: String,
    /// `pg_current_wal_insert_lsn()` on a primary.
    pub insert_lsn: Option<Lsn>,
    /// `pg_current_wal_lsn()` (written position) on a primary.
    pub current_lsn: Option<Lsn>,
    /// `pg_last_wal_receive_lsn()` on a standby.
    pub receive_lsn: Option<Lsn>,
    /// `pg_last_wal_replay_lsn()` on a standby.
    pub replay_lsn: Option<Lsn>,
    /// The end of this node's WAL for the divergence: the insert LSN on a primary, the larger
    /// of the received and replayed positions on a standby.
    pub end_of_wal: Lsn,
    /// `pg_control_checkpoint().checkpoint_lsn`.
    pub checkpoint_lsn: Option<Lsn>,
    /// `pg_control_checkpoint().redo_lsn`.
    pub redo_lsn: Option<Lsn>,
    /// `pg_control_checkpoint().timeline_id` (stale right after a promotion; informative only).
    pub checkpoint_timeline: Option<TimelineId>,
    /// `wal_segment_size` in bytes.
    pub wal_segment_size: u64,
    /// When the postmaster started, to tell two connection strings to one server apart.
    pub postmaster_start_time: Option<String>,
    /// The server's `port` setting.
    pub port: Option<u16>,
    /// The node's timeline history, when it could be read (timeline 1 has an empty one).
    pub history: Option<TimelineHistory>,
    /// How the history was read.
    pub history_source: HistorySource,
    /// Why the history could not be read, naming the missing privilege.
    pub history_problem: Option<String>,
    /// Whether the session role has the REPLICATION attribute (or is superuser).
    pub can_replicate: bool,
    /// When these facts were read (RFC 3339, UTC).
    pub read_at: String,
}

/// One line of a history file: `parent` ended at `switchpoint` and a child timeline began there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimelineEntry {
    /// The ancestor timeline that ended.
    pub parent: TimelineId,
    /// The first WAL position of the child timeline; the parent's records at or after it are lost.
    pub switchpoint: Lsn,
    /// The free-text reason PostgreSQL wrote (e.g. `no recovery target specified`).
    pub reason: String,
}

/// The parsed history of one timeline: its ancestors, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimelineHistory {
    /// The timeline this history describes.
    pub timeline: TimelineId,
    /// Its ancestors, oldest first; empty for timeline 1.
    pub entries: Vec<TimelineEntry>,
}

/// The answer a cron job and an on-call engineer act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The former primary wrote nothing past the switchpoint: no committed data can be lost.
    NoLoss,
    /// The former primary wrote WAL past the switchpoint that the new primary never received.
    Loss,
    /// The former primary already follows the new timeline: any evidence of loss is gone.
    Rewound,
    /// The two servers belong to different clusters (different system identifiers).
    Unrelated,
    /// The question cannot be decided with what could be read (unreachable, missing privilege).
    Inconclusive,
}

/// Where the timelines forked and what the former primary wrote after the fork.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Divergence {
    /// The timeline the former primary is on (the one that holds the lost WAL).
    pub former_timeline: TimelineId,
    /// The new primary's current timeline.
    pub new_timeline: TimelineId,
    /// The first WAL position of the new primary's branch; the former's WAL from here on is lost.
    pub switchpoint_lsn: Option<Lsn>,
    /// The former primary's end of WAL, read once at the start of the run.
    pub former_end_lsn: Lsn,
    /// `max(0, former_end_lsn - switchpoint_lsn)`.
    pub lost_wal_bytes: u64,
    /// The new primary's timelines from the fork to now, e.g. `[1, 2, 3]` for two promotions.
    pub timeline_path: Vec<TimelineId>,
}

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

/// How one check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Something to act on: see `rows` and `remedy`.
    Finding,
    /// The SQL failed (not for lack of privilege): see `summary`.
    Error,
    /// Not run: a node it needs is not connected, or the role lacks a privilege.
    Skipped,
    /// Nothing to report.
    Ok,
}

/// Which nodes a check queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunsOn {
    /// Only the new primary.
    New,
    /// Only the former primary.
    Former,
    /// Both nodes.
    Both,
}

/// What one check found, for the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckResult {
    /// The check's id.
    pub id: String,
    /// The check's title.
    pub title: String,
    /// The check's severity; a check skipped for lack of privilege is at most `warning`.
    pub severity: Severity,
    /// How it ended.
    pub status: CheckStatus,
    /// One line: what was found, or why it did not run.
    pub summary: String,
    /// Which nodes it queries.
    pub runs_on: RunsOn,
    /// The order of the columns in `rows`.
    #[serde(default)]
    pub columns: Vec<String>,
    /// The offending rows (or, for `side_by_side`, every compared row), at most
    /// [`MAX_RESULT_ROWS`].
    #[serde(default)]
    pub rows: Vec<BTreeMap<String, serde_json::Value>>,
    /// How many rows there were before the cap.
    #[serde(default)]
    pub rows_total: usize,
    /// What to do about a finding (or, when skipped for privilege, the grant that enables it).
    pub remedy: String,
    /// `builtin`, or the user file that defined the check.
    pub origin: String,
    /// True when a user file replaced the built-in check with this id.
    #[serde(default)]
    pub overrides_builtin: bool,
}

/// One member of the cluster as `/cluster` describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PatroniMember {
    /// The member's name (Patroni's `name`).
    pub name: String,
    /// `leader`, `replica`, `sync_standby`, `quorum_standby`, `standby_leader`, ...
    pub role: String,
    /// `running`, `streaming`, `stopped`, `starting`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// PostgreSQL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// PostgreSQL's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The member's own REST API (`.../patroni`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// The member's timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    /// The member's WAL position (`lsn`, else `replay_lsn`, else `receive_lsn`); none for a leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<Lsn>,
    /// The lag Patroni computed (bytes, or `unknown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<String>,
}

/// One promotion in `/history`: `[parent_tl, switchpoint, reason, timestamp, new_leader]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PatroniHistoryEntry {
    /// The timeline that ended.
    pub parent_timeline: u32,
    /// Where it ended (Patroni sends it as an integer).
    pub switchpoint_lsn: Lsn,
    /// PostgreSQL's reason line from the `.history` file.
    pub reason: String,
    /// When Patroni recorded the promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The member promoted (Patroni 2.1+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_leader: Option<String>,
}

/// The report's `patroni` section: where the nodes came from and the promotion Patroni logged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PatroniSection {
    /// The REST URLs that answered.
    pub urls: Vec<String>,
    /// The URLs that did not, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unanswered: Vec<String>,
    /// The cluster's name (`scope`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The member compared as the new primary (none when `--new-primary` named it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_primary: Option<String>,
    /// The member compared as the former primary (none when a flag named it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub former_primary: Option<String>,
    /// How the former primary was chosen, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub former_primary_rule: Option<String>,
    /// The last promotion in `/history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PatroniHistoryEntry>,
    /// Every promotion in `/history`, oldest first.
    #[serde(default)]
    pub history: Vec<PatroniHistoryEntry>,
    /// The members as `/cluster` listed them.
    pub members: Vec<PatroniMember>,
}

/// The HA manager a discovery came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryManager {
    /// Patroni (`--patroni`).
    Patroni,
    /// repmgr (`--repmgr`).
    Repmgr,
    /// pg_auto_failover (`--pg-auto-failover`).
    PgAutoFailover,
    /// CloudNativePG (`--cnpg-status`).
    Cnpg,
}

/// A member's role, reduced to what the tool acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryRole {
    /// The manager's current primary.
    Primary,
    /// A standby.
    Standby,
    /// A primary the manager demoted or marked failed.
    Demoted,
    /// A witness without data of its own.
    Witness,
    /// Anything else (see `manager_role`).
    Other,
}

/// One member as the HA manager describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DiscoveryMember {
    /// The member's name in the manager (node name, pod name).
    pub name: String,
    /// The role, reduced.
    pub role: DiscoveryRole,
    /// The manager's own word for the role and state.
    pub manager_role: String,
    /// Health as the manager (or a probe of the server) reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// PostgreSQL's host, when the manager records one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// PostgreSQL's port, when the manager records one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The timeline as the manager last saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    /// The WAL position as the manager last saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<Lsn>,
    /// The member it replicates from, when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

/// Promotion or demotion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryEventKind {
    /// A member became primary.
    Promotion,
    /// A primary was demoted or told to step down.
    Demotion,
}

/// A promotion or demotion the manager recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DiscoveryEvent {
    /// Promotion or demotion.
    pub kind: DiscoveryEventKind,
    /// When the manager recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The member promoted or demoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// For a promotion: the timeline it started, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    /// The WAL position recorded with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<Lsn>,
    /// The manager's own description.
    pub detail: String,
}

/// The report's `discovery` section, the same for every HA manager.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DiscoverySection {
    /// The manager.
    pub manager: DiscoveryManager,
    /// Where its records were read (a redacted conninfo, a file, URLs).
    pub source: String,
    /// The cluster's name in the manager, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The member compared as the new primary (none when a flag named it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_primary: Option<String>,
    /// The member compared as the former primary (none when a flag named it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub former_primary: Option<String>,
    /// How the former primary was chosen, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub former_primary_rule: Option<String>,
    /// The members, as the manager lists them.
    pub members: Vec<DiscoveryMember>,
    /// The promotions and demotions the manager recorded, oldest first.
    #[serde(default)]
    pub events: Vec<DiscoveryEvent>,
    /// Members whose own records could not be read, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unanswered: Vec<String>,
    /// What the manager's records do not tell, and what to do about it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What kind of downstream consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerKind {
    /// A logical replication slot: a subscription, a CDC connector, `pg_recvlogical`.
    LogicalSlot,
    /// A physical replication slot (a standby or `pg_receivewal` streaming through it).
    PhysicalSlot,
    /// A physical walsender without a slot: a standby or `pg_receivewal`.
    PhysicalSender,
}

/// The lost transactions one consumer received.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReceivedLost {
    /// Lost transactions it confirmed (commit LSN below its confirmed position); for a logical
    /// slot only those of its database with row changes in user tables.
    pub transactions: u64,
    /// Lost transactions sent to it but not confirmed yet: it may hold them too.
    pub sent_unconfirmed: u64,
    /// False when some lost transactions left out of the report lie below its position:
    /// `transactions` is then a lower bound.
    pub exact: bool,
    /// The smallest xid received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_xid: Option<Xid>,
    /// The largest xid received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_xid: Option<Xid>,
    /// The commit LSN of the last lost transaction received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_commit_lsn: Option<Lsn>,
    /// The tables those transactions changed.
    pub tables: Vec<String>,
    /// Row changes in user tables in them.
    pub row_changes: u64,
}

/// One consumer of the former primary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DownstreamConsumer {
    /// What it is.
    pub kind: ConsumerKind,
    /// The slot name, else the walsender's `application_name`.
    pub name: String,
    /// The replication slot, when it uses one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_name: Option<String>,
    /// The output plugin of a logical slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// The database of a logical slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Whether a consumer is connected now.
    pub active: bool,
    /// The connected walsender's `application_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_name: Option<String>,
    /// The connected client's `address:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// How far it confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_lsn: Option<Lsn>,
    /// Which column `confirmed_lsn` came from: `confirmed_flush_lsn`, `restart_lsn`, `flush_lsn`.
    pub confirmed_from: String,
    /// The walsender's `sent_lsn`, when connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_lsn: Option<Lsn>,
    /// Bytes of WAL past the switchpoint it was sent or confirmed.
    pub wal_past_switchpoint: u64,
    /// The lost transactions it received, when the lost WAL was decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<ReceivedLost>,
}

/// The report's `downstream` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Downstream {
    /// The switchpoint the positions are compared with.
    pub switchpoint: Lsn,
    /// Every slot and walsender of the former primary.
    pub consumers: Vec<DownstreamConsumer>,
    /// Why the consumers could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_examined: Option<String>,
}

// ---- conversions from the internal types

impl Wire for crate::downstream::ConsumerKind {
    type Out = ConsumerKind;
    fn wire(&self) -> ConsumerKind {
        match self {
            crate::downstream::ConsumerKind::LogicalSlot => ConsumerKind::LogicalSlot,
            crate::downstream::ConsumerKind::PhysicalSlot => ConsumerKind::PhysicalSlot,
            crate::downstream::ConsumerKind::PhysicalSender => ConsumerKind::PhysicalSender,
        }
    }
}

impl Wire for crate::downstream::ReceivedLost {
    type Out = ReceivedLost;
    fn wire(&self) -> ReceivedLost {
        ReceivedLost {
            transactions: self.transactions.wire(),
            sent_unconfirmed: self.sent_unconfirmed.wire(),
            exact: self.exact.wire(),
            first_xid: self.first_xid.wire(),
            last_xid: self.last_xid.wire(),
            last_commit_lsn: self.last_commit_lsn.wire(),
            tables: self.tables.wire(),
            row_changes: self.row_changes.wire(),
        }
    }
}

impl Wire for crate::downstream::Consumer {
    type Out = DownstreamConsumer;
    fn wire(&self) -> DownstreamConsumer {
        DownstreamConsumer {
            kind: self.kind.wire(),
            name: self.name.wire(),
            slot_name: self.slot_name.wire(),
            plugin: self.plugin.wire(),
            database: self.database.wire(),
            active: self.active.wire(),
            application_name: self.application_name.wire(),
            client: self.client.wire(),
            confirmed_lsn: self.confirmed_lsn.wire(),
            confirmed_from: self.confirmed_from.wire(),
            sent_lsn: self.sent_lsn.wire(),
            wal_past_switchpoint: self.wal_past_switchpoint.wire(),
            received: self.received.wire(),
        }
    }
}

impl Wire for crate::downstream::Downstream {
    type Out = Downstream;
    fn wire(&self) -> Downstream {
        Downstream {
            switchpoint: self.switchpoint.wire(),
            consumers: self.consumers.wire(),
            not_examined: self.not_examined.wire(),
        }
    }
}

impl Wire for crate::report::NodeSection {
    type Out = NodeSection;
    fn wire(&self) -> NodeSection {
        NodeSection {
            target: self.target.wire(),
            facts: self.facts.wire(),
            error: self.error.wire(),
            host_choice: self.host_choice.as_ref().map(|c| HostChoice {
                hosts: c.hosts.clone(),
                target_session_attrs: c.target_session_attrs.clone(),
                load_balanced: c.load_balanced,
                reached: c.reached.clone(),
                reason: c.reason.clone(),
                skipped: c
                    .skipped
                    .iter()
                    .map(|s| SkippedHost {
                        target: s.target.clone(),
                        why: s.why.clone(),
                    })
                    .collect(),
            }),
        }
    }
}

impl Wire for crate::node::HistorySource {
    type Out = HistorySource;
    fn wire(&self) -> HistorySource {
        match self {
            crate::node::HistorySource::NotNeeded => HistorySource::NotNeeded,
            crate::node::HistorySource::Replication => HistorySource::Replication,
            crate::node::HistorySource::PgReadFile => HistorySource::PgReadFile,
            crate::node::HistorySource::Unavailable => HistorySource::Unavailable,
        }
    }
}

impl Wire for crate::node::NodeFacts {
    type Out = NodeFacts;
    fn wire(&self) -> NodeFacts {
        NodeFacts {
            server_version: self.server_version.wire(),
            server_version_num: self.server_version_num.wire(),
            system_identifier: self.system_identifier.wire(),
            in_recovery: self.in_recovery.wire(),
            timeline: self.timeline.wire(),
            timeline_source: self.timeline_source.wire(),
            insert_lsn: self.insert_lsn.wire(),
            current_lsn: self.current_lsn.wire(),
            receive_lsn: self.receive_lsn.wire(),
            replay_lsn: self.replay_lsn.wire(),
            end_of_wal: self.end_of_wal.wire(),
            checkpoint_lsn: self.checkpoint_lsn.wire(),
            redo_lsn: self.redo_lsn.wire(),
            checkpoint_timeline: self.checkpoint_timeline.wire(),
            wal_segment_size: self.wal_segment_size.wire(),
            postmaster_start_time: self.postmaster_start_time.wire(),
            port: self.port.wire(),
            history: self.history.wire(),
            history_source: self.history_source.wire(),
            history_problem: self.history_problem.wire(),
            can_replicate: self.can_replicate.wire(),
            read_at: self.read_at.wire(),
        }
    }
}

impl Wire for crate::timeline::HistoryEntry {
    type Out = TimelineEntry;
    fn wire(&self) -> TimelineEntry {
        TimelineEntry {
            parent: self.parent.wire(),
            switchpoint: self.switchpoint.wire(),
            reason: self.reason.wire(),
        }
    }
}

impl Wire for crate::timeline::TimelineHistory {
    type Out = TimelineHistory;
    fn wire(&self) -> TimelineHistory {
        TimelineHistory {
            timeline: self.timeline.wire(),
            entries: self.entries.wire(),
        }
    }
}

impl Wire for crate::divergence::Verdict {
    type Out = Verdict;
    fn wire(&self) -> Verdict {
        match self {
            crate::divergence::Verdict::NoLoss => Verdict::NoLoss,
            crate::divergence::Verdict::Loss => Verdict::Loss,
            crate::divergence::Verdict::Rewound => Verdict::Rewound,
            crate::divergence::Verdict::Unrelated => Verdict::Unrelated,
            crate::divergence::Verdict::Inconclusive => Verdict::Inconclusive,
        }
    }
}

impl Wire for crate::divergence::Divergence {
    type Out = Divergence;
    fn wire(&self) -> Divergence {
        Divergence {
            former_timeline: self.former_timeline.wire(),
            new_timeline: self.new_timeline.wire(),
            switchpoint_lsn: self.switchpoint_lsn.wire(),
            former_end_lsn: self.former_end_lsn.wire(),
            lost_wal_bytes: self.lost_wal_bytes.wire(),
            timeline_path: self.timeline_path.wire(),
        }
    }
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

impl Wire for crate::checks::CheckStatus {
    type Out = CheckStatus;
    fn wire(&self) -> CheckStatus {
        match self {
            crate::checks::CheckStatus::Finding => CheckStatus::Finding,
            crate::checks::CheckStatus::Error => CheckStatus::Error,
            crate::checks::CheckStatus::Skipped => CheckStatus::Skipped,
            crate::checks::CheckStatus::Ok => CheckStatus::Ok,
        }
    }
}

impl Wire for crate::checks::RunsOn {
    type Out = RunsOn;
    fn wire(&self) -> RunsOn {
        match self {
            crate::checks::RunsOn::New => RunsOn::New,
            crate::checks::RunsOn::Former => RunsOn::Former,
            crate::checks::RunsOn::Both => RunsOn::Both,
        }
    }
}

impl Wire for crate::checks::CheckResult {
    type Out = CheckResult;
    fn wire(&self) -> CheckResult {
        CheckResult {
            id: self.id.wire(),
            title: self.title.wire(),
            severity: self.severity.wire(),
            status: self.status.wire(),
            summary: self.summary.wire(),
            runs_on: self.runs_on.wire(),
            columns: self.columns.wire(),
            rows: self.rows.wire(),
            rows_total: self.rows_total.wire(),
            remedy: self.remedy.wire(),
            origin: self.origin.wire(),
            overrides_builtin: self.overrides_builtin.wire(),
        }
    }
}

impl Wire for crate::patroni::Member {
    type Out = PatroniMember;
    fn wire(&self) -> PatroniMember {
        PatroniMember {
            name: self.name.wire(),
            role: self.role.wire(),
            state: self.state.wire(),
            host: self.host.wire(),
            port: self.port.wire(),
            api_url: self.api_url.wire(),
            timeline: self.timeline.wire(),
            lsn: self.lsn.wire(),
            lag: self.lag.wire(),
        }
    }
}

impl Wire for crate::patroni::HistoryEntry {
    type Out = PatroniHistoryEntry;
    fn wire(&self) -> PatroniHistoryEntry {
        PatroniHistoryEntry {
            parent_timeline: self.parent_timeline.wire(),
            switchpoint_lsn: self.switchpoint_lsn.wire(),
            reason: self.reason.wire(),
            timestamp: self.timestamp.wire(),
            new_leader: self.new_leader.wire(),
        }
    }
}

impl Wire for crate::patroni::PatroniSection {
    type Out = PatroniSection;
    fn wire(&self) -> PatroniSection {
        PatroniSection {
            urls: self.urls.wire(),
            unanswered: self.unanswered.wire(),
            scope: self.scope.wire(),
            new_primary: self.new_primary.wire(),
            former_primary: self.former_primary.wire(),
            former_primary_rule: self.former_primary_rule.wire(),
            promotion: self.promotion.wire(),
            history: self.history.wire(),
            members: self.members.wire(),
        }
    }
}

impl Wire for crate::discovery::Member {
    type Out = DiscoveryMember;
    fn wire(&self) -> DiscoveryMember {
        use crate::discovery::Role as R;
        DiscoveryMember {
            name: self.name.wire(),
            role: match self.role {
                R::Primary => DiscoveryRole::Primary,
                R::Standby => DiscoveryRole::Standby,
                R::Demoted => DiscoveryRole::Demoted,
                R::Witness => DiscoveryRole::Witness,
                R::Other => DiscoveryRole::Other,
            },
            manager_role: self.manager_role.wire(),
            state: self.state.wire(),
            host: self.host.wire(),
            port: self.port.wire(),
            timeline: self.timeline.wire(),
            lsn: self.lsn.wire(),
            upstream: self.upstream.wire(),
        }
    }
}

impl Wire for crate::discovery::Event {
    type Out = DiscoveryEvent;
    fn wire(&self) -> DiscoveryEvent {
        DiscoveryEvent {
            kind: match self.kind {
                crate::discovery::EventKind::Promotion => DiscoveryEventKind::Promotion,
                crate::discovery::EventKind::Demotion => DiscoveryEventKind::Demotion,
            },
            time: self.time.wire(),
            member: self.member.wire(),
            timeline: self.timeline.wire(),
            lsn: self.lsn.wire(),
            detail: self.detail.wire(),
        }
    }
}

impl Wire for crate::discovery::DiscoverySection {
    type Out = DiscoverySection;
    fn wire(&self) -> DiscoverySection {
        use crate::discovery::Manager as M;
        DiscoverySection {
            manager: match self.manager {
                M::Patroni => DiscoveryManager::Patroni,
                M::Repmgr => DiscoveryManager::Repmgr,
                M::PgAutoFailover => DiscoveryManager::PgAutoFailover,
                M::Cnpg => DiscoveryManager::Cnpg,
            },
            source: self.source.wire(),
            cluster: self.cluster.wire(),
            new_primary: self.new_primary.wire(),
            former_primary: self.former_primary.wire(),
            former_primary_rule: self.former_primary_rule.wire(),
            members: self.members.wire(),
            events: self.events.wire(),
            unanswered: self.unanswered.wire(),
            notes: self.notes.wire(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_schema_is_the_generated_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/report-v2.schema.json");
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(path, schema_json()).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == schema_json(),
            "docs/report-v2.schema.json is stale: run `UPDATE_DOCS=1 cargo test --lib report::v2` and commit it"
        );
    }
}
