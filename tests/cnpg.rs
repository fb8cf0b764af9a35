//! `compare --cnpg-status` with CloudNativePG `Cluster` status documents. A live Kubernetes
//! cannot run here: the documents are built from CloudNativePG's published API types
//! (`api/v1/cluster_types.go`: `ClusterStatus.currentPrimary`, `targetPrimary`, `timelineID`,
//! `instanceNames`, `instancesStatus`, `instancesReportedState{isPrimary,timeLineID,ip}`), and
//! the "pods" are two real servers after a real lossy promotion, reached through the conninfo
//! template by pod name (one socket directory per pod name, linked to each server's socket).

mod ha_util;
mod util;

use failover_verify::sandbox::{LossyFailover, LossyFailoverSpec};
use util::{install_or_skip, run_tool};

/// A status document after a failover from `former` to `new` (timeline 1 → 2), as
/// `kubectl get clusters.postgresql.cnpg.io NAME -o json` prints it.
fn status_document(former: &str, new: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": "fv", "namespace": "test", "generation": 1},
        "spec": {"instances": 2, "storage": {"size": "1Gi"}},
        "status": {
            "instances": 2,
            "readyInstances": 2,
            "instanceNames": [former, new],
            "instancesStatus": {"healthy": [former, new]},
            "instancesReportedState": {
                former: {"isPrimary": false, "timeLineID": 1},
                new: {"isPrimary": true, "timeLineID": 2}
            },
            "timelineID": 2,
            "currentPrimary": new,
            "currentPrimaryTimestamp": "2026-12-03T11:00:00.000000Z",
            "targetPrimary": new,
            "targetPrimaryTimestamp": "2026-12-03T10:59:58.000000Z",
            "phase": "Cluster in healthy state",
            "latestGeneratedNode": 2
        }
    })
}

#[tokio::test]
async fn cnpg_status_document_finds_both_instances_and_the_loss() {
    let Some(install) = install_or_skip("cnpg_status_document") else {
        return;
    };
    let f = LossyFailover::build(&install, LossyFailoverSpec::with_lost_commits(3))
        .await
        .unwrap();
    let truth = ha_util::waldump_commits(
        &install,
        &ha_util::pg_wal(f.former_primary.data_dir()),
        1,
        f.switchpoint,
    );
    if let Some(n) = truth {
        assert_eq!(n, f.lost.len(), "pg_waldump counts the lost commits");
    }
    // One directory per pod, holding a link to that server's socket as port 5432.
    let pods = tempfile::tempdir().unwrap();
    for (pod, c) in [("fv-1", &f.former_primary), ("fv-2", &f.new_primary)] {
        let d = pods.path().join(pod);
        std::fs::create_dir(&d).unwrap();
        std::os::unix::fs::symlink(
            c.dir().join(format!(".s.PGSQL.{}", c.port())),
            d.join(".s.PGSQL.5432"),
        )
        .unwrap();
    }
    let doc = pods.path().join("cluster.json");
    std::fs::write(&doc, status_document("fv-1", "fv-2").to_string()).unwrap();
    let template = format!(
        "host={}/{{pod}} port=5432 user=postgres dbname=postgres",
        pods.path().display()
    );
    let run = run_tool(&[
        "compare",
        "--cnpg-status",
        doc.to_str().unwrap(),
        "--cnpg-conninfo",
        &template,
        "--format",
        "json",
    ])
    .await;
    assert_eq!(run.code, 1, "exit 1 for loss; stderr: {}", run.stderr);
    let j = run.json();
    assert_eq!(j["verdict"], "loss", "{}", j["explanation"]);
    let d = &j["discovery"];
    assert_eq!(d["manager"], "cnpg");
    assert_eq!(d["cluster"], "test/fv");
    assert_eq!(d["new_primary"], "fv-2");
    assert_eq!(d["former_primary"], "fv-1");
    assert!(
        d["former_primary_rule"]
            .as_str()
            .unwrap()
            .contains("older timeline (1 < 2)"),
        "{}",
        d["former_primary_rule"]
    );
    assert!(
        d["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("rewinds")),
        "{}",
        d["notes"]
    );
    assert_eq!(
        j["transactions"]["lost_commits"].as_u64(),
        Some(truth.unwrap_or(f.lost.len()) as u64),
        "{}",
        j["transactions"]
    );
    assert_eq!(
        j["divergence"]["switchpoint_lsn"],
        f.switchpoint.to_string()
    );

    // The same document on stdin (`kubectl ... -o json | failover-verify compare --cnpg-status -`).
    let out = {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_failover-verify"))
            .args([
                "compare",
                "--cnpg-status",
                "-",
                "--cnpg-conninfo",
                &template,
            ])
            .args(["--format", "json", "--no-checks"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(status_document("fv-1", "fv-2").to_string().as_bytes())
            .unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    assert_eq!(
        out.status.code(),
        Some(1),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    util::validate_report(&j);
    assert_eq!(j["discovery"]["source"], "-");
    assert_eq!(j["discovery"]["former_primary"], "fv-1");

    // The text report names the manager and the pods.
    let run = run_tool(&[
        "compare",
        "--cnpg-status",
        doc.to_str().unwrap(),
        "--cnpg-conninfo",
        &template,
        "--no-checks",
    ])
    .await;
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    assert!(
        run.stdout.contains("Discovery (CloudNativePG)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("currentPrimary"), "{}", run.stdout);

    // A failover still in progress is not guessed at: exit 3 naming both pods.
    let mut moving = status_document("fv-1", "fv-2");
    moving["status"]["targetPrimary"] = "fv-1".into();
    std::fs::write(&doc, moving.to_string()).unwrap();
    let run = run_tool(&[
        "compare",
        "--cnpg-status",
        doc.to_str().unwrap(),
        "--cnpg-conninfo",
        &template,
    ])
    .await;
    assert_eq!(run.code, 3, "stderr: {}", run.stderr);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("targetPrimary fv-1"), "{}", run.stderr);
}

#[tokio::test]
async fn cnpg_bad_documents_exit_3_with_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "pod.json",
            r#"{"apiVersion": "v1", "kind": "Pod"}"#,
            "not a CloudNativePG Cluster status document",
        ),
        ("text.json", "NAME   AGE   INSTANCES", "not JSON"),
        (
            "nostatus.json",
            r#"{"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "x"}}"#,
            "has no status",
        ),
    ];
    for (name, body, expect) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        let run = run_tool(&["compare", "--cnpg-status", p.to_str().unwrap()]).await;
        assert_eq!(run.code, 3, "{name}: stderr: {}", run.stderr);
        assert!(run.stdout.is_empty());
        let first = run.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: discovery: "),
            "{name}: {}",
            run.stderr
        );
        assert!(first.contains(p.to_str().unwrap()), "{name}: {first}");
        assert!(first.contains(expect), "{name}: {first}");
        assert!(
            run.stderr.lines().skip(1).all(|l| l.starts_with("hint: ")),
            "{}",
            run.stderr
        );
    }
    let missing = dir.path().join("absent.json");
    let run = run_tool(&["compare", "--cnpg-status", missing.to_str().unwrap()]).await;
    assert_eq!(run.code, 3, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("cannot read it"), "{}", run.stderr);
    // Two managers at once, or a member template with no manager, is a usage error.
    let run = run_tool(&["compare", "--cnpg-status", "x", "--repmgr", "host=x"]).await;
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
    let run = run_tool(&[
        "compare",
        "--new-primary",
        "host=x",
        "--member-conninfo",
        "user=fv",
    ])
    .await;
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--member-conninfo"), "{}", run.stderr);
}
