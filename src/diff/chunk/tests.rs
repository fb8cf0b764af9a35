//! Unit tests of the units of work and the planners that produce them.

use super::*;

fn key(cols: &[(&str, &str)]) -> KeyColumns {
    KeyColumns(
        cols.iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect(),
    )
}

fn k(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[test]
fn range_predicates() {
    let id = key(&[("id", "integer")]);
    let r = KeyRange {
        lo: Some(Bound::Int(5)),
        hi: Some(Bound::Int(9)),
    };
    assert_eq!(r.predicate(&id), "(\"id\" >= 5 AND \"id\" < 9)");
    let t = KeyRange {
        lo: None,
        hi: Some(Bound::Key(k(&["it's"]))),
    };
    assert_eq!(
        t.predicate(&key(&[("k k", "text")])),
        "\"k k\" < 'it''s'::text"
    );
    assert_eq!(KeyRange::default().predicate(&key(&[("x", "int")])), "true");
}

#[test]
fn composite_ranges_compare_row_values() {
    let tk = key(&[("tenant", "integer"), ("na\"me", "text")]);
    let r = KeyRange {
        lo: Some(Bound::Key(k(&["1", "b'c"]))),
        hi: Some(Bound::Key(k(&["2", ""]))),
    };
    assert_eq!(
        r.predicate(&tk),
        "((\"tenant\" = '1'::integer AND \"na\"\"me\" >= 'b''c'::text) \
         OR (\"tenant\" > '1'::integer AND \"tenant\" < '2'::integer) \
         OR (\"tenant\" = '2'::integer AND \"na\"\"me\" < ''::text))"
    );
    // Bounds sharing the leading value: one index range scan.
    let same = KeyRange {
        lo: Some(Bound::Key(k(&["1", "a"]))),
        hi: Some(Bound::Key(k(&["1", "b"]))),
    };
    assert_eq!(
        same.predicate(&tk),
        "(\"tenant\" = '1'::integer AND \"na\"\"me\" >= 'a'::text \
         AND \"na\"\"me\" < 'b'::text)"
    );
    let open = KeyRange {
        lo: Some(Bound::Key(k(&["1", "x"]))),
        hi: None,
    };
    assert_eq!(
        open.predicate(&tk),
        "((\"tenant\" > '1'::integer) OR (\"tenant\" = '1'::integer AND \"na\"\"me\" >= 'x'::text))"
    );
    assert_eq!(KeyRange::default().predicate(&tk), "(true)");
    assert!(tk
        .quantiles_sql("\"s\".\"t\"", 16)
        .contains("row_number() OVER (ORDER BY \"tenant\", \"na\"\"me\")"));
}

/// The arms of a composite range select exactly the keys `lo <= key < hi` in row-value
/// order, for every pair of bounds (and open ends) over a grid of 3-column keys.
#[test]
fn composite_arms_match_row_value_order() {
    let vals = ["0", "1", "2"];
    let mut keys: Vec<Vec<String>> = Vec::new();
    for a in vals {
        for b in vals {
            for c in vals {
                keys.push(k(&[a, b, c]));
            }
        }
    }
    let holds = |arm: &[Cmp], key: &[String]| {
        arm.iter().all(|c| {
            let (x, v) = (&key[c.col], &c.val);
            match c.op {
                "=" => x == v,
                ">" => x > v,
                ">=" => x >= v,
                "<" => x < v,
                op => panic!("{op}"),
            }
        })
    };
    let bounds: Vec<Option<&Vec<String>>> =
        std::iter::once(None).chain(keys.iter().map(Some)).collect();
    for lo in &bounds {
        for hi in &bounds {
            if matches!((lo, hi), (Some(l), Some(h)) if l > h) {
                continue;
            }
            let arms = composite_arms(3, lo.map(|v| v.as_slice()), hi.map(|v| v.as_slice()));
            assert!(arms.len() <= 5, "{lo:?} {hi:?}: {arms:?}");
            for key in &keys {
                let want = lo.is_none_or(|l| key >= l) && hi.is_none_or(|h| key < h);
                let got = arms.iter().filter(|a| holds(a, key)).count();
                // Exactly one arm per key: the arms are disjoint.
                assert_eq!(got, usize::from(want), "{lo:?} {hi:?} {key:?}: {arms:?}");
            }
        }
    }
}

/// A single non-integer key column gets the same binary search (no `width_bucket`).
#[test]
fn single_text_key_bucket_is_a_case_tree() {
    let tk = key(&[("name", "text")]);
    assert_eq!(
        tk.bucket_sql(&[k(&["b"]), k(&["d"])]),
        "CASE WHEN \"name\" < 'b'::text THEN 0 ELSE \
         CASE WHEN \"name\" < 'd'::text THEN 1 ELSE 2 END END"
    );
}

/// The bucket expressions, evaluated the way PostgreSQL would: the `CASE` tree of a
/// composite key numbers buckets exactly like `width_bucket` (0 below the first bound).
#[test]
fn composite_bucket_is_a_binary_search() {
    let tk = key(&[("a", "integer"), ("b", "integer")]);
    assert_eq!(tk.bucket_sql(&[]), "0");
    assert_eq!(
        tk.bucket_sql(&[k(&["1", "5"])]),
        "CASE WHEN (\"a\", \"b\") < ('1'::integer, '5'::integer) THEN 0 ELSE 1 END"
    );
    // Evaluate the tree for integer pairs by walking the generated text.
    fn eval(sql: &str, key: (i64, i64)) -> i64 {
        let mut rest = sql.trim();
        loop {
            if let Ok(n) = rest.parse::<i64>() {
                return n;
            }
            let after = rest
                .strip_prefix("CASE WHEN (\"a\", \"b\") < ('")
                .expect("a CASE");
            let (a, after) = after.split_once("'::integer, '").unwrap();
            let (b, after) = after.split_once("'::integer) THEN ").unwrap();
            let bound = (a.parse::<i64>().unwrap(), b.parse::<i64>().unwrap());
            // Split the THEN and ELSE arms at the ELSE of this level.
            let (mut depth, mut at) = (0, None);
            let bytes = after.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                if after[i..].starts_with("CASE ") {
                    depth += 1;
                } else if after[i..].starts_with(" END") {
                    depth -= 1;
                } else if depth == 0 && after[i..].starts_with(" ELSE ") {
                    at = Some(i);
                    break;
                }
                i += 1;
            }
            let at = at.unwrap();
            let then = &after[..at];
            let els = after[at + 6..].strip_suffix(" END").unwrap();
            rest = if key < bound { then } else { els };
        }
    }
    let bounds: Vec<(i64, i64)> = (0..37).map(|i| (i / 10, (i * 7) % 10)).collect();
    let mut sorted = bounds.clone();
    sorted.sort();
    sorted.dedup();
    let texts: Vec<Vec<String>> = sorted
        .iter()
        .map(|(a, b)| vec![a.to_string(), b.to_string()])
        .collect();
    let sql = tk.bucket_sql(&texts);
    for a in -1..5 {
        for b in -1..11 {
            let want = sorted.iter().filter(|x| **x <= (a, b)).count() as i64;
            assert_eq!(eval(&sql, (a, b)), want, "({a}, {b})");
        }
    }
}
