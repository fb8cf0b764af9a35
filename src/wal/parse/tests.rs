//! The block headers of the commonest records, read without the general loop
//! (`common_headers`), against the general loop alone: the same record or the same error for
//! every record of many made-up shapes, well-formed and not; and the same again parsed into one
//! reused record, as the fast path parses, with and without block payloads.

use bytes::Bytes;

use super::{common_headers, parse_in_chunk_into, parse_record, InChunk, GENERAL_ONLY};
use crate::lsn::Lsn;
use crate::wal::error::FileCtx;
use crate::wal::page::PgVersion;
use crate::wal::record::{
    DecodedRecord, BKPBLOCK_HAS_DATA, BKPBLOCK_HAS_IMAGE, BKPBLOCK_SAME_REL, BKPBLOCK_WILL_INIT,
    RECORD_HEADER_LEN, XLR_BLOCK_ID_DATA_LONG, XLR_BLOCK_ID_DATA_SHORT, XLR_BLOCK_ID_ORIGIN,
};

/// A small deterministic generator (the records must be the same on every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A record of a random shape: up to two blocks (data or not, an image or not, the same
/// relation or not, flags that agree with the lengths or not), an origin sometimes, short or
/// long main data or none, and a total length that is right or a few bytes off.
fn made_up(g: &mut Lcg) -> Vec<u8> {
    let mut r = vec![0u8; RECORD_HEADER_LEN];
    let mut payload = Vec::new();
    let blocks = [0, 0, 1, 1, 1, 2][g.below(6) as usize];
    for id in 0..blocks {
        let mut flags = (g.below(3) as u8) | (BKPBLOCK_WILL_INIT * u8::from(g.below(4) == 0));
        let data_len = [0u16, 0, 3, 40, 200][g.below(5) as usize];
        if data_len > 0 || g.below(10) == 0 {
            flags |= BKPBLOCK_HAS_DATA; // now and then with no data: an error
        }
        if g.below(8) == 0 {
            flags |= BKPBLOCK_HAS_IMAGE;
        }
        if id > 0 && g.below(2) == 0 || g.below(20) == 0 {
            flags |= BKPBLOCK_SAME_REL; // on block 0: an error
        }
        let id = if g.below(20) == 0 { 7 } else { id };
        r.extend([id, flags]);
        r.extend(data_len.to_le_bytes());
        if flags & BKPBLOCK_HAS_IMAGE != 0 {
            r.extend(100u16.to_le_bytes()); // compressed (pglz), no hole
            r.extend(0u16.to_le_bytes());
            r.push(0x04 | 0x02);
            payload.extend(std::iter::repeat_n(0xAB, 100));
        }
        if flags & BKPBLOCK_SAME_REL == 0 {
            for v in [1663u32, 5, 16384 + g.below(3) as u32] {
                r.extend(v.to_le_bytes());
            }
        }
        r.extend((g.below(1000) as u32).to_le_bytes());
        payload.extend((0..data_len).map(|i| i as u8));
    }
    if g.below(15) == 0 {
        r.push(XLR_BLOCK_ID_ORIGIN);
        r.extend(7u16.to_le_bytes());
    }
    let main_len = [0usize, 8, 14, 40, 255, 300][g.below(6) as usize];
    match (main_len, g.below(6)) {
        (0, _) => {}
        (n, 0) => {
            r.push(XLR_BLOCK_ID_DATA_LONG);
            r.extend((n as u32).to_le_bytes());
        }
        (n, _) if n <= 255 => r.extend([XLR_BLOCK_ID_DATA_SHORT, n as u8]),
        (n, _) => {
            r.push(XLR_BLOCK_ID_DATA_LONG);
            r.extend((n as u32).to_le_bytes());
        }
    }
    r.extend(payload);
    r.extend((0..main_len).map(|i| (i * 7) as u8));
    match g.below(8) {
        0 => r.truncate(r.len().saturating_sub(1 + g.below(3) as usize)),
        1 => r.extend([0, 0]),
        _ => {}
    }
    // A bit flipped among the block headers now and then: a flag that no longer agrees with
    // the layout (an image or the same relation announced, data flags against lengths), or
    // a length or id gone wrong.
    if g.below(4) == 0 && r.len() > RECORD_HEADER_LEN + 2 {
        let at = RECORD_HEADER_LEN + g.below((r.len() - RECORD_HEADER_LEN).min(22) as u64) as usize;
        r[at] ^= 1 << g.below(8);
    }
    let len = r.len() as u32;
    r[0..4].copy_from_slice(&len.to_le_bytes());
    r[4..8].copy_from_slice(&900u32.to_le_bytes());
    r[17] = 10;
    r
}

fn parse(r: &[u8]) -> Result<crate::wal::record::DecodedRecord, String> {
    parse_record(
        Bytes::copy_from_slice(r),
        Lsn(0x1000),
        Lsn(0x1000 + r.len() as u64),
        PgVersion(15),
        &FileCtx(None),
    )
    .map_err(|e| e.to_string())
}

#[test]
fn common_headers_read_exactly_what_the_general_loop_reads() {
    let mut g = Lcg(0x5eed);
    let mut common = 0;
    let mut errors = 0;
    for i in 0..20_000 {
        let r = made_up(&mut g);
        GENERAL_ONLY.with(|c| c.set(false));
        let fast = parse(&r);
        common += usize::from(common_headers(&r, r.len()).is_some());
        GENERAL_ONLY.with(|c| c.set(true));
        let general = parse(&r);
        GENERAL_ONLY.with(|c| c.set(false));
        errors += usize::from(general.is_err());
        assert_eq!(fast, general, "record {i}: {r:?}");
    }
    // Both kinds of shape, and records of neither, well-formed and not.
    assert!(common > 2_000, "only {common} records had a common shape");
    assert!(errors > 2_000, "only {errors} malformed records");
}

#[test]
fn one_reused_record_parses_as_a_fresh_one_with_and_without_payloads() {
    for payloads in [false, true] {
        let mut g = Lcg(0xfee1);
        let mut slot = DecodedRecord::empty();
        let mut parsed = 0;
        for i in 0..20_000 {
            let r = made_up(&mut g);
            // The record at an offset inside a larger chunk, as the fast path reads it.
            let mut chunk = vec![0xA5u8; 16];
            chunk.extend_from_slice(&r);
            chunk.extend_from_slice(&[0x5Au8; 16]);
            let chunk = Bytes::from(chunk);
            let at = InChunk {
                chunk: &chunk,
                off: 16,
                len: r.len(),
                block_payloads: payloads,
            };
            let end = Lsn(0x1000 + r.len() as u64);
            let got = parse_in_chunk_into(
                &at,
                Lsn(0x1000),
                end,
                PgVersion(15),
                &FileCtx(None),
                &mut slot,
            );
            GENERAL_ONLY.with(|c| c.set(true));
            let want = parse(&r);
            GENERAL_ONLY.with(|c| c.set(false));
            let Ok(mut want) = want else {
                assert!(
                    got.is_err(),
                    "record {i}: parsed, but the general loop refused it"
                );
                continue;
            };
            assert!(
                got.is_ok(),
                "record {i}: refused, but the general loop parsed it"
            );
            if !payloads {
                for b in want.blocks.iter_mut() {
                    b.data = Bytes::new();
                    b.image.0.clear();
                }
            }
            assert_eq!(slot, want, "record {i} (block payloads: {payloads}): {r:?}");
            parsed += 1;
        }
        assert!(parsed > 5_000, "only {parsed} records parsed");
    }
}
