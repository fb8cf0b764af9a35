//! A check's rows evaluated by its comparison mode: keys indexed, values compared, findings.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::compare::{display_value, CompareMode, Comparison, EvalError, Evaluation, Row};

fn get<'a>(row: &'a Row, col: &str) -> Option<&'a Value> {
    row.iter().find(|(c, _)| c == col).map(|(_, v)| v)
}

fn columns_of(rows: &[Row]) -> Vec<String> {
    rows.first()
        .map(|r| r.iter().map(|(c, _)| c.clone()).collect())
        .unwrap_or_default()
}

fn require(
    rows: &[Row],
    cols: &[String],
    field: &'static str,
    node: &'static str,
) -> Result<(), EvalError> {
    // An empty result has no columns to check.
    let Some(first) = rows.first() else {
        return Ok(());
    };
    match cols.iter().find(|c| get(first, c).is_none()) {
        Some(c) => Err(EvalError::MissingColumn {
            column: c.clone(),
            field,
            node,
        }),
        None => Ok(()),
    }
}

/// The rows of one node by key (canonical JSON of the key values); duplicate keys fail.
fn index<'a>(
    rows: &'a [Row],
    key: &[String],
    node: &'static str,
) -> Result<BTreeMap<String, &'a Row>, EvalError> {
    let mut map = BTreeMap::new();
    for row in rows {
        let k = key_id(row, key);
        if map.insert(k, row).is_some() {
            return Err(EvalError::DuplicateKey {
                node,
                key: key_display(row, key),
            });
        }
    }
    Ok(map)
}

fn key_values(row: &Row, key: &[String]) -> Vec<Value> {
    key.iter()
        .map(|k| get(row, k).cloned().unwrap_or(Value::Null))
        .collect()
}

fn key_id(row: &Row, key: &[String]) -> String {
    serde_json::to_string(&key_values(row, key)).unwrap_or_default()
}

fn key_display(row: &Row, key: &[String]) -> String {
    if key.is_empty() {
        return row
            .first()
            .map(|(_, v)| display_value(v))
            .unwrap_or_default();
    }
    key_values(row, key)
        .iter()
        .map(display_value)
        .collect::<Vec<_>>()
        .join(".")
}

fn to_map(row: &Row) -> BTreeMap<String, Value> {
    row.iter().cloned().collect()
}

/// A numeric value: exact for integers, f64 otherwise; numeric text parses too.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn parse(v: &Value) -> Option<Option<Num>> {
        match v {
            Value::Null => Some(None),
            Value::Number(n) => Some(Some(match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Num::Int(i as i128),
                (None, Some(u)) => Num::Int(u as i128),
                _ => Num::Float(n.as_f64()?),
            })),
            Value::String(s) => {
                let s = s.trim();
                if let Ok(i) = s.parse::<i128>() {
                    Some(Some(Num::Int(i)))
                } else {
                    s.parse::<f64>().ok().map(|f| Some(Num::Float(f)))
                }
            }
            _ => None,
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn greater(self, other: Num) -> bool {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a > b,
            (a, b) => a.as_f64() > b.as_f64(),
        }
    }

    fn minus(self, other: Num) -> Value {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => i64::try_from(a - b)
                .map(Value::from)
                .unwrap_or_else(|_| Value::String((a - b).to_string())),
            (a, b) => serde_json::Number::from_f64(a.as_f64() - b.as_f64())
                .map(Value::Number)
                .unwrap_or(Value::Null),
        }
    }
}

/// Compares the rows of the new (`new`) and former (`former`) primary by `cmp`. A node the
/// mode does not use may be `None`; one it uses counts as having no rows when `None`.
pub fn evaluate(
    cmp: &Comparison,
    new: Option<&[Row]>,
    former: Option<&[Row]>,
) -> Result<Evaluation, EvalError> {
    let new = new.unwrap_or(&[]);
    let former = former.unwrap_or(&[]);
    let key = &cmp.key;
    match cmp.mode {
        CompareMode::RowsOnFormer | CompareMode::RowsOnNew => {
            let (rows, node) = if cmp.mode == CompareMode::RowsOnFormer {
                (former, "former")
            } else {
                (new, "new")
            };
            require(rows, key, "key", node)?;
            Ok(Evaluation {
                finding: !rows.is_empty(),
                columns: columns_of(rows),
                rows: rows.iter().map(to_map).collect(),
                keys: rows.iter().map(|r| key_display(r, key)).collect(),
                total: rows.len(),
            })
        }
        CompareMode::RowsOnlyOnFormer | CompareMode::RowsOnlyOnNew => {
            let (mine, theirs, me, them) = if cmp.mode == CompareMode::RowsOnlyOnFormer {
                (former, new, "former", "new")
            } else {
                (new, former, "new", "former")
            };
            require(mine, key, "key", me)?;
            require(theirs, key, "key", them)?;
            let other = index(theirs, key, them)?;
            index(mine, key, me)?;
            let only: Vec<&Row> = mine
                .iter()
                .filter(|r| !other.contains_key(&key_id(r, key)))
                .collect();
            Ok(Evaluation {
                finding: !only.is_empty(),
                columns: columns_of(mine),
                rows: only.iter().map(|r| to_map(r)).collect(),
                keys: only.iter().map(|r| key_display(r, key)).collect(),
                total: mine.len(),
            })
        }
        CompareMode::ValuesDiffer | CompareMode::SideBySide => {
            let values: Vec<String> = if cmp.values.is_empty() {
                let mut cols = columns_of(former);
                for c in columns_of(new) {
                    if !cols.contains(&c) {
                        cols.push(c);
                    }
                }
                cols.retain(|c| !key.contains(c));
                cols
            } else {
                cmp.values.clone()
            };
            require(new, key, "key", "new")?;
            require(former, key, "key", "former")?;
            require(new, &values, "values", "new")?;
            require(former, &values, "values", "former")?;
            let n = index(new, key, "new")?;
            let f = index(former, key, "former")?;
            let side_by_side = cmp.mode == CompareMode::SideBySide;
            let mut columns: Vec<String> = key.clone();
            for v in &values {
                columns.push(format!("new_{v}"));
                columns.push(format!("former_{v}"));
            }
            columns.push(
                if side_by_side {
                    "differs"
                } else {
                    "present_on"
                }
                .into(),
            );
            let all: BTreeSet<&String> = n.keys().chain(f.keys()).collect();
            let mut out = Evaluation {
                total: all.len(),
                columns,
                ..Evaluation::default()
            };
            // Rows in the former primary's order, then keys only the new primary has.
            let order: Vec<(&Row, Option<&Row>, Option<&Row>)> = former
                .iter()
                .map(|r| (r, n.get(&key_id(r, key)).copied(), Some(r)))
                .chain(
                    new.iter()
                        .filter(|r| !f.contains_key(&key_id(r, key)))
                        .map(|r| (r, Some(r), None)),
                )
                .collect();
            for (any, nr, fr) in order {
                let pick = |r: Option<&Row>, c: &str| {
                    r.and_then(|r| get(r, c)).cloned().unwrap_or(Value::Null)
                };
                let differs = nr.is_none()
                    || fr.is_none()
                    || values.iter().any(|v| pick(nr, v) != pick(fr, v));
                if !differs && !side_by_side {
                    continue;
                }
                out.finding |= differs;
                let mut m: BTreeMap<String, Value> = key
                    .iter()
                    .map(|k| (k.clone(), pick(Some(any), k)))
                    .collect();
                for v in &values {
                    m.insert(format!("new_{v}"), pick(nr, v));
                    m.insert(format!("former_{v}"), pick(fr, v));
                }
                if side_by_side {
                    m.insert("differs".into(), Value::Bool(differs));
                } else {
                    let on = match (nr, fr) {
                        (Some(_), Some(_)) => "both",
                        (Some(_), None) => "new",
                        _ => "former",
                    };
                    m.insert("present_on".into(), Value::String(on.into()));
                }
                if differs {
                    out.keys.push(key_display(any, key));
                }
                out.rows.push(m);
            }
            Ok(out)
        }
        CompareMode::GreaterOnFormer if cmp.next.is_some() => greater_than_next(cmp, new, former),
        CompareMode::GreaterOnFormer => {
            let value = cmp.value.clone().unwrap_or_default();
            let vcol = std::slice::from_ref(&value);
            require(new, key, "key", "new")?;
            require(former, key, "key", "former")?;
            require(new, vcol, "value", "new")?;
            require(former, vcol, "value", "former")?;
            let n = index(new, key, "new")?;
            index(former, key, "former")?;
            let num = |r: &Row, node: &'static str| -> Result<Option<Num>, EvalError> {
                let v = get(r, &value).unwrap_or(&Value::Null);
                Num::parse(v).ok_or_else(|| EvalError::NotNumeric {
                    column: value.clone(),
                    node,
                    value: v.to_string(),
                })
            };
            let mut columns = key.clone();
            columns.extend([
                format!("new_{value}"),
                format!("former_{value}"),
                "ahead_by".into(),
            ]);
            let mut out = Evaluation {
                total: former.len(),
                columns,
                ..Evaluation::default()
            };
            for fr in former {
                let nr = n.get(&key_id(fr, key)).copied();
                let Some(fv) = num(fr, "former")? else {
                    continue;
                };
                let nv = match nr {
                    Some(r) => num(r, "new")?,
                    None => None,
                };
                let (ahead, by) = match nv {
                    Some(nv) => (fv.greater(nv), fv.minus(nv)),
                    // Missing (or NULL) on the new primary: everything is ahead.
                    None => (true, Value::Null),
                };
                if !ahead {
                    continue;
                }
                let mut m: BTreeMap<String, Value> = key
                    .iter()
                    .map(|k| (k.clone(), get(fr, k).cloned().unwrap_or(Value::Null)))
                    .collect();
                m.insert(
                    format!("new_{value}"),
                    nr.and_then(|r| get(r, &value))
                        .cloned()
                        .unwrap_or(Value::Null),
                );
                m.insert(
                    format!("former_{value}"),
                    get(fr, &value).cloned().unwrap_or(Value::Null),
                );
                m.insert("ahead_by".into(), by);
                out.keys.push(key_display(fr, key));
                out.rows.push(m);
            }
            out.finding = !out.rows.is_empty();
            Ok(out)
        }
    }
}

/// `greater_on_former` with `next`: the keys whose former `value` is at or past the new side's
/// `next` value (or that the new side lacks), with `advance_by = value - next + 1`.
fn greater_than_next(
    cmp: &Comparison,
    new: &[Row],
    former: &[Row],
) -> Result<Evaluation, EvalError> {
    let key = &cmp.key;
    let value = cmp.value.clone().unwrap_or_default();
    let next = cmp.next.clone().unwrap_or_default();
    require(new, key, "key", "new")?;
    require(former, key, "key", "former")?;
    require(new, std::slice::from_ref(&next), "next", "new")?;
    require(former, std::slice::from_ref(&value), "value", "former")?;
    let n = index(new, key, "new")?;
    index(former, key, "former")?;
    let num = |r: &Row, col: &str, node: &'static str| -> Result<Option<Num>, EvalError> {
        let v = get(r, col).unwrap_or(&Value::Null);
        Num::parse(v).ok_or_else(|| EvalError::NotNumeric {
            column: col.to_string(),
            node,
            value: v.to_string(),
        })
    };
    let mut columns = key.clone();
    columns.extend([
        format!("new_{next}"),
        format!("former_{value}"),
        "advance_by".into(),
    ]);
    let mut out = Evaluation {
        total: former.len(),
        columns,
        ..Evaluation::default()
    };
    for fr in former {
        let Some(fv) = num(fr, &value, "former")? else {
            continue;
        };
        let nr = n.get(&key_id(fr, key)).copied();
        let nv = match nr {
            Some(r) => num(r, &next, "new")?,
            None => None,
        };
        let by = match nv {
            // The former handed out `fv`; the new side hands out `nv` next: a collision when
            // nv <= fv, fixed by moving it fv - nv + 1 further.
            Some(nv) if nv.greater(fv) => continue,
            Some(nv) => fv
                .minus(nv)
                .as_i64()
                .map_or(Value::Null, |d| Value::from(d + 1)),
            None => Value::Null,
        };
        let mut m: BTreeMap<String, Value> = key
            .iter()
            .map(|k| (k.clone(), get(fr, k).cloned().unwrap_or(Value::Null)))
            .collect();
        m.insert(
            format!("new_{next}"),
            nr.and_then(|r| get(r, &next))
                .cloned()
                .unwrap_or(Value::Null),
        );
        m.insert(
            format!("former_{value}"),
            get(fr, &value).cloned().unwrap_or(Value::Null),
        );
        m.insert("advance_by".into(), by);
        out.keys.push(key_display(fr, key));
        out.rows.push(m);
    }
    out.finding = !out.rows.is_empty();
    Ok(out)
}
