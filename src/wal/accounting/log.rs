//! What a range accountant records for the accountant in WAL order to correct, and the memory
//! it reuses from range to range (module `range`).

use super::pending::Pending;
use crate::wal::lost::ChangeCounts;
use crate::wal::rmgr::WalStats;
use crate::wal::xact::XactRecord;

/// A lost commit's figures as the range computed them (for [`super::Accountant::add_range`] to
/// correct when earlier changes belong to it).
#[derive(Debug, Clone, Copy)]
pub(super) struct LostInfo {
    /// Its database, as computed.
    pub(super) db: Option<u32>,
    /// Whether the commit record names its database (then earlier changes cannot change it).
    pub(super) has_db_id: bool,
    pub(super) counts: ChangeCounts,
    pub(super) ddl: bool,
    pub(super) before: u64,
}

/// A commit or abort of the range: its xids, and which lost commit it is.
#[derive(Debug, Clone, Copy)]
pub(super) struct Resolved {
    pub(super) top: u32,
    /// Its subxids: `subxids[sub.0..sub.0 + sub.1]` of the log.
    pub(super) sub: (u32, u32),
    /// The index of the lost commit among the range's, when it is one.
    pub(super) seq: Option<u64>,
    /// Its xids' changes one by one (`parts[..]` of the log), for a lost commit of several xids.
    pub(super) parts: Option<(u32, u32)>,
}

/// What a range accountant records for the corrections.
#[derive(Debug, Default)]
pub(super) struct RangeLog {
    pub(super) resolved: Vec<Resolved>,
    pub(super) subxids: Vec<u32>,
    pub(super) parts: Vec<(u32, Pending)>,
    /// Per lost commit of the range, in order.
    pub(super) lost: Vec<LostInfo>,
    /// The index of each lost commit in the accountant's `lost_ddl`.
    pub(super) ddl_seqs: Vec<u64>,
}

/// Memory a range was accounted in, to account another range in ([`super::range::RangeAccountant::new`]):
/// fresh memory costs a page fault per page, and a range's log takes hundreds of kilobytes.
#[derive(Debug, Default)]
pub struct Spare {
    pub(super) stats: Option<WalStats>,
    pub(super) log: Option<Box<RangeLog>>,
}

impl RangeLog {
    /// Empties it, its memory kept.
    pub(super) fn clear(&mut self) {
        self.resolved.clear();
        self.subxids.clear();
        self.parts.clear();
        self.lost.clear();
        self.ddl_seqs.clear();
    }

    /// Records a commit or abort (`seq`: the index of the lost commit it makes), with its
    /// xids' changes one by one when it has several (`parts`).
    #[inline] // once per commit or abort
    pub(super) fn commit(&mut self, x: &XactRecord, seq: Option<u64>, parts: Vec<(u32, Pending)>) {
        let sub = (self.subxids.len() as u32, x.subxids.len() as u32);
        self.subxids.extend(x.subxids.iter().map(|s| s.0));
        let parts = (!parts.is_empty()).then(|| {
            let at = self.parts.len() as u32;
            self.parts.extend(parts);
            (at, self.parts.len() as u32 - at)
        });
        self.resolved.push(Resolved {
            top: x.top_xid.0,
            sub,
            seq,
            parts,
        });
    }
}
