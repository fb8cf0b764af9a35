//! Faults during a run: a server that crashes or restarts, one that accepts TCP but never
//! answers, a statement timeout, and Ctrl-C. Each run must end in bounded time with a clear
//! error or a report marked `incomplete`, the documented exit code, and an `--output` file
//! that is either absent or a complete report, with no temporary file left beside it.
//!
//! A run is made slow, reliably and at a known place, with a user check (`--checks-dir`) that
//! runs `pg_sleep` on one node: the test waits until that query shows up as active in the
//! node's `pg_stat_activity` (application_name `failover-verify`), then injects the fault.

mod util;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use failover_verify::sandbox::{
    Cluster, ClusterOptions, LossyFailover, LossyFailoverSpec, StopMode,
};
use util::install_or_skip;

/// A check file running `SELECT pg_sleep(secs)` on one node (`former` or `new`).
fn slow_check(dir: &Path, node: &str, secs: u32) {
    let mode = if node == "former" {
        "rows_on_former"
    } else {
        "rows_on_new"
    };
    std::fs::write(
        dir.join(format!("slow_{node}.toml")),
        format!(
            "id = \"slow_{node}\"\ntitle = \"sleeps\"\nseverity = \"info\"\ndescription = \"d\"\nremedy = \"r\"\n\
             [sql]\n{node} = \"SELECT pg_sleep({secs}) AS slept\"\n[compare]\nmode = \"{mode}\"\n"
        ),
    )
    .unwrap();
}

/// The real binary, started in the background (no PG* variables inherited).
fn spawn_tool(args: &[&str]) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_failover-verify"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, _) in std::env::vars() {
        if k.starts_with("PG") {
            cmd.env_remove(k);
        }
    }
    cmd.spawn().expect("start failover-verify")
}

struct Finished {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Waits for the child at most `limit` (then fails the test).
async fn finish(child: tokio::process::Child, started: Instant, limit: Duration) -> Finished {
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("failover-verify still running after {limit:?}"))
        .expect("wait for failover-verify");
    Finished {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// Backends of the tool on `c` that run a query matching `like` right now.
async fn tool_backends(c: &Cluster, like: &str) -> i64 {
    c.query_scalar::<i64>(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'failover-verify' \
         AND state = 'active' AND query LIKE '{like}'"
    ))
    .await
    .unwrap_or(-1)
}

/// Polls until the tool runs a query matching `like` on `c` (at most 60 s).
async fn wait_for_query(c: &Cluster, like: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tool_backends(c, like).await < 1 {
        assert!(
            Instant::now() < deadline,
            "the tool never ran {like} on {}",
            c.name()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `--output` is either absent or a complete JSON report, and nothing else is in its directory.
fn assert_output_clean(dir: &Path, path: &Path) -> Option<serde_json::Value> {
    let others: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != path && p.extension().is_none_or(|e| e != "toml"))
        .collect();
    assert!(
        others.is_empty(),
        "left behind next to the report: {others:?}"
    );
    path.exists().then(|| {
        let text = std::fs::read_to_string(path).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("{} is not a complete report ({e}):\n{text}", path.display())
        })
    })
}

fn check<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {}", report["checks"]))
}

async fn lossy_pair(name: &str) -> Option<LossyFailover> {
    let install = install_or_skip(name)?;
    Some(
        LossyFailover::build(&install, LossyFailoverSpec::with_lost_commits(3))
            .await
            .expect("lossy failover"),
    )
}

/// Starts `compare --format json --output DIR/report.json --checks-dir DIR` on `f`.
fn compare_with_checks(f: &LossyFailover, dir: &Path, extra: &[&str]) -> tokio::process::Child {
    let (new, former) = (f.new_primary.conninfo(), f.former_primary.conninfo());
    let out = dir.join("report.json");
    let mut args = vec![
        "compare",
        "--new-primary",
        &new,
        "--former-primary",
        &former,
        "--format",
        "json",
        "--connect-timeout",
        "5",
        "--checks-dir",
        dir.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    spawn_tool(&args)
}

#[tokio::test]
async fn former_primary_crashing_mid_run_gives_an_incomplete_report() {
    let Some(f) = lossy_pair("former_primary_crashing_mid_run").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    slow_check(dir.path(), "former", 60);
    let started = Instant::now();
    let child = compare_with_checks(&f, dir.path(), &[]);
    wait_for_query(&f.former_primary, "%pg_sleep%").await;
    f.former_primary.stop(StopMode::Immediate).await.unwrap();
    let run = finish(child, started, Duration::from_secs(30)).await;
    assert!(run.elapsed < Duration::from_secs(30), "{:?}", run.elapsed);
    // The verdict was settled from the WAL before the checks ran: loss, exit 1.
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let report =
        assert_output_clean(dir.path(), &dir.path().join("report.json")).expect("a report file");
    assert_eq!(report["verdict"], "loss");
    assert_eq!(report["incomplete"], true, "a check could not run");
    let c = check(&report, "slow_former");
    assert_eq!(c["status"], "error", "{c}");
    let summary = c["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("former primary: ")
            && summary.contains(&f.former_primary.port().to_string()),
        "the error names the node: {summary}"
    );
    assert!(run.stdout.is_empty(), "the report went to the file");
}

#[tokio::test]
async fn new_primary_restarting_mid_run_gives_an_incomplete_report() {
    let Some(f) = lossy_pair("new_primary_restarting_mid_run").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    slow_check(dir.path(), "new", 60);
    let started = Instant::now();
    let child = compare_with_checks(&f, dir.path(), &[]);
    wait_for_query(&f.new_primary, "%pg_sleep%").await;
    f.new_primary.restart().await.unwrap();
    let run = finish(child, started, Duration::from_secs(40)).await;
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let report =
        assert_output_clean(dir.path(), &dir.path().join("report.json")).expect("a report file");
    assert_eq!(report["verdict"], "loss");
    assert_eq!(report["incomplete"], true);
    let c = check(&report, "slow_new");
    assert_eq!(c["status"], "error", "{c}");
    let summary = c["summary"].as_str().unwrap();
    assert!(
        summary.contains("new primary: ")
            && (summary.contains("terminating connection") || summary.contains("closed")),
        "{summary}"
    );
    // The server is back and the tool works against it again.
    let again = util::run_tool(&[
        "compare",
        "--new-primary",
        &f.new_primary.conninfo(),
        "--former-primary",
        &f.former_primary.conninfo(),
        "--format",
        "json",
    ])
    .await;
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert_eq!(again.json()["incomplete"], false);
}

#[tokio::test]
async fn silent_server_times_out_as_former_and_as_new_primary() {
    let Some(install) = install_or_skip("silent_server") else {
        return;
    };
    let real = Cluster::start_primary(&install, ClusterOptions::new("real"))
        .await
        .unwrap();
    // Accepts TCP (the kernel completes the handshake into the backlog) and never reads.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_ci = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        silent.local_addr().unwrap().port()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.json");

    let started = Instant::now();
    let child = spawn_tool(&[
        "compare",
        "--new-primary",
        &real.conninfo(),
        "--former-primary",
        &silent_ci,
        "--format",
        "json",
        "--connect-timeout",
        "2",
        "--output",
        out.to_str().unwrap(),
    ]);
    let run = finish(child, started, Duration::from_secs(30)).await;
    assert_eq!(run.code, 2, "inconclusive; stderr: {}", run.stderr);
    assert!(
        run.elapsed < Duration::from_secs(2 + 6),
        "connect timeout 2 s, took {:?}",
        run.elapsed
    );
    let report = assert_output_clean(dir.path(), &out).expect("a report");
    assert_eq!(report["verdict"], "inconclusive");
    assert_eq!(report["incomplete"], true);
    let err = report["former_primary"]["error"].as_str().unwrap();
    assert!(
        err.contains("timed out") || err.contains("timeout"),
        "{err}"
    );
    assert!(
        err.contains(&silent.local_addr().unwrap().port().to_string()),
        "{err}"
    );

    std::fs::remove_file(&out).unwrap();
    let started = Instant::now();
    let child = spawn_tool(&[
        "compare",
        "--new-primary",
        &silent_ci,
        "--former-primary",
        &real.conninfo(),
        "--connect-timeout",
        "2",
        "--output",
        out.to_str().unwrap(),
    ]);
    let run = finish(child, started, Duration::from_secs(30)).await;
    assert_eq!(run.code, 3, "no report without the new primary");
    assert!(
        run.elapsed < Duration::from_secs(2 + 6),
        "{:?}",
        run.elapsed
    );
    assert!(
        run.stderr.starts_with("error: new primary: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("timed out") || run.stderr.contains("timeout"),
        "{}",
        run.stderr
    );
    assert!(
        assert_output_clean(dir.path(), &out).is_none(),
        "no report file"
    );
    drop(silent);
}

#[tokio::test]
async fn statement_timeout_ends_a_slow_check_and_the_run() {
    let Some(f) = lossy_pair("statement_timeout").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    slow_check(dir.path(), "new", 60);
    let started = Instant::now();
    let child = compare_with_checks(&f, dir.path(), &["--statement-timeout", "1"]);
    let run = finish(child, started, Duration::from_secs(30)).await;
    assert!(
        run.elapsed < Duration::from_secs(20),
        "the 60 s sleep was cut short: {:?}",
        run.elapsed
    );
    assert_eq!(run.code, 1, "loss; stderr: {}", run.stderr);
    let report = assert_output_clean(dir.path(), &dir.path().join("report.json")).unwrap();
    assert_eq!(
        report["verdict"], "loss",
        "the other phases fit in 1 s each"
    );
    assert_eq!(report["incomplete"], true);
    let c = check(&report, "slow_new");
    assert_eq!(c["status"], "error", "{c}");
    assert!(
        c["summary"].as_str().unwrap().contains("statement timeout"),
        "{c}"
    );
    // No backend of the tool is left sleeping.
    assert_eq!(tool_backends(&f.new_primary, "%pg_sleep%").await, 0);
}

#[tokio::test]
async fn ctrl_c_exits_130_and_cancels_the_server_queries() {
    let Some(f) = lossy_pair("ctrl_c").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    slow_check(dir.path(), "new", 120);
    slow_check(dir.path(), "former", 120);
    let started = Instant::now();
    let child = compare_with_checks(&f, dir.path(), &[]);
    wait_for_query(&f.new_primary, "%pg_sleep%").await;
    wait_for_query(&f.former_primary, "%pg_sleep%").await;
    let pid = child.id().expect("pid") as libc::pid_t;
    let interrupted = Instant::now();
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let run = finish(child, started, Duration::from_secs(30)).await;
    assert_eq!(run.code, 130, "stderr: {}", run.stderr);
    assert!(
        interrupted.elapsed() < Duration::from_secs(6),
        "exited {:?} after SIGINT",
        interrupted.elapsed()
    );
    assert!(run.stderr.contains("interrupted"), "{}", run.stderr);
    // A second later, nothing of the tool still runs on either server.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for c in [&f.new_primary, &f.former_primary] {
        assert_eq!(
            tool_backends(c, "%").await,
            0,
            "{}: a failover-verify query still runs after Ctrl-C",
            c.name()
        );
        let log = std::fs::read_to_string(c.log_file()).unwrap();
        assert!(
            log.contains("canceling statement due to user request"),
            "{}: the query was cancelled, not left to run:\n{}",
            c.name(),
            c.log_tail(20)
        );
    }
    assert!(
        assert_output_clean(dir.path(), &dir.path().join("report.json")).is_none(),
        "no report after an interrupt"
    );
}
