//! `failover-verify wal` on bad input: one clear line on stderr, exit code 3, never a panic.

mod util;

use util::run_tool;

fn assert_one_line_error(run: &util::Run, needles: &[&str]) {
    assert_eq!(run.code, 3, "stderr: {}", run.stderr);
    assert!(run.stdout.is_empty());
    let first = run.stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: "), "{}", run.stderr);
    for n in needles {
        assert!(first.contains(n), "{n:?} not in {first:?}");
    }
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[tokio::test]
async fn garbage_segment_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = vec![0u8; 1 << 20];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2654435761) >> 13) as u8;
    }
    std::fs::write(dir.path().join("000000010000000000000003"), &bytes).unwrap();
    let run = run_tool(&[
        "wal",
        "--dir",
        dir.path().to_str().unwrap(),
        "--timeline",
        "1",
        "--from",
        "0/3000060",
    ])
    .await;
    assert_one_line_error(&run, &["000000010000000000000003"]);
}

#[tokio::test]
async fn zero_segment_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("000000010000000000000003"),
        vec![0u8; 1 << 20],
    )
    .unwrap();
    let run = run_tool(&[
        "wal",
        "--dir",
        dir.path().to_str().unwrap(),
        "--timeline",
        "1",
        "--from",
        "0/3000060",
    ])
    .await;
    assert_one_line_error(&run, &["000000010000000000000003"]);
}

#[tokio::test]
async fn empty_or_missing_directory_and_bad_lsn() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let run = run_tool(&["wal", "--dir", d, "--timeline", "1", "--from", "0/3000060"]).await;
    assert_one_line_error(&run, &[d]);
    let run = run_tool(&[
        "wal",
        "--dir",
        "/nonexistent/wal",
        "--timeline",
        "1",
        "--from",
        "0/3000060",
    ])
    .await;
    assert_one_line_error(&run, &["/nonexistent/wal"]);
    let run = run_tool(&["wal", "--dir", d, "--timeline", "1", "--from", "3000060"]).await;
    assert_one_line_error(&run, &["--from", "\"3000060\""]);
    let run = run_tool(&["wal", "--dir", d, "--timeline", "x", "--from", "0/1"]).await;
    assert_eq!(run.code, 3);
}
