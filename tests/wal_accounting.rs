//! Lost-transaction accounting on the pg15 fixture, with a pretend switchpoint recorded by
//! generate.sh inside a transaction that commits after it; checked against pg_waldump.

mod wal_util;

use failover_verify::lsn::{TimelineId, Xid};
use failover_verify::wal::accounting::{account, TupleOp};
use failover_verify::wal::source::WalDir;
use wal_util::*;

#[test]
fn lost_transactions_of_the_fixture() {
    let m = meta();
    let dir = WalDir::open(fixture_dir(), TimelineId(1)).unwrap();
    let mut it = dir.read(m.start, None);
    let recs: Vec<_> = it.by_ref().map(|r| r.unwrap()).collect();
    let end = it.end_of_wal().cloned();
    let lost = account(recs, m.switchpoint, end).unwrap();

    // Ground truth: every COMMIT / COMMIT_PREPARED at or after the switchpoint, per pg_waldump.
    if let Some(bin) = pg_waldump() {
        let tmp = plain_copy();
        let dump = parse_dump(&waldump(&bin, tmp.path(), &["-s", &m.start.to_string()]));
        let want: Vec<(u64, u32)> = dump
            .iter()
            .filter(|d| d.rmgr == "Transaction" && d.lsn >= m.switchpoint)
            .filter_map(|d| {
                if d.desc.starts_with("COMMIT_PREPARED ") {
                    let x = d.desc[16..].split(':').next().unwrap().parse().unwrap();
                    Some((d.lsn.0, x))
                } else if d.desc.starts_with("COMMIT ") {
                    Some((d.lsn.0, d.xid))
                } else {
                    None
                }
            })
            .collect();
        let got: Vec<(u64, u32)> = lost
            .lost_commits
            .iter()
            .map(|c| (c.lsn.0, c.top_xid.0))
            .collect();
        assert_eq!(got, want);
        let aborts = dump
            .iter()
            .filter(|d| {
                d.rmgr == "Transaction" && d.lsn >= m.switchpoint && d.desc.starts_with("ABORT")
            })
            .count();
        assert_eq!(lost.aborts_after_switchpoint.len(), aborts);
    } else {
        println!("skipped pg_waldump cross-check: pg_waldump not installed");
    }

    // The workload after the switchpoint (see generate.sh).
    assert!(lost.lost_commits.len() >= 7, "{:#?}", lost.lost_commits);
    let spanning = &lost.lost_commits[0];
    assert!(spanning.changes_before_switchpoint >= 2, "{spanning:?}");
    assert_eq!(spanning.changes.inserts, 1);
    assert_eq!(spanning.changes.updates + spanning.changes.hot_updates, 1);
    assert_eq!(lost.in_doubt.len(), 1);
    assert_eq!(lost.in_doubt[0].gid.as_deref(), Some("gid-in-doubt"));
    assert!(!lost.aborts_after_switchpoint.is_empty());
    assert!(!lost.lost_ddl.is_empty(), "CREATE TABLE lost_ddl");
    assert!(lost
        .tables
        .iter()
        .any(|t| t.catalog && t.counts.inserts > 0));
    assert_eq!(lost.sequences.len(), 1);
    let dbs: std::collections::BTreeSet<u32> =
        lost.lost_commits.iter().filter_map(|c| c.db_id).collect();
    assert_eq!(dbs.len(), 2, "commits in postgres and app2: {dbs:?}");
    // Table t: inserts 7001, 8001, 8004, 8005; updates of id 3 and 40; delete of 41.
    let t = lost
        .tables
        .iter()
        .find(|t| !t.catalog && t.counts.inserts == 4)
        .unwrap_or_else(|| panic!("{:#?}", lost.tables));
    assert_eq!(t.counts.updates + t.counts.hot_updates, 2);
    assert_eq!(t.counts.deletes, 1);
    // app2's u: one insert.
    assert!(lost
        .tables
        .iter()
        .any(|x| x.rel.db != t.rel.db && !x.catalog && x.counts.inserts == 1));
    // Touched tuples of t: exactly those 7 changes, each with a tid.
    let tt: Vec<_> = lost
        .touched_tuples
        .iter()
        .filter(|x| x.rel == t.rel)
        .collect();
    assert_eq!(tt.len(), 7);
    assert!(tt.iter().all(|x| x.tid.offset > 0));
    assert_eq!(tt.iter().filter(|x| x.op == TupleOp::Delete).count(), 1);
    assert!(tt
        .iter()
        .filter(|x| matches!(x.op, TupleOp::Update | TupleOp::HotUpdate))
        .all(|x| x.old.is_some()));
    // Lost xids do not include the aborted or the in-doubt one.
    let in_doubt = lost.in_doubt[0].xid;
    assert!(lost
        .lost_commits
        .iter()
        .all(|c| c.top_xid != in_doubt && c.top_xid != Xid(0)));
    assert!(lost.first_lost_commit_time <= lost.last_lost_commit_time);
    assert!(
        lost.wal_bytes_after_switchpoint > 1_500_000,
        "the 1.5 MB message is lost WAL"
    );
    assert!(lost
        .wal_stats_after_switchpoint
        .by_rmgr()
        .contains_key("LogicalMessage"));
    // Serializable for the renderer.
    let json = serde_json::to_string(&lost).unwrap();
    assert!(json.contains("\"lost_commits\""));
}

/// The fixture's metadata, its records from the start, and how its WAL ends.
fn fixture_records() -> (
    Meta,
    Vec<failover_verify::wal::record::DecodedRecord>,
    Option<failover_verify::wal::decoder::EndOfWal>,
) {
    let m = meta();
    let dir = WalDir::open(fixture_dir(), TimelineId(1)).unwrap();
    let mut it = dir.read(m.start, None);
    let recs: Vec<_> = it.by_ref().map(|r| r.unwrap()).collect();
    let end = it.end_of_wal().cloned();
    (m, recs, end)
}

/// The bounded accountant on the same fixture: the same totals and aggregates as the full one,
/// only the first and last `keep` commits kept whole, no touched tuples kept, and every lost
/// commit handed to the observer once, in WAL order.
#[test]
fn bounded_detail_keeps_the_totals_and_the_ends() {
    use failover_verify::wal::accounting::{Accountant, Detail};
    let (m, recs, end) = fixture_records();
    let full = account(recs.clone(), m.switchpoint, end.clone()).unwrap();
    let n = full.lost_commits.len();
    assert!(n >= 7, "{n}");
    assert_eq!(full.lost_commit_count, n as u64);
    assert_eq!(full.lost_commits_omitted, 0);
    assert_eq!(full.touched_tuple_count, full.touched_tuples.len() as u64);

    let keep = 2;
    let mut acc = Accountant::with_detail(m.switchpoint, Detail::Bounded { keep });
    let mut seen = Vec::new();
    for r in &recs {
        acc.add_observed(r, &mut |c| seen.push(c.clone())).unwrap();
    }
    let b = acc.finish(end);
    // Every lost commit observed once, in WAL order, as the full accountant keeps them.
    assert_eq!(seen, full.lost_commits);
    // Kept: the first two and the last two, and the count of the rest.
    let ends: Vec<_> = full.lost_commits[..keep]
        .iter()
        .chain(&full.lost_commits[n - keep..])
        .cloned()
        .collect();
    assert_eq!(b.lost_commits, ends);
    assert_eq!(b.lost_commit_count, n as u64);
    assert_eq!(b.lost_commits_omitted, (n - 2 * keep) as u64);
    assert!(b.touched_tuples.is_empty());
    assert_eq!(b.touched_tuple_count, full.touched_tuple_count);
    assert!(b.aborts_after_switchpoint.len() <= keep);
    assert_eq!(b.abort_count, full.aborts_after_switchpoint.len() as u64);
    assert!(b.lost_ddl.len() <= keep);
    assert_eq!(b.lost_ddl_count, full.lost_ddl.len() as u64);
    // The aggregates agree, and with the commits themselves.
    assert_eq!(b.tables, full.tables);
    assert_eq!(b.databases, full.databases);
    assert_eq!(b.commits_per_minute, full.commits_per_minute);
    assert_eq!(b.lost_xids, full.lost_xids);
    assert_eq!(b.databases.iter().map(|d| d.commits).sum::<u64>(), n as u64);
    let timed = full
        .lost_commits
        .iter()
        .filter(|c| c.commit_time.is_some())
        .count() as u64;
    assert_eq!(
        b.commits_per_minute.iter().map(|m| m.commits).sum::<u64>(),
        timed
    );
    for c in &full.lost_commits {
        assert!(b.lost_xids.contains(&c.top_xid.0));
        assert!(c.subxids.iter().all(|s| b.lost_xids.contains(&s.0)));
    }
    assert_eq!(
        b.lost_xids.len(),
        full.lost_commits
            .iter()
            .map(|c| 1 + c.subxids.len())
            .sum::<usize>()
    );
    assert_eq!(
        (b.first_lost_commit_time, b.last_lost_commit_time),
        (full.first_lost_commit_time, full.last_lost_commit_time)
    );
    assert_eq!(b.in_flight, full.in_flight);
    assert_eq!(b.running_at_scan_start, full.running_at_scan_start);
}

/// The full accountant with a tuple limit: under the limit it is the full accountant; past it,
/// it falls back to what the bounded one keeps (the ends, no tuples), with every total exact.
#[test]
fn a_tuple_limit_falls_back_to_bounded_detail_with_exact_totals() {
    use failover_verify::wal::accounting::{Accountant, Detail};
    let (m, recs, end) = fixture_records();
    let full = account(recs.clone(), m.switchpoint, end.clone()).unwrap();
    let n = full.lost_commits.len();
    assert!(full.touched_tuple_count > 4, "{}", full.touched_tuple_count);
    let with_limit = |limit: u64| {
        let mut acc =
            Accountant::with_detail(m.switchpoint, Detail::Full).with_tuple_limit(limit, 2);
        for r in &recs {
            acc.add(r).unwrap();
        }
        acc.finish(end.clone())
    };

    // A limit the loss stays under: nothing changes.
    let under = with_limit(full.touched_tuple_count + 1_000_000);
    assert_eq!(under.tuple_limit_exceeded, None);
    assert_eq!(under.detail, Detail::Full);
    assert_eq!(under.touched_tuples, full.touched_tuples);
    assert_eq!(under.lost_commits, full.lost_commits);

    // A limit the loss passes: bounded detail, every count exact.
    let over = with_limit(3);
    assert_eq!(over.tuple_limit_exceeded, Some(3));
    assert_eq!(over.detail, Detail::Bounded { keep: 2 });
    assert!(over.touched_tuples.is_empty());
    assert_eq!(over.touched_tuple_count, full.touched_tuple_count);
    assert_eq!(over.lost_commit_count, n as u64);
    let ends: Vec<_> = full.lost_commits[..2]
        .iter()
        .chain(&full.lost_commits[n - 2..])
        .cloned()
        .collect();
    assert_eq!(over.lost_commits, ends);
    assert_eq!(over.lost_commits_omitted, (n - 4) as u64);
    assert_eq!(over.tables, full.tables);
    assert_eq!(over.databases, full.databases);
    assert_eq!(over.lost_xids, full.lost_xids);
    assert_eq!(over.abort_count, full.abort_count);
    assert_eq!(over.lost_ddl_count, full.lost_ddl_count);
    assert!(over.aborts_after_switchpoint.len() <= 2 && over.lost_ddl.len() <= 2);
    assert_eq!(over.in_flight, full.in_flight);
}
