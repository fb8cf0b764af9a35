//! A sans-IO decoder for PostgreSQL write-ahead log.

/// The size of a WAL page in bytes (XLOG_BLCKSZ); PostgreSQL builds with 8 KB pages by default.
pub const XLOG_BLCKSZ: usize = 8192;
