//! Unit tests of the WAL-guided planner.

use super::reads::{parse_ms, parse_tid, XidSnapshot};
use super::*;

#[test]
fn tids_round_trip() {
    assert_eq!(parse_tid("(12,5)"), Some((12, 5)));
    assert_eq!(
        parse_tid(&tid_text((4294967295, 291))),
        Some((4294967295, 291))
    );
    assert_eq!(parse_tid("12,5"), None);
}

#[test]
fn snapshots_and_delays_parse() {
    let s = XidSnapshot::parse("740:745:741,743").unwrap();
    assert_eq!(s.xmax, 745);
    assert_eq!(s.xip, HashSet::from([741, 743]));
    // Epoch-qualified (xid8) values keep their low 32 bits.
    let w = XidSnapshot::parse("4294967296:4294967300:").unwrap();
    assert_eq!((w.xmax, w.xip.len()), (4, 0));
    assert_eq!(XidSnapshot::parse("garbage"), None);
    assert_eq!(parse_ms("200ms"), Some(200));
    assert_eq!(parse_ms("1s"), Some(1000));
    assert_eq!(parse_ms("150"), Some(150));
    assert_eq!(parse_ms("1min"), Some(10_000));
}

#[test]
fn only_ended_xids_settle_the_snapshot() {
    let side = SideWal {
        ended: HashSet::from([700, 701, 703]),
        ..SideWal::default()
    };
    let snap = |xmax: u32, xip: &[u32]| XidSnapshot {
        xmax,
        xip: xip.iter().copied().collect(),
    };
    // 700..=703 finished except 702, which the snapshot saw running.
    assert!(side.ended_all(700, &snap(704, &[702])));
    // 702 finished before the snapshot but its commit was not decoded: wait.
    assert!(!side.ended_all(700, &snap(704, &[])));
    // Nothing assigned since the promotion.
    assert!(side.ended_all(700, &snap(700, &[])));
    assert!(!side.ended_all(700, &snap(705, &[702])));
    // Across wraparound, and too many to check.
    let w = SideWal {
        ended: HashSet::from([u32::MAX, 3]),
        ..SideWal::default()
    };
    assert!(w.ended_all(u32::MAX, &snap(4, &[])));
    assert!(!SideWal::default().ended_all(10, &snap(2_000_000, &[])));
}

#[test]
fn coverage_allows_a_page_header() {
    let s = SideWal {
        decoded_to: Some(Lsn(0x3000_1FFA)),
        ..SideWal::default()
    };
    assert!(s.covers(Lsn(0x3000_2000)));
    assert!(s.covers(Lsn(0x3000_2018)));
    assert!(!s.covers(Lsn(0x3000_2100)));
    assert!(!SideWal::default().covers(Lsn(1)));
}
