//! The new primary's own WAL since the promotion: which tuples its post-failover commits
//! touched, for the WAL-guided row diff.
//!
//! The same decoder and accountant as for the former timeline, run on the new timeline with
//! the switchpoint as "switchpoint": the commits it reports as "lost" are the post-failover
//! commits of the new primary, with every heap tuple they wrote or deleted.
//!
//! Decoding starts at the switchpoint itself, so its cost follows the WAL written since the
//! promotion, not what came before it. That is enough: a transaction still running at the
//! switchpoint cannot commit on the new timeline (its backend never existed there), except a
//! prepared one, whose COMMIT PREPARED may follow on the new primary. When a COMMIT PREPARED
//! names a transaction whose PREPARE was not decoded, its earlier changes are needed, and the
//! scan is repeated from the start of the switchpoint's segment, stepping back further while
//! that is not enough (as for the former timeline).

use crate::lsn::{Lsn, TimelineId};
use crate::pg::connect;
use crate::pg::session::SessionOptions;
use crate::pg::ConnParams;

use super::scan::{self, Scan, ScanError};

/// How many segments before the switchpoint's a rescan may start (see the module comment).
const MAX_STEP_BACK_SEGMENTS: u64 = 8;

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
    /// Paces the reading (the new primary serves the business); `None` reads at full speed.
    pub pacer: Option<std::sync::Arc<crate::pg::Pacer>>,
}

impl NewSideSource {
    /// Decodes the new timeline from the switchpoint to `end`; the scan's `lost` section lists
    /// the post-failover commits and their touched tuples. When a transaction prepared before
    /// the switchpoint was committed after it, decodes again from earlier segments (see the
    /// module comment); the caller checks [`Scan::prepared_before_scan`] and
    /// `running_at_scan_start` of the result.
    pub async fn scan_to(&self, end: Lsn) -> Result<Scan, ScanError> {
        let first = self.scan_from(self.switchpoint, end).await?;
        if first.prepared_before_scan.is_empty() {
            return Ok(first);
        }
        let seg = self.seg_size.max(1);
        let mut best = first;
        for back in 0..=MAX_STEP_BACK_SEGMENTS {
            let Some(segno) = self.switchpoint.segment_number(seg).checked_sub(back) else {
                break;
            };
            match self.scan_from(Lsn(segno * seg), end).await {
                Ok(s) => {
                    let done = s.prepared_before_scan.is_empty()
                        && s.lost.running_at_scan_start.is_empty();
                    best = s;
                    if done {
                        break;
                    }
                }
                Err(_) => break, // older WAL is gone: keep what we have
            }
        }
        Ok(best)
    }

    /// One scan of `[start, end)`: replication when the role may, else `pg_wal` over SQL.
    async fn scan_from(&self, start: Lsn, end: Lsn) -> Result<Scan, ScanError> {
        let seg = self.seg_size.max(1);
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
                Some(seg),
                None,
                &scan::ScanOptions::full(),
                self.pacer.as_deref(),
            )
            .await;
            if r.is_ok() {
                return r;
            }
        }
        let s = connect(&self.params, &self.session)
            .await?
            .paced(self.pacer.clone());
        let r = scan::scan_sql_files(
            &s,
            self.timeline,
            seg,
            start,
            end,
            self.switchpoint,
            None,
            &scan::ScanOptions::full(),
        )
        .await;
        s.close().await;
        r
    }
}
