//! Where and why decoding stopped: the end of WAL as the decoder found it, in words a report
//! can show.

use serde::Serialize;

use crate::lsn::Lsn;

/// Why decoding stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EndReason {
    /// `xl_tot_len` is 0: the normal end of WAL in a pre-zeroed or fresh segment.
    ZeroLength,
    /// `xl_tot_len` is impossible (below 24 or above 1 GB).
    InvalidLength {
        /// The length found.
        tot_len: u32,
    },
    /// The page is all zeros (magic 0000).
    ZeroPage,
    /// The page's `xlp_pageaddr` is not its own LSN: a recycled segment's stale page.
    RecycledPage {
        /// The address the page claims.
        pageaddr: Lsn,
    },
    /// A page header that is not valid here (bad magic, flags, size, timeline, missing contrecord).
    InvalidPage {
        /// What is wrong.
        what: String,
    },
    /// `xl_prev` does not point at the previous record: stale bytes.
    BadPrev {
        /// The xl_prev found.
        found: Lsn,
        /// The previous record's LSN.
        expected: Lsn,
    },
    /// The resource manager id is out of range.
    InvalidRmgr {
        /// The rmid found.
        rmid: u8,
    },
    /// The record's CRC-32C does not match.
    BadCrc {
        /// The CRC stored in the record.
        stored: u32,
        /// The CRC computed over its bytes.
        computed: u32,
    },
    /// The bytes ended (after [`WalDecoder::finish`]).
    EndOfInput {
        /// Whether a record had begun and was cut off.
        partial_record: bool,
    },
    /// The requested end LSN was reached.
    RequestedEnd,
}

impl EndReason {
    /// Whether this is how WAL normally ends (no hint of damage).
    pub fn is_clean(&self) -> bool {
        matches!(
            self,
            EndReason::ZeroLength
                | EndReason::ZeroPage
                | EndReason::RecycledPage { .. }
                | EndReason::RequestedEnd
                | EndReason::EndOfInput {
                    partial_record: false
                }
        )
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndReason::ZeroLength => write!(f, "invalid record length: expected at least 24, got 0"),
            EndReason::InvalidLength { tot_len } => write!(f, "invalid record length {tot_len}"),
            EndReason::ZeroPage => write!(f, "zeroed page (invalid magic number 0000)"),
            EndReason::RecycledPage { pageaddr } => {
                write!(f, "unexpected pageaddr {pageaddr} (recycled segment)")
            }
            EndReason::InvalidPage { what } => write!(f, "{what}"),
            EndReason::BadPrev { found, expected } => {
                write!(f, "record with incorrect prev-link {found}, expected {expected}")
            }
            EndReason::InvalidRmgr { rmid } => write!(f, "invalid resource manager ID {rmid}"),
            EndReason::BadCrc { stored, computed } => write!(
                f,
                "incorrect resource manager data checksum (stored {stored:08X}, computed {computed:08X})"
            ),
            EndReason::EndOfInput { partial_record } => {
                if *partial_record {
                    write!(f, "input ends inside a record")
                } else {
                    write!(f, "end of input")
                }
            }
            EndReason::RequestedEnd => write!(f, "requested end reached"),
        }
    }
}

/// Where and why decoding stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndOfWal {
    /// The LSN of the record (or page) that could not be read: the end of valid WAL.
    pub lsn: Lsn,
    /// Why.
    pub reason: EndReason,
    /// The file that holds `lsn`, when the bytes came from a file.
    pub file: Option<String>,
    /// Whether non-zero bytes follow the failure point in what was fed (hint of mid-WAL damage).
    pub data_follows: bool,
}

impl std::fmt::Display for EndOfWal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "end of WAL: {} at {}", self.reason, self.lsn)?;
        if let Some(file) = &self.file {
            write!(f, " in {file}")?;
        }
        if self.data_follows {
            write!(
                f,
                " (non-zero data follows: possible corruption in the middle of WAL)"
            )?;
        }
        Ok(())
    }
}
