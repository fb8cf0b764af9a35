//! `compare --patroni` against a real Patroni cluster: etcd (Debian's etcd-server 3.4) and
//! three Patroni members (PyPI, installed by `.ci/install-patroni`) running PostgreSQL as the
//! `postgres` OS user, in synchronous mode, without pg_rewind (the harness:
//! tests/patroni_util, shared with tests/patroni_guard.rs).
//!
//! The lossy failover: the asynchronous replica is cut off from WAL with Patroni's own
//! `nostream` tag (set in its YAML and applied with `POST /reload`: Patroni empties
//! `primary_conninfo` itself, so it does not undo the cut the way it undoes an
//! `ALTER SYSTEM SET primary_conninfo = ''`), the leader commits, and
//! `patronictl failover --candidate <async> --force` promotes the replica that missed those
//! commits. Patroni demotes the former leader and, with `use_pg_rewind: false` and
//! `remove_data_directory_on_diverged_timelines: false`, leaves it running diverged on the
//! old timeline with its WAL intact. The tool then has to find both nodes from the REST API
//! alone and count exactly the commits made after the cut.
//!
//! The error tests (unreachable URL, a web server that is not Patroni, a Patroni that answers
//! 503) need no Patroni and always run.

mod patroni_util;
mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use patroni_util::*;
use util::{closed_port, run_tool, Run};

/// Transactions the leader commits after the asynchronous replica is cut off.
const LOST: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_lossy_failover_to_the_async_replica_is_found_and_accounted() {
    let Some(tools) = tools_or_skip("patroni_lossy_failover_to_the_async_replica") else {
        return;
    };
    let started = Instant::now();
    // node-c bootstraps and leads: were the tool to fall back on name order, it would pick
    // the former synchronous standby (node-a or node-b) and this test would fail.
    let c = tokio::task::block_in_place(|| {
        PatroniCluster::start(tools, &["node-c", "node-a", "node-b"])
    });
    let leader_rest = c.members[0].rest();
    let healthy = tokio::task::block_in_place(|| {
        c.wait_json(
            "a leader, a sync standby and a streaming async replica",
            150,
            &leader_rest,
            "/cluster",
            |v| {
                let ms = members(v);
                ms.len() == 3
                    && ms.iter().filter(|m| m["role"] == "leader").count() == 1
                    && ms.iter().filter(|m| m["role"] == "sync_standby").count() == 1
                    && ms
                        .iter()
                        .filter(|m| m["role"] != "leader")
                        .all(|m| m["state"] == "streaming")
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
    let sync = name_of("sync_standby");
    let async_name = ms
        .iter()
        .find(|m| m["role"] == "replica")
        .and_then(|m| m["name"].as_str())
        .expect("an async replica")
        .to_string();
    assert_eq!(former, "node-c");
    eprintln!(
        "patroni test: leader {former}, sync {sync}, async {async_name} ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    let leader_port = c.member(&former).pg_port;
    let async_idx = c.members.iter().position(|m| m.name == async_name).unwrap();
    let async_port = c.members[async_idx].pg_port;

    // A table both sides know, replayed by the async replica before the cut.
    sql(
        leader_port,
        "CREATE TABLE patroni_lost (id int PRIMARY KEY, note text)",
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
        async_port,
        &format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"),
        |v| v.as_deref() == Some("t"),
    )
    .await;

    // Cut the async replica off: Patroni's nostream tag, applied by a reload of its config.
    c.write_config(async_idx, true);
    let reload = agent()
        .post(format!("{}/reload", c.members[async_idx].rest()))
        .send_empty()
        .expect("POST /reload");
    assert!(
        reload.status().is_success(),
        "POST /reload: {}",
        reload.status()
    );
    wait_sql(
        "the async replica's walreceiver to stop",
        60,
        async_port,
        "SELECT (SELECT count(*) FROM pg_stat_wal_receiver) = 0 AND current_setting('primary_conninfo') = ''",
        |v| v.as_deref() == Some("t"),
    )
    .await;
    let cut_at = sql(async_port, "SELECT pg_last_wal_replay_lsn()::text")
        .await
        .unwrap()
        .unwrap();

    // Commits the async replica never sees (the sync standby acknowledges each one).
    for i in 1..=LOST {
        sql(
            leader_port,
            &format!("INSERT INTO patroni_lost VALUES ({i}, 'committed after the cut')"),
        )
        .await
        .unwrap();
    }
    let leader_end = sql(leader_port, "SELECT pg_current_wal_lsn()::text")
        .await
        .unwrap()
        .unwrap();
    let still_cut = sql(
        async_port,
        &format!(
            "SELECT pg_last_wal_replay_lsn() = '{cut_at}'::pg_lsn AND pg_last_wal_replay_lsn() < '{leader_end}'::pg_lsn"
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        still_cut.as_deref(),
        Some("t"),
        "the async replica stayed at {cut_at}"
    );

    // The forced failover to the replica that missed them.
    let mut ctl = Command::new(c.tools.venv.join("bin/patronictl"));
    ctl.arg("-c").arg(c.member(&former).config()).args([
        "failover",
        "--candidate",
        &async_name,
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
    // patronictl exits 0 even when the REST API answered `503, Failover failed`.
    assert!(
        text.contains("Successfully failed over") && !text.contains("Failover failed"),
        "patronictl failover: {text}"
    );

    // The async replica leads timeline 2; the former leader is back, diverged, on timeline 1.
    let after = tokio::task::block_in_place(|| {
        c.wait_json(
            "the new leader on timeline 2 and the former leader running on timeline 1",
            120,
            &c.member(&sync).rest(),
            "/cluster",
            |v| {
                let ms = members(v);
                let find = |n: &str| ms.iter().find(|m| m["name"] == n).cloned();
                matches!(find(&async_name), Some(m) if m["role"] == "leader" && m["state"] == "running" && m["timeline"] == 2)
                    && matches!(find(&former), Some(m) if m["state"] == "running" && m["timeline"] == 1)
            },
        )
    });
    let history = tokio::task::block_in_place(|| {
        c.wait_json(
            "the promotion in /history",
            60,
            &c.member(&async_name).rest(),
            "/history",
            |v| v.as_array().is_some_and(|a| !a.is_empty()),
        )
    });
    wait_sql(
        "the former leader to accept connections",
        60,
        c.member(&former).pg_port,
        "SELECT pg_is_in_recovery()",
        |v| v.is_some(),
    )
    .await;
    eprintln!(
        "patroni test: failed over ({:.1} s); /cluster {after}; /history {history}",
        started.elapsed().as_secs_f64()
    );

    // The tool, told only where Patroni is.
    let urls = [c.member(&sync).rest(), c.member(&async_name).rest()];
    let run = run_tool(&[
        "compare",
        "--patroni",
        &urls[0],
        "--patroni",
        &urls[1],
        "--patroni-conninfo",
        "user=postgres dbname=postgres sslmode=disable",
        "--format",
        "json",
        "--connect-timeout",
        "5",
    ])
    .await;
    assert_eq!(run.code, 1, "exit 1 for loss; stderr: {}", run.stderr);
    let j = run.json();
    assert_eq!(j["verdict"], "loss", "{}", j["explanation"]);
    let new_port = c.member(&async_name).pg_port;
    let former_port = c.member(&former).pg_port;
    let target = |v: &serde_json::Value| v["target"].as_str().unwrap_or_default().to_string();
    assert!(
        target(&j["new_primary"]).contains(&format!("host=127.0.0.1 port={new_port} ")),
        "new primary found by itself: {}",
        j["new_primary"]
    );
    assert!(
        target(&j["former_primary"]).contains(&format!("host=127.0.0.1 port={former_port} ")),
        "former primary found by itself: {} (rule: {})",
        j["former_primary"],
        j["patroni"]["former_primary_rule"]
    );
    let p = &j["patroni"];
    assert_eq!(p["new_primary"], async_name.as_str());
    assert_eq!(p["former_primary"], former.as_str());
    eprintln!(
        "patroni test: former primary chosen as: {}",
        p["former_primary_rule"]
    );
    assert_eq!(p["members"].as_array().map(Vec::len), Some(3));
    assert_eq!(p["urls"].as_array().map(Vec::len), Some(2));
    // The lost transactions are exactly the commits made after the cut.
    assert_eq!(
        j["transactions"]["lost_commits"].as_u64(),
        Some(LOST as u64),
        "{}",
        j["transactions"]
    );
    // Patroni's history entry for the promotion is in the report, and agrees with the fork.
    let promo = &p["promotion"];
    assert_eq!(promo["parent_timeline"], 1);
    assert_eq!(promo["new_leader"], async_name.as_str());
    assert!(promo["timestamp"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(promo["reason"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(promo["switchpoint_lsn"], j["divergence"]["switchpoint_lsn"]);
    assert_eq!(
        promo["switchpoint_lsn"].as_str(),
        Some(cut_at.as_str()),
        "the switchpoint is where the async replica was cut off"
    );
    assert!(
        !j["findings"].as_array().unwrap().iter().any(
            |f| f["id"] == "patroni_history_disagrees" || f["id"] == "patroni_former_ambiguous"
        ),
        "{}",
        j["findings"]
    );

    // The same run rendered as Markdown, with a dead URL first: the others still answer.
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let run = run_tool(&[
        "compare",
        "--patroni",
        &dead,
        "--patroni",
        &urls[1],
        "--patroni-conninfo",
        "user=postgres dbname=postgres sslmode=disable",
        "--format",
        "markdown",
        "--no-checks",
    ])
    .await;
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    assert!(run.stdout.contains("### Patroni"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains(&format!("| promoted member | {async_name} |")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("| did not answer |"), "{}", run.stdout);
    assert!(run.stdout.contains(&dead), "{}", run.stdout);

    // Naming the former primary by hand overrides the choice (the sync standby works too).
    let sync_port = c.member(&sync).pg_port;
    let run = run_tool(&[
        "compare",
        "--patroni",
        &urls[1],
        "--patroni-conninfo",
        "user=postgres dbname=postgres sslmode=disable",
        "--former-primary",
        &format!("host=127.0.0.1 port={sync_port} user=postgres dbname=postgres sslmode=disable"),
        "--format",
        "json",
        "--no-checks",
    ])
    .await;
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let j = run.json();
    assert!(target(&j["former_primary"]).contains(&format!("port={sync_port} ")));
    assert!(j["patroni"]["former_primary"].is_null());
    assert_eq!(
        j["transactions"]["lost_commits"].as_u64(),
        Some(LOST as u64)
    );

    // `cluster --patroni`: the leader is the primary, the other members are placed on its
    // history; both former timeline-1 nodes hold WAL the leader never received.
    let run = run_tool(&[
        "cluster",
        "--patroni",
        &urls[0],
        "--patroni-conninfo",
        "user=postgres dbname=postgres sslmode=disable",
        "--format",
        "json",
    ])
    .await;
    assert_eq!(run.code, 1, "exit 1 for diverged; stderr: {}", run.stderr);
    let j = run.json();
    assert_eq!(j["verdict"], "diverged", "{}", j["explanation"]);
    assert!(target(&j["primary"]).contains(&format!("port={new_port} ")));
    let nodes = j["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2, "{}", j["nodes"]);
    for n in nodes {
        assert_eq!(n["status"], "diverged", "{n}");
    }

    tokio::task::block_in_place(|| drop(c));
    eprintln!(
        "patroni test: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A tiny HTTP server answering every request with one canned response; stopped on drop.
struct CannedServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CannedServer {
    fn start(status: &str, content_type: &str, body: &str) -> CannedServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = conn else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                // Read the request head, then answer.
                let mut reader = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if line == "\r\n" || line == "\n" {
                        break;
                    }
                    line.clear();
                }
                let _ = s.write_all(response.as_bytes());
                let _ = s.flush();
                let mut rest = [0u8; 1];
                let _ = s.shutdown(std::net::Shutdown::Write);
                let _ = s.read(&mut rest);
            }
        });
        CannedServer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for CannedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The `error:` line of a failed run (the message is one line; a `hint:` may follow).
fn error_line(run: &Run) -> String {
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.starts_with("error: patroni: ")),
        "stderr: {}",
        run.stderr
    );
    assert!(
        lines.iter().skip(1).all(|l| l.starts_with("hint: ")),
        "one error line, then hints: {}",
        run.stderr
    );
    lines[0].to_string()
}

#[tokio::test]
async fn patroni_unreachable_url_exits_3_naming_it() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let run = run_tool(&["compare", "--patroni", &url, "--patroni-timeout", "5"]).await;
    assert_eq!(run.code, 3, "stderr: {}", run.stderr);
    assert!(run.stdout.is_empty(), "no report: {}", run.stdout);
    let line = error_line(&run);
    assert!(line.contains(&format!("{url}/cluster")), "{line}");
    assert!(line.contains("connection refused"), "{line}");
    assert!(line.contains("expected Patroni's GET /cluster"), "{line}");
}

#[tokio::test]
async fn patroni_url_of_another_web_server_exits_3_naming_it() {
    // A web page.
    let html = CannedServer::start(
        "200 OK",
        "text/html; charset=utf-8",
        "<!DOCTYPE html><html><body><h1>It works!</h1></body></html>",
    );
    let run = run_tool(&["compare", "--patroni", &html.url()]).await;
    assert_eq!(run.code, 3, "stderr: {}", run.stderr);
    let line = error_line(&run);
    assert!(line.contains(&format!("{}/cluster", html.url())), "{line}");
    assert!(line.contains("answered text/html, not JSON"), "{line}");

    // JSON, but not Patroni's.
    let json = CannedServer::start("200 OK", "application/json", r#"{"status": "ok"}"#);
    let run = run_tool(&["compare", "--patroni", &json.url()]).await;
    assert_eq!(run.code, 3, "stderr: {}", run.stderr);
    let line = error_line(&run);
    assert!(line.contains(&format!("{}/cluster", json.url())), "{line}");
    assert!(line.contains("without a `members` list"), "{line}");

    // A Patroni that is not ready.
    let busy = CannedServer::start(
        "503 Service Unavailable",
        "text/plain",
        "Service Unavailable",
    );
    let run = run_tool(&["compare", "--patroni", &busy.url()]).await;
    assert_eq!(run.code, 3, "stderr: {}", run.stderr);
    let line = error_line(&run);
    assert!(
        line.contains(&format!("{}/cluster: HTTP 503", busy.url())),
        "{line}"
    );

    // Several URLs, none of them Patroni: one line naming each.
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let run = run_tool(&["compare", "--patroni", &dead, "--patroni", &html.url()]).await;
    assert_eq!(run.code, 3, "stderr: {}", run.stderr);
    let line = error_line(&run);
    assert!(line.contains("no Patroni URL answered"), "{line}");
    assert!(line.contains(&dead) && line.contains(&html.url()), "{line}");
}
