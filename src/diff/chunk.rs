//! Units of work and the planners that produce them.
//!
//! A [`WorkUnit`] is a table plus a scope: the whole table, a range of the leading primary key
//! column, or a list of keys. The [`FullTablePlanner`] covers every row with key ranges; a
//! WAL-guided planner can instead produce units for just the keys lost transactions touched
//! (`Scope::Keys`), and the rest of the pipeline (digests, bisection, row fetch,
//! classification) stays the same.

use futures_util::future::BoxFuture;

use super::catalog::TablePair;
use super::error::{DiffError, Node};
use super::sql::{ident, typed};
use crate::pg::Session;

/// One end of a range of the leading key column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bound {
    /// An integer key value.
    Int(i64),
    /// Any other type, as its text output.
    Text(String),
}

impl Bound {
    fn sql(&self, ty: &str) -> String {
        match self {
            Bound::Int(v) => v.to_string(),
            Bound::Text(s) => typed(Some(s), ty),
        }
    }
}

/// `lo <= key < hi` on the leading key column (`None`: unbounded).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRange {
    /// Inclusive lower bound.
    pub lo: Option<Bound>,
    /// Exclusive upper bound.
    pub hi: Option<Bound>,
}

impl KeyRange {
    /// The SQL predicate (`true` when unbounded).
    pub fn predicate(&self, col: &str, ty: &str) -> String {
        let c = ident(col);
        match (&self.lo, &self.hi) {
            (None, None) => "true".into(),
            (Some(l), None) => format!("{c} >= {}", l.sql(ty)),
            (None, Some(h)) => format!("{c} < {}", h.sql(ty)),
            (Some(l), Some(h)) => format!("({c} >= {} AND {c} < {})", l.sql(ty), h.sql(ty)),
        }
    }
}

/// What part of a table a unit covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every row.
    All,
    /// A range of the leading key column.
    Range(KeyRange),
    /// These primary keys (text values in key order), e.g. from WAL.
    Keys(Vec<Vec<Option<String>>>),
}

/// A table and the part of it to compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkUnit {
    /// Index into the table list being compared.
    pub table: usize,
    /// The part.
    pub scope: Scope,
}

/// How the first pass splits a unit into chunks (one digest per chunk).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunking {
    /// Integer leading key: chunk `b` holds `lo + b*step <= key < lo + (b+1)*step`.
    IntStep {
        /// The smallest key on either node.
        lo: i64,
        /// Key values per chunk.
        step: i64,
    },
    /// Any sortable leading key: chunk `j` holds `bounds[j-1] <= key < bounds[j]`.
    Bounds(Vec<String>),
    /// No key: chunk = `digest & mask` (whole-row multisets).
    HashMask(i64),
    /// One chunk per unit.
    Single,
}

/// The plan for one table.
#[derive(Clone, Debug)]
pub struct TablePlan {
    /// The units, in order.
    pub units: Vec<WorkUnit>,
    /// How each unit's first pass is chunked.
    pub chunking: Chunking,
    /// Estimated rows (for progress and rate limiting).
    pub estimated_rows: u64,
    /// Estimated bytes per row (for `--max-rate` in bytes).
    pub row_bytes: f64,
}

/// How a planner decided one table (what the report shows as `method` and `fallback_reason`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The method whose plan was returned (`None`: not compared).
    pub method: super::report::Method,
    /// Why the WAL-guided method was not used, when it was not.
    pub fallback_reason: Option<String>,
    /// Keys the plan compares (`Method::Wal` only).
    pub keys: u64,
}

/// Produces the units of one table.
pub trait Planner: Sync {
    /// Plans table `index` (`pair`), with read access to both nodes' sessions.
    fn plan<'a>(
        &'a self,
        index: usize,
        pair: &'a TablePair,
        new: &'a Session,
        former: &'a Session,
    ) -> BoxFuture<'a, Result<TablePlan, DiffError>>;

    /// How the last plan of `pair` was decided (`None`: the full method, nothing to note).
    fn decision(&self, _pair: &TablePair) -> Option<Decision> {
        None
    }
}

/// Whether a type oid is int2, int4 or int8.
pub fn is_integer_type(oid: u32) -> bool {
    matches!(oid, 20 | 21 | 23)
}

/// Covers every row: integer keys by arithmetic buckets over `[min, max]` of both nodes, other
/// keys by boundaries sampled (`TABLESAMPLE SYSTEM`) on the new side, keyless tables by digest.
#[derive(Clone, Debug)]
pub struct FullTablePlanner {
    /// Rows per first-pass chunk.
    pub chunk_rows: u64,
    /// With a rate limit, tables are cut into units of a quarter second's budget each.
    pub max_rate: Option<super::options::MaxRate>,
}

/// Most chunks for a non-integer key (each row costs log2(chunks) comparisons).
const MAX_BOUND_CHUNKS: u64 = 1024;

/// A failed query on `node` while comparing `pair`, naming the server, table and step.
pub(crate) fn query_err(
    node: Node,
    s: &Session,
    pair: &TablePair,
    what: &str,
    e: crate::pg::PgError,
) -> DiffError {
    DiffError::Query {
        node,
        target: s.target().to_string(),
        table: format!("{}.{}", pair.database, pair.display_name()),
        what: what.to_string(),
        source: e,
    }
}

impl FullTablePlanner {
    async fn plan_table(
        &self,
        index: usize,
        pair: &TablePair,
        new: &Session,
        former: &Session,
    ) -> Result<TablePlan, DiffError> {
        let def = pair.new.as_ref().or(pair.former.as_ref());
        let (reltuples, relpages) = def.map(|d| (d.reltuples, d.relpages)).unwrap_or((0.0, 0));
        let row_bytes = if reltuples > 0.0 {
            (relpages as f64 * 8192.0 / reltuples).max(1.0)
        } else {
            100.0
        };
        let slice_rows = self
            .max_rate
            .map(|r| super::throttle::RateLimiter::new(r).slice_rows(row_bytes));
        let table = pair.sql_name();
        let whole = |chunking, est| TablePlan {
            units: vec![WorkUnit {
                table: index,
                scope: Scope::All,
            }],
            chunking,
            estimated_rows: est,
            row_bytes,
        };
        if pair.key.is_empty() {
            let est = reltuples.max(0.0) as u64;
            let buckets = (est / self.chunk_rows.max(1)).max(1).next_power_of_two();
            return Ok(whole(Chunking::HashMask(buckets as i64 - 1), est));
        }
        let kcol = pair.column(&pair.key[0]).expect("key column is common");
        let kq = ident(&kcol.name);
        if is_integer_type(kcol.type_oid) {
            let sql = format!(
                "SELECT (SELECT {kq}::int8 FROM {table} ORDER BY {kq} LIMIT 1), \
                        (SELECT {kq}::int8 FROM {table} ORDER BY {kq} DESC LIMIT 1)"
            );
            let (rn, rf) = tokio::join!(
                new.query_one(sql.as_str(), &[]),
                former.query_one(sql.as_str(), &[])
            );
            let rn = rn.map_err(|e| query_err(Node::New, new, pair, "reading the key range", e))?;
            let rf =
                rf.map_err(|e| query_err(Node::Former, former, pair, "reading the key range", e))?;
            let mins = [rn.get::<_, Option<i64>>(0), rf.get::<_, Option<i64>>(0)];
            let maxs = [rn.get::<_, Option<i64>>(1), rf.get::<_, Option<i64>>(1)];
            let lo = mins.iter().flatten().min().copied();
            let hi = maxs.iter().flatten().max().copied();
            let (Some(lo), Some(hi)) = (lo, hi) else {
                return Ok(whole(Chunking::Single, 0));
            };
            let span = hi as i128 - lo as i128 + 1;
            if span > i64::MAX as i128 {
                // (key - lo) could overflow: fall back to sampled boundaries.
                return self
                    .plan_bounds(index, pair, new, reltuples, row_bytes, slice_rows)
                    .await;
            }
            let est = if reltuples >= 0.0 {
                reltuples as u64
            } else {
                span as u64
            };
            let chunks = (est / self.chunk_rows.max(1)).clamp(1, 1 << 20) as i128;
            let step = ((span + chunks - 1) / chunks).max(1) as i64;
            let n_chunks = ((span + step as i128 - 1) / step as i128) as i64;
            let mut units = Vec::new();
            match slice_rows {
                None => units.push(WorkUnit {
                    table: index,
                    scope: Scope::All,
                }),
                Some(slice) => {
                    let per = ((slice / self.chunk_rows.max(1)).max(1)) as i64;
                    let mut b = 0i64;
                    while b < n_chunks {
                        let e = (b + per).min(n_chunks);
                        let lo_b = if b == 0 {
                            None
                        } else {
                            Some(Bound::Int(lo + b * step))
                        };
                        let hi_b = if e >= n_chunks {
                            None
                        } else {
                            Some(Bound::Int(lo + e * step))
                        };
                        units.push(WorkUnit {
                            table: index,
                            scope: Scope::Range(KeyRange { lo: lo_b, hi: hi_b }),
                        });
                        b = e;
                    }
                }
            }
            return Ok(TablePlan {
                units,
                chunking: Chunking::IntStep { lo, step },
                estimated_rows: est,
                row_bytes,
            });
        }
        self.plan_bounds(index, pair, new, reltuples, row_bytes, slice_rows)
            .await
    }

    async fn plan_bounds(
        &self,
        index: usize,
        pair: &TablePair,
        new: &Session,
        reltuples: f64,
        row_bytes: f64,
        slice_rows: Option<u64>,
    ) -> Result<TablePlan, DiffError> {
        let est = reltuples.max(0.0) as u64;
        let kcol = pair.column(&pair.key[0]).expect("key column is common");
        let kq = ident(&kcol.name);
        let chunks = (est / self.chunk_rows.max(1)).min(MAX_BOUND_CHUNKS);
        let single = TablePlan {
            units: vec![WorkUnit {
                table: index,
                scope: Scope::All,
            }],
            chunking: Chunking::Single,
            estimated_rows: est,
            row_bytes,
        };
        if chunks < 2 {
            return Ok(single);
        }
        let pct = (100.0 * (chunks as f64 * 16.0) / est as f64).clamp(0.001, 100.0);
        let fracs: Vec<f64> = (1..chunks).map(|i| i as f64 / chunks as f64).collect();
        let sql = format!(
            "SELECT pg_catalog.percentile_disc($1::float8[]) WITHIN GROUP (ORDER BY {kq})::text[] \
             FROM (SELECT {kq} FROM {} TABLESAMPLE SYSTEM ({pct})) s",
            pair.sql_name()
        );
        let row = new
            .query_one(sql.as_str(), &[&fracs])
            .await
            .map_err(|e| query_err(Node::New, new, pair, "sampling key boundaries", e))?;
        let mut bounds: Vec<String> = row
            .get::<_, Option<Vec<Option<String>>>>(0)
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .collect();
        bounds.dedup();
        if bounds.is_empty() {
            return Ok(single);
        }
        let mut units = Vec::new();
        match slice_rows {
            None => units.push(WorkUnit {
                table: index,
                scope: Scope::All,
            }),
            Some(slice) => {
                let per = (slice / self.chunk_rows.max(1)).max(1) as usize;
                let mut lo: Option<Bound> = None;
                for (i, b) in bounds.iter().enumerate() {
                    if (i + 1) % per == 0 {
                        let hi = Some(Bound::Text(b.clone()));
                        units.push(WorkUnit {
                            table: index,
                            scope: Scope::Range(KeyRange {
                                lo: lo.clone(),
                                hi: hi.clone(),
                            }),
                        });
                        lo = hi;
                    }
                }
                units.push(WorkUnit {
                    table: index,
                    scope: Scope::Range(KeyRange { lo, hi: None }),
                });
            }
        }
        Ok(TablePlan {
            units,
            chunking: Chunking::Bounds(bounds),
            estimated_rows: est,
            row_bytes,
        })
    }
}

impl Planner for FullTablePlanner {
    fn plan<'a>(
        &'a self,
        index: usize,
        pair: &'a TablePair,
        new: &'a Session,
        former: &'a Session,
    ) -> BoxFuture<'a, Result<TablePlan, DiffError>> {
        Box::pin(self.plan_table(index, pair, new, former))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_predicates() {
        let r = KeyRange {
            lo: Some(Bound::Int(5)),
            hi: Some(Bound::Int(9)),
        };
        assert_eq!(r.predicate("id", "integer"), "(\"id\" >= 5 AND \"id\" < 9)");
        let t = KeyRange {
            lo: None,
            hi: Some(Bound::Text("it's".into())),
        };
        assert_eq!(t.predicate("k k", "text"), "\"k k\" < 'it''s'::text");
        assert_eq!(KeyRange::default().predicate("x", "int"), "true");
    }
}
