//! The new primary's own WAL since the promotion: which tuples its post-failover commits
//! touched, for the WAL-guided row diff.
//!
//! The same decoder and accountant as for the former timeline, run on the new timeline with
//! the switchpoint as "switchpoint": the commits it reports as "lost" are the post-failover
//! commits of the new primary, with every heap tuple they wrote or deleted.

use crate::lsn::{Lsn, TimelineId};
use crate::pg::session::{connect, SessionOptions};
use crate::pg::ConnParams;

use super::scan::{self, Scan, ScanError};

/// Where and how to read the new primary's WAL.
#[derive(Clone, Debug)]
pub struct NewSideSource {
    /// The new primary.
    pub params: ConnParams,
    /// Timeouts (the replication connection derives its own from these).
    pub session: SessionOptions,
    /// Whether the role may open a replication connection (else `pg_wal` over SQL).
    pub can_replicate: bool,
    /// The server's WAL segment size.
    pub seg_size: u64,
    /// The new primary's timeline.
    pub timeline: TimelineId,
    /// Where that timeline branched off the former one.
    pub switchpoint: Lsn,
}

impl NewSideSource {
    /// Decodes the new timeline from the start of the switchpoint's segment to `end`; the
    /// scan's `lost` section lists the post-failover commits and their touched tuples.
    pub async fn scan_to(&self, end: Lsn) -> Result<Scan, ScanError> {
        let seg = self.seg_size.max(1);
        let start = Lsn(self.switchpoint.segment_number(seg) * seg);
        let end = end.max(self.switchpoint);
        if self.can_replicate {
            let ropts = crate::node::replication_options(&self.session);
            let r = scan::scan_replication(
                &self.params,
                &ropts,
                self.timeline,
                start,
                end,
                self.switchpoint,
            )
            .await;
            if r.is_ok() {
                return r;
            }
        }
        let s = connect(&self.params, &self.session).await?;
        let r = scan::scan_sql_files(&s, self.timeline, seg, start, end, self.switchpoint).await;
        s.close().await;
        r
    }
}
