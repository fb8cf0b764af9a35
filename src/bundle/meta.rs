//! The bundle's layout and metadata: file names, `bundle.json` and its types, relation names,
//! the redacted command line, and the errors of writing or reading a bundle.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::divergence::Divergence;
use crate::evidence::names::RelName;
use crate::lsn::{Lsn, TimelineId};
use crate::wal::RelFileLocator;

/// The layout version of `bundle.json`; bumped when a field changes meaning or disappears.
pub const BUNDLE_FORMAT: u32 = 1;

/// The machine-readable description at the bundle's root.
pub const META_FILE: &str = "bundle.json";

/// The node facts of both sides.
pub const NODES_FILE: &str = "nodes.json";

/// The index a person reads first.
pub const INDEX_FILE: &str = "INDEX.md";

/// The directory of WAL segments.
pub const WAL_DIR: &str = "wal";

/// Why a bundle could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The target directory exists: a bundle is never overwritten.
    #[error("{0}: already exists; an evidence bundle is never overwritten")]
    Exists(String),
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// A line of `SHA256SUMS` is malformed.
    #[error("{file} line {line}: {problem}")]
    Manifest {
        /// The manifest file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// A file's content does not match its checksum.
    #[error("{file}: checksum mismatch (SHA256SUMS says {expected}, the file hashes to {actual}): the bundle was altered or damaged")]
    Checksum {
        /// The file.
        file: String,
        /// The digest in the manifest.
        expected: String,
        /// The digest of the file as it is.
        actual: String,
    },
    /// A file the manifest lists is missing.
    #[error("{0}: listed in SHA256SUMS but missing from the bundle")]
    Missing(String),
    /// A file is in the bundle but not in the manifest.
    #[error("{0}: present in the bundle but not listed in SHA256SUMS")]
    NotListed(String),
    /// Something in the bundle that should not be there.
    #[error("{path}: {what}")]
    Unexpected {
        /// The path.
        path: String,
        /// What is wrong with it.
        what: String,
    },
    /// `bundle.json` or `nodes.json` cannot be used.
    #[error("{file}: {problem}")]
    Meta {
        /// The file.
        file: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The WAL segments could not be kept.
    #[error("WAL segments for the bundle: {0}")]
    Capture(String),
    /// The lost-row export could not be written into the bundle.
    #[error("lost-row export for the bundle: {0}")]
    Export(String),
    /// The bundle holds no WAL to re-analyse.
    #[error("{dir}: the bundle holds no WAL segments ({why}); its report.json is the record of that run")]
    NoWal {
        /// The bundle.
        dir: String,
        /// Why the run that made it kept none.
        why: String,
    },
}

impl BundleError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> BundleError {
        BundleError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// `bundle.json`: what a re-analysis needs, and what each file is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    /// [`BUNDLE_FORMAT`].
    pub bundle_format: u32,
    /// The tool and version that wrote it.
    pub tool: String,
    /// When the bundle was completed (RFC 3339, UTC).
    pub created_at: String,
    /// The command line that made it, conninfo strings redacted.
    pub command: String,
    /// Where the timelines forked, as the live run placed it.
    pub divergence: Option<Divergence>,
    /// Whether the former primary's end of WAL came from decoding (no connection to it).
    pub end_from_wal: bool,
    /// The WAL segments of the lost range, when any were read.
    pub wal: Option<WalMeta>,
    /// Why no WAL is in the bundle, when none is.
    pub wal_missing: Option<String>,
    /// The names the lost range's relfilenodes resolved to on the former primary.
    pub relations: Vec<RelationName>,
    /// The former primary's databases (`oid → name`), as the live run read them.
    #[serde(default)]
    pub databases: BTreeMap<u32, String>,
    /// Every file of the bundle but the manifest: what it is and where it came from.
    pub files: Vec<FileEntry>,
}

/// The WAL segments in the bundle and the range the live run decoded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WalMeta {
    /// The former timeline.
    pub timeline: TimelineId,
    /// The segment size in bytes.
    pub segment_size: u64,
    /// The switchpoint: commits at or after it are lost.
    pub switchpoint: Lsn,
    /// Where decoding began (a segment start at or before the switchpoint).
    pub scan_start: Lsn,
    /// The end the live run asked for (the former primary's end of WAL), if it knew one.
    pub requested_end: Option<Lsn>,
    /// The end of the last record the live run decoded.
    pub decoded_end: Option<Lsn>,
    /// Where the live run read the WAL.
    pub source: String,
    /// The segment files, relative to the bundle's root, in WAL order.
    pub segments: Vec<String>,
}

/// One relfilenode and its name.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RelationName {
    /// `spc/db/relfilenode`.
    pub relfilenode: String,
    /// What it is.
    #[serde(flatten)]
    pub name: RelName,
}

/// One file of the bundle.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the bundle's root.
    pub path: String,
    /// What it is and where it came from.
    pub what: String,
}

/// The relation names as `bundle.json` lists them.
pub fn relation_list(names: &BTreeMap<RelFileLocator, RelName>) -> Vec<RelationName> {
    names
        .iter()
        .map(|(loc, name)| RelationName {
            relfilenode: loc.to_string(),
            name: name.clone(),
        })
        .collect()
}

/// The relation names back from `bundle.json`.
pub fn relation_map(list: &[RelationName]) -> Result<BTreeMap<RelFileLocator, RelName>, String> {
    let mut out = BTreeMap::new();
    for r in list {
        let parts: Vec<&str> = r.relfilenode.split('/').collect();
        let num = |s: &str| s.parse::<u32>().ok();
        let loc = match parts.as_slice() {
            [spc, db, rel] => num(spc)
                .zip(num(db))
                .zip(num(rel))
                .map(|((spc, db), rel)| RelFileLocator { spc, db, rel }),
            _ => None,
        }
        .ok_or_else(|| format!("`{}` is not spc/db/relfilenode", r.relfilenode))?;
        out.insert(loc, r.name.clone());
    }
    Ok(out)
}

/// The command line, for the index: conninfo values redacted as in the reports, and any other
/// argument that carries a password masked whole.
pub fn redacted_command_line(args: &[String]) -> String {
    const CONNINFO_FLAGS: [&str; 8] = [
        "--new-primary",
        "--former-primary",
        "--old-primary",
        "--patroni-conninfo",
        "--repmgr",
        "--pg-auto-failover",
        "--member-conninfo",
        "--cnpg-conninfo",
    ];
    let redact_conninfo = |v: &str| {
        crate::pg::ConnParams::parse(v, &|_| None)
            .map(|p| p.redacted())
            .unwrap_or_else(|_| "(conninfo redacted)".into())
    };
    let mut out = Vec::new();
    let mut next_is_conninfo = false;
    for a in args {
        let shown = if next_is_conninfo {
            next_is_conninfo = false;
            redact_conninfo(a)
        } else if let Some((flag, v)) = a
            .split_once('=')
            .filter(|(f, _)| CONNINFO_FLAGS.contains(f))
        {
            format!("{flag}={}", redact_conninfo(v))
        } else {
            next_is_conninfo = CONNINFO_FLAGS.contains(&a.as_str());
            a.clone()
        };
        let lower = shown.to_ascii_lowercase();
        let leaks = (lower.contains("password") && !lower.contains("password=********"))
            || lower.contains("pgpass")
            || url_with_password(&shown);
        out.push(if leaks {
            "(redacted)".to_string()
        } else {
            crate::quote::shell_word(&shown)
        });
    }
    out.join(" ")
}

/// `scheme://user:secret@host`: a URL with a password in it.
fn url_with_password(s: &str) -> bool {
    s.split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?']).next())
        .and_then(|auth| auth.rsplit_once('@'))
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_never_shows_a_password() {
        let args: Vec<String> = [
            "failover-verify",
            "compare",
            "--new-primary",
            "host=a port=5432 user=u password=s3cret",
            "--former-primary=postgres://u:s3cret@b:5433/db",
            "--evidence-dir",
            "/tmp/ev dir",
            "--checks-dir=/x?password=s3cret",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let line = redacted_command_line(&args);
        assert!(!line.contains("s3cret"), "{line}");
        assert!(line.contains("host=a"), "{line}");
        assert!(line.contains("'/tmp/ev dir'"), "{line}");
    }

    #[test]
    fn relation_names_round_trip() {
        let mut m = BTreeMap::new();
        m.insert(
            RelFileLocator {
                spc: 1663,
                db: 5,
                rel: 16384,
            },
            RelName {
                database: Some("postgres".into()),
                table: Some("public.t1".into()),
                kind: "table".into(),
                oid: Some(16384),
            },
        );
        let list = relation_list(&m);
        let json = serde_json::to_string(&list).unwrap();
        let back: Vec<RelationName> = serde_json::from_str(&json).unwrap();
        assert_eq!(relation_map(&back).unwrap(), m);
    }
}
