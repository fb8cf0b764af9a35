//! Row chains through the lost WAL (insert, update, delete by ctid) and each row's final image.

use std::collections::HashMap;

use crate::diff::bisect::Key;
use crate::diff::classify::Attribution;
use crate::diff::report::ImageOrigin;
use crate::lsn::Lsn;
use crate::values::toast::assemble;
use crate::values::{decode_row, RelDesc, Value};
use crate::wal::heap::Tid;
use crate::wal::tuple::{HeapTuple, NewTuple, NewTupleOp, OldKind, TupleImage};
use crate::wal::tuplelog::{LoggedRecord, TupleLog};
use crate::wal::RelFileLocator;

use super::shapes::{origin_of, tid_text};

/// A row on the new primary at a pre-image's ctid.
#[derive(Debug, Clone)]
pub(super) struct PreImage {
    pub(super) xmin: u32,
    pub(super) pre_switch: bool,
    pub(super) key: Key,
    pub(super) values: serde_json::Map<String, serde_json::Value>,
}

/// One lost change to a row.
#[derive(Debug, Clone, Copy)]
pub(super) struct Step<'a> {
    pub(super) lsn: Lsn,
    pub(super) xid: u32,
    /// The tid written (insert, update) or deleted.
    pub(super) tid: Tid,
    pub(super) op: &'static str,
    pub(super) new: Option<&'a NewTuple>,
    pub(super) rec: &'a LoggedRecord,
}

/// A row followed through the lost records.
#[derive(Debug)]
pub(super) struct Chain<'a> {
    /// Where it was at the switchpoint (`None`: inserted by a lost transaction).
    pub(super) origin: Option<Tid>,
    pub(super) steps: Vec<Step<'a>>,
}

/// The tids a record writes or deletes, with the operation.
pub(super) fn record_tids(r: &LoggedRecord) -> Vec<(Tid, &'static str)> {
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
pub(super) fn build_chains<'a>(recs: &[&'a LoggedRecord]) -> Vec<Chain<'a>> {
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
pub(super) struct Resolved {
    /// Where the row was at the switchpoint (`None`: inserted by a lost transaction).
    pub(super) origin: Option<Tid>,
    pub(super) origin_key: Option<Key>,
    pub(super) version: Option<Final>,
}

/// The final tuple of a row and what wrote it.
pub(super) struct Final {
    pub(super) tuple: HeapTuple,
    pub(super) tid: Tid,
    pub(super) xid: u32,
    pub(super) lsn: Lsn,
    pub(super) op: &'static str,
    pub(super) origin: ImageOrigin,
    pub(super) columns: Vec<crate::values::Column>,
    pub(super) externals: Vec<(String, crate::values::ToastPointer)>,
}

impl Final {
    /// The values as text, out-of-line ones assembled from `chunks`.
    pub(super) fn finish(
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
pub(super) struct Ctx<'a> {
    pub(super) log: &'a TupleLog,
    pub(super) rel: RelFileLocator,
    pub(super) desc: &'a RelDesc,
    pub(super) key_columns: &'a [String],
    pub(super) attribution: &'a Attribution,
}

impl Ctx<'_> {
    /// Replays a chain: its final version (decoded, not rendered) and its key at the
    /// switchpoint; or the step that failed and why.
    pub(super) fn rebuild<'s>(
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
    pub(super) fn old_bytes(&self, step: &Step<'_>, pre: Option<&PreImage>) -> Option<HeapTuple> {
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
