//! The WAL's answer checked against the live row diff: every difference between the two, named.

use std::collections::{BTreeMap, HashSet};

use crate::diff::report::{RowDiff, RowVersion, TablesReport};

/// Compares the lost rows (lost inserts, updates, deletes and conflicts) of the live row diff
/// with those rebuilt from the WAL: one line per difference (table, key, what differs).
pub fn cross_check(live: &TablesReport, wal: &TablesReport) -> Vec<String> {
    type Rows<'a> = BTreeMap<(String, String, String), &'a RowDiff>;
    fn lost_class(r: &RowDiff) -> bool {
        matches!(
            r.class,
            crate::diff::RowClass::LostInsert
                | crate::diff::RowClass::LostUpdate
                | crate::diff::RowClass::LostDelete
                | crate::diff::RowClass::Conflict
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
