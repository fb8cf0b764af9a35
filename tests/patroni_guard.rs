//! `rewind-guard` installed in a real Patroni cluster (etcd + 3 members, `use_pg_rewind: true`,
//! `bin_name.pg_rewind` naming the wrapper that `rewind-guard --print-wrapper` writes): three
//! forced lossy failovers to a cut-off asynchronous replica on one cluster, after each of which
//! Patroni rewinds the former leader by itself.
//!
//! 1. Guard on: the former leader's evidence root holds a sealed bundle whose report counts
//!    exactly the commits the test made after the cut, `sha256sum -c` passes, `compare
//!    --from-evidence` reproduces it, and the node streams on the new timeline.
//! 2. Evidence root unwritable: the node still rejoins; the failure is in Patroni's log.
//! 3. `--hold-when-lost`: the node stays out; the release marker plus a restart of its Patroni
//!    lets it rejoin.
//! 4. pg_rewind unusable, the node left diverged, then `patronictl reinit`: the replica method
//!    `rewind-guard --replica-method` (`keep_data: true`) captures before basebackup runs.
//! 5. The configuration audit of `cluster --patroni`: unsafe settings flagged, safe ones clean.

mod patroni_util;
mod util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use patroni_util::{agent, members, sql, tail, tools_or_skip, wait_sql, PatroniCluster};
use util::run_tool;

/// Commits the leader makes after the asynchronous replica is cut off, per failover.
const LOST: usize = 25;

fn wrapper_path(dir: &Path) -> PathBuf {
    dir.join("pg_rewind-guard")
}

fn evidence_root(dir: &Path) -> PathBuf {
    dir.join("evidence")
}

/// Writes member `dir`'s wrapper with `rewind-guard --print-wrapper` and the extra options.
async fn install_wrapper(c: &PatroniCluster, dir: &Path, extra: &[&str]) {
    let pg_rewind = c.tools.install.bindir.join("pg_rewind");
    let root = evidence_root(dir);
    let mut args = vec![
        "rewind-guard",
        "--pg-rewind",
        pg_rewind.to_str().unwrap(),
        "--evidence-root",
        root.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push("--print-wrapper");
    let run = run_tool(&args).await;
    assert_eq!(run.code, 0, "--print-wrapper: {}", run.stderr);
    assert!(run.stdout.starts_with("#!/bin/sh\nexec "), "{}", run.stdout);
    assert_eq!(run.stdout.lines().count(), 2, "{}", run.stdout);
    let path = wrapper_path(dir);
    std::fs::write(&path, &run.stdout).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// One forced lossy failover: who was who, and where the async replica was cut off.
struct Round {
    former: String,
    new: String,
    cut_at: String,
    old_tl: u64,
}

/// Waits for a healthy cluster on one timeline, cuts the async replica off, commits `LOST`
/// rows into `table` on the leader, and fails over to the cut-off replica.
async fn lossy_failover(c: &mut PatroniCluster, table: &str) -> Round {
    let any = c.members[0].rest();
    let healthy = tokio::task::block_in_place(|| {
        c.wait_json(
            "a leader, a sync standby and an async replica streaming on its timeline",
            180,
            &any,
            "/cluster",
            |v| {
                let ms = members(v);
                let Some(l) = ms.iter().find(|m| m["role"] == "leader") else {
                    return false;
                };
                ms.len() == 3
                    && l["state"] == "running"
                    && ms.iter().filter(|m| m["role"] == "sync_standby").count() == 1
                    && ms.iter().filter(|m| m["role"] == "replica").count() == 1
                    && ms
                        .iter()
                        .filter(|m| m["role"] != "leader")
                        .all(|m| m["state"] == "streaming" && m["timeline"] == l["timeline"])
            },
        )
    });
    let ms = members(&healthy);
    let name_of = |role: &str| {
        ms.iter()
            .find(|m| m["role"] == role)
            .and_then(|m| m["name"].as_str())
            .expect("role")
            .to_string()
    };
    let former = name_of("leader");
    let new = name_of("replica");
    let old_tl = ms.iter().find(|m| m["role"] == "leader").unwrap()["timeline"]
        .as_u64()
        .unwrap();
    let leader_port = c.member(&former).pg_port;
    let new_idx = c.members.iter().position(|m| m.name == new).unwrap();
    let new_port = c.members[new_idx].pg_port;
    sql(
        leader_port,
        &format!("CREATE TABLE {table} (id int PRIMARY KEY, note text)"),
    )
    .await
    .unwrap();
    let lsn = sql(leader_port, "SELECT pg_current_wal_lsn()::text")
        .await
        .unwrap()
        .unwrap();
    wait_sql(
        "the async replica to replay the table",
        60,
        new_port,
        &format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"),
        |v| v.as_deref() == Some("t"),
    )
    .await;
    c.write_config(new_idx, true);
    let reload = agent()
        .post(format!("{}/reload", c.members[new_idx].rest()))
        .send_empty()
        .expect("POST /reload");
    assert!(reload.status().is_success());
    wait_sql(
        "the async replica's walreceiver to stop",
        60,
        new_port,
        "SELECT (SELECT count(*) FROM pg_stat_wal_receiver) = 0 AND current_setting('primary_conninfo') = ''",
        |v| v.as_deref() == Some("t"),
    )
    .await;
    let cut_at = sql(new_port, "SELECT pg_last_wal_replay_lsn()::text")
        .await
        .unwrap()
        .unwrap();
    for i in 1..=LOST {
        sql(
            leader_port,
            &format!("INSERT INTO {table} VALUES ({i}, 'committed after the cut')"),
        )
        .await
        .unwrap();
    }
    let still = sql(
        new_port,
        &format!("SELECT pg_last_wal_replay_lsn() = '{cut_at}'::pg_lsn"),
    )
    .await
    .unwrap();
    assert_eq!(
        still.as_deref(),
        Some("t"),
        "the async replica stayed cut off"
    );
    let mut ctl = Command::new(c.tools.venv.join("bin/patronictl"));
    ctl.arg("-c").arg(c.member(&former).config()).args([
        "failover",
        "--candidate",
        &new,
        "--force",
    ]);
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::from(ctl).output(),
    )
    .await
    .expect("patronictl failover within 90 s")
    .expect("patronictl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Successfully failed over") && !text.contains("Failover failed"),
        "patronictl failover: {text}"
    );
    // The new leader needs no nostream tag any more.
    c.write_config(new_idx, false);
    let _ = agent()
        .post(format!("{}/reload", c.members[new_idx].rest()))
        .send_empty();
    Round {
        former,
        new,
        cut_at,
        old_tl,
    }
}

/// Waits until `name` streams from the leader on `tl`.
fn wait_rejoined(c: &PatroniCluster, name: &str, tl: u64, secs: u64) -> serde_json::Value {
    let rest = c.member(name).rest();
    c.wait_json(
        &format!("{name} to stream on timeline {tl}"),
        secs,
        &rest,
        "/cluster",
        |v| {
            members(v)
                .iter()
                .any(|m| m["name"] == name && m["state"] == "streaming" && m["timeline"] == tl)
        },
    )
}

/// The bundles (not the raw copies) under an evidence root.
fn bundles(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .filter(|p| {
                    let n = p.file_name().unwrap().to_string_lossy().to_string();
                    !n.starts_with('.') && !n.ends_with(".capture")
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_rewind_guard_captures_before_patroni_rewinds() {
    let Some(tools) = tools_or_skip("patroni_rewind_guard") else {
        return;
    };
    let started = Instant::now();
    let mut c = tokio::task::block_in_place(|| {
        let pg_rewind = tools.install.bindir.join("pg_rewind");
        PatroniCluster::start_with(tools, &["node-a", "node-b", "node-c"], true, |dir| {
            format!(
                "  bin_name:\n    pg_rewind: {}\n  create_replica_methods:\n    - fvguard\n    - basebackup\n  fvguard:\n    command: {} rewind-guard --replica-method --pg-rewind {} --evidence-root {} --\n    keep_data: true\n",
                wrapper_path(dir).display(),
                env!("CARGO_BIN_EXE_failover-verify"),
                pg_rewind.display(),
                evidence_root(dir).display(),
            )
        })
    });
    let dirs: Vec<PathBuf> = c.members.iter().map(|m| m.dir.clone()).collect();
    for d in &dirs {
        install_wrapper(&c, d, &[]).await;
    }
    if c.tools.as_postgres {
        for d in &dirs {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(wrapper_path(d))
                .status()
                .unwrap();
            assert!(ok.success());
        }
    }

    // ---- 1. the guard captures, Patroni rewinds.
    let r = lossy_failover(&mut c, "guard_lost_1").await;
    let new_tl = r.old_tl + 1;
    eprintln!(
        "guard test: round 1: {} -> {} at {} ({:.1} s)",
        r.former,
        r.new,
        r.cut_at,
        started.elapsed().as_secs_f64()
    );
    let failed_over = Instant::now();
    tokio::task::block_in_place(|| wait_rejoined(&c, &r.former, new_tl, 180));
    eprintln!(
        "guard test: {} rejoined on timeline {new_tl} {:.1} s after the failover",
        r.former,
        failed_over.elapsed().as_secs_f64()
    );
    let former_dir = c.member(&r.former).dir.clone();
    let root = evidence_root(&former_dir);
    // The accounting goes on detached after pg_rewind started: wait for its seal (or its
    // failure), which it logs.
    let sealing = Instant::now();
    let log = loop {
        let log = std::fs::read_to_string(root.join("guard.log")).unwrap_or_default();
        let done = [
            "evidence bundle",
            "the accounting failed",
            "did not finish within",
        ]
        .iter()
        .any(|m| log.contains(m));
        if done || sealing.elapsed() > Duration::from_secs(120) {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!(
        "guard test: the detached accounting logged its end {:.1} s after the rejoin",
        sealing.elapsed().as_secs_f64()
    );
    let found = bundles(&root);
    assert_eq!(
        found.len(),
        1,
        "one bundle in {}: {found:?}\nguard.log:\n{log}",
        root.display()
    );
    let bundle = &found[0];
    let name = bundle.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.contains(&format!("-tl{}-fork-", r.old_tl)), "{name}");
    // Patroni called the guard, and it passed pg_rewind's own output through.
    let plog = std::fs::read_to_string(c.member(&r.former).log()).unwrap();
    assert!(
        plog.contains("rewind-guard"),
        "{}",
        tail(&c.member(&r.former).log(), 80)
    );
    assert!(
        plog.contains("pg_rewind exit code=0"),
        "{}",
        tail(&c.member(&r.former).log(), 80)
    );
    assert!(log.contains("evidence bundle"), "{log}");
    // Without --hold-when-lost, pg_rewind ran in the guard's place as soon as the copy was
    // made, while a detached process of the guard did the accounting.
    assert!(log.contains("the accounting goes on in process"), "{log}");
    assert!(log.contains("detached analysis of"), "{log}");
    // The sealed bundle.
    let sums = Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(bundle)
        .output()
        .expect("sha256sum");
    assert!(
        sums.status.success(),
        "sha256sum -c: {}{}",
        String::from_utf8_lossy(&sums.stdout),
        String::from_utf8_lossy(&sums.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("report.json")).unwrap())
            .unwrap();
    util::validate_report(&report);
    eprintln!(
        "guard test: bundle report: incomplete {}, findings {:?}",
        report["incomplete"],
        report["findings"]
            .as_array()
            .map(|a| a.iter().map(|f| f["id"].to_string()).collect::<Vec<_>>())
    );
    assert_eq!(report["verdict"], "loss", "{}", report["explanation"]);
    assert_eq!(
        report["transactions"]["lost_commits"].as_u64(),
        Some(LOST as u64),
        "{}",
        report["transactions"]
    );
    assert_eq!(
        report["transactions"]["row_changes"].as_u64(),
        Some(LOST as u64),
        "{}",
        report["transactions"]
    );
    assert_eq!(
        report["divergence"]["switchpoint_lsn"].as_str(),
        Some(r.cut_at.as_str())
    );
    // The re-analysis from the bundle alone.
    let run = run_tool(&[
        "compare",
        "--from-evidence",
        bundle.to_str().unwrap(),
        "--format",
        "json",
    ])
    .await;
    assert_eq!(run.code, 1, "exit 1 for loss: {}", run.stderr);
    let j = run.json();
    assert_eq!(
        j["transactions"]["lost_commits"].as_u64(),
        Some(LOST as u64)
    );
    assert_eq!(
        j["transactions"]["row_changes"],
        report["transactions"]["row_changes"]
    );
    // The rewound node is a replica on the new timeline with the new leader's rows only.
    let port = c.member(&r.former).pg_port;
    assert_eq!(
        sql(port, "SELECT pg_is_in_recovery()")
            .await
            .unwrap()
            .as_deref(),
        Some("t")
    );
    assert_eq!(
        sql(port, "SELECT count(*) FROM guard_lost_1")
            .await
            .unwrap()
            .as_deref(),
        Some("0"),
        "the lost rows are gone from the rewound node"
    );

    // ---- 2. an unwritable evidence root: the node still rejoins.
    let leader_dir = c.member(&r.new).dir.clone();
    let root2 = evidence_root(&leader_dir);
    // (The replica method may have made it when the member was cloned: start empty.)
    let _ = std::fs::remove_dir_all(&root2);
    std::fs::create_dir_all(&root2).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root2, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let r2 = lossy_failover(&mut c, "guard_lost_2").await;
    assert_eq!(r2.former, r.new);
    let t2 = Instant::now();
    tokio::task::block_in_place(|| wait_rejoined(&c, &r2.former, r2.old_tl + 1, 180));
    eprintln!(
        "guard test: round 2 (unwritable root): {} rejoined {:.1} s after the failover",
        r2.former,
        t2.elapsed().as_secs_f64()
    );
    let plog = std::fs::read_to_string(c.member(&r2.former).log()).unwrap();
    assert!(
        plog.contains("cannot use the evidence root"),
        "{}",
        tail(&c.member(&r2.former).log(), 80)
    );
    assert!(bundles(&root2).is_empty());

    // ---- 3. --hold-when-lost: the node stays out until released.
    let leader3 = c.member(&r2.new).dir.clone();
    install_wrapper(&c, &leader3, &["--hold-when-lost"]).await;
    let log_before = std::fs::read_to_string(c.member(&r2.new).log())
        .unwrap_or_default()
        .len();
    let r3 = lossy_failover(&mut c, "guard_lost_3").await;
    assert_eq!(r3.former, r2.new);
    let root3 = evidence_root(&leader3);
    let t3 = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    let held_log = loop {
        let log = std::fs::read_to_string(root3.join("guard.log")).unwrap_or_default();
        if log.contains("HOLDING") {
            break log;
        }
        assert!(
            Instant::now() < deadline,
            "no hold within 120 s; guard.log:\n{log}\n{}",
            tail(&c.member(&r3.former).log(), 60)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!(
        "guard test: round 3: held {:.1} s after the failover",
        t3.elapsed().as_secs_f64()
    );
    // It stays out: 20 s later it is still not streaming, and Patroni says why.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let v = patroni_util::get_json(&format!("{}/cluster", c.member(&r3.new).rest())).unwrap();
    let me = members(&v)
        .into_iter()
        .find(|m| m["name"] == r3.former.as_str())
        .unwrap_or_default();
    eprintln!("guard test: held member in /cluster: {me}");
    assert_ne!(me["state"], "streaming", "{me}");
    let plog = std::fs::read_to_string(c.member(&r3.former).log()).unwrap();
    let plog = &plog[log_before.min(plog.len())..];
    let rewinds = plog.matches("pg_rewind exit code=").count();
    eprintln!("guard test: Patroni ran pg_rewind {rewinds} time(s) while held; its log:");
    for l in plog.lines().filter(|l| {
        l.contains("rewind")
            || l.contains("FAILED")
            || l.contains("removing")
            || l.contains("INFO: no action")
    }) {
        eprintln!("  | {}", l.chars().take(220).collect::<String>());
    }
    let tl = format!("-tl{}-", r3.old_tl);
    let held_bundles: Vec<PathBuf> = bundles(&root3)
        .into_iter()
        .filter(|b| b.to_string_lossy().contains(&tl))
        .collect();
    assert_eq!(held_bundles.len(), 1, "{held_bundles:?}\n{held_log}");
    assert!(
        c.member(&r3.former).data().join("PG_VERSION").is_file(),
        "the data directory is kept"
    );
    // The release step: the marker, then a restart of that member's Patroni.
    let key = held_bundles[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let marker = root3.join(format!("{key}.release"));
    std::fs::write(&marker, b"").unwrap();
    let idx = c.members.iter().position(|m| m.name == r3.former).unwrap();
    if let Some(mut p) = c.members[idx].proc.take() {
        p.stop(Duration::from_secs(30));
    }
    c.start_member(idx);
    let t4 = Instant::now();
    tokio::task::block_in_place(|| wait_rejoined(&c, &r3.former, r3.old_tl + 1, 180));
    eprintln!(
        "guard test: released: {} rejoined {:.1} s after its Patroni restarted; total {:.1} s",
        r3.former,
        t4.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let log = std::fs::read_to_string(root3.join("guard.log")).unwrap_or_default();
    assert!(log.contains("released"), "{log}");
    assert_eq!(
        bundles(&root3)
            .iter()
            .filter(|b| b.to_string_lossy().contains(&tl))
            .count(),
        1,
        "no second bundle of the same divergence"
    );

    // ---- 4. reinit of a diverged node that could not be rewound: the replica method captures.
    let leader4 = c.member(&r3.new).dir.clone();
    std::fs::write(wrapper_path(&leader4), "#!/bin/sh\nexit 1\n").unwrap();
    // Its evidence root may be round 2's unwritable one: the guard makes a fresh one.
    let _ = std::fs::remove_dir_all(evidence_root(&leader4));
    let r4 = lossy_failover(&mut c, "guard_lost_4").await;
    assert_eq!(r4.former, r3.new);
    let old4 = r4.old_tl;
    tokio::task::block_in_place(|| {
        c.wait_json(
            "the former leader running diverged on its old timeline (pg_rewind unusable)",
            120,
            &c.member(&r4.new).rest(),
            "/cluster",
            |v| {
                members(v).iter().any(|m| {
                    m["name"] == r4.former.as_str()
                        && m["state"] == "running"
                        && m["timeline"] == old4
                })
            },
        )
    });
    let mut ctl = Command::new(c.tools.venv.join("bin/patronictl"));
    ctl.arg("-c").arg(c.member(&r4.new).config()).args([
        "reinit",
        "fv-patroni-test",
        &r4.former,
        "--force",
    ]);
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::from(ctl).output(),
    )
    .await
    .expect("patronictl reinit within 120 s")
    .expect("patronictl runs");
    eprintln!(
        "guard test: reinit: {}{}",
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let t5 = Instant::now();
    tokio::task::block_in_place(|| wait_rejoined(&c, &r4.former, old4 + 1, 180));
    eprintln!(
        "guard test: reinit: {} streams on timeline {} {:.1} s later",
        r4.former,
        old4 + 1,
        t5.elapsed().as_secs_f64()
    );
    let root4 = evidence_root(&leader4);
    let log4 = std::fs::read_to_string(root4.join("guard.log")).unwrap_or_default();
    let tl4 = format!("-tl{old4}-");
    let b4: Vec<PathBuf> = bundles(&root4)
        .into_iter()
        .filter(|b| b.to_string_lossy().contains(&tl4))
        .collect();
    assert_eq!(b4.len(), 1, "{b4:?}\nguard.log:\n{log4}");
    assert!(log4.contains("replica method"), "{log4}");
    let report4: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b4[0].join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report4["transactions"]["lost_commits"].as_u64(),
        Some(LOST as u64),
        "{}",
        report4["transactions"]
    );
    let sums = Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(&b4[0])
        .status()
        .expect("sha256sum");
    assert!(sums.success());

    // ---- 5. the configuration audit: this cluster is unsafe, then made safe.
    let leader_rest = c.member(&r4.new).rest();
    let patch = |body: &str| {
        let resp = agent()
            .patch(format!("{leader_rest}/config"))
            .content_type("application/json")
            .send(body)
            .expect("PATCH /config");
        assert!(
            resp.status().is_success(),
            "PATCH /config: {}",
            resp.status()
        );
    };
    patch(
        r#"{"postgresql": {"remove_data_directory_on_rewind_failure": true, "remove_data_directory_on_diverged_timelines": true}}"#,
    );
    let audit_ids = [
        "archive_mode_off",
        "patroni_rewind_without_archive",
        "patroni_removes_data_on_rewind_failure",
        "patroni_removes_data_on_diverged_timelines",
        "patroni_failover_lag_allowed",
        "patroni_audit_incomplete",
    ];
    let audit = |run: &util::Run| -> Vec<String> {
        let j = run.json();
        let mut v = Vec::new();
        for f in j["findings"].as_array().unwrap() {
            if let Some(id) = f["id"].as_str().filter(|id| audit_ids.contains(id)) {
                v.push(id.to_string());
            }
        }
        v
    };
    let cluster_args = [
        "cluster",
        "--patroni",
        leader_rest.as_str(),
        "--patroni-conninfo",
        "user=postgres dbname=postgres sslmode=disable",
        "--format",
        "json",
    ];
    let run = run_tool(&cluster_args).await;
    assert_ne!(run.code, 3, "{}", run.stderr);
    let found = audit(&run);
    assert_eq!(
        found,
        audit_ids[..5].to_vec(),
        "unsafe configuration: {}",
        run.stdout
    );
    // Safe: strict synchronous mode, a small lag limit, archiving, no removal options.
    patch(
        r#"{"synchronous_mode_strict": true, "maximum_lag_on_failover": 1048576, "postgresql": {"remove_data_directory_on_rewind_failure": false, "remove_data_directory_on_diverged_timelines": false, "parameters": {"archive_mode": "on", "archive_command": "/bin/true"}}}"#,
    );
    let leader_port = c.member(&r4.new).pg_port;
    let deadline = Instant::now() + Duration::from_secs(60);
    while sql(
        leader_port,
        "SELECT pending_restart FROM pg_settings WHERE name = 'archive_mode'",
    )
    .await
    .ok()
    .flatten()
    .as_deref()
        != Some("t")
    {
        assert!(
            Instant::now() < deadline,
            "archive_mode never became pending_restart"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut ctl = Command::new(c.tools.venv.join("bin/patronictl"));
    ctl.arg("-c").arg(c.member(&r4.new).config()).args([
        "restart",
        "fv-patroni-test",
        &r4.new,
        "--force",
    ]);
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::from(ctl).output(),
    )
    .await
    .expect("patronictl restart within 120 s")
    .expect("patronictl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_sql(
        "archive_mode on after the restart",
        120,
        leader_port,
        "SELECT current_setting('archive_mode')",
        |v| v.as_deref() == Some("on"),
    )
    .await;
    let run = run_tool(&cluster_args).await;
    assert_ne!(run.code, 3, "{}", run.stderr);
    assert!(audit(&run).is_empty(), "safe configuration: {}", run.stdout);
    eprintln!(
        "guard test: audit done; total {:.1} s",
        started.elapsed().as_secs_f64()
    );
    tokio::task::block_in_place(|| drop(c));
}
