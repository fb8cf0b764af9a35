//! WAL-guided row diff benchmark: a sandbox failover pair per size, one replicated table of
//! N rows (`WALGUIDED_BENCH_SIZES`, default `1000000,5000000`), 1,000 lost changes on the
//! former primary (400 inserts, 400 updates, 200 deletes in 10 transactions) and 100
//! post-failover updates on the new one. Runs `compare` (the library entry the CLI uses) with
//! `--tables-mode wal` and `--tables-mode full` on the same servers and checks they agree.
//!
//! `CARGO_TARGET_DIR=/work/target-walguided cargo run --release -j2 --example walguided_bench`

use std::time::{Duration, Instant};

use clap::Parser;
use failover_verify::cli::{Cli, Command};
use failover_verify::commands::compare::{run, CompareInput};
use failover_verify::sandbox::{LossyFailover, LossyFailoverSpec, LostWorkload};

/// One `compare` run: (wall time of the whole command, the row diff's own time, the table).
async fn compare(new: &str, former: &str, mode: &str) -> (Duration, u64, serde_json::Value) {
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
    let t = Instant::now();
    let out = run(&input).await.unwrap();
    let wall = t.elapsed();
    let tables = out.report.tables.expect("row diff ran");
    let table = serde_json::to_value(&tables.tables[0]).unwrap();
    (wall, tables.elapsed_ms, table)
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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let install = failover_verify::sandbox::PgInstall::find().expect("PostgreSQL binaries");
    let sizes: Vec<u64> = std::env::var("WALGUIDED_BENCH_SIZES")
        .unwrap_or_else(|_| "1000000,5000000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let full_up_to: u64 = std::env::var("WALGUIDED_BENCH_FULL_UP_TO")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000);
    println!("| rows | build s | wal: compare s | wal: row diff ms | wal: rows read | full: compare s | full: row diff ms | full: rows read | same rows |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for n in sizes {
        let t = Instant::now();
        let base = vec![
            format!(
                "CREATE TABLE bench(id int8 PRIMARY KEY, v text, n int8);
                 INSERT INTO bench SELECT g, md5(g::text), g FROM generate_series(1, {n}) g;"
            ),
            "VACUUM ANALYZE bench".to_string(),
        ];
        // 1,000 lost changes, spread over the table, in 10 transactions.
        let mut lost = Vec::new();
        for k in 0..10u64 {
            let mut s = String::from("BEGIN;");
            for i in 0..40u64 {
                let j = k * 40 + i;
                s.push_str(&format!(
                    "INSERT INTO bench VALUES ({}, 'lost', 0);",
                    n + 1 + j
                ));
                s.push_str(&format!(
                    "UPDATE bench SET v = 'lost' WHERE id = {};",
                    1 + (j * 7919) % n
                ));
                if i % 2 == 0 {
                    s.push_str(&format!(
                        "DELETE FROM bench WHERE id = {};",
                        1 + (j * 104729 + 13) % n
                    ));
                }
            }
            s.push_str("COMMIT;");
            lost.push(s);
        }
        let spec = LossyFailoverSpec {
            base_rows: 1,
            base_sql: base,
            lost_workload: LostWorkload::Statements(lost),
            ..Default::default()
        };
        let f = LossyFailover::build(&install, spec)
            .await
            .expect("failover");
        let mut post = String::new();
        for i in 0..100u64 {
            post.push_str(&format!(
                "UPDATE bench SET v = 'post' WHERE id = {};",
                1 + (i * 15485863 + 7) % n
            ));
        }
        f.new_primary.execute(&post).await.unwrap();
        f.former_primary.isolate_as_standby().await.unwrap();
        let build = t.elapsed();
        let (np, fp) = (f.new_primary.conninfo(), f.former_primary.conninfo());
        // Warm both: one WAL-guided run, then the measured ones (best of 3).
        compare(&np, &fp, "wal").await;
        let mut best: Option<(Duration, u64, serde_json::Value)> = None;
        for _ in 0..3 {
            let r = compare(&np, &fp, "wal").await;
            if best.as_ref().is_none_or(|b| r.1 < b.1) {
                best = Some(r);
            }
        }
        let (ww, wd, wt) = best.unwrap();
        assert_eq!(wt["method"], "wal", "{wt}");
        let full = if n <= full_up_to {
            Some(compare(&np, &fp, "full").await)
        } else {
            None
        };
        let same = full
            .as_ref()
            .map(|(_, _, ft)| (rows_sorted(ft) == rows_sorted(&wt)).to_string())
            .unwrap_or_else(|| "-".into());
        let (fw, fd, fr) = full
            .as_ref()
            .map(|(w, d, t)| {
                (
                    format!("{:.2}", w.as_secs_f64()),
                    d.to_string(),
                    t["rows_compared"].to_string(),
                )
            })
            .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
        println!(
            "| {n} | {:.0} | {:.2} | {wd} | {} | {fw} | {fd} | {fr} | {same} |",
            build.as_secs_f64(),
            ww.as_secs_f64(),
            wt["rows_compared"],
        );
        assert_ne!(same, "false", "WAL-guided and full disagree at {n} rows");
    }
}
