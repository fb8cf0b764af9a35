//! The lost rows of every table, database by database: the scan that drives the rebuild.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use crate::diff::report::{ClassCounts, Method, Presence};
use crate::finding::{Finding, FindingId};
use crate::pg::{ConnParams, SessionOptions};
use crate::wal::tuplelog::LoggedRecord;
use crate::wal::RelFileLocator;

use super::chains::record_tids;
use super::model::{
    pg, DbRows, TableInfo, WalRows, WalRowsError, WalRowsInput, FIRST_NORMAL_OID, NAMED,
};
use super::shapes::{empty_table, not_examined};

/// Rebuilds the lost rows of every table the lost transactions wrote in, database by database,
/// and checks them against the new primary.
pub async fn rows_from_wal(
    input: &WalRowsInput<'_>,
    new: &ConnParams,
    opts: &SessionOptions,
) -> Result<WalRows, WalRowsError> {
    let started = Instant::now();
    let lost = &input.attribution.lost_xids;
    // Lost records per database and relfilenode.
    let mut per_db: BTreeMap<u32, BTreeMap<RelFileLocator, Vec<&LoggedRecord>>> = BTreeMap::new();
    for r in &input.log.records {
        if lost.contains(&r.xid.0) {
            per_db
                .entry(r.rel.db)
                .or_default()
                .entry(r.rel)
                .or_default()
                .push(r);
        }
    }
    let mut out = WalRows::default();
    out.report.schema_version = crate::diff::report::TABLES_SCHEMA_VERSION;
    out.report.attribution = crate::diff::report::AttributionInfo {
        available: !input.attribution.is_empty(),
        lost_xids: input.attribution.lost_xids.len(),
        new_side_first_xid: input.attribution.new_side_first_xid,
    };
    if let Some(f) = input.filter {
        out.report.filters = f.patterns().to_vec();
    }
    if let Some(why) = &input.incomplete {
        out.report.warnings.push(format!(
            "the lost WAL may not hold every lost change ({why}): rows rebuilt from it are a lower bound"
        ));
    }
    if let Some(at) = input.log.full_at {
        out.report.warnings.push(format!(
            "tuple images were kept only up to {at} (memory bound): later lost rows are not listed"
        ));
        out.findings.push(
            Finding::new(
                FindingId::WalRowsNotExamined,
                format!("lost rows after {at} were not rebuilt from the WAL: the tuple images of a loss this large exceed the memory bound"),
            )
            .with_hint("start the former primary isolated and compare with --former-primary, or narrow the comparison with --table"),
        );
    }
    for e in &input.log.errors {
        if lost.contains(&e.xid.0) {
            out.report.warnings.push(format!(
                "the tuple images of the lost record at {} (xid {}) could not be rebuilt: {}",
                e.lsn, e.xid, e.what
            ));
            out.findings.push(Finding::new(
                FindingId::WalRowsNotExamined,
                format!(
                    "the lost record at {} (xid {}, relation file {}) could not be decoded into rows: {}",
                    e.lsn,
                    e.xid,
                    e.rel.map_or_else(|| "-".into(), |r| r.to_string()),
                    e.what
                ),
            ).with_hint(format!("inspect it with pg_waldump -s {} -n 1 (on a copy of the former's WAL)", e.lsn)));
        }
    }
    if per_db.is_empty() {
        out.report.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok(out);
    }
    let first = crate::pg::connect(new, opts)
        .await
        .map_err(pg("connecting to the new primary"))?;
    let rows = first
        .query(
            "SELECT oid::int8, datname::text FROM pg_catalog.pg_database",
            &[],
        )
        .await
        .map_err(pg("listing the new primary's databases"))?;
    let dbs: HashMap<u32, String> = rows
        .iter()
        .map(|r| (r.get::<_, i64>(0) as u32, r.get::<_, String>(1)))
        .collect();
    first.close().await;
    for (db_oid, rels) in per_db {
        let Some(db) = dbs.get(&db_oid) else {
            out.report.skipped_databases.push(crate::diff::report::SkippedDatabase {
                database: format!("oid {db_oid}"),
                reason: "the lost WAL wrote rows in a database the new primary does not have (created by a lost transaction?)".into(),
                hint: "start the former primary isolated (as a standby with no upstream) and compare with --former-primary".into(),
            });
            continue;
        };
        let session = crate::pg::connect(&new.with_dbname(db), opts)
            .await
            .map_err(pg(format!(
                "connecting to database {db} on the new primary"
            )))?;
        session
            .simple_query(crate::diff::snapshot::PIN_SQL)
            .await
            .map_err(pg("pinning the output settings"))?;
        session
            .simple_query(crate::diff::snapshot::BEGIN_SQL)
            .await
            .map_err(pg("starting a read-only transaction"))?;
        out.report.databases.push(db.to_string());
        let mut d = DbRows {
            session: &session,
            timeout: opts.call_timeout(),
            db,
            input,
            out: &mut out,
        };
        let r = d.run(&rels).await;
        let _ = session.simple_query("ROLLBACK").await;
        session.close().await;
        r?;
    }
    let mut totals = ClassCounts::default();
    for t in &out.report.tables {
        totals.merge(&t.counts);
    }
    out.report.totals = totals;
    let ne = out.not_examined();
    if ne > 0 {
        let named: Vec<String> = out
            .report
            .tables
            .iter()
            .flat_map(|t| {
                t.not_examined.iter().map(move |n| {
                    format!(
                        "{}.{}.{} ctid {} ({} by xid {}): {}",
                        t.database, t.schema, t.table, n.ctid, n.op, n.xid, n.reason
                    )
                })
            })
            .take(NAMED)
            .collect();
        out.findings.push(
            Finding::new(
                FindingId::WalRowsNotExamined,
                format!(
                    "{ne} lost row version(s) could not be rebuilt from the WAL and are not listed with their values: {}{}",
                    named.join("; "),
                    if ne > NAMED { "; ..." } else { "" }
                ),
            )
            .with_hint("each is in the report (tables[].not_examined) with its reason; start the former primary isolated (as a standby with no upstream) and compare with --former-primary to list them"),
        );
    }
    out.report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(out)
}

impl DbRows<'_, '_> {
    pub(super) async fn run(
        &mut self,
        rels: &BTreeMap<RelFileLocator, Vec<&LoggedRecord>>,
    ) -> Result<(), WalRowsError> {
        let nodes: Vec<String> = rels.keys().map(|r| r.rel.to_string()).collect();
        let rows = self
            .session
            .query(
                "SELECT c.relfilenode::int8, c.oid::int8, n.nspname::text, c.relname::text, \
                        c.relkind::text, t.oid::int8, t.relfilenode::int8, \
                        tn.nspname::text || '.' || t.relname::text \
                   FROM pg_catalog.pg_class c \
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                   LEFT JOIN pg_catalog.pg_class t ON t.oid = c.reltoastrelid \
                   LEFT JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace \
                  WHERE c.relfilenode = ANY($1::text[]::oid[]) \
                     OR t.relfilenode = ANY($1::text[]::oid[])",
                &[&nodes],
            )
            .await
            .map_err(pg(format!("{}: naming the relation files", self.db)))?;
        let mut heap: HashMap<u32, (TableInfo, String)> = HashMap::new();
        let mut toast_owner: HashMap<u32, u32> = HashMap::new();
        for r in &rows {
            let node = r.get::<_, i64>(0) as u32;
            let info = TableInfo {
                oid: r.get::<_, i64>(1) as u32,
                schema: r.get(2),
                name: r.get(3),
                toast: r
                    .get::<_, Option<i64>>(5)
                    .zip(r.get::<_, Option<i64>>(6))
                    .map(|(o, n)| {
                        (
                            o as u32,
                            n as u32,
                            r.get::<_, Option<String>>(7).unwrap_or_default(),
                        )
                    }),
            };
            if let Some((_, tn, _)) = &info.toast {
                toast_owner.insert(*tn, node);
            }
            heap.insert(node, (info, r.get(4)));
        }
        // TOAST chunks the lost transactions wrote, per owning relfilenode.
        let mut toast_recs: HashMap<u32, Vec<&LoggedRecord>> = HashMap::new();
        for (rel, recs) in rels {
            if let Some(owner) = toast_owner.get(&rel.rel) {
                toast_recs.entry(*owner).or_default().extend(recs.iter());
            }
        }
        for (rel, recs) in rels {
            if toast_owner.contains_key(&rel.rel) {
                continue;
            }
            let Some((info, kind)) = heap.get(&rel.rel) else {
                if rel.rel < FIRST_NORMAL_OID {
                    continue; // a system catalog: the lost DDL has its own report
                }
                let why = if self.input.created_after_switchpoint.contains(rel) {
                    format!("relation file {rel} was created by the lost WAL (a new table, or one rewritten by TRUNCATE, VACUUM FULL, CLUSTER or ALTER TABLE): the new primary has no descriptor for it")
                } else {
                    format!("relation file {rel} is not in the new primary's catalogs (rewritten there after the failover, or dropped)")
                };
                self.unmapped(*rel, recs, why);
                continue;
            };
            if info.oid < FIRST_NORMAL_OID || kind != "r" {
                continue;
            }
            if let Some(f) = self.input.filter {
                if !f.matches(&info.schema, &info.name) {
                    continue;
                }
            }
            let toast = toast_recs.get(&rel.rel).map(Vec::as_slice).unwrap_or(&[]);
            let t = Instant::now();
            let mut tr = self.table(info, *rel, recs, toast).await?;
            tr.elapsed_ms = t.elapsed().as_millis() as u64;
            self.out.report.tables.push(tr);
        }
        Ok(())
    }

    /// A relation file the new primary cannot name: every lost change in it is not examined.
    pub(super) fn unmapped(&mut self, rel: RelFileLocator, recs: &[&LoggedRecord], why: String) {
        let mut tr = empty_table(self.db, "", &format!("relfilenode {rel}"));
        tr.presence = Presence::FormerOnly;
        tr.method = Method::None;
        tr.error = Some(why.clone());
        for r in recs {
            for (tid, op) in record_tids(r) {
                tr.not_examined
                    .push(not_examined(r, tid, op, None, why.clone()));
            }
        }
        self.out.report.tables.push(tr);
    }
}
