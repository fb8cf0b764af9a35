//! A compact set of transaction ids (a bitmap), for the xids of millions of lost commits.
//!
//! The bitmap is kept in 64 Ki-xid blocks, so a dense range of xids takes a bit each, not a
//! hash-table entry. The blocks are in a list sorted by number (a loss spans a handful), and an
//! insert looks at the block of the last insert first: xids of lost commits come nearly in
//! order, so a search is rare.

/// Xids per block (one bit each).
const BLOCK_XIDS: u32 = 1 << 16;
/// 64-bit words per block.
const BLOCK_WORDS: usize = (BLOCK_XIDS / 64) as usize;

/// A set of 32-bit xids. Dense ranges cost 8 KB per 65,536 xids; a lone xid costs one block.
#[derive(Clone, Default)]
pub struct XidSet {
    /// Blocks by number, ascending; none is empty.
    blocks: Vec<(u32, Box<[u64; BLOCK_WORDS]>)>,
    len: usize,
    /// The index in `blocks` of the last insert's block.
    last: usize,
}

impl PartialEq for XidSet {
    fn eq(&self, other: &XidSet) -> bool {
        self.len == other.len && self.blocks == other.blocks
    }
}

impl Eq for XidSet {}

impl std::fmt::Debug for XidSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XidSet")
            .field("len", &self.len)
            .field("blocks", &self.blocks.len())
            .finish()
    }
}

/// Sets `xid`'s bit in its block; `true` when it was not set.
#[inline]
fn set_bit(block: &mut [u64; BLOCK_WORDS], xid: u32) -> bool {
    let bit = xid % BLOCK_XIDS;
    let word = &mut block[(bit / 64) as usize];
    let mask = 1u64 << (bit % 64);
    let new = *word & mask == 0;
    *word |= mask;
    new
}

impl XidSet {
    /// An empty set.
    pub fn new() -> XidSet {
        XidSet::default()
    }

    /// Adds `xid`; `true` when it was not there yet.
    #[inline] // once per lost commit: nearly always into the last insert's block
    pub fn insert(&mut self, xid: u32) -> bool {
        let n = xid / BLOCK_XIDS;
        match self.blocks.get_mut(self.last) {
            Some((b, block)) if *b == n => {
                let new = set_bit(block, xid);
                self.len += usize::from(new);
                new
            }
            _ => self.insert_elsewhere(xid),
        }
    }

    /// [`Self::insert`] into a block other than the last insert's.
    #[inline(never)]
    fn insert_elsewhere(&mut self, xid: u32) -> bool {
        let n = xid / BLOCK_XIDS;
        let i = match self.blocks.binary_search_by_key(&n, |(b, _)| *b) {
            Ok(i) => i,
            Err(i) => {
                self.blocks.insert(i, (n, Box::new([0u64; BLOCK_WORDS])));
                i
            }
        };
        self.last = i;
        let Some((_, block)) = self.blocks.get_mut(i) else {
            return false; // found or inserted just above
        };
        let new = set_bit(block, xid);
        self.len += usize::from(new);
        new
    }

    /// Whether `xid` is in the set.
    pub fn contains(&self, xid: &u32) -> bool {
        let n = xid / BLOCK_XIDS;
        let Ok(i) = self.blocks.binary_search_by_key(&n, |(b, _)| *b) else {
            return false;
        };
        let block = &self.blocks[i].1;
        let bit = xid % BLOCK_XIDS;
        block[(bit / 64) as usize] & (1u64 << (bit % 64)) != 0
    }

    /// How many xids it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The xids in ascending numeric order (not xid age order across a wraparound).
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.blocks.iter().flat_map(|(b, words)| {
            words.iter().enumerate().flat_map(move |(w, &word)| {
                let base = b * BLOCK_XIDS + w as u32 * 64;
                (0..64u32)
                    .filter(move |i| word & (1u64 << i) != 0)
                    .map(move |i| base + i)
            })
        })
    }

    /// Adds every xid of `other`.
    pub fn union_with(&mut self, other: XidSet) {
        for (n, words) in other.blocks {
            match self.blocks.binary_search_by_key(&n, |(b, _)| *b) {
                Ok(i) => {
                    let block = &mut self.blocks[i].1;
                    for (w, o) in block.iter_mut().zip(words.iter()) {
                        self.len += (o & !*w).count_ones() as usize;
                        *w |= o;
                    }
                }
                Err(i) => {
                    self.len += words.iter().map(|w| w.count_ones() as usize).sum::<usize>();
                    self.blocks.insert(i, (n, words));
                }
            }
        }
    }

    /// Heap bytes used (for the benchmark and tests).
    pub fn heap_bytes(&self) -> usize {
        self.blocks.len() * (BLOCK_WORDS * 8 + 32)
    }
}

impl FromIterator<u32> for XidSet {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> XidSet {
        let mut s = XidSet::new();
        s.extend(iter);
        s
    }
}

impl Extend<u32> for XidSet {
    fn extend<I: IntoIterator<Item = u32>>(&mut self, iter: I) {
        for x in iter {
            self.insert(x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::XidSet;

    #[test]
    fn holds_what_a_hash_set_holds() {
        let xs = [
            0u32,
            3,
            63,
            64,
            65_535,
            65_536,
            1_000_000,
            u32::MAX - 1,
            u32::MAX,
        ];
        let mut s = XidSet::new();
        for x in xs {
            assert!(s.insert(x));
        }
        assert!(!s.insert(64), "a second insert is not new");
        assert_eq!(s.len(), xs.len());
        for x in xs {
            assert!(s.contains(&x), "{x}");
        }
        for x in [1u32, 2, 62, 66, 65_534, 999_999, u32::MAX - 2] {
            assert!(!s.contains(&x), "{x}");
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), xs.to_vec());
    }

    #[test]
    fn the_same_set_whatever_the_order_of_inserts() {
        let xs: Vec<u32> = (0..5000u32)
            .map(|i| i.wrapping_mul(2_654_435_761) % 600_000)
            .collect();
        let forward: XidSet = xs.iter().copied().collect();
        let backward: XidSet = xs.iter().rev().copied().collect();
        assert_eq!(forward, backward);
        let mut sorted = xs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(forward.len(), sorted.len());
        assert_eq!(backward.iter().collect::<Vec<_>>(), sorted);
        assert!(sorted.iter().all(|x| backward.contains(x)));
        assert!(!forward.contains(&600_001));
    }

    #[test]
    fn two_million_dense_xids_take_a_quarter_megabyte() {
        let s: XidSet = (5_000_000..7_000_000).collect();
        assert_eq!(s.len(), 2_000_000);
        assert!(s.heap_bytes() < 300 * 1024, "{}", s.heap_bytes());
        assert!(s.contains(&6_123_456) && !s.contains(&7_000_000));
    }
}
