//! WAL archive benchmark: `compare` reading the lost WAL from a copy of pg_wal, from a plain
//! archive directory, and through restore commands (`cp`, pgBackRest), against the floor of
//! fetching the same segments with the same command in a shell loop. See BENCHMARKS.md.
//!
//! ```text
//! cargo build --release && cargo run --release --example archive_bench -- [--batches 20] [--runs 3]
//! ```

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use failover_verify::lsn::TimelineId;
use failover_verify::sandbox::{Cluster, ClusterOptions, PgInstall, StopMode};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn as_postgres(args: &[&str]) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).args(args);
    c
}

/// Runs `cmd` under `/usr/bin/time -v`: (seconds, peak RSS in KB, exit code).
fn timed(cmd: &[&str]) -> (f64, u64, i32) {
    let t = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .args(cmd)
        .output()
        .expect("run");
    let secs = t.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    let rss = err
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (secs, rss, out.status.code().unwrap_or(-1))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let batches = arg("--batches", 20);
    let runs = arg("--runs", 3);
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/failover-verify");
    assert!(bin.is_file(), "build the release binary first");
    let install = PgInstall::find()?;
    let root = tempfile::Builder::new().prefix("fv-archbench-").tempdir()?;
    for d in ["plain", "repo", "lock", "log", "spool", "pgwal"] {
        std::fs::create_dir(root.path().join(d))?;
    }
    let r = root.path().display().to_string();
    std::fs::write(
        root.path().join("pgbackrest.conf"),
        format!("[global]\nrepo1-path={r}/repo\nlock-path={r}/lock\nlog-path={r}/log\nspool-path={r}/spool\nlog-level-file=off\nlog-level-console=warn\n\n[main]\npg1-path={r}/none\n"),
    )?;
    Command::new("chown")
        .args(["-R", "postgres:postgres", &r])
        .status()?;
    let conf = format!("{r}/pgbackrest.conf");
    let archive_command = format!(
        "pgbackrest --config={conf} --stanza=main --pg1-path=\"$PWD\" archive-push %p && cp %p {r}/plain/%f"
    );
    let opts = |n: &str| {
        ClusterOptions::new(n)
            .setting("archive_mode", "on")
            .setting("archive_command", &archive_command)
            .setting("max_wal_size", "1GB")
    };
    let primary = Cluster::start_primary(&install, opts("primary")).await?;
    let st = as_postgres(&[
        "pgbackrest",
        &format!("--config={conf}"),
        "--stanza=main",
        &format!("--pg1-path={}", primary.data_dir().display()),
        &format!("--pg1-port={}", primary.port()),
        &format!("--pg1-socket-path={}", primary.dir().display()),
        "stanza-create",
    ])
    .status()?;
    assert!(st.success(), "stanza-create");
    primary
        .execute("CREATE TABLE t(id bigint PRIMARY KEY, v text)")
        .await?;
    let standby = primary.create_standby(opts("standby")).await?;
    standby.wait_caught_up(&primary).await?;
    standby.cut_off().await?;
    for b in 0..batches {
        primary
            .execute(&format!(
                "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series({}, {}) g",
                b * 20_000,
                b * 20_000 + 19_999
            ))
            .await?;
    }
    let end = primary.current_wal_lsn().await?;
    standby.promote().await?;
    let sp = standby.history(TimelineId(2))?[0].switchpoint;
    primary.stop(StopMode::Fast).await?; // archives its last segment
    let last = format!(
        "{:08X}{:08X}{:08X}",
        1,
        end.0 / (16 << 20) / 256,
        (end.0 / (16 << 20)) % 256
    );
    let started = Instant::now();
    while !root.path().join("plain").join(&last).is_file() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{last} not archived"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for e in std::fs::read_dir(primary.data_dir().join("pg_wal"))?.flatten() {
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), root.path().join("pgwal").join(e.file_name()))?;
        }
    }
    let segs: Vec<String> = (sp.0 / (16 << 20)..=end.0 / (16 << 20))
        .map(|s| format!("{:08X}{:08X}{:08X}", 1, s / 256, s % 256))
        .collect();
    println!(
        "lost WAL: {} → {} ({} MB, {} segments, {batches} commits)",
        sp,
        end,
        (end.0 - sp.0) >> 20,
        segs.len()
    );

    let new = standby.conninfo();
    let get = format!(
        "pgbackrest --config={conf} --stanza=main --pg1-path={} archive-get %f \"%p\"",
        standby.data_dir().display()
    );
    let cp = format!("cp {r}/plain/%f %p");
    let variants: Vec<(&str, Vec<String>)> = vec![
        (
            "--former-wal-dir (pg_wal copy)",
            vec!["--former-wal-dir".into(), format!("{r}/pgwal")],
        ),
        (
            "--former-wal-archive",
            vec!["--former-wal-archive".into(), format!("{r}/plain")],
        ),
        (
            "--former-restore-command cp",
            vec!["--former-restore-command".into(), cp.clone()],
        ),
        (
            "--former-restore-command pgbackrest",
            vec!["--former-restore-command".into(), get.clone()],
        ),
    ];
    // The floor of fetching: the same commands on the same segments in a shell loop.
    let floor = |template: &str| {
        let tmp = format!("{r}/floor");
        let script = segs
            .iter()
            .map(|s| {
                template
                    .replace("%f", s)
                    .replace("\"%p\"", &format!("{tmp}/{s}"))
                    .replace("%p", &format!("{tmp}/{s}"))
            })
            .collect::<Vec<_>>()
            .join(" && ");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir(&tmp).unwrap();
        timed(&["sh", "-c", &script])
    };
    for run in 1..=runs {
        for (name, extra) in &variants {
            let mut cmd = vec![
                bin.to_str().unwrap(),
                "compare",
                "--new-primary",
                &new,
                "--format",
                "json",
                "--no-checks",
                "--no-tables",
                "-q",
            ];
            cmd.extend(extra.iter().map(String::as_str));
            let (secs, rss, code) = timed(&cmd);
            println!("run {run} {name:40} {secs:6.2} s  {rss:7} KB  exit {code}");
        }
        for (name, t) in [
            ("floor: cp loop", &cp),
            ("floor: pgbackrest archive-get loop", &get),
        ] {
            let (secs, rss, code) = floor(t);
            println!("run {run} {name:40} {secs:6.2} s  {rss:7} KB  exit {code}");
        }
    }
    drop(standby);
    drop(primary);
    Ok(())
}
