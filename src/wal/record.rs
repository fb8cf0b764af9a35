//! A decoded WAL record: the XLogRecord header, its block references and its main data.

use bytes::Bytes;
use serde::Serialize;

use crate::lsn::{Lsn, Xid};
use crate::wal::error::{FileCtx, WalError};
use crate::wal::page::PgVersion;
use crate::wal::XLOG_BLCKSZ;

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

impl std::fmt::Display for RelFileLocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.spc, self.db, self.rel)
    }
}

/// How a full-page image is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Compression {
    /// Not compressed.
    None,
    /// pglz (the only method before PG15).
    Pglz,
    /// lz4 (PG15+).
    Lz4,
    /// zstd (PG15+).
    Zstd,
}

/// One block reference of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

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
    pub main_data: Bytes,
    /// The replication origin, when the record has one.
    pub origin: Option<u16>,
    /// The top-level xid (PG14+, wal_level=logical, records of subtransactions).
    pub toplevel_xid: Option<Xid>,
    /// The PostgreSQL version the WAL was written by (from the page magic).
    pub version: PgVersion,
}

impl DecodedRecord {
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
    let (head, body) = rec.split_at(rec.len().min(RECORD_HEADER_LEN));
    let c = crc32c::crc32c(body);
    crc32c::crc32c_append(c, head.get(..20).unwrap_or(head))
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.pos)?;
        self.pos += 1;
        Some(v)
    }
    fn u16(&mut self) -> Option<u16> {
        let s = self.b.get(self.pos..self.pos.checked_add(2)?)?;
        self.pos += 2;
        Some(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        let s = self.b.get(self.pos..self.pos.checked_add(4)?)?;
        self.pos += 4;
        Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
}

/// Parses a complete, CRC-checked record (`rec` holds exactly `tot_len` bytes) into its parts.
///
/// Mirrors `DecodeXLogRecord`: the block headers, then the payloads in block order (image, then
/// data), then main data; every length is checked against what remains.
pub fn parse_record(
    rec: Bytes,
    lsn: Lsn,
    end_lsn: Lsn,
    version: PgVersion,
    file: &FileCtx,
) -> Result<DecodedRecord, WalError> {
    let err = |what: String| WalError::InvalidRecord {
        what,
        lsn,
        file: file.clone(),
    };
    let hdr =
        RecordHeader::parse(&rec).ok_or_else(|| err("record shorter than its header".into()))?;
    let mut c = Cursor {
        b: &rec,
        pos: RECORD_HEADER_LEN,
    };
    let total = rec.len();
    let mut blocks = Blocks::new();
    let mut datatotal: usize = 0;
    let mut main_len: usize = 0;
    let mut origin = None;
    let mut toplevel = None;
    let mut last_rel: Option<RelFileLocator> = None;
    let mut max_id: i32 = -1;
    let short = || err("truncated block header".into());
    while total.saturating_sub(c.pos) > datatotal {
        let id = c.u8().ok_or_else(short)?;
        match id {
            XLR_BLOCK_ID_DATA_SHORT => {
                main_len = usize::from(c.u8().ok_or_else(short)?);
                datatotal += main_len;
                break;
            }
            XLR_BLOCK_ID_DATA_LONG => {
                main_len = c.u32().ok_or_else(short)? as usize;
                datatotal = datatotal
                    .checked_add(main_len)
                    .ok_or_else(|| err("main data length overflows".into()))?;
                break;
            }
            XLR_BLOCK_ID_ORIGIN => origin = Some(c.u16().ok_or_else(short)?),
            XLR_BLOCK_ID_TOPLEVEL_XID => toplevel = Some(Xid(c.u32().ok_or_else(short)?)),
            id if id <= XLR_MAX_BLOCK_ID => {
                if i32::from(id) <= max_id {
                    return Err(err(format!("out-of-order block_id {id}")));
                }
                max_id = i32::from(id);
                let fork_flags = c.u8().ok_or_else(short)?;
                let data_len = c.u16().ok_or_else(short)?;
                let has_image = fork_flags & BKPBLOCK_HAS_IMAGE != 0;
                let has_data = fork_flags & BKPBLOCK_HAS_DATA != 0;
                if has_data && data_len == 0 {
                    return Err(err(format!(
                        "BKPBLOCK_HAS_DATA set, but no data included (block {id})"
                    )));
                }
                if !has_data && data_len != 0 {
                    return Err(err(format!(
                        "BKPBLOCK_HAS_DATA not set, but data length is {data_len} (block {id})"
                    )));
                }
                datatotal += usize::from(data_len);
                let (mut image_len, mut hole_offset, mut hole_length) = (0u16, 0u16, 0u16);
                let mut apply_image = false;
                let mut compression = Compression::None;
                if has_image {
                    image_len = c.u16().ok_or_else(short)?;
                    hole_offset = c.u16().ok_or_else(short)?;
                    let bimg_info = c.u8().ok_or_else(short)?;
                    if version.0 >= 15 {
                        apply_image = bimg_info & 0x02 != 0;
                        compression = if bimg_info & 0x04 != 0 {
                            Compression::Pglz
                        } else if bimg_info & 0x08 != 0 {
                            Compression::Lz4
                        } else if bimg_info & 0x10 != 0 {
                            Compression::Zstd
                        } else {
                            Compression::None
                        };
                    } else {
                        apply_image = bimg_info & 0x04 != 0;
                        if bimg_info & 0x02 != 0 {
                            compression = Compression::Pglz;
                        }
                    }
                    let has_hole = bimg_info & BKPIMAGE_HAS_HOLE != 0;
                    let blcksz = XLOG_BLCKSZ as u16;
                    if compression != Compression::None {
                        hole_length = if has_hole {
                            c.u16().ok_or_else(short)?
                        } else {
                            0
                        };
                    } else {
                        hole_length = blcksz.saturating_sub(image_len);
                    }
                    datatotal += usize::from(image_len);
                    if has_hole && (hole_offset == 0 || hole_length == 0 || image_len == blcksz) {
                        return Err(err(format!(
                            "BKPIMAGE_HAS_HOLE set, but hole offset {hole_offset} length {hole_length} block image length {image_len} (block {id})"
                        )));
                    }
                    if !has_hole && (hole_offset != 0 || hole_length != 0) {
                        return Err(err(format!(
                            "BKPIMAGE_HAS_HOLE not set, but hole offset {hole_offset} length {hole_length} (block {id})"
                        )));
                    }
                    if compression != Compression::None && image_len == blcksz {
                        return Err(err(format!(
                            "compressed image has full block length (block {id})"
                        )));
                    }
                    if !has_hole && compression == Compression::None && image_len != blcksz {
                        return Err(err(format!(
                            "neither BKPIMAGE_HAS_HOLE nor compression set, but block image length is {image_len} (block {id})"
                        )));
                    }
                }
                let rel = if fork_flags & BKPBLOCK_SAME_REL == 0 {
                    let r = RelFileLocator {
                        spc: c.u32().ok_or_else(short)?,
                        db: c.u32().ok_or_else(short)?,
                        rel: c.u32().ok_or_else(short)?,
                    };
                    last_rel = Some(r);
                    r
                } else {
                    last_rel.ok_or_else(|| {
                        err(format!(
                            "BKPBLOCK_SAME_REL set but no previous rel (block {id})"
                        ))
                    })?
                };
                let block = c.u32().ok_or_else(short)?;
                blocks.push(BlockRef {
                    id,
                    rel,
                    fork: fork_flags & 0x0F,
                    block,
                    has_image,
                    image_len,
                    apply_image,
                    hole_offset,
                    hole_length,
                    compression,
                    will_init: fork_flags & BKPBLOCK_WILL_INIT != 0,
                    data_len,
                    data: Bytes::new(),
                });
            }
            other => return Err(err(format!("invalid block_id {other}"))),
        }
    }
    if total.saturating_sub(c.pos) != datatotal {
        return Err(err(format!(
            "record payload length {} does not match the headers' total {datatotal}",
            total.saturating_sub(c.pos)
        )));
    }
    let mut pos = c.pos;
    for b in blocks.iter_mut() {
        pos += if b.has_image {
            usize::from(b.image_len)
        } else {
            0
        };
        let end = pos + usize::from(b.data_len);
        if end > total {
            return Err(err("block data beyond the record".into()));
        }
        b.data = rec.slice(pos..end);
        pos = end;
    }
    let main_end = pos + main_len;
    if main_end != total {
        return Err(err("main data does not end the record".into()));
    }
    let main_data = rec.slice(pos..main_end);
    Ok(DecodedRecord {
        lsn,
        end_lsn,
        xl_tot_len: hdr.tot_len,
        xid: Xid(hdr.xid),
        prev: Lsn(hdr.prev),
        info: hdr.info,
        rmid: hdr.rmid,
        crc: hdr.crc,
        blocks,
        main_data,
        origin,
        toplevel_xid: toplevel,
        version,
    })
}
