//! Units of work and the planners that produce them.
//!
//! A [`WorkUnit`] is a table plus a scope: the whole table, a range of the primary key, or a
//! list of keys. The [`FullTablePlanner`] covers every row with key ranges; a WAL-guided
//! planner can instead produce units for just the keys lost transactions touched
//! (`Scope::Keys`), and the rest of the pipeline (digests, bisection, row fetch,
//! classification) stays the same.
//!
//! A range covers the whole key, ordered as a row value `(k1, k2, …)`, so a table whose
//! leading key column has few distinct values (one tenant, many rows) still splits into small
//! ranges. The SQL of a composite range is not the row comparison
//! `(k1, k2) >= (…) AND (k1, k2) < (…)` itself: PostgreSQL 15's btree starts the scan at the
//! lower row bound but ends it only when the *first* column passes the upper one, so with one
//! tenant a 1,000-row range scanned the rest of the index (67 ms instead of 0.5 ms, estimated
//! at 1 row). [`KeyRange::predicate`] writes the same set of keys as an OR of arms, each
//! equalities on a key prefix plus a range of the next column
//! (`"tenant" = 1 AND "id" >= 1000 AND "id" < 2000`): every arm is an exact index range scan.

use std::fmt::Write as _;

use futures_util::future::BoxFuture;

use super::catalog::TablePair;
use super::error::{DiffError, Node};
use super::sql::{ident, typed};
use crate::pg::Session;

/// The primary key columns of a table, `(name, format_type)` in key order: what a [`KeyRange`]
/// compares, as one column or as a row value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyColumns(pub Vec<(String, String)>);

impl KeyColumns {
    /// The key of `pair` (its columns are common to both nodes).
    pub fn of(pair: &TablePair) -> Self {
        KeyColumns(
            pair.key
                .iter()
                .map(|k| {
                    let c = pair.column(k).expect("key column is common");
                    (c.name.clone(), c.ty.clone())
                })
                .collect(),
        )
    }

    /// True for a single-column key.
    pub fn single(&self) -> bool {
        self.0.len() == 1
    }

    /// The quoted column names, comma-separated (an `ORDER BY` list).
    pub fn list(&self) -> String {
        let cols: Vec<String> = self.0.iter().map(|(n, _)| ident(n)).collect();
        cols.join(", ")
    }

    /// `"k"`, or the row value `("k1", "k2")`.
    pub fn expr(&self) -> String {
        if self.single() {
            ident(&self.0[0].0)
        } else {
            format!("({})", self.list())
        }
    }

    /// A key as typed literals: `'v'::type`, or the row value `('v1'::t1, 'v2'::t2)`.
    pub fn literal(&self, values: &[String]) -> String {
        debug_assert_eq!(values.len(), self.0.len(), "a whole key");
        let lits: Vec<String> = values
            .iter()
            .zip(&self.0)
            .map(|(v, (_, ty))| typed(Some(v), ty))
            .collect();
        if self.single() {
            lits.join(", ")
        } else {
            format!("({})", lits.join(", "))
        }
    }

    /// `ARRAY["k1"::text, …]`: the key as the text outputs of its columns.
    pub fn text_array(&self) -> String {
        let cols: Vec<String> = self
            .0
            .iter()
            .map(|(n, _)| format!("{}::text", ident(n)))
            .collect();
        format!("ARRAY[{}]", cols.join(", "))
    }

    /// A query that returns, one `text[]` key per row in key order, the `parts - 1` keys that
    /// cut the rows of `source` (a `FROM` item, with its `WHERE` clause) into `parts` equal
    /// parts: the key at position `ceil(i * n / parts)` for `i` in `1..parts`, as
    /// `percentile_disc(i / parts)` picks it. A single-column key uses `percentile_disc`; a
    /// composite key numbers its rows in key order (the ordered-set aggregates take one
    /// column only).
    pub fn quantiles_sql(&self, source: &str, parts: u64) -> String {
        let parts = parts.max(1);
        if self.single() {
            let k = ident(&self.0[0].0);
            format!(
                "SELECT ARRAY[b] FROM pg_catalog.unnest((\
                 SELECT pg_catalog.percentile_disc(ARRAY(SELECT g::float8 / {parts} \
                 FROM pg_catalog.generate_series(1, {parts} - 1) g)) \
                 WITHIN GROUP (ORDER BY {k})::text[] FROM {source})) WITH ORDINALITY u(b, i) \
                 WHERE b IS NOT NULL ORDER BY i"
            )
        } else {
            format!(
                "SELECT s.k FROM (SELECT {arr}, pg_catalog.row_number() OVER (ORDER BY {list}), \
                 pg_catalog.count(*) OVER () FROM {source}) s(k, rn, n) \
                 WHERE s.rn < s.n AND (s.rn * {parts}) / s.n > ((s.rn - 1) * {parts}) / s.n \
                 ORDER BY s.rn",
                arr = self.text_array(),
                list = self.list()
            )
        }
    }

    /// The bucket of the key among sorted whole-key `bounds`: 0 below `bounds[0]`, `j` for
    /// `bounds[j-1] <= key < bounds[j]`, `bounds.len()` from the last one on.
    /// A binary search written as nested `CASE` (over row comparisons for a composite key):
    /// `width_bucket` on records compares them as records, 1.6 s against 0.27 s for 200,000
    /// `(int, int)` keys and 780 bounds, and on text walks the array (BENCHMARKS.md).
    pub fn bucket_sql(&self, bounds: &[Vec<String>]) -> String {
        // A binary search written out as a CASE tree, for single-column keys too:
        // `width_bucket(key, ARRAY[…])` walks a variable-width array from its start for every
        // probe (1 M text keys: 6.9–8.3 s against 1.8–2.7 s for the tree, BENCHMARKS.md).
        fn tree(
            k: &KeyColumns,
            e: &str,
            bounds: &[Vec<String>],
            lo: usize,
            hi: usize,
            out: &mut String,
        ) {
            if lo == hi {
                let _ = write!(out, "{lo}");
                return;
            }
            // Buckets lo..=hi; the key is in mid..=hi iff it is at or after bounds[mid - 1].
            let mid = (lo + hi).div_ceil(2);
            let _ = write!(out, "CASE WHEN {e} < {} THEN ", k.literal(&bounds[mid - 1]));
            tree(k, e, bounds, lo, mid - 1, out);
            out.push_str(" ELSE ");
            tree(k, e, bounds, mid, hi, out);
            out.push_str(" END");
        }
        let mut out = String::new();
        tree(self, &self.expr(), bounds, 0, bounds.len(), &mut out);
        out
    }
}

/// One end of a key range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bound {
    /// A value of a single-column integer key.
    Int(i64),
    /// A whole key: the text output of each key column, in key order.
    Key(Vec<String>),
}

impl Bound {
    fn sql(&self, key: &KeyColumns) -> String {
        match self {
            Bound::Int(v) => v.to_string(),
            Bound::Key(values) => key.literal(values),
        }
    }

    /// The bound's key values as text.
    fn values(&self) -> Vec<String> {
        match self {
            Bound::Int(v) => vec![v.to_string()],
            Bound::Key(values) => values.clone(),
        }
    }
}

/// One comparison of a composite range: key column `col` `op` the bound's value `val`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Cmp {
    col: usize,
    op: &'static str,
    val: String,
}

/// `lo <= key < hi` on a key of `n` columns (lexicographic order) as an OR of AND-ed arms, each
/// equalities on a prefix of the key and a range of the next column: `lo <= key` where the
/// first `j` columns equal `lo`'s and column `j` is greater (at or after it for the last
/// column), symmetrically for `hi`, and between the two the columns after their common prefix.
/// No arm: the range is empty. One empty arm: every key. Needs `lo < hi` when both are given,
/// as for every range cut at sorted bounds.
fn composite_arms(n: usize, lo: Option<&[String]>, hi: Option<&[String]>) -> Vec<Vec<Cmp>> {
    let eq = |vals: &[String], j: usize| -> Vec<Cmp> {
        (0..j)
            .map(|i| Cmp {
                col: i,
                op: "=",
                val: vals[i].clone(),
            })
            .collect()
    };
    let cmp = |col: usize, op: &'static str, vals: &[String]| Cmp {
        col,
        op,
        val: vals[col].clone(),
    };
    // Keys whose first `from` columns equal `l`'s: `key >= l` arm by arm.
    let lower = |l: &[String], from: usize| -> Vec<Vec<Cmp>> {
        (from..n)
            .map(|j| {
                let mut a = eq(l, j);
                a.push(cmp(j, if j + 1 < n { ">" } else { ">=" }, l));
                a
            })
            .collect()
    };
    // Keys whose first `from` columns equal `h`'s: `key < h` arm by arm.
    let upper = |h: &[String], from: usize| -> Vec<Vec<Cmp>> {
        (from..n)
            .map(|j| {
                let mut a = eq(h, j);
                a.push(cmp(j, "<", h));
                a
            })
            .collect()
    };
    match (lo, hi) {
        (None, None) => vec![Vec::new()],
        (Some(l), None) => lower(l, 0),
        (None, Some(h)) => upper(h, 0),
        (Some(l), Some(h)) => {
            // Equal text is the same literal, hence the same value.
            let m = l.iter().zip(h).take_while(|(a, b)| a == b).count();
            if m >= n {
                return Vec::new();
            }
            let mut between = eq(l, m);
            between.push(cmp(m, if m + 1 < n { ">" } else { ">=" }, l));
            between.push(cmp(m, "<", h));
            let mut arms = lower(l, m + 1);
            arms.push(between);
            arms.extend(upper(h, m + 1));
            arms
        }
    }
}

/// `lo <= key < hi` on the whole key (`None`: unbounded).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRange {
    /// Inclusive lower bound.
    pub lo: Option<Bound>,
    /// Exclusive upper bound.
    pub hi: Option<Bound>,
}

impl KeyRange {
    /// The SQL predicate (`true` when unbounded). For a composite key, the keys of the range
    /// in row-value order, written as index range scans (see the module documentation).
    pub fn predicate(&self, key: &KeyColumns) -> String {
        if !key.single() {
            let (lo, hi) = (
                self.lo.as_ref().map(Bound::values),
                self.hi.as_ref().map(Bound::values),
            );
            let arms = composite_arms(key.0.len(), lo.as_deref(), hi.as_deref());
            let sql: Vec<String> = arms
                .iter()
                .map(|arm| {
                    let parts: Vec<String> = arm
                        .iter()
                        .map(|c| {
                            let (name, ty) = &key.0[c.col];
                            format!("{} {} {}", ident(name), c.op, typed(Some(&c.val), ty))
                        })
                        .collect();
                    match parts.len() {
                        0 => "true".to_string(),
                        _ => parts.join(" AND "),
                    }
                })
                .collect();
            return match sql.len() {
                0 => "false".into(),
                1 => format!("({})", sql[0]),
                _ => format!("(({}))", sql.join(") OR (")),
            };
        }
        let c = key.expr();
        match (&self.lo, &self.hi) {
            (None, None) => "true".into(),
            (Some(l), None) => format!("{c} >= {}", l.sql(key)),
            (None, Some(h)) => format!("{c} < {}", h.sql(key)),
            (Some(l), Some(h)) => format!("({c} >= {} AND {c} < {})", l.sql(key), h.sql(key)),
        }
    }
}

/// What part of a table a unit covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every row.
    All,
    /// A range of the primary key.
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
    /// Single-column integer key: chunk `b` holds `lo + b*step <= key < lo + (b+1)*step`.
    IntStep {
        /// The smallest key on either node.
        lo: i64,
        /// Key values per chunk.
        step: i64,
    },
    /// Any other key: chunk `j` holds `bounds[j-1] <= key < bounds[j]`, each bound a whole
    /// key (the text output of each key column, in key order).
    Bounds(Vec<Vec<String>>),
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

/// Covers every row: single-column integer keys by arithmetic buckets over `[min, max]` of both
/// nodes, other keys (composite keys as a whole) by boundaries sampled (`TABLESAMPLE BERNOULLI`)
/// on the new side, keyless tables by digest.
#[derive(Clone, Debug)]
pub struct FullTablePlanner {
    /// Rows per first-pass chunk.
    pub chunk_rows: u64,
    /// With a rate limit, tables are cut into units of a quarter second's budget each.
    pub max_rate: Option<super::options::MaxRate>,
}

/// Most chunks for sampled boundaries (each row costs log2(chunks) key comparisons).
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

/// The whole keys of a [`KeyColumns::quantiles_sql`] result (a key with a NULL part is skipped:
/// primary key columns are never NULL).
pub(crate) fn keys_of(rows: &[tokio_postgres::Row]) -> Vec<Vec<String>> {
    rows.iter()
        .filter_map(|r| r.get::<_, Option<Vec<Option<String>>>>(0))
        .filter_map(|k| k.into_iter().collect::<Option<Vec<String>>>())
        .collect()
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
        if pair.key.len() == 1 && is_integer_type(kcol.type_oid) {
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
        let key = KeyColumns::of(pair);
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
        // Rows, not pages: `SYSTEM` samples whole pages, so in a table stored in key order the
        // sampled keys come in runs of one page each, and the chunks cut at them ranged from
        // 16 to 27,000 rows for a 977-row target (1 M rows, 1,024 chunks); `BERNOULLI` gave
        // 340 to 2,074, reading every page once (0.16 s instead of 0.08 s, in cache; the digests
        // take 3 s). On a table larger than memory that is one more sequential read.
        let pct = (100.0 * (chunks as f64 * 16.0) / est as f64).clamp(0.001, 100.0);
        let sql = key.quantiles_sql(
            &format!("{} TABLESAMPLE BERNOULLI ({pct})", pair.sql_name()),
            chunks,
        );
        let rows = new
            .query(sql.as_str(), &[])
            .await
            .map_err(|e| query_err(Node::New, new, pair, "sampling key boundaries", e))?;
        let mut bounds = keys_of(&rows);
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
                        let hi = Some(Bound::Key(b.clone()));
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
mod tests;
