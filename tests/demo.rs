//! `failover-verify demo` end to end: it builds real servers, reports a loss, and leaves nothing
//! behind, also when interrupted.

mod util;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use util::{install_or_skip, run_tool_env};

/// Entries left in the sandbox base directory.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// A sandbox base directory the `postgres` OS user can enter.
fn sandbox_base() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

#[tokio::test]
async fn demo_reports_a_loss_and_cleans_up() {
    let Some(_) = install_or_skip("demo") else {
        return;
    };
    let base = sandbox_base();
    let base_str = base.path().to_str().unwrap();
    let run = run_tool_env(
        &["demo", "--format", "json", "--lost-transactions", "4"],
        &[("FV_SANDBOX_DIR", base_str)],
    )
    .await;
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let j = run.json();
    assert_eq!(j["verdict"], "loss");
    assert!(j["divergence"]["lost_wal_bytes"].as_u64().unwrap() > 0);
    assert!(
        leftovers(base.path()).is_empty(),
        "left behind: {:?}",
        leftovers(base.path())
    );
}

#[tokio::test]
async fn demo_interrupted_by_ctrl_c_stops_its_servers() {
    let Some(_) = install_or_skip("demo_interrupted") else {
        return;
    };
    let base = sandbox_base();
    // Enough lost transactions (one round trip each) that the demo is still at work when the
    // interrupt comes: a fast machine finished the default demo within the 1.5 s wait below.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_failover-verify"))
        .args(["demo", "--lost-transactions", "5000"])
        .env("FV_SANDBOX_DIR", base.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Wait until the first cluster directory exists, then interrupt.
    let t0 = Instant::now();
    while leftovers(base.path()).is_empty() && t0.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = child.id().unwrap() as i32;
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("demo exits promptly after Ctrl-C")
        .unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        leftovers(base.path()).is_empty(),
        "left behind: {:?}",
        leftovers(base.path())
    );
}

#[tokio::test]
async fn demo_without_binaries_says_how_to_get_them() {
    let run = run_tool_env(&["demo"], &[("PG_BINDIR", "/nonexistent/bin")]).await;
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("/nonexistent/bin"), "{}", run.stderr);
    assert!(
        run.stderr.contains("apt install postgresql"),
        "{}",
        run.stderr
    );
}
