//! Unit tests of the rows rebuilt from the WAL: chains through updates and deletes, cross-check.

use crate::diff::report::{DiffKind, RowDiff, RowVersion, TablesReport};
use crate::lsn::Lsn;
use crate::lsn::Xid;
use crate::wal::heap::Tid;
use crate::wal::tuple::RecordTuples;
use crate::wal::tuple::{HeapTuple, ImageSource, NewTuple, NewTupleOp, TupleImage};
use crate::wal::tuplelog::LoggedRecord;
use crate::wal::RelFileLocator;

use super::chains::*;
use crate::diff::bisect::to_map;

use super::shapes::{empty_table, parse_tid, tid_text};
use super::*;

fn rec(lsn: u64, xid: u32, new: Vec<(Tid, NewTupleOp)>, delete: Option<Tid>) -> LoggedRecord {
    let rel = RelFileLocator {
        spc: 1663,
        db: 5,
        rel: 16400,
    };
    LoggedRecord {
        lsn: Lsn(lsn),
        xid: Xid(xid),
        rel,
        tuples: RecordTuples {
            new: new
                .into_iter()
                .map(|(tid, op)| NewTuple {
                    lsn: Lsn(lsn),
                    xid: Xid(xid),
                    rel,
                    tid,
                    op,
                    source: ImageSource::RecordData,
                    image: TupleImage::Complete(
                        HeapTuple::from_parts(1, 0, 24, &[0, 1, 2, 3, 4]).unwrap(),
                    ),
                })
                .collect(),
            old: None,
        },
        delete,
    }
}

fn tid(block: u32, offset: u16) -> Tid {
    Tid { block, offset }
}

#[test]
fn chains_follow_rows_through_updates_and_deletes() {
    let recs = [
        rec(1, 10, vec![(tid(0, 1), NewTupleOp::Insert)], None),
        rec(
            2,
            10,
            vec![(
                tid(0, 2),
                NewTupleOp::Update {
                    hot: true,
                    old: tid(0, 1),
                },
            )],
            None,
        ),
        rec(
            3,
            11,
            vec![(
                tid(5, 3),
                NewTupleOp::Update {
                    hot: false,
                    old: tid(4, 9),
                },
            )],
            None,
        ),
        rec(4, 11, vec![], Some(tid(5, 3))),
        rec(5, 12, vec![], Some(tid(7, 7))),
    ];
    let refs: Vec<&LoggedRecord> = recs.iter().collect();
    let chains = build_chains(&refs);
    assert_eq!(chains.len(), 3);
    assert_eq!(chains[0].origin, None);
    assert_eq!(chains[0].steps.len(), 2);
    assert_eq!(chains[1].origin, Some(tid(4, 9)));
    assert_eq!(
        chains[1].steps.iter().map(|s| s.op).collect::<Vec<_>>(),
        ["update", "delete"]
    );
    assert_eq!(chains[2].origin, Some(tid(7, 7)));
    assert_eq!(parse_tid(&tid_text(tid(4, 9))), Some(tid(4, 9)));
}

#[test]
fn cross_check_names_every_difference() {
    let v = |x: &str| RowVersion {
        xmin: 700,
        values: to_map(
            &["id".into(), "v".into()],
            vec![Some("1".into()), Some(x.into())],
        ),
        image: None,
    };
    let row = |x: &str| RowDiff {
        key: Some(to_map(&["id".into()], vec![Some("1".into())])),
        kind: DiffKind::MissingOnNew,
        class: super::super::RowClass::LostInsert,
        former: Some(v(x)),
        new: None,
    };
    let report = |x: &str| {
        let mut t = empty_table("db", "public", "t");
        t.rows.push(row(x));
        TablesReport {
            tables: vec![t],
            ..TablesReport::default()
        }
    };
    assert!(cross_check(&report("a"), &report("a")).is_empty());
    let d = cross_check(&report("a"), &report("tampered"));
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].contains("former version differs"), "{d:?}");
    assert_eq!(cross_check(&report("a"), &TablesReport::default()).len(), 1);
}
