//! Multi-host connection strings against real servers: three hosts of which the first is
//! down, the second a standby and the third a primary, tried as libpq tries them with
//! `target_session_attrs`; and `compare` naming the host it reached in the report.

mod util;

use failover_verify::pg::multihost::choose;
use failover_verify::pg::{connect, ConnParams, SessionOptions};
use failover_verify::sandbox::{Cluster, ClusterOptions, LossyFailover, LossyFailoverSpec};
use util::{closed_port, install_or_skip, run_tool};

/// `conninfo` with its `port=N` replaced by several ports and as many hosts.
fn multi(conninfo: &str, ports: &[u16], extra: &str) -> String {
    let mut out = Vec::new();
    for part in conninfo.split_whitespace() {
        if part.starts_with("port=") {
            out.push(format!(
                "port={}",
                ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        } else if part.starts_with("host=") {
            out.push(format!("host={}", vec!["127.0.0.1"; ports.len()].join(",")));
        } else {
            out.push(part.to_string());
        }
    }
    format!("{} connect_timeout=3 {extra}", out.join(" "))
}

fn opts() -> SessionOptions {
    SessionOptions {
        connect_timeout: std::time::Duration::from_secs(3),
        ..SessionOptions::default()
    }
}

/// Chooses among `ports` with `target_session_attrs=tsa`; checks the session is on the host
/// the choice names and that the first (down) host was skipped.
async fn reach(
    conninfo: &str,
    ports: &[u16],
    down: u16,
    tsa: &str,
) -> (u16, failover_verify::pg::HostChoice) {
    let s = multi(conninfo, ports, &format!("target_session_attrs={tsa}"));
    let p = ConnParams::parse(&s, &|k| (k == "HOME").then(|| "/nonexistent".into())).unwrap();
    let (pinned, session, choice) = choose(&p, &opts())
        .await
        .unwrap_or_else(|e| panic!("{tsa}: {e}"));
    // The session really is on the host the choice names.
    let port = session.simple_value("SHOW port").await.unwrap().unwrap();
    session.close().await;
    assert_eq!(pinned.port().to_string(), port, "{tsa}");
    assert_eq!(choice.reached, format!("127.0.0.1:{port}"), "{tsa}");
    assert_eq!(
        choice.skipped[0].target,
        format!("127.0.0.1:{down}"),
        "{tsa}: the first host is down"
    );
    (port.parse::<u16>().unwrap(), choice)
}

#[tokio::test]
async fn target_session_attrs_pick_the_host_like_libpq() {
    let Some(install) = install_or_skip("multihost") else {
        return;
    };
    let primary = Cluster::start_primary(&install, ClusterOptions::new("mh-primary"))
        .await
        .unwrap();
    let standby = primary
        .create_standby(ClusterOptions::new("mh-standby"))
        .await
        .unwrap();
    let down = closed_port();
    let ports = [down, standby.port(), primary.port()];
    // Ground truth from the servers themselves, not from the tool.
    assert_eq!(
        standby
            .query_one_string("SELECT pg_is_in_recovery()::text")
            .await
            .unwrap(),
        "true"
    );
    assert_eq!(
        primary
            .query_one_string("SELECT pg_is_in_recovery()::text")
            .await
            .unwrap(),
        "false"
    );
    let ci = primary.conninfo();
    let reach = |tsa: &'static str| reach(&ci, &ports, down, tsa);
    let (port, c) = reach("read-write").await;
    assert_eq!(port, primary.port(), "read-write reaches the third host");
    assert_eq!(c.skipped.len(), 2, "{c:?}");
    assert!(c.skipped[1].why.contains("standby"), "{c:?}");
    assert!(c.reason.contains("primary"), "{c:?}");
    assert_eq!(reach("primary").await.0, primary.port());
    let (port, c) = reach("prefer-standby").await;
    assert_eq!(
        port,
        standby.port(),
        "prefer-standby reaches the second host"
    );
    assert!(c.reason.contains("standby"), "{c:?}");
    assert_eq!(reach("standby").await.0, standby.port());
    assert_eq!(reach("read-only").await.0, standby.port());
    assert_eq!(
        reach("any").await.0,
        standby.port(),
        "any: the first that answers"
    );

    // prefer-standby with no standby among the hosts falls back to the primary.
    let s = multi(
        &primary.conninfo(),
        &[down, primary.port()],
        "target_session_attrs=prefer-standby",
    );
    let p = ConnParams::parse(&s, &|k| (k == "HOME").then(|| "/nonexistent".into())).unwrap();
    let (pinned, session, c) = choose(&p, &opts()).await.unwrap();
    session.close().await;
    assert_eq!(pinned.port(), primary.port());
    assert!(c.reason.contains("no host is a standby"), "{c:?}");

    // standby with only primaries: an error naming every host and why.
    let s = multi(
        &primary.conninfo(),
        &[down, primary.port()],
        "target_session_attrs=standby",
    );
    let p = ConnParams::parse(&s, &|k| (k == "HOME").then(|| "/nonexistent".into())).unwrap();
    let e = connect(&p, &opts()).await.unwrap_err().to_string();
    assert!(e.contains(&format!("127.0.0.1:{down}")), "{e}");
    assert!(e.contains("wants a standby"), "{e}");

    // The URL form, and load_balance_hosts=random still only reaches acceptable hosts.
    let url = format!(
        "postgresql://postgres@127.0.0.1:{down},127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write&load_balance_hosts=random&connect_timeout=3",
        standby.port(),
        primary.port()
    );
    let mut url = url;
    if let Some(pw) = primary
        .conninfo()
        .split_whitespace()
        .find_map(|p| p.strip_prefix("password="))
    {
        url.push_str(&format!("&password={pw}"));
    }
    for _ in 0..3 {
        let p = ConnParams::parse(&url, &|k| (k == "HOME").then(|| "/nonexistent".into())).unwrap();
        let (pinned, session, c) = choose(&p, &opts()).await.unwrap();
        session.close().await;
        assert_eq!(pinned.port(), primary.port());
        assert!(c.load_balanced);
    }
}

#[tokio::test]
async fn compare_reports_the_host_it_reached_and_why() {
    let Some(install) = install_or_skip("multihost_compare") else {
        return;
    };
    let f = LossyFailover::build(&install, LossyFailoverSpec::with_lost_commits(3))
        .await
        .expect("lossy failover");
    let down = closed_port();
    let new = multi(
        &f.new_primary.conninfo(),
        &[down, f.new_primary.port()],
        "keepalives=1",
    );

    // --former-primary with several hosts but no target_session_attrs: a usage error.
    let former_bare = multi(
        &f.former_primary.conninfo(),
        &[down, f.former_primary.port()],
        "",
    );
    let run = run_tool(&[
        "compare",
        "--new-primary",
        &new,
        "--former-primary",
        &former_bare,
        "--format",
        "json",
    ])
    .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("--former-primary") && run.stderr.contains("target_session_attrs"),
        "{}",
        run.stderr
    );

    let former = multi(
        &f.former_primary.conninfo(),
        &[down, f.former_primary.port()],
        "target_session_attrs=primary",
    );
    let run = run_tool(&[
        "compare",
        "--new-primary",
        &new,
        "--former-primary",
        &former,
        "--format",
        "json",
        "--connect-timeout",
        "5",
    ])
    .await;
    assert_eq!(
        run.code, 1,
        "a loss, as with single hosts; stderr: {}",
        run.stderr
    );
    // keepalives is accepted with a one-line notice on stderr.
    assert!(
        run.stderr
            .lines()
            .any(|l| l
                .starts_with("notice: --new-primary: connection option \"keepalives\" ignored")),
        "{}",
        run.stderr
    );
    let j = run.json();
    assert_eq!(j["verdict"], "loss");
    let fc = &j["former_primary"]["host_choice"];
    assert_eq!(
        fc["reached"],
        format!("127.0.0.1:{}", f.former_primary.port())
    );
    assert_eq!(fc["target_session_attrs"], "primary");
    assert_eq!(fc["skipped"][0]["target"], format!("127.0.0.1:{down}"));
    assert!(fc["reason"].as_str().unwrap().contains("primary"), "{fc}");
    assert_eq!(
        fc["hosts"],
        serde_json::json!([
            format!("127.0.0.1:{down}"),
            format!("127.0.0.1:{}", f.former_primary.port())
        ])
    );
    let nc = &j["new_primary"]["host_choice"];
    assert_eq!(nc["reached"], format!("127.0.0.1:{}", f.new_primary.port()));
    assert_eq!(nc["target_session_attrs"], "any");
    // The section's target is the host reached, not the list.
    let t = j["former_primary"]["target"].as_str().unwrap();
    assert!(
        t.contains(&format!("port={}", f.former_primary.port())) && !t.contains(&down.to_string()),
        "{t}"
    );
    // The facts are the former primary's own (its timeline is the old one).
    assert_eq!(j["former_primary"]["facts"]["timeline"], f.old_timeline.0);

    // The text report shows the choice.
    let run = run_tool(&[
        "compare",
        "--new-primary",
        &new,
        "--former-primary",
        &former,
        "--connect-timeout",
        "5",
    ])
    .await;
    assert!(run.stdout.contains("host reached"), "{}", run.stdout);
}
