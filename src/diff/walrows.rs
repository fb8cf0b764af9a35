//! Lost rows rebuilt from the WAL: the row-level report and its recovery export when the
//! former primary cannot be read (its WAL from a copied `pg_wal` or an archive), and a second,
//! independent answer to check the live row diff against when it can.
//!
//! The lost transactions' heap records ([`TupleLog`]) are followed row by row: an INSERT starts
//! a row, an UPDATE moves it from its old ctid to the new one, a DELETE ends it. A row that the
//! lost WAL did not insert started at the switchpoint as a tuple both nodes shared: its
//! pre-image is read from the new primary at that ctid and kept only when its `xmin` precedes
//! the switchpoint (else the new primary rewrote it, and it is not the former's old version).
//! The final version of every row is decoded with the new primary's descriptor (the same as the
//! former's up to the switchpoint: a column change after it is reported as descriptor drift and
//! the table is not decoded), TOAST values from the lost WAL's chunks or the new primary's
//! TOAST table. Then every primary key the lost rows had before or after is read on the new
//! primary, and each difference is classified exactly as the live row diff does
//! ([`Attribution::classify`]), so the report and the recovery script have the same shape.
//! A row whose image cannot be rebuilt is listed as not examined with the reason.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use super::bisect::Key;
use super::classify::{xid_follows_or_equals, Attribution};
use super::hash::text_array;
use super::options::TableFilter;
use super::report::{
    ClassCounts, DiffKind, ImageOrigin, Method, NotExamined, Presence, RowDiff, RowVersion,
    TableReport, TablesReport,
};
use super::sql::{ident, qualified, typed};
use crate::evidence::ddl::{DdlAction, LostDdlRelation};
use crate::finding::{Finding, FindingId};
use crate::lsn::Lsn;
use crate::pg::{ConnParams, Session, SessionOptions};
use crate::values::toast::assemble;
use crate::values::{decode_row, deform, Datum, RelDesc, Value, Varlena};
use crate::wal::heap::Tid;
use crate::wal::tuple::{HeapTuple, ImageSource, NewTuple, NewTupleOp, OldKind, TupleImage};
use crate::wal::tuplelog::{LoggedRecord, TupleLog};
use crate::wal::RelFileLocator;

/// Tids or keys per query.
const PER_QUERY: usize = 5_000;
/// `FirstNormalObjectId`: relations below it are system catalogs.
const FIRST_NORMAL_OID: u32 = 16384;
/// How many rows a finding names before "...".
const NAMED: usize = 5;

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
    what: String,
    #[source]
    source: crate::pg::PgError,
}

fn pg(what: impl Into<String>) -> impl FnOnce(crate::pg::PgError) -> WalRowsError {
    let what = what.into();
    move |source| WalRowsError { what, source }
}

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
    out.report.schema_version = super::report::TABLES_SCHEMA_VERSION;
    out.report.attribution = super::report::AttributionInfo {
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
            out.report.skipped_databases.push(super::report::SkippedDatabase {
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
            .simple_query(super::snapshot::PIN_SQL)
            .await
            .map_err(pg("pinning the output settings"))?;
        session
            .simple_query(super::snapshot::BEGIN_SQL)
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

/// One table on the new primary.
struct TableInfo {
    oid: u32,
    schema: String,
    name: String,
    toast: Option<(u32, u32, String)>,
}

struct DbRows<'a, 'b> {
    session: &'a Session,
    /// The time limit of one catalog read.
    timeout: std::time::Duration,
    db: &'a str,
    input: &'a WalRowsInput<'b>,
    out: &'a mut WalRows,
}

impl DbRows<'_, '_> {
    async fn run(
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
    fn unmapped(&mut self, rel: RelFileLocator, recs: &[&LoggedRecord], why: String) {
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

    async fn table(
        &mut self,
        info: &TableInfo,
        rel: RelFileLocator,
        recs: &[&LoggedRecord],
        toast_recs: &[&LoggedRecord],
    ) -> Result<TableReport, WalRowsError> {
        let s = self.session;
        let display = format!("{}.{}", info.schema, info.name);
        let mut tr = empty_table(self.db, &info.schema, &info.name);
        let e = |what: &str| pg(format!("{}.{display}: {what}", self.db));
        // Columns, types and key, as the live row diff lists them.
        let r = s
            .query_one(
                "SELECT ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a \
                        WHERE a.attrelid = $1::text::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum), \
                   ARRAY(SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a \
                        WHERE a.attrelid = $1::text::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum), \
                   ARRAY(SELECT a.attgenerated <> '' FROM pg_catalog.pg_attribute a \
                        WHERE a.attrelid = $1::text::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum), \
                   ARRAY(SELECT a.attname::text FROM pg_catalog.pg_constraint k \
                        CROSS JOIN LATERAL pg_catalog.unnest(k.conkey) WITH ORDINALITY AS u(attnum, ord) \
                        JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum \
                        WHERE k.conrelid = $1::text::oid AND k.contype = 'p' ORDER BY u.ord), \
                   ARRAY(SELECT a.xmin::text FROM pg_catalog.pg_attribute a \
                        WHERE a.attrelid = $1::text::oid AND a.attnum > 0 ORDER BY a.attnum)",
                &[&info.oid.to_string()],
            )
            .await
            .map_err(e("reading its columns"))?;
        tr.columns = r.get(0);
        tr.column_types = r.get(1);
        let generated: Vec<bool> = r.get(2);
        tr.generated_columns = tr
            .columns
            .iter()
            .zip(&generated)
            .filter(|(_, g)| **g)
            .map(|(c, _)| c.clone())
            .collect();
        tr.key_columns = r.get(3);
        let attr_xmins: Vec<String> = r.get(4);
        tr.method = Method::WalDecoded;

        // Descriptor drift: lost DDL on it, or its attributes rewritten after the switchpoint.
        let mut drift: Vec<String> = Vec::new();
        for d in self.input.lost_ddl {
            if d.relation == display
                && d.database.as_deref().is_none_or(|x| x == self.db)
                && d.action != DdlAction::Created
            {
                drift.push(format!("a lost transaction {} it", d.action.as_str()));
            }
        }
        if let Some(first) = self.input.attribution.new_side_first_xid {
            let changed = attr_xmins
                .iter()
                .filter_map(|x| x.parse::<u32>().ok())
                .filter(|x| *x >= 3 && xid_follows_or_equals(*x, first))
                .count();
            if changed > 0 {
                drift.push(format!(
                    "{changed} of its pg_attribute rows were written on the new primary after the failover (ALTER TABLE)"
                ));
            }
        }
        let desc = match RelDesc::load(s.client(), info.oid, self.timeout).await {
            Ok(d) => Some(d),
            Err(err) => {
                drift.push(format!("its descriptor could not be read: {err}"));
                None
            }
        };
        let (Some(desc), true) = (desc, drift.is_empty()) else {
            let why = format!(
                "the descriptor of {display} changed after the switchpoint: {}",
                drift.join("; ")
            );
            self.out.findings.push(
                Finding::new(
                    FindingId::DescriptorDrift,
                    format!("{}.{display}: {}; its lost tuples were not decoded", self.db, drift.join("; ")),
                )
                .with_hint(format!(
                    "compare with the former primary reachable (isolated as a standby), or decode the lost records by hand: pg_waldump -p WALDIR -s SWITCHPOINT -R {}",
                    rel
                )),
            );
            tr.fallback_reason = Some(why.clone());
            for r in recs {
                for (tid, op) in record_tids(r) {
                    tr.not_examined
                        .push(not_examined(r, tid, op, None, why.clone()));
                }
            }
            return Ok(tr);
        };

        // Follow each row through the lost records.
        let chains = build_chains(recs);
        // Pre-images: the rows the lost WAL did not insert, at their ctid on the new primary.
        let origins: Vec<Tid> = chains.iter().filter_map(|c| c.origin).collect();
        let pre = self.pre_images(info, &tr, &origins).await?;
        tr.queries += origins.len().div_ceil(PER_QUERY) as u64;
        // TOAST chunks in the lost WAL.
        let mut chunks: HashMap<u32, Vec<(i32, Vec<u8>)>> = HashMap::new();
        if let Some((toast_oid, _, _)) = &info.toast {
            if !toast_recs.is_empty() {
                let tdesc = RelDesc::load(s.client(), *toast_oid, self.timeout)
                    .await
                    .ok();
                for r in toast_recs {
                    for nt in &r.tuples.new {
                        let (Some(tdesc), TupleImage::Complete(t)) = (&tdesc, &nt.image) else {
                            continue;
                        };
                        if let Ok(d) = deform(tdesc, t, nt.tid) {
                            if let (
                                Some(Datum::Fixed(id)),
                                Some(Datum::Fixed(seq)),
                                Some(Datum::Varlena(Varlena::Plain(data))),
                            ) = (d.first(), d.get(1), d.get(2))
                            {
                                if let (Ok(id), Ok(seq)) =
                                    (<[u8; 4]>::try_from(&id[..]), <[u8; 4]>::try_from(&seq[..]))
                                {
                                    chunks
                                        .entry(u32::from_le_bytes(id))
                                        .or_default()
                                        .push((i32::from_le_bytes(seq), data.clone()));
                                }
                            }
                        }
                    }
                }
            }
        }
        let ctx = Ctx {
            log: self.input.log,
            rel,
            desc: &desc,
            key_columns: &tr.key_columns,
            attribution: self.input.attribution,
        };
        // Final versions, decoded; values stored out of line resolved below.
        let mut finals: Vec<Resolved> = Vec::new();
        // Keys of rows that could not be rebuilt: not classified unless a rebuilt row has them.
        let mut failed: BTreeSet<Key> = BTreeSet::new();
        for c in &chains {
            match ctx.rebuild(c, &pre) {
                Ok(r) => finals.push(r),
                Err((step, why)) => {
                    let origin_key = c.origin.and_then(|o| pre.get(&o)).map(|p| p.key.clone());
                    failed.extend(origin_key.clone());
                    let key = origin_key.map(|k| key_map(&tr.key_columns, &k));
                    tr.not_examined.push(NotExamined {
                        ctid: tid_text(step.tid),
                        op: step.op.into(),
                        xid: step.xid,
                        lsn: step.lsn.to_string(),
                        key,
                        reason: why,
                    })
                }
            }
        }
        // Out-of-line values the lost WAL did not write: the new primary's TOAST table.
        let missing: BTreeSet<u32> = finals
            .iter()
            .filter_map(|f| f.version.as_ref())
            .flat_map(|v| v.externals.iter().map(|(_, p)| p.value_id))
            .filter(|id| !chunks.contains_key(id))
            .collect();
        let mut toast_err: Option<String> = None;
        if !missing.is_empty() {
            match &info.toast {
                Some((_, _, name)) if !name.is_empty() => {
                    let ids: Vec<String> = missing.iter().map(u32::to_string).collect();
                    let (schema, tname) = name.split_once('.').unwrap_or(("pg_toast", name));
                    let sql = format!(
                        "SELECT chunk_id::text::int8, chunk_seq, chunk_data FROM {} WHERE chunk_id = ANY($1::text[]::oid[])",
                        qualified(schema, tname)
                    );
                    match s.query(sql.as_str(), &[&ids]).await {
                        Ok(rows) => {
                            tr.queries += 1;
                            for r in rows {
                                chunks
                                    .entry(r.get::<_, i64>(0) as u32)
                                    .or_default()
                                    .push((r.get(1), r.get(2)));
                            }
                        }
                        Err(e) => {
                            toast_err =
                                Some(format!("reading the new primary's TOAST table {name}: {e}"))
                        }
                    }
                }
                _ => toast_err = Some("the table has no TOAST table on the new primary".into()),
            }
        }
        if tr.key_columns.is_empty() {
            // No key: whole rows, as the live diff compares a keyless table (multisets): the
            // pre-image the new primary still has, and the lost final version.
            for f in finals {
                let pre_v = f.origin.and_then(|o| pre.get(&o)).filter(|p| p.pre_switch);
                if let (Some(o), None) = (f.origin, pre_v) {
                    let (xid, lsn, op) = f
                        .version
                        .as_ref()
                        .map_or((0, String::new(), "delete"), |v| {
                            (v.xid, v.lsn.to_string(), v.op)
                        });
                    tr.not_examined.push(NotExamined {
                        ctid: tid_text(o),
                        op: op.into(),
                        xid,
                        lsn,
                        key: None,
                        reason: format!("{display} has no primary key, and the row at ctid {} is no longer visible on the new primary with an xmin before the switchpoint (changed there after the failover?)", tid_text(o)),
                    });
                    continue;
                }
                let former_v = match &f.version {
                    Some(v) => match v.finish(&desc, &chunks, toast_err.as_deref()) {
                        Ok(values) => Some(RowVersion {
                            xmin: v.xid,
                            values,
                            image: Some(v.origin),
                        }),
                        Err(why) => {
                            tr.not_examined.push(NotExamined {
                                ctid: tid_text(v.tid),
                                op: v.op.into(),
                                xid: v.xid,
                                lsn: v.lsn.to_string(),
                                key: None,
                                reason: why,
                            });
                            continue;
                        }
                    },
                    None => None,
                };
                let new_v = pre_v.map(|p| RowVersion {
                    xmin: p.xmin,
                    values: p.values.clone(),
                    image: Some(ImageOrigin::NewPrimaryPreImage),
                });
                tr.rows_compared += 1;
                if let (Some(a), Some(b)) = (&former_v, &new_v) {
                    if a.values == b.values {
                        continue;
                    }
                }
                for (kind, former, new) in [
                    (DiffKind::ExtraOnNew, None, new_v),
                    (DiffKind::MissingOnNew, former_v, None),
                ] {
                    if former.is_none() && new.is_none() {
                        continue;
                    }
                    let class = self.input.attribution.classify(
                        kind,
                        former.as_ref().map(|v: &RowVersion| v.xmin),
                        new.as_ref().map(|v: &RowVersion| v.xmin),
                    );
                    tr.counts.add(kind, class);
                    tr.rows.push(RowDiff {
                        key: None,
                        kind,
                        class,
                        former,
                        new,
                    });
                }
            }
            return Ok(tr);
        }
        // Every key the lost rows had, read on the new primary.
        let mut keys: BTreeSet<Key> = BTreeSet::new();
        let mut former: BTreeMap<Key, RowVersion> = BTreeMap::new();
        for f in finals {
            if let Some(k) = &f.origin_key {
                keys.insert(k.clone());
            }
            let Some(v) = f.version else { continue };
            match v.finish(&desc, &chunks, toast_err.as_deref()) {
                Ok(values) => {
                    let k: Key = tr
                        .key_columns
                        .iter()
                        .map(|c| values.get(c).and_then(|x| x.as_str()).map(str::to_string))
                        .collect();
                    keys.insert(k.clone());
                    former.insert(
                        k,
                        RowVersion {
                            xmin: v.xid,
                            values,
                            image: Some(v.origin),
                        },
                    );
                }
                Err(why) => {
                    failed.extend(f.origin_key.clone());
                    tr.not_examined.push(NotExamined {
                        ctid: tid_text(v.tid),
                        op: v.op.into(),
                        xid: v.xid,
                        lsn: v.lsn.to_string(),
                        key: f.origin_key.as_ref().map(|k| key_map(&tr.key_columns, k)),
                        reason: why,
                    })
                }
            }
        }
        for k in &failed {
            if !former.contains_key(k) {
                keys.remove(k);
            }
        }
        let key_list: Vec<Key> = keys.into_iter().collect();
        let now = self.by_key(&tr, &key_list).await?;
        tr.queries += key_list.len().div_ceil(PER_QUERY) as u64;
        tr.rows_compared = key_list.len() as u64;
        tr.rows_fetched = now.len() as u64;
        for k in key_list {
            let f = former.remove(&k);
            let n = now.get(&k).cloned();
            let kind = match (&f, &n) {
                (None, None) => continue,
                (Some(_), None) => DiffKind::MissingOnNew,
                (None, Some(_)) => DiffKind::ExtraOnNew,
                (Some(a), Some(b)) if a.values == b.values => continue,
                _ => DiffKind::Changed,
            };
            let class = self.input.attribution.classify(
                kind,
                f.as_ref().map(|v| v.xmin),
                n.as_ref().map(|v| v.xmin),
            );
            tr.counts.add(kind, class);
            tr.rows.push(RowDiff {
                key: Some(key_map(&tr.key_columns, &k)),
                kind,
                class,
                former: f,
                new: n,
            });
        }
        Ok(tr)
    }

    /// The visible rows at `tids` on the new primary whose xmin precedes the switchpoint.
    async fn pre_images(
        &self,
        info: &TableInfo,
        tr: &TableReport,
        tids: &[Tid],
    ) -> Result<HashMap<Tid, PreImage>, WalRowsError> {
        let mut out = HashMap::new();
        if tids.is_empty() {
            return Ok(out);
        }
        let sql = format!(
            "SELECT ctid::text, xmin::text::int8, {}, {} FROM {} WHERE ctid = ANY($1::text[]::tid[])",
            text_array(&tr.key_columns),
            text_array(&tr.columns),
            qualified(&info.schema, &info.name)
        );
        for batch in tids.chunks(PER_QUERY) {
            let arr: Vec<String> = batch.iter().map(|t| tid_text(*t)).collect();
            let rows = self
                .session
                .query(sql.as_str(), &[&arr])
                .await
                .map_err(pg(format!(
                    "{}.{}.{}: reading pre-images by ctid",
                    self.db, info.schema, info.name
                )))?;
            for r in rows {
                let Some(tid) = parse_tid(&r.get::<_, String>(0)) else {
                    continue;
                };
                let xmin = r.get::<_, i64>(1) as u32;
                let pre_switch = match self.input.attribution.new_side_first_xid {
                    Some(first) => xmin < 3 || !xid_follows_or_equals(xmin, first),
                    None => false,
                };
                let vals: Vec<Option<String>> = r.get(3);
                out.insert(
                    tid,
                    PreImage {
                        xmin,
                        pre_switch,
                        key: r.get(2),
                        values: to_map(&tr.columns, vals),
                    },
                );
            }
        }
        Ok(out)
    }

    /// The rows with these keys on the new primary.
    async fn by_key(
        &self,
        tr: &TableReport,
        keys: &[Key],
    ) -> Result<HashMap<Key, RowVersion>, WalRowsError> {
        let mut out = HashMap::new();
        let types: Vec<&str> = tr
            .key_columns
            .iter()
            .map(|k| {
                tr.columns
                    .iter()
                    .position(|c| c == k)
                    .map(|i| tr.column_types[i].as_str())
                    .unwrap_or("text")
            })
            .collect();
        let cols: Vec<String> = tr.key_columns.iter().map(|k| ident(k)).collect();
        let first = self.input.attribution.new_side_first_xid;
        for batch in keys.chunks(PER_QUERY) {
            let tuples: Vec<String> = batch
                .iter()
                .map(|k| {
                    let v: Vec<String> = k
                        .iter()
                        .zip(&types)
                        .map(|(v, t)| typed(v.as_deref(), t))
                        .collect();
                    format!("({})", v.join(", "))
                })
                .collect();
            let sql = format!(
                "SELECT {}, xmin::text::int8, {} FROM {} WHERE ({}) IN ({})",
                text_array(&tr.key_columns),
                text_array(&tr.columns),
                qualified(&tr.schema, &tr.table),
                cols.join(", "),
                tuples.join(", ")
            );
            let rows = self
                .session
                .query(sql.as_str(), &[])
                .await
                .map_err(pg(format!(
                    "{}.{}.{}: reading rows by key",
                    self.db, tr.schema, tr.table
                )))?;
            for r in rows {
                let xmin = r.get::<_, i64>(1) as u32;
                let pre = first.is_some_and(|f| xmin < 3 || !xid_follows_or_equals(xmin, f));
                out.insert(
                    r.get::<_, Key>(0),
                    RowVersion {
                        xmin,
                        values: to_map(&tr.columns, r.get(2)),
                        image: Some(if pre {
                            ImageOrigin::NewPrimaryPreImage
                        } else {
                            ImageOrigin::NewPrimaryRow
                        }),
                    },
                );
            }
        }
        Ok(out)
    }
}

/// A row on the new primary at a pre-image's ctid.
#[derive(Debug, Clone)]
struct PreImage {
    xmin: u32,
    pre_switch: bool,
    key: Key,
    values: serde_json::Map<String, serde_json::Value>,
}

/// One lost change to a row.
#[derive(Debug, Clone, Copy)]
struct Step<'a> {
    lsn: Lsn,
    xid: u32,
    /// The tid written (insert, update) or deleted.
    tid: Tid,
    op: &'static str,
    new: Option<&'a NewTuple>,
    rec: &'a LoggedRecord,
}

/// A row followed through the lost records.
#[derive(Debug)]
struct Chain<'a> {
    /// Where it was at the switchpoint (`None`: inserted by a lost transaction).
    origin: Option<Tid>,
    steps: Vec<Step<'a>>,
}

/// The tids a record writes or deletes, with the operation.
fn record_tids(r: &LoggedRecord) -> Vec<(Tid, &'static str)> {
    let mut v: Vec<(Tid, &'static str)> = r
        .tuples
        .new
        .iter()
        .map(|n| {
            (
                n.tid,
                match n.op {
                    NewTupleOp::Update { .. } => "update",
                    _ => "insert",
                },
            )
        })
        .collect();
    if let Some(t) = r.delete {
        v.push((t, "delete"));
    }
    v
}

/// Follows the rows: inserts start chains, updates move them, deletes end them.
fn build_chains<'a>(recs: &[&'a LoggedRecord]) -> Vec<Chain<'a>> {
    let mut chains: Vec<Chain<'a>> = Vec::new();
    let mut at: HashMap<Tid, usize> = HashMap::new();
    for r in recs {
        for nt in &r.tuples.new {
            let (idx, op) = match nt.op {
                NewTupleOp::Insert | NewTupleOp::MultiInsert => {
                    chains.push(Chain {
                        origin: None,
                        steps: Vec::new(),
                    });
                    (chains.len() - 1, "insert")
                }
                NewTupleOp::Update { old, .. } => {
                    let i = at.remove(&old).unwrap_or_else(|| {
                        chains.push(Chain {
                            origin: Some(old),
                            steps: Vec::new(),
                        });
                        chains.len() - 1
                    });
                    (i, "update")
                }
            };
            chains[idx].steps.push(Step {
                lsn: r.lsn,
                xid: r.xid.0,
                tid: nt.tid,
                op,
                new: Some(nt),
                rec: r,
            });
            at.insert(nt.tid, idx);
        }
        if let Some(tid) = r.delete {
            let idx = at.remove(&tid).unwrap_or_else(|| {
                chains.push(Chain {
                    origin: Some(tid),
                    steps: Vec::new(),
                });
                chains.len() - 1
            });
            chains[idx].steps.push(Step {
                lsn: r.lsn,
                xid: r.xid.0,
                tid,
                op: "delete",
                new: None,
                rec: r,
            });
        }
    }
    chains
}

/// A chain's final version, not yet rendered, and the key it had at the switchpoint.
struct Resolved {
    /// Where the row was at the switchpoint (`None`: inserted by a lost transaction).
    origin: Option<Tid>,
    origin_key: Option<Key>,
    version: Option<Final>,
}

/// The final tuple of a row and what wrote it.
struct Final {
    tuple: HeapTuple,
    tid: Tid,
    xid: u32,
    lsn: Lsn,
    op: &'static str,
    origin: ImageOrigin,
    columns: Vec<crate::values::Column>,
    externals: Vec<(String, crate::values::ToastPointer)>,
}

impl Final {
    /// The values as text, out-of-line ones assembled from `chunks`.
    fn finish(
        &self,
        desc: &RelDesc,
        chunks: &HashMap<u32, Vec<(i32, Vec<u8>)>>,
        toast_err: Option<&str>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let _ = &self.tuple;
        let mut m = serde_json::Map::new();
        for c in &self.columns {
            let v = match &c.value {
                Value::Null => serde_json::Value::Null,
                Value::Text { text } => serde_json::Value::String(text.clone()),
                Value::Undecoded { type_name, .. } => {
                    return Err(format!(
                        "column {} has type {type_name}, which is not decoded natively (its value is never guessed)",
                        c.name
                    ))
                }
                Value::External { pointer } => {
                    let Some(parts) = chunks.get(&pointer.value_id) else {
                        return Err(format!(
                            "column {}: the TOAST value {} is neither in the lost WAL nor in the new primary's TOAST table{}",
                            c.name,
                            pointer.value_id,
                            toast_err.map(|e| format!(" ({e})")).unwrap_or_default()
                        ));
                    };
                    let parts: Vec<(i32, &[u8])> =
                        parts.iter().map(|(s, d)| (*s, &d[..])).collect();
                    let payload = assemble(pointer, &parts)
                        .map_err(|e| format!("column {}: TOAST value {}: {e}", c.name, pointer.value_id))?;
                    let a = desc
                        .attrs
                        .iter()
                        .find(|a| a.name == c.name)
                        .ok_or_else(|| format!("column {} not in the descriptor", c.name))?;
                    match crate::values::text::render_payload(desc, &a.typ, &payload)
                        .map_err(|e| format!("column {}: {e}", c.name))?
                    {
                        Value::Text { text } => serde_json::Value::String(text),
                        Value::Null => serde_json::Value::Null,
                        _ => {
                            return Err(format!(
                                "column {} has type {}, which is not decoded natively",
                                c.name, a.typ.name
                            ))
                        }
                    }
                }
            };
            m.insert(c.name.clone(), v);
        }
        Ok(m)
    }
}

/// What rebuilding a chain needs.
struct Ctx<'a> {
    log: &'a TupleLog,
    rel: RelFileLocator,
    desc: &'a RelDesc,
    key_columns: &'a [String],
    attribution: &'a Attribution,
}

impl Ctx<'_> {
    /// Replays a chain: its final version (decoded, not rendered) and its key at the
    /// switchpoint; or the step that failed and why.
    fn rebuild<'s>(
        &self,
        c: &Chain<'s>,
        pre: &HashMap<Tid, PreImage>,
    ) -> Result<Resolved, (Step<'s>, String)> {
        let _ = self.attribution;
        let pre_image = c.origin.and_then(|o| pre.get(&o)).filter(|p| p.pre_switch);
        let mut origin_key = pre_image.map(|p| p.key.clone());
        // The logged old key or tuple of the first step stands in for a missing pre-image.
        if origin_key.is_none() {
            if let Some(old) = c.steps.first().and_then(|s| s.rec.tuples.old.as_ref()) {
                if let Ok(cols) = decode_row(self.desc, &old.tuple, old.tid) {
                    let k: Key = self
                        .key_columns
                        .iter()
                        .map(|kc| {
                            cols.iter()
                                .find(|c| &c.name == kc)
                                .and_then(|c| match &c.value {
                                    Value::Text { text } => Some(text.clone()),
                                    _ => None,
                                })
                        })
                        .collect();
                    if k.iter().all(Option::is_some) {
                        origin_key = Some(k);
                    }
                }
            }
        }
        let mut cur: Option<(HeapTuple, ImageOrigin)> = None;
        let mut last: Option<Step<'s>> = None;
        for (i, step) in c.steps.iter().enumerate() {
            let Some(nt) = step.new else {
                if i == 0 && c.origin.is_some() && origin_key.is_none() {
                    return Err((
                        *step,
                        format!(
                            "the deleted row's pre-image at ctid {} is not visible on the new primary with an xmin before the switchpoint (updated or deleted there after the failover?), and the WAL logged no old key",
                            tid_text(step.tid)
                        ),
                    ));
                }
                cur = None;
                last = Some(*step);
                continue;
            };
            let (tuple, origin) = match &nt.image {
                TupleImage::Complete(t) => (t.clone(), origin_of(nt.source)),
                TupleImage::NeedsOld(p) => {
                    let old = match &cur {
                        Some((t, _)) => Some(t.clone()),
                        None => self.old_bytes(step, pre_image),
                    };
                    let Some(old) = old else {
                        return Err((*step, format!(
                            "the UPDATE logged only the bytes it changed, and the old version at ctid {} is in no full-page image of the lost WAL{}",
                            c.origin.map(tid_text).unwrap_or_default(),
                            if pre_image.is_none() { " and not visible on the new primary" } else { "" }
                        )));
                    };
                    match p.complete(&old) {
                        Ok(t) => (t, ImageOrigin::WalRecordAndOldTuple),
                        Err(e) => {
                            return Err((
                                *step,
                                format!("completing the UPDATE from its old version: {e}"),
                            ))
                        }
                    }
                }
            };
            cur = Some((tuple, origin));
            last = Some(*step);
        }
        let version = match (cur, last) {
            (Some((tuple, origin)), Some(step)) => {
                let cols = decode_row(self.desc, &tuple, step.tid).map_err(|e| {
                    (
                        step,
                        if e.what.contains("attributes, the relation's descriptor") {
                            format!("descriptor drift: {e}")
                        } else {
                            e.to_string()
                        },
                    )
                })?;
                let externals = cols
                    .iter()
                    .filter_map(|c| match &c.value {
                        Value::External { pointer } => Some((c.name.clone(), *pointer)),
                        _ => None,
                    })
                    .collect();
                Some(Final {
                    tuple,
                    tid: step.tid,
                    xid: step.xid,
                    lsn: step.lsn,
                    op: step.op,
                    origin,
                    columns: cols,
                    externals,
                })
            }
            _ => None,
        };
        Ok(Resolved {
            origin: c.origin,
            origin_key,
            version,
        })
    }

    /// The old version's bytes for an UPDATE that left out its prefix or suffix: the logged old
    /// tuple, else the tuple at the old ctid in a full-page image of the lost WAL, checked
    /// against the new primary's pre-image when it is visible.
    fn old_bytes(&self, step: &Step<'_>, pre: Option<&PreImage>) -> Option<HeapTuple> {
        let NewTupleOp::Update { old, .. } = step.new?.op else {
            return None;
        };
        if let Some(o) = &step.rec.tuples.old {
            if o.kind == OldKind::Tuple {
                return Some(o.tuple.clone());
            }
        }
        let (_, t) = self.log.tuple_in_image(self.rel, old, step.lsn)?;
        if let Some(p) = pre {
            // The image's tuple must be the row the new primary still has there.
            let cols = decode_row(self.desc, &t, old).ok()?;
            for c in &cols {
                let want = p.values.get(&c.name)?;
                let ok = match &c.value {
                    Value::Null => want.is_null(),
                    Value::Text { text } => want.as_str() == Some(text.as_str()),
                    // Out of line or not decoded natively: the bytes cannot be compared as text.
                    _ => true,
                };
                if !ok {
                    return None;
                }
            }
        }
        Some(t)
    }
}

fn origin_of(s: ImageSource) -> ImageOrigin {
    match s {
        ImageSource::RecordData => ImageOrigin::WalRecord,
        ImageSource::RecordDataAndOldTuple => ImageOrigin::WalRecordAndOldTuple,
        ImageSource::PageImage => ImageOrigin::FullPageImage,
        ImageSource::LoggedOld => ImageOrigin::LoggedOldTuple,
    }
}

fn not_examined(
    r: &LoggedRecord,
    tid: Tid,
    op: &str,
    key: Option<serde_json::Map<String, serde_json::Value>>,
    reason: String,
) -> NotExamined {
    NotExamined {
        ctid: tid_text(tid),
        op: op.into(),
        xid: r.xid.0,
        lsn: r.lsn.to_string(),
        key,
        reason,
    }
}

fn empty_table(db: &str, schema: &str, table: &str) -> TableReport {
    TableReport {
        database: db.into(),
        schema: schema.into(),
        table: table.into(),
        presence: Presence::Both,
        schema_differences: Vec::new(),
        method: Method::WalDecoded,
        fallback_reason: None,
        key_columns: Vec::new(),
        columns: Vec::new(),
        column_types: Vec::new(),
        generated_columns: Vec::new(),
        rows_compared: 0,
        rows_fetched: 0,
        chunks: 0,
        chunks_mismatched: 0,
        queries: 0,
        counts: ClassCounts::default(),
        rows: Vec::new(),
        elapsed_ms: 0,
        error: None,
        not_examined: Vec::new(),
    }
}

fn key_map(cols: &[String], k: &Key) -> serde_json::Map<String, serde_json::Value> {
    to_map(cols, k.clone())
}

fn to_map(
    names: &[String],
    vals: Vec<Option<String>>,
) -> serde_json::Map<String, serde_json::Value> {
    names
        .iter()
        .cloned()
        .zip(vals.into_iter().map(|v| {
            v.map(serde_json::Value::String)
                .unwrap_or(serde_json::Value::Null)
        }))
        .collect()
}

fn tid_text(t: Tid) -> String {
    format!("({},{})", t.block, t.offset)
}

fn parse_tid(s: &str) -> Option<Tid> {
    let (b, o) = s
        .trim()
        .strip_prefix('(')?
        .strip_suffix(')')?
        .split_once(',')?;
    Some(Tid {
        block: b.trim().parse().ok()?,
        offset: o.trim().parse().ok()?,
    })
}

/// Compares the lost rows (lost inserts, updates, deletes and conflicts) of the live row diff
/// with those rebuilt from the WAL: one line per difference (table, key, what differs).
pub fn cross_check(live: &TablesReport, wal: &TablesReport) -> Vec<String> {
    type Rows<'a> = BTreeMap<(String, String, String), &'a RowDiff>;
    fn lost_class(r: &RowDiff) -> bool {
        matches!(
            r.class,
            super::RowClass::LostInsert
                | super::RowClass::LostUpdate
                | super::RowClass::LostDelete
                | super::RowClass::Conflict
        )
    }
    fn index(t: &TablesReport) -> Rows<'_> {
        let mut m = BTreeMap::new();
        for tr in &t.tables {
            for r in tr.rows.iter().filter(|r| lost_class(r)) {
                let key = serde_json::to_string(&r.key).unwrap_or_default();
                m.insert(
                    (
                        tr.database.clone(),
                        format!("{}.{}", tr.schema, tr.table),
                        key,
                    ),
                    r,
                );
            }
        }
        m
    }
    // Tables the WAL path could not decide are not differences (they are named apart).
    let undecided_in = |r: &TablesReport| -> HashSet<(String, String)> {
        r.tables
            .iter()
            .filter(|t| !t.not_examined.is_empty() || t.error.is_some())
            .map(|t| (t.database.clone(), format!("{}.{}", t.schema, t.table)))
            .collect()
    };
    let undecided = undecided_in(wal);
    // A table the live diff could not compare has no rows to check against.
    let live_failed = undecided_in(live);
    let (a, b) = (index(live), index(wal));
    let mut out = Vec::new();
    let values = |v: &Option<RowVersion>| v.as_ref().map(|v| (v.xmin, v.values.clone()));
    for (k, l) in &a {
        match b.get(k) {
            None if undecided.contains(&(k.0.clone(), k.1.clone())) => {}
            None => out.push(format!(
                "{}.{} key {}: {:?} in the live diff, absent from the WAL's",
                k.0, k.1, k.2, l.class
            )),
            Some(w) => {
                if l.class != w.class {
                    out.push(format!(
                        "{}.{} key {}: {:?} live, {:?} from the WAL",
                        k.0, k.1, k.2, l.class, w.class
                    ));
                } else if values(&l.former) != values(&w.former) {
                    out.push(format!(
                        "{}.{} key {}: the former version differs (live {}, WAL {})",
                        k.0,
                        k.1,
                        k.2,
                        serde_json::to_string(&l.former.as_ref().map(|v| &v.values))
                            .unwrap_or_default(),
                        serde_json::to_string(&w.former.as_ref().map(|v| &v.values))
                            .unwrap_or_default()
                    ));
                } else if values(&l.new) != values(&w.new) {
                    out.push(format!(
                        "{}.{} key {}: the new primary's version differs between the two reads",
                        k.0, k.1, k.2
                    ));
                }
            }
        }
    }
    for (k, w) in &b {
        if !a.contains_key(k) && !live_failed.contains(&(k.0.clone(), k.1.clone())) {
            out.push(format!(
                "{}.{} key {}: {:?} from the WAL, absent from the live diff",
                k.0, k.1, k.2, w.class
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsn::Xid;
    use crate::wal::tuple::RecordTuples;

    fn rec(lsn: u64, xid: u32, new: Vec<(Tid, NewTupleOp)>, delete: Option<Tid>) -> LoggedRecord {
        let rel = RelFileLocator {
            spc: 1663,
            db: 5,
            rel: 16400,
        };
        LoggedRecord {
            lsn: Lsn(lsn),
            xid: Xid(xid),
            rel,
            tuples: RecordTuples {
                new: new
                    .into_iter()
                    .map(|(tid, op)| NewTuple {
                        lsn: Lsn(lsn),
                        xid: Xid(xid),
                        rel,
                        tid,
                        op,
                        source: ImageSource::RecordData,
                        image: TupleImage::Complete(
                            HeapTuple::from_parts(1, 0, 24, &[0, 1, 2, 3, 4]).unwrap(),
                        ),
                    })
                    .collect(),
                old: None,
            },
            delete,
        }
    }

    fn tid(block: u32, offset: u16) -> Tid {
        Tid { block, offset }
    }

    #[test]
    fn chains_follow_rows_through_updates_and_deletes() {
        let recs = [
            rec(1, 10, vec![(tid(0, 1), NewTupleOp::Insert)], None),
            rec(
                2,
                10,
                vec![(
                    tid(0, 2),
                    NewTupleOp::Update {
                        hot: true,
                        old: tid(0, 1),
                    },
                )],
                None,
            ),
            rec(
                3,
                11,
                vec![(
                    tid(5, 3),
                    NewTupleOp::Update {
                        hot: false,
                        old: tid(4, 9),
                    },
                )],
                None,
            ),
            rec(4, 11, vec![], Some(tid(5, 3))),
            rec(5, 12, vec![], Some(tid(7, 7))),
        ];
        let refs: Vec<&LoggedRecord> = recs.iter().collect();
        let chains = build_chains(&refs);
        assert_eq!(chains.len(), 3);
        assert_eq!(chains[0].origin, None);
        assert_eq!(chains[0].steps.len(), 2);
        assert_eq!(chains[1].origin, Some(tid(4, 9)));
        assert_eq!(
            chains[1].steps.iter().map(|s| s.op).collect::<Vec<_>>(),
            ["update", "delete"]
        );
        assert_eq!(chains[2].origin, Some(tid(7, 7)));
        assert_eq!(parse_tid(&tid_text(tid(4, 9))), Some(tid(4, 9)));
    }

    #[test]
    fn cross_check_names_every_difference() {
        let v = |x: &str| RowVersion {
            xmin: 700,
            values: to_map(
                &["id".into(), "v".into()],
                vec![Some("1".into()), Some(x.into())],
            ),
            image: None,
        };
        let row = |x: &str| RowDiff {
            key: Some(to_map(&["id".into()], vec![Some("1".into())])),
            kind: DiffKind::MissingOnNew,
            class: super::super::RowClass::LostInsert,
            former: Some(v(x)),
            new: None,
        };
        let report = |x: &str| {
            let mut t = empty_table("db", "public", "t");
            t.rows.push(row(x));
            TablesReport {
                tables: vec![t],
                ..TablesReport::default()
            }
        };
        assert!(cross_check(&report("a"), &report("a")).is_empty());
        let d = cross_check(&report("a"), &report("tampered"));
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].contains("former version differs"), "{d:?}");
        assert_eq!(cross_check(&report("a"), &TablesReport::default()).len(), 1);
    }
}
