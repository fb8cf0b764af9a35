//! Reads on the new primary for the WAL-guided diff: WAL positions, relation info, rows at ctids.

use std::collections::HashSet;

use crate::diff::bisect::Key;
use crate::diff::catalog::TablePair;
use crate::diff::chunk::query_err;
use crate::diff::error::{DiffError, Node};
use crate::diff::hash::text_array;
use crate::lsn::Lsn;
use crate::pg::Session;
use crate::wal::RelFileLocator;

/// Tids per positional read.
pub(super) const TIDS_PER_QUERY: usize = 10_000;

/// A page header: an insert position may sit this far past the end of the last record.
pub(super) const PAGE_HEADER_SLACK: u64 = 40;

/// Where one table lives on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RelInfo {
    pub(super) oid: u32,
    pub(super) heap: RelFileLocator,
    pub(super) toast: Option<RelFileLocator>,
}

/// A tid as `(block, offset)`.
pub(super) type TidKey = (u32, u16);

pub(super) fn tid_text(t: TidKey) -> String {
    format!("({},{})", t.0, t.1)
}

pub(super) fn parse_tid(s: &str) -> Option<TidKey> {
    let (b, o) = s
        .trim()
        .strip_prefix('(')?
        .strip_suffix(')')?
        .split_once(',')?;
    Some((b.trim().parse().ok()?, o.trim().parse().ok()?))
}

/// A snapshot's xid horizon, from `pg_current_snapshot()` (xids truncated to 32 bits).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct XidSnapshot {
    /// The first xid the snapshot sees as not yet started.
    pub(super) xmax: u32,
    /// The xids it sees running.
    pub(super) xip: HashSet<u32>,
}

impl XidSnapshot {
    /// From `xmin:xmax:xip,...` (`pg_snapshot` text).
    pub(super) fn parse(s: &str) -> Option<XidSnapshot> {
        let mut parts = s.trim().split(':');
        let _xmin = parts.next()?;
        let xmax = parts.next()?.parse::<u64>().ok()? as u32;
        let xip = match parts.next()? {
            "" => HashSet::new(),
            list => list
                .split(',')
                .map(|x| x.parse::<u64>().ok().map(|x| x as u32))
                .collect::<Option<_>>()?,
        };
        Some(XidSnapshot { xmax, xip })
    }
}

/// The new primary's WAL positions and snapshot, read once inside the comparison's snapshot.
#[derive(Debug, Clone)]
pub(super) struct NewPositions {
    pub(super) flush: Lsn,
    pub(super) insert: Lsn,
    pub(super) wal_writer_delay_ms: u64,
    pub(super) snapshot: XidSnapshot,
}

/// Where the new primary's WAL must be decoded to for this snapshot: its flush position.
/// Synchronous commits are flushed before they become visible, so the flush position read
/// after the snapshot was taken covers them; asynchronous ones may still be unflushed (see
/// [`wait_for_flush`]). `None` when the server is in recovery.
pub(super) async fn new_side_positions(
    s: &Session,
) -> Result<Option<NewPositions>, crate::pg::PgError> {
    const SQL: &str = "SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE \
        pg_catalog.pg_current_wal_flush_lsn()::text END, \
        CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE \
        pg_catalog.pg_current_wal_insert_lsn()::text END, \
        pg_catalog.current_setting('wal_writer_delay'), \
        pg_catalog.pg_current_snapshot()::text";
    let r = s.query_one(SQL, &[]).await?;
    let parse = |v: Option<String>| v.and_then(|t| t.parse::<Lsn>().ok());
    let (Some(flush), Some(insert)) = (parse(r.get(0)), parse(r.get(1))) else {
        return Ok(None);
    };
    let delay: Option<String> = r.get(2);
    Ok(Some(NewPositions {
        flush,
        insert,
        wal_writer_delay_ms: delay.as_deref().and_then(parse_ms).unwrap_or(200),
        // An unparsable snapshot reads as "nothing known to have ended": the wait decides.
        snapshot: r
            .get::<_, Option<String>>(3)
            .as_deref()
            .and_then(XidSnapshot::parse)
            .unwrap_or(XidSnapshot {
                xmax: u32::MAX,
                xip: HashSet::new(),
            }),
    }))
}

/// `200ms`, `1s`, `150` (milliseconds) → milliseconds, clamped to 1 ms .. 10 s.
pub(super) fn parse_ms(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = v.strip_suffix("min") {
        (n, 60_000)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000)
    } else {
        (v, 1)
    };
    Some((num.trim().parse::<u64>().ok()? * scale).clamp(1, 10_000))
}

/// Asynchronous commits reach disk within three `wal_writer_delay`s: reads the flush position
/// again until it passes the insert position read with the snapshot, or that delay is over.
pub(super) async fn wait_for_flush(
    s: &Session,
    pos: &NewPositions,
) -> Result<Lsn, crate::pg::PgError> {
    const FLUSH_SQL: &str = "SELECT pg_catalog.pg_current_wal_flush_lsn()::text";
    let deadline = std::time::Instant::now()
        + std::time::Duration::from_millis(3 * pos.wal_writer_delay_ms + 50);
    let mut flush = pos.flush;
    while flush.0 + PAGE_HEADER_SLACK < pos.insert.0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let r = s.query_one(FLUSH_SQL, &[]).await?;
        flush = r
            .get::<_, Option<String>>(0)
            .and_then(|t| t.parse::<Lsn>().ok())
            .unwrap_or(flush);
    }
    Ok(flush)
}

/// The table's OID and relfilenodes (heap and TOAST) in the session's snapshot.
pub(super) async fn rel_info(
    s: &Session,
    pair: &TablePair,
) -> Result<Option<RelInfo>, crate::pg::PgError> {
    const SQL: &str = "\
        SELECT c.oid::int8, c.relfilenode::int8, \
               (CASE WHEN c.reltablespace = 0 THEN d.dattablespace ELSE c.reltablespace END)::int8, \
               d.oid::int8, t.relfilenode::int8, \
               (CASE WHEN t.reltablespace = 0 THEN d.dattablespace ELSE t.reltablespace END)::int8 \
          FROM pg_catalog.pg_class c \
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
          JOIN pg_catalog.pg_database d ON d.datname = pg_catalog.current_database() \
          LEFT JOIN pg_catalog.pg_class t ON t.oid = c.reltoastrelid \
         WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'r'";
    let Some(r) = s.query_opt(SQL, &[&pair.schema, &pair.name]).await? else {
        return Ok(None);
    };
    let relfilenode: i64 = r.get(1);
    if relfilenode == 0 {
        return Ok(None); // a mapped relation: not a user table
    }
    let db = r.get::<_, i64>(3) as u32;
    let toast = r
        .get::<_, Option<i64>>(4)
        .zip(r.get::<_, Option<i64>>(5))
        .map(|(rel, spc)| RelFileLocator {
            spc: spc as u32,
            db,
            rel: rel as u32,
        });
    Ok(Some(RelInfo {
        oid: r.get::<_, i64>(0) as u32,
        heap: RelFileLocator {
            spc: r.get::<_, i64>(2) as u32,
            db,
            rel: relfilenode as u32,
        },
        toast,
    }))
}

/// The visible rows at `tids` on one node: (tid, xmin, key).
pub(super) async fn read_at(
    s: &Session,
    node: Node,
    pair: &TablePair,
    tids: &[TidKey],
) -> Result<Vec<(TidKey, u32, Key)>, DiffError> {
    let mut out = Vec::new();
    let sql = format!(
        "SELECT ctid::text, xmin::text::int8, {} FROM {} WHERE ctid = ANY($1::text[]::tid[])",
        text_array(&pair.key),
        pair.sql_name()
    );
    for batch in tids.chunks(TIDS_PER_QUERY) {
        let arr: Vec<String> = batch.iter().map(|t| tid_text(*t)).collect();
        let rows = s
            .query(sql.as_str(), &[&arr])
            .await
            .map_err(|e| query_err(node, s, pair, "reading rows by tid", e))?;
        for r in rows {
            let ctid: String = r.get(0);
            let tid = parse_tid(&ctid).ok_or_else(|| DiffError::Unexpected {
                node,
                target: s.target().to_string(),
                table: format!("{}.{}", pair.database, pair.display_name()),
                message: format!("unparsable ctid {ctid:?}"),
            })?;
            out.push((tid, r.get::<_, i64>(1) as u32, r.get::<_, Key>(2)));
        }
    }
    Ok(out)
}
