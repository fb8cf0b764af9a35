//! Typed errors of the WAL layer; every one carries the LSN and, when known, the file.

use crate::lsn::Lsn;

/// Where a WAL error happened: the file (segment) name when the bytes came from a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileCtx(pub Option<String>);

impl std::fmt::Display for FileCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(name) => write!(f, " in {name}"),
            None => Ok(()),
        }
    }
}

/// An error while reading or decoding WAL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// The first page header carries a magic number this decoder does not know.
    #[error(
        "unsupported WAL page magic {magic:#06X} (not a PostgreSQL 12-18 WAL page) at {lsn}{file}"
    )]
    UnknownMagic {
        /// The magic number found.
        magic: u16,
        /// The page's LSN.
        lsn: Lsn,
        /// The file, when known.
        file: FileCtx,
    },
    /// A page header that cannot be valid in the middle of WAL (e.g. wrong segment size).
    #[error("invalid page header: {what} at {lsn}{file}")]
    InvalidPageHeader {
        /// What is wrong.
        what: String,
        /// The page's LSN.
        lsn: Lsn,
        /// The file, when known.
        file: FileCtx,
    },
    /// A record whose CRC matched but whose contents are malformed.
    #[error("invalid record: {what} at {lsn}{file}")]
    InvalidRecord {
        /// What is wrong.
        what: String,
        /// The record's LSN.
        lsn: Lsn,
        /// The file, when known.
        file: FileCtx,
    },
    /// The start LSN is not usable (e.g. not a record boundary, or inside a page header).
    #[error("invalid start: {what} at {lsn}{file}")]
    InvalidStart {
        /// What is wrong.
        what: String,
        /// The requested start.
        lsn: Lsn,
        /// The file, when known.
        file: FileCtx,
    },
    /// Bytes were fed out of order (not contiguous with what was fed before).
    #[error("bytes fed at {lsn} are not contiguous: expected {expected}")]
    NotContiguous {
        /// Where the fed bytes claim to start.
        lsn: Lsn,
        /// Where they should have started.
        expected: Lsn,
    },
    /// A segment file inside the requested range is missing.
    #[error("missing WAL segment {file} (needed for {lsn}) in {dir}")]
    MissingSegment {
        /// The file name that was expected.
        file: String,
        /// The LSN that needs it.
        lsn: Lsn,
        /// The directory searched.
        dir: String,
    },
    /// A segment file shorter than the segment size (and not `.partial`).
    #[error(
        "truncated WAL segment: {file} has {size} bytes, expected {expected}; needed at {lsn}"
    )]
    TruncatedSegment {
        /// The file.
        file: String,
        /// Its size.
        size: u64,
        /// The segment size.
        expected: u64,
        /// Where bytes were needed.
        lsn: Lsn,
    },
    /// A file name that is not a WAL segment name.
    #[error("not a WAL segment file name: {name:?}")]
    BadFileName {
        /// The name.
        name: String,
    },
    /// A record interpretation error (e.g. a truncated commit record).
    #[error("cannot interpret {what} at {lsn}")]
    Interpret {
        /// What could not be interpreted.
        what: String,
        /// The record's LSN.
        lsn: Lsn,
    },
    /// An I/O error while reading a file.
    #[error("cannot read {file} at {lsn}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The LSN being read.
        lsn: Lsn,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl WalError {
    /// Attaches a file name to an error that lacks one (used by sources).
    pub fn with_file(mut self, name: &str) -> Self {
        match &mut self {
            WalError::UnknownMagic { file, .. }
            | WalError::InvalidPageHeader { file, .. }
            | WalError::InvalidRecord { file, .. }
            | WalError::InvalidStart { file, .. }
                if file.0.is_none() =>
            {
                file.0 = Some(name.to_string());
            }
            _ => {}
        }
        self
    }
}
