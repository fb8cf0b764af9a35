//! Row diff between two databases of one real server (two "nodes" without attribution input):
//! every common type compared exactly, hostile identifiers, tables and columns on one side
//! only, table globs, and `--max-rate`.

mod util;

use std::collections::BTreeSet;
use std::time::Instant;

use failover_verify::diff::{
    self, Attribution, DiffKind, DiffOptions, MaxRate, NoProgress, Presence, RowClass, TableFilter,
    TableReport, TablesReport,
};
use failover_verify::pg::{ConnParams, SessionOptions};
use failover_verify::sandbox::{Cluster, ClusterOptions};
use util::install_or_skip;

const SETUP: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE public.all_types(
  id int PRIMARY KEY,
  num numeric(12,4), num_free numeric, f4 float4, f8 float8, ts timestamptz, ts_plain timestamp,
  iv interval, arr int[], tarr text[], j json, jb jsonb, u uuid, b bytea, t text, d posint,
  m mood, dt date, bo boolean);
INSERT INTO public.all_types
SELECT g, g * 1.2345, (g::numeric / 7), g / 3.0, g / 7.0,
       '2024-03-01 12:00:00.123456+02'::timestamptz + g * interval '1 minute',
       '2024-03-01 12:00:00.5'::timestamp, g * interval '1 hour 3 seconds',
       ARRAY[g, g + 1], ARRAY['x' || g, NULL], ('{"a": ' || g || ', "b": [1, 2]}')::json,
       ('{"k": "v' || g || '"}')::jsonb, md5(g::text)::uuid, decode(md5(g::text), 'hex'),
       'grüße ' || g || ' ☃', g, (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::mood,
       DATE '2024-01-01' + g, g % 2 = 0
FROM generate_series(1, 500) g;
UPDATE public.all_types SET f8 = 'NaN', f4 = '-0' WHERE id = 100;
UPDATE public.all_types SET f8 = '-0', f4 = 'NaN', t = NULL, j = NULL WHERE id = 101;
UPDATE public.all_types SET f8 = 'Infinity', arr = NULL WHERE id = 102;

CREATE SCHEMA "we""ird; schema";
CREATE TABLE "we""ird; schema"."Sel ect"("key;--" text PRIMARY KEY, "order" int, "a""b" text, "ü nicode" text);
INSERT INTO "we""ird; schema"."Sel ect"
SELECT 'k' || lpad(g::text, 6, '0') || ' '' "q"', g, 'x', 'ü' FROM generate_series(1, 3000) g;
CREATE TABLE public.tmp_skip(id int PRIMARY KEY);
INSERT INTO public.tmp_skip VALUES (1);
CREATE TABLE public.shape(id int PRIMARY KEY, common text, only_here int, retyped int);
INSERT INTO public.shape SELECT g, 'c' || g, g, g FROM generate_series(1, 50) g;
ANALYZE;
"#;

/// Differences applied to database `b`: one changed value of each kind (row id → change).
const CHANGES: &[(i32, &str)] = &[
    (1, "num = 1.2340"),                // same number, different scale
    (2, "num_free = num_free + 1e-20"), // tiny numeric change
    (3, "f4 = f4 + 0.0000001"),         // float4 ulp
    (4, "f8 = f8 + 1e-15"),             // float8 ulp-ish
    (100, "f4 = 0"),                    // -0 → 0
    (101, "f8 = 0"),                    // -0 → 0
    (5, "ts = ts + interval '1 microsecond'"),
    (6, "ts_plain = ts_plain - interval '1 microsecond'"),
    (7, "iv = interval '1 day'"), // vs 7 hours 21 s
    (8, "arr = ARRAY[9, 8]"),
    (9, "tarr = ARRAY['x9', '']"), // NULL element → empty string
    (10, "j = '{\"b\": [1, 2], \"a\": 10}'"), // json key order
    (11, "jb = '{\"k\": \"v11 \"}'"),
    (12, "u = 'ffffffff-ffff-ffff-ffff-ffffffffffff'"),
    (13, "b = b || '\\x00'::bytea"),
    (14, "t = 'grüsse 14 ☃'"), // ß → ss
    (101, "t = ''"),           // NULL → empty
    (15, "d = 16"),
    (16, "m = 'sad'"),
    (17, "dt = dt + 1"),
    (18, "bo = NOT bo"),
    (102, "f8 = '-Infinity'"),
];

fn params(c: &Cluster, db: &str) -> ConnParams {
    ConnParams::parse(&c.conninfo_db(db), &|_| None).unwrap()
}

fn table<'a>(r: &'a TablesReport, name: &str) -> &'a TableReport {
    r.tables
        .iter()
        .find(|t| format!("{}.{}", t.schema, t.table) == name)
        .unwrap_or_else(|| {
            panic!(
                "{name} not in {:?}",
                r.tables.iter().map(|t| &t.table).collect::<Vec<_>>()
            )
        })
}

async fn run(c: &Cluster, opts: &DiffOptions) -> TablesReport {
    diff::compare_tables(
        &params(c, "b"),
        &params(c, "a"),
        &SessionOptions::default(),
        opts,
        &Attribution::default(),
        &NoProgress,
    )
    .await
    .expect("compare")
}

#[tokio::test]
async fn types_identifiers_one_sided_tables_and_globs() {
    let Some(install) = install_or_skip("diff_tables") else {
        return;
    };
    let c = Cluster::start_primary(&install, ClusterOptions::new("difftables"))
        .await
        .unwrap();
    c.execute("CREATE DATABASE a").await.unwrap();
    c.execute("CREATE DATABASE b").await.unwrap();
    c.execute_in("a", SETUP).await.unwrap();
    c.execute_in("b", SETUP).await.unwrap();

    // 1. Equal data, every type: zero differences (a second physical copy made by INSERTs).
    let opts = DiffOptions {
        chunk_rows: 40,
        leaf_rows: 64,
        ..Default::default()
    };
    let r = run(&c, &opts).await;
    for t in &r.tables {
        assert!(t.error.is_none(), "{}: {:?}", t.table, t.error);
        assert!(
            t.rows.is_empty() || t.table == "shape",
            "{}: {:?}",
            t.table,
            t.rows
        );
    }
    assert_eq!(table(&r, "public.all_types").rows_compared, 500);
    assert_eq!(table(&r, "we\"ird; schema.Sel ect").rows_compared, 3000);
    assert!(table(&r, "we\"ird; schema.Sel ect").chunks > 10);
    assert_eq!(r.totals.unknown, 0);

    // Schema differences are reported; the common columns are compared.
    c.execute_in(
        "b",
        "ALTER TABLE public.shape DROP COLUMN only_here; \
         ALTER TABLE public.shape ALTER COLUMN retyped TYPE bigint; \
         UPDATE public.shape SET common = 'changed' WHERE id = 7; \
         CREATE TABLE public.new_only(x int); INSERT INTO public.new_only VALUES (1), (2), (3);",
    )
    .await
    .unwrap();
    // 2. One change of each kind, plus missing/extra/changed rows under hostile names.
    for (id, set) in CHANGES {
        c.execute_in(
            "b",
            &format!("UPDATE public.all_types SET {set} WHERE id = {id}"),
        )
        .await
        .unwrap_or_else(|e| panic!("{set}: {e}"));
    }
    c.execute_in(
        "b",
        r#"DELETE FROM "we""ird; schema"."Sel ect" WHERE "order" IN (5, 1500, 2999);
           INSERT INTO "we""ird; schema"."Sel ect" VALUES ('k000000 extra', 0, 'y', 'ü'), ('zzz', 1, NULL, NULL);
           UPDATE "we""ird; schema"."Sel ect" SET "a""b" = 'changed' WHERE "order" IN (100, 2000);
           UPDATE "we""ird; schema"."Sel ect" SET "ü nicode" = 'u' WHERE "order" = 2500;"#,
    )
    .await
    .unwrap();
    let r = run(&c, &opts).await;
    let json = serde_json::to_string_pretty(&r).unwrap();
    let at = table(&r, "public.all_types");
    let want: BTreeSet<String> = CHANGES.iter().map(|(id, _)| id.to_string()).collect();
    let got: BTreeSet<String> = at
        .rows
        .iter()
        .map(|r| r.key.as_ref().unwrap()["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, want, "{json}");
    assert!(at
        .rows
        .iter()
        .all(|r| r.kind == DiffKind::Changed && r.class == RowClass::Unknown));
    assert_eq!(at.counts.changed, want.len() as u64);
    // The values are exact text: -0 and 0, scale, microseconds.
    let row = |id: &str| {
        at.rows
            .iter()
            .find(|r| r.key.as_ref().unwrap()["id"] == id)
            .unwrap()
    };
    assert_eq!(row("101").former.as_ref().unwrap().values["f8"], "-0");
    assert_eq!(row("101").new.as_ref().unwrap().values["f8"], "0");
    assert_eq!(
        row("101").former.as_ref().unwrap().values["t"],
        serde_json::Value::Null
    );
    assert_eq!(row("1").new.as_ref().unwrap().values["num"], "1.2340");
    assert!(row("5").new.as_ref().unwrap().values["ts"]
        .as_str()
        .unwrap()
        .ends_with(".123457+00"));

    let h = table(&r, "we\"ird; schema.Sel ect");
    assert!(h.error.is_none(), "{:?}", h.error);
    assert_eq!(
        (
            h.counts.missing_on_new,
            h.counts.extra_on_new,
            h.counts.changed
        ),
        (3, 2, 3),
        "{json}"
    );
    assert_eq!(h.counts.unknown, 5 + 3);
    let missing: BTreeSet<String> = h
        .rows
        .iter()
        .filter(|r| r.kind == DiffKind::MissingOnNew)
        .map(|r| {
            r.key.as_ref().unwrap()["key;--"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        missing,
        ["k000005 ' \"q\"", "k001500 ' \"q\"", "k002999 ' \"q\""]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );

    let shape = table(&r, "public.shape");
    let kinds: BTreeSet<&str> = shape
        .schema_differences
        .iter()
        .map(|d| d.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        ["column_only_on_former", "type_differs"]
            .into_iter()
            .collect()
    );
    assert_eq!(shape.columns, vec!["id", "common"]);
    assert_eq!(shape.counts.changed, 1);
    let no = table(&r, "public.new_only");
    assert_eq!(no.presence, Presence::NewOnly);
    assert_eq!(no.rows_compared, 3);

    // 3. Globs: include, exclude, schemas.
    let names = |r: &TablesReport| -> BTreeSet<String> {
        r.tables
            .iter()
            .map(|t| format!("{}.{}", t.schema, t.table))
            .collect()
    };
    let g = DiffOptions {
        filter: TableFilter::new(
            &["public.*".into()],
            &["*.tmp_*".into(), "public.new_*".into()],
            &[],
        )
        .unwrap(),
        ..opts.clone()
    };
    assert_eq!(
        names(&run(&c, &g).await),
        ["public.all_types", "public.shape"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let g = DiffOptions {
        filter: TableFilter::new(&[], &[], &["we*".into()]).unwrap(),
        ..opts.clone()
    };
    assert_eq!(
        names(&run(&c, &g).await),
        ["we\"ird; schema.Sel ect"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );

    // 4. --max-rate: 3000 + 500 rows at 2000 rows/s take well over a second.
    let slow = DiffOptions {
        max_rate: Some(MaxRate::Rows(2000)),
        filter: TableFilter::new(&["public.all_types".into(), "we*".into()], &[], &[]).unwrap(),
        ..opts.clone()
    };
    let t0 = Instant::now();
    let r = run(&c, &slow).await;
    assert!(
        t0.elapsed().as_secs_f64() > 1.2,
        "throttled: {:?}",
        t0.elapsed()
    );
    assert_eq!(
        table(&r, "public.all_types").counts.changed,
        want.len() as u64
    );
    assert_eq!(table(&r, "we\"ird; schema.Sel ect").counts.changed, 3);

    // 5. --all-databases: the server against itself, every database, no differences.
    let all = DiffOptions {
        all_databases: true,
        ..opts.clone()
    };
    let p = params(&c, "postgres");
    let r = diff::compare_tables(
        &p,
        &p,
        &SessionOptions::default(),
        &all,
        &Attribution::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(r.databases, vec!["a", "b", "postgres"]);
    assert!(r
        .tables
        .iter()
        .any(|t| t.database == "a" && t.table == "all_types"));
    assert!(r
        .tables
        .iter()
        .any(|t| t.database == "b" && t.table == "new_only"));
    let t = &r.totals;
    assert_eq!(t.missing_on_new + t.extra_on_new + t.changed, 0, "{:?}", t);

    // 6. A planner that names keys (as a WAL-guided one will): only those rows are compared.
    let keys = KeysPlanner(vec!["1", "2", "50"]);
    let only = DiffOptions {
        filter: TableFilter::new(&["public.all_types".into()], &[], &[]).unwrap(),
        ..opts.clone()
    };
    let r = diff::compare_tables_with(
        &params(&c, "b"),
        &params(&c, "a"),
        &SessionOptions::default(),
        &only,
        &Attribution::default(),
        &keys,
        &NoProgress,
    )
    .await
    .unwrap();
    let at = table(&r, "public.all_types");
    let got: BTreeSet<&str> = at
        .rows
        .iter()
        .map(|r| r.key.as_ref().unwrap()["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["1", "2"].into_iter().collect());
}

/// Plans one unit per table: the listed single-column keys.
struct KeysPlanner(Vec<&'static str>);

impl diff::Planner for KeysPlanner {
    fn plan<'a>(
        &'a self,
        index: usize,
        _pair: &'a diff::TablePair,
        _new: &'a failover_verify::pg::Session,
        _former: &'a failover_verify::pg::Session,
    ) -> futures_util::future::BoxFuture<'a, Result<diff::chunk::TablePlan, diff::DiffError>> {
        Box::pin(async move {
            Ok(diff::chunk::TablePlan {
                units: vec![diff::WorkUnit {
                    table: index,
                    scope: diff::Scope::Keys(
                        self.0.iter().map(|k| vec![Some(k.to_string())]).collect(),
                    ),
                }],
                chunking: diff::chunk::Chunking::Single,
                estimated_rows: self.0.len() as u64,
                row_bytes: 100.0,
            })
        })
    }
}

/// Composite keys whose leading column has one or two values: one with integer columns, one
/// with text columns (quotes, an empty string as a key part).
const COMPOSITE: &str = r#"
CREATE TABLE public.tenant_rows(tenant int, id int, v text, PRIMARY KEY (tenant, id));
INSERT INTO public.tenant_rows
SELECT CASE WHEN g <= 100000 THEN 1 ELSE 2 END, g, 'v' || g FROM generate_series(1, 120000) g;
CREATE TABLE public.tenant_names(tenant text, name text, n int, PRIMARY KEY (tenant, name));
INSERT INTO public.tenant_names
SELECT 'acme', 'n ' || md5(g::text) || ' ''q"', g FROM generate_series(1, 100000) g;
ANALYZE;
"#;

/// The differing keys of `t` of one kind, each as its key values joined by `|`.
fn keys_by_kind(t: &TableReport, kind: DiffKind) -> BTreeSet<String> {
    t.rows
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| {
            let k = r.key.as_ref().unwrap();
            t.key_columns
                .iter()
                .map(|c| k[c].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A composite primary key is ranged and bisected as a whole row value: with a single value in
/// its leading column, the first pass still cuts the table into many chunks, a mismatching
/// chunk still narrows down, and only a few percent of the rows are read one by one.
#[tokio::test]
async fn composite_keys_are_ranged_on_the_whole_key() {
    let Some(install) = install_or_skip("diff_tables composite") else {
        return;
    };
    let c = Cluster::start_primary(&install, ClusterOptions::new("diffcomposite"))
        .await
        .unwrap();
    c.execute("CREATE DATABASE a").await.unwrap();
    c.execute("CREATE DATABASE b").await.unwrap();
    c.execute_in("a", COMPOSITE).await.unwrap();
    c.execute_in("b", COMPOSITE).await.unwrap();
    let b = c.connect_db("b").await.unwrap();
    let names = |ns: &'static str| {
        let b = &b;
        async move {
            let rows = b
                .query(
                    format!("SELECT name FROM public.tenant_names WHERE n IN ({ns}) ORDER BY n")
                        .as_str(),
                    &[],
                )
                .await
                .unwrap();
            rows.iter()
                .map(|r| format!("acme|{}", r.get::<_, String>(0)))
                .collect::<BTreeSet<String>>()
        }
    };
    let (deleted, updated) = (
        names("7, 50000, 99998").await,
        names("1, 777, 100000").await,
    );
    assert_eq!((deleted.len(), updated.len()), (3, 3));
    // The new side ("b"): rows missing, extra and changed, scattered over the key range.
    b.batch_execute(
        "DELETE FROM public.tenant_rows WHERE (tenant, id) IN ((1, 10), (1, 50000), (2, 119999));
         INSERT INTO public.tenant_rows VALUES (1, 150000, 'x'), (2, 5, 'x'), (3, 1, 'x');
         UPDATE public.tenant_rows SET v = 'changed' WHERE (tenant, id) IN ((1, 777), (1, 99999), (2, 100001));
         DELETE FROM public.tenant_names WHERE n IN (7, 50000, 99998);
         INSERT INTO public.tenant_names VALUES ('acme', '', 0), ('acme', 'zz '' \"', 0), ('acmf', 'a', 0);
         UPDATE public.tenant_names SET n = -n WHERE n IN (1, 777, 100000);",
    )
    .await
    .unwrap();
    let want_rows = [
        (
            DiffKind::MissingOnNew,
            set(&["1|10", "1|50000", "2|119999"]),
        ),
        (DiffKind::ExtraOnNew, set(&["1|150000", "2|5", "3|1"])),
        (DiffKind::Changed, set(&["1|777", "1|99999", "2|100001"])),
    ];
    let want_names = [
        (DiffKind::MissingOnNew, deleted),
        (
            DiffKind::ExtraOnNew,
            set(&["acme|", "acme|zz ' \"", "acmf|a"]),
        ),
        (DiffKind::Changed, updated),
    ];
    let filter = TableFilter::new(&["public.tenant_*".into()], &[], &[]).unwrap();
    // Default chunking (256 rows per chunk); the same cut into units of whole-key ranges by
    // --max-rate (200,000 rows/s: 50,000-row units); big chunks that must be bisected.
    for (chunk_rows, leaf_rows, max_rate) in [
        (256, 1024, None),
        (256, 1024, Some(MaxRate::Rows(200_000))),
        (20_000, 500, None),
    ] {
        let opts = DiffOptions {
            chunk_rows,
            leaf_rows,
            max_rate,
            filter: filter.clone(),
            ..Default::default()
        };
        let r = run(&c, &opts).await;
        let json = serde_json::to_string_pretty(&r).unwrap();
        for (name, rows, want) in [
            ("public.tenant_rows", 120_000u64, &want_rows),
            ("public.tenant_names", 100_000, &want_names),
        ] {
            let t = table(&r, name);
            assert!(t.error.is_none(), "{name}: {:?}", t.error);
            for (kind, keys) in want.iter() {
                assert_eq!(
                    &keys_by_kind(t, *kind),
                    keys,
                    "{name} {kind:?} (chunk_rows {chunk_rows})"
                );
            }
            assert_eq!(t.rows.len(), 9, "{name}: {json}");
            assert!(t.rows_compared >= rows, "{name}: {}", t.rows_compared);
            // With the leading column alone, the whole table is one range fetched row by row.
            assert!(
                t.rows_fetched * 20 < rows,
                "{name} (chunk_rows {chunk_rows}): {} of {rows} rows fetched one by one",
                t.rows_fetched
            );
            assert!(t.rows_fetched >= 9, "{name}: {}", t.rows_fetched);
            if chunk_rows == 256 {
                assert!(t.chunks > 100, "{name}: {} first-pass chunks", t.chunks);
            } else {
                // Each first-pass chunk holds far more than 5% of the rows: bisection narrowed.
                assert!(t.chunks <= 12, "{name}: {} first-pass chunks", t.chunks);
            }
        }
    }
}

/// `--export-dir`: a NULL and an empty string stay apart in the CSV (and read back so with
/// `COPY … (FORMAT csv, HEADER)`) and in the recovery script.
#[tokio::test]
async fn export_tells_null_from_empty_string() {
    let Some(install) = install_or_skip("diff_tables export") else {
        return;
    };
    let c = Cluster::start_primary(&install, ClusterOptions::new("diffexport"))
        .await
        .unwrap();
    c.execute("CREATE DATABASE a").await.unwrap();
    c.execute("CREATE DATABASE b").await.unwrap();
    let setup = "CREATE TABLE public.t(id int PRIMARY KEY, a text, b text);
                 INSERT INTO public.t VALUES (0, 'base', 'base');";
    c.execute_in("a", setup).await.unwrap();
    c.execute_in("b", setup).await.unwrap();
    // The former side ("a") has rows the new side lacks, written by one "lost" transaction.
    let a = c.connect_db("a").await.unwrap();
    a.batch_execute(
        "BEGIN; INSERT INTO public.t VALUES (1, NULL, ''), (2, '', NULL), \
         (3, 'x,\"y\"' || chr(10) || 'z', '\\.')",
    )
    .await
    .unwrap();
    let xid: i64 = a
        .query_one("SELECT txid_current()", &[])
        .await
        .unwrap()
        .get(0);
    a.batch_execute("COMMIT").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = DiffOptions {
        export_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let attribution = Attribution {
        lost_xids: [xid as u32].into_iter().collect(),
        new_side_first_xid: None,
    };
    let r = diff::compare_tables(
        &params(&c, "b"),
        &params(&c, "a"),
        &SessionOptions::default(),
        &opts,
        &attribution,
        &NoProgress,
    )
    .await
    .unwrap();
    let t = table(&r, "public.t");
    assert_eq!(t.counts.lost_insert, 3, "{:?}", t.rows);
    let ex = r.export.as_ref().unwrap();
    let csv_name = ex.files.iter().find(|f| f.ends_with(".lost.csv")).unwrap();
    let csv = std::fs::read(dir.path().join(csv_name)).unwrap();
    assert_eq!(
        String::from_utf8(csv.clone()).unwrap(),
        format!(
            "class,xmin,id,a,b\n\
             lost_insert,{xid},1,,\"\"\n\
             lost_insert,{xid},2,\"\",\n\
             lost_insert,{xid},3,\"x,\"\"y\"\"\nz\",\"\\.\"\n"
        )
    );
    // COPY reads the CSV back: NULL stays NULL, '' stays ''.
    // (`xmin` is a system column name: the scratch table names that column otherwise.)
    let pg = c.connect().await.unwrap();
    pg.batch_execute("CREATE TABLE scratch(class text, lost_xmin bigint, id int, a text, b text)")
        .await
        .unwrap();
    {
        use futures_util::SinkExt;
        let sink = pg
            .copy_in("COPY scratch FROM STDIN (FORMAT csv, HEADER)")
            .await
            .unwrap();
        let mut sink = std::pin::pin!(sink);
        sink.send(bytes::Bytes::from(csv)).await.unwrap();
        assert_eq!(sink.as_mut().finish().await.unwrap(), 3);
    }
    type Back = (i32, bool, Option<String>, bool, Option<String>);
    let back: Vec<Back> = pg
        .query(
            "SELECT id, a IS NULL, a, b IS NULL, b FROM scratch ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(
        back,
        vec![
            (1, true, None, false, Some(String::new())),
            (2, false, Some(String::new()), true, None),
            (
                3,
                false,
                Some("x,\"y\"\nz".into()),
                false,
                Some("\\.".into())
            ),
        ]
    );
    // The script uses NULL and '' literals; applied to the new side it makes both sides equal.
    let script = std::fs::read_to_string(dir.path().join("recovery.sql")).unwrap();
    for want in [
        "VALUES ('1'::integer, NULL::text, ''::text) ON CONFLICT DO NOTHING;",
        "VALUES ('2'::integer, ''::text, NULL::text) ON CONFLICT DO NOTHING;",
    ] {
        assert!(script.contains(want), "{want} not in\n{script}");
    }
    c.execute_in("b", &script).await.unwrap();
    let r = run(
        &c,
        &DiffOptions {
            filter: TableFilter::new(&["public.t".into()], &[], &[]).unwrap(),
            ..Default::default()
        },
    )
    .await;
    let t = table(&r, "public.t");
    assert!(t.rows.is_empty(), "{:?}", t.rows);
    assert_eq!(t.rows_compared, 4);
}
