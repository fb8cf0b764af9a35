//! The `--state` file of cron mode: per cluster (system identifier) and per command, the last
//! timeline that was verified and the verdict reported for it, so that a scheduled job reports
//! a new failover once and stays quiet afterwards.
//!
//! The file is JSON, written atomically (temporary file + rename). A file that cannot be read
//! or parsed is an error, and it is never overwritten: the operator decides what to do with it.
//!
//! ```json
//! {
//!   "format": "failover-verify-state",
//!   "version": 1,
//!   "clusters": {
//!     "7312345678901234567": {
//!       "compare": { "timeline": 2, "verdict": "loss", "recorded_at": "2026-01-01T03:00:00Z" }
//!     }
//!   }
//! }
//! ```

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::lsn::{SystemId, TimelineId};

/// The value of the file's `format` field.
pub const STATE_FORMAT: &str = "failover-verify-state";

/// The layout version of the state file this build reads and writes.
pub const STATE_VERSION: u32 = 1;

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file exists but could not be read.
    #[error("state file {}: cannot read it: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is not a state file this build understands (corrupt, foreign or newer).
    #[error("state file {} is not usable: {reason} (fix or remove it; it was left untouched)", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it, on one line.
        reason: String,
    },
    /// The directory the file should live in does not exist or is not a directory.
    #[error("state file {}: its directory {} does not exist", path.display(), dir.display())]
    NoDirectory {
        /// The file.
        path: PathBuf,
        /// Its parent directory.
        dir: PathBuf,
    },
    /// The file could not be written.
    #[error("state file {}: cannot write it: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// What was last reported for one cluster by one command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The (new) primary's timeline when it was reported.
    pub timeline: TimelineId,
    /// The verdict reported (`loss`, `no_loss`, ... for `compare`; `healthy`, `diverged`,
    /// `inconclusive` for `cluster`).
    pub verdict: String,
    /// When it was reported (RFC 3339, UTC).
    pub recorded_at: String,
}

/// The whole state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    /// Always [`STATE_FORMAT`]: tells a state file from any other JSON.
    pub format: String,
    /// [`STATE_VERSION`].
    pub version: u32,
    /// System identifier (as a string) → command (`compare`, `cluster`) → last report.
    pub clusters: BTreeMap<String, BTreeMap<String, Entry>>,
}

impl Default for StateFile {
    fn default() -> Self {
        StateFile {
            format: STATE_FORMAT.into(),
            version: STATE_VERSION,
            clusters: BTreeMap::new(),
        }
    }
}

/// What a run is about, for the state file: which cluster, which command, what it found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunKey {
    /// The cluster.
    pub system_identifier: SystemId,
    /// `compare` or `cluster`.
    pub command: &'static str,
    /// The (new) primary's timeline.
    pub timeline: TimelineId,
    /// The verdict as it appears in reports.
    pub verdict: String,
}

/// Whether a run has news.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Same timeline and verdict as recorded: already reported; stay quiet.
    AlreadyReported(Entry),
    /// Nothing recorded, or a different timeline or verdict: report, then record.
    New {
        /// What was recorded before, if anything.
        previous: Option<Entry>,
    },
}

impl StateFile {
    /// Reads `path`; a missing file is an empty state (the first run). Checks that the
    /// directory exists, so a typo fails before any server is contacted.
    pub fn load(path: &Path) -> Result<StateFile, StateError> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(StateError::NoDirectory {
                path: path.to_path_buf(),
                dir,
            });
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(StateFile::default()),
            Err(source) => {
                return Err(StateError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Self::parse(path, &bytes)
    }

    /// Parses the bytes of a state file (`path` only names it in errors).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<StateFile, StateError> {
        let corrupt = |reason: String| StateError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.replace(['\n', '\r'], " "),
        };
        // Check the header first, so a newer layout is named as such and not as corrupt.
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| corrupt(format!("invalid JSON: {e}")))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(STATE_FORMAT) {
            return Err(corrupt(format!(
                "not a failover-verify state file (no \"format\": \"{STATE_FORMAT}\")"
            )));
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(STATE_VERSION) => {}
            Some(v) => {
                return Err(corrupt(format!(
                    "layout version {v}, this build reads version {STATE_VERSION}"
                )))
            }
            None => return Err(corrupt("no \"version\"".into())),
        }
        let state: StateFile =
            serde_json::from_value(value).map_err(|e| corrupt(format!("bad layout: {e}")))?;
        for sysid in state.clusters.keys() {
            if sysid.parse::<u64>().is_err() {
                return Err(corrupt(format!(
                    "{sysid:?} is not a system identifier (an unsigned integer)"
                )));
            }
        }
        Ok(state)
    }

    /// What was last recorded for `system_identifier` by `command`.
    pub fn get(&self, system_identifier: SystemId, command: &str) -> Option<&Entry> {
        self.clusters
            .get(&system_identifier.to_string())
            .and_then(|m| m.get(command))
    }

    /// Whether `key` was already reported: the same timeline and the same verdict.
    pub fn decide(&self, key: &RunKey) -> Decision {
        match self.get(key.system_identifier, key.command) {
            Some(e) if e.timeline == key.timeline && e.verdict == key.verdict => {
                Decision::AlreadyReported(e.clone())
            }
            previous => Decision::New {
                previous: previous.cloned(),
            },
        }
    }

    /// Records `key` as reported at `at` (RFC 3339).
    pub fn record(&mut self, key: &RunKey, at: &str) {
        self.clusters
            .entry(key.system_identifier.to_string())
            .or_default()
            .insert(
                key.command.to_string(),
                Entry {
                    timeline: key.timeline,
                    verdict: key.verdict.clone(),
                    recorded_at: at.to_string(),
                },
            );
    }

    /// The file's bytes: pretty JSON with a trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Writes the state to `path` atomically (temporary file in the same directory + rename).
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        crate::report::write_file_atomically(path, &self.to_bytes()).map_err(|source| {
            StateError::Write {
                path: path.to_path_buf(),
                source,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tli: u32, verdict: &str) -> RunKey {
        RunKey {
            system_identifier: SystemId(7312345678901234567),
            command: "compare",
            timeline: TimelineId(tli),
            verdict: verdict.into(),
        }
    }

    #[test]
    fn first_run_is_new_then_already_reported_then_new_on_another_timeline() {
        let mut s = StateFile::default();
        assert_eq!(s.decide(&key(2, "loss")), Decision::New { previous: None });
        s.record(&key(2, "loss"), "2026-01-01T00:00:00Z");
        assert!(matches!(
            s.decide(&key(2, "loss")),
            Decision::AlreadyReported(e) if e.timeline == TimelineId(2)
        ));
        // A new timeline or a new verdict is news.
        assert!(matches!(
            s.decide(&key(3, "loss")),
            Decision::New { previous: Some(_) }
        ));
        assert!(matches!(
            s.decide(&key(2, "no_loss")),
            Decision::New { previous: Some(_) }
        ));
        // Another command on the same cluster has its own entry.
        let mut other = key(2, "loss");
        other.command = "cluster";
        assert_eq!(s.decide(&other), Decision::New { previous: None });
    }

    #[test]
    fn round_trips_through_bytes() {
        let mut s = StateFile::default();
        s.record(&key(2, "loss"), "2026-01-01T00:00:00Z");
        let back = StateFile::parse(Path::new("s.json"), &s.to_bytes()).unwrap();
        assert_eq!(back, s);
        let text = String::from_utf8(s.to_bytes()).unwrap();
        assert!(text.contains("\"7312345678901234567\""), "{text}");
        assert!(text.contains("\"timeline\": 2"), "{text}");
    }

    #[test]
    fn corrupt_foreign_and_newer_files_are_errors_naming_the_file() {
        let p = Path::new("/var/lib/fv/state.json");
        for (bytes, needle) in [
            (&b"{\"format\": \"failover-verify-state\", \"vers"[..], "invalid JSON"),
            (&b"[1, 2]"[..], "not a failover-verify state file"),
            (
                &b"{\"format\":\"failover-verify-state\",\"version\":9,\"clusters\":{}}"[..],
                "layout version 9",
            ),
            (
                &b"{\"format\":\"failover-verify-state\",\"version\":1,\"clusters\":{\"x\":{}}}"[..],
                "not a system identifier",
            ),
            (
                &b"{\"format\":\"failover-verify-state\",\"version\":1,\"clusters\":{\"1\":{\"compare\":{\"timeline\":\"two\"}}}}"[..],
                "bad layout",
            ),
        ] {
            let e = StateFile::parse(p, bytes).unwrap_err().to_string();
            assert!(e.contains("/var/lib/fv/state.json"), "{e}");
            assert!(e.contains(needle), "{needle}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn missing_file_is_empty_and_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateFile::load(&dir.path().join("state.json")).unwrap();
        assert_eq!(s, StateFile::default());
        let e = StateFile::load(&dir.path().join("nope/state.json")).unwrap_err();
        assert!(matches!(e, StateError::NoDirectory { .. }), "{e}");
    }
}
