//! The lost rows rebuilt from the WAL (`compare` without the former primary): a forced lossy
//! promotion whose lost workload covers inserts, COPY, HOT and non-HOT updates, a key update,
//! TOASTed values kept and written, NULLs, deletes, a subtransaction (one rolled back), 2PC and
//! a conflicting write on the new primary. With the former primary alive, the WAL-decoded rows
//! must agree with the live row diff (no `wal_rows_disagree`); after the former primary was
//! stopped and its data directory deleted, its archive (`archive_command` cp) must give the same
//! lost rows and the same recovery SQL; applying that SQL to a copy of the new primary must
//! restore every non-conflicting lost row, checked against the rows read directly from the
//! former primary before it was deleted.

mod util;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use failover_verify::sandbox::{Cluster, ClusterOptions, PgInstall, StopMode};
use serde_json::Value;
use util::{install_or_skip, run_tool, Run};

fn options(name: &str, archive: &Path) -> ClusterOptions {
    ClusterOptions::new(name)
        .setting("archive_mode", "on")
        .setting(
            "archive_command",
            &format!("cp %p {}/%f", archive.display()),
        )
        .setting("autovacuum", "off")
        .setting("max_prepared_transactions", "5")
}

async fn compare(new: &Cluster, extra: &[&str]) -> Run {
    let new = new.conninfo();
    let mut args = vec![
        "compare",
        "--new-primary",
        &new,
        "--format",
        "json",
        "--no-checks",
    ];
    args.extend_from_slice(extra);
    run_tool(&args).await
}

fn finding<'a>(j: &'a Value, id: &str) -> Option<&'a Value> {
    j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
}

/// The lost rows of a report: (table, key) → (class, former version, new version), versions
/// as (xmin, values).
type LostRows = BTreeMap<(String, String), (String, Value, Value)>;

fn lost_rows(j: &Value) -> LostRows {
    let mut out = BTreeMap::new();
    let version = |v: &Value| {
        if v.is_null() {
            Value::Null
        } else {
            serde_json::json!([v["xmin"], v["values"]])
        }
    };
    for t in j["tables"]["tables"].as_array().unwrap() {
        for r in t["rows"].as_array().unwrap() {
            let class = r["class"].as_str().unwrap().to_string();
            if !matches!(
                class.as_str(),
                "lost_insert" | "lost_update" | "lost_delete" | "conflict"
            ) {
                continue;
            }
            out.insert(
                (
                    format!(
                        "{}.{}",
                        t["schema"].as_str().unwrap(),
                        t["table"].as_str().unwrap()
                    ),
                    r["key"].to_string(),
                ),
                (class, version(&r["former"]), version(&r["new"])),
            );
        }
    }
    out
}

/// id → the whole row as text, read directly.
async fn rows_of(c: &Cluster) -> BTreeMap<i64, String> {
    c.query_rows("SELECT id::text, t::text FROM t")
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r[0].as_deref().unwrap().parse().unwrap(),
                r[1].clone().unwrap(),
            )
        })
        .collect()
}

fn key(id: i64) -> (String, String) {
    ("public.t".into(), format!("{{\"id\":\"{id}\"}}"))
}

async fn wait_archived(archive: &Path, name: &str, node: &Cluster) {
    let started = Instant::now();
    while !archive.join(name).is_file() {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{name} was not archived: {}",
            node.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scenario(install: &PgInstall) {
    let major = install.version_major;
    let arch = tempfile::Builder::new()
        .prefix("fv-walrows-")
        .tempdir()
        .unwrap();
    if unsafe { libc::geteuid() } == 0 {
        std::process::Command::new("chmod")
            .args(["0777"])
            .arg(arch.path())
            .status()
            .unwrap();
    }
    let primary = Cluster::start_primary(install, options("primary", arch.path()))
        .await
        .unwrap();
    primary
        .execute(
            "CREATE TABLE t(id int PRIMARY KEY, v text, n int, big text, note text)
                 WITH (fillfactor = 70);
             ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL;
             INSERT INTO t SELECT g, 'base ' || g, g,
                    CASE WHEN g % 10 = 0 THEN (SELECT string_agg(md5((g * 100 + i)::text), '')
                                               FROM generate_series(1, 80) i) END,
                    CASE WHEN g % 3 = 0 THEN NULL ELSE 'note' END
               FROM generate_series(1, 300) g;
             SELECT pg_switch_wal();",
        )
        .await
        .unwrap();
    let standby = primary
        .create_standby(options("standby", arch.path()))
        .await
        .unwrap();
    standby.wait_caught_up(&primary).await.unwrap();
    standby.cut_off().await.unwrap();
    // A checkpoint: the first lost change to each page carries its image (an UPDATE that logs
    // only the bytes it changed is completed from the old tuple in it).
    primary.execute("CHECKPOINT").await.unwrap();
    let copy_file = format!("/tmp/fv_wal_rows_{}.copy", primary.port());
    let big = |g: &str| {
        format!("(SELECT string_agg(md5(({g} * 7 + i)::text), '') FROM generate_series(1, 70) i)")
    };
    let lost = [
        // Inserts with NULLs and a TOASTed value.
        format!(
            "INSERT INTO t SELECT g, CASE WHEN g % 2 = 0 THEN NULL ELSE 'lost ' || g END, g,
                    CASE WHEN g % 4 = 1 THEN {} END, NULL
               FROM generate_series(1001, 1010) g",
            big("g")
        ),
        // COPY: heap2 MULTI_INSERT.
        format!(
            "COPY (SELECT g, 'copied ' || g, g, NULL, 'c' FROM generate_series(1101, 1130) g)
                TO '{copy_file}';
             COPY t FROM '{copy_file}';"
        ),
        // HOT updates (prefix and suffix left out of the record).
        "UPDATE t SET n = n + 1000 WHERE id BETWEEN 1 AND 9".into(),
        // Key updates (not HOT).
        "UPDATE t SET id = id + 5000 WHERE id BETWEEN 11 AND 13".into(),
        // A TOASTed value kept (its chunks only on the new primary) and one replaced.
        "UPDATE t SET n = -1 WHERE id = 20".into(),
        format!("UPDATE t SET big = {} WHERE id = 30", big("30")),
        // NULLs written.
        "UPDATE t SET v = NULL, note = NULL WHERE id = 21".into(),
        // Deletes.
        "DELETE FROM t WHERE id IN (31, 32, 40)".into(),
        // Subtransactions: one rolled back, one released.
        "BEGIN; INSERT INTO t VALUES (2001, 'sub top', 1, NULL, NULL);
         SAVEPOINT a; INSERT INTO t VALUES (2002, 'rolled back', 2, NULL, NULL);
         ROLLBACK TO a;
         SAVEPOINT b; UPDATE t SET v = 'in subxact' WHERE id = 41; RELEASE b;
         COMMIT"
            .into(),
        // Two-phase commit.
        "BEGIN; INSERT INTO t VALUES (3001, '2pc', 3, NULL, 'x');
         UPDATE t SET note = '2pc' WHERE id = 42;
         PREPARE TRANSACTION 'fv_walrows'"
            .into(),
        "COMMIT PREPARED 'fv_walrows'".into(),
        // Changed here, and again on the new primary: a conflict.
        "UPDATE t SET v = 'lost side' WHERE id = 50".into(),
        // Updated twice.
        "UPDATE t SET v = 'twice 1' WHERE id = 60; UPDATE t SET v = 'twice 2', n = 0 WHERE id = 60"
            .into(),
        // An aborted transaction: not lost.
        "BEGIN; INSERT INTO t VALUES (900, 'aborted', 0, NULL, NULL); ROLLBACK".into(),
    ];
    for sql in &lost {
        primary
            .execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let _ = std::fs::remove_file(&copy_file);
    standby.promote().await.unwrap();
    standby
        .execute(
            "UPDATE t SET v = 'new side' WHERE id = 50;
             INSERT INTO t VALUES (9999, 'after failover', 0, NULL, NULL);",
        )
        .await
        .unwrap();
    let former_rows = rows_of(&primary).await;
    let new_rows = rows_of(&standby).await;

    // Live: the former primary is read; the rows from its WAL must agree.
    let live_dir = tempfile::tempdir().unwrap();
    let run = compare(
        &standby,
        &[
            "--former-primary",
            &primary.conninfo(),
            "--export-dir",
            live_dir.path().to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(run.code, 1, "PG{major}: {}\n{}", run.stderr, run.stdout);
    let live = run.json();
    assert!(
        finding(&live, "wal_rows_disagree").is_none(),
        "PG{major}: {}\nfindings: {}\ntables: {}",
        finding(&live, "wal_rows_disagree").unwrap(),
        live["findings"],
        live["tables"]["tables"]
    );
    let live_rows = lost_rows(&live);
    // The live row diff needs bit_xor (PG14+): on older majors only the WAL's rows are checked.
    let live_error = live["tables"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|t| t["error"].as_str().map(str::to_string));
    if let Some(e) = &live_error {
        assert!(major < 14, "PG{major}: the live row diff failed: {e}");
        eprintln!("note: PG{major}: the live row diff cannot run here ({e}): the rows from the WAL are checked against the servers only");
    } else {
        check_rows(
            &live_rows,
            &former_rows,
            &new_rows,
            &format!("PG{major} live"),
        );
    }

    // A row limit the loss passes: the rows are counted, not compared, and the counts agree.
    check_capped(
        &standby,
        &["--former-primary", &primary.conninfo()],
        &live,
        &format!("PG{major} live"),
    )
    .await;

    // The former primary goes away: its last segment archived, stopped, deleted.
    let last: String = primary
        .query_one_string("SELECT pg_walfile_name(pg_switch_wal())")
        .await
        .unwrap();
    wait_archived(arch.path(), &last, &primary).await;
    primary.stop(StopMode::Fast).await.unwrap();
    std::fs::remove_dir_all(primary.data_dir()).unwrap();

    let wal_dir = tempfile::tempdir().unwrap();
    let run = compare(
        &standby,
        &[
            "--former-wal-archive",
            arch.path().to_str().unwrap(),
            "--export-dir",
            wal_dir.path().to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(run.code, 1, "PG{major}: {}\n{}", run.stderr, run.stdout);
    let from_wal = run.json();
    assert!(
        finding(&from_wal, "rows_from_wal").is_some(),
        "PG{major}: {}",
        from_wal["findings"]
    );
    assert!(
        finding(&from_wal, "wal_rows_not_examined").is_none(),
        "PG{major}: {}",
        finding(&from_wal, "wal_rows_not_examined").unwrap()
    );
    check_capped(
        &standby,
        &["--former-wal-archive", arch.path().to_str().unwrap()],
        &from_wal,
        &format!("PG{major} from the archive"),
    )
    .await;
    let wal_rows = lost_rows(&from_wal);
    check_rows(
        &wal_rows,
        &former_rows,
        &new_rows,
        &format!("PG{major} from the archive"),
    );
    if live_error.is_none() {
        assert_eq!(
            wal_rows, live_rows,
            "PG{major}: rows from the archive vs live"
        );
    }
    // Every row names where its image came from; the expected origins all occur.
    let mut origins = std::collections::BTreeSet::new();
    for t in from_wal["tables"]["tables"].as_array().unwrap() {
        assert_eq!(t["method"], "wal_decoded");
        for r in t["rows"].as_array().unwrap() {
            for side in ["former", "new"] {
                if !r[side].is_null() {
                    origins.insert(
                        r[side]["image"]
                            .as_str()
                            .unwrap_or_else(|| panic!("no image origin in {r}"))
                            .to_string(),
                    );
                }
            }
        }
    }
    for o in [
        "wal_record",
        "wal_record_and_old_tuple",
        "full_page_image",
        "new_primary_pre_image",
        "new_primary_row",
    ] {
        assert!(origins.contains(o), "PG{major}: no {o} in {origins:?}");
    }
    // A tampered value is caught by the comparison above.
    let mut tampered = wal_rows.clone();
    let (_, former, _) = tampered.get_mut(&key(1005)).unwrap();
    former[1]["v"] = Value::String("tampered".into());
    assert_ne!(tampered, wal_rows);
    let caught =
        std::panic::catch_unwind(|| check_rows(&tampered, &former_rows, &new_rows, "tampered"));
    assert!(caught.is_err(), "a tampered value must fail the check");

    // The same recovery script.
    let wal_sql = std::fs::read_to_string(wal_dir.path().join("recovery.sql")).unwrap();
    if live_error.is_none() {
        let live_sql = std::fs::read_to_string(live_dir.path().join("recovery.sql")).unwrap();
        assert_eq!(wal_sql, live_sql, "PG{major}: recovery.sql");
    }

    // Applied to a copy of the new primary, it restores every non-conflicting lost row.
    let copy = standby
        .create_standby(ClusterOptions::new("copy").setting("max_prepared_transactions", "5"))
        .await
        .unwrap();
    copy.wait_caught_up(&standby).await.unwrap();
    copy.promote().await.unwrap();
    copy.connect()
        .await
        .unwrap()
        .batch_execute(&wal_sql)
        .await
        .unwrap_or_else(|e| panic!("PG{major}: applying recovery.sql: {e}"));
    let restored = rows_of(&copy).await;
    for ((_, k), (class, _, _)) in &wal_rows {
        let id: i64 = serde_json::from_str::<Value>(k).unwrap()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        match class.as_str() {
            "lost_insert" | "lost_update" => assert_eq!(
                restored.get(&id),
                former_rows.get(&id),
                "PG{major}: row {id} restored"
            ),
            "lost_delete" => assert!(!restored.contains_key(&id), "PG{major}: {id} deleted"),
            _ => assert_eq!(
                restored.get(&id),
                new_rows.get(&id),
                "PG{major}: conflict {id} left alone"
            ),
        }
    }
    assert_eq!(restored.get(&9999), new_rows.get(&9999));
    assert!(!restored.contains_key(&2002) && !restored.contains_key(&900));
}

/// `compare` with `source` and `--max-lost-rows 3`, a limit the loss passes: it exits 1,
/// `rows_not_compared` says so, no row is compared, and every count of the lost transactions
/// equals the uncapped report's (`full`).
async fn check_capped(new: &Cluster, source: &[&str], full: &Value, what: &str) {
    let mut args = source.to_vec();
    args.extend(["--max-lost-rows", "3"]);
    let run = compare(new, &args).await;
    assert_eq!(run.code, 1, "{what}: {}\n{}", run.stderr, run.stdout);
    let capped = &run.json();
    let f = finding(capped, "rows_not_compared")
        .unwrap_or_else(|| panic!("{what}: no rows_not_compared in {}", capped["findings"]));
    assert_eq!(f["severity"], "critical", "{what}: {f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("more than 3 row versions"),
        "{what}: {f}"
    );
    assert!(finding(full, "rows_not_compared").is_none(), "{what}");
    assert!(
        capped["tables"].is_null(),
        "{what}: rows compared past the limit: {}",
        capped["tables"]
    );
    assert_eq!(capped["verdict"], full["verdict"], "{what}");
    let (c, u) = (&capped["transactions"], &full["transactions"]);
    assert!(u["touched_tuples"].as_u64().unwrap() > 3, "{what}: {u}");
    for k in [
        "lost_commits",
        "row_changes",
        "tables_changed",
        "tables",
        "databases",
        "touched_tuples",
        "lost_ddl",
        "aborts_after_switchpoint",
        "in_flight",
    ] {
        assert_eq!(c[k], u[k], "{what}: transactions.{k}");
    }
}

/// Checks lost rows against the workload and the rows read directly from both servers: the
/// expected class of every touched key, the former version's and the new version's values.
fn check_rows(
    rows: &LostRows,
    former_rows: &BTreeMap<i64, String>,
    new_rows: &BTreeMap<i64, String>,
    what: &str,
) {
    let mut want: BTreeMap<(String, String), &str> = BTreeMap::new();
    for id in (1001..=1010)
        .chain(1101..=1130)
        .chain([2001, 3001, 5011, 5012, 5013])
    {
        want.insert(key(id), "lost_insert");
    }
    for id in (1..=9).chain([20, 21, 30, 41, 42, 60]) {
        want.insert(key(id), "lost_update");
    }
    for id in [11, 12, 13, 31, 32, 40] {
        want.insert(key(id), "lost_delete");
    }
    want.insert(key(50), "conflict");
    let got: BTreeMap<(String, String), &str> = rows
        .iter()
        .map(|(k, v)| (k.clone(), v.0.as_str()))
        .collect();
    assert_eq!(got, want, "{what}: classes");
    for ((_, k), (class, former, new)) in rows {
        let id: i64 = serde_json::from_str::<Value>(k).unwrap()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        // Every column as text, in the order of the row's text form.
        let cols = |v: &Value| -> Vec<Option<String>> {
            ["id", "v", "n", "big", "note"]
                .iter()
                .map(|c| v[1][c].as_str().map(str::to_string))
                .collect()
        };
        let direct =
            |row: &str| -> Vec<Option<String>> { (0..5).map(|i| direct_column(row, i)).collect() };
        if class != "lost_delete" {
            assert_eq!(
                cols(former),
                direct(&former_rows[&id]),
                "{what}: former row {id}"
            );
        }
        if class != "lost_insert" {
            assert_eq!(cols(new), direct(&new_rows[&id]), "{what}: new row {id}");
        }
    }
}

/// Column `i` (0-based) of a row's text form `(a,b,...)`, as the server quotes it; `None` for
/// an empty (NULL) field. Only for simple values without commas or quotes.
fn direct_column(row: &str, i: usize) -> Option<String> {
    let inner = row.strip_prefix('(')?.strip_suffix(')')?;
    let f = inner.split(',').nth(i)?;
    if f.is_empty() {
        None
    } else {
        Some(f.trim_matches('"').to_string())
    }
}

#[tokio::test]
async fn lost_rows_from_the_archive_equal_the_live_rows() {
    let Some(install) = install_or_skip("lost_rows_from_the_archive_equal_the_live_rows") else {
        return;
    };
    scenario(&install).await;
}

#[tokio::test]
async fn version_matrix_lost_rows_from_the_archive() {
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
            continue;
        }
        scenario(&install).await;
    }
}

/// A column added on the new primary after the failover: the table's lost tuples are not
/// decoded with the new descriptor (`descriptor_drift`), they are named as not examined; an
/// unchanged table next to it still gets its rows.
#[tokio::test]
async fn descriptor_drift_is_named_not_decoded() {
    let Some(install) = install_or_skip("descriptor_drift_is_named_not_decoded") else {
        return;
    };
    let opts = |n: &str| ClusterOptions::new(n).setting("autovacuum", "off");
    let primary = Cluster::start_primary(&install, opts("drift_primary"))
        .await
        .unwrap();
    primary
        .execute(
            "CREATE TABLE d(id int PRIMARY KEY, v text);
             CREATE TABLE ok(id int PRIMARY KEY, v text);
             INSERT INTO d SELECT g, 'base' FROM generate_series(1, 50) g;
             INSERT INTO ok SELECT g, 'base' FROM generate_series(1, 50) g;",
        )
        .await
        .unwrap();
    let standby = primary.create_standby(opts("drift_standby")).await.unwrap();
    standby.wait_caught_up(&primary).await.unwrap();
    standby.cut_off().await.unwrap();
    primary
        .execute(
            "INSERT INTO d SELECT g, 'lost' FROM generate_series(101, 105) g;
             UPDATE d SET v = 'lost' WHERE id = 1;
             INSERT INTO ok VALUES (101, 'lost');",
        )
        .await
        .unwrap();
    standby.promote().await.unwrap();
    standby
        .execute("ALTER TABLE d ADD COLUMN extra int")
        .await
        .unwrap();
    let wal = tempfile::tempdir().unwrap();
    util::copy_wal_dir(&primary.data_dir().join("pg_wal"), wal.path());
    let run = compare(
        &standby,
        &["--former-wal-dir", wal.path().to_str().unwrap()],
    )
    .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stderr, run.stdout);
    let j = run.json();
    let drift = finding(&j, "descriptor_drift").unwrap_or_else(|| panic!("{}", j["findings"]));
    assert!(
        drift["message"].as_str().unwrap().contains("public.d"),
        "{drift}"
    );
    assert!(
        finding(&j, "wal_rows_not_examined").is_some(),
        "{}",
        j["findings"]
    );
    assert_eq!(j["incomplete"], true);
    let tables = j["tables"]["tables"].as_array().unwrap();
    let d = tables.iter().find(|t| t["table"] == "d").unwrap();
    assert_eq!(d["rows"].as_array().unwrap().len(), 0, "{d}");
    let ne = d["not_examined"].as_array().unwrap();
    assert_eq!(ne.len(), 6, "{d}");
    assert!(ne
        .iter()
        .all(|n| n["reason"].as_str().unwrap().contains("descriptor")));
    let ok = tables.iter().find(|t| t["table"] == "ok").unwrap();
    let rows = ok["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{ok}");
    assert_eq!(rows[0]["class"], "lost_insert");
    assert_eq!(rows[0]["former"]["values"]["v"], "lost");
}
