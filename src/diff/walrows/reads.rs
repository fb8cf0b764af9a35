//! Rows read back from the new primary: pre-images at ctids, and rows by primary key.

use std::collections::HashMap;

use crate::diff::bisect::Key;
use crate::diff::classify::xid_follows_or_equals;
use crate::diff::hash::text_array;
use crate::diff::report::{ImageOrigin, RowVersion, TableReport};
use crate::diff::sql::{ident, qualified, typed};
use crate::wal::heap::Tid;

use super::chains::PreImage;
use crate::diff::bisect::to_map;

use super::model::{pg, DbRows, TableInfo, WalRowsError, PER_QUERY};
use super::shapes::{parse_tid, tid_text};

impl DbRows<'_, '_> {
    /// The visible rows at `tids` on the new primary whose xmin precedes the switchpoint.
    pub(super) async fn pre_images(
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
    pub(super) async fn by_key(
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
