//! A transaction's changes while its commit or abort is not read yet, what a commit gathers
//! from them, and the xid-keyed maps that hold them.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::lsn::{Lsn, Xid};
use crate::wal::lost::{ChangeCounts, LostCommit, TouchedTuple};
use crate::wal::record::RelFileLocator;

/// A hasher for xid keys: one multiply (FxHash's) instead of SipHash, which costs more than
/// the rest of accounting a record. Xids are not chosen by an adversary who could aim for
/// collisions (the WAL was written by the server), and a collision only costs time.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct XidHasher(u64);

pub(super) const FX_K: u64 = 0x517c_c1b7_2722_0a95;

impl Hasher for XidHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(FX_K);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(n)).wrapping_mul(FX_K);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by xid.
pub(super) type XidMap<V> = HashMap<u32, V, BuildHasherDefault<XidHasher>>;

/// Which slot holds each xid's pending changes: a direct-mapped table on the xid's low bits
/// (transactions in flight together have nearby xids, so they rarely share an entry), and a
/// map for the xids whose entry was taken. A commit then finds and frees its slot without
/// hashing (the map's insert and remove were about 8 % of the instructions accounting pgbench
/// records took).
#[derive(Debug, Clone)]
pub(super) struct XidSlots {
    /// `(xid, slot)`; xid 0 marks a free entry (0 is never a transaction's xid).
    table: Box<[(u32, u32)]>,
    more: XidMap<u32>,
    len: usize,
}

impl Default for XidSlots {
    fn default() -> XidSlots {
        XidSlots {
            table: vec![(0, 0); XidSlots::ENTRIES].into_boxed_slice(),
            more: XidMap::default(),
            len: 0,
        }
    }
}

impl XidSlots {
    const ENTRIES: usize = 1024;

    fn at(xid: u32) -> usize {
        xid as usize % Self::ENTRIES
    }

    /// `xid`'s slot, or `new()`'s, now `xid`'s.
    #[inline]
    pub(super) fn get_or_insert(&mut self, xid: u32, new: impl FnOnce() -> u32) -> u32 {
        let e = Self::at(xid);
        if xid != 0 && self.table[e].0 == xid {
            return self.table[e].1;
        }
        if let Some(i) = self.more.get(&xid) {
            return *i;
        }
        let i = new();
        if xid != 0 && self.table[e].0 == 0 {
            self.table[e] = (xid, i);
        } else {
            self.more.insert(xid, i);
        }
        self.len += 1;
        i
    }

    /// Removes `xid`; its slot.
    #[inline]
    pub(super) fn remove(&mut self, xid: u32) -> Option<u32> {
        let e = Self::at(xid);
        let i = if xid != 0 && self.table[e].0 == xid {
            self.table[e].0 = 0;
            Some(self.table[e].1)
        } else if self.more.is_empty() {
            None
        } else {
            self.more.remove(&xid)
        };
        self.len -= usize::from(i.is_some());
        i
    }

    /// Whether `xid` has a slot.
    pub(super) fn contains(&self, xid: u32) -> bool {
        (xid != 0 && self.table[Self::at(xid)].0 == xid) || self.more.contains_key(&xid)
    }

    /// Whether no xid has a slot.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The smallest and the largest xid with a slot (as numbers, whatever the wraparound),
    /// `None` when none has one.
    pub(super) fn bounds(&self) -> Option<(u32, u32)> {
        if self.is_empty() {
            return None;
        }
        self.iter().fold(None, |b, (x, _)| match b {
            None => Some((x, x)),
            Some((lo, hi)) => Some((lo.min(x), hi.max(x))),
        })
    }

    /// Every xid and its slot (in no particular order).
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        let table = self.table.iter().filter(|(x, _)| *x != 0).copied();
        table.chain(self.more.iter().map(|(x, i)| (*x, *i)))
    }
}

/// A map keyed by relation (the same hasher: a B-tree costs more per lost commit, and the
/// report sorts the relations once at the end).
pub(super) type RelMap<V> = HashMap<RelFileLocator, V, BuildHasherDefault<XidHasher>>;

/// The pending changes of a transaction's xids (most have one).
pub(super) type Parts = smallvec::SmallVec<[Pending; 1]>;

/// The changes of one transaction whose commit or abort has not been read yet.
#[derive(Debug, Default, Clone)]
pub(super) struct Pending {
    /// The tuples ([`Detail::Full`] only).
    pub(super) tuples: Vec<TouchedTuple>,
    /// Change counts per relation (a transaction touches few: a linear search is fastest). A
    /// vector, so that a commit takes it whole ([`Gathered::absorb_taking`]); a slot's next
    /// transaction gets the buffer the commit gave back.
    pub(super) rels: Vec<(RelFileLocator, ChangeCounts)>,
    /// Changes (tuples and truncates) recorded before the switchpoint.
    pub(super) before: u64,
    /// Tuples in `tuples` recorded at or after the switchpoint.
    pub(super) after_kept: u64,
    pub(super) catalog_change: bool,
    pub(super) db: Option<u32>,
    pub(super) last_lsn: Lsn,
}

impl Pending {
    #[inline(always)] // once per heap change
    pub(super) fn counts(&mut self, rel: RelFileLocator) -> &mut ChangeCounts {
        let i = match self.rels.iter().position(|(r, _)| *r == rel) {
            Some(i) => i,
            None => {
                self.rels.push((rel, ChangeCounts::default()));
                self.rels.len() - 1
            }
        };
        &mut self.rels[i].1
    }

    /// Empties it for reuse (its allocations kept).
    pub(super) fn reset(&mut self) {
        self.tuples.clear();
        self.rels.clear();
        self.before = 0;
        self.after_kept = 0;
        self.catalog_change = false;
        self.db = None;
        self.last_lsn = Lsn(0);
    }

    pub(super) fn merge(&mut self, p: Pending) {
        self.tuples.extend(p.tuples);
        for (rel, c) in p.rels {
            self.counts(rel).add(&c);
        }
        self.before += p.before;
        self.after_kept += p.after_kept;
        self.catalog_change |= p.catalog_change;
        self.db = self.db.or(p.db);
        self.last_lsn = self.last_lsn.max(p.last_lsn);
    }
}

/// What a commit's xids changed, gathered from their pending changes (reused from commit to
/// commit: nothing is allocated per commit once it has grown).
#[derive(Debug, Default)]
pub(super) struct Gathered {
    pub(super) per_rel: Vec<(RelFileLocator, ChangeCounts)>,
    pub(super) tuples: Vec<TouchedTuple>,
    pub(super) before: u64,
    pub(super) catalog: bool,
    pub(super) db: Option<u32>,
}

impl Gathered {
    pub(super) fn reset(&mut self) {
        self.per_rel.clear();
        self.tuples.clear();
        self.before = 0;
        self.catalog = false;
        self.db = None;
    }

    /// [`Self::absorb`], also moving `p`'s per-relation counts out (swapped for an empty
    /// buffer) when they are the first: for a `p` that is emptied or dropped next.
    #[inline] // once per xid of a commit
    pub(super) fn absorb_taking(&mut self, p: &mut Pending) {
        if self.per_rel.is_empty() {
            self.catalog |= p.catalog_change;
            self.db = self.db.or(p.db);
            self.before += p.before;
            std::mem::swap(&mut self.per_rel, &mut p.rels);
            self.tuples.append(&mut p.tuples);
            return;
        }
        self.absorb(p);
    }

    /// Adds `p`'s changes (its tuples are moved out).
    #[inline] // once per xid of a commit
    pub(super) fn absorb(&mut self, p: &mut Pending) {
        self.catalog |= p.catalog_change;
        self.db = self.db.or(p.db);
        self.before += p.before;
        if self.per_rel.is_empty() {
            // The first (most often the only) xid of the commit: nothing to merge with.
            self.per_rel.extend_from_slice(&p.rels);
            self.tuples.append(&mut p.tuples);
            return;
        }
        for (rel, c) in &p.rels {
            match self.per_rel.iter_mut().find(|(r, _)| r == rel) {
                Some((_, n)) => n.add(c),
                None => self.per_rel.push((*rel, *c)),
            }
        }
        self.tuples.append(&mut p.tuples);
    }
}

/// An empty lost commit, to fill.
pub(super) fn blank_commit() -> LostCommit {
    LostCommit {
        top_xid: Xid(0),
        subxids: Vec::new(),
        lsn: Lsn(0),
        commit_time: None,
        db_id: None,
        prepared: false,
        gid: None,
        has_invalidations: false,
        ddl: false,
        changes: ChangeCounts::default(),
        per_rel: Vec::new(),
        dropped_rels: Vec::new(),
        changes_before_switchpoint: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::{XidMap, XidSlots};

    /// Xids that share a table entry, removed and added in every order, and xid 0: the slots
    /// always agree with a plain map.
    #[test]
    fn xid_slots_agree_with_a_map() {
        let mut slots = XidSlots::default();
        let mut map: XidMap<u32> = XidMap::default();
        let mut next = 0u32;
        let mut x = 0x9e37_79b9u64;
        for step in 0..50_000u32 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            // Few distinct entries, many xids per entry: collisions everywhere.
            let xid = ((x >> 40) as u32 % 8) * XidSlots::ENTRIES as u32 + (x >> 20) as u32 % 3;
            if x >> 63 == 0 {
                let got = slots.get_or_insert(xid, || {
                    next += 1;
                    next
                });
                let want = *map.entry(xid).or_insert(got);
                assert_eq!(got, want, "step {step}: slot of {xid}");
            } else {
                assert_eq!(
                    slots.remove(xid),
                    map.remove(&xid),
                    "step {step}: remove {xid}"
                );
            }
            assert_eq!(slots.contains(xid), map.contains_key(&xid), "step {step}");
            assert_eq!(slots.is_empty(), map.is_empty(), "step {step}");
            let bounds = map.keys().min().copied().zip(map.keys().max().copied());
            assert_eq!(slots.bounds(), bounds, "step {step}");
            if step % 997 == 0 {
                let mut all: Vec<(u32, u32)> = slots.iter().collect();
                all.sort();
                let mut want: Vec<(u32, u32)> = map.iter().map(|(x, i)| (*x, *i)).collect();
                want.sort();
                assert_eq!(all, want, "step {step}");
            }
        }
    }
}
