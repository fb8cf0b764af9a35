//! `failover-verify cluster --node …` end to end: the fork tree of real four- and three-node
//! clusters after successive promotions, and a real split brain. The expected fork points come
//! from the `.history` files on the promoted nodes' disks, and the WAL ends from each server's
//! own functions, read by the test.

mod util;

use failover_verify::lsn::{Lsn, TimelineId};
use failover_verify::sandbox::{Cluster, ClusterOptions};
use util::{install_or_skip, run_tool, Run};

fn opts(name: &str) -> ClusterOptions {
    ClusterOptions::new(name).setting("wal_receiver_status_interval", "1s")
}

async fn cluster_json(nodes: &[&Cluster]) -> Run {
    let conninfos: Vec<String> = nodes.iter().map(|c| c.conninfo()).collect();
    let mut args = vec!["cluster", "--format", "json", "--connect-timeout", "5"];
    for c in &conninfos {
        args.push("--node");
        args.push(c);
    }
    run_tool(&args).await
}

fn addr(c: &Cluster) -> String {
    format!("127.0.0.1:{}", c.port())
}

fn lsn(v: &serde_json::Value) -> Lsn {
    v.as_str()
        .unwrap_or_else(|| panic!("not an LSN: {v}"))
        .parse()
        .unwrap()
}

/// The tree node of `c`, and its branch.
fn node_of<'a>(
    j: &'a serde_json::Value,
    c: &Cluster,
) -> (&'a serde_json::Value, &'a serde_json::Value) {
    let tree = &j["tree"];
    let n = tree["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["address"] == addr(c))
        .unwrap_or_else(|| panic!("{} not in the tree: {tree}", addr(c)));
    let b = &tree["branches"][n["branch"].as_u64().expect("placed") as usize];
    (n, b)
}

fn switchpoint(c: &Cluster, tli: TimelineId) -> Lsn {
    c.history(tli).unwrap().last().unwrap().switchpoint
}

async fn insert(c: &Cluster, from: i32, to: i32, tag: &str) {
    for id in from..=to {
        c.execute(&format!("INSERT INTO t VALUES ({id}, '{tag}')"))
            .await
            .unwrap();
    }
}

async fn end_of_standby(c: &Cluster) -> Lsn {
    let recv = c.receive_lsn().await.unwrap();
    let replay = c.replay_lsn().await.unwrap();
    recv.max(replay).unwrap()
}

fn findings<'a>(j: &'a serde_json::Value, id: &str) -> Vec<&'a serde_json::Value> {
    j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == id)
        .collect()
}

/// Four nodes, two successive promotions (n1 → n2 on timeline 2 → n3 on timeline 3), each
/// former primary isolated with WAL of its own, and n4 left on timeline 1 below the first
/// fork; then n4 follows n1 (an upstream off the current timeline) and receives its lost WAL.
#[tokio::test]
async fn four_nodes_two_promotions_draw_the_tree() {
    let Some(install) = install_or_skip("four_nodes_two_promotions") else {
        return;
    };
    let n1 = Cluster::start_primary(&install, opts("n1")).await.unwrap();
    let n2 = n1.create_standby(opts("n2")).await.unwrap();
    let n3 = n1.create_standby(opts("n3")).await.unwrap();
    let n4 = n1.create_standby(opts("n4")).await.unwrap();
    n1.execute("CREATE TABLE t(id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    insert(&n1, 1, 10, "base").await;
    for s in [&n2, &n3, &n4] {
        s.wait_caught_up(&n1).await.unwrap();
    }
    n4.cut_off().await.unwrap();
    insert(&n1, 11, 20, "not on n4").await;
    n2.wait_caught_up(&n1).await.unwrap();
    n3.wait_caught_up(&n1).await.unwrap();
    n2.cut_off().await.unwrap();
    n3.cut_off().await.unwrap();
    insert(&n1, 21, 23, "lost on timeline 1").await;
    let e1 = n1.isolate_as_standby().await.unwrap();

    let tl2 = n2.promote().await.unwrap();
    let s1 = switchpoint(&n2, tl2);
    n3.follow(&n2).await.unwrap();
    insert(&n2, 30, 35, "timeline 2").await;
    n3.wait_caught_up(&n2).await.unwrap();
    n3.cut_off().await.unwrap();
    insert(&n2, 36, 38, "lost on timeline 2").await;
    let e2 = n2.isolate_as_standby().await.unwrap();
    let tl3 = n3.promote().await.unwrap();
    let s2 = switchpoint(&n3, tl3);
    assert_eq!(tl3, TimelineId(3));
    insert(&n3, 40, 42, "timeline 3").await;
    let e4 = end_of_standby(&n4).await;
    assert!(
        e4 < s1 && s1 < e1 && s1 < s2 && s2 < e2,
        "{e4} {s1} {e1} {s2} {e2}"
    );

    let run = cluster_json(&[&n1, &n2, &n3, &n4]).await;
    assert_eq!(
        run.code, 1,
        "two evidence holders: exit 1\n{}\n{}",
        run.stdout, run.stderr
    );
    let j = run.json();
    assert_eq!(j["verdict"], "diverged");
    // The writable node on the newest timeline is the primary.
    assert_eq!(j["primary"]["facts"]["timeline"], 3);
    assert_eq!(
        j["tree"]["branches"].as_array().unwrap().len(),
        3,
        "{}",
        j["tree"]
    );
    assert!(j["tree"]["split_brains"].as_array().unwrap().is_empty());

    let (t1, b1) = node_of(&j, &n1);
    assert_eq!(b1["timeline"], 1);
    assert_eq!(b1["on_current_path"], true);
    assert_eq!(lsn(&t1["end_of_wal"]), e1);
    assert_eq!(
        lsn(&t1["unique_wal"][0]),
        s1,
        "n1 holds timeline 1 past the first fork"
    );
    assert_eq!(lsn(&t1["unique_wal"][1]), e1);

    let (t2, b2) = node_of(&j, &n2);
    assert_eq!(b2["timeline"], 2);
    assert_eq!(lsn(&b2["fork_lsn"]), s1);
    assert_eq!(lsn(&t2["unique_wal"][0]), s2);
    assert_eq!(lsn(&t2["unique_wal"][1]), e2);
    assert_eq!(t2["past_fork_bytes"].as_u64().unwrap(), e2.0 - s1.0);

    let (t3, b3) = node_of(&j, &n3);
    assert_eq!(b3["current"], true);
    assert_eq!(lsn(&b3["fork_lsn"]), s2);
    assert_eq!(b3["parent"], b2["id"]);
    assert_eq!(t3["is_current_primary"], true);

    let (t4, b4) = node_of(&j, &n4);
    assert_eq!(b4["id"], b1["id"], "n4 is left on timeline 1");
    assert!(t4["unique_wal"].is_null(), "{t4}");
    assert_eq!(lsn(&t4["end_of_wal"]), e4);

    let diverged: Vec<String> = findings(&j, "diverged_node")
        .iter()
        .map(|f| f["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(diverged.len(), 2, "{diverged:?}");
    assert!(diverged.iter().any(|m| m.contains(&addr(&n1))));
    assert!(diverged.iter().any(|m| m.contains(&addr(&n2))));
    assert!(findings(&j, "upstream_off_timeline").is_empty());

    // The text report draws the tree.
    let text = run_tool(&[
        "cluster",
        "--node",
        &n1.conninfo(),
        "--node",
        &n2.conninfo(),
        "--node",
        &n3.conninfo(),
        "--node",
        &n4.conninfo(),
    ])
    .await;
    let out = &text.stdout;
    assert!(out.contains("Fork tree"), "{out}");
    eprintln!("{}", &out[out.find("Fork tree").unwrap()..]);
    assert!(
        out.contains(&format!("timeline 2 forked at {s1} [ancestor of current]")),
        "{out}"
    );
    assert!(
        out.contains(&format!("timeline 3 forked at {s2} [current]")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "holds {} bytes the current timeline lacks",
            e1.0 - s1.0
        )),
        "{out}"
    );

    // The HTML report draws the tree as an SVG: every branch and node, the WAL only n1 holds.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("tree.html");
    let html = run_tool(&[
        "cluster",
        "--node",
        &n1.conninfo(),
        "--node",
        &n2.conninfo(),
        "--node",
        &n3.conninfo(),
        "--node",
        &n4.conninfo(),
        "--format",
        "html",
        "--output",
        page.to_str().unwrap(),
    ])
    .await;
    assert_eq!(html.code, 1, "{}", html.stderr);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("<svg"),
        "{html}"
    );
    assert!(
        html.contains(&format!("timeline 3, forked at {s2} (current)")),
        "{html}"
    );
    assert!(
        html.contains(&format!("timeline 2, forked at {s1}<")),
        "{html}"
    );
    for n in [&n1, &n2, &n3, &n4] {
        assert!(
            html.contains(&format!("{} (", addr(n))),
            "{} not drawn",
            addr(n)
        );
    }
    assert!(
        html.contains(&format!("{} bytes only here", e1.0 - s1.0)),
        "{html}"
    );
    if let Ok(keep) = std::env::var("FV_KEEP_TREE_HTML") {
        std::fs::copy(&page, keep).unwrap();
    }

    // n4 now streams from n1 (a standby on timeline 1): it receives n1's lost WAL.
    n4.follow(&n1).await.unwrap();
    n4.wait_replayed_beyond(s1).await.unwrap();
    let run = cluster_json(&[&n1, &n2, &n3, &n4]).await;
    let j = run.json();
    let (t4, _) = node_of(&j, &n4);
    assert_eq!(t4["upstream"], addr(&n1));
    assert_eq!(t4["upstream_on_current"], false);
    assert_eq!(lsn(&t4["unique_wal"][0]), s1);
    let off = findings(&j, "upstream_off_timeline");
    assert_eq!(off.len(), 1, "{}", j["findings"]);
    assert!(off[0]["message"].as_str().unwrap().contains(&addr(&n4)));
    assert_eq!(findings(&j, "diverged_node").len(), 3);
}

/// Three nodes: n2 promoted while the former primary n1 still runs (and n3 still streams from
/// it): a split brain, and n3 follows an upstream off the current timeline holding n1's lost
/// WAL. Once n1 is fenced (restarted as a standby) the split brain is gone, n3 still cascades
/// from it.
#[tokio::test]
async fn three_nodes_running_former_primary_and_a_standby_left_behind() {
    let Some(install) = install_or_skip("three_nodes_left_behind") else {
        return;
    };
    let n1 = Cluster::start_primary(&install, opts("n1")).await.unwrap();
    let n2 = n1.create_standby(opts("n2")).await.unwrap();
    let n3 = n1.create_standby(opts("n3")).await.unwrap();
    n1.execute("CREATE TABLE t(id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    insert(&n1, 1, 5, "base").await;
    n2.wait_caught_up(&n1).await.unwrap();
    n3.wait_caught_up(&n1).await.unwrap();
    n2.cut_off().await.unwrap();
    insert(&n1, 6, 9, "lost").await;
    let n3_caught_up = n3.wait_caught_up(&n1).await.unwrap();
    let tl2 = n2.promote().await.unwrap();
    let s1 = switchpoint(&n2, tl2);
    insert(&n2, 100, 101, "new").await;
    let n1_before = n1.current_wal_lsn().await.unwrap();

    let run = cluster_json(&[&n1, &n2, &n3]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let j = run.json();
    assert_eq!(
        j["primary"]["facts"]["timeline"], 2,
        "the newest writable timeline"
    );
    let sb = findings(&j, "split_brain");
    assert_eq!(sb.len(), 1, "{}", j["findings"]);
    let m = sb[0]["message"].as_str().unwrap();
    assert!(m.contains(&addr(&n1)) && m.contains(&addr(&n2)), "{m}");
    let side = j["tree"]["split_brains"][0]["sides"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["address"] == addr(&n1))
        .unwrap()
        .clone();
    assert_eq!(
        lsn(&side["from"]),
        s1,
        "n1 wrote past the switchpoint of timeline 2"
    );
    let n1_after = n1.current_wal_lsn().await.unwrap();
    let to = lsn(&side["to"]);
    assert!(
        to >= n1_before && to <= n1_after,
        "{to} not in [{n1_before}, {n1_after}]"
    );
    let (t3, b3) = node_of(&j, &n3);
    assert_eq!(b3["timeline"], 1);
    assert_eq!(t3["upstream"], addr(&n1));
    assert_eq!(t3["upstream_on_current"], false);
    assert_eq!(lsn(&t3["unique_wal"][0]), s1);
    // Its WAL end, read by the tool, between what the test saw before and after the run.
    let n3_end = lsn(&t3["end_of_wal"]);
    assert_eq!(lsn(&t3["unique_wal"][1]), n3_end);
    let n3_now = end_of_standby(&n3).await;
    assert!(
        n3_end >= n3_caught_up && n3_end <= n3_now,
        "{n3_end} not in [{n3_caught_up}, {n3_now}]"
    );
    let off = findings(&j, "upstream_off_timeline");
    assert_eq!(off.len(), 1, "{}", j["findings"]);

    // Fenced: n1 restarted as a standby. No split brain; n3 still follows it.
    n1.isolate_as_standby().await.unwrap();
    n3.wait_streaming().await.unwrap();
    let j = cluster_json(&[&n1, &n2, &n3]).await.json();
    assert!(findings(&j, "split_brain").is_empty(), "{}", j["findings"]);
    assert_eq!(findings(&j, "upstream_off_timeline").len(), 1);
    assert_eq!(
        findings(&j, "diverged_node").len(),
        2,
        "n1 and n3 hold the lost WAL"
    );
}

/// Two standbys of one primary both promoted (both call their timeline 2) and both written
/// to: a critical split brain with the WAL each side wrote past the fork.
#[tokio::test]
async fn two_promoted_standbys_are_a_split_brain() {
    let Some(install) = install_or_skip("split_brain") else {
        return;
    };
    let n1 = Cluster::start_primary(&install, opts("n1")).await.unwrap();
    let n2 = n1.create_standby(opts("n2")).await.unwrap();
    let n3 = n1.create_standby(opts("n3")).await.unwrap();
    n1.execute("CREATE TABLE t(id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    insert(&n1, 1, 5, "base").await;
    n2.wait_caught_up(&n1).await.unwrap();
    n3.wait_caught_up(&n1).await.unwrap();
    n2.cut_off().await.unwrap();
    n3.cut_off().await.unwrap();
    n1.isolate_as_standby().await.unwrap();
    let t2 = n2.promote().await.unwrap();
    let t3 = n3.promote().await.unwrap();
    assert_eq!(
        (t2, t3),
        (TimelineId(2), TimelineId(2)),
        "one id, two timelines"
    );
    insert(&n2, 100, 104, "side a").await;
    insert(&n3, 200, 209, "side b").await;
    let (sp2, sp3) = (switchpoint(&n2, t2), switchpoint(&n3, t3));
    // Where their WAL stops being the same: the earlier switchpoint.
    let from = sp2.min(sp3);
    let before2 = n2.current_wal_lsn().await.unwrap();
    let before3 = n3.current_wal_lsn().await.unwrap();

    let run = cluster_json(&[&n1, &n2, &n3]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let j = run.json();
    assert_eq!(j["verdict"], "diverged");
    let sb = findings(&j, "split_brain");
    assert_eq!(sb.len(), 1, "{}", j["findings"]);
    assert_eq!(sb[0]["severity"], "critical");
    let m = sb[0]["message"].as_str().unwrap();
    assert!(m.contains(&addr(&n2)) && m.contains(&addr(&n3)), "{m}");
    assert!(m.contains("both accept writes"), "{m}");
    let sides = j["tree"]["split_brains"][0]["sides"].as_array().unwrap();
    for (c, before) in [(&n2, before2), (&n3, before3)] {
        let s = sides
            .iter()
            .find(|s| s["address"] == addr(c))
            .expect("both sides listed");
        assert_eq!(lsn(&s["from"]), from);
        let to = lsn(&s["to"]);
        let after = c
            .query_one_string("SELECT pg_current_wal_insert_lsn()::text")
            .await
            .unwrap()
            .parse::<Lsn>()
            .unwrap();
        assert!(
            to >= before && to <= after,
            "{to} not in [{before}, {after}]"
        );
        assert!(m.contains(&format!("{from}..{to}")), "{m}");
    }
    // CSV: the branches (two timelines 2), the nodes and the split brain, one row each.
    let csv = run_tool(&[
        "cluster",
        "--node",
        &n2.conninfo(),
        "--node",
        &n3.conninfo(),
        "--format",
        "csv",
    ])
    .await;
    assert_eq!(csv.code, 1, "{}", csv.stderr);
    assert!(csv.stdout.contains("split_brain,,"), "{}", csv.stdout);
    assert_eq!(
        csv.stdout.matches("\ntree_node,").count(),
        2,
        "{}",
        csv.stdout
    );
    // Each side's range holds its own commits (a single-row commit writes over 100 bytes).
    let bytes = |a: &str| {
        let s = sides.iter().find(|s| s["address"] == a).unwrap();
        lsn(&s["to"]).0 - lsn(&s["from"]).0
    };
    assert!(bytes(&addr(&n2)) > 5 * 100, "{}", bytes(&addr(&n2)));
    assert!(bytes(&addr(&n3)) > 10 * 100, "{}", bytes(&addr(&n3)));
}
