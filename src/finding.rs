//! Findings: what a run found that the reader should know or do, with a closed set of identifiers.
//!
//! A leaf: every analysis produces [`Finding`]s and only the report renders them. Each
//! [`FindingId`] carries its severity, its one-line meaning and what to do
//! ([`FindingId::meaning`], [`FindingId::action`]); `docs/findings.md` is generated from them
//! ([`findings_page`]) and a test keeps the two equal.

use serde::{Deserialize, Serialize};

/// How much a finding matters.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Data was lost or is about to be destroyed.
    Critical,
    /// Part of the analysis could not run, or something needs attention.
    Warning,
    /// Context for the reader.
    Info,
}

impl Severity {
    /// The severity as it appears in reports: `critical`, `warning` or `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// What a finding says about the outcome of the run: folded with the verdict into the exit
/// code by one function (`commands::Exit::for_report`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Implies {
    /// Committed data was lost (or is in doubt): exit 1 whatever the verdict said.
    Loss,
    /// Context only: the exit code follows the verdict.
    Nothing,
}

macro_rules! finding_ids {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $sev:ident, $implies:ident,
        $meaning:literal, $action:literal; )*) => {
        /// Every finding the tool can report. The serde form is the snake_case name, which is
        /// stable: scripts match on it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[derive(schemars::JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum FindingId {
            $( $(#[$doc])* $variant, )*
        }

        impl FindingId {
            /// Every identifier, in documentation order.
            pub const ALL: &'static [FindingId] = &[ $( FindingId::$variant, )* ];

            /// The stable name, e.g. `lost_rows`.
            pub fn as_str(self) -> &'static str {
                match self { $( FindingId::$variant => $name, )* }
            }

            /// How much it matters.
            pub fn severity(self) -> Severity {
                match self { $( FindingId::$variant => Severity::$sev, )* }
            }

            /// What it says about the outcome, for the exit code.
            pub fn implies(self) -> Implies {
                match self { $( FindingId::$variant => Implies::$implies, )* }
            }

            /// What it means, in one line.
            pub fn meaning(self) -> &'static str {
                match self { $( FindingId::$variant => $meaning, )* }
            }

            /// What the reader should do.
            pub fn action(self) -> &'static str {
                match self { $( FindingId::$variant => $action, )* }
            }
        }
    };
}

finding_ids! {
    // ---- compare: the loss itself
    /// The former primary holds the only copy of the lost WAL.
    KeepEvidence = "keep_evidence", Critical, Loss,
        "The former primary wrote WAL after the switchpoint that the new primary does not have.",
        "Keep the former primary away from pg_rewind, reinit and HA rejoin until the lost transactions are accounted for.";
    /// Rows that exist only on the former primary, or changed on both sides.
    LostRows = "lost_rows", Critical, Loss,
        "Rows were inserted, updated or deleted on the former primary only, or changed on both sides (conflicts).",
        "Review the CSV and the recovery script of --export-dir, then apply what should be kept to the new primary.";
    /// Prepared transactions the new primary does not know.
    PreparedInDoubt = "prepared_in_doubt", Critical, Loss,
        "Transactions were PREPAREd on the former primary after the switchpoint and are unknown to the new primary.",
        "Tell the transaction manager that these GIDs were not prepared on the new primary.";
    /// Tables that exist only on the former primary.
    TablesOnlyOnFormer = "tables_only_on_former", Critical, Loss,
        "Tables exist only on the former primary (created by lost transactions?); their rows are not in the row counts.",
        "Recreate them on the new primary from the former primary (pg_dump --schema-only -t TABLE, then their rows) before re-applying lost rows.";
    /// Lost transactions changed the schema.
    LostDdl = "lost_ddl", Warning, Nothing,
        "Lost transactions changed the schema (created, altered or dropped relations).",
        "Re-create those schema changes on the new primary before re-applying lost rows.";
    /// Lost DDL that could not be named by relation.
    LostDdlUnnamed = "lost_ddl_unnamed", Warning, Nothing,
        "Some lost DDL could not be named by relation (the former primary's catalogs could not be read).",
        "Run compare with the former primary reachable (isolated as a standby) to name them, or read the lost commits' dropped files with pg_waldump.";
    /// Sequences moved on the former primary after the switchpoint.
    SequencesAdvanced = "sequences_advanced", Warning, Nothing,
        "Sequences advanced on the former primary after the switchpoint.",
        "Advance them on the new primary (setval) past the former primary's values before re-applying lost rows.";
    /// pg_walinspect counts differently from the decoder.
    WalinspectDisagrees = "walinspect_disagrees", Warning, Nothing,
        "pg_walinspect counts a different number of commits in the same WAL range than the decoder.",
        "Report it as a bug with both counts; trust neither count until it is understood.";
    /// The report lists only the first and last lost transactions.
    LostXidsAbridged = "lost_xids_abridged", Info, Nothing,
        "The report lists only the first and the last 100 lost transactions; the counts are complete.",
        "Open the file the message names, or re-run with --lost-xids-file PATH (wal) or --export-dir DIR (compare) to get every lost transaction.";
    /// The complete list of lost transactions could not be written.
    LostXidsFileFailed = "lost_xids_file_failed", Warning, Nothing,
        "The complete list of lost transactions could not be written.",
        "Free space or fix the directory's permissions, or name another file, and run again.";
    /// The WAL read does not cover the whole lost range.
    WalCoverageIncomplete = "wal_coverage_incomplete", Critical, Nothing,
        "The WAL sources cover the lost range only in part: the counts are a lower bound (a loss stays a loss; nothing found is inconclusive, not no loss), and the uncovered range and its segments are named.",
        "Find the missing segments (the former primary's pg_wal, files still .ready, another archive copy) and pass them with --former-wal-dir alongside the archive.";
    /// Two sources disagree about the same WAL bytes.
    WalSourcesDisagree = "wal_sources_disagree", Warning, Nothing,
        "Two WAL sources hold different bytes for the same segment where both are valid; the message says which copy was used.",
        "Keep only the copy that belongs to the former primary, and run again.";
    /// An archived history file contradicts a server's.
    HistoryDisagrees = "history_disagrees", Warning, Nothing,
        "A timeline history file from the archive contradicts the server's; the server's was used.",
        "Check the archive's path or stanza (another cluster?), or a reused timeline id.";
    /// The former primary was rewound: its lost WAL came from the archive.
    FormerRewoundArchiveRead = "former_rewound_archive_read", Info, Nothing,
        "The former primary already follows the new timeline, so its lost WAL was read from the archive.",
        "Nothing.";
    /// Reading the live former's WAL failed; the archive was tried next.
    WalSourceFailed = "wal_source_failed", Info, Nothing,
        "Reading the live former primary's WAL failed, so the next source (the archive) was tried.",
        "Nothing if a later source read it; otherwise see wal_unreadable.";
    /// A limit of the WAL accounting.
    WalCaveat = "wal_caveat", Info, Nothing,
        "A limit of the WAL accounting that the reader should know.",
        "Read the message; it names what was not counted and why.";

    // ---- compare: what could not be read
    /// The former primary could not be reached.
    FormerUnreachable = "former_unreachable", Warning, Nothing,
        "The former primary could not be read, so whether it wrote WAL past the switchpoint is unknown.",
        "Start the former primary isolated (a standby with no upstream), pass the right conninfo, or pass its WAL with --former-wal-dir.";
    /// The divergent WAL could not be read.
    WalUnreadable = "wal_unreadable", Warning, Nothing,
        "The former timeline's WAL could not be read, so the lost transactions were not counted.",
        "Give the role the REPLICATION attribute or EXECUTE on pg_read_binary_file, or copy the former primary's pg_wal and pass --former-wal-dir.";
    /// Streaming the WAL failed and another way was used.
    WalReplicationFailed = "wal_replication_failed", Info, Nothing,
        "Streaming the former timeline's WAL over replication failed; another way of reading it was tried.",
        "Nothing if the WAL was read another way; otherwise see wal_unreadable.";
    /// A timeline history file could not be read.
    HistoryUnreadable = "history_unreadable", Warning, Nothing,
        "A node's timeline history could not be read.",
        "Give the role the REPLICATION attribute (plus a pg_hba.conf replication line), or EXECUTE on pg_read_file.";
    /// A replication connection could not be opened.
    ReplicationUnavailable = "replication_unavailable", Info, Nothing,
        "A replication connection was not used; SQL was used instead.",
        "Nothing, unless a later finding says something could not be read.";

    // ---- compare: the row diff
    /// The row diff could not run.
    TablesFailed = "tables_failed", Warning, Nothing,
        "The row diff could not run.",
        "Grant SELECT on the compared tables (e.g. pg_read_all_data), or skip the row diff with --no-tables.";
    /// Differing rows that fit no rule.
    UnexplainedRows = "unexplained_rows", Warning, Nothing,
        "Differing rows fit no rule: neither a lost write nor a post-failover write.",
        "Look at the rows in the report; they may be writes the WAL accounting did not see.";
    /// Differing rows that could not be attributed.
    UnattributedRows = "unattributed_rows", Warning, Nothing,
        "Differing rows could not be attributed because the lost transactions were not decoded.",
        "Give the role access to the former primary's WAL (see wal_unreadable) to tell lost writes from post-failover ones.";
    /// A database with lost changes that was not row-compared.
    DatabaseNotCompared = "database_not_compared", Warning, Nothing,
        "A database holds lost changes but its rows were not compared (no CONNECT privilege, or it is gone on one side).",
        "Run the command in the hint (compare with that database's conninfo), or grant CONNECT on it to the role.";
    /// The databases the lost WAL wrote in are unknown.
    DatabasesUnknown = "databases_unknown", Warning, Nothing,
        "The lost WAL was not decoded, so the databases it wrote in are unknown: only the conninfo's database was row-compared.",
        "Re-run with --all-databases, or make the lost WAL readable (see wal_unreadable).";
    /// A note of the row diff.
    TablesNote = "tables_note", Info, Nothing,
        "A note of the row diff: how a table was compared, or what was left out.",
        "Read the message; it names the table and the command to compare it.";
    /// The row-level report was rebuilt from the WAL.
    RowsFromWal = "rows_from_wal", Info, Nothing,
        "The former primary was not read: the lost rows were rebuilt from its decoded WAL and checked against the new primary by primary key.",
        "Nothing; each row says where its image came from (WAL record, full-page image, logged old tuple, new-primary pre-image).";
    /// Lost row versions whose image could not be rebuilt from the WAL.
    WalRowsNotExamined = "wal_rows_not_examined", Critical, Loss,
        "Row versions written or deleted by lost transactions could not be rebuilt from the WAL; they are counted and named by table and ctid, not listed with their values.",
        "Read the reason per row in the report; start the former primary isolated (as a standby with no upstream) and compare with --former-primary to list them.";
    /// The lost rows were counted per table, not listed: more row versions than the limit.
    RowsNotCompared = "rows_not_compared", Critical, Loss,
        "The lost transactions changed more row versions than --max-lost-rows: they are counted per table (exact), not compared or listed row by row.",
        "Re-run compare with --max-lost-rows unlimited --export-dir DIR to list every lost row (memory and time grow with the rows: up to about 5 kB per row version).";
    /// The rows decoded from the WAL differ from the rows read from the former primary.
    WalRowsDisagree = "wal_rows_disagree", Warning, Nothing,
        "The lost rows rebuilt from the WAL differ from those read from the running former primary: the two independent paths disagree.",
        "Trust the rows read from the former primary; keep the evidence (--evidence-dir) and report the rows named in the message.";
    /// A table's descriptor changed after the switchpoint.
    DescriptorDrift = "descriptor_drift", Warning, Nothing,
        "A table's columns changed after the switchpoint (lost DDL, or ALTER TABLE on the new primary), so its lost tuples were not decoded with the new primary's descriptor.",
        "Compare with the former primary reachable (isolated as a standby), or decode by hand with the descriptor as of the switchpoint.";

    // ---- evidence bundles
    /// An evidence bundle was written.
    EvidenceBundle = "evidence_bundle", Info, Nothing,
        "The evidence bundle was written (reports, the lost range's WAL, histories, node facts, SHA256SUMS).",
        "Check it with `sha256sum -c SHA256SUMS` in its directory; re-analyse it later with compare --from-evidence.";
    /// The report was re-analysed from a bundle.
    FromEvidence = "from_evidence", Info, Nothing,
        "The report was re-analysed from an evidence bundle whose files all matched SHA256SUMS; no former primary was read.",
        "Nothing; the row diff was not re-run: the bundle's report.json holds the live run's.";
    /// The live new primary still forks where the bundle says.
    EvidenceDivergenceConfirmed = "evidence_divergence_confirmed", Info, Nothing,
        "The live new primary's timeline history still forks where the evidence bundle says.",
        "Nothing.";
    /// The live new primary does not show the bundle's fork.
    EvidenceDivergenceMismatch = "evidence_divergence_mismatch", Warning, Nothing,
        "The live new primary's history does not show the bundle's fork, or could not be read.",
        "Check that the bundle belongs to this failover and this new primary.";
    /// A sequence on the new primary is behind the lost WAL's value.
    SequenceBehindLost = "sequence_behind_lost", Warning, Nothing,
        "A sequence on the new primary is below the value the lost WAL logged for it.",
        "Run the setval in the hint before re-applying lost rows.";
    /// A lost sequence could not be read on the new primary.
    SequenceUnchecked = "sequence_unchecked", Info, Nothing,
        "A sequence advanced by lost transactions could not be read on the new primary.",
        "Grant the role SELECT on it, or check it by hand.";

    // ---- Patroni
    /// Patroni cannot tell the former primary apart.
    PatroniFormerAmbiguous = "patroni_former_ambiguous", Warning, Nothing,
        "Several Patroni members stayed on the old timeline with the same WAL; one was compared.",
        "Name the former leader with --former-primary.";
    /// Patroni URLs that did not answer.
    PatroniUnanswered = "patroni_unanswered", Info, Nothing,
        "Some Patroni REST URLs did not answer.",
        "Nothing if discovery succeeded through another URL.";
    /// Patroni's history disagrees with the nodes'.
    PatroniHistoryDisagrees = "patroni_history_disagrees", Warning, Nothing,
        "Patroni's last promotion is not the fork the compared nodes show.",
        "Check that the compared nodes are the ones Patroni promoted and demoted.";

    // ---- repmgr, pg_auto_failover, CloudNativePG discovery
    /// The HA manager's records fit several members as the former primary.
    DiscoveryFormerAmbiguous = "discovery_former_ambiguous", Warning, Nothing,
        "The HA manager's records fit several members as the former primary; one was compared.",
        "Name the former primary with --former-primary.";
    /// Members whose own records or server could not be read during discovery.
    DiscoveryUnanswered = "discovery_unanswered", Warning, Nothing,
        "Some members listed by the HA manager could not be reached during discovery.",
        "Check the unreachable members by hand with `cluster --node CONNINFO`; they were not examined.";

    // ---- cluster
    /// The primary is in recovery.
    PrimaryInRecovery = "primary_in_recovery", Warning, Nothing,
        "The node given as primary is in recovery (a standby): there may have been a failover.",
        "Point --primary at the current primary, and compare the old one with failover-verify compare.";
    /// pg_stat_replication could not be read.
    ReplicationUnreadable = "replication_unreadable", Warning, Nothing,
        "pg_stat_replication or pg_replication_slots could not be read on the primary.",
        "GRANT pg_monitor TO the role.";
    /// Standby positions are hidden from the role.
    ReplicationColumnsHidden = "replication_columns_hidden", Warning, Nothing,
        "The WAL positions of some standbys are hidden from this role, so their lag is unknown.",
        "GRANT pg_monitor TO the role.";
    /// No standby streams from the primary.
    NoStandbys = "no_standbys", Info, Nothing,
        "No standby is streaming from the primary.",
        "Nothing if that is expected; otherwise find out where the standbys went.";
    /// An inactive replication slot.
    InactiveSlot = "inactive_slot", Warning, Nothing,
        "A replication slot is inactive: the node that used it no longer streams.",
        "Find out where that node went (a former primary? keep it isolated until checked); drop the slot if it is gone for good.";
    /// A node diverged from the primary's history.
    DivergedNode = "diverged_node", Critical, Loss,
        "A node left the primary's timeline history with WAL of its own: it holds WAL the primary never received.",
        "Do not rewind, reinitialise or rejoin it; run failover-verify compare against it to list the lost transactions.";
    /// A node could not be read.
    NodeUnreadable = "node_unreadable", Warning, Nothing,
        "A node given with --node could not be connected to or read.",
        "Check the connection string and the role's privileges.";
    /// A node of another cluster.
    NodeUnrelated = "node_unrelated", Warning, Nothing,
        "A node belongs to another cluster (another system identifier).",
        "Check the --node connection string.";
    /// A node that could not be placed.
    NodeUndecided = "node_undecided", Warning, Nothing,
        "A node's position relative to the primary's history could not be decided.",
        "Read the message; it says what was missing.";
    /// Two nodes wrote past the point where their timelines fork.
    SplitBrain = "split_brain", Critical, Loss,
        "Split brain: two nodes accept writes at once, or were both promoted from one timeline and each wrote past the fork; each side holds writes the other lacks.",
        "Stop writes on all but one side now (fence it), then run failover-verify compare between the sides to list what each wrote.";
    /// A standby streams from a node that is not on the current timeline.
    UpstreamOffTimeline = "upstream_off_timeline", Warning, Nothing,
        "A standby follows an upstream that is not on the current primary's timeline: it replays WAL the current primary does not have, or none at all.",
        "Point its primary_conninfo at the current primary (after checking what it received), or keep it as a copy of the evidence.";
    /// A downstream consumer already received lost transactions.
    DownstreamReceivedLost = "downstream_received_lost", Critical, Loss,
        "A downstream consumer of the former primary (a logical subscription, CDC connector, pg_recvlogical) already received lost transactions: that system now holds data the database lost.",
        "Reconcile that consumer with the new primary (the listed xids); do not drop its slot on the former primary until then.";
    /// Physical WAL past the switchpoint reached another server or archive.
    WalShippedPastSwitchpoint = "wal_shipped_past_switchpoint", Warning, Nothing,
        "A physical standby, pg_receivewal or physical slot received the former primary's WAL past the switchpoint: another copy of the lost WAL exists there.",
        "Keep that copy as evidence; that standby cannot follow the new primary without a rewind, which would destroy it.";
    /// The consumers of the former primary could not be examined.
    DownstreamNotExamined = "downstream_not_examined", Warning, Nothing,
        "The former primary's replication slots and senders could not be read: downstream consumers that may hold lost transactions were not examined.",
        "Run SELECT * FROM pg_replication_slots and SELECT * FROM pg_stat_replication on the former primary (GRANT pg_monitor TO the role).";
    /// Patroni rewinds diverged nodes and nothing keeps their lost WAL.
    PatroniRewindWithoutArchive = "patroni_rewind_without_archive", Warning, Nothing,
        "use_pg_rewind is on and WAL archiving is off: after a lossy failover pg_rewind erases the only copy of the lost commits (unless rewind-guard is installed).",
        "Install `failover-verify rewind-guard` as postgresql.bin_name.pg_rewind on every member (README, \"The rewind guard\"), and turn on archive_mode with an archive_command.";
    /// Patroni deletes the data directory when pg_rewind fails.
    PatroniRemovesDataOnRewindFailure = "patroni_removes_data_on_rewind_failure", Warning, Nothing,
        "remove_data_directory_on_rewind_failure is on: a failed (or held) pg_rewind deletes the former primary's data directory and its lost WAL.",
        "Set postgresql.remove_data_directory_on_rewind_failure: false (patronictl edit-config), so a failed rewind leaves the node stopped for inspection.";
    /// Patroni deletes the data directory of a diverged node it cannot rewind.
    PatroniRemovesDataOnDivergedTimelines = "patroni_removes_data_on_diverged_timelines", Warning, Nothing,
        "remove_data_directory_on_diverged_timelines is on: a diverged former primary that cannot be rewound, or whose rewind fails, is deleted and re-cloned.",
        "Set postgresql.remove_data_directory_on_diverged_timelines: false (patronictl edit-config).";
    /// The primary does not archive WAL.
    ArchiveModeOff = "archive_mode_off", Warning, Nothing,
        "archive_mode is off on the primary: a former primary's lost WAL exists only in its own pg_wal, until a rewind or re-clone replaces it.",
        "Set archive_mode = on and an archive_command (or pgBackRest / WAL-G) in Patroni's postgresql.parameters, then restart the members.";
    /// Patroni may promote a replica that is far behind.
    PatroniFailoverLagAllowed = "patroni_failover_lag_allowed", Warning, Nothing,
        "Patroni may promote a replica that is far behind: synchronous_mode off or not strict, or a large maximum_lag_on_failover.",
        "Set synchronous_mode: true with synchronous_mode_strict: true, and keep maximum_lag_on_failover small (patronictl edit-config).";
    /// The Patroni configuration audit could not run.
    PatroniAuditIncomplete = "patroni_audit_incomplete", Warning, Nothing,
        "Patroni's dynamic configuration (GET /config) could not be read, so the settings that destroy evidence were not audited.",
        "Check that GET /config answers on a --patroni URL, or run `patronictl show-config` and compare it with the README's safe settings.";
}

impl std::fmt::Display for FindingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A note for the reader: what was found and what to do about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Finding {
    /// How much it matters (the identifier's severity).
    pub severity: Severity,
    /// The stable identifier.
    pub id: FindingId,
    /// What was found, in this run.
    pub message: String,
    /// What to do about it, in this run (more specific than [`FindingId::action`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Finding {
    /// A finding with the identifier's severity and no hint.
    pub fn new(id: FindingId, message: impl Into<String>) -> Finding {
        Finding {
            severity: id.severity(),
            id,
            message: message.into(),
            hint: None,
        }
    }

    /// The same finding with a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Finding {
        self.hint = Some(hint.into());
        self
    }

    /// The same finding with an optional hint.
    pub fn with_hint_opt(mut self, hint: Option<String>) -> Finding {
        self.hint = hint;
        self
    }
}

/// The Markdown page `docs/findings.md`: every identifier with its severity, meaning and action.
pub fn findings_page() -> String {
    let mut s = String::from(
        "# Findings\n\n\
         Every finding the reports can carry (`findings[].id` in the JSON). Generated from\n\
         `src/finding.rs` (`UPDATE_DOCS=1 cargo test --lib finding` rewrites it); a test keeps this\n\
         page equal to the code. A run's own finding adds a `message` and, often, a more specific `hint`.\n\n\
         `exit` says what the finding does to the exit code: `loss` makes it 1 whatever the\n\
         verdict; `-` leaves it to the verdict (0 no loss, 1 loss, 2 undecided).\n\n\
         | id | severity | exit | meaning | what to do |\n|---|---|---|---|---|\n",
    );
    for id in FindingId::ALL {
        let implies = match id.implies() {
            Implies::Loss => "loss",
            Implies::Nothing => "-",
        };
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            id.as_str(),
            id.severity().as_str(),
            implies,
            id.meaning(),
            id.action()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_match_serde() {
        let mut seen = std::collections::BTreeSet::new();
        for id in FindingId::ALL {
            assert!(seen.insert(id.as_str()), "duplicate {}", id.as_str());
            let json = serde_json::to_string(id).unwrap();
            assert_eq!(json, format!("\"{}\"", id.as_str()));
            let back: FindingId = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *id);
        }
    }

    #[test]
    fn the_docs_page_is_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/findings.md");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(path, findings_page()).unwrap();
            return;
        }
        assert!(
            committed == findings_page(),
            "docs/findings.md is stale: run `UPDATE_DOCS=1 cargo test --lib finding` and commit it"
        );
    }
}
