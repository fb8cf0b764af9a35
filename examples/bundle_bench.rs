//! Evidence bundle cost: one sandbox failover pair with `BUNDLE_BENCH_MB` (default 256) of lost
//! WAL (16 commits, each with a 15 MB logical message), then per round the real binary three
//! times under `/usr/bin/time -v`: `compare` alone, `compare --evidence-dir`, and
//! `compare --from-evidence` on that bundle; prints wall seconds and peak RSS of each.
//!
//! ```text
//! cargo build --release --bin failover-verify --example bundle_bench
//! BUNDLE_BENCH_BIN=target/release/failover-verify target/release/examples/bundle_bench
//! ```

use std::path::Path;

use failover_verify::sandbox::{Cluster, ClusterOptions, PgInstall};

/// Wall seconds, peak RSS (KB) and exit code of one run of `bin` with `args`.
fn timed(bin: &str, args: &[&str]) -> (f64, u64, i32) {
    let out = std::process::Command::new("/usr/bin/time")
        .arg("-v")
        .arg(bin)
        .args(args)
        .output()
        .expect("/usr/bin/time");
    let err = String::from_utf8_lossy(&out.stderr);
    let get = |k: &str| {
        err.lines()
            .find(|l| l.contains(k))
            .and_then(|l| l.rsplit(": ").next())
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let secs = get("Elapsed (wall clock)")
        .split(':')
        .fold(0.0, |a, p| a * 60.0 + p.parse::<f64>().unwrap_or(0.0));
    let rss = get("Maximum resident set size").parse().unwrap_or(0);
    (secs, rss, out.status.code().unwrap_or(-1))
}

#[tokio::main]
async fn main() {
    let bin = std::env::var("BUNDLE_BENCH_BIN")
        .unwrap_or_else(|_| "target/release/failover-verify".into());
    assert!(Path::new(&bin).is_file(), "{bin}: build it first");
    let mb: usize = std::env::var("BUNDLE_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let install = PgInstall::find().expect("PostgreSQL server binaries");
    let opts = |n: &str| {
        ClusterOptions::new(n)
            .setting("wal_keep_size", "4GB")
            .setting("max_wal_size", "8GB")
    };
    let p = Cluster::start_primary(&install, opts("primary"))
        .await
        .unwrap();
    p.execute("CREATE TABLE t(id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    let s = p.create_standby(opts("standby")).await.unwrap();
    s.wait_caught_up(&p).await.unwrap();
    s.cut_off().await.unwrap();
    for i in 0..mb.div_ceil(16) {
        p.execute(&format!(
            "INSERT INTO t SELECT g, 'x' FROM generate_series({}, {}) g",
            i * 1000 + 1,
            i * 1000 + 1000
        ))
        .await
        .unwrap();
        p.execute("SELECT pg_logical_emit_message(false, 'fv', repeat('x', 15 * 1024 * 1024))")
            .await
            .unwrap();
    }
    s.promote().await.unwrap();
    let (new, former) = (s.conninfo(), p.conninfo());
    let work = tempfile::tempdir().unwrap();
    let out = |n: String| work.path().join(n).display().to_string();
    println!("round  plain s / RSS KB   --evidence-dir s / RSS KB   --from-evidence s / RSS KB   segments");
    for round in 0..3 {
        let base = [
            "compare",
            "--new-primary",
            &new,
            "--former-primary",
            &former,
            "--no-tables",
            "--no-checks",
            "--format",
            "json",
        ];
        let a = timed(
            &bin,
            &[&base[..], &["-o", &out(format!("a{round}.json"))]].concat(),
        );
        let ev = out(format!("ev{round}"));
        let b = timed(
            &bin,
            &[
                &base[..],
                &["-o", &out(format!("b{round}.json")), "--evidence-dir", &ev],
            ]
            .concat(),
        );
        let c = timed(
            &bin,
            &[
                "compare",
                "--from-evidence",
                &ev,
                "--format",
                "json",
                "-o",
                &out(format!("c{round}.json")),
            ],
        );
        assert!(
            a.2 == 1 && b.2 == 1 && c.2 == 1,
            "exit codes {a:?} {b:?} {c:?}"
        );
        let segments = std::fs::read_dir(Path::new(&ev).join("wal"))
            .unwrap()
            .count();
        println!(
            "{round}      {:.2} / {}        {:.2} / {}                {:.2} / {}                 {segments}",
            a.0, a.1, b.0, b.1, c.0, c.1
        );
    }
    let read = |n: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(work.path().join(n)).unwrap()).unwrap()
    };
    let (live, again) = (read("a0.json"), read("c0.json"));
    assert_eq!(
        live["transactions"]["lost_xids"],
        again["transactions"]["lost_xids"]
    );
    println!(
        "lost commits {} (live and from the bundle), lost WAL {} bytes",
        live["transactions"]["lost_commits"], live["divergence"]["lost_wal_bytes"]
    );
}
