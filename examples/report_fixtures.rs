//! Makes the report fixtures of the snapshot tests (`tests/fixtures/reports/*.json`) from real
//! runs: three sandbox failovers compared by the library entry the CLI uses, with the volatile
//! values (times, durations, ports, paths, system identifiers) replaced by fixed placeholders.
//!
//! - `no_loss`: the standby was caught up when it was promoted;
//! - `loss_rows_conflicts`: lost inserts, updates and deletes, post-failover writes, and rows
//!   changed on both sides, with the recovery export;
//! - `wal_files_only`: the same kind of loss, with the former primary read from a copy of its
//!   `pg_wal` only (no connection to it).
//!
//! ```text
//! cargo run --example report_fixtures -- tests/fixtures/reports
//! cargo test --test report_snapshots         # then review and accept the snapshot changes
//! ```

use std::path::{Path, PathBuf};

use clap::Parser;
use failover_verify::cli::{Cli, Command};
use failover_verify::commands::compare::{run, CompareInput};
use failover_verify::report::Report;
use failover_verify::sandbox::{Cluster, ClusterOptions, PgInstall};

const BASE: &str =
    "CREATE TABLE accounts(id int PRIMARY KEY, owner text NOT NULL, balance numeric(12,2));
INSERT INTO accounts SELECT g, 'owner-' || g, g * 10 FROM generate_series(1, 20) g;
CREATE TABLE events(id bigserial PRIMARY KEY, account int, note text);";

const LOST: [&str; 3] = [
    "BEGIN; INSERT INTO accounts VALUES (101, 'lost-a', 1.50), (102, 'lost-b', 2.50);
     INSERT INTO events(account, note) VALUES (101, 'opened'); COMMIT;",
    "BEGIN; UPDATE accounts SET balance = balance + 5 WHERE id IN (3, 7); DELETE FROM accounts WHERE id = 4; COMMIT;",
    "UPDATE accounts SET owner = 'renamed-on-former' WHERE id = 9;",
];

const POST: &str = "UPDATE accounts SET balance = 0 WHERE id = 7;
UPDATE accounts SET owner = 'renamed-on-new' WHERE id = 9;
INSERT INTO accounts VALUES (201, 'after-failover', 9.99);
DELETE FROM accounts WHERE id = 12;";

async fn pair(install: &PgInstall, lose: bool) -> (Cluster, Cluster) {
    let p = Cluster::start_primary(install, ClusterOptions::new("primary"))
        .await
        .expect("primary");
    p.execute(BASE).await.expect("base");
    let s = p
        .create_standby(ClusterOptions::new("standby"))
        .await
        .expect("standby");
    s.wait_caught_up(&p).await.expect("caught up");
    if lose {
        s.cut_off().await.expect("cut off");
        for sql in LOST {
            p.execute(sql).await.expect("lost workload");
        }
    }
    s.promote().await.expect("promote");
    if lose {
        s.execute(POST).await.expect("post-failover writes");
    }
    p.isolate_as_standby().await.expect("isolate");
    (p, s)
}

async fn compare(args: &[&str]) -> Report {
    let mut argv = vec!["failover-verify", "compare"];
    argv.extend_from_slice(args);
    let cli = Cli::parse_from(argv);
    let Command::Compare(args) = cli.command else {
        unreachable!()
    };
    let input = CompareInput::from_args(&args).expect("flags");
    run(&input).await.expect("compare").report
}

/// Replaces what differs from run to run by fixed values, everywhere in the JSON.
fn redact(report: &Report, subs: &[(String, String)]) -> String {
    let mut v = serde_json::to_value(report).expect("serialises");
    fn walk(v: &mut serde_json::Value, key: &str, subs: &[(String, String)]) {
        use serde_json::Value;
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    walk(x, k, subs);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, key, subs)),
            Value::String(s) => {
                match key {
                    "generated_at" | "read_at" => *s = "2026-12-01T09:00:00Z".into(),
                    "postmaster_start_time" => *s = "2026-12-01 08:59:00.000000+00".into(),
                    "system_identifier" => *s = "7400000000000000001".into(),
                    _ => {}
                }
                for (from, to) in subs {
                    *s = s.replace(from.as_str(), to);
                }
                // Commit times, in their own fields and inside sentences.
                let stamp =
                    regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z").expect("regex");
                *s = stamp.replace_all(s, "2026-12-01T08:59:30.5Z").into_owned();
            }
            Value::Number(_) => match key {
                "duration_ms" | "elapsed_ms" => *v = 42.into(),
                "port" => *v = 5432.into(),
                _ => {}
            },
            _ => {}
        }
    }
    walk(&mut v, "", subs);
    let mut s = serde_json::to_string_pretty(&v).expect("JSON");
    s.push('\n');
    s
}

fn subs(new: &Cluster, former: &Cluster, extra: &[(&Path, &str)]) -> Vec<(String, String)> {
    let mut v = vec![
        (format!("port={}", new.port()), "port=5433".to_string()),
        (format!("port={}", former.port()), "port=5432".to_string()),
        (format!(":{}", new.port()), ":5433".to_string()),
        (format!(":{}", former.port()), ":5432".to_string()),
    ];
    for (p, to) in extra {
        v.push((p.display().to_string(), to.to_string()));
    }
    v
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let out: PathBuf = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tests/fixtures/reports".into())
        .into();
    std::fs::create_dir_all(&out).expect("output directory");
    let install = PgInstall::find().expect("PostgreSQL binaries");

    let (former, new) = pair(&install, false).await;
    let r = compare(&[
        "--new-primary",
        &new.conninfo(),
        "--former-primary",
        &former.conninfo(),
    ])
    .await;
    std::fs::write(
        out.join("no_loss.json"),
        redact(&r, &subs(&new, &former, &[])),
    )
    .expect("write");
    drop((former, new));

    let (former, new) = pair(&install, true).await;
    let export = tempfile::tempdir().expect("tempdir");
    let export_dir = export.path().join("recovery");
    let r = compare(&[
        "--new-primary",
        &new.conninfo(),
        "--former-primary",
        &former.conninfo(),
        "--export-dir",
        export_dir.to_str().unwrap(),
    ])
    .await;
    std::fs::write(
        out.join("loss_rows_conflicts.json"),
        redact(
            &r,
            &subs(
                &new,
                &former,
                &[(&export_dir, "/var/tmp/failover-recovery")],
            ),
        ),
    )
    .expect("write");

    // The same former primary, read from a copy of its pg_wal only.
    let wal = tempfile::tempdir().expect("tempdir");
    let wal_dir = wal.path().join("pg_wal");
    std::fs::create_dir(&wal_dir).expect("mkdir");
    for e in std::fs::read_dir(former.data_dir().join("pg_wal")).expect("pg_wal") {
        let e = e.expect("entry");
        if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
            std::fs::copy(e.path(), wal_dir.join(e.file_name())).expect("copy");
        }
    }
    let r = compare(&[
        "--new-primary",
        &new.conninfo(),
        "--former-wal-dir",
        wal_dir.to_str().unwrap(),
    ])
    .await;
    std::fs::write(
        out.join("wal_files_only.json"),
        redact(
            &r,
            &subs(&new, &former, &[(&wal_dir, "/var/tmp/former-pg_wal")]),
        ),
    )
    .expect("write");
    eprintln!("wrote 3 fixtures to {}", out.display());
}
