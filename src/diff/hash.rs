//! Server-side row hashing: only digests cross the network.
//!
//! A row's digest is `hashtextextended(ROW(c1, …, cn)::text, 0)`: the 64-bit hash of the row's
//! text form under pinned output settings (UTC, ISO dates, `extra_float_digits = 3`, hex bytea),
//! so every value that prints differently hashes differently: `1.0` vs `1.00`, `-0` vs `0`,
//! `NaN`, a microsecond of a timestamp, key order inside `json` (not `jsonb`). It is stable
//! between servers of the same major version. `hash_record_extended` is not used: it hashes
//! `1.0` and `1.00` (numeric) alike, and has no hash support for `json`, `point`, `xml`.
//!
//! A chunk's digest is `(count(*), sum(digest))` with the sum exact (numeric): with 64-bit
//! digests that behave like random values, two different row multisets of a chunk have the
//! same digest with probability about 2^-64 per chunk. SUM and not XOR: XOR cancels pairs, so
//! `{A, A}` and `{B, B}` would collide in a table without a key.

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
    ("count(*)", "SELECT count(*) FROM {t} t"),
];
