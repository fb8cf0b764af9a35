//! Rows decoded from the WAL alone, checked value by value against what the server prints for
//! the same rows (its output functions, over the simple protocol): every supported type with NULLs and edge values, a dropped and
//! two added columns, inline-compressed and out-of-line TOAST values (pglz and lz4), INSERT,
//! COPY (multi-insert), HOT and non-HOT updates (prefix/suffix compression), deletes, with
//! full-page images under each `wal_compression`; and under `wal_level = logical` with
//! REPLICA IDENTITY FULL, the logged old tuples against the rows as they were before.

mod util;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use failover_verify::lsn::{Lsn, TimelineId};
use failover_verify::sandbox::{Cluster, ClusterOptions, PgInstall};
use failover_verify::values::toast::{assemble, Varlena};
use failover_verify::values::{decode_row, deform, Datum, RelDesc, Value};
use failover_verify::wal::heap::Tid;
use failover_verify::wal::source::WalDir;
use failover_verify::wal::tuple::{
    tuples_of, HeapTuple, ImageSource, NewTupleOp, OldKind, TupleImage,
};
use failover_verify::wal::RelFileLocator;
use util::install_or_skip;

/// The settings the tool pins on its sessions.
const PIN: &str =
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres';
                   SET extra_float_digits = 1; SET bytea_output = 'hex';";

const COLUMNS: &str =
    "id, i2, i8, f4, f8, n, b, t, vc, c, nm, ch, by, u, d, tm, ttz, ts, tstz, iv, j, jb, ip, cn,
    ai, at, an, ats, m, ma, dm, dropme, big, ext, pt";

fn create_sql(t: &str) -> String {
    format!(
        "CREATE TABLE {t} (
           id int4 PRIMARY KEY, i2 int2, i8 int8, f4 float4, f8 float8, n numeric, b bool,
           t text, vc varchar(20), c char(5), nm name, ch \"char\", by bytea, u uuid, d date,
           tm time, ttz timetz, ts timestamp, tstz timestamptz, iv interval, j json, jb jsonb,
           ip inet, cn cidr, ai int4[], at text[], an numeric[], ats timestamptz[], m mood,
           ma mood[], dm posint, dropme text, big text, ext text, pt point
         ) WITH (fillfactor = 50, autovacuum_enabled = false);
         ALTER TABLE {t} ALTER COLUMN ext SET STORAGE EXTERNAL;"
    )
}

/// `n` generated rows from `first`: every column, with NULLs, TOASTed values of three kinds.
fn generated_select(first: i32, n: i32) -> String {
    format!(
        "SELECT g,
           CASE WHEN g % 5 = 0 THEN NULL ELSE (g * 37 % 60000 - 30000)::int2 END,
           g::int8 * 1234567890123 * (CASE WHEN g % 2 = 0 THEN -1 ELSE 1 END),
           (g / 7.0)::float4,
           CASE WHEN g % 3 = 0 THEN NULL ELSE pi() * 10.0 ^ (g % 40 - 20) END,
           round((g::numeric ^ 3) / 7, g % 12) * (CASE WHEN g % 2 = 0 THEN -1 ELSE 1 END),
           g % 2 = 0,
           CASE WHEN g % 4 = 0 THEN NULL ELSE 'text \"' || g || E'\" \\\\ with\\ttab' END,
           'vc' || g,
           chr(97 + g % 26),
           'name_' || g,
           chr(65 + g % 26)::\"char\",
           decode(md5(g::text), 'hex'),
           md5(g::text)::uuid,
           '2000-01-01'::date + (g * 397 - 20000),
           '00:00:01.5'::time + g * interval '17 minutes 3.125 seconds',
           format('%s:%s:07.25+%s', 10 + g % 10, 10 + g % 50, lpad((g % 12)::text, 2, '0'))::timetz,
           '2020-02-29 12:00:00'::timestamp + g * interval '1 day 1.5 seconds',
           '1999-12-31 23:59:59.5+00'::timestamptz + g * interval '37 hours 0.001 s',
           make_interval(years => g % 3 - 1, months => g % 14 - 7, days => g % 40 - 20, secs => g * 1.25 - 30),
           json_build_object('g', g, 's', 'x\"y'),
           jsonb_build_object('g', g, 'n', g / 3.0, 'a', jsonb_build_array(1, 'two', null, true, false, g * 1.5),
                              'o', jsonb_build_object('k', 'v' || g)),
           ('10.' || g % 256 || '.0.1/' || (8 + g % 25))::inet,
           ('10.' || g % 256 || '.0.0/16')::cidr,
           ARRAY[g, NULL, -g],
           ARRAY['a' || g, 'with space', '', 'NULL', 'q\"b\\c', '{{x}}'],
           ARRAY[g / 3.0, -g],
           ARRAY['2020-01-01 00:00:00+00'::timestamptz + g * interval '1 s'],
           (ARRAY['sad', 'ok', 'happy with space'])[1 + g % 3]::mood,
           ARRAY['sad'::mood, 'happy with space'],
           g,
           'gone',
           CASE WHEN g % 6 = 0 THEN repeat('compressible ' || g, 300)
                WHEN g % 25 = 1 THEN repeat((SELECT string_agg(md5((g * 1000 + i)::text), '')
                                            FROM generate_series(1, 125) i), 5) END,
           CASE WHEN g % 9 = 0 THEN repeat(md5(g::text), 120) END,
           CASE WHEN g % 8 <> 0 THEN point(g, g / 2.0) END
         FROM generate_series({first}, {}) g",
        first + n - 1
    )
}

/// One-column edge rows: `(column, SQL literal)`, gated by major version.
fn edge_values(major: u32) -> Vec<(&'static str, &'static str)> {
    let mut v = vec![
        ("f4", "'NaN'"),
        ("f4", "'-Infinity'"),
        ("f4", "'-0'"),
        ("f4", "'1e-45'"),
        ("f4", "'3.4028235e38'"),
        ("f4", "'1e6'"),
        ("f4", "'123456'"),
        ("f4", "'0.1'"),
        ("f4", "'1.5e-5'"),
        ("f8", "'-0'"),
        ("f8", "'1e15'"),
        ("f8", "'1e14'"),
        ("f8", "'1e-5'"),
        ("f8", "'0.0001'"),
        ("f8", "'5e-324'"),
        ("f8", "'1.7976931348623157e308'"),
        ("f8", "'0.30000000000000004'"),
        ("f8", "'123456789012345.6'"),
        ("f8", "'Infinity'"),
        ("f8", "'NaN'"),
        ("n", "'0'"),
        ("n", "'-0.001'"),
        ("n", "'123456789012345678901234567890.123456789'"),
        ("n", "'NaN'"),
        ("n", "'1e-20'"),
        ("n", "'-1e20'"),
        ("n", "'0.00000'"),
        ("n", "'9999.9999'"),
        ("n", "'10000'"),
        ("n", "'0.0001'"),
        ("n", "'1e-130'"),
        ("n", "'1e131'"),
        ("i2", "-32768"),
        ("i8", "-9223372036854775808"),
        ("i8", "9223372036854775807"),
        ("d", "'infinity'"),
        ("d", "'-infinity'"),
        ("d", "'4713-01-01 BC'"),
        ("d", "'5874897-12-31'"),
        ("d", "'0001-01-01 BC'"),
        ("d", "'1900-02-28'"),
        ("ts", "'infinity'"),
        ("ts", "'-infinity'"),
        ("ts", "'4713-01-01 00:00:00 BC'"),
        ("ts", "'294276-12-31 23:59:59.999999'"),
        ("ts", "'1999-12-31 23:59:59.999999'"),
        ("tstz", "'epoch'"),
        ("tstz", "'-infinity'"),
        ("tstz", "'0044-03-15 12:00:00+00 BC'"),
        ("tm", "'24:00:00'"),
        ("tm", "'00:00:00'"),
        ("tm", "'23:59:59.999999'"),
        ("ttz", "'00:00:00+14:59'"),
        ("ttz", "'12:00:00-05:30'"),
        ("ttz", "'01:02:03.5+00'"),
        ("iv", "'-1 year -2 mons +3 days -04:05:06.789'"),
        ("iv", "'1 day -00:00:01'"),
        ("iv", "'-00:00:00.000001'"),
        ("iv", "'178000000 years'"),
        ("iv", "'0'"),
        ("iv", "'1 mon'"),
        ("iv", "'-1 days'"),
        ("iv", "'-1 mon +1 day'"),
        ("iv", "'3 days 25:00:00'"),
        ("iv", "'-2 years'"),
        ("iv", "'1 year -1 mon'"),
        ("ip", "'::1'"),
        ("ip", "'::'"),
        ("ip", "'2001:db8::'"),
        ("ip", "'::ffff:1.2.3.4'"),
        ("ip", "'::1.2.3.4'"),
        ("ip", "'fe80::1:0:0:1/64'"),
        ("ip", "'1:0:0:1:0:0:0:1'"),
        ("ip", "'1:0:1:0:1:0:1:0'"),
        ("ip", "'255.255.255.255/32'"),
        ("ip", "'0.0.0.0/0'"),
        ("ip", "'2001:db8:0:0:1:0:0:1'"),
        ("ip", "'1::'"),
        ("ip", "'0:0:0:0:0:1:0:0'"),
        ("cn", "'::/0'"),
        ("cn", "'2001:db8::/32'"),
        ("cn", "'192.168.0.0/24'"),
        ("cn", "'::ffff:0.0.0.0/96'"),
        ("cn", "'10.1.2.3/32'"),
        ("jb", "'null'"),
        ("jb", "'\"str\"'"),
        ("jb", "'1.5'"),
        ("jb", "'true'"),
        ("jb", "'[]'"),
        ("jb", "'{}'"),
        (
            "jb",
            r#"'{"a": {"b": [1, {"c": "d\n\u0001é\\\""}]}, "aa": null, "": -0.0}'"#,
        ),
        (
            "jb",
            "(SELECT jsonb_agg(i * 1.5) FROM generate_series(1, 100) i)",
        ),
        (
            "jb",
            "(SELECT jsonb_object_agg('k' || i, repeat('v', i)) FROM generate_series(1, 70) i)",
        ),
        (
            "jb",
            "'[1e100, -0.5, 12345678901234567890, [[[]]], {\"x\": [{}]}]'",
        ),
        ("j", "'{\"raw\":   \"spacing kept\"}'"),
        ("t", "''"),
        ("t", "'NULL'"),
        ("t", "E'line\\nbreak'"),
        ("t", "'ünïcødé ✓'"),
        ("c", "''"),
        ("c", "'ab'"),
        ("c", "'abcde'"),
        ("nm", "repeat('n', 63)"),
        ("by", "''::bytea"),
        ("by", "'\\x00ff'::bytea"),
        ("ai", "'{}'"),
        ("ai", "'[0:2]={1,2,3}'"),
        ("ai", "'{{1,2},{3,4}}'"),
        ("ai", "'{NULL}'"),
        ("ai", "'[-3:-2][5:5]={{7},{8}}'"),
        ("at", "'{\"\",NULL,\" x \",\"a,b\",\"\\\\\"}'"),
        ("an", "'{NaN,1.50}'"),
        ("ats", "'{infinity,NULL}'"),
        ("ma", "'{}'"),
        ("u", "'00000000-0000-0000-0000-000000000000'"),
    ];
    if major >= 14 {
        v.extend([("n", "'Infinity'"), ("n", "'-Infinity'")]);
    }
    if major >= 15 {
        v.extend([("ch", "E'\\\\303'::\"char\""), ("ch", "''::\"char\"")]);
    }
    if major >= 17 {
        v.extend([("iv", "'infinity'"), ("iv", "'-infinity'")]);
    }
    v
}

/// What one round covered, so that a missing path makes the test fail.
#[derive(Debug, Default)]
struct Coverage {
    rows_checked: usize,
    from_data: usize,
    from_image: usize,
    image_insert: usize,
    image_multi_insert: usize,
    image_update: usize,
    multi_insert: usize,
    prefix_suffix: usize,
    hot: usize,
    inline_compressed: usize,
    external_plain: usize,
    external_compressed: usize,
    old_tuples: usize,
    undecoded: usize,
}

/// Rows of `sql` as text, with the pinned settings.
async fn rows(c: &Cluster, sql: &str) -> Vec<Vec<Option<String>>> {
    c.query_rows(&format!("{PIN} {sql}")).await.unwrap()
}

fn tid_of(s: &str) -> Tid {
    let (b, o) = s
        .trim_matches(|c| c == '(' || c == ')')
        .split_once(',')
        .unwrap();
    Tid {
        block: b.parse().unwrap(),
        offset: o.parse().unwrap(),
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Text { text } => Some(text.clone()),
        other => panic!("not text: {other:?}"),
    }
}

/// One round on table `t`: the workload, then decode `[checkpoint, switch)` from a copy of
/// pg_wal and compare.
async fn round(
    c: &Cluster,
    t: &str,
    wal_compression: &str,
    toast: &str,
    logical: bool,
) -> Coverage {
    let major = c.install().version_major;
    let client = c.connect().await.unwrap();
    client.batch_execute(PIN).await.unwrap();
    client
        .batch_execute(&format!("SET wal_compression = {wal_compression}"))
        .await
        .unwrap();
    if major >= 14 {
        client
            .batch_execute(&format!("SET default_toast_compression = {toast}"))
            .await
            .unwrap();
    }
    client.batch_execute(&create_sql(t)).await.unwrap();
    if logical {
        client
            .batch_execute(&format!("ALTER TABLE {t} REPLICA IDENTITY FULL"))
            .await
            .unwrap();
    }
    // A page that exists before the checkpoint (its rows deleted): the first insert after it
    // carries a full-page image, which new pages (initialised by their first insert) do not.
    client
        .batch_execute(&format!(
            "INSERT INTO {t} (id) SELECT g FROM generate_series(-5, -1) g; DELETE FROM {t};"
        ))
        .await
        .unwrap();
    client.batch_execute("CHECKPOINT").await.unwrap();
    let start: Lsn = client
        .query_one(
            "SELECT checkpoint_lsn::text FROM pg_control_checkpoint()",
            &[],
        )
        .await
        .unwrap()
        .get::<_, String>(0)
        .parse()
        .unwrap();
    // Single-row INSERTs: the first on each page carries a full-page image.
    client
        .batch_execute(&format!(
            "INSERT INTO {t} ({COLUMNS}) {}",
            generated_select(1, 40)
        ))
        .await
        .unwrap();
    for (i, (col, lit)) in edge_values(major).iter().enumerate() {
        client
            .batch_execute(&format!(
                "INSERT INTO {t} (id, {col}) VALUES ({}, {lit})",
                10_000 + i
            ))
            .await
            .unwrap_or_else(|e| panic!("{col} = {lit}: {e}"));
    }
    // Rows written before these have fewer attributes: attmissingval fills them in.
    client
        .batch_execute(&format!(
            "ALTER TABLE {t} DROP COLUMN dropme;
             ALTER TABLE {t} ADD COLUMN added int DEFAULT 42, ADD COLUMN added_t text DEFAULT 'x \"y';"
        ))
        .await
        .unwrap();
    let cols_now = COLUMNS.replace(", dropme", "");
    let gen_now = generated_select(41, 60).replace("'gone',", "");
    client
        .batch_execute(&format!("INSERT INTO {t} ({cols_now}) {gen_now}"))
        .await
        .unwrap();
    // COPY: heap2 MULTI_INSERT, the first batch into the last page (room made by the lower
    // fillfactor), imaged after the checkpoint.
    client
        .batch_execute(&format!(
            "ALTER TABLE {t} SET (fillfactor = 100); CHECKPOINT;"
        ))
        .await
        .unwrap();
    let file = format!("/tmp/fv_wal_tuples_{}_{t}.copy", c.port());
    client
        .batch_execute(&format!(
            "COPY ({}) TO '{file}'; COPY {t} ({cols_now}) FROM '{file}';",
            generated_select(101, 120).replace("'gone',", "")
        ))
        .await
        .unwrap();
    let _ = std::fs::remove_file(&file);
    let before = if logical {
        snapshot(c, t).await
    } else {
        HashMap::new()
    };
    // The first update on each page carries its image; later ones their data. Hint bits are
    // set first: else (wal_log_hints) the update's own scan images the pages beforehand.
    client
        .batch_execute(&format!("SELECT count(*) FROM {t}; CHECKPOINT;"))
        .await
        .unwrap();
    // Disjoint row sets: HOT updates of a column between long ones (prefix and suffix left
    // out), an update of the middle text, a key update (not HOT), deletes.
    client
        .batch_execute(&format!(
            "UPDATE {t} SET i2 = coalesce(i2, 0) + 1 WHERE id % 10 = 1;
             UPDATE {t} SET t = coalesce(t, '') || ' changed' WHERE id % 10 = 2;
             UPDATE {t} SET id = id + 100000 WHERE id % 10 = 3;
             DELETE FROM {t} WHERE id % 10 = 4;"
        ))
        .await
        .unwrap();
    let end: Lsn = client
        .query_one("SELECT pg_switch_wal()::text", &[])
        .await
        .unwrap()
        .get::<_, String>(0)
        .parse()
        .unwrap();
    let oids = client
        .query_one(
            &format!(
                "SELECT '{t}'::regclass::oid::int8, pg_relation_filenode('{t}')::int8,
                        reltoastrelid::int8, pg_relation_filenode(reltoastrelid)::int8
                   FROM pg_class WHERE oid = '{t}'::regclass"
            ),
            &[],
        )
        .await
        .unwrap();
    let (rel_oid, rel_node, toast_oid, toast_node) = (
        oids.get::<_, i64>(0) as u32,
        oids.get::<_, i64>(1) as u32,
        oids.get::<_, i64>(2) as u32,
        oids.get::<_, i64>(3) as u32,
    );
    let desc = RelDesc::load(&client, rel_oid, Duration::from_secs(30))
        .await
        .unwrap();
    let toast_desc = RelDesc::load(&client, toast_oid, Duration::from_secs(30))
        .await
        .unwrap();

    // Decode a copy of pg_wal.
    let copy = tempfile::tempdir().unwrap();
    util::copy_wal_dir(&c.data_dir().join("pg_wal"), copy.path());
    let dir = WalDir::open(copy.path(), TimelineId(1)).unwrap();
    let mut cov = Coverage::default();
    let mut latest: HashMap<(u32, Tid), HeapTuple> = HashMap::new();
    let mut chunks: HashMap<u32, Vec<(i32, Vec<u8>)>> = HashMap::new();
    let mut olds = Vec::new();
    for rec in dir.read(start, Some(end)) {
        let rec = rec.unwrap();
        let got = tuples_of(&rec).unwrap();
        if let Some(old) = got.old {
            if old.rel.rel == rel_node {
                olds.push(old);
            }
        }
        for nt in got.new {
            let RelFileLocator { rel, .. } = nt.rel;
            if rel != rel_node && rel != toast_node {
                continue;
            }
            let tuple = match nt.image {
                TupleImage::Complete(t) => t,
                TupleImage::NeedsOld(p) => {
                    let NewTupleOp::Update { old, .. } = nt.op else {
                        panic!("a partial image that is not an update")
                    };
                    let old_t = latest
                        .get(&(rel, old))
                        .unwrap_or_else(|| panic!("old tuple {old:?} of {} not seen", nt.lsn));
                    cov.prefix_suffix += 1;
                    p.complete(old_t).unwrap()
                }
            };
            if rel == rel_node {
                match (nt.source, nt.op) {
                    (ImageSource::PageImage, op) => {
                        cov.from_image += 1;
                        match op {
                            NewTupleOp::Insert => cov.image_insert += 1,
                            NewTupleOp::MultiInsert => cov.image_multi_insert += 1,
                            NewTupleOp::Update { .. } => cov.image_update += 1,
                        }
                    }
                    _ => cov.from_data += 1,
                }
                match nt.op {
                    NewTupleOp::MultiInsert => cov.multi_insert += 1,
                    NewTupleOp::Update { hot: true, .. } => cov.hot += 1,
                    _ => {}
                }
                for d in deform(&desc, &tuple, nt.tid).unwrap() {
                    match d {
                        Datum::Varlena(Varlena::Compressed { .. }) => cov.inline_compressed += 1,
                        Datum::Varlena(Varlena::External(p)) if p.compression.is_some() => {
                            cov.external_compressed += 1
                        }
                        Datum::Varlena(Varlena::External(_)) => cov.external_plain += 1,
                        _ => {}
                    }
                }
                // Every image decodes, dead versions included.
                decode_row(&desc, &tuple, nt.tid).unwrap();
            } else {
                // chunk_id oid, chunk_seq int4, chunk_data bytea
                let d = deform(&toast_desc, &tuple, nt.tid).unwrap();
                let (Datum::Fixed(id), Datum::Fixed(seq), Datum::Varlena(Varlena::Plain(data))) =
                    (&d[0], &d[1], &d[2])
                else {
                    panic!("unexpected TOAST chunk {d:?}")
                };
                chunks
                    .entry(u32::from_le_bytes(id[..].try_into().unwrap()))
                    .or_default()
                    .push((
                        i32::from_le_bytes(seq[..].try_into().unwrap()),
                        data.clone(),
                    ));
            }
            latest.insert((rel, nt.tid), tuple);
        }
    }

    // Every live row, as the server prints it, equals its decoded image.
    let names: Vec<String> = desc
        .attrs
        .iter()
        .filter(|a| !a.dropped)
        .map(|a| format!("\"{}\"", a.name))
        .collect();
    let server = rows(
        c,
        &format!("SELECT ctid::text, {} FROM {t}", names.join(", ")),
    )
    .await;
    assert!(server.len() > 200, "{} rows", server.len());
    for row in &server {
        let tid = tid_of(row[0].as_deref().unwrap());
        let tuple = latest
            .get(&(rel_node, tid))
            .unwrap_or_else(|| panic!("{t}: no image of the row at {tid:?}"));
        let decoded = decode_row(&desc, tuple, tid).unwrap();
        assert_eq!(decoded.len(), row.len() - 1);
        for (col, want) in decoded.iter().zip(&row[1..]) {
            let got = match &col.value {
                // Not printed natively: the stored bytes, marked, never a guessed text.
                Value::Undecoded { type_name, hex } => {
                    assert_eq!((type_name.as_str(), hex.len()), ("point", 32));
                    assert!(want.is_some());
                    cov.undecoded += 1;
                    continue;
                }
                Value::External { pointer } => {
                    let parts = chunks
                        .get(&pointer.value_id)
                        .unwrap_or_else(|| panic!("chunks of {pointer:?} not in the WAL"));
                    let parts: Vec<(i32, &[u8])> =
                        parts.iter().map(|(s, d)| (*s, &d[..])).collect();
                    let payload = assemble(pointer, &parts).unwrap();
                    let a = desc.attrs.iter().find(|a| a.name == col.name).unwrap();
                    text_of(
                        &failover_verify::values::text::render_payload(&desc, &a.typ, &payload)
                            .unwrap(),
                    )
                }
                v => text_of(v),
            };
            assert_eq!(
                &got, want,
                "{t} ({wal_compression}, {toast}) row {tid:?} column {}",
                col.name
            );
        }
        cov.rows_checked += 1;
    }
    // Logged old tuples equal the rows as they were before the updates and deletes.
    for old in &olds {
        assert_eq!(old.kind, OldKind::Tuple);
        let decoded = decode_row(&desc, &old.tuple, old.tid).unwrap();
        let id = text_of(&decoded[0].value).unwrap();
        let want = before
            .get(&id)
            .unwrap_or_else(|| panic!("old tuple of id {id} not in the snapshot"));
        let got: Vec<Option<String>> = decoded
            .iter()
            .zip(want)
            .map(|(c, w)| match &c.value {
                // point: undecoded (checked above); the server's text stands in.
                Value::Undecoded { .. } => w.clone(),
                v => text_of(v),
            })
            .collect();
        assert_eq!(&got, want, "{t}: old tuple of id {id}");
        cov.old_tuples += 1;
    }
    cov
}

/// The records of `[start, end)`, decoded from a copy of `c`'s pg_wal.
fn decode_copy(c: &Cluster, start: Lsn, end: Lsn) -> Vec<failover_verify::wal::DecodedRecord> {
    let copy = tempfile::tempdir().unwrap();
    util::copy_wal_dir(&c.data_dir().join("pg_wal"), copy.path());
    let dir = WalDir::open(copy.path(), TimelineId(1)).unwrap();
    dir.read(start, Some(end)).map(Result::unwrap).collect()
}

/// REPLICA IDENTITY DEFAULT (the primary key), `wal_level = logical`: a key update and a
/// delete log the old key (a full-width tuple, other columns NULL); an update that keeps the
/// key logs nothing of the old row.
async fn old_keys(c: &Cluster) {
    let client = c.connect().await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE kt(id int PRIMARY KEY, v text, w int);
             INSERT INTO kt SELECT g, 'v' || g, g FROM generate_series(1, 50) g;
             CHECKPOINT;",
        )
        .await
        .unwrap();
    let lsn = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(sql, &[])
                .await
                .unwrap()
                .get::<_, String>(0)
                .parse::<Lsn>()
                .unwrap()
        }
    };
    let start = lsn("SELECT checkpoint_lsn::text FROM pg_control_checkpoint()").await;
    client
        .batch_execute(
            "UPDATE kt SET id = id + 1000 WHERE id % 5 = 0;
             UPDATE kt SET v = v || 'x' WHERE id % 5 = 1;
             DELETE FROM kt WHERE id % 5 = 2;",
        )
        .await
        .unwrap();
    let end = lsn("SELECT pg_switch_wal()::text").await;
    let oid: i64 = client
        .query_one("SELECT 'kt'::regclass::oid::int8", &[])
        .await
        .unwrap()
        .get(0);
    let node: i64 = client
        .query_one("SELECT pg_relation_filenode('kt')::int8", &[])
        .await
        .unwrap()
        .get(0);
    let desc = RelDesc::load(&client, oid as u32, Duration::from_secs(30))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for rec in decode_copy(c, start, end) {
        let Some(old) = tuples_of(&rec).unwrap().old else {
            continue;
        };
        if old.rel.rel != node as u32 {
            continue;
        }
        assert_eq!(old.kind, OldKind::Key);
        let row: Vec<Option<String>> = decode_row(&desc, &old.tuple, old.tid)
            .unwrap()
            .iter()
            .map(|c| text_of(&c.value))
            .collect();
        assert_eq!(row[1..], [None, None], "non-key columns of an old key");
        ids.push(row[0].clone().unwrap().parse::<i32>().unwrap());
    }
    ids.sort();
    let want: Vec<i32> = (1..=50).filter(|i| i % 5 == 0 || i % 5 == 2).collect();
    assert_eq!(ids, want);
}

/// id -> every live column as text.
async fn snapshot(c: &Cluster, t: &str) -> HashMap<String, Vec<Option<String>>> {
    let client = c.connect().await.unwrap();
    client.batch_execute(PIN).await.unwrap();
    let oid: i64 = client
        .query_one(&format!("SELECT '{t}'::regclass::oid::int8"), &[])
        .await
        .unwrap()
        .get(0);
    let desc = RelDesc::load(&client, oid as u32, Duration::from_secs(30))
        .await
        .unwrap();
    let names: Vec<String> = desc
        .attrs
        .iter()
        .filter(|a| !a.dropped)
        .map(|a| format!("\"{}\"", a.name))
        .collect();
    rows(c, &format!("SELECT {} FROM {t}", names.join(", ")))
        .await
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r))
        .collect()
}

const TYPES: &str = "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy with space');
                     CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);";

async fn run_version(install: &PgInstall) {
    let major = install.version_major;
    let c = Cluster::start_primary(
        install,
        ClusterOptions::new("tuples").setting("autovacuum", "off"),
    )
    .await
    .unwrap();
    c.execute(TYPES).await.unwrap();
    let rounds: Vec<(&str, &str)> = match major {
        13 => vec![("off", "pglz"), ("on", "pglz")],
        14 => vec![("off", "lz4"), ("on", "pglz")],
        _ => vec![
            ("off", "pglz"),
            ("pglz", "lz4"),
            ("lz4", "pglz"),
            ("zstd", "lz4"),
        ],
    };
    // Some builds (the version-matrix binaries) lack lz4 or zstd: run what the server offers.
    let offered = |name: &str| {
        let c = &c;
        let name = name.to_string();
        async move {
            c.query_opt_string(&format!(
                "SELECT array_to_string(enumvals, ',') FROM pg_settings WHERE name = '{name}'"
            ))
            .await
            .unwrap()
            .unwrap_or_default()
            .split(',')
            .map(str::to_string)
            .collect::<Vec<_>>()
        }
    };
    let (walc, toastc) = (
        offered("wal_compression").await,
        offered("default_toast_compression").await,
    );
    let rounds: Vec<(&str, &str)> = rounds
        .into_iter()
        .filter(|(wc, tc)| {
            // PG13/14: wal_compression is a boolean (no enumvals).
            let ok = (walc == [""] || walc.iter().any(|v| v == wc)) && (major < 14 || toastc.iter().any(|v| v == tc));
            if !ok {
                eprintln!("skipped: PG{major} round wal_compression={wc} default_toast_compression={tc}: not built into this server ({walc:?}, {toastc:?})");
            }
            ok
        })
        .collect();
    assert!(!rounds.is_empty());
    let mut summary = BTreeMap::new();
    for (i, (wc, tc)) in rounds.iter().enumerate() {
        let cov = round(&c, &format!("r{i}"), wc, tc, false).await;
        assert!(
            cov.image_insert > 0,
            "PG{major} {wc}: no insert from a page image: {cov:?}"
        );
        assert!(
            cov.image_multi_insert > 0,
            "PG{major} {wc}: no multi-insert from a page image: {cov:?}"
        );
        assert!(
            cov.image_update > 0,
            "PG{major} {wc}: no update from a page image: {cov:?}"
        );
        assert!(cov.from_data > 0, "{cov:?}");
        assert!(cov.multi_insert > 0, "{cov:?}");
        assert!(cov.prefix_suffix > 0, "{cov:?}");
        assert!(cov.hot > 0, "{cov:?}");
        assert!(cov.inline_compressed > 0, "{cov:?}");
        assert!(cov.external_plain > 0, "{cov:?}");
        assert!(cov.external_compressed > 0, "{cov:?}");
        summary.insert(format!("{wc}/{tc}"), cov);
    }
    eprintln!("PG{major}: {summary:#?}");
    drop(c);

    let c = Cluster::start_primary(
        install,
        ClusterOptions::new("tuples_logical")
            .wal_level("logical")
            .setting("autovacuum", "off"),
    )
    .await
    .unwrap();
    c.execute(TYPES).await.unwrap();
    let cov = round(&c, "rl", "off", "pglz", true).await;
    assert!(cov.old_tuples >= 40, "{cov:?}");
    assert!(cov.undecoded > 100, "{cov:?}");
    old_keys(&c).await;
    eprintln!("PG{major} logical: {cov:?}");
}

#[tokio::test]
async fn rows_from_wal_equal_the_server_text() {
    let Some(install) = install_or_skip("rows_from_wal_equal_the_server_text") else {
        return;
    };
    run_version(&install).await;
}

#[tokio::test]
async fn version_matrix_rows_from_wal() {
    let default_major = PgInstall::find().map(|i| i.version_major).ok();
    for entry in PgInstall::matrix_entries() {
        let Some(install) = entry.install else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI installs PG{}",
                entry.major
            );
            eprintln!(
                "skipped: PG{} not installed (run .ci/install-postgres-versions)",
                entry.major
            );
            continue;
        };
        if Some(install.version_major) == default_major {
            continue; // the test above runs it
        }
        run_version(&install).await;
    }
}
