//! What a `failover-verify compare` loop costs the new primary's workload.
//!
//! Builds a sandbox lossy failover, initialises pgbench on the new primary, then runs pgbench
//! for N seconds alone and N seconds while `failover-verify compare` runs back to back against
//! the pair (checks and WAL decoding on), in the same process, and prints both TPS figures and
//! their ratio.
//!
//! ```sh
//! cargo build --release && cargo run --release --example load_impact -- 20
//! ```
//! Arguments: seconds per phase (default 20), pgbench clients (default 4), scale (default 5).
//! `FV_BIN` overrides the binary (default: `failover-verify` next to this example's directory).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use failover_verify::sandbox::{LossyFailover, LossyFailoverSpec, PgInstall};

fn tool_path() -> PathBuf {
    if let Some(p) = std::env::var_os("FV_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/examples/load_impact -> target/<profile>/failover-verify
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("failover-verify"))
        .expect("binary path")
}

async fn pgbench(install: &PgInstall, port: u16, args: &[&str]) -> String {
    let out = tokio::process::Command::new(install.bin("pgbench"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .args(args)
        .arg("postgres")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run pgbench");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pgbench {args:?} failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn tps(report: &str) -> f64 {
    report
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l["tps = ".len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench output:\n{report}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (secs, clients, scale) = (arg(0, 20), arg(1, 4), arg(2, 5));
    let install = PgInstall::find().expect("PostgreSQL server binaries");
    if !install.has("pgbench") {
        eprintln!("skipped: load_impact: pgbench not installed");
        return;
    }
    let tool = tool_path();
    assert!(
        tool.exists(),
        "{} missing: build the binary first",
        tool.display()
    );
    let f = LossyFailover::build(&install, LossyFailoverSpec::with_lost_commits(25))
        .await
        .expect("lossy failover");
    let port = f.new_primary.port();
    pgbench(&install, port, &["-i", "-q", "-s", &scale.to_string()]).await;
    let run = [
        "-n",
        "-T",
        &secs.to_string(),
        "-c",
        &clients.to_string(),
        "-j",
        "2",
    ];

    let alone = tps(&pgbench(&install, port, &run).await);

    let stop = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicU64::new(0));
    let (new, former) = (f.new_primary.conninfo(), f.former_primary.conninfo());
    // Extra flags for `compare`, e.g. LOAD_IMPACT_ARGS='--max-rate 20000rows'.
    let extra = std::env::var("LOAD_IMPACT_ARGS").unwrap_or_default();
    let looper = {
        let (stop, runs, tool, extra) = (stop.clone(), runs.clone(), tool.clone(), extra.clone());
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let out = tokio::process::Command::new(&tool)
                    .args([
                        "compare",
                        "--new-primary",
                        &new,
                        "--former-primary",
                        &former,
                    ])
                    .args(["--format", "json"])
                    .args(extra.split_whitespace())
                    .stdin(Stdio::null())
                    .output()
                    .await
                    .expect("run failover-verify");
                assert_eq!(out.status.code(), Some(1), "compare reports the loss");
                worst = worst.max(t.elapsed());
                runs.fetch_add(1, Ordering::Relaxed);
            }
            worst
        })
    };
    let with_tool = tps(&pgbench(&install, port, &run).await);
    stop.store(true, Ordering::Relaxed);
    let worst = looper.await.expect("compare loop");
    let n = runs.load(Ordering::Relaxed);

    println!("pgbench on the new primary: {clients} clients, scale {scale}, {secs} s per phase");
    println!("  compare flags: --format json {extra}");
    println!("  without failover-verify: {alone:.0} tps");
    println!(
        "  with `compare` in a loop: {with_tool:.0} tps ({n} runs, {:.1} runs/s, slowest {:.2} s)",
        n as f64 / secs as f64,
        worst.as_secs_f64()
    );
    println!("  ratio with/without: {:.3}", with_tool / alone);
}
