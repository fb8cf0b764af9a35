//! Ranges against one record at a time on made-up records: concurrent transactions in two
//! databases, with subtransactions, catalog changes with and without invalidations, commit
//! records with and without their database, and aborts, cut into ranges at every record.

use super::{RangeAccountant, Spare};
use crate::lsn::{Lsn, Xid};
use crate::wal::accounting::Accountant;
use crate::wal::lost::Detail;
use crate::wal::record::{BlockRef, DecodedRecord, MainData, RelFileLocator};

fn rec(lsn: u64, rmid: u8, info: u8, xid: u32, md: Vec<u8>) -> DecodedRecord {
    let mut r = DecodedRecord::empty();
    r.lsn = Lsn(lsn);
    r.end_lsn = Lsn(lsn + 64);
    r.rmid = rmid;
    r.info = info;
    r.xid = Xid(xid);
    r.main_data = MainData::from(bytes::Bytes::from(md));
    r
}

/// A heap INSERT into `rel` by `xid`.
fn insert(lsn: u64, xid: u32, rel: RelFileLocator) -> DecodedRecord {
    let mut r = rec(lsn, 10, 0x00, xid, vec![1, 0, 0]);
    r.blocks.push(BlockRef {
        rel,
        block: (lsn % 97) as u32,
        ..BlockRef::default()
    });
    r
}

/// A COMMIT (or ABORT) with, as asked, its database, subtransactions and invalidations.
fn end(
    lsn: u64,
    xid: u32,
    abort: bool,
    db: Option<u32>,
    subs: &[u32],
    invals: bool,
) -> DecodedRecord {
    let mut md = (lsn as i64 * 1_000).to_le_bytes().to_vec();
    let xinfo =
        u32::from(db.is_some()) | if subs.is_empty() { 0 } else { 2 } | if invals { 8 } else { 0 };
    let info = if abort { 0x20 } else { 0x00 };
    if xinfo == 0 {
        return rec(lsn, 1, info, xid, md);
    }
    md.extend_from_slice(&xinfo.to_le_bytes());
    if let Some(d) = db {
        md.extend_from_slice(&d.to_le_bytes());
        md.extend_from_slice(&1663u32.to_le_bytes());
    }
    if !subs.is_empty() {
        md.extend_from_slice(&(subs.len() as u32).to_le_bytes());
        for s in subs {
            md.extend_from_slice(&s.to_le_bytes());
        }
    }
    if invals {
        md.extend_from_slice(&1u32.to_le_bytes());
        md.extend_from_slice(&[0u8; 16]);
    }
    rec(lsn, 1, info | 0x80, xid, md)
}

/// A session's open transaction: xid, subxids, database, changes left, whether it wrote a
/// catalog.
type Open = (u32, Vec<u32>, u32, u32, bool);

/// Interleaved transactions of four sessions; every fourth is in a second database, some write
/// catalogs (with or without invalidations), some have subtransactions, some abort.
fn workload() -> Vec<DecodedRecord> {
    let mut seed = 0x2545_f491_u64;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let mut out = Vec::new();
    let mut lsn = 1_000u64;
    let mut xid = 700u32;
    let mut open: Vec<Option<Open>> = vec![None; 4];
    for _ in 0..400 {
        let s = next(4) as usize;
        lsn += 64;
        match open[s].take() {
            None => {
                let db = if xid % 4 == 0 { 7 } else { 5 };
                open[s] = Some((xid, Vec::new(), db, 1 + next(4) as u32, false));
                xid += 1;
            }
            Some((x, mut subs, db, left, catalog)) if left > 0 => {
                // A subtransaction writes in the other database: the accountant takes a
                // transaction's database from its first change that names one, and the ranges
                // must take the same.
                let (writer, rel, cat, wdb) = match next(6) {
                    0 => {
                        subs.push(xid);
                        xid += 1;
                        (*subs.last().unwrap_or(&x), 16_400, false, db ^ 2)
                    }
                    1 | 2 => (x, 1259, true, db),
                    3 if !subs.is_empty() => (subs[0], 16_401, false, db),
                    _ => (x, 16_400 + next(2) as u32, false, db),
                };
                let loc = RelFileLocator {
                    spc: 1663,
                    db: wdb,
                    rel,
                };
                out.push(insert(lsn, writer, loc));
                open[s] = Some((x, subs, db, left - 1, catalog || cat));
            }
            Some((x, subs, db, _, catalog)) => {
                let abort = next(7) == 0;
                let with_db = next(2) == 0;
                let invals = catalog && next(2) != 0;
                out.push(end(lsn, x, abort, with_db.then_some(db), &subs, invals));
            }
        }
    }
    out
}

/// Every record on one accountant.
fn one(recs: &[DecodedRecord], sp: Lsn, keep: usize) -> String {
    let mut a = Accountant::with_detail(sp, Detail::Bounded { keep });
    for r in recs {
        a.add(r).expect("add");
    }
    format!("{:?}", a.finish(None))
}

/// The records cut into ranges at `cuts`, each accounted apart and added in order.
fn by_ranges(recs: &[DecodedRecord], cuts: &[usize], sp: Lsn, keep: usize) -> String {
    let mut a = Accountant::with_detail(sp, Detail::Bounded { keep });
    let mut from = 0;
    let mut spare = Spare::default();
    for &to in cuts.iter().chain(std::iter::once(&recs.len())) {
        let detail = Detail::Bounded { keep };
        let mut r = RangeAccountant::new(sp, detail, std::mem::take(&mut spare));
        for rec in &recs[from..to] {
            assert!(r.add(rec).expect("add"), "a range refused a record");
        }
        spare = a.add_range(r.finish());
        from = to;
    }
    format!("{:?}", a.finish(None))
}

#[test]
fn ranges_cut_anywhere_account_as_one_record_at_a_time() {
    let recs = workload();
    assert!(recs.len() > 250, "{} records", recs.len());
    let n = recs.len();
    for sp in [recs[0].lsn, recs[n / 3].lsn, recs[n / 2].lsn] {
        for keep in [0, 1, 2, 100] {
            let want = one(&recs, sp, keep);
            for cut in 1..n {
                for cuts in [
                    vec![cut],
                    vec![cut / 3, cut],
                    vec![cut / 2, cut, (cut + n) / 2],
                ] {
                    let mut cuts = cuts;
                    cuts.dedup();
                    let got = by_ranges(&recs, &cuts, sp, keep);
                    assert_eq!(want, got, "switchpoint {sp}, keep {keep}, cuts {cuts:?}");
                }
            }
        }
    }
}
