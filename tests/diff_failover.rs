//! Row diff after a real lossy promotion: lost inserts, updates and deletes on the former
//! primary, post-failover writes and conflicts on the new one; counts per class for a
//! single-column key, a composite key and no key; the recovery script applied to a scratch
//! copy of the new primary. Expected numbers come from the workload this test runs.

mod util;

use std::collections::HashSet;

use failover_verify::diff::{self, Attribution, DiffOptions, NoProgress, Presence, TableReport};
use failover_verify::pg::{ConnParams, SessionOptions};
use failover_verify::sandbox::{Cluster, LossyFailover, LossyFailoverSpec, LostWorkload};
use util::install_or_skip;

const BASE: &str = "
CREATE SCHEMA s1;
CREATE TABLE s1.single(id int PRIMARY KEY, v text, n numeric);
INSERT INTO s1.single SELECT g, 'v' || g, g * 1.5 FROM generate_series(1, 3000) g;
CREATE TABLE s1.composite(a int, b text, v text, PRIMARY KEY (a, b));
INSERT INTO s1.composite SELECT g % 50, 'k' || g, 'c' || g FROM generate_series(1, 1000) g;
CREATE TABLE s1.nokey(x int, v text);
INSERT INTO s1.nokey SELECT g % 40, 'n' || (g % 40) FROM generate_series(1, 400) g;
CREATE SEQUENCE s1.seq;
SELECT nextval('s1.seq') FROM generate_series(1, 10);
";

/// Runs `body` as one transaction on `c` and returns its top-level xid.
async fn txn(c: &Cluster, body: &str) -> u32 {
    let rows = c
        .query_rows(&format!("BEGIN; {body}; SELECT txid_current(); COMMIT;"))
        .await
        .unwrap_or_else(|e| panic!("{body}: {e}"));
    let x: u64 = rows.last().unwrap()[0].as_ref().unwrap().parse().unwrap();
    x as u32
}

fn params(conninfo: &str) -> ConnParams {
    ConnParams::parse(conninfo, &|_| None).unwrap()
}

fn table<'a>(r: &'a diff::TablesReport, name: &str) -> &'a TableReport {
    r.tables
        .iter()
        .find(|t| format!("{}.{}", t.schema, t.table) == name)
        .unwrap_or_else(|| panic!("{name} not in report"))
}

fn keys_of(t: &TableReport, class: diff::RowClass) -> HashSet<String> {
    t.rows
        .iter()
        .filter(|r| r.class == class)
        .map(|r| serde_json::to_string(&r.key).unwrap())
        .collect()
}

#[tokio::test]
async fn lost_and_post_failover_writes_are_classified_and_recoverable() {
    let Some(install) = install_or_skip("diff_failover") else {
        return;
    };
    let spec = LossyFailoverSpec {
        base_rows: 5,
        base_sql: vec![BASE.to_string()],
        lost_workload: LostWorkload::Nothing,
        ..Default::default()
    };
    // The lost workload: every statement its own transaction, xids recorded.
    let lost_xids = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u32>::new()));
    let lx = lost_xids.clone();
    let f = LossyFailover::build_with(&install, spec, async move |p: &Cluster| {
        let mut x = Vec::new();
        // single: 5 inserts, updates of 1..4, deletes of 5..7, updates of 8..9 (conflicts later)
        x.push(txn(p, "INSERT INTO s1.single SELECT g, 'lost' || g, 0 FROM generate_series(4001, 4005) g").await);
        x.push(txn(p, "UPDATE s1.single SET v = 'lost-upd' WHERE id BETWEEN 1 AND 4").await);
        x.push(txn(p, "DELETE FROM s1.single WHERE id BETWEEN 5 AND 7").await);
        x.push(txn(p, "UPDATE s1.single SET n = -1 WHERE id IN (8, 9)").await);
        // a subtransaction: the row's xmin is the subxact's xid, read back from the row.
        x.push(txn(p, "SAVEPOINT a; UPDATE s1.single SET v = 'in-subxact' WHERE id = 10; RELEASE a").await);
        let sub: u64 = p
            .query_one_string("SELECT xmin::text FROM s1.single WHERE id = 10")
            .await?
            .parse()
            .unwrap();
        x.push(sub as u32);
        // composite: 3 inserts, 2 updates, 2 deletes
        x.push(txn(p, "INSERT INTO s1.composite VALUES (7, 'new1', 'L'), (7, 'new2', 'L'), (900, 'z', 'L')").await);
        x.push(txn(p, "UPDATE s1.composite SET v = 'lost-upd' WHERE (a, b) IN ((1, 'k1'), (2, 'k2'))").await);
        x.push(txn(p, "DELETE FROM s1.composite WHERE (a, b) IN ((3, 'k3'), (4, 'k4'))").await);
        // nokey: 2 inserts (one duplicates an existing row), delete one copy of a duplicate
        x.push(txn(p, "INSERT INTO s1.nokey VALUES (1, 'n1'), (999, 'fresh')").await);
        x.push(txn(p, "DELETE FROM s1.nokey WHERE ctid = (SELECT ctid FROM s1.nokey WHERE x = 2 LIMIT 1)").await);
        // a table created by a lost transaction, and a sequence advanced by it
        x.push(txn(p, "CREATE TABLE s1.lost_only(id int PRIMARY KEY); INSERT INTO s1.lost_only VALUES (1), (2)").await);
        x.push(txn(p, "SELECT nextval('s1.seq') FROM generate_series(1, 100)").await);
        lx.lock().unwrap().extend(x);
        Ok(Vec::new())
    })
    .await
    .expect("lossy failover");
    let new = &f.new_primary;
    // The first xid the new primary assigns after promotion (the integrator takes it from WAL).
    let first = txn(new, "SELECT 1").await;
    // Post-failover writes.
    txn(
        new,
        "INSERT INTO s1.single SELECT g, 'post' || g, 0 FROM generate_series(5001, 5003) g",
    )
    .await;
    txn(
        new,
        "UPDATE s1.single SET v = 'post-upd' WHERE id IN (20, 21)",
    )
    .await;
    txn(new, "DELETE FROM s1.single WHERE id = 30").await;
    txn(
        new,
        "UPDATE s1.single SET v = 'post-conflict' WHERE id IN (8, 9)",
    )
    .await;
    txn(new, "INSERT INTO s1.composite VALUES (5, 'post', 'P')").await;
    txn(
        new,
        "UPDATE s1.composite SET v = 'post-upd' WHERE (a, b) = (6, 'k6')",
    )
    .await;
    txn(new, "INSERT INTO s1.nokey VALUES (3, 'post')").await;
    // Inspect the former primary the safe way: as an isolated hot standby.
    f.former_primary.isolate_as_standby().await.unwrap();

    let attribution = Attribution {
        lost_xids: lost_xids.lock().unwrap().iter().copied().collect(),
        new_side_first_xid: Some(first),
    };
    let export = tempfile::tempdir().unwrap();
    let mut opts = DiffOptions {
        jobs: 2,
        chunk_rows: 64,
        leaf_rows: 128,
        export_dir: Some(export.path().to_path_buf()),
        ..Default::default()
    };
    opts.filter = diff::TableFilter::new(&["s1.*".into()], &[], &[]).unwrap();
    let np = params(&new.conninfo());
    let fp = params(&f.former_primary.conninfo());
    let so = SessionOptions::default();
    let r = diff::compare_tables(&np, &fp, &so, &opts, &attribution, &NoProgress)
        .await
        .expect("compare");
    let json = serde_json::to_string_pretty(&r).unwrap();

    // The CLI decides the same, with the attribution taken from the decoded WAL instead of
    // from this test's bookkeeping.
    let run = util::run_tool(&[
        "compare",
        "--new-primary",
        &new.conninfo(),
        "--former-primary",
        &f.former_primary.conninfo(),
        "--format",
        "json",
        "--tables",
        "s1.*",
        "--chunk-rows",
        "64",
        "--no-checks",
    ])
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let cli = run.json();
    let wal_lost: HashSet<u64> = cli["transactions"]["lost_xids"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|x| {
            std::iter::once(x["xid"].as_u64().unwrap()).chain(
                x["subxids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_u64().unwrap()),
            )
        })
        .collect();
    let test_lost: HashSet<u64> = attribution.lost_xids.iter().map(u64::from).collect();
    assert!(
        test_lost.is_subset(&wal_lost),
        "{test_lost:?} ⊄ {wal_lost:?}"
    );
    let horizon = cli["transactions"]["new_side_first_xid"].as_u64().unwrap();
    assert!(
        horizon <= u64::from(first),
        "horizon {horizon} after the first new xid {first}"
    );
    assert!(
        horizon > *test_lost.iter().min().unwrap() - 1,
        "horizon below the lost xids"
    );
    for t in &r.tables {
        let name = format!("{}.{}.{}", t.database, t.schema, t.table);
        let c = cli["tables"]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| {
                format!(
                    "{}.{}.{}",
                    x["database"].as_str().unwrap(),
                    x["schema"].as_str().unwrap(),
                    x["table"].as_str().unwrap()
                ) == name
            })
            .unwrap_or_else(|| panic!("{name} missing from the CLI report"));
        assert_eq!(
            c["counts"],
            serde_json::to_value(&t.counts).unwrap(),
            "{name}: CLI vs library"
        );
    }

    // Both nodes were read through one shared snapshot each; the former is a standby.
    assert_eq!(r.snapshots.len(), 2, "{json}");
    for s in &r.snapshots {
        assert!(s.shared_snapshot, "snapshot not shared: {s:?}");
        assert_eq!(s.connections, 2);
    }
    assert!(r.snapshots.iter().any(|s| s.in_recovery));

    let single = table(&r, "s1.single");
    assert!(single.error.is_none(), "{:?}", single.error);
    let c = &single.counts;
    assert_eq!(
        (c.lost_insert, c.lost_update, c.lost_delete, c.conflict),
        (5, 5, 3, 2),
        "{json}"
    );
    assert_eq!(
        (
            c.post_failover_insert,
            c.post_failover_update,
            c.post_failover_delete
        ),
        (3, 2, 1)
    );
    assert_eq!((c.unexplained, c.unknown), (0, 0));
    assert_eq!(
        (c.missing_on_new, c.extra_on_new, c.changed),
        (5 + 1, 3 + 3, 5 + 2 + 2)
    );
    assert_eq!(single.rows_compared, 3005 - 3);
    assert!(single.chunks > 10, "chunked: {}", single.chunks);
    let lost_ins = keys_of(single, diff::RowClass::LostInsert);
    let want: HashSet<String> = (4001..=4005)
        .map(|i| format!("{{\"id\":\"{i}\"}}"))
        .collect();
    assert_eq!(lost_ins, want);
    let conflicts = keys_of(single, diff::RowClass::Conflict);
    assert_eq!(
        conflicts,
        ["{\"id\":\"8\"}".to_string(), "{\"id\":\"9\"}".to_string()].into()
    );
    // Both versions and their xmins are there.
    let row8 = single
        .rows
        .iter()
        .find(|r| r.class == diff::RowClass::Conflict)
        .unwrap();
    assert_eq!(row8.former.as_ref().unwrap().values["n"], "-1");
    assert_eq!(row8.new.as_ref().unwrap().values["v"], "post-conflict");

    let comp = table(&r, "s1.composite");
    let c = &comp.counts;
    assert_eq!(comp.key_columns, vec!["a", "b"]);
    assert_eq!(
        (c.lost_insert, c.lost_update, c.lost_delete, c.conflict),
        (3, 2, 2, 0),
        "{json}"
    );
    assert_eq!(
        (
            c.post_failover_insert,
            c.post_failover_update,
            c.post_failover_delete
        ),
        (1, 1, 0)
    );
    assert_eq!((c.unexplained, c.unknown), (0, 0));

    let nokey = table(&r, "s1.nokey");
    let c = &nokey.counts;
    assert!(nokey.key_columns.is_empty());
    assert_eq!(
        (c.lost_insert, c.lost_delete, c.post_failover_insert),
        (2, 1, 1),
        "{json}"
    );
    assert_eq!((c.missing_on_new, c.extra_on_new, c.changed), (2, 2, 0));
    assert_eq!((c.unexplained, c.unknown), (0, 0));

    let lo = table(&r, "s1.lost_only");
    assert_eq!(lo.presence, Presence::FormerOnly);
    assert_eq!(lo.rows_compared, 2);

    let seq = r
        .sequences
        .iter()
        .find(|s| s.name == "seq")
        .expect("sequence diff");
    // Sequences are WAL-logged 32 values ahead, so exact values depend on that; the lost
    // transaction went far beyond: the new primary is behind.
    let (sn, sf) = (seq.new_last_value.unwrap(), seq.former_last_value.unwrap());
    assert!(sf >= 110 && sn < sf, "{seq:?}");
    assert!(seq.new_is_behind);

    // The export: CSVs and one script; apply it to a scratch copy of the new primary.
    let ex = r.export.as_ref().unwrap();
    assert!(ex.files.contains(&"recovery.sql".to_string()), "{ex:?}");
    assert_eq!(ex.commented_conflicts, 2);
    let script = std::fs::read_to_string(export.path().join("recovery.sql")).unwrap();
    let csv_name = ex.files.iter().find(|f| f.contains("s1.single")).unwrap();
    let csv = std::fs::read_to_string(export.path().join(csv_name)).unwrap();
    assert_eq!(csv.lines().count(), 1 + 5 + 5 + 3 + 2, "{csv}");

    let mut created = false;
    for _ in 0..50 {
        if new
            .execute("CREATE DATABASE scratch TEMPLATE postgres")
            .await
            .is_ok()
        {
            created = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(created, "scratch copy");
    new.execute_in("scratch", &script)
        .await
        .expect("script applies");
    // Independently: outside the keys touched after the promotion, scratch == former.
    let post_single = "id NOT IN (5001, 5002, 5003, 20, 21, 30, 8, 9)";
    let q = |t: &str, w: &str, o: &str| {
        format!("SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY {o})), '') FROM {t} t WHERE {w}")
    };
    for (t, w, o) in [
        ("s1.single", post_single, "id"),
        (
            "s1.composite",
            "NOT ((a, b) IN ((5, 'post'), (6, 'k6')))",
            "a, b",
        ),
        ("s1.nokey", "NOT (x = 3 AND v = 'post')", "t::text"),
    ] {
        let sql = q(t, w, o);
        let a = f.former_primary.query_one_string(&sql).await.unwrap();
        let c = new.connect_db("scratch").await.unwrap();
        let b: String = c.query_one(sql.as_str(), &[]).await.unwrap().get(0);
        assert_eq!(a, b, "{t} after the script");
    }
    // And the tool agrees: nothing lost any more; conflicts and post-failover writes remain.
    let sp = params(&new.conninfo_db("scratch"));
    let r2 = diff::compare_tables(
        &sp,
        &fp,
        &so,
        &DiffOptions {
            export_dir: None,
            ..opts.clone()
        },
        &attribution,
        &NoProgress,
    )
    .await
    .unwrap();
    let s2 = table(&r2, "s1.single");
    assert_eq!(
        (
            s2.counts.lost_insert,
            s2.counts.lost_update,
            s2.counts.lost_delete,
            s2.counts.conflict
        ),
        (0, 0, 0, 2),
        "{}",
        serde_json::to_string_pretty(&s2).unwrap()
    );
    assert_eq!(table(&r2, "s1.composite").counts.lost(), 0);
    assert_eq!(table(&r2, "s1.nokey").counts.lost(), 0);
    let seq2 = new
        .connect_db("scratch")
        .await
        .unwrap()
        .query_one("SELECT last_value FROM s1.seq", &[])
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(seq2, sf, "setval advanced the sequence");
}
