//! The evidence bundle: a tamper-evident directory of what one `compare` run read and found.
//!
//! `compare --evidence-dir DIR` writes the reports in every format, the lost-row export, the
//! divergent WAL segments it read (only the lost range), both sides' timeline history files,
//! the node facts, an index (`INDEX.md`), a machine-readable description (`bundle.json`) and
//! `SHA256SUMS` ([`manifest`]). It is built in a private directory beside DIR and renamed into
//! place when complete ([`writer`]). `compare --from-evidence DIR` checks the manifest and
//! redoes the WAL accounting from the bundle alone ([`reader`]).

pub mod adopt;
pub mod manifest;
pub mod meta;
pub mod reader;
pub mod writer;

pub use crate::wal::capture::{CapturedSegment, WalCapture};
pub use meta::{
    redacted_command_line, relation_list, relation_map, BundleError, FileEntry, Meta, RelationName,
    WalMeta, BUNDLE_FORMAT, INDEX_FILE, META_FILE, NODES_FILE, WAL_DIR,
};
pub use reader::OpenedBundle;
pub use writer::{BundleContents, HistoryFile, Staging, WalRange};
