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

/// The accounting of `recs[..=i]` says an earlier start is needed.
fn needs_earlier(
    recs: &[failover_verify::wal::record::DecodedRecord],
    switchpoint: failover_verify::lsn::Lsn,
) -> bool {
    let so_far = account(recs.iter().cloned(), switchpoint, None).unwrap();
    !so_far.running_at_scan_start.is_empty() || !so_far.prepared_before_scan.is_empty()
}

/// `needs_earlier_start` says, after every record, what the accounting of the records so far
/// finds: a lost commit's xid running at the first RUNNING_XACTS record, or a COMMIT PREPARED
/// whose PREPARE was not read. On the fixture from its start and from each record (everything
/// after the start lost; its RUNNING_XACTS records list no xid).
#[test]
fn an_earlier_start_is_needed_exactly_when_the_records_so_far_say_so() {
    use failover_verify::wal::accounting::Accountant;
    let (_, recs, _) = fixture_records();
    for k in (0..recs.len()).step_by(97) {
        let recs = &recs[k..];
        let switchpoint = recs[0].lsn;
        let mut acc = Accountant::new(switchpoint);
        for (i, r) in recs.iter().enumerate() {
            acc.add(r).unwrap();
            if i % 41 == 0 || i + 1 == recs.len() {
                let want = needs_earlier(&recs[..=i], switchpoint);
                assert_eq!(acc.needs_earlier_start(), want, "from {k}, after {}", r.lsn);
            }
        }
    }
}

/// The same on made-up records: a lost commit of an xid (or of a subtransaction) that the first
/// RUNNING_XACTS record lists, read before or after that record.
#[test]
fn a_lost_commit_running_at_the_first_running_xacts_needs_an_earlier_start() {
    use failover_verify::lsn::Lsn;
    use failover_verify::wal::accounting::Accountant;
    use failover_verify::wal::record::{DecodedRecord, MainData};
    let rec = |lsn: u64, rmid: u8, info: u8, xid: u32, md: Vec<u8>| {
        let mut r = DecodedRecord::empty();
        r.lsn = Lsn(lsn);
        r.end_lsn = Lsn(lsn + 64);
        r.rmid = rmid;
        r.info = info;
        r.xid = Xid(xid);
        r.main_data = MainData::from(bytes::Bytes::from(md));
        r
    };
    // xl_running_xacts: xcnt, subxcnt, overflow, nextXid, oldest, latestCompleted, xids.
    let running = |lsn: u64, xids: &[u32]| {
        let mut md = Vec::new();
        md.extend_from_slice(&(xids.len() as u32).to_le_bytes());
        md.extend_from_slice(&0u32.to_le_bytes());
        md.extend_from_slice(&[0, 0, 0, 0]);
        for v in [800u32, 600, 699] {
            md.extend_from_slice(&v.to_le_bytes());
        }
        for x in xids {
            md.extend_from_slice(&x.to_le_bytes());
        }
        rec(lsn, 8, 0x10, 0, md)
    };
    // xl_xact_commit: the time; with subtransactions, XLOG_XACT_HAS_INFO and their list.
    let commit = |lsn: u64, xid: u32, subxids: &[u32]| {
        let mut md = 1_000_000i64.to_le_bytes().to_vec();
        if subxids.is_empty() {
            return rec(lsn, 1, 0x00, xid, md);
        }
        md.extend_from_slice(&0x02u32.to_le_bytes());
        md.extend_from_slice(&(subxids.len() as u32).to_le_bytes());
        for x in subxids {
            md.extend_from_slice(&x.to_le_bytes());
        }
        rec(lsn, 1, 0x80, xid, md)
    };
    let cases: Vec<(&str, Vec<DecodedRecord>, bool)> = vec![
        (
            "a running xid commits after the record",
            vec![
                running(100, &[700, 701]),
                commit(200, 699, &[]),
                commit(300, 701, &[]),
            ],
            true,
        ),
        (
            "a running xid committed before the record",
            vec![
                commit(50, 700, &[]),
                commit(60, 699, &[]),
                running(100, &[700]),
            ],
            true,
        ),
        (
            "a running subtransaction commits with its parent",
            vec![running(100, &[705]), commit(200, 704, &[705])],
            true,
        ),
        (
            "no running xid commits",
            vec![
                running(100, &[700]),
                commit(200, 699, &[]),
                commit(300, 702, &[]),
            ],
            false,
        ),
        (
            "a running xid commits before the switchpoint",
            vec![
                running(100, &[700]),
                commit(150, 700, &[]),
                commit(300, 702, &[]),
            ],
            false,
        ),
    ];
    for (what, recs, end) in cases {
        let switchpoint = Lsn(if what.contains("before the switchpoint") {
            200
        } else {
            0
        });
        let mut acc = Accountant::new(switchpoint);
        for (i, r) in recs.iter().enumerate() {
            acc.add(r).unwrap();
            let want = needs_earlier(&recs[..=i], switchpoint);
            assert_eq!(acc.needs_earlier_start(), want, "{what}: after {}", r.lsn);
        }
        assert_eq!(acc.needs_earlier_start(), end, "{what}");
    }
}
