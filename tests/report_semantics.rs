//! What the report's numbers mean, on a real forced promotion whose lost transactions touch two
//! databases and run DDL, with connection strings that name only one database: both databases
//! are row-compared, the headline counts user-table rows only, the lost DDL is named by
//! relation, every count that appears in several places agrees, and a never-called sequence
//! says how far to advance. Ground truth comes from pg_waldump and from rows read directly.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use failover_verify::lsn::{Lsn, TimelineId};
use failover_verify::sandbox::{Cluster, ClusterOptions, PgInstall};
use serde_json::Value;
use util::{install_or_skip, lsn_at, run_tool, Run};

fn opts(name: &str) -> ClusterOptions {
    ClusterOptions::new(name).setting("wal_keep_size", "256MB")
}

struct Incident {
    former: Cluster,
    new: Cluster,
    switchpoint: Lsn,
}

/// Primary + standby, then lost writes in `postgres` and `db2`, lost DDL (CREATE TABLE, ALTER
/// TABLE ADD COLUMN, DROP TABLE), nextval on a sequence the new primary never calls, and lost
/// rows in `db3`, which a reading role may not connect to.
async fn incident(install: &PgInstall) -> Incident {
    let p = Cluster::start_primary(install, opts("primary"))
        .await
        .unwrap();
    p.execute(
        "CREATE TABLE t1(id int PRIMARY KEY, v text);
         INSERT INTO t1 SELECT g, 'base' FROM generate_series(1, 50) g;
         CREATE TABLE dropme(id int PRIMARY KEY, v text);
         INSERT INTO dropme VALUES (1, 'a'), (2, 'b');
         CREATE SEQUENCE s_never;
         CREATE VIEW v_drop AS SELECT id FROM t1;
         CREATE ROLE fv_reader LOGIN REPLICATION;
         GRANT pg_read_all_data TO fv_reader;
         CREATE ROLE fv_nowal LOGIN;
         GRANT pg_read_all_data, pg_monitor TO fv_nowal;",
    )
    .await
    .unwrap();
    for db in ["db2", "db3"] {
        p.execute(&format!("CREATE DATABASE {db}")).await.unwrap();
        p.execute_in(
            db,
            "CREATE TABLE t3(id int PRIMARY KEY, v text);
             INSERT INTO t3 SELECT g, 'base' FROM generate_series(1, 20) g;",
        )
        .await
        .unwrap();
    }
    p.execute("REVOKE CONNECT ON DATABASE db3 FROM PUBLIC")
        .await
        .unwrap();
    let s = p.create_standby(opts("standby")).await.unwrap();
    s.wait_caught_up(&p).await.unwrap();
    s.cut_off().await.unwrap();
    for sql in [
        "INSERT INTO t1 SELECT g, 'lost' FROM generate_series(51, 60) g",
        "UPDATE t1 SET v = 'lost-hot' WHERE id <= 5",
        "UPDATE t1 SET id = 1006 WHERE id = 6",
        "DELETE FROM t1 WHERE id IN (7, 8)",
        "BEGIN; CREATE TABLE newt(id int PRIMARY KEY, v text); \
         INSERT INTO newt SELECT g, 'new' FROM generate_series(1, 4) g; COMMIT",
        "ALTER TABLE t1 ADD COLUMN extra int",
        "DROP TABLE dropme",
        "DROP VIEW v_drop",
        "SELECT nextval('s_never') FROM generate_series(1, 3)",
    ] {
        p.execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    for (db, sql) in [
        (
            "db2",
            "INSERT INTO t3 SELECT g, 'lost' FROM generate_series(21, 25) g",
        ),
        ("db2", "UPDATE t3 SET v = 'lost-upd' WHERE id <= 3"),
        ("db2", "DELETE FROM t3 WHERE id = 10"),
        ("db3", "INSERT INTO t3 VALUES (100, 'lost')"),
    ] {
        p.execute_in(db, sql)
            .await
            .unwrap_or_else(|e| panic!("{db}: {sql}: {e}"));
    }
    s.promote().await.unwrap();
    let switchpoint = s.history(TimelineId(2)).unwrap()[0].switchpoint;
    // Inspect the former primary the safe way: a standby with no upstream writes nothing.
    p.isolate_as_standby().await.unwrap();
    Incident {
        former: p,
        new: s,
        switchpoint,
    }
}

/// A user table's row changes as pg_waldump shows them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Changes {
    inserts: u64,
    updates: u64,
    hot_updates: u64,
    deletes: u64,
}

/// `(database, schema.table) → changes`.
type PerTable = BTreeMap<(String, String), Changes>;

/// Ground truth from pg_waldump on the former primary's pg_wal between the switchpoint and
/// `end`: per `(database, schema.table)` the committed heap changes in user tables, and the
/// number of heap changes in system catalogs.
fn waldump_changes(
    install: &PgInstall,
    wal: &Path,
    from: Lsn,
    to: Lsn,
    tables: &BTreeMap<(u32, u32), (String, String)>,
) -> Option<(PerTable, u64)> {
    if !install.has("pg_waldump") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install pg_waldump"
        );
        eprintln!("skipped: pg_waldump ground truth: pg_waldump not installed");
        return None;
    }
    let out = std::process::Command::new(install.bin("pg_waldump"))
        .args([
            "-p",
            wal.to_str().unwrap(),
            "-t",
            "1",
            "-s",
            &from.to_string(),
            "-e",
            &to.to_string(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |line: &str, name: &str| -> Option<String> {
        Some(
            line.split(name)
                .nth(1)?
                .split(',')
                .next()?
                .trim()
                .to_string(),
        )
    };
    let mut committed = BTreeSet::new();
    let mut heap: Vec<(u64, String, (u32, u32))> = Vec::new();
    for line in text.lines() {
        let Some(desc) = line.split("desc: ").nth(1) else {
            continue;
        };
        let tx: u64 = field(line, "tx: ")
            .and_then(|x| x.parse().ok())
            .unwrap_or(0);
        let op = desc
            .split([' ', ','])
            .next()
            .unwrap_or("")
            .replace("+INIT", "");
        if line.starts_with("rmgr: Transaction") && op == "COMMIT" {
            committed.insert(tx);
            continue;
        }
        // A multi-insert (catalogs use them) counts its tuples: `MULTI_INSERT 3 tuples` (PG15)
        // or `MULTI_INSERT ntuples: 3` (PG16+).
        let n = if line.starts_with("rmgr: Heap2") && op == "MULTI_INSERT" {
            desc.split([' ', ',', ':'])
                .skip(1)
                .find_map(|w| w.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no tuple count: {line}"))
        } else if line.starts_with("rmgr: Heap ")
            && ["INSERT", "UPDATE", "HOT_UPDATE", "DELETE"].contains(&op.as_str())
        {
            1
        } else {
            continue;
        };
        let rel = field(line, "blkref #0: rel ").unwrap();
        let rel: Vec<u32> = rel
            .split_whitespace()
            .next()
            .unwrap()
            .split('/')
            .map(|x| x.parse().unwrap())
            .collect();
        let op = if op == "MULTI_INSERT" {
            "INSERT".to_string()
        } else {
            op
        };
        for _ in 0..n {
            heap.push((tx, op.clone(), (rel[1], rel[2])));
        }
    }
    assert!(!committed.is_empty(), "pg_waldump saw no commit:\n{text}");
    let mut user: BTreeMap<(String, String), Changes> = BTreeMap::new();
    let mut catalog = 0;
    for (tx, op, rel) in heap {
        if !committed.contains(&tx) {
            continue;
        }
        if rel.1 < 16384 {
            catalog += 1;
            continue;
        }
        // Not a user table: a TOAST relation (its chunks are not rows).
        let Some(name) = tables.get(&rel) else {
            continue;
        };
        let c = user.entry(name.clone()).or_default();
        match op.as_str() {
            "INSERT" => c.inserts += 1,
            "UPDATE" => c.updates += 1,
            "HOT_UPDATE" => {
                c.updates += 1;
                c.hot_updates += 1
            }
            _ => c.deletes += 1,
        }
    }
    Some((user, catalog))
}

/// `(db oid, relfilenode) → (database, schema.table)` of the user tables of every database of
/// `c`, read directly.
async fn user_tables(c: &Cluster) -> BTreeMap<(u32, u32), (String, String)> {
    let mut out = BTreeMap::new();
    let dbs = c
        .query_rows("SELECT oid::text, datname FROM pg_database WHERE datallowconn")
        .await
        .unwrap();
    for row in dbs {
        let (oid, name) = (row[0].clone().unwrap(), row[1].clone().unwrap());
        let client = c.connect_db(&name).await.unwrap();
        for r in client
            .query(
                "SELECT pg_relation_filenode(c.oid)::int8, n.nspname || '.' || c.relname \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'm') AND c.oid >= 16384",
                &[],
            )
            .await
            .unwrap()
        {
            out.insert(
                (oid.parse().unwrap(), r.get::<_, i64>(0) as u32),
                (name.clone(), r.get::<_, String>(1)),
            );
        }
    }
    out
}

/// `schema.table → number of columns` of the tables in `public` of `postgres`, read directly.
async fn public_tables(c: &Cluster) -> BTreeMap<String, String> {
    c.query_rows(
        "SELECT n.nspname || '.' || c.relname, c.relnatts::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind = 'r'",
    )
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
    .collect()
}

/// `(id, v)` of a table, read directly.
async fn id_v(c: &Cluster, db: &str, table: &str) -> BTreeMap<i32, Option<String>> {
    let client = c.connect_db(db).await.unwrap();
    client
        .query(&format!("SELECT id, v FROM {table}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// `(lost_insert, lost_update, lost_delete)` by key: only on the former, changed, only on
/// the new side (nothing was written on the new primary after the promotion).
fn key_diff(
    former: &BTreeMap<i32, Option<String>>,
    new: &BTreeMap<i32, Option<String>>,
) -> (u64, u64, u64) {
    let ins = former.keys().filter(|k| !new.contains_key(k)).count() as u64;
    let del = new.keys().filter(|k| !former.contains_key(k)).count() as u64;
    let upd = former
        .iter()
        .filter(|(k, v)| new.get(k).is_some_and(|n| n != *v))
        .count() as u64;
    (ins, upd, del)
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn sum(items: &[Value], field: &str) -> u64 {
    items.iter().map(|x| u(&x[field])).sum()
}

async fn compare(inc: &Incident, user: &str, format: &str, extra: &[&str]) -> Run {
    compare_as(inc, "postgres", user, format, extra).await
}

/// `compare` as `new_user` on the new primary and `former_user` on the former one.
async fn compare_as(
    inc: &Incident,
    new_user: &str,
    former_user: &str,
    format: &str,
    extra: &[&str],
) -> Run {
    let conn = |c: &Cluster, user: &str| {
        format!(
            "host=127.0.0.1 port={} user={user} dbname=postgres",
            c.port()
        )
    };
    let (new, former) = (conn(&inc.new, new_user), conn(&inc.former, former_user));
    let mut args = vec![
        "compare",
        "--new-primary",
        &new,
        "--former-primary",
        &former,
        "--format",
        format,
    ];
    args.extend_from_slice(extra);
    run_tool(&args).await
}

/// Every count that appears in several places of the JSON report agrees with the others.
fn assert_counts_agree(j: &Value) {
    let t = &j["transactions"];
    let xids = t["lost_xids"].as_array().unwrap();
    let tables = t["tables"].as_array().unwrap();
    let (catalog, user): (Vec<Value>, Vec<Value>) =
        tables.iter().cloned().partition(|x| x["kind"] == "catalog");
    assert_eq!(u(&t["lost_commits"]), xids.len() as u64);
    for f in ["inserts", "updates", "hot_updates", "deletes"] {
        assert_eq!(sum(xids, f), sum(&user, f), "{f}: per xid vs per table");
    }
    let catalog_rows: u64 = ["inserts", "updates", "deletes"]
        .iter()
        .map(|f| sum(&catalog, f))
        .sum();
    assert_eq!(sum(xids, "catalog_rows"), catalog_rows);
    for x in xids.iter().chain(tables) {
        assert!(u(&x["hot_updates"]) <= u(&x["updates"]), "{x}");
    }
    let rows = sum(&user, "inserts") + sum(&user, "updates") + sum(&user, "deletes");
    assert_eq!(u(&t["row_changes"]), rows);
    assert_eq!(u(&t["tables_changed"]), user.len() as u64);
    let headline = format!("{rows} row change(s) in {} table(s)", user.len());
    assert!(
        j["explanation"].as_str().unwrap().contains(&headline),
        "{headline} not in {}",
        j["explanation"]
    );
    assert_eq!(
        u(&t["lost_ddl"]),
        xids.iter().filter(|x| x["ddl"] == true).count() as u64
    );

    // The row comparison: totals are the sums of the tables, each table's counts those of its
    // rows, and every row has one raw kind and one class.
    let r = &j["tables"];
    let rtables = r["tables"].as_array().unwrap();
    let totals = r["totals"].as_object().unwrap();
    for (k, v) in totals {
        let s: u64 = rtables.iter().map(|x| u(&x["counts"][k])).sum();
        assert_eq!(u(v), s, "totals.{k}");
    }
    for x in rtables {
        let c = &x["counts"];
        let kinds = u(&c["missing_on_new"]) + u(&c["extra_on_new"]) + u(&c["changed"]);
        let classes: u64 = [
            "lost_insert",
            "lost_update",
            "lost_delete",
            "post_failover_insert",
            "post_failover_update",
            "post_failover_delete",
            "conflict",
            "unexplained",
            "unknown",
        ]
        .iter()
        .map(|k| u(&c[*k]))
        .sum();
        assert_eq!(kinds, classes, "{}", x["table"]);
        // Every differing row is listed or counted as left out of the list.
        assert_eq!(
            kinds,
            x["rows"].as_array().unwrap().len() as u64 + u(&x["rows_omitted"])
        );
    }
    let lost = u(&totals["lost_insert"]) + u(&totals["lost_update"]) + u(&totals["lost_delete"]);
    let f = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "lost_rows")
        .expect("a lost_rows finding");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{lost} row(s) lost")),
        "{f}"
    );
}

#[tokio::test]
async fn report_compares_every_touched_database_and_names_lost_ddl() {
    let Some(install) = install_or_skip("report_semantics") else {
        return;
    };
    let inc = incident(&install).await;
    let export = tempfile::tempdir().unwrap();
    let run = compare(
        &inc,
        "postgres",
        "json",
        &["--export-dir", export.path().to_str().unwrap()],
    )
    .await;
    assert_eq!(run.code, 1, "loss; stderr: {}\n{}", run.stderr, run.stdout);
    let j = run.json();
    let t = &j["transactions"];
    let end = lsn_at(&j["divergence"], "former_end_lsn");

    // 1. The headline counts user-table rows only, as pg_waldump shows them.
    let names = user_tables(&inc.former).await;
    if let Some((truth, catalog_rows)) = waldump_changes(
        &install,
        &inc.former.data_dir().join("pg_wal"),
        inc.switchpoint,
        end,
        &names,
    ) {
        assert!(catalog_rows > 0, "the lost DDL wrote catalog rows");
        let mut ours = BTreeMap::new();
        for x in t["tables"].as_array().unwrap() {
            if x["kind"] == "catalog" {
                continue;
            }
            let c = Changes {
                inserts: u(&x["inserts"]),
                updates: u(&x["updates"]),
                hot_updates: u(&x["hot_updates"]),
                deletes: u(&x["deletes"]),
            };
            if c != Changes::default() {
                ours.insert(
                    (
                        x["database"].as_str().unwrap().to_string(),
                        x["table"].as_str().unwrap().to_string(),
                    ),
                    c,
                );
            }
        }
        assert_eq!(ours, truth, "per-table changes vs pg_waldump");
        let rows: u64 = truth
            .values()
            .map(|c| c.inserts + c.updates + c.deletes)
            .sum();
        assert_eq!(u(&t["row_changes"]), rows, "{}", j["explanation"]);
        assert!(
            truth.values().any(|c| c.hot_updates > 0),
            "the workload made HOT updates: {truth:?}"
        );
        assert!(
            j["explanation"]
                .as_str()
                .unwrap()
                .contains(&format!(" {rows} row change(s) in ")),
            "{}",
            j["explanation"]
        );
    }

    // 2. Both databases with lost changes were row-compared (db3 too: superuser may connect),
    // though the conninfo names only `postgres`; the lost rows are what the rows show.
    let dbs: BTreeSet<&str> = j["tables"]["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(dbs, BTreeSet::from(["postgres", "db2", "db3"]));
    assert_eq!(j["tables"]["skipped_databases"], Value::Array(vec![]));
    for (db, table) in [("postgres", "t1"), ("db2", "t3"), ("db3", "t3")] {
        let truth = key_diff(
            &id_v(&inc.former, db, table).await,
            &id_v(&inc.new, db, table).await,
        );
        assert_ne!(truth, (0, 0, 0), "{db}.{table} lost rows");
        let rt = j["tables"]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["database"] == db && x["schema"] == "public" && x["table"] == table)
            .unwrap_or_else(|| panic!("{db}.{table} not compared: {}", j["tables"]));
        let c = &rt["counts"];
        assert_eq!(
            (
                u(&c["lost_insert"]),
                u(&c["lost_update"]),
                u(&c["lost_delete"])
            ),
            truth,
            "{db}.{table}: {rt}"
        );
    }

    // 3. The lost DDL, by relation name, against the catalogs read directly.
    let (on_former, on_new) = (
        public_tables(&inc.former).await,
        public_tables(&inc.new).await,
    );
    let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
    for (name, natts) in &on_former {
        match on_new.get(name) {
            None => expected.insert((name.clone(), "created".into())),
            Some(n) if n != natts => expected.insert((name.clone(), "altered".into())),
            Some(_) => false,
        };
    }
    for name in on_new.keys().filter(|n| !on_former.contains_key(*n)) {
        expected.insert((name.clone(), "dropped".into()));
    }
    assert_eq!(expected.len(), 3, "{on_former:?} / {on_new:?}");
    let listed = t["lost_ddl_relations"].as_array().unwrap();
    let got: BTreeSet<(String, String)> = listed
        .iter()
        .filter(|r| r["kind"] == "table")
        .map(|r| {
            assert_eq!(r["database"], "postgres", "{r}");
            (
                r["relation"].as_str().unwrap().to_string(),
                r["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, expected, "{}", t["lost_ddl_relations"]);
    assert!(
        !listed
            .iter()
            .any(|r| r["relation"].as_str().unwrap().ends_with("_pkey")),
        "an index created or dropped with its table is said by the table's line: {listed:?}"
    );
    let ddl_xids: BTreeSet<u64> = t["lost_xids"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["ddl"] == true)
        .map(|x| u(&x["xid"]))
        .collect();
    for r in listed.iter().filter(|r| !r["xid"].is_null()) {
        assert!(
            ddl_xids.contains(&u(&r["xid"])),
            "{r} not from a lost DDL xid"
        );
    }
    // A dropped view has no file: it is found by its pg_class row, which only the new primary
    // still has.
    let view_on = |rows: Vec<Vec<Option<String>>>| rows.len();
    let q = "SELECT 1 FROM pg_class WHERE relname = 'v_drop' AND relkind = 'v'";
    assert_eq!(
        (
            view_on(inc.new.query_rows(q).await.unwrap()),
            view_on(inc.former.query_rows(q).await.unwrap())
        ),
        (1, 0)
    );
    assert!(
        listed.iter().any(|r| r["relation"] == "public.v_drop"
            && r["kind"] == "view"
            && r["action"] == "dropped"),
        "{listed:?}"
    );
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert_eq!(t["lost_ddl_unnamed"], Value::Array(vec![]));
    // Every lost transaction names its database, the one that only called nextval too.
    for x in t["lost_xids"].as_array().unwrap() {
        assert!(x["database"].is_string(), "{x}");
    }
    // The created table's rows are lost with it, and a finding says so with their number.
    let newt_rows = id_v(&inc.former, "postgres", "newt").await.len();
    let f = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "tables_only_on_former")
        .expect("a tables_only_on_former finding");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains(&format!("postgres.public.newt ({newt_rows} row(s))")),
        "{f}"
    );

    // 4. The sequence the new primary never called: its next value, the former's last value,
    // how far to advance, and the setval in the recovery script.
    let next: i64 = inc
        .new
        .query_scalar(
            "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM s_never",
        )
        .await
        .unwrap();
    let former_last: i64 = inc
        .former
        .query_scalar("SELECT last_value FROM s_never")
        .await
        .unwrap();
    assert!(former_last >= 3 && next == 1, "{former_last} {next}");
    let seq = j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "sequences_behind")
        .unwrap();
    let row = seq["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["sequence"] == "s_never")
        .unwrap_or_else(|| panic!("{seq}"));
    assert_eq!(row["new_next_value"].as_i64(), Some(next), "{row}");
    assert_eq!(
        row["former_last_value"].as_i64(),
        Some(former_last),
        "{row}"
    );
    assert_eq!(
        row["advance_by"].as_i64(),
        Some(former_last - next + 1),
        "{row}"
    );
    let sd = j["tables"]["sequences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "s_never")
        .unwrap();
    assert_eq!(sd["new_last_value"], Value::Null);
    assert_eq!(sd["new_next_value"].as_i64(), Some(next));
    assert_eq!(sd["advance_by"].as_i64(), Some(former_last - next + 1));
    let script = std::fs::read_to_string(export.path().join("recovery-postgres.sql")).unwrap();
    assert!(
        script.contains(&format!("setval('\"public\".\"s_never\"', {former_last})"))
            || script.contains(&format!("setval('public.s_never', {former_last})")),
        "{script}"
    );

    // 5. Counts that appear in several places agree, in the JSON and in the other formats.
    assert_counts_agree(&j);
    let prom = compare(&inc, "postgres", "prometheus", &[]).await;
    let metric = |name: &str| -> u64 {
        prom.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .unwrap_or_else(|| panic!("{name} missing:\n{}", prom.stdout))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        metric("failover_verify_lost_transactions"),
        u(&t["lost_commits"])
    );
    assert_eq!(
        metric("failover_verify_lost_row_changes"),
        u(&t["row_changes"])
    );
    let totals = &j["tables"]["totals"];
    assert_eq!(
        metric("failover_verify_lost_rows"),
        u(&totals["lost_insert"]) + u(&totals["lost_update"]) + u(&totals["lost_delete"])
    );
    assert_eq!(
        metric("failover_verify_lost_wal_bytes"),
        u(&j["divergence"]["lost_wal_bytes"])
    );
    let csv = compare(&inc, "postgres", "csv", &[]).await;
    let mut reader = csv::Reader::from_reader(csv.stdout.as_bytes());
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    for x in t["tables"].as_array().unwrap() {
        let Some(name) = x["table"].as_str() else {
            continue;
        };
        let suffix = if x["kind"] == "table" {
            String::new()
        } else {
            format!(" ({})", x["kind"].as_str().unwrap())
        };
        let field = format!("{}.{name}{suffix}", x["database"].as_str().unwrap_or("-"));
        let r = records
            .iter()
            .find(|r| &r[0] == "table_loss" && r[1] == field)
            .unwrap_or_else(|| panic!("{field} not in the CSV"));
        assert_eq!(
            &r[2],
            format!(
                "{};{} ({});{};{}",
                x["inserts"], x["updates"], x["hot_updates"], x["deletes"], x["truncates"]
            ),
            "{field}"
        );
    }
    assert!(records.iter().any(|r| &r[0] == "summary"
        && &r[1] == "lost_ddl"
        && r[2].contains("table public.newt created")));
    let text = compare(&inc, "postgres", "text", &[]).await;
    let line = text
        .stdout
        .lines()
        .find(|l| l.starts_with("Lost DDL: "))
        .unwrap_or_else(|| panic!("no lost DDL line:\n{}", text.stdout));
    for (name, action) in &expected {
        assert!(line.contains(&format!("table {name} {action}")), "{line}");
    }

    // 6. A role that may not connect to db3: the database is named as not compared, with why
    // and what to run, and the report is incomplete; the other databases are still compared.
    let run = compare(&inc, "fv_reader", "json", &[]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stderr, run.stdout);
    let j = run.json();
    assert_eq!(j["incomplete"], true);
    let skipped = j["tables"]["skipped_databases"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0]["database"], "db3");
    let dbs: BTreeSet<&str> = j["tables"]["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(dbs, BTreeSet::from(["postgres", "db2"]));
    let f = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "database_not_compared")
        .expect("a database_not_compared finding");
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.contains("db3") && msg.contains("permission denied"),
        "{f}"
    );
    assert!(
        f["hint"]
            .as_str()
            .unwrap()
            .contains("--new-primary 'CONNINFO dbname=db3'"),
        "{f}"
    );
    assert_counts_agree(&j);

    // 7. The lost WAL unreadable on the former primary (no REPLICATION, no pg_read_binary_file):
    // which databases it touched is unknown, and the report says that only one was compared.
    let run = compare_as(&inc, "postgres", "fv_nowal", "json", &[]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stderr, run.stdout);
    let j = run.json();
    assert_eq!(j["verdict"], "loss");
    assert_eq!(j["incomplete"], true);
    assert!(j["transactions"].is_null());
    assert_eq!(j["tables"]["databases"], serde_json::json!(["postgres"]));
    let f = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "databases_unknown")
        .unwrap_or_else(|| panic!("no databases_unknown finding: {}", j["findings"]));
    assert!(
        f["hint"].as_str().unwrap().contains("--all-databases"),
        "{f}"
    );

    // 8. The former primary's WAL from files only: what cannot be named is said, with why.
    let copy = tempfile::tempdir().unwrap();
    util::copy_wal_dir(&inc.former.data_dir().join("pg_wal"), copy.path());
    let new = inc.new.conninfo();
    let run = run_tool(&[
        "compare",
        "--new-primary",
        &new,
        "--former-wal-dir",
        copy.path().to_str().unwrap(),
        "--format",
        "json",
    ])
    .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stderr, run.stdout);
    let j = run.json();
    let f = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "lost_ddl_unnamed")
        .unwrap_or_else(|| panic!("no lost_ddl_unnamed finding: {}", j["findings"]));
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("created or altered cannot be named"),
        "{f}"
    );
    // The dropped table is still named, by the new primary.
    let listed = j["transactions"]["lost_ddl_relations"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|r| r["relation"] == "public.dropme" && r["action"] == "dropped_or_rewritten"),
        "{listed:?}"
    );
    assert_eq!(u(&j["transactions"]["row_changes"]), {
        let user: Vec<Value> = j["transactions"]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["kind"] != "catalog")
            .cloned()
            .collect();
        sum(&user, "inserts") + sum(&user, "updates") + sum(&user, "deletes")
    });
}
