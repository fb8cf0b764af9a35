//! Lost transactions that already left the database: the former primary's logical slots
//! (subscriptions, CDC connectors, `pg_recvlogical`) and physical consumers (standbys,
//! `pg_receivewal`, physical slots), each compared with the commit LSNs of the lost
//! transactions to say which of them that consumer already received.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::evidence::names::RelName;
use crate::finding::{Finding, FindingId};
use crate::lsn::{Lsn, Xid};
use crate::pg::session::{Session, APPLICATION_NAME};
use crate::wal::accounting::{LostCommit, LostTransactions};
use crate::wal::RelFileLocator;

/// What kind of consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerKind {
    /// A logical replication slot: a subscription, a CDC connector, `pg_recvlogical`.
    LogicalSlot,
    /// A physical replication slot (a standby or `pg_receivewal` streaming through it).
    PhysicalSlot,
    /// A physical walsender without a slot: a standby or `pg_receivewal`.
    PhysicalSender,
}

impl ConsumerKind {
    /// The kind in words.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerKind::LogicalSlot => "logical slot",
            ConsumerKind::PhysicalSlot => "physical slot",
            ConsumerKind::PhysicalSender => "physical sender",
        }
    }
}

/// The lost transactions one consumer received.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedLost {
    /// Lost transactions it confirmed (commit LSN below its confirmed position); for a logical
    /// slot only those of its database with row changes in user tables (the ones decoded to it).
    pub transactions: u64,
    /// Lost transactions sent to it (below the walsender's `sent_lsn`) but not confirmed yet:
    /// it may hold them too.
    pub sent_unconfirmed: u64,
    /// False when the report keeps only the first and last lost transactions and some left
    /// out lie below the consumer's position: `transactions` is then a lower bound.
    pub exact: bool,
    /// The smallest xid received.
    pub first_xid: Option<Xid>,
    /// The largest xid received.
    pub last_xid: Option<Xid>,
    /// The commit LSN of the last lost transaction received.
    pub last_commit_lsn: Option<Lsn>,
    /// The tables those transactions changed (`schema.table`, or a relfilenode).
    pub tables: Vec<String>,
    /// Row changes (inserts, updates, deletes in user tables) in them.
    pub row_changes: u64,
}

/// One consumer of the former primary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumer {
    /// What it is.
    pub kind: ConsumerKind,
    /// The slot name, else the walsender's `application_name`.
    pub name: String,
    /// The replication slot, when it uses one.
    pub slot_name: Option<String>,
    /// The output plugin of a logical slot (`pgoutput` for a subscription).
    pub plugin: Option<String>,
    /// The database of a logical slot.
    pub database: Option<String>,
    /// Whether a consumer is connected now.
    pub active: bool,
    /// The connected walsender's `application_name` (a subscription's name).
    pub application_name: Option<String>,
    /// The connected client's address.
    pub client: Option<String>,
    /// How far it confirmed: `confirmed_flush_lsn` (logical slot), `restart_lsn` (physical
    /// slot), or `flush_lsn` (physical sender).
    pub confirmed_lsn: Option<Lsn>,
    /// Which column `confirmed_lsn` came from.
    pub confirmed_from: String,
    /// The walsender's `sent_lsn`, when connected.
    pub sent_lsn: Option<Lsn>,
    /// Bytes of WAL past the switchpoint it was sent or confirmed.
    pub wal_past_switchpoint: u64,
    /// The lost transactions it received, when the lost WAL was decoded.
    pub received: Option<ReceivedLost>,
}

/// The former primary's consumers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downstream {
    /// The switchpoint the positions are compared with.
    pub switchpoint: Lsn,
    /// Every slot and walsender of the former primary.
    pub consumers: Vec<Consumer>,
    /// Why the consumers could not be read (none examined).
    pub not_examined: Option<String>,
}

/// One row of `pg_replication_slots`.
#[derive(Clone, Debug, Default)]
pub struct SlotRow {
    /// `slot_name`.
    pub slot_name: String,
    /// `logical` or `physical`.
    pub slot_type: String,
    /// `plugin`.
    pub plugin: Option<String>,
    /// `database`.
    pub database: Option<String>,
    /// `active`.
    pub active: bool,
    /// `active_pid`.
    pub active_pid: Option<i32>,
    /// `restart_lsn`.
    pub restart_lsn: Option<Lsn>,
    /// `confirmed_flush_lsn`.
    pub confirmed_flush_lsn: Option<Lsn>,
}

/// One row of `pg_stat_replication`.
#[derive(Clone, Debug, Default)]
pub struct SenderRow {
    /// `pid`.
    pub pid: i32,
    /// `application_name`.
    pub application_name: Option<String>,
    /// `client_addr:client_port`.
    pub client: Option<String>,
    /// `sent_lsn`.
    pub sent_lsn: Option<Lsn>,
    /// `flush_lsn`.
    pub flush_lsn: Option<Lsn>,
}

fn lsn_col(row: &tokio_postgres::Row, i: usize) -> Option<Lsn> {
    row.get::<_, Option<String>>(i).and_then(|s| s.parse().ok())
}

/// Reads the former primary's slots and walsenders (this tool's own connections left out).
pub async fn read(session: &Session) -> Result<(Vec<SlotRow>, Vec<SenderRow>), String> {
    let slots = session
        .query(
            "SELECT slot_name::text, slot_type::text, plugin::text, database::text, active,
                    active_pid, restart_lsn::text, confirmed_flush_lsn::text
               FROM pg_replication_slots ORDER BY slot_name",
            &[],
        )
        .await
        .map_err(|e| format!("pg_replication_slots: {e}"))?
        .iter()
        .map(|r| SlotRow {
            slot_name: r.get::<_, Option<String>>(0).unwrap_or_default(),
            slot_type: r.get::<_, Option<String>>(1).unwrap_or_default(),
            plugin: r.get(2),
            database: r.get(3),
            active: r.get::<_, Option<bool>>(4).unwrap_or(false),
            active_pid: r.get(5),
            restart_lsn: lsn_col(r, 6),
            confirmed_flush_lsn: lsn_col(r, 7),
        })
        .collect();
    let senders = session
        .query(
            "SELECT pid, application_name::text,
                    host(client_addr) || ':' || client_port, sent_lsn::text, flush_lsn::text
               FROM pg_stat_replication
              WHERE application_name IS DISTINCT FROM $1
              ORDER BY application_name, pid",
            &[&APPLICATION_NAME],
        )
        .await
        .map_err(|e| format!("pg_stat_replication: {e}"))?
        .iter()
        .map(|r| SenderRow {
            pid: r.get::<_, Option<i32>>(0).unwrap_or_default(),
            application_name: r.get(1),
            client: r.get(2),
            sent_lsn: lsn_col(r, 3),
            flush_lsn: lsn_col(r, 4),
        })
        .collect();
    Ok((slots, senders))
}

/// What the lost WAL says, for [`assess`]: the accountant's lost commits, the relation names
/// and the databases (`oid → name`).
pub struct LostView<'a> {
    /// The accounting.
    pub lost: &'a LostTransactions,
    /// Relation names.
    pub names: &'a BTreeMap<RelFileLocator, RelName>,
    /// Database names by OID.
    pub databases: &'a BTreeMap<u32, String>,
}

impl LostView<'_> {
    fn user_rows(&self, c: &LostCommit) -> (u64, Vec<String>) {
        let mut rows = 0;
        let mut tables = Vec::new();
        for (rel, n) in &c.per_rel {
            let name = self.names.get(rel);
            let kind = name.map_or("unknown", |n| n.kind.as_str());
            if kind == "catalog" || kind == "toast" || rel.db == 0 || rel.rel < 16384 {
                continue;
            }
            rows += n.inserts + n.updates + n.hot_updates + n.deletes + n.truncates;
            tables.push(
                name.and_then(|n| n.table.clone())
                    .unwrap_or_else(|| rel.to_string()),
            );
        }
        (rows, tables)
    }

    /// The lost transactions below `cut` that a consumer of `database` (all, when `None`)
    /// received; `logical` keeps only those with user-table row changes.
    fn below(&self, cut: Lsn, database: Option<&str>, logical: bool) -> ReceivedLost {
        let kept = &self.lost.lost_commits;
        let mut r = ReceivedLost {
            exact: true,
            ..ReceivedLost::default()
        };
        let mut tables = BTreeSet::new();
        for c in kept.iter().filter(|c| c.lsn < cut) {
            if let Some(db) = database {
                let name = c.db_id.and_then(|d| self.databases.get(&d));
                if name.map(String::as_str) != Some(db) {
                    continue;
                }
            }
            let (rows, t) = self.user_rows(c);
            if logical && rows == 0 {
                continue;
            }
            r.transactions += 1;
            r.row_changes += rows;
            tables.extend(t);
            r.first_xid = Some(r.first_xid.map_or(c.top_xid, |x| x.min(c.top_xid)));
            r.last_xid = Some(r.last_xid.map_or(c.top_xid, |x| x.max(c.top_xid)));
            r.last_commit_lsn = Some(c.lsn);
        }
        // The accountant keeps the first and the last lost commits: those left out lie
        // between the two halves, and some may be below the cut.
        if self.lost.lost_commits_omitted > 0 && kept.len() >= 2 {
            let head_last = kept[kept.len() / 2 - 1].lsn;
            if cut > head_last {
                r.exact = false;
            }
        }
        r.tables = tables.into_iter().collect();
        r
    }
}

/// Every consumer with its position, and the lost transactions it received when `lost` is
/// known.
pub fn assess(
    switchpoint: Lsn,
    slots: &[SlotRow],
    senders: &[SenderRow],
    lost: Option<&LostView<'_>>,
) -> Downstream {
    let mut consumers = Vec::new();
    let sender_of = |pid: Option<i32>| pid.and_then(|p| senders.iter().find(|s| s.pid == p));
    let past = |l: Option<Lsn>| l.map_or(0, |l| l.saturating_bytes_since(switchpoint));
    for s in slots {
        let w = sender_of(s.active_pid.filter(|_| s.active));
        let logical = s.slot_type == "logical";
        let (confirmed, from) = if logical {
            (s.confirmed_flush_lsn, "confirmed_flush_lsn")
        } else {
            (s.restart_lsn, "restart_lsn")
        };
        let confirmed = if logical {
            confirmed
        } else {
            confirmed.max(w.and_then(|w| w.flush_lsn))
        };
        let sent = w.and_then(|w| w.sent_lsn);
        let received = lost.map(|v| {
            let db = if logical { s.database.as_deref() } else { None };
            let mut r = confirmed.map_or_else(
                || ReceivedLost {
                    exact: true,
                    ..ReceivedLost::default()
                },
                |c| v.below(c, db, logical),
            );
            if let Some(sent) = sent.filter(|s| Some(*s) > confirmed) {
                r.sent_unconfirmed = v.below(sent, db, logical).transactions - r.transactions;
            }
            r
        });
        consumers.push(Consumer {
            kind: if logical {
                ConsumerKind::LogicalSlot
            } else {
                ConsumerKind::PhysicalSlot
            },
            name: s.slot_name.clone(),
            slot_name: Some(s.slot_name.clone()),
            plugin: s.plugin.clone(),
            database: s.database.clone(),
            active: s.active,
            application_name: w.and_then(|w| w.application_name.clone()),
            client: w.and_then(|w| w.client.clone()),
            confirmed_lsn: confirmed,
            confirmed_from: from.into(),
            sent_lsn: sent,
            wal_past_switchpoint: past(confirmed.max(sent)),
            received,
        });
    }
    // Physical walsenders without a slot (a slot's walsender is listed with its slot).
    for w in senders {
        if slots
            .iter()
            .any(|s| s.active && s.active_pid == Some(w.pid))
        {
            continue;
        }
        let received = lost.map(|v| {
            let mut r = w.flush_lsn.map_or_else(
                || ReceivedLost {
                    exact: true,
                    ..ReceivedLost::default()
                },
                |c| v.below(c, None, false),
            );
            if let Some(sent) = w.sent_lsn.filter(|s| Some(*s) > w.flush_lsn) {
                r.sent_unconfirmed = v.below(sent, None, false).transactions - r.transactions;
            }
            r
        });
        consumers.push(Consumer {
            kind: ConsumerKind::PhysicalSender,
            name: w
                .application_name
                .clone()
                .unwrap_or_else(|| format!("pid {}", w.pid)),
            slot_name: None,
            plugin: None,
            database: None,
            active: true,
            application_name: w.application_name.clone(),
            client: w.client.clone(),
            confirmed_lsn: w.flush_lsn,
            confirmed_from: "flush_lsn".into(),
            sent_lsn: w.sent_lsn,
            wal_past_switchpoint: past(w.flush_lsn.max(w.sent_lsn)),
            received,
        });
    }
    Downstream {
        switchpoint,
        consumers,
        not_examined: None,
    }
}

/// Reads the former primary's consumers and compares them with the decoded lost WAL, when
/// there is one; a failed read is recorded in `not_examined`.
pub async fn examine(
    session: &Session,
    switchpoint: Lsn,
    evidence: Option<&crate::evidence::Evidence>,
) -> Downstream {
    match read(session).await {
        Ok((slots, senders)) => {
            let view = evidence.map(|e| LostView {
                lost: &e.lost,
                names: &e.names,
                databases: &e.databases,
            });
            assess(switchpoint, &slots, &senders, view.as_ref())
        }
        Err(e) => Downstream {
            switchpoint,
            consumers: Vec::new(),
            not_examined: Some(e),
        },
    }
}

fn who(c: &Consumer) -> String {
    let mut s = format!("{} {}", c.kind.as_str(), c.name);
    let mut details = Vec::new();
    if let Some(p) = &c.plugin {
        details.push(format!("plugin {p}"));
    }
    if let Some(d) = &c.database {
        details.push(format!("database {d}"));
    }
    match (&c.application_name, &c.client) {
        (Some(a), Some(cl)) => details.push(format!("connected: {a} from {cl}")),
        (Some(a), None) => details.push(format!("connected: {a}")),
        _ if !c.active => details.push("not connected".into()),
        _ => {}
    }
    if !details.is_empty() {
        s.push_str(&format!(" ({})", details.join(", ")));
    }
    s
}

fn xids(r: &ReceivedLost) -> String {
    match (r.first_xid, r.last_xid) {
        (Some(a), Some(b)) if a == b => format!("xid {a}"),
        (Some(a), Some(b)) => format!("xids {a}..{b}"),
        _ => "no xid".into(),
    }
}

/// The findings: consumers that received lost transactions or WAL past the switchpoint, and
/// the consumers that could not be examined.
pub fn findings(d: &Downstream, lost_commits: Option<u64>) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(why) = &d.not_examined {
        out.push(
            Finding::new(
                FindingId::DownstreamNotExamined,
                format!("downstream consumers of the former primary were not examined: {why}"),
            )
            .with_hint("on the former primary run SELECT slot_name, slot_type, database, confirmed_flush_lsn, restart_lsn FROM pg_replication_slots; and SELECT application_name, client_addr, sent_lsn, flush_lsn FROM pg_stat_replication; every position past the switchpoint received lost WAL (GRANT pg_monitor TO the role)"),
        );
    }
    let of_total = lost_commits.map_or_else(String::new, |n| format!(" of the {n}"));
    for c in &d.consumers {
        match (c.kind, &c.received) {
            (ConsumerKind::LogicalSlot, Some(r)) if r.transactions + r.sent_unconfirmed > 0 => {
                let mut m = format!(
                    "{} confirmed {}{} {}lost transaction(s){} ({}, {} row change(s) in {}) up to {}: the downstream system now holds data the database lost",
                    who(c),
                    r.transactions,
                    of_total,
                    if r.exact { "" } else { "(at least) " },
                    c.database.as_ref().map_or_else(String::new, |d| format!(" in database {d}")),
                    xids(r),
                    r.row_changes,
                    if r.tables.is_empty() { "no user table".into() } else { r.tables.join(", ") },
                    crate::lsn::lsn_or_dash(c.confirmed_lsn),
                );
                if r.sent_unconfirmed > 0 {
                    m.push_str(&format!(
                        "; {} more were sent to it (up to {}) and not confirmed yet: it may hold them too",
                        r.sent_unconfirmed,
                        crate::lsn::lsn_or_dash(c.sent_lsn)
                    ));
                }
                out.push(Finding::new(FindingId::DownstreamReceivedLost, m).with_hint(format!(
                    "reconcile that consumer with the new primary: the lost {} are in the report; keep slot {} on the former primary until then",
                    xids(r),
                    c.name
                )));
            }
            (ConsumerKind::LogicalSlot, None) if c.wal_past_switchpoint > 0 => {
                out.push(
                    Finding::new(
                        FindingId::DownstreamReceivedLost,
                        format!(
                            "{} is {} bytes past the switchpoint {} (at {}): it received lost transactions, how many is unknown because the lost WAL was not decoded",
                            who(c),
                            c.wal_past_switchpoint,
                            d.switchpoint,
                            crate::lsn::lsn_or_dash(c.confirmed_lsn.max(c.sent_lsn)),
                        ),
                    )
                    .with_hint("make the lost WAL readable (see wal_unreadable) and re-run to list them; reconcile that consumer with the new primary"),
                );
            }
            (ConsumerKind::PhysicalSlot | ConsumerKind::PhysicalSender, r)
                if c.wal_past_switchpoint > 0 =>
            {
                let commits = r.as_ref().map_or_else(String::new, |r| {
                    format!(
                        ", with {}{} lost commit(s){}",
                        if r.exact { "" } else { "at least " },
                        r.transactions + r.sent_unconfirmed,
                        if r.transactions > 0 {
                            format!(" ({})", xids(r))
                        } else {
                            String::new()
                        }
                    )
                });
                out.push(
                    Finding::new(
                        FindingId::WalShippedPastSwitchpoint,
                        format!(
                            "{} received {} bytes of the former primary's WAL past the switchpoint {} (up to {}){commits}: another copy of the lost WAL",
                            who(c),
                            c.wal_past_switchpoint,
                            d.switchpoint,
                            crate::lsn::lsn_or_dash(c.confirmed_lsn.max(c.sent_lsn)),
                        ),
                    )
                    .with_hint("keep that copy (a standby: do not rewind or re-clone it; pg_receivewal: keep its files) until the lost transactions are accounted for"),
                );
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::accounting::ChangeCounts;

    fn commit(xid: u32, lsn: u64, db: u32, rows: u64) -> LostCommit {
        let rel = RelFileLocator {
            spc: 1663,
            db,
            rel: 16400,
        };
        LostCommit {
            top_xid: Xid(xid),
            subxids: Vec::new(),
            lsn: Lsn(lsn),
            commit_time: None,
            db_id: Some(db),
            prepared: false,
            gid: None,
            has_invalidations: false,
            ddl: false,
            changes: ChangeCounts::default(),
            per_rel: if rows > 0 {
                vec![(
                    rel,
                    ChangeCounts {
                        inserts: rows,
                        ..ChangeCounts::default()
                    },
                )]
            } else {
                Vec::new()
            },
            dropped_rels: Vec::new(),
            changes_before_switchpoint: 0,
        }
    }

    #[test]
    fn counts_what_each_consumer_confirmed_and_was_sent() {
        let mut lost = crate::wal::accounting::Accountant::new(Lsn(0x1000)).finish(None);
        lost.lost_commits = vec![
            commit(700, 0x1100, 5, 1),
            commit(701, 0x1200, 5, 2),
            commit(702, 0x1300, 6, 1),
            commit(703, 0x1400, 5, 0),
            commit(704, 0x1500, 5, 1),
        ];
        lost.lost_commit_count = 5;
        let names = BTreeMap::from([(
            RelFileLocator {
                spc: 1663,
                db: 5,
                rel: 16400,
            },
            RelName {
                database: Some("app".into()),
                table: Some("public.t".into()),
                kind: "table".into(),
                oid: None,
            },
        )]);
        let dbs = BTreeMap::from([(5, "app".to_string()), (6, "other".to_string())]);
        let view = LostView {
            lost: &lost,
            names: &names,
            databases: &dbs,
        };
        let slots = vec![
            SlotRow {
                slot_name: "sub".into(),
                slot_type: "logical".into(),
                database: Some("app".into()),
                active: true,
                active_pid: Some(10),
                confirmed_flush_lsn: Some(Lsn(0x1250)),
                ..SlotRow::default()
            },
            SlotRow {
                slot_name: "standby".into(),
                slot_type: "physical".into(),
                restart_lsn: Some(Lsn(0x1450)),
                ..SlotRow::default()
            },
        ];
        let senders = vec![
            SenderRow {
                pid: 10,
                application_name: Some("sub".into()),
                sent_lsn: Some(Lsn(0x1600)),
                ..SenderRow::default()
            },
            SenderRow {
                pid: 11,
                application_name: Some("pg_receivewal".into()),
                flush_lsn: Some(Lsn(0x1000)),
                sent_lsn: Some(Lsn(0x1000)),
                ..SenderRow::default()
            },
        ];
        let d = assess(Lsn(0x1000), &slots, &senders, Some(&view));
        assert_eq!(d.consumers.len(), 3);
        let sub = d.consumers[0].received.as_ref().unwrap();
        assert_eq!((sub.transactions, sub.sent_unconfirmed), (2, 1), "{sub:?}");
        assert_eq!(
            (sub.first_xid, sub.last_xid),
            (Some(Xid(700)), Some(Xid(701)))
        );
        assert_eq!(sub.tables, vec!["public.t".to_string()]);
        assert_eq!(sub.row_changes, 3);
        let phys = d.consumers[1].received.as_ref().unwrap();
        assert_eq!(phys.transactions, 4, "all databases, empty ones too");
        assert_eq!(d.consumers[2].wal_past_switchpoint, 0);
        let f = findings(&d, Some(5));
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].id, FindingId::DownstreamReceivedLost);
        assert!(
            f[0].message.contains("confirmed 2 of the 5 lost"),
            "{}",
            f[0].message
        );
        assert!(
            f[0].message.contains("1 more were sent"),
            "{}",
            f[0].message
        );
        assert_eq!(f[1].id, FindingId::WalShippedPastSwitchpoint);

        // Nothing read: one finding naming the queries to run.
        let none = Downstream {
            switchpoint: Lsn(0x1000),
            consumers: Vec::new(),
            not_examined: Some("the former primary was not read".into()),
        };
        let f = findings(&none, Some(5));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].id, FindingId::DownstreamNotExamined);
        assert!(f[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("pg_replication_slots"));
    }
}
