//! Opens an evidence bundle for re-analysis: the manifest first, then `bundle.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::evidence::names::RelName;
use crate::report::NodeSection;
use crate::wal::RelFileLocator;

use super::{manifest, BundleError, Meta, WalMeta, BUNDLE_FORMAT, META_FILE, NODES_FILE, WAL_DIR};

/// A bundle whose every file matched `SHA256SUMS`.
#[derive(Debug)]
pub struct OpenedBundle {
    /// Its directory.
    pub root: PathBuf,
    /// `bundle.json`.
    pub meta: Meta,
    /// The new primary as the live run saw it.
    pub new_primary: NodeSection,
    /// The former primary as the live run saw it.
    pub former_primary: NodeSection,
    /// How many files the manifest lists (and were checked).
    pub files_checked: usize,
}

#[derive(serde::Deserialize)]
struct Nodes {
    new_primary: NodeSection,
    former_primary: NodeSection,
}

impl OpenedBundle {
    /// Checks every file against `SHA256SUMS` (a missing, changed or unlisted file is an
    /// error naming it), then reads `bundle.json` and `nodes.json`.
    pub fn open(root: &Path) -> Result<OpenedBundle, BundleError> {
        match std::fs::metadata(root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(BundleError::Unexpected {
                    path: root.display().to_string(),
                    what: "not a directory".into(),
                })
            }
            Err(e) => return Err(BundleError::io(root, e)),
        }
        let listed = manifest::verify(root)?;
        let meta: Meta = read_json(&root.join(META_FILE))?;
        if meta.bundle_format != BUNDLE_FORMAT {
            return Err(BundleError::Meta {
                file: root.join(META_FILE).display().to_string(),
                problem: format!(
                    "bundle format {} (this failover-verify reads format {BUNDLE_FORMAT}); use the version named in its `tool` field",
                    meta.bundle_format
                ),
            });
        }
        let nodes: Nodes = read_json(&root.join(NODES_FILE))?;
        Ok(OpenedBundle {
            root: root.to_path_buf(),
            meta,
            new_primary: nodes.new_primary,
            former_primary: nodes.former_primary,
            files_checked: listed.len(),
        })
    }

    /// The WAL section, or why there is none.
    pub fn wal(&self) -> Result<&WalMeta, BundleError> {
        match &self.meta.wal {
            Some(w) if !w.segments.is_empty() => Ok(w),
            _ => Err(BundleError::NoWal {
                dir: self.root.display().to_string(),
                why: self
                    .meta
                    .wal_missing
                    .clone()
                    .unwrap_or_else(|| "the live run kept no segment".into()),
            }),
        }
    }

    /// The directory of WAL segments.
    pub fn wal_dir(&self) -> PathBuf {
        self.root.join(WAL_DIR)
    }

    /// The relfilenode names the live run resolved.
    pub fn names(&self) -> Result<BTreeMap<RelFileLocator, RelName>, BundleError> {
        super::relation_map(&self.meta.relations).map_err(|problem| BundleError::Meta {
            file: self.root.join(META_FILE).display().to_string(),
            problem,
        })
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, BundleError> {
    let bytes = std::fs::read(path).map_err(|e| BundleError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| BundleError::Meta {
        file: path.display().to_string(),
        problem: e.to_string(),
    })
}
