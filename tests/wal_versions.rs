//! PostgreSQL 13, 14, 15, 17 and 18 WAL (tests/fixtures/wal/pg*/, made by generate.sh with
//! embedded-postgres binaries for 13/14/17/18): decoded and checked against the server's own
//! record of every xid (truth.json: pg_xact_status and pg_xact_commit_timestamp), since those
//! packages ship no pg_waldump.

mod wal_util;

use std::collections::HashMap;

use failover_verify::lsn::TimelineId;
use failover_verify::wal::accounting::account;
use failover_verify::wal::decoder::EndReason;
use failover_verify::wal::source::WalDir;
use failover_verify::wal::standby::{Checkpoint, RunningXacts};
use failover_verify::wal::xact::{XactKind, XactRecord};
use wal_util::*;

const VERSIONS: [u32; 5] = [13, 14, 15, 17, 18];

#[test]
fn every_version_matches_the_servers_xact_status() {
    for v in VERSIONS {
        let m = meta_for(v);
        let dir = WalDir::open(fixture_dir_for(v), TimelineId(1)).unwrap();
        let mut it = dir.read(m.start, None);
        let recs: Vec<_> = it
            .by_ref()
            .map(|r| r.unwrap_or_else(|e| panic!("pg{v}: {e}")))
            .collect();
        let end = it.end_of_wal().unwrap().clone();
        assert_eq!(
            end.reason,
            EndReason::EndOfInput {
                partial_record: false
            },
            "pg{v}"
        );
        assert_eq!(it.version().map(|x| x.0), Some(v));
        assert!(recs.len() > 1000, "pg{v}: {} records", recs.len());
        // Full-page images: the bimg_info bits moved in 15; every image here is applied.
        let images: Vec<_> = recs
            .iter()
            .flat_map(|r| r.blocks.iter())
            .filter(|b| b.has_image)
            .collect();
        assert!(!images.is_empty(), "pg{v}");
        assert!(
            images.iter().all(|b| b.apply_image),
            "pg{v}: image without APPLY"
        );

        // The fixture starts at the redo point of a CHECKPOINT: the record must say so.
        let ckpt = recs
            .iter()
            .find_map(|r| Checkpoint::parse(r).unwrap())
            .expect("a checkpoint");
        assert_eq!(
            (ckpt.redo, ckpt.timeline.0, ckpt.shutdown),
            (m.start, 1, false),
            "pg{v}"
        );
        let running = recs
            .iter()
            .find_map(|r| RunningXacts::parse(r).unwrap())
            .expect("running xacts");
        // At the redo point (PG17+ writes CHECKPOINT_REDO there first).
        assert!(
            running.lsn >= m.start && running.lsn < ckpt.lsn,
            "pg{v}: RUNNING_XACTS before the checkpoint"
        );
        assert_eq!(running.next_xid, ckpt.next_xid, "pg{v}");
        let mut committed: HashMap<u32, String> = HashMap::new();
        let mut aborted: Vec<u32> = Vec::new();
        let mut prepared: Vec<u32> = Vec::new();
        for r in &recs {
            let Some(x) = XactRecord::parse(r).unwrap() else {
                continue;
            };
            let t = x.commit_time.map(|t| t.to_pg_string()).unwrap_or_default();
            match x.kind {
                XactKind::Commit | XactKind::CommitPrepared => {
                    for s in std::iter::once(x.top_xid).chain(x.subxids.iter().copied()) {
                        assert!(
                            committed.insert(s.0, t.clone()).is_none(),
                            "pg{v}: {s} committed twice"
                        );
                    }
                }
                XactKind::Abort | XactKind::AbortPrepared => {
                    aborted.push(x.top_xid.0);
                    aborted.extend(x.subxids.iter().map(|s| s.0));
                }
                XactKind::Prepare => prepared.push(x.top_xid.0),
                _ => {}
            }
        }
        let truth: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixture_dir_for(v).join("truth.json")).unwrap(),
        )
        .unwrap();
        let truth = truth.as_array().unwrap();
        assert!(truth.len() > 30, "pg{v}");
        let (mut nc, mut na, mut np) = (0, 0, 0);
        for t in truth {
            let xid = t["xid"].as_u64().unwrap() as u32;
            match t["status"].as_str().unwrap() {
                "committed" => {
                    let want = t["commit_time"].as_str().unwrap();
                    assert_eq!(
                        committed.get(&xid).map(String::as_str),
                        Some(want),
                        "pg{v}: xid {xid}"
                    );
                    nc += 1;
                }
                "aborted" => {
                    assert!(
                        !committed.contains_key(&xid),
                        "pg{v}: aborted xid {xid} decoded as committed"
                    );
                    assert!(
                        aborted.contains(&xid),
                        "pg{v}: aborted xid {xid} without an ABORT record"
                    );
                    na += 1;
                }
                other => {
                    assert_eq!(other, "in progress");
                    assert!(!committed.contains_key(&xid));
                    assert!(
                        prepared.contains(&xid),
                        "pg{v}: in-progress xid {xid} is the prepared one"
                    );
                    np += 1;
                }
            }
        }
        // No commit outside the server's list within the workload's xid range.
        let lo = truth[0]["xid"].as_u64().unwrap() as u32;
        assert!(
            committed.keys().filter(|&&x| x >= lo).count() == nc,
            "pg{v}: extra commits"
        );
        assert!(
            nc > 30 && na >= 3 && np == 1,
            "pg{v}: {nc} committed, {na} aborted, {np} in progress"
        );

        // Accounting shape is the same on every version.
        let nrec = recs.len();
        let lost = account(recs, m.switchpoint, Some(end)).unwrap();
        assert!(lost.lost_commits.len() >= 7, "pg{v}");
        assert!(
            lost.lost_commits[0].changes_before_switchpoint >= 2,
            "pg{v}"
        );
        assert_eq!(lost.in_doubt.len(), 1, "pg{v}");
        assert_eq!(lost.in_doubt[0].gid.as_deref(), Some("gid-in-doubt"));
        assert!(!lost.lost_ddl.is_empty(), "pg{v}");
        assert_eq!(lost.sequences.len(), 1, "pg{v}");
        let t = lost
            .tables
            .iter()
            .find(|t| !t.catalog && t.counts.inserts == 4)
            .unwrap();
        assert_eq!(
            (t.counts.updates + t.counts.hot_updates, t.counts.deletes),
            (2, 1),
            "pg{v}"
        );
        println!("pg{v}: {} records, {nc} committed / {na} aborted / {np} in doubt xids match; {} lost commits", nrec, lost.lost_commits.len());
    }
}
