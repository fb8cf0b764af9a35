//! A decoded WAL record: the XLogRecord header, its block references and its main data.

use bytes::Bytes;

pub use crate::wal::main_data::{MainData, INLINE_MAIN_DATA};
use serde::Serialize;

use crate::lsn::{Lsn, Xid};
use crate::wal::page::PgVersion;

/// Size of the fixed record header (XLogRecord).
pub const RECORD_HEADER_LEN: usize = 24;
/// The largest block reference id.
pub const XLR_MAX_BLOCK_ID: u8 = 32;
/// Block id of a main-data header with a u8 length.
pub const XLR_BLOCK_ID_DATA_SHORT: u8 = 255;
/// Block id of a main-data header with a u32 length.
pub const XLR_BLOCK_ID_DATA_LONG: u8 = 254;
/// Block id of a replication origin (u16).
pub const XLR_BLOCK_ID_ORIGIN: u8 = 253;
/// Block id of a top-level xid (u32), PG14+ with wal_level=logical.
pub const XLR_BLOCK_ID_TOPLEVEL_XID: u8 = 252;
/// fork_flags: the block has a full-page image.
pub const BKPBLOCK_HAS_IMAGE: u8 = 0x10;
/// fork_flags: the block has data.
pub const BKPBLOCK_HAS_DATA: u8 = 0x20;
/// fork_flags: redo re-initialises the page.
pub const BKPBLOCK_WILL_INIT: u8 = 0x40;
/// fork_flags: the relation is the previous block's.
pub const BKPBLOCK_SAME_REL: u8 = 0x80;
/// bimg_info: the image has a hole.
pub const BKPIMAGE_HAS_HOLE: u8 = 0x01;

/// A relation's physical identity: tablespace, database and relfilenode (PG16+: RelFileNumber).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RelFileLocator {
    /// Tablespace OID (1663 = pg_default, 1664 = pg_global).
    pub spc: u32,
    /// Database OID (0 for shared catalogs).
    pub db: u32,
    /// relfilenode.
    pub rel: u32,
}

impl RelFileLocator {
    /// A relation named by its OID rather than its file: TRUNCATE records list relation OIDs.
    /// Tablespace 0 (no tablespace has that OID) marks it.
    pub fn relation_oid(db: u32, oid: u32) -> RelFileLocator {
        RelFileLocator {
            spc: 0,
            db,
            rel: oid,
        }
    }

    /// Whether `rel` is a relation OID (see [`Self::relation_oid`]), not a relfilenode.
    pub fn is_relation_oid(&self) -> bool {
        self.spc == 0
    }
}

impl std::fmt::Display for RelFileLocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.spc, self.db, self.rel)
    }
}

/// How a full-page image is compressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum Compression {
    /// Not compressed.
    #[default]
    None,
    /// pglz (the only method before PG15).
    Pglz,
    /// lz4 (PG15+).
    Lz4,
    /// zstd (PG15+).
    Zstd,
}

/// One block reference of a record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockRef {
    /// Block id, 0..=32.
    pub id: u8,
    /// The relation.
    pub rel: RelFileLocator,
    /// The fork: 0 main, 1 fsm, 2 visibility map, 3 init.
    pub fork: u8,
    /// The block number.
    pub block: u32,
    /// Whether a full-page image is included.
    pub has_image: bool,
    /// Bytes of the (possibly compressed, hole-less) image in the record.
    pub image_len: u16,
    /// Whether redo applies the image (false for images kept only for wal_consistency_checking).
    pub apply_image: bool,
    /// Offset of the image's hole.
    pub hole_offset: u16,
    /// Length of the image's hole.
    pub hole_length: u16,
    /// Image compression.
    pub compression: Compression,
    /// Whether redo re-initialises the page (BKPBLOCK_WILL_INIT).
    pub will_init: bool,
    /// Length of the block's data.
    pub data_len: u16,
    /// The block's data (without the image).
    pub data: Bytes,
    /// The image's bytes as stored in the record (compressed, hole left out), in pieces
    /// shared with the decoder's pages (nothing is copied); empty without an image.
    /// [`crate::wal::tuple::restore_page`] rebuilds the page from them.
    pub image: ImageBytes,
}

/// A full-page image's stored bytes, in the pieces of the decoder's pages it lies in. Two
/// values are equal when their bytes are, however they are cut.
#[derive(Debug, Clone, Default)]
pub struct ImageBytes(pub Vec<Bytes>);

impl ImageBytes {
    /// Total length.
    pub fn len(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }

    /// Whether there are no bytes (no image).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, gathered into one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        for p in &self.0 {
            v.extend_from_slice(p);
        }
        v
    }
}

impl PartialEq for ImageBytes {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .0
                .iter()
                .flat_map(|p| p.iter())
                .eq(other.0.iter().flat_map(|p| p.iter()))
    }
}

impl Eq for ImageBytes {}

/// A record's block references; no allocation for up to two.
pub type Blocks = smallvec::SmallVec<[BlockRef; 2]>;

/// A record as the decoder returns it: header fields, block references and main data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRecord {
    /// Where the record starts.
    pub lsn: Lsn,
    /// Where the record ends (the next record starts at this rounded up to 8, past page headers).
    pub end_lsn: Lsn,
    /// xl_tot_len: the record's length without page headers.
    pub xl_tot_len: u32,
    /// xl_xid: the (sub)transaction that wrote it, 0 when none.
    pub xid: Xid,
    /// xl_prev: the previous record's LSN.
    pub prev: Lsn,
    /// xl_info: the high nibble is the rmgr's opcode.
    pub info: u8,
    /// xl_rmid: resource manager id.
    pub rmid: u8,
    /// xl_crc.
    pub crc: u32,
    /// Block references in id order (inline up to two: most records have one or two).
    pub blocks: Blocks,
    /// The main data.
    pub main_data: MainData,
    /// The replication origin, when the record has one.
    pub origin: Option<u16>,
    /// The top-level xid (PG14+, wal_level=logical, records of subtransactions).
    pub toplevel_xid: Option<Xid>,
    /// The PostgreSQL version the WAL was written by (from the page magic).
    pub version: PgVersion,
}

impl DecodedRecord {
    /// A record with no blocks and no data: a slot for the `*_into` parsers to fill.
    pub fn empty() -> DecodedRecord {
        DecodedRecord {
            lsn: Lsn(0),
            end_lsn: Lsn(0),
            xl_tot_len: 0,
            xid: Xid(0),
            prev: Lsn(0),
            info: 0,
            rmid: 0,
            crc: 0,
            blocks: Blocks::new(),
            main_data: MainData::default(),
            origin: None,
            toplevel_xid: None,
            version: PgVersion(0),
        }
    }

    /// Total bytes of full-page images in this record (as pg_waldump's "FPI size").
    pub fn fpi_len(&self) -> u64 {
        self.blocks
            .iter()
            .filter(|b| b.has_image)
            .map(|b| u64::from(b.image_len))
            .sum()
    }

    /// The block reference with id `id`.
    pub fn block(&self, id: u8) -> Option<&BlockRef> {
        self.blocks.iter().find(|b| b.id == id)
    }
}

/// The fixed header fields of a record, parsed from its first 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// xl_tot_len.
    pub tot_len: u32,
    /// xl_xid.
    pub xid: u32,
    /// xl_prev.
    pub prev: u64,
    /// xl_info.
    pub info: u8,
    /// xl_rmid.
    pub rmid: u8,
    /// xl_crc.
    pub crc: u32,
}

impl RecordHeader {
    /// Parses the 24-byte header; `None` when `b` is too short.
    pub fn parse(b: &[u8]) -> Option<RecordHeader> {
        Some(RecordHeader {
            tot_len: u32::from_le_bytes(b.get(0..4)?.try_into().ok()?),
            xid: u32::from_le_bytes(b.get(4..8)?.try_into().ok()?),
            prev: u64::from_le_bytes(b.get(8..16)?.try_into().ok()?),
            info: *b.get(16)?,
            rmid: *b.get(17)?,
            crc: u32::from_le_bytes(b.get(20..24)?.try_into().ok()?),
        })
    }
}

/// The CRC-32C PostgreSQL stores in xl_crc: bytes `[24, tot_len)` then `[0, 20)`.
pub fn record_crc(rec: &[u8]) -> u32 {
    record_crc_pieces([rec]).0
}

/// [`record_crc`] of a record held in pieces (one per page it spans, in order), and the
/// record's header gathered from them (zero-padded when the pieces hold fewer than 24 bytes).
pub fn record_crc_pieces<'a>(
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> (u32, [u8; RECORD_HEADER_LEN]) {
    let mut head = [0u8; RECORD_HEADER_LEN];
    let mut got = 0;
    let mut c = 0;
    for p in pieces {
        let h = (RECORD_HEADER_LEN - got).min(p.len());
        head[got..got + h].copy_from_slice(&p[..h]);
        got += h;
        c = crc32c::crc32c_append(c, &p[h..]);
    }
    (crc32c::crc32c_append(c, &head[..20.min(got)]), head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::error::FileCtx;
    use crate::wal::parse::{parse_record, parse_record_bytes, RecordBytes};

    /// A PG15 record with one block (full-page image and data) and long main data.
    fn record() -> Vec<u8> {
        let image: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
        let data: Vec<u8> = (0..300u32).map(|i| (i % 7) as u8).collect();
        let main: Vec<u8> = (0..500u32).map(|i| (i % 13) as u8).collect();
        let mut r = vec![0u8; RECORD_HEADER_LEN];
        r.extend([0, BKPBLOCK_HAS_DATA | BKPBLOCK_HAS_IMAGE]);
        r.extend(300u16.to_le_bytes());
        r.extend(8192u16.to_le_bytes()); // image length
        r.extend(0u16.to_le_bytes()); // hole offset
        r.push(0x02); // BKPIMAGE_APPLY (PG15), no hole, not compressed
        for v in [1663u32, 5, 16384, 7] {
            r.extend(v.to_le_bytes()); // tablespace, database, relfilenode, block
        }
        r.push(XLR_BLOCK_ID_DATA_LONG);
        r.extend(500u32.to_le_bytes());
        r.extend(&image);
        r.extend(&data);
        r.extend(&main);
        let len = r.len() as u32;
        r[0..4].copy_from_slice(&len.to_le_bytes());
        r[4..8].copy_from_slice(&742u32.to_le_bytes());
        r[17] = 10; // heap
        let crc = record_crc(&r);
        r[20..24].copy_from_slice(&crc.to_le_bytes());
        r
    }

    /// Split anywhere (inside the header, the block headers, the image, the block data or the
    /// main data), a record checks and parses exactly as when contiguous.
    #[test]
    fn pieces_parse_like_contiguous() {
        let r = record();
        let whole = parse_record(
            Bytes::from(r.clone()),
            Lsn(0x100),
            Lsn(0x100 + r.len() as u64),
            PgVersion(15),
            &FileCtx(None),
        )
        .expect("parses");
        assert_eq!(whole.blocks.len(), 1);
        assert_eq!(whole.blocks[0].data.len(), 300);
        assert_eq!(whole.main_data.len(), 500);
        assert_eq!(whole.fpi_len(), 8192);
        assert_eq!(
            whole.blocks[0].image.to_vec(),
            (0..8192u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>()
        );
        let crc = u32::from_le_bytes(r[20..24].try_into().expect("4 bytes"));
        for cuts in [
            vec![10],
            vec![30, 500],
            vec![8000],
            vec![8300],
            vec![8400, 8600],
            vec![8900, 9000],
            vec![1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000],
        ] {
            let mut pieces: smallvec::SmallVec<[Bytes; 4]> = smallvec::SmallVec::new();
            let mut at = 0;
            for c in cuts.iter().copied().chain([r.len()]) {
                pieces.push(Bytes::copy_from_slice(&r[at..c]));
                at = c;
            }
            let (computed, head) = record_crc_pieces(pieces.iter().map(|p| &p[..]));
            assert_eq!(computed, crc, "cuts {cuts:?}");
            assert_eq!(head[..], r[..RECORD_HEADER_LEN]);
            let rec = RecordBytes::Pieces(pieces);
            assert_eq!(rec.len(), r.len());
            let got = parse_record_bytes(
                &rec,
                whole.lsn,
                whole.end_lsn,
                PgVersion(15),
                &FileCtx(None),
            )
            .expect("parses");
            assert_eq!(got, whole, "cuts {cuts:?}");
        }
    }
}
