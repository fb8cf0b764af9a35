//! Cron mode end to end against real clusters: `cluster`, `--state` and `--format prometheus`.
//! Expected numbers come from the sandbox (history file on disk, the isolated former primary's
//! replay position), never from the tool itself; each exit code of the README's table has a
//! test here.

mod util;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use failover_verify::lsn::TimelineId;
use failover_verify::sandbox::{Cluster, ClusterOptions, LossyFailover, LossyFailoverSpec};
use util::{closed_port, install_or_skip, lsn_at, run_tool, Run};

/// A standby that reports its positions every second, so `pg_stat_replication` settles fast.
fn standby_opts(name: &str) -> ClusterOptions {
    ClusterOptions::new(name).setting("wal_receiver_status_interval", "1s")
}

/// One sample of a metrics text: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses Prometheus text format line by line (a second, independent reading of the grammar):
/// every sample's family has a `# TYPE` before it, labels are `k="v"` with escapes, values are
/// floats, no timestamps.
fn parse_metrics(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "no trailing newline: {text:?}");
    let mut typed = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(line);
            assert_eq!(kind, "gauge", "{line}");
            assert!(typed.insert(name.to_string()), "TYPE twice: {line}");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let open = line.find('{').expect("every sample has labels");
        let close = line.rfind('}').expect(line);
        let name = &line[..open];
        assert!(typed.contains(name), "sample before TYPE: {line}");
        let value = line[close + 1..].strip_prefix(' ').expect(line);
        assert!(!value.contains(' '), "timestamp in {line}");
        let mut labels = BTreeMap::new();
        let mut chars = line[open + 1..close].chars().peekable();
        while chars.peek().is_some() {
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            assert_eq!(chars.next(), Some('"'), "{line}");
            let mut v = String::new();
            loop {
                match chars.next().expect(line) {
                    '\\' => match chars.next().expect(line) {
                        'n' => v.push('\n'),
                        c => v.push(c),
                    },
                    '"' => break,
                    c => v.push(c),
                }
            }
            labels.insert(key, v);
            if chars.peek() == Some(&',') {
                chars.next();
            }
        }
        out.push(Sample {
            name: name.to_string(),
            labels,
            value: value.parse().unwrap_or_else(|_| panic!("value in {line}")),
        });
    }
    out
}

/// The value of the one sample named `name` whose labels include `label` (if given).
fn metric(samples: &[Sample], name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k).map(String::as_str) == Some(v)))
        .collect();
    assert!(found.len() <= 1, "{name} {label:?} matches {found:?}");
    found.first().map(|s| s.value)
}

fn assert_code(run: &Run, code: i32, what: &str) {
    assert_eq!(
        run.code, code,
        "{what}: exit code\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
}

/// Exit 0: a healthy primary with two streaming standbys, both listed with lag 0 once caught
/// up; a streaming standby passed as `--node` is on the history; an inactive slot is a warning
/// that does not change the exit code. `compare` with only `--new-primary` is the same check.
#[tokio::test]
async fn cluster_lists_streaming_standbys_with_lag_zero_and_exits_0() {
    let Some(install) = install_or_skip("cluster_healthy") else {
        return;
    };
    let primary = Cluster::start_primary(&install, ClusterOptions::new("primary"))
        .await
        .unwrap();
    let s1 = primary.create_standby(standby_opts("s1")).await.unwrap();
    let s2 = primary.create_standby(standby_opts("s2")).await.unwrap();
    primary
        .execute(
            "CREATE TABLE t(id int); INSERT INTO t SELECT generate_series(1, 1000);
             SELECT pg_create_physical_replication_slot('gone_node', true);",
        )
        .await
        .unwrap();
    s1.wait_caught_up(&primary).await.unwrap();
    s2.wait_caught_up(&primary).await.unwrap();

    // The standbys report their replay position every second: poll until both show lag 0.
    let deadline = Instant::now() + Duration::from_secs(45);
    let (run, j) = loop {
        let run = run_tool(&[
            "cluster",
            "--primary",
            &primary.conninfo(),
            "--node",
            &s1.conninfo(),
            "--node",
            &primary.conninfo(),
            "--format",
            "json",
        ])
        .await;
        assert_code(&run, 0, "healthy cluster");
        let j = run.json();
        let lags: Vec<Option<u64>> = j["standbys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["lag_bytes"].as_u64())
            .collect();
        if lags == [Some(0), Some(0)] || Instant::now() > deadline {
            break (run, j);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(j["kind"], "cluster");
    assert_eq!(j["verdict"], "healthy", "{}", run.stdout);
    let standbys = j["standbys"].as_array().unwrap();
    let names: Vec<&str> = standbys
        .iter()
        .map(|s| s["application_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["s1", "s2"]);
    for s in standbys {
        assert_eq!(s["state"], "streaming", "{s}");
        assert_eq!(s["sync_state"], "async", "{s}");
        assert_eq!(s["client_addr"], "127.0.0.1", "{s}");
        assert_eq!(s["lag_bytes"], 0, "caught up: {s}");
        assert_eq!(lsn_at(s, "replay_lsn"), lsn_at(&j, "current_lsn"), "{s}");
    }
    // The slot nobody uses: listed, inactive, a warning naming it.
    let slots = j["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 1, "{slots:?}");
    assert_eq!(slots[0]["slot_name"], "gone_node");
    assert_eq!(slots[0]["active"], false);
    let restart = lsn_at(&slots[0], "restart_lsn");
    assert_eq!(
        slots[0]["lag_bytes"].as_u64().unwrap(),
        lsn_at(&j, "current_lsn").0 - restart.0
    );
    let findings = j["findings"].as_array().unwrap();
    let slot_warning = findings
        .iter()
        .find(|f| f["id"] == "inactive_slot")
        .expect("inactive slot finding");
    assert_eq!(slot_warning["severity"], "warning");
    assert!(slot_warning["message"]
        .as_str()
        .unwrap()
        .contains("gone_node"));
    // The standby inspected directly is on the primary's timeline; the primary itself, listed
    // as a member like the others, is too.
    let nodes = j["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["status"], "on_history", "{}", nodes[0]);
    assert_eq!(nodes[0]["address"], format!("127.0.0.1:{}", s1.port()));
    assert_eq!(nodes[0]["node"]["facts"]["in_recovery"], true);
    assert_eq!(nodes[1]["status"], "on_history", "{}", nodes[1]);
    assert!(nodes[1]["explanation"]
        .as_str()
        .unwrap()
        .contains("the primary itself"));

    // `compare` given only --new-primary runs the same check.
    let routed = run_tool(&["compare", "--new-primary", &primary.conninfo()]).await;
    assert_code(&routed, 0, "compare without a former primary");
    assert!(
        routed
            .stdout
            .starts_with("failover-verify cluster: HEALTHY"),
        "{}",
        routed.stdout
    );
    assert!(routed.stdout.contains("s1") && routed.stdout.contains("s2"));

    // A standby given as --primary (a stale name after a failover) is not a primary: exit 2.
    let stale = run_tool(&["cluster", "--primary", &s1.conninfo(), "--format", "json"]).await;
    assert_code(&stale, 2, "--primary in recovery");
    let sj = stale.json();
    assert_eq!(sj["verdict"], "inconclusive");
    assert!(sj["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["id"] == "primary_in_recovery"));

    // Metrics: two standbys, their lag, the inactive slot, healthy.
    let prom = run_tool(&[
        "cluster",
        "--primary",
        &primary.conninfo(),
        "--format",
        "prometheus",
    ])
    .await;
    assert_code(&prom, 0, "cluster prometheus");
    let m = parse_metrics(&prom.stdout);
    assert_eq!(
        metric(&m, "failover_verify_standbys", None),
        Some(2.0),
        "{}",
        prom.stdout
    );
    assert_eq!(
        metric(&m, "failover_verify_diverged_nodes", None),
        Some(0.0)
    );
    assert_eq!(
        metric(&m, "failover_verify_verdict", Some(("verdict", "healthy"))),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "failover_verify_slot_active",
            Some(("slot", "gone_node"))
        ),
        Some(0.0)
    );
    assert_eq!(metric(&m, "failover_verify_timeline", None), Some(1.0));
    let sysid = primary.system_identifier().await.unwrap().to_string();
    assert!(m.iter().all(|s| s.labels["system_identifier"] == sysid));
}

/// Exit 1: after a forced promotion, the former primary passed as `--node` is diverged, with
/// the lost bytes `compare` reports; the Prometheus output of both commands carries the same
/// numbers.
#[tokio::test]
async fn cluster_flags_the_diverged_former_primary_with_the_bytes_compare_reports() {
    let Some(install) = install_or_skip("cluster_diverged") else {
        return;
    };
    let f = LossyFailover::build(&install, LossyFailoverSpec::with_lost_commits(4))
        .await
        .unwrap();
    let (new, former) = (f.new_primary.conninfo(), f.former_primary.conninfo());
    let former_addr = format!("127.0.0.1:{}", f.former_primary.port());

    // The former primary still runs as a primary: diverged, at least its lost workload.
    let run = run_tool(&[
        "cluster",
        "--primary",
        &new,
        "--node",
        &former,
        "--format",
        "json",
    ])
    .await;
    assert_code(&run, 1, "diverged former primary (running)");
    let j = run.json();
    assert_eq!(j["verdict"], "diverged");
    let node = &j["nodes"][0];
    assert_eq!(node["status"], "diverged", "{node}");
    assert_eq!(node["address"], former_addr);
    let d = &node["divergence"];
    assert_eq!(lsn_at(d, "switchpoint_lsn"), f.switchpoint);
    assert_eq!(d["former_timeline"], f.old_timeline.0);
    assert!(d["lost_wal_bytes"].as_u64().unwrap() >= f.former_end_lsn.0 - f.switchpoint.0);
    let critical = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == "diverged_node")
        .expect("diverged_node finding");
    assert_eq!(critical["severity"], "critical");
    assert!(critical["message"].as_str().unwrap().contains(&former_addr));

    // Isolated (the safe way to keep it), its end of WAL stops moving: exact numbers.
    let end = f.former_primary.isolate_as_standby().await.unwrap();
    let expected = end.0 - f.switchpoint.0;
    assert!(expected > 4 * 100, "4 commits write more than 400 bytes");

    let cluster = run_tool(&[
        "cluster",
        "--primary",
        &new,
        "--node",
        &former,
        "--format",
        "json",
    ])
    .await;
    assert_code(&cluster, 1, "diverged former primary (isolated)");
    let cj = cluster.json();
    let cd = &cj["nodes"][0]["divergence"];
    assert_eq!(cj["nodes"][0]["status"], "diverged");
    assert_eq!(lsn_at(cd, "former_end_lsn"), end);
    assert_eq!(cd["lost_wal_bytes"].as_u64(), Some(expected));

    let compare = run_tool(&[
        "compare",
        "--new-primary",
        &new,
        "--former-primary",
        &former,
        "--format",
        "json",
    ])
    .await;
    assert_code(&compare, 1, "compare");
    let pj = compare.json();
    assert_eq!(pj["verdict"], "loss");
    assert_eq!(
        pj["divergence"]["lost_wal_bytes"], cd["lost_wal_bytes"],
        "cluster and compare agree on the lost bytes"
    );
    let lost_commits = pj["transactions"]["lost_commits"].as_u64();
    assert_eq!(lost_commits, Some(4), "{}", pj["transactions"]);

    // The same numbers as metrics.
    let prom = run_tool(&[
        "compare",
        "--new-primary",
        &new,
        "--former-primary",
        &former,
        "--format",
        "prometheus",
    ])
    .await;
    assert_code(&prom, 1, "compare prometheus");
    let m = parse_metrics(&prom.stdout);
    assert_eq!(
        metric(&m, "failover_verify_lost_wal_bytes", None),
        Some(expected as f64)
    );
    assert_eq!(
        metric(&m, "failover_verify_lost_transactions", None),
        Some(4.0)
    );
    assert_eq!(
        metric(&m, "failover_verify_timeline", None),
        Some(f64::from(f.new_timeline.0))
    );
    assert_eq!(
        metric(&m, "failover_verify_verdict", Some(("verdict", "loss"))),
        Some(1.0)
    );
    assert_eq!(
        m.iter()
            .filter(|s| s.name == "failover_verify_verdict" && s.value == 1.0)
            .count(),
        1
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let ts = metric(&m, "failover_verify_last_run_timestamp_seconds", None).unwrap();
    assert!(ts <= now && ts > now - 120.0, "{ts} vs now {now}");
    let duration = metric(&m, "failover_verify_duration_seconds", None).unwrap();
    assert!((0.0..120.0).contains(&duration), "{duration}");
    for s in &m {
        assert_eq!(s.labels["system_identifier"], f.system_id.to_string());
        assert_eq!(s.labels["command"], "compare");
    }

    let prom = run_tool(&[
        "cluster",
        "--primary",
        &new,
        "--node",
        &former,
        "--format",
        "prometheus",
    ])
    .await;
    assert_code(&prom, 1, "cluster prometheus");
    let m = parse_metrics(&prom.stdout);
    assert_eq!(
        metric(&m, "failover_verify_diverged_nodes", None),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "failover_verify_lost_wal_bytes",
            Some(("node", &former_addr))
        ),
        Some(expected as f64)
    );
    assert_eq!(
        metric(&m, "failover_verify_verdict", Some(("verdict", "diverged"))),
        Some(1.0)
    );
}

/// Exit 2 for an unreachable `--node` (the message names host:port); exit 3 for an
/// unreachable primary and for a `--node` that does not parse.
#[tokio::test]
async fn unreachable_node_is_exit_2_and_unreachable_primary_is_exit_3() {
    let Some(install) = install_or_skip("cluster_unreachable") else {
        return;
    };
    let primary = Cluster::start_primary(&install, ClusterOptions::new("primary"))
        .await
        .unwrap();
    let port = closed_port();
    let gone = format!("host=127.0.0.1 port={port} user=postgres connect_timeout=3");
    let run = run_tool(&["cluster", "--primary", &primary.conninfo(), "--node", &gone]).await;
    assert_code(&run, 2, "unreachable --node");
    assert!(
        run.stdout
            .starts_with("failover-verify cluster: INCONCLUSIVE"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("127.0.0.1:{port}")),
        "the message names host:port:\n{}",
        run.stdout
    );
    let json = run_tool(&[
        "cluster",
        "--primary",
        &primary.conninfo(),
        "--node",
        &gone,
        "--format",
        "json",
    ])
    .await;
    assert_code(&json, 2, "unreachable --node, json");
    let j = json.json();
    assert_eq!(j["verdict"], "inconclusive");
    assert_eq!(j["nodes"][0]["status"], "unreadable");
    assert!(j["nodes"][0]["node"]["error"]
        .as_str()
        .unwrap()
        .contains(&format!("127.0.0.1:{port}")));

    let run = run_tool(&["cluster", "--primary", &gone]).await;
    assert_code(&run, 3, "unreachable primary");
    assert!(run.stdout.is_empty(), "no report: {}", run.stdout);
    assert!(
        run.stderr.starts_with("error: primary:")
            && run.stderr.contains(&format!("127.0.0.1:{port}")),
        "{}",
        run.stderr
    );

    let run = run_tool(&[
        "cluster",
        "--primary",
        &primary.conninfo(),
        "--node",
        "port=notaport",
    ])
    .await;
    assert_code(&run, 3, "--node that does not parse");
    assert!(run.stderr.contains("--node"), "{}", run.stderr);
}

/// This process's umask, from /proc/self/status (read-only, unlike umask(2)).
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .expect("Umask in /proc/self/status");
    u32::from_str_radix(line.trim(), 8).unwrap()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The cron contract: with `--state`, the first run after a lossy failover alerts (exit 1,
/// report printed, state recorded), later runs on the same timeline are quiet (exit 0, no
/// output, state untouched; `--output` is still refreshed), and a second promotion
/// (timeline 3) alerts again. Same for `cluster` with its own entry.
#[tokio::test]
async fn state_reports_each_failover_once() {
    let Some(install) = install_or_skip("cron_state") else {
        return;
    };
    let f = LossyFailover::build(&install, LossyFailoverSpec::with_lost_commits(2))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let state_s = state.to_str().unwrap();
    let former = f.former_primary.conninfo();
    let compare = |new: String, extra: Vec<String>| {
        let former = former.clone();
        async move {
            let mut args: Vec<String> = [
                "compare",
                "--new-primary",
                &new,
                "--former-primary",
                &former,
                "--state",
                state_s,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(extra);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_tool(&args).await
        }
    };

    // 1. First run after the failover: alert.
    let first = compare(f.new_primary.conninfo(), vec![]).await;
    assert_code(&first, 1, "first run");
    assert!(
        first.stdout.starts_with("failover-verify: LOSS"),
        "{}",
        first.stdout
    );
    let recorded: serde_json::Value = serde_json::from_slice(&read(&state)).unwrap();
    let entry = &recorded["clusters"][f.system_id.to_string()]["compare"];
    assert_eq!(entry["timeline"], f.new_timeline.0, "{recorded}");
    assert_eq!(entry["verdict"], "loss");
    let bytes_after_first = read(&state);

    // 2. Same timeline, same verdict: quiet, exit 0, state untouched.
    let second = compare(f.new_primary.conninfo(), vec![]).await;
    assert_code(&second, 0, "second run");
    assert!(second.stdout.is_empty(), "quiet: {}", second.stdout);
    assert!(second.stderr.is_empty(), "quiet: {}", second.stderr);
    assert_eq!(read(&state), bytes_after_first);
    // -v says why it is quiet, on stderr only.
    let verbose = compare(f.new_primary.conninfo(), vec!["-v".into()]).await;
    assert_code(&verbose, 0, "verbose quiet run");
    assert!(verbose.stdout.is_empty());
    assert!(
        verbose
            .stderr
            .lines()
            .filter(|l| l.contains("already reported"))
            .count()
            == 1
            && verbose
                .stderr
                .lines()
                .all(|l| l.contains("already reported") || l.starts_with("rows: ")),
        "{}",
        verbose.stderr
    );
    // --output is refreshed even when quiet, so metrics never go stale.
    let prom_path = dir.path().join("failover_verify.prom");
    let quiet_prom = compare(
        f.new_primary.conninfo(),
        vec![
            "--format".into(),
            "prometheus".into(),
            "--output".into(),
            prom_path.to_str().unwrap().into(),
        ],
    )
    .await;
    assert_code(&quiet_prom, 0, "quiet run with --output");
    assert!(quiet_prom.stdout.is_empty());
    let m = parse_metrics(&String::from_utf8(read(&prom_path)).unwrap());
    assert_eq!(
        metric(&m, "failover_verify_verdict", Some(("verdict", "loss"))),
        Some(1.0)
    );
    // Created like any file (0666 minus the umask), so node_exporter, another user, reads it.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&prom_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666 & !umask(), "mode {mode:o}");
    assert_eq!(
        metric(&m, "failover_verify_timeline", None),
        Some(f64::from(f.new_timeline.0))
    );
    assert_eq!(read(&state), bytes_after_first);

    // The cluster check keeps its own entry: it alerts once too.
    let cluster = |extra: &'static str| {
        let (new, former) = (f.new_primary.conninfo(), f.former_primary.conninfo());
        let state = state_s.to_string();
        async move {
            let mut args = vec![
                "cluster",
                "--primary",
                &new,
                "--node",
                &former,
                "--state",
                &state,
            ];
            if !extra.is_empty() {
                args.push(extra);
            }
            run_tool(&args).await
        }
    };
    let c1 = cluster("").await;
    assert_code(&c1, 1, "cluster, first run");
    assert!(c1.stdout.starts_with("failover-verify cluster: DIVERGED"));
    let c2 = cluster("").await;
    assert_code(&c2, 0, "cluster, second run");
    assert!(c2.stdout.is_empty() && c2.stderr.is_empty(), "{c2:?}");

    // 3. A second promotion: a standby of the new primary becomes timeline 3.
    let third = f
        .new_primary
        .create_standby(ClusterOptions::new("third"))
        .await
        .unwrap();
    third.wait_caught_up(&f.new_primary).await.unwrap();
    assert_eq!(third.promote().await.unwrap(), TimelineId(3));
    let again = compare(third.conninfo(), vec![]).await;
    assert_code(&again, 1, "run after the second promotion");
    assert!(
        again.stdout.starts_with("failover-verify: LOSS"),
        "{}",
        again.stdout
    );
    assert!(
        again.stderr.contains("new since the last report"),
        "{}",
        again.stderr
    );
    let recorded: serde_json::Value = serde_json::from_slice(&read(&state)).unwrap();
    let sysid = f.system_id.to_string();
    assert_eq!(recorded["clusters"][&sysid]["compare"]["timeline"], 3);
    assert_eq!(
        recorded["clusters"][&sysid]["cluster"]["timeline"], f.new_timeline.0,
        "the cluster entry is its own"
    );
    let quiet_again = compare(third.conninfo(), vec![]).await;
    assert_code(&quiet_again, 0, "quiet on timeline 3");
    assert!(quiet_again.stdout.is_empty());
}

/// Exit 3 for a state file that cannot be used, before any server is contacted, with a
/// one-line error naming the file, and the file left exactly as it was.
#[tokio::test]
async fn corrupt_state_file_is_exit_3_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let garbage = b"{\"format\": \"failover-verify-state\", \"version\": 1, \"clus";
    std::fs::write(&state, garbage).unwrap();
    let modified = std::fs::metadata(&state).unwrap().modified().unwrap();
    // The primary does not exist: had the tool connected first, the error would name it.
    let nowhere = format!("host=127.0.0.1 port={} connect_timeout=2", closed_port());
    for args in [
        vec!["cluster", "--primary", &nowhere],
        vec!["compare", "--new-primary", &nowhere],
        vec![
            "compare",
            "--new-primary",
            &nowhere,
            "--former-primary",
            &nowhere,
        ],
    ] {
        let mut args = args.clone();
        args.extend(["--state", state.to_str().unwrap()]);
        let run = run_tool(&args).await;
        assert_code(&run, 3, "corrupt state file");
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
        assert!(
            run.stderr.starts_with("error: state file ")
                && run.stderr.contains(state.to_str().unwrap()),
            "{}",
            run.stderr
        );
        assert_eq!(read(&state), garbage, "file untouched");
        assert_eq!(
            std::fs::metadata(&state).unwrap().modified().unwrap(),
            modified
        );
    }
    // A state file that is a directory cannot be read: the same.
    let run = run_tool(&[
        "cluster",
        "--primary",
        &nowhere,
        "--state",
        dir.path().to_str().unwrap(),
    ])
    .await;
    assert_code(&run, 3, "state file is a directory");
    assert!(run.stderr.contains("cannot read it"), "{}", run.stderr);
    // A state file in a directory that does not exist fails the same way.
    let missing = dir.path().join("no/such/dir/state.json");
    let run = run_tool(&[
        "cluster",
        "--primary",
        &nowhere,
        "--state",
        missing.to_str().unwrap(),
    ])
    .await;
    assert_code(&run, 3, "state directory missing");
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    assert!(!missing.exists());
}

/// Splits a command line the way sh does for the examples: words, and single-quoted strings.
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut in_word) = (false, false);
    for c in s.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(!quoted, "unbalanced quote in {s}");
    if in_word {
        words.push(word);
    }
    words
}

/// The examples stay honest: every failover-verify command line in the crontab and the
/// systemd service parses with the real flag definitions, and uses the cron-mode flags.
#[test]
fn example_crontab_and_systemd_unit_use_flags_that_exist() {
    use clap::Parser;
    use failover_verify::cli::Cli;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut commands = Vec::new();
    let cron = std::fs::read_to_string(root.join("failover-verify.cron")).unwrap();
    for line in cron.lines() {
        // Active lines, and the commented-out schedule lines (`#*/15 ...`).
        let line = line
            .strip_prefix('#')
            .filter(|l| l.starts_with('*'))
            .unwrap_or(line);
        if line.starts_with('#') || !line.contains(" failover-verify ") {
            continue;
        }
        let start = line.find(" failover-verify ").unwrap() + 1;
        let cmd = &line[start..];
        let cmd = cmd
            .split(" || ")
            .next()
            .unwrap()
            .split("; ")
            .next()
            .unwrap();
        commands.push(cmd.to_string());
    }
    let service = std::fs::read_to_string(root.join("systemd/failover-verify.service")).unwrap();
    let exec = service
        .replace("\\\n", " ")
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=").map(str::to_string))
        .expect("ExecStart");
    commands.push(exec.replace("/usr/local/bin/failover-verify", "failover-verify"));
    assert_eq!(commands.len(), 5, "{commands:#?}");
    for cmd in &commands {
        let words = shell_words(cmd);
        assert_eq!(words[0], "failover-verify", "{cmd}");
        if let Err(e) = Cli::try_parse_from(&words) {
            panic!("{cmd}\n{e}");
        }
    }
    assert!(commands
        .iter()
        .all(|c| c.contains("--state ") || c.contains("--format prometheus")));
    assert!(commands
        .iter()
        .any(|c| c.contains("--format prometheus --output /var/lib/node_exporter/textfile/")));
    assert!(exec.contains("--state") && exec.contains("--format prometheus"));
}
