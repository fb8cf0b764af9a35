//! The former primary's lost WAL read from a WAL archive (a plain `archive_command` directory
//! and a real pgBackRest repository) after the former primary was rewound, deleted or crashed;
//! partial coverage, several timelines, and bad archives. Ground truth is pg_waldump on the
//! former primary's own pg_wal, and the tool's own count from the live former primary.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use failover_verify::lsn::{Lsn, TimelineId};
use failover_verify::sandbox::{Cluster, ClusterOptions, PgInstall, StopMode};
use serde_json::Value;
use util::{install_or_skip, lsn_at, run_tool, Run};

const SEG: u64 = 16 * 1024 * 1024;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `args` as the postgres OS user when the tests run as root (servers and pgBackRest refuse
/// root-owned files they cannot write later).
fn as_postgres(args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).args(args);
        c
    } else {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    }
}

fn chown_postgres(p: &Path) {
    if is_root() {
        let st = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(p)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// pgBackRest's binary, or `None` (skipped outside CI; CI installs it).
fn pgbackrest(test: &str) -> Option<PathBuf> {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("pgbackrest"))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: CI must install pgbackrest (.ci/run)"
        );
        eprintln!("skipped: {test}: pgBackRest part: pgbackrest not installed");
    }
    found
}

/// A WAL archive shared by every node: a plain directory (`cp`) and, when pgBackRest is
/// installed, a local pgBackRest repository (`archive-push` first, so a file in the plain
/// directory means both have it).
struct Archive {
    root: tempfile::TempDir,
    pgbackrest: Option<PathBuf>,
}

impl Archive {
    fn new(with_pgbackrest: Option<PathBuf>) -> Archive {
        let root = tempfile::Builder::new()
            .prefix("fv-archive-")
            .tempdir()
            .unwrap();
        for d in ["plain", "repo", "lock", "log", "spool"] {
            std::fs::create_dir(root.path().join(d)).unwrap();
        }
        let conf = format!(
            "[global]\nrepo1-path={r}/repo\nlock-path={r}/lock\nlog-path={r}/log\nspool-path={r}/spool\nlog-level-file=off\nlog-level-console=warn\n\n[main]\npg1-path={r}/none\n",
            r = root.path().display()
        );
        std::fs::write(root.path().join("pgbackrest.conf"), conf).unwrap();
        chown_postgres(root.path());
        // The tool (maybe root) takes pgBackRest's lock too.
        let _ = Command::new("chmod")
            .args(["0777"])
            .arg(root.path().join("lock"))
            .status();
        Archive {
            root,
            pgbackrest: with_pgbackrest,
        }
    }

    fn plain(&self) -> PathBuf {
        self.root.path().join("plain")
    }

    fn conf(&self) -> String {
        self.root
            .path()
            .join("pgbackrest.conf")
            .display()
            .to_string()
    }

    /// The archive_command: `%p` is relative to the data directory, which is the cwd.
    fn archive_command(&self) -> String {
        let cp = format!("cp %p {}/%f", self.plain().display());
        match &self.pgbackrest {
            Some(b) => format!(
                "{} --config={} --stanza=main --pg1-path=\"$PWD\" archive-push %p && {cp}",
                b.display(),
                self.conf()
            ),
            None => cp,
        }
    }

    /// The restore command through pgBackRest, with the new primary's data directory as pg1-path
    /// (archive-get reads its pg_control to pick the archive).
    fn restore_command(&self, pg1: &Path) -> Option<String> {
        self.pgbackrest.as_ref().map(|b| {
            format!(
                "{} --config={} --stanza=main --pg1-path={} archive-get %f \"%p\"",
                b.display(),
                self.conf(),
                pg1.display()
            )
        })
    }

    fn options(&self, name: &str) -> ClusterOptions {
        ClusterOptions::new(name)
            .setting("archive_mode", "on")
            .setting("archive_command", &self.archive_command())
    }

    /// pgBackRest's stanza, created against the running primary before anything is archived.
    fn create_stanza(&self, primary: &Cluster) {
        let Some(b) = &self.pgbackrest else { return };
        let out = as_postgres(&[
            b.to_str().unwrap(),
            &format!("--config={}", self.conf()),
            "--stanza=main",
            &format!("--pg1-path={}", primary.data_dir().display()),
            &format!("--pg1-port={}", primary.port()),
            &format!("--pg1-socket-path={}", primary.dir().display()),
            "stanza-create",
        ])
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "stanza-create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn has(&self, name: &str) -> bool {
        self.plain().join(name).is_file()
    }

    /// Waits until `name` is in both archives.
    async fn wait_for(&self, name: &str, node: &Cluster) {
        let started = Instant::now();
        while !self.has(name) {
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "{name} was not archived: {}",
                node.log_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn seg_name(tli: u32, lsn: Lsn) -> String {
    format!(
        "{tli:08X}{:08X}{:08X}",
        lsn.0 / SEG / 256,
        (lsn.0 / SEG) % 256
    )
}

/// `(xid, commit LSN)` of every COMMIT / COMMIT_PREPARED pg_waldump shows on timeline `tli`
/// of `wal` from `from` to the end of its WAL.
fn waldump_commits(install: &PgInstall, wal: &Path, tli: u32, from: Lsn) -> Vec<(u64, Lsn)> {
    assert!(install.has("pg_waldump"), "the tests need pg_waldump");
    let out = Command::new(install.bin("pg_waldump"))
        .args(["-p", wal.to_str().unwrap(), "-t", &tli.to_string()])
        .args(["-s", &from.to_string(), "-r", "Transaction"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut commits = Vec::new();
    for line in text.lines() {
        let Some((_, desc)) = line.split_once("desc: ") else {
            continue;
        };
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
        let lsn: Lsn = field("lsn: ").parse().unwrap();
        let xid = if let Some(rest) = desc.strip_prefix("COMMIT_PREPARED ") {
            rest.split_once(':').unwrap().0.parse().unwrap()
        } else if desc.starts_with("COMMIT ") {
            field("tx: ").parse().unwrap()
        } else {
            continue;
        };
        commits.push((xid, lsn));
    }
    assert!(
        !commits.is_empty() || out.status.success() || text.contains("rmgr"),
        "pg_waldump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    commits
}

fn commits_of(t: &Value) -> Vec<(u64, Lsn)> {
    t["lost_xids"]
        .as_array()
        .unwrap_or_else(|| panic!("no lost_xids in {t}"))
        .iter()
        .map(|x| (x["xid"].as_u64().unwrap(), lsn_at(x, "commit_lsn")))
        .collect()
}

/// `(table, inserts, updates + HOT, deletes)` per table, sorted.
fn tables_of(t: &Value) -> Vec<(String, u64, u64, u64)> {
    let mut v: Vec<_> = t["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["kind"] != "catalog")
        .map(|x| {
            (
                x["table"].as_str().unwrap_or("?").to_string(),
                x["inserts"].as_u64().unwrap(),
                x["updates"].as_u64().unwrap() + x["hot_updates"].as_u64().unwrap(),
                x["deletes"].as_u64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

async fn compare(new: &Cluster, extra: &[&str]) -> Run {
    let new = new.conninfo();
    let mut args = vec![
        "compare",
        "--new-primary",
        &new,
        "--format",
        "json",
        "--no-checks",
    ];
    args.extend_from_slice(extra);
    run_tool(&args).await
}

fn finding<'a>(j: &'a Value, id: &str) -> Option<&'a Value> {
    j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
}

/// A forced lossy promotion with archiving on: some lost commits in a segment that is
/// switched (and archived) while the former primary runs, then a tail in the next segment.
struct Incident {
    former: Cluster,
    new: Cluster,
    switchpoint: Lsn,
    /// The segment the switch closed (archived while the former primary ran).
    switched: String,
    /// Where the tail's segment starts.
    tail_start: Lsn,
}

async fn incident(install: &PgInstall, arch: &Archive) -> Incident {
    let primary = Cluster::start_primary(install, arch.options("primary"))
        .await
        .unwrap();
    arch.create_stanza(&primary);
    primary
        .execute(
            "CREATE TABLE t(id int PRIMARY KEY, v text);
             CREATE TABLE u(id int, pad text);
             INSERT INTO t SELECT g, 'base' FROM generate_series(1, 50) g;
             SELECT pg_switch_wal();",
        )
        .await
        .unwrap();
    let standby = primary
        .create_standby(arch.options("standby"))
        .await
        .unwrap();
    standby.wait_caught_up(&primary).await.unwrap();
    standby.cut_off().await.unwrap();
    for sql in [
        "INSERT INTO t SELECT g, 'lost' FROM generate_series(101, 105) g",
        "UPDATE t SET v = 'upd' WHERE id <= 3",
        "DELETE FROM t WHERE id = 4",
        "INSERT INTO u SELECT g, repeat('p', 100) FROM generate_series(1, 7) g",
        "BEGIN; INSERT INTO t VALUES (900, 'aborted'); ROLLBACK",
    ] {
        primary.execute(sql).await.unwrap();
    }
    let switched: String = primary
        .query_one_string("SELECT pg_walfile_name(pg_switch_wal())")
        .await
        .unwrap();
    arch.wait_for(&switched, &primary).await;
    let tail_start = primary.current_wal_lsn().await.unwrap();
    for sql in [
        "INSERT INTO t VALUES (2001, 'tail')",
        "INSERT INTO u VALUES (2002, 'tail')",
        "UPDATE t SET v = 'tail' WHERE id = 5",
    ] {
        primary.execute(sql).await.unwrap();
    }
    standby.promote().await.unwrap();
    let history = standby.history(TimelineId(2)).unwrap();
    Incident {
        switchpoint: history[0].switchpoint,
        former: primary,
        new: standby,
        switched,
        tail_start: Lsn(tail_start.0 - tail_start.0 % SEG),
    }
}

/// Rewound (pg_rewind) and then deleted: the archive alone gives the live counts, plain and
/// through pgBackRest; a rewound former primary named with the archive reads the archive too.
#[tokio::test]
async fn archive_gives_the_live_counts_after_rewind_and_deletion() {
    let Some(install) = install_or_skip("archive_after_rewind") else {
        return;
    };
    if !install.has("pg_rewind") {
        eprintln!("skipped: archive_after_rewind: pg_rewind not installed");
        return;
    }
    let arch = Archive::new(pgbackrest("archive_after_rewind"));
    let inc = incident(&install, &arch).await;
    let live = compare(&inc.new, &["--former-primary", &inc.former.conninfo()]).await;
    assert_eq!(live.code, 1, "{}\n{}", live.stderr, live.stdout);
    let live = live.json();
    let truth = waldump_commits(
        &install,
        &inc.former.data_dir().join("pg_wal"),
        1,
        inc.switchpoint,
    );
    assert_eq!(commits_of(&live["transactions"]), truth);
    assert!(truth.len() >= 7, "4 lost commits, 3 in the tail: {truth:?}");

    // pg_rewind stops the former primary cleanly first: its last segment is archived.
    inc.former.rewind_onto(&inc.new).await.unwrap();
    let last = seg_name(1, lsn_at(&live["divergence"], "former_end_lsn"));
    arch.wait_for(&last, &inc.new).await;

    let plain = arch.plain();
    let plain = plain.to_str().unwrap();
    let mut runs = vec![(
        "plain",
        vec!["--former-wal-archive".to_string(), plain.into()],
    )];
    if let Some(cmd) = arch.restore_command(inc.new.data_dir()) {
        runs.push(("pgbackrest", vec!["--former-restore-command".into(), cmd]));
    }
    runs.push((
        "rewound former + plain",
        vec![
            "--former-primary".into(),
            inc.former.conninfo(),
            "--former-wal-archive".into(),
            plain.into(),
        ],
    ));
    let check = |what: &str, run: Run| {
        assert_eq!(run.code, 1, "{what}: {}\n{}", run.stderr, run.stdout);
        let j = run.json();
        let t = &j["transactions"];
        assert_eq!(j["verdict"], "loss", "{what}");
        assert_eq!(commits_of(t), truth, "{what}");
        assert_eq!(
            tables_of(t),
            tables_of(&live["transactions"]),
            "{what}: per-table counts"
        );
        assert_eq!(
            lsn_at(&j["divergence"], "switchpoint_lsn"),
            inc.switchpoint,
            "{what}"
        );
        let c = &t["coverage"];
        assert!(
            lsn_at(c, "covered_to") >= lsn_at(&live["transactions"], "end_lsn"),
            "{what}: {c}"
        );
        j
    };
    for (what, extra) in &runs {
        let args: Vec<&str> = extra.iter().map(String::as_str).collect();
        let j = check(what, compare(&inc.new, &args).await);
        if what.starts_with("rewound") {
            assert!(
                finding(&j, "former_rewound_archive_read").is_some(),
                "{}",
                j["findings"]
            );
        }
        if *what == "pgbackrest" {
            assert!(j["transactions"]["coverage"]["sources"][0]
                .as_str()
                .unwrap()
                .contains("archive-get"));
        }
    }

    // Its data directory deleted: the archive still tells, plain and through pgBackRest.
    inc.former.stop(StopMode::Immediate).await.unwrap();
    std::fs::remove_dir_all(inc.former.data_dir()).unwrap();
    for (what, extra) in runs.iter().filter(|(w, _)| !w.starts_with("rewound")) {
        let args: Vec<&str> = extra.iter().map(String::as_str).collect();
        check(&format!("deleted, {what}"), compare(&inc.new, &args).await);
    }
}

/// A crash-stopped former primary never archived its last segment: the covered range ends
/// exactly where that segment starts, the rest is named as uncovered, the counts are what
/// pg_waldump finds before it ("at least"); the former's pg_wal alongside the archive
/// completes them; a second copy that disagrees is a finding.
#[tokio::test]
async fn crash_leaves_the_tail_uncovered_and_a_wal_copy_completes_it() {
    let Some(install) = install_or_skip("archive_crash") else {
        return;
    };
    let arch = Archive::new(pgbackrest("archive_crash"));
    let inc = incident(&install, &arch).await;
    inc.former.stop(StopMode::Immediate).await.unwrap();
    let wal = inc.former.data_dir().join("pg_wal");
    let truth = waldump_commits(&install, &wal, 1, inc.switchpoint);
    let covered: Vec<_> = truth
        .iter()
        .copied()
        .filter(|(_, l)| *l < inc.tail_start)
        .collect();
    assert!(
        !covered.is_empty() && covered.len() < truth.len(),
        "{truth:?}"
    );
    let tail_seg = seg_name(1, inc.tail_start);
    assert!(!arch.has(&tail_seg), "the crash left {tail_seg} unarchived");
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&wal).unwrap().flatten() {
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
        }
    }
    std::fs::remove_dir_all(inc.former.data_dir()).unwrap();

    let plain = arch.plain();
    let run = compare(&inc.new, &["--former-wal-archive", plain.to_str().unwrap()]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stderr, run.stdout);
    let j = run.json();
    let t = &j["transactions"];
    assert_eq!(j["verdict"], "loss");
    assert_eq!(j["incomplete"], true);
    assert_eq!(commits_of(t), covered);
    let c = &t["coverage"];
    assert_eq!(c["complete"], false, "{c}");
    assert_eq!(lsn_at(c, "covered_to"), inc.tail_start, "{c}");
    assert_eq!(lsn_at(c, "uncovered_from"), inc.tail_start, "{c}");
    assert!(
        c["uncovered_to"].is_null(),
        "the former's end is unknown: {c}"
    );
    assert_eq!(c["missing_segments"][0], tail_seg.as_str(), "{c}");
    assert!(c["segments"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["file"] == inc.switched.as_str()));
    let f = finding(&j, "wal_coverage_incomplete").expect("coverage finding");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains(&format!("at least {}", covered.len())),
        "{f}"
    );
    assert!(j["explanation"].as_str().unwrap().contains("lower bound"));

    // pgBackRest's archive-get gives the same coverage.
    if let Some(cmd) = arch.restore_command(inc.new.data_dir()) {
        let run = compare(&inc.new, &["--former-restore-command", &cmd]).await;
        assert_eq!(run.code, 1, "{}\n{}", run.stderr, run.stdout);
        let p = run.json();
        assert_eq!(commits_of(&p["transactions"]), covered);
        for k in [
            "complete",
            "covered_to",
            "uncovered_from",
            "uncovered_to",
            "missing_segments",
        ] {
            assert_eq!(p["transactions"]["coverage"][k], c[k], "pgBackRest: {k}");
        }
    }

    // The former's pg_wal copy and the archive together: everything, exactly.
    let both = [
        "--former-wal-dir",
        copy.path().to_str().unwrap(),
        "--former-wal-archive",
        plain.to_str().unwrap(),
    ];
    let run = compare(&inc.new, &both).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stderr, run.stdout);
    let j = run.json();
    assert_eq!(commits_of(&j["transactions"]), truth);
    assert_eq!(j["transactions"]["coverage"]["complete"], true);
    assert_eq!(j["incomplete"], false, "{}", j["findings"]);

    // An archive copy whose bytes differ from the pg_wal copy where both are valid.
    let bad = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&plain).unwrap().flatten() {
        std::fs::copy(e.path(), bad.path().join(e.file_name())).unwrap();
    }
    let victim = bad.path().join(&inc.switched);
    let mut bytes = std::fs::read(&victim).unwrap();
    let off = (inc.switchpoint.0 % SEG) as usize + 300;
    bytes[off] ^= 0x5A;
    std::fs::write(&victim, bytes).unwrap();
    let run = compare(
        &inc.new,
        &[
            "--former-wal-dir",
            copy.path().to_str().unwrap(),
            "--former-wal-archive",
            bad.path().to_str().unwrap(),
        ],
    )
    .await;
    let j = run.json();
    let f = finding(&j, "wal_sources_disagree").expect("disagreement finding");
    assert!(
        f["message"].as_str().unwrap().contains(&inc.switched),
        "{f}"
    );
    assert_eq!(
        commits_of(&j["transactions"]),
        truth,
        "the pg_wal copy was used"
    );
}

/// Three nodes: A (timeline 1) loses to B's promotion (timeline 2), then B, itself promoted
/// once, loses to C's (timeline 3). From the shared archive, with C as the new primary: B's
/// lost commits by default, A's with --former-timeline 1; both exact against pg_waldump.
#[tokio::test]
async fn two_promotions_and_a_former_primary_promoted_before() {
    let Some(install) = install_or_skip("archive_two_promotions") else {
        return;
    };
    let arch = Archive::new(pgbackrest("archive_two_promotions"));
    let a = Cluster::start_primary(&install, arch.options("a"))
        .await
        .unwrap();
    arch.create_stanza(&a);
    a.execute(
        "CREATE TABLE t(id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'base' FROM generate_series(1, 20) g;",
    )
    .await
    .unwrap();
    let b = a.create_standby(arch.options("b")).await.unwrap();
    let c = a.create_standby(arch.options("c")).await.unwrap();
    b.wait_caught_up(&a).await.unwrap();
    c.wait_caught_up(&a).await.unwrap();
    // C first: it must not get ahead of B's switchpoint to follow B later.
    c.cut_off().await.unwrap();
    b.cut_off().await.unwrap();
    for i in 0..4 {
        a.execute(&format!("INSERT INTO t VALUES ({}, 'lost on 1')", 100 + i))
            .await
            .unwrap();
    }
    assert_eq!(b.promote().await.unwrap(), TimelineId(2));
    c.follow(&b).await.unwrap();
    b.execute("INSERT INTO t VALUES (200, 'on 2, replicated'); SELECT pg_switch_wal();")
        .await
        .unwrap();
    c.wait_caught_up(&b).await.unwrap();
    c.cut_off().await.unwrap();
    for sql in [
        "INSERT INTO t VALUES (300, 'lost on 2')",
        "UPDATE t SET v = 'lost on 2' WHERE id = 1",
        "DELETE FROM t WHERE id = 2",
    ] {
        b.execute(sql).await.unwrap();
    }
    assert_eq!(c.promote().await.unwrap(), TimelineId(3));
    let h3 = c.history(TimelineId(3)).unwrap();
    let (x, y) = (h3[0].switchpoint, h3[1].switchpoint);

    // Live, B is the former primary: the reference.
    let live = compare(&c, &["--former-primary", &b.conninfo()]).await;
    assert_eq!(live.code, 1, "{}\n{}", live.stderr, live.stdout);
    let live = live.json();
    // Clean stops: each archives its last segment.
    let b_end = lsn_at(&live["divergence"], "former_end_lsn");
    b.stop(StopMode::Fast).await.unwrap();
    let a_end = a.current_wal_lsn().await.unwrap();
    a.stop(StopMode::Fast).await.unwrap();
    arch.wait_for(&seg_name(2, b_end), &c).await;
    arch.wait_for(&seg_name(1, a_end), &c).await;
    let truth_b = waldump_commits(&install, &b.data_dir().join("pg_wal"), 2, y);
    let truth_a = waldump_commits(&install, &a.data_dir().join("pg_wal"), 1, x);
    assert!(truth_b.len() >= 3, "{truth_b:?}");
    assert!(truth_a.len() >= 4, "{truth_a:?}");
    assert_eq!(commits_of(&live["transactions"]), truth_b);

    let plain = arch.plain();
    let plain = plain.to_str().unwrap();
    let mut sources = vec![vec!["--former-wal-archive".to_string(), plain.into()]];
    if let Some(cmd) = arch.restore_command(c.data_dir()) {
        sources.push(vec!["--former-restore-command".into(), cmd]);
    }
    for src in &sources {
        let mut args: Vec<&str> = src.iter().map(String::as_str).collect();
        let run = compare(&c, &args).await;
        assert_eq!(run.code, 1, "{}\n{}", run.stderr, run.stdout);
        let j = run.json();
        assert_eq!(j["divergence"]["former_timeline"], 2, "{src:?}");
        assert_eq!(lsn_at(&j["divergence"], "switchpoint_lsn"), y);
        assert_eq!(j["divergence"]["timeline_path"], serde_json::json!([2, 3]));
        assert_eq!(commits_of(&j["transactions"]), truth_b, "{src:?}");
        assert_eq!(
            tables_of(&j["transactions"]),
            tables_of(&live["transactions"])
        );

        args.extend(["--former-timeline", "1"]);
        let run = compare(&c, &args).await;
        assert_eq!(run.code, 1, "{}\n{}", run.stderr, run.stdout);
        let j = run.json();
        assert_eq!(j["divergence"]["former_timeline"], 1);
        assert_eq!(lsn_at(&j["divergence"], "switchpoint_lsn"), x);
        assert_eq!(
            j["divergence"]["timeline_path"],
            serde_json::json!([1, 2, 3])
        );
        assert_eq!(commits_of(&j["transactions"]), truth_a, "{src:?}");
    }
}

/// Bad archives: a restore command that fails, hangs or writes a truncated file, and an
/// archive of another cluster, each a one-line error naming the segment; a history file that
/// contradicts the new primary's is a finding, and the servers' history is used.
#[tokio::test]
async fn bad_archives_are_named() {
    let Some(install) = install_or_skip("archive_bad_input") else {
        return;
    };
    let arch = Archive::new(None);
    let inc = incident(&install, &arch).await;
    inc.former.stop(StopMode::Fast).await.unwrap();
    let first = seg_name(1, inc.switchpoint);
    let plain = arch.plain();
    let error_of = |run: &Run, what: &str| {
        assert_eq!(run.code, 3, "{what}: {}\n{}", run.stderr, run.stdout);
        assert!(run.stdout.is_empty(), "{what}: no report: {}", run.stdout);
        let errors: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{what}: {}", run.stderr);
        assert!(errors[0].contains(&first), "{what}: {}", run.stderr);
        errors[0].to_string()
    };

    let run = compare(
        &inc.new,
        &[
            "--former-restore-command",
            "echo 'stanza not found' >&2; exit 4 # %f %p",
        ],
    )
    .await;
    let e = error_of(&run, "failing");
    assert!(
        e.contains("status 4") && e.contains("stanza not found"),
        "{e}"
    );

    let t = Instant::now();
    let run = compare(
        &inc.new,
        &[
            "--former-restore-command",
            "sleep 600 # %f %p",
            "--restore-timeout",
            "1",
        ],
    )
    .await;
    let e = error_of(&run, "hanging");
    assert!(e.contains("timed out"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(60));

    let cmd = format!("head -c 100000 {}/%f > %p", plain.display());
    let run = compare(&inc.new, &["--former-restore-command", &cmd]).await;
    let e = error_of(&run, "truncated");
    assert!(e.contains("100000") && e.contains("truncated"), "{e}");

    // Another cluster's archive, with a file of the same name.
    let other_arch = Archive::new(None);
    let other = Cluster::start_primary(&install, other_arch.options("other"))
        .await
        .unwrap();
    let started = Instant::now();
    while !other_arch.has(&first) {
        assert!(started.elapsed() < Duration::from_secs(90));
        other
            .execute("CREATE TABLE IF NOT EXISTS x(i int); INSERT INTO x VALUES (1); SELECT pg_switch_wal();")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let run = compare(
        &inc.new,
        &["--former-wal-archive", other_arch.plain().to_str().unwrap()],
    )
    .await;
    let e = error_of(&run, "other cluster");
    assert!(e.contains("another cluster"), "{e}");

    // An archive without the lost WAL at all: inconclusive, naming the segment to look for.
    let empty = tempfile::tempdir().unwrap();
    let run = compare(
        &inc.new,
        &["--former-wal-archive", empty.path().to_str().unwrap()],
    )
    .await;
    assert_eq!(run.code, 2, "{}\n{}", run.stderr, run.stdout);
    let j = run.json();
    assert_eq!(j["verdict"], "inconclusive");
    assert_eq!(j["incomplete"], true);
    let f = finding(&j, "wal_unreadable").expect("unreadable finding");
    assert!(f["message"].as_str().unwrap().contains(&first), "{f}");

    // A history file that contradicts the new primary's.
    let hist = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&plain).unwrap().flatten() {
        std::fs::copy(e.path(), hist.path().join(e.file_name())).unwrap();
    }
    std::fs::write(
        hist.path().join("00000002.history"),
        "1\t0/1000000\tno recovery target specified\n",
    )
    .unwrap();
    let run = compare(
        &inc.new,
        &["--former-wal-archive", hist.path().to_str().unwrap()],
    )
    .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stderr, run.stdout);
    let j = run.json();
    let f = finding(&j, "history_disagrees").expect("history finding");
    assert!(
        f["message"].as_str().unwrap().contains("00000002.history"),
        "{f}"
    );
    assert_eq!(lsn_at(&j["divergence"], "switchpoint_lsn"), inc.switchpoint);
    assert!(j["transactions"]["lost_commits"].as_u64().unwrap() >= 5);
}

/// The former primary on another branch, whose lost range crosses its own promotion: A
/// (timeline 1) streams to B and C; C is cut off first, B replays two more segments' worth of
/// A's commits, then B is promoted (timeline 2) and commits more; then C is promoted from
/// timeline 1 (timeline 3). With C as the new primary and B as the former (--former-timeline 2,
/// its history from the archive), the lost range runs from C's switchpoint along timeline 1
/// (A's segments in the archive) across B's switch into timeline 2: exact against pg_waldump
/// on B's own pg_wal.
#[tokio::test]
async fn a_former_primary_on_another_branch_crosses_its_own_switch() {
    let Some(install) = install_or_skip("archive_branch") else {
        return;
    };
    let arch = Archive::new(None);
    let a = Cluster::start_primary(&install, arch.options("a"))
        .await
        .unwrap();
    a.execute("CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'base');")
        .await
        .unwrap();
    let b = a.create_standby(arch.options("b")).await.unwrap();
    let c = a.create_standby(arch.options("c")).await.unwrap();
    b.wait_caught_up(&a).await.unwrap();
    c.wait_caught_up(&a).await.unwrap();
    c.cut_off().await.unwrap();
    for sql in [
        "INSERT INTO t VALUES (100, 'B replays, C never')",
        "INSERT INTO t VALUES (101, 'B replays, C never')",
        "SELECT pg_switch_wal()",
        "INSERT INTO t VALUES (102, 'B replays, C never')",
    ] {
        a.execute(sql).await.unwrap();
    }
    b.wait_caught_up(&a).await.unwrap();
    b.cut_off().await.unwrap();
    a.execute("INSERT INTO t VALUES (150, 'only A')")
        .await
        .unwrap();
    assert_eq!(b.promote().await.unwrap(), TimelineId(2));
    for sql in [
        "INSERT INTO t VALUES (200, 'B on 2')",
        "UPDATE t SET v = 'B on 2' WHERE id = 1",
    ] {
        b.execute(sql).await.unwrap();
    }
    // PostgreSQL picks the next timeline id not taken in the archive (through the
    // restore_command); C has none, so it is shown B's history file directly.
    arch.wait_for("00000002.history", &b).await;
    let h2 = c.data_dir().join("pg_wal/00000002.history");
    std::fs::copy(arch.plain().join("00000002.history"), &h2).unwrap();
    chown_postgres(&h2);
    assert_eq!(c.promote().await.unwrap(), TimelineId(3));
    let z = c.history(TimelineId(3)).unwrap()[0].switchpoint;
    let x = b.history(TimelineId(2)).unwrap()[0].switchpoint;
    assert!(
        z.0 / SEG < x.0 / SEG,
        "the range crosses a segment before B's switch: {z} {x}"
    );
    let b_end = b.current_wal_lsn().await.unwrap();
    let a_end = a.current_wal_lsn().await.unwrap();
    b.stop(StopMode::Fast).await.unwrap();
    a.stop(StopMode::Fast).await.unwrap();
    arch.wait_for(&seg_name(2, b_end), &c).await;
    arch.wait_for(&seg_name(1, a_end), &c).await;
    arch.wait_for("00000002.history", &c).await;

    // Truth: B's own WAL, timeline 1 from Z up to its switch segment, then timeline 2.
    let wal = b.data_dir().join("pg_wal");
    let x_seg = Lsn(x.0 - x.0 % SEG);
    let mut truth: Vec<_> = waldump_commits(&install, &wal, 1, z)
        .into_iter()
        .filter(|(_, l)| *l < x_seg)
        .collect();
    truth.extend(waldump_commits(&install, &wal, 2, x_seg));
    truth.retain(|(_, l)| *l >= z);
    assert!(truth.len() >= 5, "{truth:?}");

    let plain = arch.plain();
    let run = compare(
        &c,
        &[
            "--former-wal-archive",
            plain.to_str().unwrap(),
            "--former-timeline",
            "2",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stderr, run.stdout);
    let j = run.json();
    assert_eq!(j["divergence"]["former_timeline"], 2);
    assert_eq!(lsn_at(&j["divergence"], "switchpoint_lsn"), z);
    assert_eq!(j["divergence"]["timeline_path"], serde_json::json!([1, 3]));
    assert_eq!(commits_of(&j["transactions"]), truth);
    let files: Vec<&str> = j["transactions"]["coverage"]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["file"].as_str().unwrap())
        .collect();
    assert!(files.contains(&seg_name(1, z).as_str()), "{files:?}");
    assert!(files.contains(&seg_name(2, x).as_str()), "{files:?}");
}
