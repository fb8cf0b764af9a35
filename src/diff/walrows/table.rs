//! One table's lost rows: the chains followed, each final image decoded and classified.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::chains::{build_chains, record_tids, Ctx, Resolved};
use super::model::{pg, DbRows, TableInfo, WalRowsError, PER_QUERY};
use super::shapes::{empty_table, key_map, not_examined, tid_text};
use crate::diff::bisect::Key;
use crate::diff::classify::xid_follows_or_equals;
use crate::diff::report::{
    DiffKind, ImageOrigin, Method, NotExamined, RowDiff, RowVersion, TableReport,
};
use crate::diff::sql::qualified;
use crate::evidence::ddl::DdlAction;
use crate::finding::{Finding, FindingId};
use crate::values::{deform, Datum, RelDesc, Varlena};
use crate::wal::heap::Tid;
use crate::wal::tuple::TupleImage;
use crate::wal::tuplelog::LoggedRecord;
use crate::wal::RelFileLocator;

impl DbRows<'_, '_> {
    pub(super) async fn table(
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
}
