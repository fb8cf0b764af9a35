//! Decodes real PostgreSQL 15 WAL (tests/fixtures/wal/pg15) and compares with pg_waldump.

mod wal_util;

use failover_verify::lsn::TimelineId;
use failover_verify::wal::source::WalDir;
use failover_verify::wal::DecodedRecord;
use wal_util::*;

fn decode_all() -> (Vec<DecodedRecord>, failover_verify::wal::EndOfWal) {
    let m = meta();
    let dir = WalDir::open(fixture_dir(), TimelineId(1)).unwrap();
    assert_eq!(dir.segment_size(), m.seg_size);
    let mut it = dir.read(m.start, None);
    let recs: Vec<DecodedRecord> = it.by_ref().map(|r| r.unwrap()).collect();
    (recs, it.end_of_wal().unwrap().clone())
}

#[test]
fn same_records_as_pg_waldump() {
    let (recs, end) = decode_all();
    let Some(bin) = pg_waldump() else {
        println!("skipped: pg_waldump not installed");
        return;
    };
    let m = meta();
    let tmp = plain_copy();
    let dump = parse_dump(&waldump(&bin, tmp.path(), &["-s", &m.start.to_string()]));
    assert!(
        dump.len() > 1000,
        "pg_waldump printed {} records",
        dump.len()
    );
    assert_eq!(
        recs.len(),
        dump.len(),
        "record count; decoder ended with {end}"
    );
    for (r, d) in recs.iter().zip(&dump) {
        assert_eq!(r.lsn, d.lsn);
        assert_eq!(r.prev, d.prev, "prev at {}", r.lsn);
        assert_eq!(r.xl_tot_len, d.tot_len, "tot_len at {}", r.lsn);
        assert_eq!(r.xid.0, d.xid, "xid at {}", r.lsn);
    }
    println!("{} records match; {end}", recs.len());
}
