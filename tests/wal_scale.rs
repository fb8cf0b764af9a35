//! A report that scales with the loss, on a real forced promotion with thousands of lost commits.
//!
//! `wal --dir` and `compare --former-wal-dir` list only the first and the last 100 inline,
//! keep every total exact, and stream the complete list to a file that holds every lost xid
//! exactly once (checked against pg_waldump's COMMIT records on the same WAL).

mod util;
mod wal_util;

use std::collections::BTreeMap;
use std::path::Path;

use failover_verify::lsn::Lsn;
use failover_verify::sandbox::scenario::{LossyFailover, LossyFailoverSpec, LostWorkload};
use failover_verify::sandbox::{PgInstall, StopMode};
use serde_json::Value;
use util::{install_or_skip, run_tool};

/// The inline bound at each end of `transactions.lost_xids`.
const INLINE: usize = 100;

/// `n` transactions of `body`, each in its own BEGIN … COMMIT, in one simple-protocol batch.
fn batch(n: usize, body: impl Fn(usize) -> String) -> String {
    (0..n)
        .map(|i| format!("BEGIN; {} COMMIT;", body(i)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// pg_waldump's COMMIT records at or after `from` in `wal`: (commit LSN, xid), in WAL order.
fn waldump_commits(install: &PgInstall, wal: &Path, from: Lsn) -> Option<Vec<(Lsn, u64)>> {
    if !install.has("pg_waldump") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install pg_waldump"
        );
        eprintln!("skipped: wal_scale pg_waldump comparison: pg_waldump not installed");
        return None;
    }
    let out = wal_util::waldump(
        &install.bin("pg_waldump"),
        wal,
        &["-t", "1", "-s", &from.to_string(), "-r", "Transaction"],
    );
    Some(
        wal_util::parse_dump(&out)
            .into_iter()
            .filter(|d| d.desc.starts_with("COMMIT "))
            .map(|d| (d.lsn, u64::from(d.xid)))
            .collect(),
    )
}

/// The `(xid, commit_lsn)` column pairs of the CSV list, checking its header.
fn csv_list(path: &Path) -> Vec<(u64, Lsn)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..3], ["xid", "subxids", "commit_lsn"], "{header:?}");
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), header.len(), "{l}");
            (f[0].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect()
}

/// Checks the bounded report section against the complete list `all` (xid, commit LSN).
fn check_bounded(t: &Value, all: &[(u64, Lsn)]) {
    let n = all.len();
    assert_eq!(t["lost_commits"].as_u64(), Some(n as u64), "{t}");
    let inline: Vec<(u64, Lsn)> = t["lost_xids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["xid"].as_u64().unwrap(),
                x["commit_lsn"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(inline.len(), 2 * INLINE);
    assert_eq!(inline[..INLINE], all[..INLINE]);
    assert_eq!(inline[INLINE..], all[n - INLINE..]);
    assert_eq!(
        t["lost_xids_omitted"].as_u64(),
        Some((n - 2 * INLINE) as u64)
    );
    // Every count that appears in several places agrees.
    let per_db: u64 = t["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["commits"].as_u64().unwrap())
        .sum();
    assert_eq!(per_db, n as u64, "{}", t["databases"]);
    let per_minute: u64 = t["commits_per_minute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["commits"].as_u64().unwrap())
        .sum();
    assert_eq!(per_minute, n as u64, "{}", t["commits_per_minute"]);
}

#[tokio::test]
async fn thousands_of_lost_commits_stay_bounded_and_the_list_is_complete() {
    let Some(install) = install_or_skip("wal_scale") else {
        return;
    };
    // 1,500 single inserts, 600 with a released savepoint (a subtransaction) and an update,
    // 100 rollbacks (not lost).
    let workload = LostWorkload::Statements(vec![
        batch(1500, |i| {
            format!("INSERT INTO fv_demo VALUES ({}, 'lost');", 100_000 + i)
        }),
        batch(600, |i| {
            format!(
                "SAVEPOINT s; INSERT INTO fv_demo VALUES ({}, 'sub'); RELEASE s; \
                 UPDATE fv_demo SET v = 'upd' WHERE id = {};",
                200_000 + i,
                1 + i % 10
            )
        }),
        (0..100)
            .map(|i| {
                format!(
                    "BEGIN; INSERT INTO fv_demo VALUES ({}, 'x'); ROLLBACK;",
                    300_000 + i
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
    ]);
    let spec = LossyFailoverSpec {
        lost_workload: workload,
        ..LossyFailoverSpec::default()
    };
    let f = LossyFailover::build(&install, spec).await.unwrap();
    let expected = 2100usize;
    f.former_primary.stop(StopMode::Fast).await.unwrap();
    let copy = tempfile::tempdir().unwrap();
    util::copy_wal_dir(&f.former_primary.data_dir().join("pg_wal"), copy.path());
    let out = tempfile::tempdir().unwrap();
    let sp = f.switchpoint.to_string();
    let wal = copy.path().to_str().unwrap();

    // `wal --dir`, the list as CSV.
    let list = out.path().join("lists/lost.csv");
    let run = run_tool(&[
        "wal",
        "--dir",
        wal,
        "--timeline",
        "1",
        "--from",
        &sp,
        "--lost-xids-file",
        list.to_str().unwrap(),
        "--format",
        "json",
    ])
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.len() < 1 << 20, "{} bytes", run.stdout.len());
    let j = run.json();
    let t = &j["transactions"];
    assert_eq!(t["lost_xids_file"].as_str(), Some(list.to_str().unwrap()));
    let all = csv_list(&list);
    assert_eq!(all.len(), expected);
    // Each lost xid exactly once.
    let mut once: BTreeMap<u64, usize> = BTreeMap::new();
    for (x, _) in &all {
        *once.entry(*x).or_default() += 1;
    }
    assert!(once.values().all(|c| *c == 1), "an xid listed twice");
    check_bounded(t, &all);
    // The same commits as pg_waldump, in the same order.
    if let Some(theirs) = waldump_commits(&install, copy.path(), f.switchpoint) {
        let ours: Vec<(Lsn, u64)> = all.iter().map(|(x, l)| (*l, *x)).collect();
        assert_eq!(ours, theirs);
    }
    assert_eq!(t["aborts_after_switchpoint"], 100);
    // 1,500 + 600 inserts, 600 updates, across the table and its index-free TOAST: the table.
    let rows: u64 = t["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["inserts"].as_u64().unwrap())
        .sum();
    assert_eq!(rows, 2100);
    assert!(
        j["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == "lost_xids_abridged"
                && x["message"].as_str().unwrap().contains("lost.csv")),
        "{}",
        j["findings"]
    );

    // JSON Lines, and the text report stays short and says where the rest is.
    let jl = out.path().join("lost.jsonl");
    let run = run_tool(&[
        "wal",
        "--dir",
        wal,
        "--timeline",
        "1",
        "--from",
        &sp,
        "--lost-xids-file",
        jl.to_str().unwrap(),
    ])
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.contains("First 20 of 2100"), "{}", run.stdout);
    assert!(run.stdout.contains("lost.jsonl"), "{}", run.stdout);
    assert!(run.stdout.lines().count() < 200, "{}", run.stdout);
    let lines: Vec<Value> = std::fs::read_to_string(&jl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let from_jl: Vec<(u64, Lsn)> = lines
        .iter()
        .map(|v| {
            (
                v["xid"].as_u64().unwrap(),
                v["commit_lsn"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(from_jl, all);
    assert_eq!(
        lines
            .iter()
            .filter(|v| v["subxids"].as_array().unwrap().len() == 1)
            .count(),
        600
    );

    // Without a list file: the same bound, and a hint to get the list.
    let run = run_tool(&[
        "wal",
        "--dir",
        wal,
        "--timeline",
        "1",
        "--from",
        &sp,
        "--format",
        "json",
    ])
    .await;
    let j = run.json();
    check_bounded(&j["transactions"], &all);
    assert!(j["transactions"]["lost_xids_file"].is_null());
    assert!(j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == "lost_xids_abridged"
            && x["hint"].as_str().unwrap().contains("--lost-xids-file")));
    let run = run_tool(&["wal", "--dir", wal, "--timeline", "1", "--from", &sp]).await;
    assert!(
        run.stdout
            .contains("not written: 1900 left out of the report"),
        "{}",
        run.stdout
    );

    // `compare --former-wal-dir --export-dir`: the list goes to the export directory.
    let export = out.path().join("export");
    let new = f.new_primary.conninfo();
    let run = run_tool(&[
        "compare",
        "--new-primary",
        &new,
        "--former-wal-dir",
        wal,
        "--export-dir",
        export.to_str().unwrap(),
        "--format",
        "json",
        "--no-checks",
    ])
    .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stderr, run.stdout);
    assert!(run.stdout.len() < 1 << 20);
    let j = run.json();
    let file = export.join("lost_transactions.csv");
    assert_eq!(
        j["transactions"]["lost_xids_file"].as_str(),
        Some(file.to_str().unwrap())
    );
    assert_eq!(csv_list(&file), all);
    check_bounded(&j["transactions"], &all);
    // No temporary file left behind: the list, and the recovery export of the rows rebuilt
    // from the WAL (the former primary was not read).
    let mut names: Vec<String> = std::fs::read_dir(&export)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "001_postgres.public.fv_demo.lost.csv",
            "lost_transactions.csv",
            "recovery.sql"
        ],
        "{names:?}"
    );
}

#[tokio::test]
async fn an_unwritable_list_file_is_a_one_line_usage_error() {
    let dir = wal_util::plain_copy();
    let m = wal_util::meta();
    let blocker = tempfile::NamedTempFile::new().unwrap();
    // A path under a regular file cannot be created.
    let bad = blocker.path().join("x.csv");
    let run = run_tool(&[
        "wal",
        "--dir",
        dir.path().to_str().unwrap(),
        "--timeline",
        "1",
        "--from",
        &m.switchpoint.to_string(),
        "--lost-xids-file",
        bad.to_str().unwrap(),
    ])
    .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    let first = run.stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: "), "{}", run.stderr);
    assert!(first.contains("--lost-xids-file"), "{first}");
    assert!(run.stdout.is_empty());
}
