//! A sans-IO decoder for PostgreSQL write-ahead log.
//!
//! Layers, bottom up:
//! - [`page`]: page headers (short and long), magic numbers and PostgreSQL versions;
//! - [`decoder`]: [`WalDecoder`], fed bytes and polled for [`DecodedRecord`]s (record reassembly
//!   across pages and segments, CRC-32C, XLOG_SWITCH, end-of-WAL detection);
//! - [`record`]: the decoded record and its block references (its main data in `main_data`);
//! - [`parse`]: a checked record parsed into its parts (DecodeXLogRecord);
//! - [`crc`]: a whole record's CRC-32C (the CPU's instruction for short records);
//! - [`segment`]: segment file names;
//! - [`source`]: reads a directory of segments (plain, `.partial`, `.gz`) and feeds a decoder,
//!   one timeline or along a node's timeline history;
//! - [`archive`]: fetches segments and history files from archives (`restore_command`) and
//!   directories into a private directory that [`source`] reads;
//! - `fast`: the common case of [`source`] in one pass over large reads, handing anything
//!   unusual to the reference decoder;
//! - `parallel`: the fast path on worker threads, each decoding ranges of the files, handed
//!   out in order with every joint checked, or worked on where they are decoded
//!   ([`RangeWork`]: a range's result, not its records, crosses threads);
//! - `pipeline`: the same on two threads (reading and checking on one, parsing on the other);
//! - [`rmgr`], [`xact`], [`heap`], [`standby`]: interpretation of records by resource manager;
//! - [`tuple`]: the tuple images of heap records (block data, full-page images decompressed
//!   with [`pglz`], lz4 or zstd, prefix/suffix from the old tuple, logged old keys/tuples);
//! - [`tuplelog`]: those images for the WAL after the switchpoint, kept by a scan;
//! - [`accounting`]: decoded records + switchpoint → lost transactions ([`lost`]: what it finds),
//!   one record at a time or a range at a time (`accounting::range`);
//! - [`xidset`]: a compact set of xids (a bitmap) for the xids of the lost commits.

pub mod accounting;
pub mod archive;
mod buffer;
pub mod capture;
pub mod crc;
pub mod decoder;
pub mod dir;
pub mod end;
pub mod error;
mod fast;
#[cfg(test)]
pub(crate) mod fixture;
pub mod frame;
pub mod heap;
pub mod lost;
mod main_data;
pub mod page;
mod parallel;
pub mod parse;
pub mod pglz;
mod pipeline;
pub mod record;
pub mod rmgr;
pub mod segment;
pub mod source;
pub mod standby;
pub mod tuple;
pub mod tuplelog;
pub mod xact;
pub mod xidset;

pub use decoder::{EndOfWal, EndReason, Poll, Polled, WalDecoder};
pub use error::WalError;
pub use page::PgVersion;
pub use parallel::ranges::RangeWork;
pub use record::{BlockRef, Compression, DecodedRecord, RelFileLocator};

pub use crate::lsn::XLOG_BLCKSZ;
