//! A decoded WAL record: the XLogRecord header, its block references and its main data.

use bytes::Bytes;
use serde::Serialize;

use crate::lsn::XLOG_BLCKSZ;
use crate::lsn::{Lsn, Xid};
use crate::wal::error::{FileCtx, WalError};
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

/// Main data up to this length is copied into the record ([`MainData`]).
pub const INLINE_MAIN_DATA: usize = 62;

/// A record's main data. Short main data (most records': a heap insert has 3 bytes, a commit a
/// few dozen) is copied into the record itself, which costs less than sharing the decoder's
/// buffer (two atomic reference-count updates per record); longer main data is shared.
/// Dereferences to the bytes; two values are equal when their bytes are.
#[derive(Clone)]
pub enum MainData {
    /// Copied: `len` bytes of `buf`.
    Inline {
        /// How many bytes of `buf` are used.
        len: u8,
        /// The bytes.
        buf: [u8; INLINE_MAIN_DATA],
    },
    /// Shared with the decoder's buffer.
    Shared(Bytes),
}

impl Default for MainData {
    fn default() -> MainData {
        MainData::Inline {
            len: 0,
            buf: [0; INLINE_MAIN_DATA],
        }
    }
}

impl MainData {
    /// Empties it (dropping a shared buffer's reference).
    pub fn clear(&mut self) {
        match self {
            MainData::Inline { len, .. } => *len = 0,
            MainData::Shared(_) => *self = MainData::default(),
        }
    }

    /// Sets it to `b`: copied when short, else `shared()`'s bytes (which must equal `b`).
    fn set(&mut self, b: &[u8], shared: impl FnOnce() -> Bytes) {
        if b.len() <= INLINE_MAIN_DATA {
            if let MainData::Shared(_) = self {
                *self = MainData::default();
            }
            if let MainData::Inline { len, buf } = self {
                buf[..b.len()].copy_from_slice(b);
                *len = b.len() as u8;
            }
        } else {
            *self = MainData::Shared(shared());
        }
    }
}

impl From<Bytes> for MainData {
    fn from(b: Bytes) -> MainData {
        let mut m = MainData::default();
        m.set(&b.clone(), || b);
        m
    }
}

impl std::ops::Deref for MainData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            MainData::Inline { len, buf } => &buf[..usize::from(*len)],
            MainData::Shared(b) => b,
        }
    }
}

impl AsRef<[u8]> for MainData {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl PartialEq for MainData {
    fn eq(&self, other: &MainData) -> bool {
        **self == **other
    }
}

impl Eq for MainData {}

impl std::fmt::Debug for MainData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&Bytes::copy_from_slice(self), f)
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

/// Longest possible run of block headers: the fixed header, 33 block headers of at most 27
/// bytes, an origin, a top-level xid and a long main-data header (DecodeXLogRecord's limits).
const MAX_HEADERS_LEN: usize = RECORD_HEADER_LEN + 33 * 27 + 3 + 5 + 5;

/// A record's bytes as the decoder holds them: one shared slice when the record lies on one
/// page, else one shared slice per page it spans (page headers excluded). Nothing is copied
/// to check or parse a record in pieces except its block headers; block data and main data
/// are gathered only when they themselves cross a page boundary, and images never are.
#[derive(Debug, Clone)]
pub enum RecordBytes {
    /// The whole record, contiguous.
    One(Bytes),
    /// The record's pieces in order (their lengths add up to `xl_tot_len`).
    Pieces(smallvec::SmallVec<[Bytes; 4]>),
}

impl RecordBytes {
    /// Total length (xl_tot_len).
    pub fn len(&self) -> usize {
        match self {
            RecordBytes::One(b) => b.len(),
            RecordBytes::Pieces(p) => p.iter().map(Bytes::len).sum(),
        }
    }

    /// Whether there are no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes `[off, off + len)` as shared slices of the pieces they lie in (never copied).
    fn pieces(&self, off: usize, len: usize) -> Vec<Bytes> {
        match self {
            RecordBytes::One(b) => vec![b.slice(off..off + len)],
            RecordBytes::Pieces(pieces) => {
                let mut start = 0;
                let end = off + len;
                let mut out = Vec::with_capacity(2);
                for p in pieces {
                    let (ps, pe) = (start, start + p.len());
                    start = pe;
                    if pe <= off {
                        continue;
                    }
                    if ps >= end {
                        break;
                    }
                    out.push(p.slice(off.max(ps) - ps..end.min(pe) - ps));
                }
                out
            }
        }
    }

    /// Bytes `[off, off + len)`: shared when they lie in one piece, else gathered.
    fn range(&self, off: usize, len: usize) -> Bytes {
        match self {
            RecordBytes::One(b) => b.slice(off..off + len),
            RecordBytes::Pieces(pieces) => {
                let mut start = 0;
                let mut out: Option<Vec<u8>> = None;
                let end = off + len;
                for p in pieces {
                    let (ps, pe) = (start, start + p.len());
                    start = pe;
                    if pe <= off {
                        continue;
                    }
                    if ps >= end {
                        break;
                    }
                    let (a, b) = (off.max(ps) - ps, end.min(pe) - ps);
                    if out.is_none() && ps <= off && end <= pe {
                        return p.slice(a..b);
                    }
                    out.get_or_insert_with(|| Vec::with_capacity(len))
                        .extend_from_slice(&p[a..b]);
                }
                out.map(Bytes::from).unwrap_or_default()
            }
        }
    }
}

/// The first bytes of a record held in `pieces`, as many as its block headers can take (or
/// the whole record when shorter), gathered into `scratch`.
fn gather_headers<'a>(pieces: &[Bytes], scratch: &'a mut [u8; MAX_HEADERS_LEN]) -> &'a [u8] {
    let mut got = 0;
    for p in pieces {
        let n = (MAX_HEADERS_LEN - got).min(p.len());
        scratch[got..got + n].copy_from_slice(&p[..n]);
        got += n;
        if got == MAX_HEADERS_LEN {
            break;
        }
    }
    &scratch[..got]
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
    parse_record_bytes(&RecordBytes::One(rec), lsn, end_lsn, version, file)
}

/// Like [`parse_record`], for a record held in pieces (see [`RecordBytes`]).
pub fn parse_record_bytes(
    rec: &RecordBytes,
    lsn: Lsn,
    end_lsn: Lsn,
    version: PgVersion,
    file: &FileCtx,
) -> Result<DecodedRecord, WalError> {
    let mut out = DecodedRecord::empty();
    parse_record_bytes_into(rec, lsn, end_lsn, version, file, &mut out)?;
    Ok(out)
}

/// Like [`parse_record_bytes`], into `out` (its block list and buffers are reused: a reader
/// that parses every record into one slot allocates and moves nothing per record). On an
/// error `out` holds a partly parsed record.
pub fn parse_record_bytes_into(
    rec: &RecordBytes,
    lsn: Lsn,
    end_lsn: Lsn,
    version: PgVersion,
    file: &FileCtx,
    out: &mut DecodedRecord,
) -> Result<(), WalError> {
    parse_pieces_into(rec, true, lsn, end_lsn, version, file, out)
}

/// [`parse_record_bytes_into`], keeping block data and images only with `block_payloads`.
pub(crate) fn parse_pieces_into(
    rec: &RecordBytes,
    block_payloads: bool,
    lsn: Lsn,
    end_lsn: Lsn,
    version: PgVersion,
    file: &FileCtx,
    out: &mut DecodedRecord,
) -> Result<(), WalError> {
    let mut scratch;
    let head = match rec {
        RecordBytes::One(b) => &b[..],
        // Usually the first page holds all the block headers there can be.
        RecordBytes::Pieces(p) => match p.first() {
            Some(first) if first.len() >= MAX_HEADERS_LEN => &first[..],
            _ => {
                scratch = [0u8; MAX_HEADERS_LEN];
                gather_headers(p, &mut scratch)
            }
        },
    };
    parse_into(rec, head, block_payloads, lsn, end_lsn, version, file, out)
}

/// A record lying on one page: `len` bytes at `off` in a fed chunk. Its parts are slices of
/// the chunk (one reference count each), with no slice of the whole record in between.
pub(crate) struct InChunk<'a> {
    pub(crate) chunk: &'a Bytes,
    pub(crate) off: usize,
    pub(crate) len: usize,
    /// Whether block data and images are kept (else left empty: see
    /// [`crate::wal::WalDecoder::without_block_payloads`]).
    pub(crate) block_payloads: bool,
}

/// Where a record's bytes lie, for [`parse_into`].
trait Source {
    /// Total length (xl_tot_len).
    fn total(&self) -> usize;
    /// Bytes `[off, off + len)` as shared slices of the pieces they lie in.
    fn pieces_of(&self, off: usize, len: usize) -> Vec<Bytes>;
    /// Bytes `[off, off + len)`: shared when they lie in one piece, else gathered.
    fn range_of(&self, off: usize, len: usize) -> Bytes;
    /// Bytes `[off, off + len)` borrowed, when they lie in one piece.
    fn contiguous(&self, off: usize, len: usize) -> Option<&[u8]>;
}

impl Source for RecordBytes {
    fn total(&self) -> usize {
        self.len()
    }
    fn pieces_of(&self, off: usize, len: usize) -> Vec<Bytes> {
        self.pieces(off, len)
    }
    fn range_of(&self, off: usize, len: usize) -> Bytes {
        self.range(off, len)
    }
    fn contiguous(&self, off: usize, len: usize) -> Option<&[u8]> {
        match self {
            RecordBytes::One(b) => b.get(off..off + len),
            RecordBytes::Pieces(_) => None,
        }
    }
}

impl Source for InChunk<'_> {
    fn total(&self) -> usize {
        self.len
    }
    fn pieces_of(&self, off: usize, len: usize) -> Vec<Bytes> {
        vec![self.range_of(off, len)]
    }
    fn range_of(&self, off: usize, len: usize) -> Bytes {
        if len == 0 {
            return Bytes::new();
        }
        let at = self.off + off;
        self.chunk.slice(at..at + len)
    }
    fn contiguous(&self, off: usize, len: usize) -> Option<&[u8]> {
        let at = self.off + off;
        self.chunk.get(at..at + len)
    }
}

/// Parses a complete, CRC-checked record lying in one chunk into `out` (see
/// [`parse_record_bytes_into`]).
pub(crate) fn parse_in_chunk_into(
    rec: &InChunk<'_>,
    lsn: Lsn,
    end_lsn: Lsn,
    version: PgVersion,
    file: &FileCtx,
    out: &mut DecodedRecord,
) -> Result<(), WalError> {
    let head = rec
        .chunk
        .get(rec.off..rec.off + rec.len)
        .unwrap_or_default();
    parse_into(
        rec,
        head,
        rec.block_payloads,
        lsn,
        end_lsn,
        version,
        file,
        out,
    )
}

/// The parser proper: `head` holds the record's first bytes (at least its block headers, or
/// the whole record when shorter); payloads are taken from `rec`.
#[allow(clippy::too_many_arguments)] // the record, where it is, and what to keep
fn parse_into<S: Source>(
    rec: &S,
    head: &[u8],
    block_payloads: bool,
    lsn: Lsn,
    end_lsn: Lsn,
    version: PgVersion,
    file: &FileCtx,
    out: &mut DecodedRecord,
) -> Result<(), WalError> {
    let err = |what: String| WalError::InvalidRecord {
        what,
        lsn,
        file: file.clone(),
    };
    let hdr =
        RecordHeader::parse(head).ok_or_else(|| err("record shorter than its header".into()))?;
    let mut c = Cursor {
        b: head,
        pos: RECORD_HEADER_LEN,
    };
    let total = rec.total();
    let blocks = &mut out.blocks;
    blocks.clear();
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
                    image: ImageBytes::default(),
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
        if b.has_image {
            let len = usize::from(b.image_len);
            if pos + len > total {
                return Err(err("block image beyond the record".into()));
            }
            if block_payloads {
                b.image = ImageBytes(rec.pieces_of(pos, len));
            }
            pos += len;
        }
        let end = pos + usize::from(b.data_len);
        if end > total {
            return Err(err("block data beyond the record".into()));
        }
        if block_payloads {
            b.data = rec.range_of(pos, end - pos);
        }
        pos = end;
    }
    let main_end = pos + main_len;
    if main_end != total {
        return Err(err("main data does not end the record".into()));
    }
    match rec.contiguous(pos, main_len) {
        Some(b) => out.main_data.set(b, || rec.range_of(pos, main_len)),
        None => {
            let b = rec.range_of(pos, main_len);
            out.main_data.set(&b.clone(), || b);
        }
    }
    out.lsn = lsn;
    out.end_lsn = end_lsn;
    out.xl_tot_len = hdr.tot_len;
    out.xid = Xid(hdr.xid);
    out.prev = Lsn(hdr.prev);
    out.info = hdr.info;
    out.rmid = hdr.rmid;
    out.crc = hdr.crc;
    out.origin = origin;
    out.toplevel_xid = toplevel;
    out.version = version;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
