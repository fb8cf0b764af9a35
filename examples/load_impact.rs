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
//! `LOAD_IMPACT_SETS` lists `compare` flag sets separated by `;` (an empty set: the defaults)
//! and `LOAD_IMPACT_ROUNDS` how many times to measure each, alternating, on the same pair:
//! every phase with `compare` in a loop sits between two phases of pgbench alone and is
//! printed as a tab-separated line: the 1-minute load average, the TPS before, with and after,
//! the ratio of "with" to the mean of its neighbours, and the durations of the `compare` runs.
//! `FV_BIN` overrides the binary (default: `failover-verify` next to this example's directory).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
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

    // Flag sets to compare, separated by `;` (e.g. LOAD_IMPACT_SETS=';--max-rate unlimited'
    // alternates the defaults and full speed); LOAD_IMPACT_ARGS is the older single set.
    let sets: Vec<String> = match std::env::var("LOAD_IMPACT_SETS") {
        Ok(v) => v.split(';').map(|s| s.trim().to_string()).collect(),
        Err(_) => vec![std::env::var("LOAD_IMPACT_ARGS").unwrap_or_default()],
    };
    let rounds: usize = std::env::var("LOAD_IMPACT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    println!("pgbench on the new primary: {clients} clients, scale {scale}, {secs} s per phase");
    println!("round\tflags\tload1\talone_before_tps\twith_tps\talone_after_tps\tratio\truns\tcompare_min_s\tcompare_mean_s\tcompare_max_s");
    let (new, former) = (f.new_primary.conninfo(), f.former_primary.conninfo());
    // Every phase with `compare` sits between two phases without, and its ratio is to their
    // mean, so that the load of other processes on a shared machine, and the new primary's
    // WAL growing with each phase, weigh on both sides; the order of the sets alternates.
    let mut alone = tps(&pgbench(&install, port, &run).await);
    for round in 1..=rounds {
        let mut order: Vec<&String> = sets.iter().collect();
        if round % 2 == 0 {
            order.reverse();
        }
        for extra in order {
            let load1 = load_average();
            let stop = Arc::new(AtomicBool::new(false));
            let looper = {
                let (stop, tool, extra) = (stop.clone(), tool.clone(), extra.clone());
                let (new, former) = (new.clone(), former.clone());
                tokio::spawn(async move {
                    let mut took = Vec::new();
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
                        assert_eq!(
                            out.status.code(),
                            Some(1),
                            "compare reports the loss: {}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                        took.push(t.elapsed());
                    }
                    took
                })
            };
            let with_tool = tps(&pgbench(&install, port, &run).await);
            stop.store(true, Ordering::Relaxed);
            // The last run finishes before the next phase starts.
            let took = looper.await.expect("compare loop");
            let after = tps(&pgbench(&install, port, &run).await);
            let secs_of = |d: &Duration| d.as_secs_f64();
            let min = took.iter().map(secs_of).fold(f64::INFINITY, f64::min);
            let max = took.iter().map(secs_of).fold(0.0, f64::max);
            let mean = took.iter().map(secs_of).sum::<f64>() / took.len().max(1) as f64;
            let label = if extra.is_empty() {
                "(defaults)"
            } else {
                extra.as_str()
            };
            println!(
                "{round}\t{label}\t{load1}\t{alone:.0}\t{with_tool:.0}\t{after:.0}\t{:.3}\t{}\t{min:.2}\t{mean:.2}\t{max:.2}",
                with_tool / ((alone + after) / 2.0),
                took.len()
            );
            alone = after;
        }
    }
}

/// The 1-minute load average (`/proc/loadavg`), or `?`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}
