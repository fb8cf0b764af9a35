//! Server-side row hashing: only digests cross the network.
//!
//! A row's digest mixes one 64-bit hash per column, each seeded with the column's position:
//! `hashint8extended(h1 # h2 # … # hn, 0)`, where `hi` is the type's own extended hash
//! function applied to the stored value wherever that function is exact (two values hash alike
//! only if they are the same value *and print the same*), and `hashtextextended(col::text, i)`
//! everywhere else:
//!
//! | type | `hi` | why exact |
//! |---|---|---|
//! | int2, int4, int8, oid | `hashintNextended` | one value, one binary form |
//! | bool | `hashint4extended(c::int4)` | |
//! | text, varchar | `hashtextextended(c COLLATE "C")` | `"C"` hashes the bytes (a nondeterministic collation would hash `a` and `A` alike) |
//! | timestamp | `timestamp_hash_extended` | the int64 microseconds |
//! | timestamptz | `timestamp_hash_extended(c::timestamp)` | sessions pin `TimeZone = UTC`, where the cast is a bijection |
//! | uuid | `uuid_hash_extended` | the 16 bytes |
//! | numeric | `hash_numeric_extended(c) # scale(c)` | the hash ignores trailing zeros, the display scale adds them back; NaN and ±Infinity (scale NULL) fall back to the text |
//! | anything else | `hashtextextended(c::text)` | the text form under pinned output settings (UTC, ISO dates, `extra_float_digits = 3`, hex bytea): `-0` vs `0`, `NaN`, key order in `json` all differ |
//!
//! A NULL column contributes a constant of its own (`-i`), so NULL and a value differ. The
//! outer `hashint8extended` mixes the row: without it, XOR over a chunk's rows would be linear
//! per column, and two rows swapping a column's values would cancel out. These functions are
//! the ones hash partitioning relies on, so they are the same on every platform and major
//! version. Measured on 1 M rows (BENCHMARKS.md), this digest costs about a third of
//! `hashtextextended(t::text, 0)`: most of that expression's time goes into text output
//! (timestamps and numerics above all), which the typed hashes skip.
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

/// The exact-value hash of column `c` seeded with `seed` (see the module docs), or NULL.
fn column_hash(c: &Column, seed: usize) -> String {
    let q = ident(&c.name);
    match c.type_oid {
        20 => format!("pg_catalog.hashint8extended({q}, {seed})"),
        21 => format!("pg_catalog.hashint2extended({q}, {seed})"),
        23 => format!("pg_catalog.hashint4extended({q}, {seed})"),
        26 => format!("pg_catalog.hashoidextended({q}, {seed})"),
        16 => format!("pg_catalog.hashint4extended({q}::pg_catalog.int4, {seed})"),
        25 | 1043 => format!("pg_catalog.hashtextextended({q} COLLATE \"C\", {seed})"),
        1114 => format!("pg_catalog.timestamp_hash_extended({q}, {seed})"),
        1184 => {
            format!("pg_catalog.timestamp_hash_extended({q}::pg_catalog.timestamp, {seed})")
        }
        2950 => format!("pg_catalog.uuid_hash_extended({q}, {seed})"),
        1700 => format!(
            "(pg_catalog.hash_numeric_extended({q}, {seed}) # \
             COALESCE(pg_catalog.scale({q})::pg_catalog.int8, \
             pg_catalog.hashtextextended({q}::pg_catalog.text, {seed})))"
        ),
        _ => format!("pg_catalog.hashtextextended({q}::pg_catalog.text, {seed})"),
    }
}

/// The digest of one row over `cols` (an int8 expression, never NULL).
pub fn row_hash(cols: &[Column]) -> String {
    if cols.is_empty() {
        return "0::pg_catalog.int8".into();
    }
    let parts: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let seed = i + 1;
            format!("COALESCE({}, -{seed})", column_hash(c, seed))
        })
        .collect();
    format!("pg_catalog.hashint8extended({}, 0)", parts.join(" # "))
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

/// The benchmark table's row digest as [`row_hash`] writes it (checked by a unit test).
macro_rules! typed_digest {
    () => {
        "pg_catalog.hashint8extended(COALESCE(pg_catalog.hashint4extended(id, 1), -1) # COALESCE(pg_catalog.hashint4extended(a, 2), -2) # COALESCE(pg_catalog.hashtextextended(b COLLATE \"C\", 3), -3) # COALESCE(pg_catalog.timestamp_hash_extended(c::timestamp, 4), -4) # COALESCE((pg_catalog.hash_numeric_extended(d, 5) # COALESCE(pg_catalog.scale(d)::int8, pg_catalog.hashtextextended(d::text, 5))), -5) # COALESCE(pg_catalog.hashtextextended(e COLLATE \"C\", 6), -6), 0)"
    };
}

/// The hashing expressions the benchmark compares (name, per-row expression over `t`).
pub const ALTERNATIVES: &[(&str, &str)] = &[
    (
        "sum(hashtextextended(t::text))",
        "SELECT count(*), sum(pg_catalog.hashtextextended(t::text, 0)) FROM {t} t",
    ),
    (
        "bit_xor(hashtextextended(t::text)) (the floor)",
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
        "bit_xor(typed per-column digest)",
        concat!(
            "SELECT count(*), pg_catalog.bit_xor(",
            typed_digest!(),
            ") FROM {t} t"
        ),
    ),
    (
        "text digest per 256-row chunk (session 1's pass 1)",
        "SELECT (id::int8 - 1) / 256, count(*), pg_catalog.bit_xor(pg_catalog.hashtextextended(ROW(id, a, b, c, d, e)::text, 0))::text FROM {t} t GROUP BY 1",
    ),
    (
        "failover-verify pass 1: typed digest per 256-row chunk",
        concat!(
            "SELECT (id::int8 - 1) / 256, count(*), pg_catalog.bit_xor(",
            typed_digest!(),
            ")::text FROM {t} t GROUP BY 1"
        ),
    ),
    ("count(*)", "SELECT count(*) FROM {t} t"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: &str, type_oid: u32) -> Column {
        Column {
            name: name.into(),
            ty: ty.into(),
            type_oid,
            generated: false,
        }
    }

    /// The benchmark measures the expression the tool runs.
    #[test]
    fn benchmark_digest_is_row_hash() {
        let cols = [
            col("id", "integer", 23),
            col("a", "integer", 23),
            col("b", "text", 25),
            col("c", "timestamp with time zone", 1184),
            col("d", "numeric", 1700),
            col("e", "text", 25),
        ];
        let squash = |s: &str| {
            s.replace("\"id\"", "id")
                .replace("\"a\"", "a")
                .replace("\"b\"", "b")
                .replace("\"c\"", "c")
                .replace("\"d\"", "d")
                .replace("\"e\"", "e")
                .replace("pg_catalog.timestamp,", "timestamp,")
                .replace("pg_catalog.int8,", "int8,")
                .replace("::pg_catalog.text", "::text")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(squash(&row_hash(&cols)), squash(typed_digest!()));
    }

    #[test]
    fn unknown_types_hash_their_text_and_nulls_have_a_constant() {
        let h = row_hash(&[col("j", "json", 114), col("f", "double precision", 701)]);
        assert!(
            h.contains("hashtextextended(\"j\"::pg_catalog.text, 1)"),
            "{h}"
        );
        assert!(
            h.contains("hashtextextended(\"f\"::pg_catalog.text, 2)"),
            "{h}"
        );
        assert!(h.contains("-1)") && h.contains("-2)"), "{h}");
        assert!(h.starts_with("pg_catalog.hashint8extended("), "{h}");
    }
}
