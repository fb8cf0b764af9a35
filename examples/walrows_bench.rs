//! Lost rows from the WAL benchmark: the failover pair of `walguided_bench` (one table of N rows,
//! `WALROWS_BENCH_SIZES`, default `10000000`; 1,000 lost changes: 400 inserts, 400 updates, 200
//! deletes in 10 transactions; 100 post-failover updates), then the release binary end to end
//! under `/usr/bin/time -v`: `compare --former-wal-dir` (a copy of the former primary's
//! `pg_wal`: the rows rebuilt from the WAL and the new primary) and, as the peer, `compare
//! --former-primary` (the live WAL-guided row diff, which now also rebuilds the rows from the
//! WAL to cross-check them). Checks that both list the same lost rows and that nothing was left
//! unexamined, and prints wall time and peak memory of every run.
//!
//! ```text
//! cargo build --release --bin failover-verify --example walrows_bench
//! WALROWS_BENCH_SIZES=10000000 target/release/examples/walrows_bench
//! ```

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use failover_verify::sandbox::{Cluster, ClusterOptions, PgInstall};

fn opts(name: &str) -> ClusterOptions {
    ClusterOptions::new(name)
        .setting("shared_buffers", "256MB")
        .setting("max_wal_size", "8GB")
        .setting("checkpoint_timeout", "1h")
        .setting("max_parallel_workers_per_gather", "0")
        .timeout(Duration::from_secs(3600))
}

/// The failover pair of `walguided_bench`: (former primary isolated as a standby, new primary).
async fn build(install: &PgInstall, n: u64) -> (Cluster, Cluster) {
    let p = Cluster::start_primary(install, opts("primary"))
        .await
        .expect("primary");
    for sql in [
        "CREATE TABLE bench(id int8, v text, n int8)".to_string(),
        format!("INSERT INTO bench SELECT g, md5(g::text), g FROM generate_series(1, {n}) g"),
        "ALTER TABLE bench ADD PRIMARY KEY (id)".into(),
        "VACUUM ANALYZE bench".into(),
        "CHECKPOINT".into(),
    ] {
        p.execute(&sql).await.expect("base table");
    }
    let s = p.create_standby(opts("standby")).await.expect("standby");
    p.execute("UPDATE bench SET n = n + 1 WHERE id <= 200000")
        .await
        .expect("pre-failover traffic");
    s.wait_caught_up(&p).await.expect("caught up");
    s.cut_off().await.expect("cut off");
    for k in 0..10u64 {
        let mut sql = String::from("BEGIN;");
        for i in 0..40u64 {
            let j = k * 40 + i;
            sql.push_str(&format!(
                "INSERT INTO bench VALUES ({}, 'lost', 0);",
                n + 1 + j
            ));
            sql.push_str(&format!(
                "UPDATE bench SET v = 'lost' WHERE id = {};",
                1 + (j * 7919) % n
            ));
            if i % 2 == 0 {
                sql.push_str(&format!(
                    "DELETE FROM bench WHERE id = {};",
                    1 + (j * 104729 + 13) % n
                ));
            }
        }
        sql.push_str("COMMIT;");
        p.execute(&sql).await.expect("lost workload");
    }
    s.promote().await.expect("promote");
    let mut post = String::new();
    for i in 0..100u64 {
        post.push_str(&format!(
            "UPDATE bench SET v = 'post' WHERE id = {};",
            1 + (i * 15485863 + 7) % n
        ));
    }
    s.execute(&post).await.expect("post-failover updates");
    p.isolate_as_standby().await.expect("isolate");
    (p, s)
}

/// One run of the binary under `/usr/bin/time -v`: wall seconds, peak RSS (KiB), the report.
fn timed(bin: &Path, args: &[&str]) -> (f64, u64, serde_json::Value) {
    let t = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(bin)
        .args(args)
        .output()
        .expect("/usr/bin/time");
    let wall = t.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    let rss = err
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {err}"));
    (wall, rss, json)
}

/// The lost rows of a report (class, key, former values), sorted.
fn lost(j: &serde_json::Value) -> BTreeSet<String> {
    j["tables"]["tables"]
        .as_array()
        .map(|t| {
            t.iter()
                .flat_map(|t| t["rows"].as_array().cloned().unwrap_or_default())
                .filter(|r| {
                    r["class"]
                        .as_str()
                        .is_some_and(|c| c.starts_with("lost_") || c == "conflict")
                })
                .map(|r| format!("{} {} {}", r["class"], r["key"], r["former"]["values"]))
                .collect()
        })
        .unwrap_or_default()
}

fn copy_wal(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).expect("pg_wal") {
        let e = e.expect("entry");
        let name = e.file_name();
        let n = name.to_string_lossy();
        if e.path().is_file() && (n.len() == 24 || n.ends_with(".history")) {
            std::fs::copy(e.path(), to.join(&name)).expect("copy");
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let install = PgInstall::find().expect("PostgreSQL binaries");
    let bin = std::env::var("FV_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| "target/release/failover-verify".into());
    let sizes: Vec<u64> = std::env::var("WALROWS_BENCH_SIZES")
        .unwrap_or_else(|_| "10000000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    println!("| rows | from WAL: compare (5 runs) | peak RSS | live (peer, 5 runs) | peak RSS | ratio (best/best) | lost rows | same rows | not examined |");
    println!("|---:|---|---:|---|---:|---:|---:|---|---:|");
    for n in sizes {
        let t = Instant::now();
        let (former, new) = build(&install, n).await;
        eprintln!("{n} rows: pair built in {:.0} s", t.elapsed().as_secs_f64());
        let wal = tempfile::tempdir().expect("tempdir");
        copy_wal(&former.data_dir().join("pg_wal"), wal.path());
        let (np, fp) = (new.conninfo(), former.conninfo());
        let wal_dir = wal.path().to_str().unwrap().to_string();
        let common = [
            "--tables",
            "public.bench",
            "--no-checks",
            "--format",
            "json",
        ];
        let mut from_wal_args = vec![
            "compare",
            "--new-primary",
            &np,
            "--former-wal-dir",
            &wal_dir,
        ];
        from_wal_args.extend(common);
        let mut live_args = vec!["compare", "--new-primary", &np, "--former-primary", &fp];
        live_args.extend(common);
        // Warm both once.
        let (_, _, w) = timed(&bin, &from_wal_args);
        let (_, _, l) = timed(&bin, &live_args);
        let (mut ws, mut wr, mut ls, mut lr) = (Vec::new(), 0, Vec::new(), 0);
        for _ in 0..5 {
            let (s, r, _) = timed(&bin, &from_wal_args);
            ws.push(s);
            wr = wr.max(r);
            let (s, r, _) = timed(&bin, &live_args);
            ls.push(s);
            lr = lr.max(r);
        }
        let (lw, ll) = (lost(&w), lost(&l));
        let ne: usize = w["tables"]["tables"]
            .as_array()
            .map(|t| {
                t.iter()
                    .map(|t| t["not_examined"].as_array().map_or(0, Vec::len))
                    .sum()
            })
            .unwrap_or(0);
        let fmt = |v: &[f64]| {
            v.iter()
                .map(|s| format!("{s:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let best = |v: &[f64]| v.iter().cloned().fold(f64::MAX, f64::min);
        println!(
            "| {n} | {} s | {} MB | {} s | {} MB | {:.2} | {} | {} | {ne} |",
            fmt(&ws),
            wr / 1024,
            fmt(&ls),
            lr / 1024,
            best(&ws) / best(&ls),
            lw.len(),
            lw == ll,
        );
        let disagree = l["findings"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["id"] == "wal_rows_disagree"));
        println!("  live run's wal_rows_disagree: {disagree}");
        assert_eq!(lw, ll, "the rows from the WAL differ from the live rows");
        drop(former);
        drop(new);
    }
}
