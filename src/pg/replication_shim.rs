//! Temporary stand-in until the replication client lands.
#![allow(missing_docs)]
use super::conninfo::ConnParams;
use super::error::PgError;
use super::session::SessionOptions;
use crate::lsn::{Lsn, SystemId, TimelineId};

pub struct IdentifySystem {
    pub system_id: SystemId,
    pub timeline: TimelineId,
    pub xlogpos: Lsn,
}
pub struct ReplicationClient;
impl ReplicationClient {
    pub async fn connect(_p: &ConnParams, _o: &SessionOptions) -> Result<Self, PgError> {
        Ok(ReplicationClient)
    }
    pub async fn identify_system(&mut self) -> Result<IdentifySystem, PgError> {
        todo!()
    }
    pub async fn timeline_history(&mut self, _t: TimelineId) -> Result<(String, Vec<u8>), PgError> {
        todo!()
    }
}
