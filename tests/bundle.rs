//! The evidence bundle on a real lossy promotion: `compare --evidence-dir` seals what it read
//! (checked with the real `sha256sum -c` and `pg_waldump` on the bundled WAL), and
//! `compare --from-evidence` gives the same lost commits, xids and per-table counts with both
//! servers stopped; a changed byte, an existing target and a failed run are handled.

mod util;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use failover_verify::lsn::{Lsn, TimelineId};
use failover_verify::sandbox::{Cluster, ClusterOptions, PgInstall, StopMode};
use serde_json::Value;
use util::{closed_port, install_or_skip, lsn_at, run_tool, Run};

/// The superuser's password on both servers: it must appear nowhere in a bundle.
const PASSWORD: &str = "Bundle-Secret-pw9";

fn opts(name: &str) -> ClusterOptions {
    ClusterOptions::new(name)
        .password(PASSWORD)
        .setting("wal_keep_size", "256MB")
}

/// Primary + standby, cut off, a lost workload on the primary, the standby promoted.
async fn lossy_failover(install: &PgInstall) -> (Cluster, Cluster, Lsn) {
    let primary = Cluster::start_primary(install, opts("primary"))
        .await
        .unwrap();
    primary
        .execute(
            "CREATE TABLE t1(id int PRIMARY KEY, v text);
             CREATE TABLE t2(id int PRIMARY KEY, v text);
             CREATE SEQUENCE s1;
             INSERT INTO t1 SELECT g, 'base' FROM generate_series(1, 200) g;",
        )
        .await
        .unwrap();
    // A role without REPLICATION: its runs read the WAL over SQL (pg_read_binary_file).
    primary
        .execute(&format!(
            "CREATE ROLE fv_sql LOGIN PASSWORD '{PASSWORD}'; GRANT pg_monitor TO fv_sql;
             GRANT EXECUTE ON FUNCTION pg_read_file(text) TO fv_sql;
             GRANT EXECUTE ON FUNCTION pg_read_binary_file(text, bigint, bigint) TO fv_sql;"
        ))
        .await
        .unwrap();
    let standby = primary.create_standby(opts("standby")).await.unwrap();
    standby.wait_caught_up(&primary).await.unwrap();
    standby.cut_off().await.unwrap();
    for sql in [
        "INSERT INTO t1 SELECT g, 'lost' FROM generate_series(1001, 1007) g",
        "UPDATE t1 SET v = 'changed' WHERE id <= 5",
        "DELETE FROM t1 WHERE id BETWEEN 10 AND 12",
        "INSERT INTO t2 VALUES (1, 'lost'), (2, 'lost')",
        "SELECT nextval('s1')",
        // Crosses into the next segment: the bundle holds more than one.
        "SELECT pg_logical_emit_message(false, 'fv', repeat('x', 17 * 1024 * 1024))",
        "INSERT INTO t2 VALUES (3, 'after the big record')",
    ] {
        primary.execute(sql).await.unwrap();
    }
    standby.promote().await.unwrap();
    let switchpoint = standby.history(TimelineId(2)).unwrap()[0].switchpoint;
    (primary, standby, switchpoint)
}

/// Every file and directory under `root`, relative, sorted.
fn walk(root: &Path) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let is_dir = e.file_type().unwrap().is_dir();
            if is_dir {
                stack.push(e.path());
            }
            out.push((e.path().strip_prefix(root).unwrap().to_path_buf(), is_dir));
        }
    }
    out.sort();
    out
}

/// `(xid, commit LSN)` of the lost commits in a report's `transactions`.
fn commits(t: &Value) -> Vec<(u64, Lsn)> {
    t["lost_xids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["xid"].as_u64().unwrap(), lsn_at(x, "commit_lsn")))
        .collect()
}

/// The per-table counts of a report's `transactions`.
fn table_counts(t: &Value) -> Vec<Value> {
    t["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            serde_json::json!([
                x["database"],
                x["table"],
                x["kind"],
                x["inserts"],
                x["updates"],
                x["hot_updates"],
                x["deletes"],
                x["truncates"]
            ])
        })
        .collect()
}

/// `(xid, LSN)` of the COMMIT records `pg_waldump` shows in `dir` between `from` and `to`.
fn waldump_commits(install: &PgInstall, dir: &Path, from: Lsn, to: Lsn) -> Option<Vec<(u64, Lsn)>> {
    if !install.has("pg_waldump") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install pg_waldump"
        );
        eprintln!("skipped: pg_waldump on the bundled WAL: pg_waldump not installed");
        return None;
    }
    let out = std::process::Command::new(install.bin("pg_waldump"))
        .args(["-p", dir.to_str().unwrap(), "-t", "1", "-s"])
        .arg(from.to_string())
        .arg("-e")
        .arg(to.to_string())
        .args(["-r", "Transaction"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found = Vec::new();
    for line in text.lines().filter(|l| l.contains("desc: COMMIT ")) {
        let field = |name: &str| {
            line.split(name)
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .trim()
                .to_string()
        };
        found.push((
            field("tx: ").parse().unwrap(),
            field("lsn: ").parse().unwrap(),
        ));
    }
    Some(found)
}

/// Runs the real `sha256sum -c SHA256SUMS` in `dir`.
fn sha256sum_check(dir: &Path) -> Option<std::process::Output> {
    match std::process::Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(dir)
        .output()
    {
        Ok(o) => Some(o),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: sha256sum -c: {e}");
            None
        }
        Err(e) => panic!("CI must have coreutils' sha256sum: {e}"),
    }
}

fn stderr_line(run: &Run) -> &str {
    run.stderr.lines().next().unwrap_or_default()
}

#[tokio::test]
async fn a_bundle_reanalysed_without_servers_gives_the_same_loss() {
    let Some(install) = install_or_skip("a_bundle_reanalysed_without_servers") else {
        return;
    };
    let (former, new, switchpoint) = lossy_failover(&install).await;
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("evidence");
    let b = bundle.to_str().unwrap();
    let (new_ci, former_ci) = (new.conninfo(), former.conninfo());
    assert!(
        new_ci.contains(PASSWORD),
        "the test must pass the password in the conninfo"
    );

    // The live run, with a bundle.
    let live = run_tool(&[
        "compare",
        "--new-primary",
        &new_ci,
        "--former-primary",
        &former_ci,
        "--evidence-dir",
        b,
        "--format",
        "json",
    ])
    .await;
    assert_eq!(live.code, 1, "{}\n{}", live.stderr, live.stdout);
    let live_json = live.json();
    let lt = &live_json["transactions"];
    assert!(lt["lost_commits"].as_u64().unwrap() >= 6, "{lt}");
    assert!(live_json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["id"] == "evidence_bundle"));

    // What is in it.
    for f in [
        "report.json",
        "report.md",
        "report.txt",
        "report.csv",
        "report.html",
        "report.prom",
        "nodes.json",
        "bundle.json",
        "INDEX.md",
        "SHA256SUMS",
        "history/new-primary/00000002.history",
    ] {
        assert!(bundle.join(f).is_file(), "{f} missing from the bundle");
    }
    let history =
        std::fs::read_to_string(bundle.join("history/new-primary/00000002.history")).unwrap();
    assert_eq!(history, new.read_history_file(TimelineId(2)).unwrap());
    let segments: Vec<String> = std::fs::read_dir(bundle.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(segments.len() >= 2, "{segments:?}");
    assert!(
        segments.iter().all(|s| s.starts_with("00000001")),
        "{segments:?}"
    );
    let index = std::fs::read_to_string(bundle.join("INDEX.md")).unwrap();
    assert!(
        index.contains("--evidence-dir") && index.contains("wal/"),
        "{index}"
    );
    let bundled_report: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("report.json")).unwrap()).unwrap();
    assert_eq!(bundled_report["transactions"]["lost_xids"], lt["lost_xids"]);

    // Owner-only, and no password anywhere.
    for (rel, is_dir) in walk(&bundle) {
        let mode = std::fs::metadata(bundle.join(&rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(
            mode,
            if is_dir { 0o700 } else { 0o600 },
            "{}",
            rel.display()
        );
        if !is_dir {
            let bytes = std::fs::read(bundle.join(&rel)).unwrap();
            assert!(
                !bytes
                    .windows(PASSWORD.len())
                    .any(|w| w == PASSWORD.as_bytes()),
                "the password is in {}",
                rel.display()
            );
        }
    }
    assert_eq!(
        std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // Nothing left beside it.
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 1);

    // The real sha256sum accepts the manifest.
    if let Some(out) = sha256sum_check(&bundle) {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // pg_waldump, on the bundled segments alone, sees the same lost commits.
    let end = lsn_at(&live_json["divergence"], "former_end_lsn");
    if let Some(theirs) = waldump_commits(&install, &bundle.join("wal"), switchpoint, end) {
        assert_eq!(commits(lt), theirs);
    }

    // Both servers stopped: the bundle alone gives the same numbers.
    former.stop(StopMode::Immediate).await.unwrap();
    new.stop(StopMode::Immediate).await.unwrap();
    let again = run_tool(&["compare", "--from-evidence", b, "--format", "json"]).await;
    assert_eq!(again.code, 1, "{}\n{}", again.stderr, again.stdout);
    let aj = again.json();
    let at = &aj["transactions"];
    assert_eq!(at["lost_commits"], lt["lost_commits"]);
    assert_eq!(commits(at), commits(lt));
    assert_eq!(table_counts(at), table_counts(lt));
    assert!(
        table_counts(at).iter().any(|t| t[1] == "public.t1"),
        "{}",
        at["tables"]
    );
    assert_eq!(at["sequences"], lt["sequences"]);
    assert_eq!(at["in_doubt"], lt["in_doubt"]);
    assert_eq!(aj["verdict"], "loss");
    assert_eq!(aj["divergence"], live_json["divergence"]);
    assert!(aj["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["id"] == "from_evidence"));
    // The Markdown rendering works from the bundle too.
    let md = run_tool(&["compare", "--from-evidence", b, "--format", "markdown"]).await;
    assert_eq!(md.code, 1, "{}", md.stderr);

    // An existing directory is refused, before anything else, and left untouched.
    let before: Vec<_> = walk(&bundle)
        .into_iter()
        .map(|(p, d)| {
            (
                p.clone(),
                d,
                if d {
                    vec![]
                } else {
                    std::fs::read(bundle.join(&p)).unwrap()
                },
            )
        })
        .collect();
    let refused = run_tool(&[
        "compare",
        "--new-primary",
        &new_ci,
        "--former-primary",
        &former_ci,
        "--evidence-dir",
        b,
        "--format",
        "json",
    ])
    .await;
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        stderr_line(&refused).contains("already exists") && stderr_line(&refused).contains(b),
        "{}",
        refused.stderr
    );
    let after: Vec<_> = walk(&bundle)
        .into_iter()
        .map(|(p, d)| {
            (
                p.clone(),
                d,
                if d {
                    vec![]
                } else {
                    std::fs::read(bundle.join(&p)).unwrap()
                },
            )
        })
        .collect();
    assert!(before == after, "the existing bundle changed");
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 1);

    // One byte changed in a bundled segment: an error naming that file.
    let copy = work.path().join("tampered");
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(&bundle)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());
    let mut names = segments.clone();
    names.sort();
    let victim = copy.join("wal").join(&names[0]);
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&victim, &bytes).unwrap();
    let bad = run_tool(&["compare", "--from-evidence", copy.to_str().unwrap()]).await;
    assert_eq!(bad.code, 3, "{}", bad.stderr);
    assert!(
        stderr_line(&bad).contains(&format!("wal/{}", names[0]))
            && stderr_line(&bad).contains("checksum"),
        "{}",
        bad.stderr
    );
    if let Some(out) = sha256sum_check(&copy) {
        assert!(
            !out.status.success(),
            "sha256sum -c must see the change too"
        );
    }
    // A file added to the bundle is named too.
    bytes[100] ^= 0x01;
    std::fs::write(&victim, &bytes).unwrap();
    std::fs::write(copy.join("wal/notes.txt"), b"added later").unwrap();
    let extra = run_tool(&["compare", "--from-evidence", copy.to_str().unwrap()]).await;
    assert_eq!(extra.code, 3, "{}", extra.stderr);
    assert!(
        stderr_line(&extra).contains("wal/notes.txt"),
        "{}",
        extra.stderr
    );
}

#[tokio::test]
async fn with_the_new_primary_the_bundle_is_checked_against_it() {
    let Some(install) = install_or_skip("with_the_new_primary_the_bundle_is_checked") else {
        return;
    };
    let (former, new, _) = lossy_failover(&install).await;
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("ev");
    let b = bundle.to_str().unwrap();
    let live = run_tool(&[
        "compare",
        "--new-primary",
        &new.conninfo(),
        "--former-primary",
        &former.conninfo(),
        "--evidence-dir",
        b,
        "--format",
        "json",
        "--no-tables",
    ])
    .await;
    assert_eq!(live.code, 1, "{}", live.stderr);

    // The same through SQL (no REPLICATION attribute): the segments are written from the
    // bytes pg_read_binary_file returned, and re-analyse to the same numbers.
    let as_sql = |c: &Cluster| c.conninfo().replace("user=postgres", "user=fv_sql");
    let sql_bundle = work.path().join("over-sql");
    let sql_run = run_tool(&[
        "compare",
        "--new-primary",
        &as_sql(&new),
        "--former-primary",
        &as_sql(&former),
        "--evidence-dir",
        sql_bundle.to_str().unwrap(),
        "--format",
        "json",
        "--no-tables",
    ])
    .await;
    assert_eq!(sql_run.code, 1, "{}", sql_run.stderr);
    let sj = sql_run.json();
    assert!(
        sj["transactions"]["source"]
            .as_str()
            .unwrap()
            .starts_with("pg_wal over SQL"),
        "{}",
        sj["transactions"]["source"]
    );
    assert_eq!(
        commits(&sj["transactions"]),
        commits(&live.json()["transactions"])
    );
    let re = run_tool(&[
        "compare",
        "--from-evidence",
        sql_bundle.to_str().unwrap(),
        "--format",
        "json",
    ])
    .await;
    assert_eq!(re.code, 1, "{}\n{}", re.stderr, re.stdout);
    let rj = re.json();
    assert_eq!(commits(&rj["transactions"]), commits(&sj["transactions"]));
    assert_eq!(
        table_counts(&rj["transactions"]),
        table_counts(&sj["transactions"])
    );
    let hist =
        std::fs::read_to_string(sql_bundle.join("history/new-primary/00000002.history")).unwrap();
    assert_eq!(hist, new.read_history_file(TimelineId(2)).unwrap());

    former.stop(StopMode::Immediate).await.unwrap();

    // From a copy of the former primary's pg_wal (no connection to it): the bundle copies
    // the lost range's segments unchanged, and re-analyses to the same numbers.
    let copy = tempfile::tempdir().unwrap();
    util::copy_wal_dir(&former.data_dir().join("pg_wal"), copy.path());
    let from_dir = work.path().join("from-dir");
    let dir_run = run_tool(&[
        "compare",
        "--new-primary",
        &new.conninfo(),
        "--former-wal-dir",
        copy.path().to_str().unwrap(),
        "--evidence-dir",
        from_dir.to_str().unwrap(),
        "--format",
        "json",
    ])
    .await;
    assert_eq!(dir_run.code, 1, "{}\n{}", dir_run.stderr, dir_run.stdout);
    let dj = dir_run.json();
    let meta: Value =
        serde_json::from_slice(&std::fs::read(from_dir.join("bundle.json")).unwrap()).unwrap();
    let segs = meta["wal"]["segments"].as_array().unwrap();
    assert!(segs.len() >= 2, "{meta}");
    for seg in segs {
        let seg = seg.as_str().unwrap();
        let name = seg.strip_prefix("wal/").unwrap();
        assert_eq!(
            std::fs::read(from_dir.join(seg)).unwrap(),
            std::fs::read(copy.path().join(name)).unwrap(),
            "{seg} differs from the source"
        );
    }
    let re = run_tool(&[
        "compare",
        "--from-evidence",
        from_dir.to_str().unwrap(),
        "--format",
        "json",
    ])
    .await;
    assert_eq!(re.code, 1, "{}\n{}", re.stderr, re.stdout);
    let rj = re.json();
    assert_eq!(commits(&rj["transactions"]), commits(&dj["transactions"]));
    assert_eq!(
        table_counts(&rj["transactions"]),
        table_counts(&dj["transactions"])
    );
    assert_eq!(rj["divergence"], dj["divergence"]);
    assert_eq!(
        commits(&rj["transactions"]),
        commits(&live.json()["transactions"]),
        "the directory and the server hold the same lost commits"
    );

    let run = run_tool(&[
        "compare",
        "--from-evidence",
        b,
        "--new-primary",
        &new.conninfo(),
        "--format",
        "json",
    ])
    .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stderr, run.stdout);
    let j = run.json();
    let ids: Vec<&str> = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"evidence_divergence_confirmed"), "{ids:?}");
    // s1 advanced on the former primary only: the new primary is behind it.
    let logged = j["transactions"]["sequences"][0]["last_logged_value"]
        .as_i64()
        .unwrap();
    let current: Option<i64> = new
        .query_scalar("SELECT last_value FROM pg_sequences WHERE sequencename = 's1'")
        .await
        .unwrap();
    assert!(current.is_none_or(|c| c < logged));
    assert!(ids.contains(&"sequence_behind_lost"), "{ids:?}");
    // The live new primary's facts, not the bundled ones.
    assert!(!j["new_primary"]["target"]
        .as_str()
        .unwrap()
        .contains("evidence bundle"));
    assert!(j["former_primary"]["target"]
        .as_str()
        .unwrap()
        .contains("evidence bundle"));
    // A password given on the command line is not in the report either.
    assert!(!run.stdout.contains(PASSWORD));

    // Another cluster's primary is refused.
    let other = Cluster::start_primary(&install, opts("other"))
        .await
        .unwrap();
    let wrong = run_tool(&[
        "compare",
        "--from-evidence",
        b,
        "--new-primary",
        &other.conninfo(),
    ])
    .await;
    assert_eq!(wrong.code, 3, "{}", wrong.stderr);
    assert!(
        stderr_line(&wrong).contains("system identifier"),
        "{}",
        wrong.stderr
    );
}

#[tokio::test]
async fn a_failed_run_leaves_no_bundle() {
    // A server that cannot be reached: the run fails after the staging directory was made.
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("ev");
    let new = format!(
        "host=127.0.0.1 port={} user=x password={PASSWORD} connect_timeout=2",
        closed_port()
    );
    let former = format!(
        "host=127.0.0.1 port={} user=x connect_timeout=2",
        closed_port()
    );
    let run = run_tool(&[
        "compare",
        "--new-primary",
        &new,
        "--former-primary",
        &former,
        "--evidence-dir",
        bundle.to_str().unwrap(),
    ])
    .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(
        std::fs::read_dir(work.path()).unwrap().count(),
        0,
        "no bundle and no staging directory may remain"
    );

    // A parent that is not a directory: refused at once, naming it.
    let file = work.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let target = file.join("ev");
    let run = run_tool(&[
        "compare",
        "--new-primary",
        &new,
        "--former-primary",
        &former,
        "--evidence-dir",
        target.to_str().unwrap(),
    ])
    .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1,
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(file.to_str().unwrap()),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 1);

    // Re-analysis of something that is not a bundle: one line naming what is missing.
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let run = run_tool(&["compare", "--from-evidence", empty.to_str().unwrap()]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(stderr_line(&run).contains("SHA256SUMS"), "{}", run.stderr);
}
