//! Pacing against a real PostgreSQL 15: a watching pacer sees other sessions at work (and
//! not its own), and a paced session pauses after its queries.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{env, Cluster};
use failover_verify::pg::{connect, ConnParams, Pacer, SessionOptions};

fn params(c: &Cluster) -> ConnParams {
    ConnParams::parse(&c.tcp("user=postgres sslmode=disable"), &env(&[])).expect("conninfo")
}

/// Waits up to `secs` for the pacer's view of the server to become `busy`.
async fn wait_for(p: &Pacer, busy: bool, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if p.server_busy() == busy {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p.server_busy() == busy
}

#[tokio::test]
async fn a_watching_pacer_paces_only_while_others_work() {
    let c = Cluster::shared();
    let p = params(c);
    let opts = SessionOptions::default();
    // Our own sessions (application_name failover-verify) do not make the server busy.
    let own = connect(&p, &opts).await.expect("connect");
    let pacer = Pacer::watching(&p, &opts, 0.25);
    assert!(pacer.server_busy(), "busy until the first look");
    assert!(
        wait_for(&pacer, false, 10).await,
        "an idle server (only our own sessions) is seen as idle"
    );
    assert_eq!(pacer.owed(Duration::from_secs(1)), Duration::ZERO);

    // Someone else's query: the server is busy while it runs.
    let other = c.superuser().await;
    let sleeper = tokio::spawn(async move { other.simple_query("SELECT pg_sleep(3)").await });
    assert!(
        wait_for(&pacer, true, 5).await,
        "another session at work makes the server busy"
    );
    assert!(pacer.owed(Duration::from_secs(1)) > Duration::from_secs(1));
    sleeper.await.expect("join").expect("pg_sleep");
    // Idle again once that session has been idle for a second.
    assert!(
        wait_for(&pacer, false, 10).await,
        "idle again after the other session finished"
    );
    own.close().await;
}

#[tokio::test]
async fn a_paced_session_pauses_after_its_queries() {
    let c = Cluster::shared();
    let p = params(c);
    let opts = SessionOptions::default();
    let run = |pacer: Option<Arc<Pacer>>| {
        let p = p.clone();
        async move {
            let s = connect(&p, &opts).await.expect("connect").paced(pacer);
            let t = Instant::now();
            for _ in 0..3 {
                s.simple_query("SELECT pg_sleep(0.2)").await.expect("query");
            }
            let took = t.elapsed();
            s.close().await;
            took
        }
    };
    let unpaced = run(None).await;
    // Always busy (no watcher): 0.6 s of work at 25 % spans 2.4 s, less the 0.5 s of credit.
    let paced = run(Some(Arc::new(Pacer::new(0.25)))).await;
    assert!(unpaced < Duration::from_millis(1200), "unpaced {unpaced:?}");
    assert!(
        paced >= Duration::from_millis(1700),
        "paced {paced:?} (unpaced {unpaced:?})"
    );
}
