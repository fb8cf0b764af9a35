//! Classification that explains: each differing row version is attributed with the xids of the
//! lost commits (from WAL accounting) and the first xid the new primary could assign.

use super::report::{DiffKind, RowClass};

/// Attribution input, filled by the integrator from the WAL decoder.
#[derive(Clone, Debug, Default)]
pub struct Attribution {
    /// Top-level and subtransaction xids of lost commits on the former primary.
    pub lost_xids: crate::wal::xidset::XidSet,
    /// First xid the new primary could assign after promotion: xids at or after it (modulo-2^32
    /// comparison like `TransactionIdFollowsOrEquals`, ignoring frozen/bootstrap xids < 3) are
    /// post-failover writes.
    pub new_side_first_xid: Option<u32>,
}

/// `TransactionIdFollowsOrEquals(a, b)` for normal xids; permanent xids (< 3) precede all.
pub fn xid_follows_or_equals(a: u32, b: u32) -> bool {
    if a < 3 || b < 3 {
        return a >= b;
    }
    (a.wrapping_sub(b) as i32) >= 0
}

impl Attribution {
    /// What the row diff needs from the WAL accounting to tell lost writes from post-failover
    /// ones: every xid (top-level and subtransaction) of the lost commits, and the new
    /// primary's first xid.
    pub fn from_evidence(ev: &crate::evidence::Evidence) -> Self {
        Attribution {
            lost_xids: ev.lost.lost_xids.clone(),
            new_side_first_xid: ev.transactions.new_side_first_xid.map(|x| x.0),
        }
    }

    /// True when neither input is known (every difference is `unknown`).
    pub fn is_empty(&self) -> bool {
        self.lost_xids.is_empty() && self.new_side_first_xid.is_none()
    }

    fn lost(&self, xmin: u32) -> bool {
        self.lost_xids.contains(&xmin)
    }

    /// Whether an xid was assigned after the switchpoint (`None` when the first xid is unknown).
    fn after_switch(&self, xmin: u32) -> Option<bool> {
        let first = self.new_side_first_xid?;
        Some(xmin >= 3 && xid_follows_or_equals(xmin, first))
    }

    /// Classifies one difference from the xmins of the former and new versions.
    pub fn classify(
        &self,
        kind: DiffKind,
        former_xmin: Option<u32>,
        new_xmin: Option<u32>,
    ) -> RowClass {
        if self.is_empty() {
            return RowClass::Unknown;
        }
        match kind {
            DiffKind::MissingOnNew => {
                let Some(xf) = former_xmin else {
                    return RowClass::Unexplained;
                };
                if self.lost(xf) {
                    return RowClass::LostInsert;
                }
                match self.after_switch(xf) {
                    // A pre-switchpoint version the new side no longer has: deleted there.
                    Some(false) => RowClass::PostFailoverDelete,
                    // Written on the former after the switch but not by a lost commit.
                    Some(true) => RowClass::Unexplained,
                    None => RowClass::Unknown,
                }
            }
            DiffKind::ExtraOnNew => {
                let Some(xn) = new_xmin else {
                    return RowClass::Unexplained;
                };
                match self.after_switch(xn) {
                    Some(true) => RowClass::PostFailoverInsert,
                    // A pre-promotion version the former side no longer has: a lost delete.
                    Some(false) => RowClass::LostDelete,
                    None => RowClass::Unknown,
                }
            }
            DiffKind::Changed => {
                let (Some(xf), Some(xn)) = (former_xmin, new_xmin) else {
                    return RowClass::Unexplained;
                };
                let lost = self.lost(xf);
                match (lost, self.after_switch(xn)) {
                    (true, Some(true)) => RowClass::Conflict,
                    (true, Some(false)) => RowClass::LostUpdate,
                    (false, Some(true)) => {
                        // The former version must predate the switch for a pure new-side update.
                        if self.after_switch(xf) == Some(true) {
                            RowClass::Unexplained
                        } else {
                            RowClass::PostFailoverUpdate
                        }
                    }
                    (false, Some(false)) => RowClass::Unexplained,
                    (true, None) => RowClass::LostUpdate,
                    (false, None) => RowClass::Unknown,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr() -> Attribution {
        Attribution {
            lost_xids: [1000, 1001, 1003].into_iter().collect(),
            new_side_first_xid: Some(1000),
        }
    }

    #[test]
    fn modulo_comparison() {
        assert!(xid_follows_or_equals(5, 5));
        assert!(xid_follows_or_equals(10, 5));
        assert!(!xid_follows_or_equals(5, 10));
        // Wraparound: 3 follows 4_000_000_000.
        assert!(xid_follows_or_equals(3, 4_000_000_000));
        assert!(!xid_follows_or_equals(4_000_000_000, 3));
        // Frozen xids precede everything.
        assert!(!xid_follows_or_equals(2, 1000));
    }

    #[test]
    fn rules() {
        let a = attr();
        use DiffKind::*;
        use RowClass::*;
        assert_eq!(a.classify(MissingOnNew, Some(1001), None), LostInsert);
        assert_eq!(
            a.classify(MissingOnNew, Some(700), None),
            PostFailoverDelete
        );
        assert_eq!(a.classify(MissingOnNew, Some(2), None), PostFailoverDelete);
        assert_eq!(a.classify(MissingOnNew, Some(1002), None), Unexplained);
        assert_eq!(a.classify(ExtraOnNew, None, Some(1001)), PostFailoverInsert);
        assert_eq!(a.classify(ExtraOnNew, None, Some(999)), LostDelete);
        assert_eq!(a.classify(ExtraOnNew, None, Some(2)), LostDelete);
        assert_eq!(a.classify(Changed, Some(1000), Some(900)), LostUpdate);
        assert_eq!(a.classify(Changed, Some(1000), Some(1005)), Conflict);
        assert_eq!(
            a.classify(Changed, Some(900), Some(1005)),
            PostFailoverUpdate
        );
        assert_eq!(a.classify(Changed, Some(900), Some(901)), Unexplained);
        let none = Attribution::default();
        assert_eq!(none.classify(Changed, Some(1000), Some(1005)), Unknown);
        assert_eq!(none.classify(MissingOnNew, Some(1000), None), Unknown);
    }
}
