//! Wire types of the former primary's consumers (slots, walsenders) and what they received.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::lsn::{Lsn, Xid};

use super::wire::Wire;

/// What kind of downstream consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerKind {
    /// A logical replication slot: a subscription, a CDC connector, `pg_recvlogical`.
    LogicalSlot,
    /// A physical replication slot (a standby or `pg_receivewal` streaming through it).
    PhysicalSlot,
    /// A physical walsender without a slot: a standby or `pg_receivewal`.
    PhysicalSender,
}

/// The lost transactions one consumer received.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReceivedLost {
    /// Lost transactions it confirmed (commit LSN below its confirmed position); for a logical
    /// slot only those of its database with row changes in user tables.
    pub transactions: u64,
    /// Lost transactions sent to it but not confirmed yet: it may hold them too.
    pub sent_unconfirmed: u64,
    /// False when some lost transactions left out of the report lie below its position:
    /// `transactions` is then a lower bound.
    pub exact: bool,
    /// The smallest xid received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_xid: Option<Xid>,
    /// The largest xid received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_xid: Option<Xid>,
    /// The commit LSN of the last lost transaction received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_commit_lsn: Option<Lsn>,
    /// The tables those transactions changed.
    pub tables: Vec<String>,
    /// Row changes in user tables in them.
    pub row_changes: u64,
}

/// One consumer of the former primary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DownstreamConsumer {
    /// What it is.
    pub kind: ConsumerKind,
    /// The slot name, else the walsender's `application_name`.
    pub name: String,
    /// The replication slot, when it uses one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_name: Option<String>,
    /// The output plugin of a logical slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// The database of a logical slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Whether a consumer is connected now.
    pub active: bool,
    /// The connected walsender's `application_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_name: Option<String>,
    /// The connected client's `address:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// How far it confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_lsn: Option<Lsn>,
    /// Which column `confirmed_lsn` came from: `confirmed_flush_lsn`, `restart_lsn`, `flush_lsn`.
    pub confirmed_from: String,
    /// The walsender's `sent_lsn`, when connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_lsn: Option<Lsn>,
    /// Bytes of WAL past the switchpoint it was sent or confirmed.
    pub wal_past_switchpoint: u64,
    /// The lost transactions it received, when the lost WAL was decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<ReceivedLost>,
}

/// The report's `downstream` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Downstream {
    /// The switchpoint the positions are compared with.
    pub switchpoint: Lsn,
    /// Every slot and walsender of the former primary.
    pub consumers: Vec<DownstreamConsumer>,
    /// Why the consumers could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_examined: Option<String>,
}

impl Wire for crate::downstream::ConsumerKind {
    type Out = ConsumerKind;
    fn wire(&self) -> ConsumerKind {
        match self {
            crate::downstream::ConsumerKind::LogicalSlot => ConsumerKind::LogicalSlot,
            crate::downstream::ConsumerKind::PhysicalSlot => ConsumerKind::PhysicalSlot,
            crate::downstream::ConsumerKind::PhysicalSender => ConsumerKind::PhysicalSender,
        }
    }
}

impl Wire for crate::downstream::ReceivedLost {
    type Out = ReceivedLost;
    fn wire(&self) -> ReceivedLost {
        ReceivedLost {
            transactions: self.transactions.wire(),
            sent_unconfirmed: self.sent_unconfirmed.wire(),
            exact: self.exact.wire(),
            first_xid: self.first_xid.wire(),
            last_xid: self.last_xid.wire(),
            last_commit_lsn: self.last_commit_lsn.wire(),
            tables: self.tables.wire(),
            row_changes: self.row_changes.wire(),
        }
    }
}

impl Wire for crate::downstream::Consumer {
    type Out = DownstreamConsumer;
    fn wire(&self) -> DownstreamConsumer {
        DownstreamConsumer {
            kind: self.kind.wire(),
            name: self.name.wire(),
            slot_name: self.slot_name.wire(),
            plugin: self.plugin.wire(),
            database: self.database.wire(),
            active: self.active.wire(),
            application_name: self.application_name.wire(),
            client: self.client.wire(),
            confirmed_lsn: self.confirmed_lsn.wire(),
            confirmed_from: self.confirmed_from.wire(),
            sent_lsn: self.sent_lsn.wire(),
            wal_past_switchpoint: self.wal_past_switchpoint.wire(),
            received: self.received.wire(),
        }
    }
}

impl Wire for crate::downstream::Downstream {
    type Out = Downstream;
    fn wire(&self) -> Downstream {
        Downstream {
            switchpoint: self.switchpoint.wire(),
            consumers: self.consumers.wire(),
            not_examined: self.not_examined.wire(),
        }
    }
}
