//! Server-side row hashing: only digests cross the network.
//!
//! A row's digest is `hashtextextended(ROW(c1, …, cn)::text, 0)`: the 64-bit hash of the row's
//! text form under pinned output settings (UTC, ISO dates, `extra_float_digits = 3`, hex bytea),
//! so every value that prints differently hashes differently: `1.0` vs `1.00`, `-0` vs `0`,
//! `NaN`, a microsecond of a timestamp, key order inside `json` (not `jsonb`). It is stable
//! between servers of the same major version. `hash_record_extended` is not used: it hashes
//! `1.0` and `1.00` (numeric) alike, and has no hash support for `json`, `point`, `xml`.
//!
//! A chunk's digest is `(count(*), bit_xor(digest))` for tables with a primary key: the rows
//! of a chunk are distinct (their keys differ), so two different row sets of a chunk collide
//! only if the XOR of the digests of their symmetric difference is zero, about 2^-64 per chunk
//! for digests that behave like random values; XOR is also the cheapest aggregate (measured in
//! BENCHMARKS.md, `sum(int8)` accumulates in 128 bits and costs more). Tables without a key
//! use `sum(digest)` (exact, numeric) instead: XOR cancels pairs, so `{A, A}` and `{B, B}`
//! would collide there, while the sums differ.

use super::catalog::Column;
use super::sql::ident;

/// The digest of one row over `cols`.
pub fn row_hash(cols: &[Column]) -> String {
    let list: Vec<String> = cols.iter().map(|c| ident(&c.name)).collect();
    format!(
        "pg_catalog.hashtextextended(ROW({})::text, 0)",
        list.join(", ")
    )
}

/// `ARRAY["a"::text, …]`: columns as their text output.
pub fn text_array(names: &[String]) -> String {
    if names.is_empty() {
        return "ARRAY[]::text[]".into();
    }
    let list: Vec<String> = names
        .iter()
        .map(|n| format!("{}::text", ident(n)))
        .collect();
    format!("ARRAY[{}]", list.join(", "))
}

/// The hashing expressions the benchmark compares (name, per-row expression over `t`).
pub const ALTERNATIVES: &[(&str, &str)] = &[
    (
        "sum(hashtextextended(t::text))",
        "SELECT count(*), sum(pg_catalog.hashtextextended(t::text, 0)) FROM {t} t",
    ),
    (
        "bit_xor(hashtextextended(t::text))",
        "SELECT count(*), pg_catalog.bit_xor(pg_catalog.hashtextextended(t::text, 0)) FROM {t} t",
    ),
    (
        "sum(hash_record_extended(t))",
        "SELECT count(*), sum(pg_catalog.hash_record_extended(t, 0)) FROM {t} t",
    ),
    (
        "md5(t::text) (first 8 bytes summed)",
        "SELECT count(*), sum(('x' || pg_catalog.left(pg_catalog.md5(t::text), 16))::bit(64)::int8) FROM {t} t",
    ),
    (
        "failover-verify pass 1: bit_xor per 256-row chunk",
        "SELECT (id::int8 - 1) / 256, count(*), pg_catalog.bit_xor(pg_catalog.hashtextextended(ROW(id, a, b, c, d, e)::text, 0))::text FROM {t} t GROUP BY 1",
    ),
    (
        "same with sum per 256-row chunk",
        "SELECT (id::int8 - 1) / 256, count(*), sum(pg_catalog.hashtextextended(ROW(id, a, b, c, d, e)::text, 0))::text FROM {t} t GROUP BY 1",
    ),
    ("count(*)", "SELECT count(*) FROM {t} t"),
];
