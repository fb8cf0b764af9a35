//! `compare --pg-auto-failover` and `cluster --pg-auto-failover` against a real
//! pg_auto_failover formation (Debian's `postgresql-15-auto-failover` and
//! `pg-auto-failover-cli`): a monitor and two keepers (`pg_autoctl run`) running PostgreSQL as
//! the `postgres` OS user.
//!
//! The lossy failover: the standby leaves the replication quorum (`pg_autoctl set node
//! replication-quorum false`, so the primary stops waiting for it), is cut off from WAL
//! (DOMAIN.md §7), the primary commits, its keeper is stopped (which stops PostgreSQL), and
//! `pg_autoctl perform failover` promotes the standby that missed the commits. The former
//! primary is started again by hand in recovery, without its keeper (which would rewind it),
//! still holding its divergent WAL. The tool, told only the monitor's conninfo, must find both
//! nodes and count exactly the commits `pg_waldump` shows past the switchpoint.

mod ha_util;
mod util;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use failover_verify::sandbox::PgInstall;
use ha_util::{run_ok, sql, stop_postmaster, wait_sql, Proc};
use util::run_tool;

/// Commits the primary makes after the standby is cut off.
const LOST: usize = 4;

fn tools_or_skip(test: &str) -> Option<(PgInstall, PathBuf)> {
    let install = PgInstall::find();
    let autoctl = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("pg_autoctl"))
            .find(|f| f.is_file())
    });
    let mut missing = Vec::new();
    if let Err(e) = &install {
        missing.push(format!("PostgreSQL server binaries ({e})"));
    }
    if autoctl.is_none() {
        missing.push("pg_autoctl on PATH (Debian: pg-auto-failover-cli)".into());
    }
    if let Ok(i) = &install {
        let lib = i.bindir.parent().map(|p| p.join("lib/pgautofailover.so"));
        if !lib.as_ref().is_some_and(|l| l.is_file()) {
            missing
                .push("the pgautofailover extension (Debian: postgresql-15-auto-failover)".into());
        }
    }
    if !missing.is_empty() {
        let msg = format!(
            "{test}: missing {}; CI installs it in .ci/run",
            missing.join(", ")
        );
        if std::env::var_os("CI").is_some() {
            panic!("{msg}");
        }
        eprintln!("skipped: {msg}");
        return None;
    }
    Some((install.unwrap(), autoctl.unwrap()))
}

/// The monitor and two nodes; every keeper and postmaster is stopped on drop.
struct Formation {
    dir: tempfile::TempDir,
    install: PgInstall,
    autoctl: PathBuf,
    monitor_port: u16,
    ports: [u16; 2],
    monitor: Option<Proc>,
    keepers: [Option<Proc>; 2],
}

impl Formation {
    fn data(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `pg_autoctl args` as postgres, with its configuration under the test's directory.
    fn autoctl(&self, secs: u64, args: &[&str]) -> std::process::Command {
        let mut c = ha_util::as_postgres(secs, &self.autoctl, args);
        let d = self.dir.path();
        let path = format!(
            "{}:{}",
            self.install.bindir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.env("PATH", path)
            .env("PG_CONFIG", self.install.bin("pg_config"))
            .env("XDG_CONFIG_HOME", d.join("cfg"))
            .env("XDG_DATA_HOME", d.join("share"))
            .env("XDG_RUNTIME_DIR", d.join("run"))
            .current_dir(d);
        c
    }

    fn monitor_uri(&self) -> String {
        format!(
            "postgres://autoctl_node@127.0.0.1:{}/pg_auto_failover?sslmode=disable",
            self.monitor_port
        )
    }

    fn start_keeper(&mut self, i: usize) {
        let name = format!("node{}", i + 1);
        let data = self.data(&name);
        let port = self.ports[i].to_string();
        let uri = self.monitor_uri();
        let cmd = self.autoctl(
            3600,
            &[
                "create",
                "postgres",
                "--pgdata",
                data.to_str().unwrap(),
                "--pgport",
                &port,
                "--hostname",
                "127.0.0.1",
                "--auth",
                "trust",
                "--no-ssl",
                "--monitor",
                &uri,
                "--name",
                &name,
                "--run",
            ],
        );
        let log = self.dir.path().join(format!("{name}.log"));
        self.keepers[i] = Some(Proc::spawn(&name, cmd, &log));
    }

    async fn start(install: PgInstall, autoctl: PathBuf) -> Formation {
        let dir = ha_util::pg_tempdir("fv-pgaf-");
        for sub in ["cfg", "share", "run"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        if ha_util::is_root() {
            let ok = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let mut f = Formation {
            dir,
            install,
            autoctl,
            monitor_port: util::closed_port(),
            ports: [util::closed_port(), util::closed_port()],
            monitor: None,
            keepers: [None, None],
        };
        let mon = f.data("monitor");
        let mport = f.monitor_port.to_string();
        tokio::task::block_in_place(|| {
            run_ok(
                "pg_autoctl create monitor",
                &mut f.autoctl(
                    180,
                    &[
                        "create",
                        "monitor",
                        "--pgdata",
                        mon.to_str().unwrap(),
                        "--pgport",
                        &mport,
                        "--hostname",
                        "127.0.0.1",
                        "--auth",
                        "trust",
                        "--no-ssl",
                    ],
                ),
            )
        });
        let cmd = f.autoctl(3600, &["run", "--pgdata", mon.to_str().unwrap()]);
        f.monitor = Some(Proc::spawn(
            "monitor",
            cmd,
            &f.dir.path().join("monitor.log"),
        ));
        f.wait_states("the monitor to accept connections", 60, &[])
            .await;
        f.start_keeper(0);
        f.wait_states("node1 to run alone", 120, &[("node1", "single")])
            .await;
        f.start_keeper(1);
        f.wait_states(
            "node1 primary and node2 secondary",
            180,
            &[("node1", "primary"), ("node2", "secondary")],
        )
        .await;
        f
    }

    /// Polls the monitor until every `(node, reported state)` holds.
    async fn wait_states(&self, what: &str, secs: u64, want: &[(&str, &str)]) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = Err(String::new());
        while Instant::now() < deadline {
            last = sql(
                self.monitor_port,
                "pg_auto_failover",
                "SELECT coalesce(string_agg(nodename || '=' || reportedstate || '/' || goalstate || '@' || reportedtli, ' ' ORDER BY nodename), '') FROM pgautofailover.node",
            )
            .await;
            if let Ok(Some(v)) = &last {
                let ok = want.iter().all(|(n, s)| {
                    v.split(' ')
                        .any(|x| x.starts_with(&format!("{n}={s}/{s}@")))
                });
                if ok {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("timed out after {secs} s waiting for {what}; monitor: {last:?}");
    }
}

impl Drop for Formation {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for n in ["monitor", "node1", "node2"] {
                let log = self.dir.path().join(format!("{n}.log"));
                eprintln!("---- {n}:\n{}", ha_util::tail(&log, 25));
            }
        }
        for k in self.keepers.iter_mut() {
            if let Some(mut p) = k.take() {
                p.stop(Duration::from_secs(30));
            }
        }
        if let Some(mut m) = self.monitor.take() {
            m.stop(Duration::from_secs(30));
        }
        for n in ["node1", "node2", "monitor"] {
            stop_postmaster(&self.data(n));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_auto_failover_failover_after_a_cut_is_found_and_accounted() {
    let Some((install, autoctl)) = tools_or_skip("pg_auto_failover_failover_after_a_cut") else {
        return;
    };
    let started = Instant::now();
    let mut f = Formation::start(install, autoctl).await;
    let [p1, p2] = f.ports;
    eprintln!(
        "pg_auto_failover test: formation up ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    sql(
        p1,
        "postgres",
        "CREATE TABLE pgaf_lost (id int PRIMARY KEY, note text)",
    )
    .await
    .unwrap();
    let lsn = sql(p1, "postgres", "SELECT pg_current_wal_lsn()::text")
        .await
        .unwrap()
        .unwrap();
    wait_sql(
        "the standby to replay the table",
        60,
        p2,
        &format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"),
        |v| v.as_deref() == Some("t"),
    )
    .await;
    // The primary stops waiting for the standby, then the standby is cut off.
    let n2 = f.data("node2");
    tokio::task::block_in_place(|| {
        let out = f
            .autoctl(
                60,
                &[
                    "set",
                    "node",
                    "replication-quorum",
                    "false",
                    "--pgdata",
                    n2.to_str().unwrap(),
                ],
            )
            .output()
            .expect("pg_autoctl set node");
        eprintln!(
            "pg_autoctl set node replication-quorum false: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
    wait_sql(
        "the primary to stop waiting for the standby",
        60,
        p1,
        "SELECT current_setting('synchronous_standby_names') = ''",
        |v| v.as_deref() == Some("t"),
    )
    .await;
    let cut_at = ha_util::cut_off(p2).await;
    for i in 1..=LOST {
        let r = tokio::time::timeout(
            Duration::from_secs(20),
            sql(
                p1,
                "postgres",
                &format!("INSERT INTO pgaf_lost VALUES ({i}, 'after the cut')"),
            ),
        )
        .await;
        assert!(matches!(r, Ok(Ok(_))), "insert {i}: {r:?}");
    }
    // The primary's keeper goes down with its PostgreSQL; the monitor fails over.
    tokio::task::block_in_place(|| {
        if let Some(mut k) = f.keepers[0].take() {
            k.stop(Duration::from_secs(60));
        }
        stop_postmaster(&f.data("node1"));
        let mon = f.data("monitor");
        let out = f
            .autoctl(
                120,
                &[
                    "perform",
                    "failover",
                    "--pgdata",
                    mon.to_str().unwrap(),
                    "--wait",
                    "0",
                ],
            )
            .output()
            .expect("pg_autoctl perform failover");
        eprintln!(
            "pg_autoctl perform failover: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
    wait_sql(
        "node2 to be promoted",
        180,
        p2,
        "SELECT NOT pg_is_in_recovery()",
        |v| v.as_deref() == Some("t"),
    )
    .await;
    f.wait_states(
        "the monitor to record node2 as primary",
        120,
        &[("node2", "wait_primary")],
    )
    .await;
    // The former primary, by hand (its keeper would rewind it): read-only on timeline 1.
    let d1 = f.data("node1");
    tokio::task::block_in_place(|| {
        std::fs::write(d1.join("standby.signal"), "").unwrap();
        if ha_util::is_root() {
            let _ = std::process::Command::new("chown")
                .arg("postgres:postgres")
                .arg(d1.join("standby.signal"))
                .status();
        }
        let log = f.dir.path().join("node1-by-hand.log");
        run_ok(
            "pg_ctl start (former primary)",
            ha_util::as_postgres(
                90,
                &f.install.bin("pg_ctl"),
                &[
                    "-D",
                    d1.to_str().unwrap(),
                    "-l",
                    log.to_str().unwrap(),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            )
            .current_dir(f.dir.path()),
        );
    });
    wait_sql(
        "the former primary",
        60,
        p1,
        "SELECT pg_is_in_recovery()",
        |v| v.as_deref() == Some("t"),
    )
    .await;
    let sp = ha_util::switchpoint(&f.data("node2"), 1);
    assert_eq!(
        sp.to_string(),
        cut_at,
        "the switchpoint is where the standby was cut off"
    );
    let truth = ha_util::waldump_commits(&f.install, &ha_util::pg_wal(&d1), 1, sp);
    if let Some(n) = truth {
        assert_eq!(n, LOST, "pg_waldump counts the commits made after the cut");
    }
    eprintln!(
        "pg_auto_failover test: failed over ({:.1} s); switchpoint {sp}",
        started.elapsed().as_secs_f64()
    );

    // The tool, told only where the monitor is.
    let monitor = format!(
        "host=127.0.0.1 port={} user=autoctl_node dbname=pg_auto_failover sslmode=disable",
        f.monitor_port
    );
    let members = "user=postgres dbname=postgres sslmode=disable";
    let target = |v: &serde_json::Value| v["target"].as_str().unwrap_or_default().to_string();
    let j = ha_util::compare_via_manager(
        "--pg-auto-failover",
        &monitor,
        "pg_auto_failover",
        (p2, p1),
        "took the primary role away from node1",
    )
    .await;
    let d = &j["discovery"];
    let events = d["events"].as_array().unwrap();
    let promo = events
        .iter()
        .find(|e| e["kind"] == "promotion" && e["member"] == "node2")
        .unwrap_or_else(|| panic!("a promotion of node2: {}", d["events"]));
    assert_eq!(promo["timeline"], 2);
    assert!(promo["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(events
        .iter()
        .any(|e| e["kind"] == "demotion" && e["member"] == "node1"));
    let m2 = d["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "node2")
        .unwrap()
        .clone();
    assert_eq!(m2["timeline"], 2);
    assert_eq!(j["divergence"]["switchpoint_lsn"], sp.to_string());
    assert_eq!(
        j["transactions"]["lost_commits"].as_u64(),
        Some(truth.unwrap_or(LOST) as u64),
        "{}",
        j["transactions"]
    );

    // `cluster --pg-auto-failover`: node2 is the primary, node1 diverged.
    let run = run_tool(&[
        "cluster",
        "--pg-auto-failover",
        &monitor,
        "--member-conninfo",
        members,
        "--format",
        "json",
    ])
    .await;
    assert_eq!(run.code, 1, "exit 1 for diverged; stderr: {}", run.stderr);
    let j = run.json();
    assert_eq!(j["verdict"], "diverged", "{}", j["explanation"]);
    assert!(target(&j["primary"]).contains(&format!("port={p2} ")));
    let nodes = j["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{}", j["nodes"]);
    assert_eq!(nodes[0]["status"], "diverged", "{}", nodes[0]);

    tokio::task::block_in_place(|| drop(f));
    eprintln!(
        "pg_auto_failover test: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
