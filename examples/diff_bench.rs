//! Row-diff benchmark: two local sandbox servers, tables of 1 M rows (~90 MB) and 5 M rows,
//! each with 400 scattered differences (missing, extra, changed). Measures in one run the
//! comparison's wall time, the hashing floor (`bit_xor(hashtextextended(t::text, 0))` on both
//! servers at once), hashing alternatives, and pg_comparator / reladiff when installed.
//!
//! `CARGO_TARGET_DIR=/work/target-diff cargo run --release --example diff_bench -j2`
//! (`DIFF_BENCH_BIG_ROWS=0` skips the 5 M table; `DIFF_BENCH_ROWS` sets the small table's size).

use std::process::Stdio;
use std::time::{Duration, Instant};

use failover_verify::diff::{
    self, hash::ALTERNATIVES, Attribution, DiffOptions, NoProgress, TableFilter,
};
use failover_verify::pg::{ConnParams, SessionOptions};
use failover_verify::sandbox::{Cluster, ClusterOptions, PgInstall};

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

async fn setup(c: &Cluster, t: &str, rows: u64) {
    c.execute(&format!(
        "CREATE TABLE {t}(id int, a int, b text, c timestamptz, d numeric, e text);
         INSERT INTO {t} SELECT g, g % 1000, md5(g::text), '2024-01-01'::timestamptz + g * interval '1 s',
                g * 1.25, repeat('x', 20) || g FROM generate_series(1, {rows}) g;
         ALTER TABLE {t} ADD PRIMARY KEY (id);"
    ))
    .await
    .unwrap();
    c.execute(&format!("VACUUM ANALYZE {t}")).await.unwrap();
}

/// 400 differences on `c`: ~134 deletes, ~133 inserts beyond the end, ~133 updates.
async fn differences(c: &Cluster, t: &str, rows: u64) {
    let mut sql = String::new();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut used = std::collections::HashSet::new();
    for i in 0..400u64 {
        let id = loop {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if used.insert(1 + x % rows) {
                break 1 + x % rows;
            }
        };
        match i % 3 {
            0 => sql.push_str(&format!("DELETE FROM {t} WHERE id = {id};")),
            1 => sql.push_str(&format!(
                "INSERT INTO {t} VALUES ({}, 1, 'extra', now(), 1, 'e');",
                rows + 1 + i
            )),
            _ => sql.push_str(&format!("UPDATE {t} SET b = 'changed' WHERE id = {id};")),
        }
    }
    c.execute(&sql).await.unwrap();
    c.execute(&format!("VACUUM ANALYZE {t}")).await.unwrap();
}

async fn both(a: &Cluster, b: &Cluster, sql: &str) -> Duration {
    let t0 = Instant::now();
    let (x, y) = tokio::join!(a.query_rows(sql), b.query_rows(sql));
    x.unwrap();
    y.unwrap();
    t0.elapsed()
}

fn rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn external(name: &str, cmd: &mut tokio::process::Command) -> Option<Duration> {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let t0 = Instant::now();
    match tokio::time::timeout(Duration::from_secs(300), cmd.output()).await {
        Ok(Ok(o)) => {
            let el = t0.elapsed();
            // Both tools exit non-zero when they find differences; any crash shows in stderr.
            let err = String::from_utf8_lossy(&o.stderr);
            if err.contains("Traceback") || err.contains("ERROR") && !err.contains("differ") {
                eprintln!(
                    "{name} failed: {}",
                    err.lines().take(5).collect::<Vec<_>>().join(" | ")
                );
                return None;
            }
            Some(el)
        }
        Ok(Err(e)) => {
            eprintln!("{name} not run: {e}");
            None
        }
        Err(_) => {
            eprintln!("{name} timed out");
            None
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let install = PgInstall::find().expect("PostgreSQL binaries");
    let opts = |n: &str| {
        ClusterOptions::new(n)
            .setting("shared_buffers", "1GB")
            .setting("max_parallel_workers_per_gather", "0")
            .setting("autovacuum", "off")
            .timeout(Duration::from_secs(900))
    };
    let (a, b) = tokio::join!(
        Cluster::start_primary(&install, opts("bench_a")),
        Cluster::start_primary(&install, opts("bench_b"))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let small = env_u64("DIFF_BENCH_ROWS", 1_000_000);
    let big = env_u64("DIFF_BENCH_BIG_ROWS", 5_000_000);
    let mut tables = vec![("t1m", small)];
    if big > 0 {
        tables.push(("t5m", big));
    }
    for (t, rows) in &tables {
        tokio::join!(setup(&a, t, *rows), setup(&b, t, *rows));
        differences(&b, t, *rows).await;
    }
    let has_comparator = which("pg_comparator");
    if has_comparator {
        for c in [&a, &b] {
            if let Err(e) = c.execute("CREATE EXTENSION IF NOT EXISTS pgcmp").await {
                eprintln!("pgcmp extension: {e}");
            }
        }
    }
    println!("| table | rows | size | floor (s) | failover-verify (s) | ratio | pg_comparator (s) | reladiff (s) | differences found |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (t, rows) in &tables {
        let size = a
            .query_one_string(&format!("SELECT pg_size_pretty(pg_table_size('{t}'))"))
            .await
            .unwrap();
        // Warm both caches; then, interleaved three times (the machine is shared), the floor
        // (one hashing scan per server, both at once) and our comparison; best of each.
        let floor_sql = format!("SELECT bit_xor(hashtextextended(t::text, 0)) FROM {t} t");
        both(&a, &b, &floor_sql).await;
        // DIFF_BENCH_JOBS: connections per node (the CLI's --jobs; default 2).
        let dopts = DiffOptions {
            filter: TableFilter::new(&[format!("public.{t}")], &[], &[]).unwrap(),
            jobs: env_u64("DIFF_BENCH_JOBS", DiffOptions::default().jobs as u64) as usize,
            ..Default::default()
        };
        let pa = ConnParams::parse(&a.conninfo(), &|_| None).unwrap();
        let pb = ConnParams::parse(&b.conninfo(), &|_| None).unwrap();
        let so = SessionOptions {
            statement_timeout: Duration::from_secs(600),
            ..Default::default()
        };
        let (mut floor, mut ours) = (Duration::MAX, Duration::MAX);
        let mut r = None;
        for _ in 0..3 {
            floor = floor.min(both(&a, &b, &floor_sql).await);
            let t0 = Instant::now();
            let rep =
                diff::compare_tables(&pb, &pa, &so, &dopts, &Attribution::default(), &NoProgress)
                    .await
                    .expect("compare");
            ours = ours.min(t0.elapsed());
            r = Some(rep);
        }
        let r = r.unwrap();
        let tr = &r.tables[0];
        let found = tr.rows.len();
        let comparator = if has_comparator {
            let url = |c: &Cluster| {
                format!(
                    "pgsql://postgres@127.0.0.1:{}/postgres/public.{t}?id",
                    c.port()
                )
            };
            external(
                "pg_comparator",
                tokio::process::Command::new("pg_comparator").args([url(&a), url(&b)]),
            )
            .await
        } else {
            None
        };
        let reladiff = if which("reladiff") && *rows <= 1_000_000 {
            let url =
                |c: &Cluster| format!("postgresql://postgres@127.0.0.1:{}/postgres", c.port());
            external(
                "reladiff",
                tokio::process::Command::new("reladiff")
                    .env("COLUMNS", "1000")
                    .args([url(&a).as_str(), t, url(&b).as_str(), t, "-k", "id"])
                    .args(["-c", "a", "-c", "b", "-c", "c", "-c", "d", "-c", "e"]),
            )
            .await
        } else {
            None
        };
        let f = |d: Option<Duration>| {
            d.map(|d| format!("{:.2}", d.as_secs_f64()))
                .unwrap_or("n/a".into())
        };
        println!(
            "| {t} | {rows} | {size} | {:.2} | {:.2} | {:.2}× | {} | {} | {found} (chunks {}, mismatched {}, queries {}) |",
            floor.as_secs_f64(),
            ours.as_secs_f64(),
            ours.as_secs_f64() / floor.as_secs_f64(),
            f(comparator),
            f(reladiff),
            tr.chunks,
            tr.chunks_mismatched,
            tr.queries
        );
        assert_eq!(found, 400, "all 400 differences found");
    }
    println!(
        "\npeak RSS of this process (tool + harness): {:.0} MB",
        rss_mb()
    );
    // Hashing alternatives, one server, on the 1 M table.
    println!(
        "\n| aggregate over {} (1 server, best of 3) | time (s) |\n|---|---|",
        tables[0].0
    );
    for (name, sql) in ALTERNATIVES {
        let sql = sql.replace("{t}", tables[0].0);
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t0 = Instant::now();
            if let Err(e) = a.query_rows(&sql).await {
                println!("| {name} | error: {e} |");
                break;
            }
            best = best.min(t0.elapsed().as_secs_f64());
        }
        println!("| {name} | {best:.3} |");
    }
}

fn which(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}
