//! Records found but not yet parsed (frames), for the two-thread reader: parsing a frame from
//! shared chunks and checking its CRC after the fact.

use bytes::Bytes;
use smallvec::SmallVec;

use crate::lsn::Lsn;
use crate::lsn::XLOG_BLCKSZ;
use crate::wal::end::{EndOfWal, EndReason};
use crate::wal::error::{FileCtx, WalError};
use crate::wal::page::{PageHeader, PgVersion};
use crate::wal::parse::{parse_record_bytes, RecordBytes};
use crate::wal::record::{record_crc_pieces, DecodedRecord, RecordHeader};

const BLCKSZ: u64 = XLOG_BLCKSZ as u64;

/// A record that was found and checked (record header, continuation pages, CRC-32C) but not
/// yet parsed: where its bytes lie. Finding records is sequential; parsing them is not, so a
/// reader may hand frames to another thread (module `wal::pipeline` does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Where the record starts.
    pub lsn: Lsn,
    /// Where it ends.
    pub end_lsn: Lsn,
    /// Its xl_prev.
    pub prev: Lsn,
    /// The PostgreSQL version of its page (from the page magic).
    pub version: PgVersion,
    /// Whether its CRC-32C was checked (always, unless [`WalDecoder::defer_crc`]).
    pub crc_checked: bool,
    /// (LSN, length) of its bytes on each page it spans, in order; the lengths add up to
    /// xl_tot_len. Each lies inside one fed chunk (the buffer never splits a page).
    pub pieces: SmallVec<[(u64, u32); 4]>,
}

/// What [`WalDecoder::poll_frame`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramePoll {
    /// A checked record, to parse with [`WalDecoder::parse_frame`] or [`parse_frame_in`].
    Frame(Frame),
    /// More bytes are needed.
    NeedMore,
    /// Decoding is over.
    End(EndOfWal),
}

/// Parses `frame` whose bytes lie in `chunks` ((first LSN, bytes) in LSN order, as
/// [`WalDecoder::share_chunks`] hands them out); shares the bytes, copying only what crosses
/// a page.
pub fn parse_frame_in(
    frame: &Frame,
    chunks: &[(u64, Bytes)],
    file: &FileCtx,
) -> Result<DecodedRecord, WalError> {
    let piece = |&(p, n): &(u64, u32)| -> Bytes {
        chunk_slice(chunks, p, n as usize)
            .map(|(b, off)| b.slice(off..off + n as usize))
            .unwrap_or_default()
    };
    let rec = match frame.pieces.as_slice() {
        [one] => RecordBytes::One(piece(one)),
        many => RecordBytes::Pieces(many.iter().map(piece).collect()),
    };
    parse_record_bytes(&rec, frame.lsn, frame.end_lsn, frame.version, file)
}

/// The chunk holding `len` bytes at `lsn`, and their offset in it.
fn chunk_slice(chunks: &[(u64, Bytes)], lsn: u64, len: usize) -> Option<(&Bytes, usize)> {
    chunks
        .iter()
        .find(|(s, b)| lsn >= *s && lsn + len as u64 <= s + b.len() as u64)
        .map(|(s, b)| (b, (lsn - s) as usize))
}

/// Checks the CRC-32C of a frame found with [`WalDecoder::defer_crc`], whose bytes lie in
/// `chunks`; on a mismatch, says where WAL ends as the decoder would have (the file is left
/// for the caller to name).
pub fn check_frame_crc(frame: &Frame, chunks: &[(u64, Bytes)]) -> Result<(), EndOfWal> {
    let slices = frame.pieces.iter().map(|&(p, n)| {
        chunk_slice(chunks, p, n as usize).map_or(&[][..], |(b, off)| &b[off..off + n as usize])
    });
    let (computed, head) = record_crc_pieces(slices);
    let stored = RecordHeader::parse(&head).map_or(0, |h| h.crc);
    if stored == computed {
        return Ok(());
    }
    let fed_end = chunks.last().map_or(0, |(s, b)| s + b.len() as u64);
    let data_follows = valid_page_after(frame.lsn.0, fed_end, frame.version, |page| {
        chunk_slice(chunks, page, 24).map(|(b, off)| &b[off..off + 24])
    });
    Err(EndOfWal {
        lsn: frame.lsn,
        reason: EndReason::BadCrc { stored, computed },
        file: None,
        data_follows,
    })
}

/// Whether a page with a valid-looking header for `version` follows `lsn`'s page before
/// `fed_end`: non-zero WAL after a failing record hints at damage rather than a torn tail.
pub(crate) fn valid_page_after<'a>(
    lsn: u64,
    fed_end: u64,
    version: PgVersion,
    header: impl Fn(u64) -> Option<&'a [u8]>,
) -> bool {
    let mut page = lsn - lsn % BLCKSZ + BLCKSZ;
    while page + 24 <= fed_end {
        if let Some(h) = header(page).and_then(PageHeader::parse) {
            if Some(h.magic) == version.magic() && h.pageaddr.0 == page {
                return true;
            }
        }
        page += BLCKSZ;
    }
    false
}
