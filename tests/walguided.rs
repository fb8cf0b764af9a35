//! The WAL-guided row diff after a real lossy promotion, checked row for row against the full
//! comparison on the same servers: lost inserts (single and COPY multi-inserts), HOT and
//! non-HOT updates, deletes, TOASTed values, a transaction spanning the switchpoint,
//! subtransactions (one released, one rolled back) and two-phase commit on the former primary;
//! post-failover inserts, updates, deletes, conflicts, VACUUM, HOT pruning and line-pointer
//! reuse on the new primary; a table truncated after the switchpoint and a keyless table (both
//! fall back, with the reason); an untouched table (nothing read).
//!
//! A second scenario rewrites tables after the switchpoint (VACUUM FULL, CLUSTER and a
//! rewriting ALTER TABLE on the new primary, VACUUM FULL on the former one) and then removes
//! the new primary's WAL at the switchpoint: those tables, then every table, are compared in
//! full in `auto` mode (and left undecided in `wal` mode), with the reason, and still report
//! exactly what the full method reports.

mod util;

use std::collections::BTreeMap;

use failover_verify::sandbox::{Cluster, ClusterOptions};
use serde_json::Value;
use util::install_or_skip;

const BASE: &str = "
CREATE SCHEMA w;
CREATE TABLE w.big(id int PRIMARY KEY, v text, n int);
INSERT INTO w.big SELECT g, 'v' || g, g FROM generate_series(1, 20000) g;
CREATE TABLE w.hot(id int PRIMARY KEY, v text) WITH (fillfactor = 50);
INSERT INTO w.hot SELECT g, 'h' || g FROM generate_series(1, 2000) g;
CREATE TABLE w.toasty(id int PRIMARY KEY, doc text);
INSERT INTO w.toasty SELECT g, (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 600) i)
  FROM generate_series(1, 20) g;
CREATE TABLE w.trunc(id int PRIMARY KEY, v text);
INSERT INTO w.trunc SELECT g, 't' || g FROM generate_series(1, 100) g;
CREATE TABLE w.nokey(x int, v text);
INSERT INTO w.nokey SELECT g, 'n' || g FROM generate_series(1, 100) g;
CREATE TABLE w.quiet(id int PRIMARY KEY, v text);
INSERT INTO w.quiet SELECT g, 'q' || g FROM generate_series(1, 5000) g;
";

/// A big, hardly compressible text (TOASTed out of line).
const BIG: &str = "(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 600))";

fn opts(name: &str) -> ClusterOptions {
    ClusterOptions::new(name).setting("max_prepared_transactions", "5")
}

struct Pair {
    former: Cluster,
    new: Cluster,
}

/// Builds the failover by hand so that one transaction can span the switchpoint.
async fn failover(install: &failover_verify::sandbox::PgInstall) -> Pair {
    let p = Cluster::start_primary(install, opts("primary"))
        .await
        .unwrap();
    let s = p.create_standby(opts("standby")).await.unwrap();
    p.execute(BASE).await.unwrap();
    // Spans the switchpoint: one change replicated before the cut-off, the commit after.
    let span = p.connect().await.unwrap();
    span.batch_execute("BEGIN; UPDATE w.big SET v = 'span-before' WHERE id = 34")
        .await
        .unwrap();
    s.wait_caught_up(&p).await.unwrap();
    s.cut_off().await.unwrap();
    // The lost workload.
    for sql in [
        "INSERT INTO w.big SELECT g, 'lost' || g, 0 FROM generate_series(100001, 100010) g",
        "COPY w.big(id) FROM PROGRAM 'seq 100101 100150'",
        "UPDATE w.big SET v = 'lost-upd' WHERE id BETWEEN 1 AND 20",
        "DELETE FROM w.big WHERE id BETWEEN 21 AND 30",
        "BEGIN; SAVEPOINT a; UPDATE w.big SET v = 'sub' WHERE id = 31; RELEASE a; \
         SAVEPOINT b; UPDATE w.big SET v = 'rolled-back' WHERE id = 32; ROLLBACK TO b; COMMIT",
        "BEGIN; UPDATE w.big SET v = '2pc' WHERE id = 33; PREPARE TRANSACTION 'p1'",
        "COMMIT PREPARED 'p1'",
        "BEGIN; UPDATE w.big SET v = 'in-doubt' WHERE id = 36; PREPARE TRANSACTION 'p2'",
        "BEGIN; UPDATE w.big SET v = 'aborted' WHERE id = 37; ROLLBACK",
        "UPDATE w.hot SET v = 'lost-hot' WHERE id BETWEEN 1 AND 10",
        &format!("UPDATE w.toasty SET doc = {BIG} WHERE id = 1"),
        &format!("INSERT INTO w.toasty VALUES (100, {BIG})"),
        "DELETE FROM w.toasty WHERE id = 3",
        "UPDATE w.trunc SET v = 'lost' WHERE id = 1",
        "INSERT INTO w.nokey VALUES (7, 'lost')",
    ] {
        p.execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    span.batch_execute("UPDATE w.big SET v = 'span-after' WHERE id = 35; COMMIT")
        .await
        .unwrap();
    drop(span);
    s.promote().await.unwrap();
    // Post-failover writes on the new primary, on the same pages.
    for sql in [
        "INSERT INTO w.big SELECT g, 'post' || g, 0 FROM generate_series(200001, 200005) g",
        "UPDATE w.big SET v = 'post-upd' WHERE id BETWEEN 40 AND 44",
        "DELETE FROM w.big WHERE id BETWEEN 45 AND 49",
        "UPDATE w.big SET v = 'conflict' WHERE id BETWEEN 1 AND 3",
        "DELETE FROM w.big WHERE id BETWEEN 500 AND 600",
        "VACUUM w.big",
        "INSERT INTO w.big SELECT g, 'reuse' || g, 0 FROM generate_series(300001, 300100) g",
        "UPDATE w.hot SET v = 'post-hot1' WHERE id BETWEEN 5 AND 15",
        "UPDATE w.hot SET v = 'post-hot2' WHERE id BETWEEN 5 AND 15",
        "UPDATE w.hot SET v = 'post-hot3' WHERE id BETWEEN 5 AND 15",
        "DELETE FROM w.hot WHERE id = 20",
        "VACUUM w.hot",
        "SELECT count(*) FROM w.hot",
        &format!("UPDATE w.toasty SET doc = {BIG} WHERE id = 4"),
        "TRUNCATE w.trunc",
        "INSERT INTO w.trunc VALUES (1, 'after-truncate')",
        "INSERT INTO w.nokey VALUES (8, 'post')",
    ] {
        s.execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    p.isolate_as_standby().await.unwrap();
    Pair { former: p, new: s }
}

async fn compare(pair: &Pair, mode: &str) -> Value {
    compare_schema(pair, mode, "w").await
}

async fn compare_schema(pair: &Pair, mode: &str, schema: &str) -> Value {
    let run = util::run_tool(&[
        "compare",
        "--new-primary",
        &pair.new.conninfo(),
        "--former-primary",
        &pair.former.conninfo(),
        "--format",
        "json",
        "--schemas",
        schema,
        "--chunk-rows",
        "64",
        "--no-checks",
        "--tables-mode",
        mode,
    ])
    .await;
    assert_eq!(run.code, 1, "{mode}: {}", run.stderr);
    run.json()
}

fn tables(r: &Value) -> BTreeMap<String, Value> {
    r["tables"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["table"].as_str().unwrap().to_string(), t.clone()))
        .collect()
}

/// The differing rows, sorted: key, kind, class and both versions (values and xmins).
fn rows(t: &Value) -> Vec<String> {
    let mut v: Vec<String> = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn walguided_equals_full_row_for_row() {
    let Some(install) = install_or_skip("walguided") else {
        return;
    };
    let pair = failover(&install).await;
    let full = compare(&pair, "full").await;
    let auto = compare(&pair, "auto").await;
    let strict = compare(&pair, "wal").await;
    let (tf, ta, ts) = (tables(&full), tables(&auto), tables(&strict));
    let dump = |v: &Value| serde_json::to_string_pretty(&v["tables"]).unwrap();

    // Every table: the same rows, row for row, whatever the method.
    assert_eq!(tf.keys().collect::<Vec<_>>(), ta.keys().collect::<Vec<_>>());
    for (name, f) in &tf {
        assert_eq!(f["method"], "full", "{name}");
        let a = &ta[name];
        assert!(a["error"].is_null(), "{name}: {}", a["error"]);
        assert_eq!(rows(a), rows(f), "{name}: auto vs full\n{}", dump(&auto));
        assert_eq!(a["counts"], f["counts"], "{name}");
    }
    assert_eq!(auto["tables"]["totals"], full["tables"]["totals"]);

    // Decided from WAL, reading only the touched keys.
    for name in ["big", "hot", "toasty", "quiet"] {
        assert_eq!(ta[name]["method"], "wal", "{name}: {}", dump(&auto));
        assert!(ta[name].get("fallback_reason").is_none(), "{name}");
        assert_eq!(ts[name]["method"], "wal", "{name}");
        assert_eq!(rows(&ts[name]), rows(&tf[name]), "{name}: wal vs full");
    }
    let big = &ta["big"];
    let c = &big["counts"];
    let n = |k: &str| c[k].as_u64().unwrap();
    // 10 + 50 (COPY) inserts; 17 updates + sub + 2pc + the two of the spanning transaction.
    assert_eq!(
        (
            n("lost_insert"),
            n("lost_update"),
            n("lost_delete"),
            n("conflict")
        ),
        (60, 21, 10, 3),
        "{}",
        dump(&auto)
    );
    assert_eq!(
        (
            n("post_failover_insert"),
            n("post_failover_update"),
            n("post_failover_delete")
        ),
        (105, 5, 106)
    );
    assert_eq!((n("unexplained"), n("unknown")), (0, 0));
    // The touched keys are exactly the differing ones here; the full method read every row.
    assert_eq!(big["rows_compared"].as_u64().unwrap(), 310);
    assert!(tf["big"]["rows_compared"].as_u64().unwrap() > 20_000);
    assert_eq!(ta["quiet"]["rows_compared"].as_u64().unwrap(), 0);
    assert!(ta["quiet"]["rows"].as_array().unwrap().is_empty());
    let hot = &ta["hot"]["counts"];
    assert_eq!(
        (
            hot["lost_update"].as_u64().unwrap(),
            hot["conflict"].as_u64().unwrap(),
            hot["post_failover_update"].as_u64().unwrap(),
            hot["post_failover_delete"].as_u64().unwrap()
        ),
        (4, 6, 5, 1)
    );
    assert_eq!(ta["hot"]["rows_compared"].as_u64().unwrap(), 16);
    let toasty = &ta["toasty"]["counts"];
    assert_eq!(
        (
            toasty["lost_update"].as_u64().unwrap(),
            toasty["lost_insert"].as_u64().unwrap(),
            toasty["lost_delete"].as_u64().unwrap(),
            toasty["post_failover_update"].as_u64().unwrap()
        ),
        (1, 1, 1, 1)
    );

    // Fallbacks, with their reasons: in auto compared in full, in wal mode not compared.
    let reason = |t: &Value| t["fallback_reason"].as_str().unwrap_or("").to_string();
    assert_eq!(ta["trunc"]["method"], "full");
    assert!(
        reason(&ta["trunc"]).contains("relfilenode"),
        "{}",
        reason(&ta["trunc"])
    );
    assert_eq!(ta["nokey"]["method"], "full");
    assert!(reason(&ta["nokey"]).contains("no primary key"));
    for name in ["trunc", "nokey"] {
        assert_eq!(ts[name]["method"], "none", "{name}");
        assert!(!reason(&ts[name]).is_empty());
        assert!(ts[name]["error"].as_str().unwrap().contains("not decided"));
        assert!(ts[name]["rows"].as_array().unwrap().is_empty());
    }
    let notes = strict["tables"]["warnings"].to_string();
    assert!(notes.contains("w.trunc: not compared"), "{notes}");
}

const REWRITES: &str = "
CREATE SCHEMA r;
CREATE TABLE r.vacfull(id int PRIMARY KEY, v text);
CREATE TABLE r.clustered(id int PRIMARY KEY, v text);
CREATE TABLE r.altered(id int PRIMARY KEY, v text, n int);
CREATE TABLE r.former_vacfull(id int PRIMARY KEY, v text);
CREATE TABLE r.plain(id int PRIMARY KEY, v text);
INSERT INTO r.vacfull SELECT g, 'b' || g FROM generate_series(1, 3000) g;
INSERT INTO r.clustered SELECT g, 'b' || g FROM generate_series(3000, 1, -1) g;
INSERT INTO r.altered SELECT g, 'b' || g, g FROM generate_series(1, 3000) g;
INSERT INTO r.former_vacfull SELECT g, 'b' || g FROM generate_series(1, 3000) g;
INSERT INTO r.plain SELECT g, 'b' || g FROM generate_series(1, 3000) g;
";

/// Lost changes in every table of schema `r` (inserts, updates, deletes), then a lost
/// VACUUM FULL of `r.former_vacfull` on the former primary.
fn lost_rewrites() -> Vec<String> {
    let mut v = Vec::new();
    for t in ["vacfull", "clustered", "altered", "former_vacfull", "plain"] {
        v.push(format!(
            "INSERT INTO r.{t}(id, v) SELECT g, 'lost' || g FROM generate_series(5001, 5004) g"
        ));
        v.push(format!(
            "UPDATE r.{t} SET v = 'lost-upd' WHERE id BETWEEN 1 AND 6"
        ));
        v.push(format!("DELETE FROM r.{t} WHERE id BETWEEN 11 AND 13"));
    }
    v.push("DELETE FROM r.former_vacfull WHERE id BETWEEN 100 AND 400".into());
    v.push("VACUUM FULL r.former_vacfull".into());
    v
}

/// Post-failover changes on the new primary, then the rewrites.
const POST_REWRITES: &[&str] = &[
    "UPDATE r.vacfull SET v = 'post' WHERE id BETWEEN 5 AND 8",
    "DELETE FROM r.vacfull WHERE id BETWEEN 30 AND 300",
    "VACUUM FULL r.vacfull",
    "UPDATE r.clustered SET v = 'post' WHERE id BETWEEN 5 AND 8",
    "CLUSTER r.clustered USING clustered_pkey",
    "UPDATE r.altered SET v = 'post' WHERE id BETWEEN 5 AND 8",
    "ALTER TABLE r.altered ALTER COLUMN n TYPE bigint",
    "UPDATE r.former_vacfull SET v = 'post' WHERE id BETWEEN 5 AND 8",
    "UPDATE r.plain SET v = 'post' WHERE id BETWEEN 5 AND 8",
];

/// The relfilenode of `r.<t>` on `c`.
async fn relfilenode(c: &Cluster, t: &str) -> String {
    let sql = format!("SELECT pg_relation_filenode('r.{t}')::text");
    c.query_one_string(&sql).await.unwrap()
}

#[tokio::test]
async fn rewrites_and_missing_wal_fall_back_to_the_full_comparison() {
    let Some(install) = install_or_skip("walguided rewrites") else {
        return;
    };
    let p = Cluster::start_primary(&install, opts("primary"))
        .await
        .unwrap();
    let s = p.create_standby(opts("standby")).await.unwrap();
    p.execute(REWRITES).await.unwrap();
    s.wait_caught_up(&p).await.unwrap();
    s.cut_off().await.unwrap();
    let before = relfilenode(&p, "former_vacfull").await;
    for sql in lost_rewrites() {
        p.execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    assert_ne!(before, relfilenode(&p, "former_vacfull").await);
    s.promote().await.unwrap();
    let mut rewritten_new = BTreeMap::new();
    for t in ["vacfull", "clustered", "altered"] {
        rewritten_new.insert(t, relfilenode(&s, t).await);
    }
    for sql in POST_REWRITES {
        s.execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    for (t, before) in &rewritten_new {
        assert_ne!(before, &relfilenode(&s, t).await, "{t} was not rewritten");
    }
    p.isolate_as_standby().await.unwrap();
    let pair = Pair { former: p, new: s };

    let full = compare_schema(&pair, "full", "r").await;
    let auto = compare_schema(&pair, "auto", "r").await;
    let strict = compare_schema(&pair, "wal", "r").await;
    let (tf, ta, ts) = (tables(&full), tables(&auto), tables(&strict));
    let dump = |v: &Value| serde_json::to_string_pretty(&v["tables"]).unwrap();
    let reason = |t: &Value| t["fallback_reason"].as_str().unwrap_or("").to_string();
    let lost = |t: &Value| {
        let c = &t["counts"];
        ["lost_insert", "lost_update", "lost_delete", "conflict"]
            .iter()
            .map(|k| c[*k].as_u64().unwrap())
            .sum::<u64>()
    };

    assert_eq!(tf.keys().collect::<Vec<_>>(), ta.keys().collect::<Vec<_>>());
    for (name, f) in &tf {
        assert_eq!(f["method"], "full", "{name}");
        // Every table lost changes: the fallbacks below have something to find.
        assert!(lost(f) >= 10, "{name}: {}", dump(&full));
        let a = &ta[name];
        assert!(a["error"].is_null(), "{name}: {}", a["error"]);
        assert_eq!(rows(a), rows(f), "{name}: auto vs full\n{}", dump(&auto));
        assert_eq!(a["counts"], f["counts"], "{name}");
    }
    // The control table is decided from the WAL: the fallbacks are per table.
    assert_eq!(ta["plain"]["method"], "wal", "{}", dump(&auto));
    assert_eq!(ts["plain"]["method"], "wal");
    assert_eq!(rows(&ts["plain"]), rows(&tf["plain"]));

    // Rewritten on the new primary after the promotion.
    for name in ["vacfull", "clustered", "altered"] {
        let why = reason(&ta[name]);
        assert_eq!(ta[name]["method"], "full", "{name}: {why}");
        assert!(
            why.contains("rewritten on the new primary") && why.contains("VACUUM FULL"),
            "{name}: {why}"
        );
    }
    // Rewritten on the former primary by a lost VACUUM FULL.
    let why = reason(&ta["former_vacfull"]);
    assert_eq!(ta["former_vacfull"]["method"], "full", "{why}");
    assert!(why.contains("rewritten on the former primary"), "{why}");
    // The ALTER TABLE changed a column's type: a schema difference as well.
    assert!(
        ta["altered"]["schema_differences"]
            .to_string()
            .contains("type_differs"),
        "{}",
        ta["altered"]
    );
    // wal mode: the same reasons, nothing compared, an error that says so.
    for name in ["vacfull", "clustered", "altered", "former_vacfull"] {
        let t = &ts[name];
        assert_eq!(t["method"], "none", "{name}");
        assert_eq!(reason(t), reason(&ta[name]), "{name}");
        assert!(
            t["error"].as_str().unwrap().contains("not decided"),
            "{name}"
        );
        assert!(t["rows"].as_array().unwrap().is_empty(), "{name}");
    }

    // The new primary's WAL at the switchpoint removed: no table can be decided from the WAL.
    let seg = pair
        .new
        .query_one_string(&format!(
            "SELECT pg_walfile_name('{}')",
            pair.new
                .history(pair.new.timeline().await.unwrap())
                .unwrap()[0]
                .switchpoint
        ))
        .await
        .unwrap();
    for sql in [
        "ALTER SYSTEM SET wal_keep_size = 0",
        "SELECT pg_reload_conf()",
        "SELECT pg_switch_wal()",
        "CHECKPOINT",
        "SELECT pg_switch_wal()",
        "CHECKPOINT",
    ] {
        pair.new.execute(sql).await.unwrap();
    }
    let left: i64 = pair
        .new
        .query_scalar(&format!(
            "SELECT count(*) FROM pg_ls_waldir() WHERE name LIKE '{seg}%'"
        ))
        .await
        .unwrap();
    assert_eq!(left, 0, "{seg} is still in pg_wal");
    let full2 = compare_schema(&pair, "full", "r").await;
    let auto2 = compare_schema(&pair, "auto", "r").await;
    let strict2 = compare_schema(&pair, "wal", "r").await;
    let (tf2, ta2, ts2) = (tables(&full2), tables(&auto2), tables(&strict2));
    for (name, f) in &tf2 {
        assert_eq!(rows(f), rows(&tf[name]), "{name}: the data did not change");
        let a = &ta2[name];
        assert_eq!(a["method"], "full", "{name}: {}", dump(&auto2));
        assert_eq!(rows(a), rows(f), "{name}");
        assert_eq!(ts2[name]["method"], "none", "{name}");
    }
    let why = reason(&ta2["plain"]);
    assert!(
        why.contains("new primary") && why.contains(&seg),
        "the reason names the missing segment: {why}"
    );
}
