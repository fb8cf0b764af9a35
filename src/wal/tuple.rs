//! Tuple images from heap WAL records: the full new tuple of an INSERT, MULTI_INSERT, UPDATE or
//! HOT_UPDATE (from the block data, or from the full-page image when the data was left out),
//! and the old key or old tuple that `wal_level = logical` logs for UPDATE and DELETE.
//!
//! Layouts follow PostgreSQL's `access/heapam_xlog.h`, `access/htup_details.h`,
//! `storage/bufpage.h` and the redo routines of `heapam.c` (PG13 to PG18: unchanged).

use serde::Serialize;

use crate::lsn::XLOG_BLCKSZ;
use crate::lsn::{Lsn, Xid};
use crate::wal::error::WalError;
use crate::wal::heap::{Tid, XLOG_HEAP_INIT_PAGE, XLOG_HEAP_OPMASK};
use crate::wal::pglz;
use crate::wal::record::{BlockRef, Compression, DecodedRecord, RelFileLocator};
use crate::wal::rmgr::{RM_HEAP2_ID, RM_HEAP_ID};

/// `SizeofHeapTupleHeader`: the fixed part of a heap tuple header, up to `t_bits`.
pub const SIZEOF_HEAP_TUPLE_HEADER: usize = 23;
/// `SizeOfHeapHeader`: `xl_heap_header` {t_infomask2, t_infomask, t_hoff}.
const SIZEOF_XL_HEAP_HEADER: usize = 5;
/// `SizeOfMultiInsertTuple`: `xl_multi_insert_tuple` {datalen, t_infomask2, t_infomask, t_hoff}.
const SIZEOF_MULTI_INSERT_TUPLE: usize = 7;
/// `SizeOfHeapUpdate`: `xl_heap_update` up to and including `new_offnum`.
const SIZEOF_HEAP_UPDATE: usize = 14;
/// `SizeOfHeapDelete`: `xl_heap_delete` up to and including `flags`.
const SIZEOF_HEAP_DELETE: usize = 8;
/// `SizeOfPageHeaderData`.
const SIZEOF_PAGE_HEADER: usize = 24;
/// `HEAP_NATTS_MASK`.
pub const HEAP_NATTS_MASK: u16 = 0x07FF;
/// `HEAP_HASNULL`.
pub const HEAP_HASNULL: u16 = 0x0001;
/// `HEAP_HASEXTERNAL`.
pub const HEAP_HASEXTERNAL: u16 = 0x0004;

/// UPDATE flags (`xl_heap_update.flags`).
pub const XLH_UPDATE_CONTAINS_OLD_TUPLE: u8 = 1 << 2;
/// The old key (replica identity columns) was logged.
pub const XLH_UPDATE_CONTAINS_OLD_KEY: u8 = 1 << 3;
/// The bytes shared with the old tuple at the start of the data were left out.
pub const XLH_UPDATE_PREFIX_FROM_OLD: u8 = 1 << 5;
/// The bytes shared with the old tuple at the end of the data were left out.
pub const XLH_UPDATE_SUFFIX_FROM_OLD: u8 = 1 << 6;
/// DELETE flags (`xl_heap_delete.flags`): the whole old tuple was logged.
pub const XLH_DELETE_CONTAINS_OLD_TUPLE: u8 = 1 << 1;
/// DELETE: the old key was logged.
pub const XLH_DELETE_CONTAINS_OLD_KEY: u8 = 1 << 2;

/// A heap tuple as it lies on a page: the 23-byte header, the null bitmap and padding up to
/// `t_hoff`, then the user data. Header fields that the WAL does not carry (xmin, xmax, ctid)
/// are zero in tuples rebuilt from record data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeapTuple {
    bytes: Vec<u8>,
}

impl HeapTuple {
    /// A tuple from its whole bytes (as on a page); an error when the header does not fit.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<HeapTuple, String> {
        let t = HeapTuple { bytes };
        t.check()?;
        Ok(t)
    }

    /// Rebuilds a tuple from the `xl_heap_header` fields and the bytes that follow the fixed
    /// header (null bitmap, padding, data), as heap redo does.
    pub fn from_parts(
        infomask2: u16,
        infomask: u16,
        hoff: u8,
        body: &[u8],
    ) -> Result<HeapTuple, String> {
        let mut bytes = vec![0u8; SIZEOF_HEAP_TUPLE_HEADER];
        bytes[18..20].copy_from_slice(&infomask2.to_le_bytes());
        bytes[20..22].copy_from_slice(&infomask.to_le_bytes());
        bytes[22] = hoff;
        bytes.extend_from_slice(body);
        HeapTuple::from_bytes(bytes)
    }

    fn check(&self) -> Result<(), String> {
        if self.bytes.len() < SIZEOF_HEAP_TUPLE_HEADER {
            return Err(format!(
                "tuple of {} bytes is shorter than its {SIZEOF_HEAP_TUPLE_HEADER}-byte header",
                self.bytes.len()
            ));
        }
        let hoff = usize::from(self.hoff());
        let min = SIZEOF_HEAP_TUPLE_HEADER
            + if self.has_nulls() {
                usize::from(self.natts()).div_ceil(8)
            } else {
                0
            };
        if hoff < min || hoff > self.bytes.len() {
            return Err(format!(
                "t_hoff {hoff} outside [{min}, {}] (natts {}, infomask {:#06x})",
                self.bytes.len(),
                self.natts(),
                self.infomask()
            ));
        }
        Ok(())
    }

    /// The whole tuple (`t_len` bytes).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `t_len`.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never true: a tuple has at least its header.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// `t_xmin` (zero when rebuilt from record data).
    pub fn xmin(&self) -> Xid {
        Xid(u32::from_le_bytes([
            self.bytes[0],
            self.bytes[1],
            self.bytes[2],
            self.bytes[3],
        ]))
    }

    /// `t_infomask2`.
    pub fn infomask2(&self) -> u16 {
        u16::from_le_bytes([self.bytes[18], self.bytes[19]])
    }

    /// `t_infomask`.
    pub fn infomask(&self) -> u16 {
        u16::from_le_bytes([self.bytes[20], self.bytes[21]])
    }

    /// `t_hoff`: where the user data starts.
    pub fn hoff(&self) -> u8 {
        self.bytes[22]
    }

    /// The number of attributes the tuple holds.
    pub fn natts(&self) -> u16 {
        self.infomask2() & HEAP_NATTS_MASK
    }

    /// Whether the tuple has a null bitmap.
    pub fn has_nulls(&self) -> bool {
        self.infomask() & HEAP_HASNULL != 0
    }

    /// The null bitmap (a set bit means not null), when the tuple has one.
    pub fn null_bitmap(&self) -> Option<&[u8]> {
        self.has_nulls().then(|| {
            &self.bytes[SIZEOF_HEAP_TUPLE_HEADER
                ..SIZEOF_HEAP_TUPLE_HEADER + usize::from(self.natts()).div_ceil(8)]
        })
    }

    /// The user data, from `t_hoff` on.
    pub fn data(&self) -> &[u8] {
        &self.bytes[usize::from(self.hoff())..]
    }
}

/// Where a rebuilt tuple came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageSource {
    /// The record's block data.
    RecordData,
    /// The record's block data, with a prefix and/or suffix taken from the old tuple.
    RecordDataAndOldTuple,
    /// The full-page image the record carries.
    PageImage,
    /// The old key or old tuple logged in the main data (`wal_level = logical`).
    LoggedOld,
}

/// An UPDATE's new tuple that left out bytes shared with the old tuple: complete it with
/// [`PartialUpdate::complete`] once the old tuple is known (from the new primary by ctid, or
/// from an earlier record of the same WAL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialUpdate {
    /// Bytes of the user data taken from the start of the old tuple's data.
    pub prefix_len: u16,
    /// Bytes of the user data taken from the end of the old tuple's data.
    pub suffix_len: u16,
    infomask2: u16,
    infomask: u16,
    hoff: u8,
    /// The null bitmap and padding (always logged), up to `t_hoff`.
    bitmap: Vec<u8>,
    /// The user data between the prefix and the suffix.
    middle: Vec<u8>,
}

impl PartialUpdate {
    /// The new tuple: bitmap from the record, then the old tuple's first `prefix_len` data
    /// bytes, the logged middle, and the old tuple's last `suffix_len` bytes (`heap_xlog_update`).
    pub fn complete(&self, old: &HeapTuple) -> Result<HeapTuple, String> {
        let od = old.data();
        let (p, s) = (usize::from(self.prefix_len), usize::from(self.suffix_len));
        if p > od.len() || s > od.len() {
            return Err(format!(
                "the old tuple's {} data bytes cannot give a prefix of {p} and a suffix of {s}",
                od.len()
            ));
        }
        let mut body = Vec::with_capacity(self.bitmap.len() + p + self.middle.len() + s);
        body.extend_from_slice(&self.bitmap);
        body.extend_from_slice(&od[..p]);
        body.extend_from_slice(&self.middle);
        body.extend_from_slice(&od[od.len() - s..]);
        HeapTuple::from_parts(self.infomask2, self.infomask, self.hoff, &body)
    }
}

/// A new tuple's image: complete, or waiting for the old tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleImage {
    /// The whole tuple.
    Complete(HeapTuple),
    /// The tuple needs bytes of the old tuple.
    NeedsOld(PartialUpdate),
}

/// What wrote a new tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum NewTupleOp {
    /// Heap INSERT.
    Insert,
    /// Heap2 MULTI_INSERT (COPY).
    MultiInsert,
    /// UPDATE or HOT_UPDATE; `old` is the updated version's ctid.
    Update {
        /// Whether it is a HOT update.
        hot: bool,
        /// The old version.
        old: Tid,
    },
}

/// A new row version a record wrote, with its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTuple {
    /// The record's LSN.
    pub lsn: Lsn,
    /// The (sub)transaction.
    pub xid: Xid,
    /// The relation.
    pub rel: RelFileLocator,
    /// Where the tuple is.
    pub tid: Tid,
    /// What wrote it.
    pub op: NewTupleOp,
    /// Where its image came from.
    pub source: ImageSource,
    /// The image.
    pub image: TupleImage,
}

/// What an UPDATE or DELETE logged of the old row under `wal_level = logical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OldKind {
    /// The whole old tuple (REPLICA IDENTITY FULL).
    Tuple,
    /// The replica identity key: a full-width tuple whose other columns are NULL.
    Key,
}

/// An old row image from an UPDATE or DELETE record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldTuple {
    /// The record's LSN.
    pub lsn: Lsn,
    /// The relation.
    pub rel: RelFileLocator,
    /// The old version's ctid.
    pub tid: Tid,
    /// Whole tuple or key only.
    pub kind: OldKind,
    /// The image.
    pub tuple: HeapTuple,
}

/// The tuple images of one heap record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordTuples {
    /// New row versions.
    pub new: Vec<NewTuple>,
    /// The logged old row, if any.
    pub old: Option<OldTuple>,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

/// Rebuilds the 8 KB page of a block's full-page image: decompresses it (pglz, lz4 or zstd)
/// and puts the hole back as zeros.
pub fn restore_page(block: &BlockRef) -> Result<Vec<u8>, String> {
    if !block.has_image {
        return Err(format!("block {} has no image", block.id));
    }
    let stored = block.image.to_vec();
    let hole_off = usize::from(block.hole_offset);
    let hole_len = usize::from(block.hole_length);
    let want = XLOG_BLCKSZ
        .checked_sub(hole_len)
        .ok_or_else(|| format!("image hole of {hole_len} bytes exceeds the page"))?;
    let raw = match block.compression {
        Compression::None => stored,
        Compression::Pglz => pglz::decompress(&stored, want).map_err(|e| e.to_string())?,
        Compression::Lz4 => {
            lz4_flex::block::decompress(&stored, want).map_err(|e| format!("lz4 image: {e}"))?
        }
        Compression::Zstd => {
            use std::io::Read;
            let mut dec = ruzstd::decoding::StreamingDecoder::new(&stored[..])
                .map_err(|e| format!("zstd image: {e}"))?;
            let mut out = Vec::with_capacity(want);
            (&mut dec)
                .take(want as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("zstd image: {e}"))?;
            out
        }
    };
    if raw.len() != want || hole_off > want {
        return Err(format!(
            "image of {} bytes (hole at {hole_off}, {hole_len} bytes) does not make an {XLOG_BLCKSZ}-byte page",
            raw.len()
        ));
    }
    let mut page = Vec::with_capacity(XLOG_BLCKSZ);
    page.extend_from_slice(&raw[..hole_off]);
    page.resize(hole_off + hole_len, 0);
    page.extend_from_slice(&raw[hole_off..]);
    Ok(page)
}

/// The tuple at line pointer `offnum` (1-based) of a heap page; an error when the line pointer
/// is not a normal one with storage inside the page.
pub fn tuple_from_page(page: &[u8], offnum: u16) -> Result<HeapTuple, String> {
    let lower = usize::from(u16_at(page, 12).ok_or("page shorter than its header")?);
    if offnum == 0 {
        return Err("line pointer 0".into());
    }
    let lp_at = SIZEOF_PAGE_HEADER + 4 * (usize::from(offnum) - 1);
    if lp_at + 4 > lower.min(page.len()) {
        return Err(format!(
            "line pointer {offnum} beyond the page's pd_lower {lower}"
        ));
    }
    let lp = u32::from_le_bytes(
        page[lp_at..lp_at + 4]
            .try_into()
            .map_err(|_| "short page")?,
    );
    let (off, flags, len) = (
        (lp & 0x7FFF) as usize,
        (lp >> 15) & 0x3,
        (lp >> 17) as usize,
    );
    if flags != 1 {
        return Err(format!(
            "line pointer {offnum} is not LP_NORMAL (flags {flags})"
        ));
    }
    let t = page
        .get(off..off + len)
        .ok_or_else(|| format!("line pointer {offnum} ({off}+{len}) beyond the page"))?;
    HeapTuple::from_bytes(t.to_vec())
}

/// An old key or tuple logged after the fixed main data (`xl_heap_header` + bits and data).
fn logged_old(md: &[u8], at: usize) -> Result<HeapTuple, String> {
    let h = md
        .get(at..at + SIZEOF_XL_HEAP_HEADER)
        .ok_or("old tuple header beyond the main data")?;
    HeapTuple::from_parts(
        u16::from_le_bytes([h[0], h[1]]),
        u16::from_le_bytes([h[2], h[3]]),
        h[4],
        &md[at + SIZEOF_XL_HEAP_HEADER..],
    )
}

/// A block's page image, restored once.
struct PageCache<'a> {
    block: &'a BlockRef,
    page: Option<Vec<u8>>,
}

impl PageCache<'_> {
    fn tuple(&mut self, offnum: u16) -> Result<HeapTuple, String> {
        if self.page.is_none() {
            self.page = Some(restore_page(self.block)?);
        }
        tuple_from_page(self.page.as_deref().unwrap_or_default(), offnum)
    }
}

/// The tuple images of a heap record: empty for records that write no user tuple.
pub fn tuples_of(rec: &DecodedRecord) -> Result<RecordTuples, WalError> {
    let err = |what: String| WalError::Interpret {
        what: format!("heap tuple image: {what}"),
        lsn: rec.lsn,
    };
    let op = rec.info & XLOG_HEAP_OPMASK;
    let md: &[u8] = &rec.main_data;
    let mut out = RecordTuples::default();
    let heap = rec.rmid == RM_HEAP_ID;
    let wanted = (heap && matches!(op, 0x00 | 0x10 | 0x20 | 0x40))
        || (rec.rmid == RM_HEAP2_ID && op == 0x50);
    if !wanted {
        return Ok(out);
    }
    let b0 = rec.block(0).ok_or_else(|| err("no block 0".into()))?;
    let base = |tid: Tid, op: NewTupleOp, source: ImageSource, image: TupleImage| NewTuple {
        lsn: rec.lsn,
        xid: rec.xid,
        rel: b0.rel,
        tid,
        op,
        source,
        image,
    };
    let short = || err("main data too short".into());
    let mut page = PageCache {
        block: b0,
        page: None,
    };
    let has_data = b0.data_len > 0;
    if heap && op == 0x00 {
        let offnum = u16_at(md, 0).ok_or_else(short)?;
        let tid = Tid {
            block: b0.block,
            offset: offnum,
        };
        let (tuple, source) = if has_data {
            (
                from_header_and_body(&b0.data).map_err(err)?,
                ImageSource::RecordData,
            )
        } else if b0.has_image {
            (page.tuple(offnum).map_err(err)?, ImageSource::PageImage)
        } else {
            return Err(err("INSERT with neither data nor image".into()));
        };
        out.new.push(base(
            tid,
            NewTupleOp::Insert,
            source,
            TupleImage::Complete(tuple),
        ));
    } else if !heap {
        // MULTI_INSERT
        let n = usize::from(u16_at(md, 2).ok_or_else(short)?);
        let init = rec.info & XLOG_HEAP_INIT_PAGE != 0;
        let mut offsets = Vec::with_capacity(n);
        for i in 0..n {
            offsets.push(if init {
                u16::try_from(i + 1).map_err(|_| short())?
            } else {
                u16_at(md, 4 + 2 * i).ok_or_else(short)?
            });
        }
        let data: &[u8] = &b0.data;
        let mut pos = 0usize;
        for offnum in offsets {
            let tid = Tid {
                block: b0.block,
                offset: offnum,
            };
            let (tuple, source) = if has_data {
                pos = pos.next_multiple_of(2);
                let h = data
                    .get(pos..pos + SIZEOF_MULTI_INSERT_TUPLE)
                    .ok_or_else(|| {
                        err(format!("MULTI_INSERT tuple {offnum} beyond the block data"))
                    })?;
                let len = usize::from(u16::from_le_bytes([h[0], h[1]]));
                let body = data
                    .get(pos + SIZEOF_MULTI_INSERT_TUPLE..pos + SIZEOF_MULTI_INSERT_TUPLE + len)
                    .ok_or_else(|| {
                        err(format!("MULTI_INSERT tuple {offnum} beyond the block data"))
                    })?;
                pos += SIZEOF_MULTI_INSERT_TUPLE + len;
                let t = HeapTuple::from_parts(
                    u16::from_le_bytes([h[2], h[3]]),
                    u16::from_le_bytes([h[4], h[5]]),
                    h[6],
                    body,
                )
                .map_err(err)?;
                (t, ImageSource::RecordData)
            } else if b0.has_image {
                (page.tuple(offnum).map_err(err)?, ImageSource::PageImage)
            } else {
                return Err(err("MULTI_INSERT with neither data nor image".into()));
            };
            out.new.push(base(
                tid,
                NewTupleOp::MultiInsert,
                source,
                TupleImage::Complete(tuple),
            ));
        }
    } else if op == 0x10 {
        let flags = *md.get(7).ok_or_else(short)?;
        let offnum = u16_at(md, 4).ok_or_else(short)?;
        let kind = if flags & XLH_DELETE_CONTAINS_OLD_TUPLE != 0 {
            Some(OldKind::Tuple)
        } else if flags & XLH_DELETE_CONTAINS_OLD_KEY != 0 {
            Some(OldKind::Key)
        } else {
            None
        };
        if let Some(kind) = kind {
            out.old = Some(OldTuple {
                lsn: rec.lsn,
                rel: b0.rel,
                tid: Tid {
                    block: b0.block,
                    offset: offnum,
                },
                kind,
                tuple: logged_old(md, SIZEOF_HEAP_DELETE).map_err(err)?,
            });
        }
    } else {
        // UPDATE / HOT_UPDATE: block 0 is the new page, block 1 the old one (when different).
        let old_off = u16_at(md, 4).ok_or_else(short)?;
        let flags = *md.get(7).ok_or_else(short)?;
        let new_off = u16_at(md, 12).ok_or_else(short)?;
        let old_tid = Tid {
            block: rec.block(1).map_or(b0.block, |b| b.block),
            offset: old_off,
        };
        let kind = if flags & XLH_UPDATE_CONTAINS_OLD_TUPLE != 0 {
            Some(OldKind::Tuple)
        } else if flags & XLH_UPDATE_CONTAINS_OLD_KEY != 0 {
            Some(OldKind::Key)
        } else {
            None
        };
        if let Some(kind) = kind {
            out.old = Some(OldTuple {
                lsn: rec.lsn,
                rel: rec.block(1).map_or(b0.rel, |b| b.rel),
                tid: old_tid,
                kind,
                tuple: logged_old(md, SIZEOF_HEAP_UPDATE).map_err(err)?,
            });
        }
        let tid = Tid {
            block: b0.block,
            offset: new_off,
        };
        let nop = NewTupleOp::Update {
            hot: op == 0x40,
            old: old_tid,
        };
        let (image, source) = if has_data {
            let d: &[u8] = &b0.data;
            let mut pos = 0;
            let mut take_len = |present: bool| -> Result<u16, WalError> {
                if !present {
                    return Ok(0);
                }
                let v = u16_at(d, pos).ok_or_else(|| err("UPDATE block data too short".into()))?;
                pos += 2;
                Ok(v)
            };
            let prefix_len = take_len(flags & XLH_UPDATE_PREFIX_FROM_OLD != 0)?;
            let suffix_len = take_len(flags & XLH_UPDATE_SUFFIX_FROM_OLD != 0)?;
            let rest = &d[pos..];
            if prefix_len == 0 && suffix_len == 0 {
                (
                    TupleImage::Complete(from_header_and_body(rest).map_err(err)?),
                    ImageSource::RecordData,
                )
            } else {
                let h = rest
                    .get(..SIZEOF_XL_HEAP_HEADER)
                    .ok_or_else(|| err("UPDATE block data too short".into()))?;
                let hoff = h[4];
                let body = &rest[SIZEOF_XL_HEAP_HEADER..];
                let bitmap_len = usize::from(hoff)
                    .checked_sub(SIZEOF_HEAP_TUPLE_HEADER)
                    .filter(|l| *l <= body.len())
                    .ok_or_else(|| {
                        err(format!("UPDATE t_hoff {hoff} does not fit the block data"))
                    })?;
                (
                    TupleImage::NeedsOld(PartialUpdate {
                        prefix_len,
                        suffix_len,
                        infomask2: u16::from_le_bytes([h[0], h[1]]),
                        infomask: u16::from_le_bytes([h[2], h[3]]),
                        hoff,
                        bitmap: body[..bitmap_len].to_vec(),
                        middle: body[bitmap_len..].to_vec(),
                    }),
                    ImageSource::RecordData,
                )
            }
        } else if b0.has_image {
            (
                TupleImage::Complete(page.tuple(new_off).map_err(err)?),
                ImageSource::PageImage,
            )
        } else {
            return Err(err(
                "UPDATE with neither data nor image for the new page".into()
            ));
        };
        out.new.push(base(tid, nop, source, image));
    }
    Ok(out)
}

/// `xl_heap_header` then the tuple from its null bitmap on.
fn from_header_and_body(d: &[u8]) -> Result<HeapTuple, String> {
    let h = d
        .get(..SIZEOF_XL_HEAP_HEADER)
        .ok_or("block data shorter than xl_heap_header")?;
    HeapTuple::from_parts(
        u16::from_le_bytes([h[0], h[1]]),
        u16::from_le_bytes([h[2], h[3]]),
        h[4],
        &d[SIZEOF_XL_HEAP_HEADER..],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuple_header_must_fit() {
        assert!(HeapTuple::from_bytes(vec![0; 10]).is_err());
        // natts 9 with nulls needs a 2-byte bitmap: t_hoff 24 is too small.
        assert!(HeapTuple::from_parts(9, HEAP_HASNULL, 24, &[0; 8]).is_err());
        let t = HeapTuple::from_parts(2, HEAP_HASNULL, 24, &[0b10, 1, 2, 3, 4]).unwrap();
        assert_eq!(t.natts(), 2);
        assert_eq!(t.null_bitmap(), Some(&[0b10u8][..]));
        assert_eq!(t.data(), &[1, 2, 3, 4]);
        assert!(HeapTuple::from_parts(1, 0, 200, &[]).is_err());
    }

    #[test]
    fn partial_update_takes_prefix_and_suffix_from_the_old_tuple() {
        let old = HeapTuple::from_parts(1, 0, 24, b"\0AAAAmiddleZZZZ").unwrap();
        let p = PartialUpdate {
            prefix_len: 4,
            suffix_len: 4,
            infomask2: 1,
            infomask: 0,
            hoff: 24,
            bitmap: vec![0],
            middle: b"NEW".to_vec(),
        };
        assert_eq!(p.complete(&old).unwrap().data(), b"AAAANEWZZZZ");
        let p = PartialUpdate {
            prefix_len: 40,
            ..p
        };
        assert!(p.complete(&old).is_err());
    }

    #[test]
    fn garbage_pages_are_errors() {
        assert!(tuple_from_page(&[], 1).is_err());
        let mut page = vec![0u8; 8192];
        page[12..14].copy_from_slice(&28u16.to_le_bytes());
        assert!(tuple_from_page(&page, 1).is_err()); // LP_UNUSED
        assert!(tuple_from_page(&page, 2).is_err()); // beyond pd_lower
        assert!(tuple_from_page(&page, 0).is_err());
        // LP_NORMAL at 8000, 100 bytes long: runs past the page.
        let lp: u32 = 8150 | (1 << 15) | (100 << 17);
        page[24..28].copy_from_slice(&lp.to_le_bytes());
        assert!(tuple_from_page(&page, 1).is_err());
    }
}
