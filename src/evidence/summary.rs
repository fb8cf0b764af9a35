//! The accountant's figures turned into the report's `transactions` section (names, databases,
//! tables, sequences).

use super::lostlist;
use super::model::{
    DatabaseLoss, InDoubtTx, LostXid, MinuteLoss, SequenceLoss, TableLoss, Transactions,
};
use super::names::RelName;
use super::scan::{self, Scan};
use crate::wal::RelFileLocator;
use std::collections::BTreeMap;

/// Turns the accounting into the report section, with names where they are known.
pub(super) fn summarize(
    scan: &Scan,
    label: &str,
    names: &BTreeMap<RelFileLocator, RelName>,
    databases: &BTreeMap<u32, String>,
    caveats: Vec<String>,
) -> Transactions {
    let lost = &scan.lost;
    let ts = |t: Option<crate::wal::xact::PgTimestamp>| {
        t.and_then(|t| t.to_offset_date_time()).and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
    };
    let db_name = |db: Option<u32>| db.and_then(|d| databases.get(&d).cloned());

    // Per database: the commits from the accounting, the rows from the tables below.
    let mut dbs: BTreeMap<Option<u32>, DatabaseLoss> = lost
        .databases
        .iter()
        .map(|d| {
            (
                d.db_id,
                DatabaseLoss {
                    database: db_name(d.db_id),
                    database_oid: d.db_id,
                    commits: d.commits,
                    inserts: 0,
                    updates: 0,
                    hot_updates: 0,
                    deletes: 0,
                    truncates: 0,
                },
            )
        })
        .collect();

    // Per table: TOAST and the table itself merge under the owner's name.
    let mut tables: BTreeMap<(Option<String>, String), TableLoss> = BTreeMap::new();
    for t in &lost.tables {
        let mut name = names.get(&t.rel).cloned().unwrap_or_else(|| RelName {
            kind: "unknown".into(),
            ..RelName::default()
        });
        if name.kind == "unknown" && is_catalog_file(&t.rel) {
            name.kind = "catalog".into();
        }
        let key_name = name.table.clone().unwrap_or_else(|| t.rel.to_string());
        let database = name
            .database
            .clone()
            .or_else(|| (t.rel.db != 0).then(|| db_name(Some(t.rel.db))).flatten());
        let e = tables
            .entry((database.clone(), key_name))
            .or_insert_with(|| TableLoss {
                database: database.clone(),
                table: name.table.clone(),
                kind: if name.kind == "toast" {
                    "table".into()
                } else {
                    name.kind.clone()
                },
                relfilenode: t.rel.to_string(),
                inserts: 0,
                updates: 0,
                hot_updates: 0,
                deletes: 0,
                truncates: 0,
            });
        // A TOAST relation's chunks are not rows of the table: only the table's own counts
        // are row counts. Keep TOAST out of the row numbers but keep the table listed.
        if name.kind != "toast" {
            e.inserts += t.counts.inserts;
            e.updates += t.counts.updates + t.counts.hot_updates;
            e.hot_updates += t.counts.hot_updates;
            e.deletes += t.counts.deletes;
            e.truncates += t.counts.truncates;
        }
        if name.kind != "toast" && name.kind != "catalog" && !t.catalog {
            let d = dbs.entry(Some(t.rel.db)).or_insert_with(|| DatabaseLoss {
                database: db_name(Some(t.rel.db)),
                database_oid: Some(t.rel.db),
                commits: 0,
                inserts: 0,
                updates: 0,
                hot_updates: 0,
                deletes: 0,
                truncates: 0,
            });
            d.inserts += t.counts.inserts;
            d.updates += t.counts.updates + t.counts.hot_updates;
            d.hot_updates += t.counts.hot_updates;
            d.deletes += t.counts.deletes;
            d.truncates += t.counts.truncates;
        }
    }

    // Per lost transaction, the same classes as per table: user-table rows, catalog rows, and
    // TOAST chunks (in neither), from the per-relation counts the accountant keeps per commit.
    let class = |rel: &RelFileLocator| -> RowKind {
        match names.get(rel).map_or("unknown", |n| n.kind.as_str()) {
            "toast" => RowKind::Toast,
            "catalog" => RowKind::Catalog,
            "unknown" if is_catalog_file(rel) => RowKind::Catalog,
            _ => RowKind::User,
        }
    };
    let rows_of = |c: &crate::wal::accounting::LostCommit| {
        let mut e = XidRows::default();
        for (rel, n) in &c.per_rel {
            match class(rel) {
                RowKind::Toast => {}
                RowKind::Catalog => e.catalog += n.inserts + n.updates + n.hot_updates + n.deletes,
                RowKind::User => {
                    e.inserts += n.inserts;
                    e.updates += n.updates + n.hot_updates;
                    e.hot_updates += n.hot_updates;
                    e.deletes += n.deletes;
                }
            }
        }
        e
    };
    let tables: Vec<TableLoss> = tables.into_values().collect();
    let user = tables.iter().filter(|x| x.kind != "catalog");
    // The first and the last lost commits, whatever the accountant kept.
    let kept = &lost.lost_commits;
    let shown: Vec<&crate::wal::accounting::LostCommit> = if kept.len() > 2 * scan::INLINE_LOST_XIDS
    {
        kept.iter()
            .take(scan::INLINE_LOST_XIDS)
            .chain(kept.iter().skip(kept.len() - scan::INLINE_LOST_XIDS))
            .collect()
    } else {
        kept.iter().collect()
    };
    let minute = |t: crate::wal::xact::PgTimestamp| {
        let mut out = Vec::with_capacity(32);
        lostlist::push_rfc3339_micros(&mut out, t.unix_micros());
        String::from_utf8(out).unwrap_or_default()
    };

    Transactions {
        row_changes: user
            .clone()
            .map(|x| x.inserts + x.updates + x.deletes)
            .sum(),
        tables_changed: user.count(),
        lost_ddl_relations: Vec::new(),
        lost_ddl_unnamed: Vec::new(),
        source: label.to_string(),
        scan_start_lsn: scan.start,
        end_lsn: lost.end_lsn,
        end_reason: scan.end.as_ref().map(|e| e.reason.to_string()),
        wal_format: scan.pg_version,
        lost_commits: lost.lost_commit_count as usize,
        lost_xids_omitted: lost.lost_commit_count - shown.len() as u64,
        lost_xids: shown
            .into_iter()
            .map(|c| {
                let rows = rows_of(c);
                LostXid {
                    xid: c.top_xid,
                    subxids: c.subxids.clone(),
                    commit_lsn: c.lsn,
                    commit_time: ts(c.commit_time),
                    database: db_name(c.db_id),
                    prepared_gid: if c.prepared {
                        c.gid.clone().or(Some(String::new()))
                    } else {
                        None
                    },
                    ddl: c.ddl,
                    inserts: rows.inserts,
                    updates: rows.updates,
                    hot_updates: rows.hot_updates,
                    deletes: rows.deletes,
                    catalog_rows: rows.catalog,
                }
            })
            .collect(),
        lost_xids_file: None,
        databases: dbs.into_values().collect(),
        commits_per_minute: lost
            .commits_per_minute
            .iter()
            .map(|m| MinuteLoss {
                minute: minute(m.minute),
                commits: m.commits,
            })
            .collect(),
        first_lost_commit_time: ts(lost.first_lost_commit_time),
        last_lost_commit_time: ts(lost.last_lost_commit_time),
        aborts_after_switchpoint: lost.abort_count as usize,
        in_flight: lost.in_flight.len(),
        in_doubt: lost
            .in_doubt
            .iter()
            .map(|d| InDoubtTx {
                xid: d.xid,
                gid: d.gid.clone(),
                lsn: d.lsn,
            })
            .collect(),
        tables,
        lost_ddl: lost.lost_ddl_count as usize,
        sequences: lost
            .sequences
            .iter()
            .map(|s| {
                let n = names.get(&s.rel);
                SequenceLoss {
                    database: n.and_then(|n| n.database.clone()),
                    sequence: n.and_then(|n| n.table.clone()),
                    last_logged_value: s.last_logged_value,
                }
            })
            .collect(),
        records_after_switchpoint: lost.wal_stats_after_switchpoint.total.count,
        touched_tuples: lost.touched_tuple_count as usize,
        walinspect: None,
        new_side_first_xid: scan.new_side_first_xid,
        caveats,
        coverage: None,
    }
}

/// How a touched tuple counts: a user-table row, a system catalog row, or a TOAST chunk.
enum RowKind {
    User,
    Catalog,
    Toast,
}

/// One lost transaction's rows by class.
#[derive(Clone, Default)]
struct XidRows {
    inserts: u64,
    updates: u64,
    hot_updates: u64,
    deletes: u64,
    catalog: u64,
}

/// A relation file numbered below `FirstNormalObjectId`: a system catalog's.
fn is_catalog_file(rel: &RelFileLocator) -> bool {
    rel.rel < crate::wal::accounting::FIRST_NORMAL_OBJECT_ID
}
