//! WAL-guided row diff benchmark: a sandbox failover pair per size, one replicated table of
//! N rows (`WALGUIDED_BENCH_SIZES`, default `1000000,5000000,10000000`), 1,000 lost changes on
//! the former primary (400 inserts, 400 updates, 200 deletes in 10 transactions) and 100
//! post-failover updates on the new one. Runs `compare` (the library entry the CLI uses) with
//! `--tables-mode wal` and `--tables-mode full` on the same servers, checks that they report
//! the same rows, and prints the time of each phase ([`failover_verify::timing`]).
//!
//! The table is loaded before the standby exists (pg_basebackup copies it, which is much
//! faster than streaming and replaying its WAL), then 200,000 rows are updated on the primary
//! and replicated, so that at every size the WAL around the switchpoint is ordinary traffic of
//! the same volume. `WALGUIDED_BENCH_FULL_UP_TO=N` skips the full comparison above N rows.
//!
//! ```text
//! cargo build --release --example walguided_bench
//! WALGUIDED_BENCH_SIZES=1000000,5000000,10000000 target/release/examples/walguided_bench
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Parser;
use failover_verify::cli::{Cli, Command};
use failover_verify::commands::compare::{run, CompareInput};
use failover_verify::sandbox::{Cluster, ClusterOptions, PgInstall};

/// One `compare` run: wall time, the row diff's own time, the table, the phases (ms, summed
/// per phase name, in the order they first ended).
struct Run {
    wall: Duration,
    diff_ms: u64,
    table: serde_json::Value,
    phases: Vec<(&'static str, f64)>,
}

async fn compare(new: &str, former: &str, mode: &str) -> Run {
    let cli = Cli::parse_from([
        "failover-verify",
        "compare",
        "--new-primary",
        new,
        "--former-primary",
        former,
        "--tables",
        "public.bench",
        "--no-checks",
        "--statement-timeout",
        "3600",
        "--tables-mode",
        mode,
    ]);
    let Command::Compare(args) = cli.command else {
        unreachable!()
    };
    let input = CompareInput::from_args(&args).unwrap();
    failover_verify::timing::take();
    let t = Instant::now();
    let out = run(&input).await.unwrap();
    let wall = t.elapsed();
    let mut phases: Vec<(&'static str, f64)> = Vec::new();
    for (name, d) in failover_verify::timing::take() {
        let ms = d.as_secs_f64() * 1000.0;
        match phases.iter_mut().find(|p| p.0 == name) {
            Some(p) => p.1 += ms,
            None => phases.push((name, ms)),
        }
    }
    let tables = out.report.tables.expect("row diff ran");
    let table = serde_json::to_value(&tables.tables[0]).unwrap();
    Run {
        wall,
        diff_ms: tables.elapsed_ms,
        table,
        phases,
    }
}

fn rows_sorted(t: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.to_string())
        .collect();
    v.sort();
    v
}

fn opts(name: &str) -> ClusterOptions {
    ClusterOptions::new(name)
        .setting("shared_buffers", "256MB")
        .setting("max_wal_size", "8GB")
        .setting("checkpoint_timeout", "1h")
        .setting("max_parallel_workers_per_gather", "0")
        .timeout(Duration::from_secs(3600))
}

/// The failover pair: (former primary isolated as a standby, new primary).
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
    // Ordinary replicated traffic right before the failover, the same at every size.
    p.execute("UPDATE bench SET n = n + 1 WHERE id <= 200000")
        .await
        .expect("pre-failover traffic");
    s.wait_caught_up(&p).await.expect("caught up");
    s.cut_off().await.expect("cut off");
    // 1,000 lost changes, spread over the table, in 10 transactions.
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

fn phases_text(r: &Run) -> String {
    r.phases
        .iter()
        .map(|(n, ms)| format!("{n} {ms:.1}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let install = PgInstall::find().expect("PostgreSQL binaries");
    failover_verify::timing::enable(true);
    let sizes: Vec<u64> = std::env::var("WALGUIDED_BENCH_SIZES")
        .unwrap_or_else(|_| "1000000,5000000,10000000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let full_up_to: u64 = std::env::var("WALGUIDED_BENCH_FULL_UP_TO")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    let mut lines = Vec::new();
    let mut phase_lines = BTreeMap::new();
    for n in sizes {
        let t = Instant::now();
        let (former, new) = build(&install, n).await;
        let build_s = t.elapsed().as_secs_f64();
        eprintln!("{n} rows: pair built in {build_s:.0} s");
        let (np, fp) = (new.conninfo(), former.conninfo());
        // Warm both: one WAL-guided run, then the measured ones (best of 5 by row-diff time).
        compare(&np, &fp, "wal").await;
        let mut runs = Vec::new();
        for _ in 0..5 {
            runs.push(compare(&np, &fp, "wal").await);
        }
        let walls: Vec<String> = runs
            .iter()
            .map(|r| format!("{:.2}", r.wall.as_secs_f64()))
            .collect();
        let best = runs.into_iter().min_by_key(|r| r.diff_ms).unwrap();
        assert_eq!(best.table["method"], "wal", "{}", best.table);
        let full = if n <= full_up_to {
            Some(compare(&np, &fp, "full").await)
        } else {
            None
        };
        let same = full
            .as_ref()
            .map(|f| (rows_sorted(&f.table) == rows_sorted(&best.table)).to_string())
            .unwrap_or_else(|| "-".into());
        let (fw, fd, fr) = full
            .as_ref()
            .map(|f| {
                (
                    format!("{:.2} s", f.wall.as_secs_f64()),
                    format!("{} ms", f.diff_ms),
                    f.table["rows_compared"].to_string(),
                )
            })
            .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
        let line = format!(
            "| {n} | {build_s:.0} s | {:.2} s | {} ms | {} | {fw} | {fd} | {fr} | {same} |",
            best.wall.as_secs_f64(),
            best.diff_ms,
            best.table["rows_compared"],
        );
        println!("{line}");
        println!("  wal compare walls (5 runs): {}", walls.join(", "));
        println!("  wal phases (ms): {}", phases_text(&best));
        if let Some(f) = &full {
            println!("  full phases (ms): {}", phases_text(f));
        }
        lines.push(line);
        phase_lines.insert(n, best.phases.clone());
        assert_ne!(same, "false", "WAL-guided and full disagree at {n} rows");
        drop(former);
        drop(new);
    }
    println!();
    println!("| rows | build | wal: compare | wal: row diff | wal: rows read | full: compare | full: row diff | full: rows read | same rows |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for l in &lines {
        println!("{l}");
    }
    // Per-phase table of the best WAL-guided run per size.
    let sizes: Vec<u64> = phase_lines.keys().copied().collect();
    let mut names: Vec<&'static str> = Vec::new();
    for p in phase_lines.values() {
        for (n, _) in p {
            if !names.contains(n) {
                names.push(n);
            }
        }
    }
    println!();
    let head: Vec<String> = sizes.iter().map(|s| format!("{s} rows (ms)")).collect();
    println!("| wal phase | {} |", head.join(" | "));
    println!("|---|{}", "---:|".repeat(sizes.len()));
    for name in names {
        let cells: Vec<String> = sizes
            .iter()
            .map(|s| {
                phase_lines[s]
                    .iter()
                    .find(|p| p.0 == name)
                    .map(|p| format!("{:.1}", p.1))
                    .unwrap_or_else(|| "-".into())
            })
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
}
