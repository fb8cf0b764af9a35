//! The standbys and replication slots the primary lists, with their lag.

use crate::divergence::human_bytes;
use crate::lsn::Lsn;
use crate::node::NodeFacts;
use crate::pg::session::{Session, APPLICATION_NAME};
use crate::report::cluster::{SlotRow, StandbyRow};

pub(super) fn lsn_col(row: &tokio_postgres::Row, i: usize) -> Option<Lsn> {
    row.get::<_, Option<String>>(i).and_then(|s| s.parse().ok())
}

/// `pg_stat_replication`, with the slot each walsender streams through. Leaves out this tool's
/// own replication connections (`$1` = its application_name, never past `startup`): the one
/// `read_facts` opened for IDENTIFY_SYSTEM may not have exited yet.
pub(super) const STANDBYS_SQL: &str = "\
SELECT r.application_name::text, host(r.client_addr), r.client_port, r.state::text,
       r.sync_state::text, r.sent_lsn::text, r.write_lsn::text, r.flush_lsn::text,
       r.replay_lsn::text,
       extract(epoch FROM r.write_lag)::float8, extract(epoch FROM r.flush_lag)::float8,
       extract(epoch FROM r.replay_lag)::float8,
       (SELECT s.slot_name::text FROM pg_replication_slots s WHERE s.active_pid = r.pid LIMIT 1)
  FROM pg_stat_replication r
 WHERE NOT (r.application_name = $1 AND r.state = 'startup')
 ORDER BY r.application_name, r.client_addr, r.client_port";

/// `pg_replication_slots`; `wal_status` exists from PostgreSQL 13 on.
pub(super) fn slots_sql(server_version_num: u32) -> String {
    let wal_status = if server_version_num >= 130000 {
        "wal_status::text"
    } else {
        "NULL::text"
    };
    format!(
        "SELECT slot_name::text, slot_type::text, active, restart_lsn::text, {wal_status}
           FROM pg_replication_slots ORDER BY slot_name"
    )
}

/// Reads the primary's current WAL position, standbys and slots.
pub(super) async fn read_replication(
    session: &Session,
    facts: &NodeFacts,
) -> Result<(Option<Lsn>, Vec<StandbyRow>, Vec<SlotRow>), String> {
    let current: Option<Lsn> = if facts.in_recovery {
        None
    } else {
        let row = session
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .map_err(|e| e.to_string())?;
        row.get::<_, Option<String>>(0).and_then(|s| s.parse().ok())
    };
    let lag = |l: Option<Lsn>| match (current, l) {
        (Some(c), Some(l)) => Some(c.saturating_bytes_since(l)),
        _ => None,
    };
    let standbys = session
        .query(STANDBYS_SQL, &[&APPLICATION_NAME])
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|row| {
            let replay_lsn = lsn_col(row, 8);
            StandbyRow {
                application_name: row.get::<_, Option<String>>(0).unwrap_or_default(),
                client_addr: row.get(1),
                client_port: row.get(2),
                state: row.get(3),
                sync_state: row.get(4),
                sent_lsn: lsn_col(row, 5),
                write_lsn: lsn_col(row, 6),
                flush_lsn: lsn_col(row, 7),
                replay_lsn,
                lag_bytes: lag(replay_lsn),
                write_lag_seconds: row.get(9),
                flush_lag_seconds: row.get(10),
                replay_lag_seconds: row.get(11),
                slot_name: row.get(12),
            }
        })
        .collect();
    let slots = session
        .query(slots_sql(facts.server_version_num).as_str(), &[])
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|row| {
            let restart_lsn = lsn_col(row, 3);
            SlotRow {
                slot_name: row.get::<_, Option<String>>(0).unwrap_or_default(),
                slot_type: row.get::<_, Option<String>>(1).unwrap_or_default(),
                active: row.get::<_, Option<bool>>(2).unwrap_or(false),
                restart_lsn,
                wal_status: row.get(4),
                lag_bytes: lag(restart_lsn),
            }
        })
        .collect();
    Ok((current, standbys, slots))
}

/// `528 bytes`, or `1.5 KiB (1536 bytes)`: exact and readable.
pub(crate) fn bytes_text(n: u64) -> String {
    if n < 1024 {
        human_bytes(n)
    } else {
        format!("{} ({n} bytes)", human_bytes(n))
    }
}
