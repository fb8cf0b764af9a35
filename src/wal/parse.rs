//! Parsing a checked record into its parts, as DecodeXLogRecord does: block headers, payloads
//! and main data.

use crate::lsn::XLOG_BLCKSZ;
use crate::lsn::{Lsn, Xid};
use crate::wal::error::{FileCtx, WalError};
use crate::wal::page::PgVersion;
use crate::wal::record::{
    BlockRef, Compression, DecodedRecord, ImageBytes, RecordHeader, RelFileLocator,
    BKPBLOCK_HAS_DATA, BKPBLOCK_HAS_IMAGE, BKPBLOCK_SAME_REL, BKPBLOCK_WILL_INIT,
    BKPIMAGE_HAS_HOLE, RECORD_HEADER_LEN, XLR_BLOCK_ID_DATA_LONG, XLR_BLOCK_ID_DATA_SHORT,
    XLR_BLOCK_ID_ORIGIN, XLR_BLOCK_ID_TOPLEVEL_XID, XLR_MAX_BLOCK_ID,
};
use bytes::Bytes;

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
pub(crate) trait Source {
    /// Total length (xl_tot_len).
    fn total(&self) -> usize;
    /// Bytes `[off, off + len)` as shared slices of the pieces they lie in.
    fn pieces_of(&self, off: usize, len: usize) -> Vec<Bytes>;
    /// Bytes `[off, off + len)`: shared when they lie in one piece, else gathered.
    fn range_of(&self, off: usize, len: usize) -> Bytes;
    /// Bytes `[off, off + len)` borrowed, when they lie in one piece.
    fn contiguous(&self, off: usize, len: usize) -> Option<&[u8]>;
    /// Bytes from `off` on, at least `len` of them, borrowed where they can be (they may run
    /// past the record: only the first `len` are the record's).
    fn window(&self, off: usize, len: usize) -> Option<&[u8]> {
        self.contiguous(off, len)
    }
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
    fn window(&self, off: usize, len: usize) -> Option<&[u8]> {
        let at = self.off + off;
        let w = self.chunk.get(at..)?;
        (w.len() >= len).then_some(w)
    }
}

/// A whole record borrowed from a caller's buffer, to parse without its block data and images
/// ([`parse_into`] with `block_payloads` false: nothing is copied but main data longer than
/// [`crate::wal::record::INLINE_MAIN_DATA`]).
pub(crate) struct Borrowed<'a>(pub(crate) &'a [u8]);

impl Source for Borrowed<'_> {
    fn total(&self) -> usize {
        self.0.len()
    }
    fn pieces_of(&self, off: usize, len: usize) -> Vec<Bytes> {
        vec![self.range_of(off, len)]
    }
    fn range_of(&self, off: usize, len: usize) -> Bytes {
        Bytes::copy_from_slice(self.0.get(off..off + len).unwrap_or_default())
    }
    fn contiguous(&self, off: usize, len: usize) -> Option<&[u8]> {
        self.0.get(off..off + len)
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

/// A block's full-page image fields, as its header gives them.
#[derive(Clone, Copy)]
struct Image {
    has_image: bool,
    image_len: u16,
    apply_image: bool,
    hole_offset: u16,
    hole_length: u16,
    compression: Compression,
}

impl Image {
    /// No image.
    const NONE: Image = Image {
        has_image: false,
        image_len: 0,
        apply_image: false,
        hole_offset: 0,
        hole_length: 0,
        compression: Compression::None,
    };
}

/// Writes block reference `n` into the slot's `blocks` in place (a new one when there are
/// fewer), its payloads emptied: `(id, fork_flags, data_len)` as the header gives them.
#[inline(always)] // twice per record at most; its call cost a fifth of its work
fn put_block(
    blocks: &mut crate::wal::record::Blocks,
    n: usize,
    (id, fork_flags, data_len): (u8, u8, u16),
    rel: RelFileLocator,
    block: u32,
    image: Image,
) {
    if blocks.len() <= n {
        blocks.push(BlockRef::default());
    }
    if let Some(b) = blocks.get_mut(n) {
        b.id = id;
        b.rel = rel;
        b.fork = fork_flags & 0x0F;
        b.block = block;
        b.has_image = image.has_image;
        b.image_len = image.image_len;
        b.apply_image = image.apply_image;
        b.hole_offset = image.hole_offset;
        b.hole_length = image.hole_length;
        b.compression = image.compression;
        b.will_init = fork_flags & BKPBLOCK_WILL_INIT != 0;
        b.data_len = data_len;
        if !b.data.is_empty() {
            b.data = Bytes::new();
        }
        b.image.0.clear();
    }
}

/// The block headers of the commonest records, read without the general loop.
struct CommonHeaders {
    /// Block 0's `fork_flags`, data length, relation and block number, when there is one.
    block: Option<(u8, u16, RelFileLocator, u32)>,
    /// Where the headers end.
    pos: usize,
    main_len: usize,
}

#[cfg(test)]
thread_local! {
    /// Set in tests: [`common_headers`] declines every record (the general loop reads them all).
    static GENERAL_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The headers of a record of `total` bytes whose first bytes are `head`, when they have one
/// of the commonest shapes: no block reference, or block 0 alone with its relation, no image
/// and consistent data flags; then short main data; and the payloads fill the rest of the
/// record exactly. For these the general loop of [`parse_into`] finds exactly this, checks
/// included; any other record (or a malformed one) is `None`, for the loop.
#[inline]
fn common_headers(head: &[u8], total: usize) -> Option<CommonHeaders> {
    #[cfg(test)]
    if GENERAL_ONLY.with(std::cell::Cell::get) {
        return None;
    }
    let u16_at = |i: usize| u16::from_le_bytes([head[i], head[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    const ONE_BLOCK_END: usize = RECORD_HEADER_LEN + 20 + 2;
    match *head.get(RECORD_HEADER_LEN)? {
        XLR_BLOCK_ID_DATA_SHORT => {
            let main_len = usize::from(*head.get(RECORD_HEADER_LEN + 1)?);
            let pos = RECORD_HEADER_LEN + 2;
            (total.checked_sub(pos)? == main_len).then_some(CommonHeaders {
                block: None,
                pos,
                main_len,
            })
        }
        0 if head.len() >= ONE_BLOCK_END => {
            let fork_flags = head[RECORD_HEADER_LEN + 1];
            if fork_flags & (BKPBLOCK_HAS_IMAGE | BKPBLOCK_SAME_REL) != 0
                || head[ONE_BLOCK_END - 2] != XLR_BLOCK_ID_DATA_SHORT
            {
                return None;
            }
            let data_len = u16_at(RECORD_HEADER_LEN + 2);
            if (fork_flags & BKPBLOCK_HAS_DATA != 0) != (data_len != 0) {
                return None;
            }
            let rel = RelFileLocator {
                spc: u32_at(RECORD_HEADER_LEN + 4),
                db: u32_at(RECORD_HEADER_LEN + 8),
                rel: u32_at(RECORD_HEADER_LEN + 12),
            };
            let block = u32_at(RECORD_HEADER_LEN + 16);
            let main_len = usize::from(head[ONE_BLOCK_END - 1]);
            let datatotal = usize::from(data_len) + main_len;
            (total.checked_sub(ONE_BLOCK_END)? == datatotal).then_some(CommonHeaders {
                block: Some((fork_flags, data_len, rel, block)),
                pos: ONE_BLOCK_END,
                main_len,
            })
        }
        _ => None,
    }
}

/// The parser proper: `head` holds the record's first bytes (at least its block headers, or
/// the whole record when shorter); payloads are taken from `rec`.
#[allow(clippy::too_many_arguments)] // the record, where it is, and what to keep
pub(crate) fn parse_into<S: Source>(
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
    // The slot's block references are overwritten in place (clearing and rebuilding them cost
    // a few per cent of decoding), their payloads emptied; the rest are dropped at the end.
    let blocks = &mut out.blocks;
    let mut n = 0;
    let mut datatotal: usize = 0;
    let mut main_len: usize = 0;
    // Where the record lies; the loop below fills in an origin and a top-level xid.
    let mut ends = Ends {
        lsn,
        end_lsn,
        version,
        origin: None,
        toplevel: None,
    };
    let mut last_rel: Option<RelFileLocator> = None;
    let mut max_id: i32 = -1;
    let short = || err("truncated block header".into());
    if let Some(h) = common_headers(head, total) {
        // What the general path below finds for these headers, found without it: the
        // payloads fill the record exactly (checked), block 0's data first, then main data.
        let mut pos = h.pos;
        if let Some((fork_flags, data_len, rel, block)) = h.block {
            put_block(
                blocks,
                0,
                (0, fork_flags, data_len),
                rel,
                block,
                Image::NONE,
            );
            n = 1;
            if block_payloads {
                if let Some(b) = blocks.get_mut(0) {
                    b.data = rec.range_of(pos, usize::from(data_len));
                }
            }
            pos += usize::from(data_len);
        }
        if blocks.len() > n {
            blocks.truncate(n);
        }
        set_main_and_header(rec, pos, h.main_len, &hdr, ends, out);
        return Ok(());
    }
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
            XLR_BLOCK_ID_ORIGIN => ends.origin = Some(c.u16().ok_or_else(short)?),
            XLR_BLOCK_ID_TOPLEVEL_XID => ends.toplevel = Some(Xid(c.u32().ok_or_else(short)?)),
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
                let image = Image {
                    has_image,
                    image_len,
                    apply_image,
                    hole_offset,
                    hole_length,
                    compression,
                };
                put_block(blocks, n, (id, fork_flags, data_len), rel, block, image);
                n += 1;
            }
            other => return Err(err(format!("invalid block_id {other}"))),
        }
    }
    if blocks.len() > n {
        blocks.truncate(n);
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
    set_main_and_header(rec, pos, main_len, &hdr, ends, out);
    Ok(())
}

/// Where a parsed record lies and what its optional headers said.
struct Ends {
    lsn: Lsn,
    end_lsn: Lsn,
    version: PgVersion,
    origin: Option<u16>,
    toplevel: Option<Xid>,
}

/// The last step of a parse: `out`'s main data (`main_len` bytes at `pos` of `rec`) and its
/// header fields.
#[inline(always)] // once per record, from both of the parser's paths
fn set_main_and_header<S: Source>(
    rec: &S,
    pos: usize,
    main_len: usize,
    hdr: &RecordHeader,
    ends: Ends,
    out: &mut DecodedRecord,
) {
    match rec.window(pos, main_len) {
        Some(w) => out
            .main_data
            .set_from_window(w, main_len, || rec.range_of(pos, main_len)),
        None => {
            let b = rec.range_of(pos, main_len);
            out.main_data.set(&b.clone(), || b);
        }
    }
    out.lsn = ends.lsn;
    out.end_lsn = ends.end_lsn;
    out.xl_tot_len = hdr.tot_len;
    out.xid = Xid(hdr.xid);
    out.prev = Lsn(hdr.prev);
    out.info = hdr.info;
    out.rmid = hdr.rmid;
    out.crc = hdr.crc;
    out.origin = ends.origin;
    out.toplevel_xid = ends.toplevel;
    out.version = ends.version;
}

#[cfg(test)]
mod tests;
