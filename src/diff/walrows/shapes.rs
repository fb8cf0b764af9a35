//! Small conversions into the row diff's report shapes: origins, keys, ctids, empty tables.

use crate::diff::bisect::to_map;
use crate::diff::bisect::Key;
use crate::diff::report::{ClassCounts, ImageOrigin, Method, NotExamined, Presence, TableReport};
use crate::wal::heap::Tid;
use crate::wal::tuple::ImageSource;
use crate::wal::tuplelog::LoggedRecord;

pub(super) fn origin_of(s: ImageSource) -> ImageOrigin {
    match s {
        ImageSource::RecordData => ImageOrigin::WalRecord,
        ImageSource::RecordDataAndOldTuple => ImageOrigin::WalRecordAndOldTuple,
        ImageSource::PageImage => ImageOrigin::FullPageImage,
        ImageSource::LoggedOld => ImageOrigin::LoggedOldTuple,
    }
}

pub(super) fn not_examined(
    r: &LoggedRecord,
    tid: Tid,
    op: &str,
    key: Option<serde_json::Map<String, serde_json::Value>>,
    reason: String,
) -> NotExamined {
    NotExamined {
        ctid: tid_text(tid),
        op: op.into(),
        xid: r.xid.0,
        lsn: r.lsn.to_string(),
        key,
        reason,
    }
}

pub(super) fn empty_table(db: &str, schema: &str, table: &str) -> TableReport {
    TableReport {
        database: db.into(),
        schema: schema.into(),
        table: table.into(),
        presence: Presence::Both,
        schema_differences: Vec::new(),
        method: Method::WalDecoded,
        fallback_reason: None,
        key_columns: Vec::new(),
        columns: Vec::new(),
        column_types: Vec::new(),
        generated_columns: Vec::new(),
        rows_compared: 0,
        rows_fetched: 0,
        chunks: 0,
        chunks_mismatched: 0,
        queries: 0,
        counts: ClassCounts::default(),
        rows: Vec::new(),
        elapsed_ms: 0,
        error: None,
        not_examined: Vec::new(),
    }
}

pub(super) fn key_map(cols: &[String], k: &Key) -> serde_json::Map<String, serde_json::Value> {
    to_map(cols, k.clone())
}

pub(super) fn tid_text(t: Tid) -> String {
    format!("({},{})", t.block, t.offset)
}

pub(super) fn parse_tid(s: &str) -> Option<Tid> {
    let (b, o) = s
        .trim()
        .strip_prefix('(')?
        .strip_suffix(')')?
        .split_once(',')?;
    Some(Tid {
        block: b.trim().parse().ok()?,
        offset: o.trim().parse().ok()?,
    })
}
