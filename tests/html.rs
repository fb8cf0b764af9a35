//! `--format html`: one self-contained page whose SVG shows the fork, the lost WAL and the
//! per-table losses; rendered by headless Chromium when it is installed.

mod util;

use failover_verify::sandbox::{LossyFailover, LossyFailoverSpec};
use util::{install_or_skip, run_tool};

#[tokio::test]
async fn html_report_is_self_contained_and_draws_the_fork() {
    let Some(install) = install_or_skip("html_report") else {
        return;
    };
    let f = LossyFailover::build(&install, LossyFailoverSpec::with_lost_commits(4))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.html");
    let run = run_tool(&[
        "compare",
        "--new-primary",
        &f.new_primary.conninfo(),
        "--former-primary",
        &f.former_primary.conninfo(),
        "--format",
        "html",
        "--output",
        path.to_str().unwrap(),
    ])
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    // Self-contained: no scripts, stylesheets, images or fonts from elsewhere.
    for needle in ["<script", "<link", "<img", "url(http", "@import"] {
        assert!(!html.contains(needle), "{needle} in the page");
    }
    assert_eq!(
        html.matches("http://").count(),
        html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
    assert!(html.contains(&format!("switchpoint {}", f.switchpoint)));
    assert!(html.contains("lost: "), "the lost WAL range is labelled");
    assert!(
        html.contains("4 lost commit(s)"),
        "the loss window is drawn"
    );
    assert!(
        html.contains("public.fv_demo</text>"),
        "the per-table bar is drawn"
    );

    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok()
        })
    else {
        assert!(std::env::var_os("CI").is_none(), "CI installs chromium");
        eprintln!("skipped: rendering in headless Chromium: chromium not installed");
        return;
    };
    let png = dir.path().join("report.png");
    let profile = dir.path().join("profile");
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.display()),
            "--window-size=1000,1400",
            &format!("--screenshot={}", png.display()),
            &format!("file://{}", path.display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    assert!(
        bytes.len() > 20_000,
        "a blank page compresses to almost nothing"
    );
}
