//! `compare --repmgr` and `cluster --repmgr` against a real repmgr cluster (Debian's
//! `postgresql-15-repmgr`): a primary and a standby registered with `repmgr primary register`
//! and `repmgr standby clone/register`. The standby is cut off from WAL (DOMAIN.md §7), the
//! primary commits, stops, and `repmgr standby promote` promotes the standby that missed those
//! commits. The former primary is started again in recovery (as an operator would before
//! deciding on a rewind), still holding its divergent WAL. The tool, told only one node's
//! conninfo, must find both nodes in repmgr's metadata and count exactly the commits that
//! `pg_waldump` shows past the switchpoint on the former primary's WAL.

mod ha_util;
mod util;

use std::path::{Path, PathBuf};

use failover_verify::sandbox::PgInstall;
use ha_util::{as_postgres, run_ok, sql, stop_postmaster, wait_sql};
use util::run_tool;

/// Commits the primary makes after the standby is cut off.
const LOST: usize = 5;

/// The repmgr binary, the extension, and PostgreSQL, or `None` (skipped) outside CI.
fn tools_or_skip(test: &str) -> Option<(PgInstall, PathBuf)> {
    let install = PgInstall::find();
    let repmgr = install
        .as_ref()
        .ok()
        .map(|i| i.bin("repmgr"))
        .filter(|p| p.is_file());
    let mut missing = Vec::new();
    if let Err(e) = &install {
        missing.push(format!("PostgreSQL server binaries ({e})"));
    }
    if repmgr.is_none() {
        missing
            .push("repmgr in the PostgreSQL bin directory (Debian: postgresql-15-repmgr)".into());
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
    Some((install.unwrap(), repmgr.unwrap()))
}

/// The two nodes' directories; both postmasters are stopped on drop.
struct RepmgrCluster {
    dir: tempfile::TempDir,
    install: PgInstall,
    repmgr: PathBuf,
    ports: [u16; 2],
}

impl RepmgrCluster {
    fn data(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{}", i + 1))
    }
    fn conf(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{}.conf", i + 1))
    }
    fn log(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{}.log", i + 1))
    }
    fn pg(&self, secs: u64, program: &str, args: &[&str]) -> std::process::Command {
        as_postgres(secs, &self.install.bin(program), args)
    }
    fn repmgr(&self, i: usize, args: &[&str]) -> String {
        let conf = self.conf(i);
        let mut all = vec!["-f", conf.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut cmd = as_postgres(180, &self.repmgr, &all);
        cmd.current_dir(self.dir.path());
        run_ok(&format!("repmgr {}", args.join(" ")), &mut cmd)
    }
    fn pg_ctl_start(&self, i: usize) {
        let data = self.data(i);
        let log = self.log(i);
        run_ok(
            "pg_ctl start",
            self.pg(
                90,
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-l",
                    log.to_str().unwrap(),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            )
            .current_dir(self.dir.path()),
        );
    }

    /// initdb, a primary with repmgr registered, and a cloned, registered standby.
    fn start(install: PgInstall, repmgr: PathBuf) -> RepmgrCluster {
        let dir = ha_util::pg_tempdir("fv-repmgr-");
        let c = RepmgrCluster {
            dir,
            install,
            repmgr,
            ports: [util::closed_port(), util::closed_port()],
        };
        let d0 = c.data(0);
        run_ok(
            "initdb",
            c.pg(
                120,
                "initdb",
                &[
                    "-D",
                    d0.to_str().unwrap(),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                ],
            )
            .current_dir(c.dir.path()),
        );
        let conf = format!(
            "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nwal_level = replica\nmax_wal_senders = 10\nmax_replication_slots = 10\nhot_standby = on\nwal_keep_size = 256MB\nshared_preload_libraries = 'repmgr'\nfsync = off\nshared_buffers = 16MB\nmax_connections = 30\n",
            c.ports[0],
            c.dir.path().display()
        );
        append(&d0.join("postgresql.conf"), &conf);
        std::fs::write(
            d0.join("pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.1/32 trust\nlocal replication all trust\nhost replication all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        c.pg_ctl_start(0);
        for i in 0..2 {
            let text = format!(
                "node_id={}\nnode_name='node{}'\nconninfo='host=127.0.0.1 port={} user=postgres dbname=repmgr connect_timeout=2'\ndata_directory='{}'\npg_bindir='{}'\nlog_file='{}'\n",
                i + 1,
                i + 1,
                c.ports[i],
                c.data(i).display(),
                c.install.bindir.display(),
                c.dir.path().join(format!("repmgr{}.log", i + 1)).display()
            );
            std::fs::write(c.conf(i), text).unwrap();
        }
        if ha_util::is_root() {
            let ok = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(c.dir.path())
                .status()
                .unwrap();
            assert!(ok.success());
        }
        run_ok(
            "createdb repmgr",
            &mut c.pg(
                30,
                "createdb",
                &[
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &c.ports[0].to_string(),
                    "-U",
                    "postgres",
                    "repmgr",
                ],
            ),
        );
        c.repmgr(0, &["primary", "register"]);
        let port0 = c.ports[0].to_string();
        c.repmgr(
            1,
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port0,
                "-U",
                "postgres",
                "-d",
                "repmgr",
                "standby",
                "clone",
                "--fast-checkpoint",
            ],
        );
        append(
            &c.data(1).join("postgresql.conf"),
            &format!("\nport = {}\n", c.ports[1]),
        );
        c.pg_ctl_start(1);
        c.repmgr(1, &["standby", "register"]);
        c
    }
}

impl Drop for RepmgrCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for i in 0..2 {
                eprintln!(
                    "---- node{} log:\n{}",
                    i + 1,
                    ha_util::tail(&self.log(i), 30)
                );
            }
        }
        for i in 0..2 {
            stop_postmaster(&self.data(i));
        }
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repmgr_standby_promote_after_a_cut_is_found_and_accounted() {
    let Some((install, repmgr)) = tools_or_skip("repmgr_standby_promote_after_a_cut") else {
        return;
    };
    let started = std::time::Instant::now();
    let c = tokio::task::block_in_place(|| RepmgrCluster::start(install, repmgr));
    let [p1, p2] = c.ports;
    wait_sql(
        "the standby to stream",
        60,
        p2,
        "SELECT count(*) = 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'",
        |v| v.as_deref() == Some("t"),
    )
    .await;
    sql(
        p1,
        "postgres",
        "CREATE TABLE repmgr_lost (id int PRIMARY KEY, note text)",
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
    let cut_at = ha_util::cut_off(p2).await;
    for i in 1..=LOST {
        sql(
            p1,
            "postgres",
            &format!("INSERT INTO repmgr_lost VALUES ({i}, 'after the cut')"),
        )
        .await
        .unwrap();
    }
    // The primary goes down; repmgr promotes the standby that missed the commits.
    let d0 = c.data(0);
    tokio::task::block_in_place(|| {
        run_ok(
            "pg_ctl stop",
            &mut c.pg(
                90,
                "pg_ctl",
                &["-D", d0.to_str().unwrap(), "-m", "fast", "-w", "stop"],
            ),
        );
        let out = c.repmgr(1, &["standby", "promote"]);
        assert!(out.contains("STANDBY PROMOTE successful"), "{out}");
        // The former primary comes back read-only on its old timeline (no rewind).
        std::fs::write(d0.join("standby.signal"), "").unwrap();
        if ha_util::is_root() {
            let _ = std::process::Command::new("chown")
                .args(["postgres:postgres"])
                .arg(d0.join("standby.signal"))
                .status();
        }
        c.pg_ctl_start(0);
    });
    wait_sql(
        "the former primary",
        60,
        p1,
        "SELECT pg_is_in_recovery()",
        |v| v.as_deref() == Some("t"),
    )
    .await;
    // Ground truth, without the tool: the commits pg_waldump shows past the switchpoint.
    let sp = ha_util::switchpoint(&c.data(1), 1);
    assert_eq!(
        sp.to_string(),
        cut_at,
        "the switchpoint is where the standby was cut off"
    );
    let truth = ha_util::waldump_commits(&c.install, &ha_util::pg_wal(&c.data(0)), 1, sp);
    if let Some(n) = truth {
        assert_eq!(n, LOST, "pg_waldump counts the commits made after the cut");
    }
    eprintln!(
        "repmgr test: failed over in {:.1} s; switchpoint {sp}",
        started.elapsed().as_secs_f64()
    );

    // The tool, told only the new primary's repmgr conninfo.
    let members = "user=postgres dbname=postgres sslmode=disable";
    let target = |v: &serde_json::Value| v["target"].as_str().unwrap_or_default().to_string();
    let j = ha_util::compare_via_manager(
        "--repmgr",
        &format!("host=127.0.0.1 port={p2} user=postgres dbname=repmgr sslmode=disable"),
        "repmgr",
        (p2, p1),
        "inactive primary",
    )
    .await;
    let d = &j["discovery"];
    assert_eq!(d["members"].as_array().map(Vec::len), Some(2));
    let promo = d["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(promo["kind"], "promotion");
    assert_eq!(promo["member"], "node2");
    assert!(
        promo["detail"]
            .as_str()
            .unwrap()
            .starts_with("standby_promote"),
        "{promo}"
    );
    assert!(promo["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(j["divergence"]["switchpoint_lsn"], sp.to_string());
    assert_eq!(
        j["transactions"]["lost_commits"].as_u64(),
        Some(truth.unwrap_or(LOST) as u64),
        "{}",
        j["transactions"]
    );
    assert!(j["patroni"].is_null());
    assert!(
        d["unanswered"].is_null(),
        "every node's metadata was read: {}",
        d["unanswered"]
    );

    // Asked on the former primary, whose copy of the metadata is stale (it still says it is
    // the primary): the tool follows to the freshest copy and reaches the same answer.
    let run = run_tool(&[
        "compare",
        "--repmgr",
        &format!("host=127.0.0.1 port={p1} user=postgres dbname=repmgr sslmode=disable"),
        "--member-conninfo",
        members,
        "--format",
        "markdown",
        "--no-checks",
    ])
    .await;
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    assert!(
        run.stdout.contains("### Discovery (repmgr)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("the copy with the latest event"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("| former primary | node1 (127.0.0.1:{p1}) |")),
        "{}",
        run.stdout
    );

    // `cluster --repmgr`: node2 is the primary, node1 diverged.
    let run = run_tool(&[
        "cluster",
        "--repmgr",
        &format!("host=127.0.0.1 port={p2} user=postgres dbname=repmgr sslmode=disable"),
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

    tokio::task::block_in_place(|| drop(c));
}

#[tokio::test]
async fn repmgr_on_a_database_without_repmgr_exits_3_naming_it() {
    let Some(install) = util::install_or_skip("repmgr_on_a_plain_database") else {
        return;
    };
    let c = failover_verify::sandbox::Cluster::start_primary(
        &install,
        failover_verify::sandbox::ClusterOptions::new("plain"),
    )
    .await
    .unwrap();
    let run = run_tool(&["compare", "--repmgr", &c.conninfo()]).await;
    assert_eq!(run.code, 3, "stderr: {}", run.stderr);
    assert!(run.stdout.is_empty());
    let first = run.stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: discovery: "), "{}", run.stderr);
    assert!(first.contains("is not a repmgr node"), "{first}");
    assert!(first.contains("dbname=repmgr"), "{first}");
    let closed = util::closed_port();
    let run = run_tool(&[
        "compare",
        "--repmgr",
        &format!("host=127.0.0.1 port={closed} user=postgres"),
        "--connect-timeout",
        "3",
    ])
    .await;
    assert_eq!(run.code, 3, "stderr: {}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("repmgr at 127.0.0.1:{closed}")),
        "{}",
        run.stderr
    );
}
