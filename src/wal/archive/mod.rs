//! Fetches WAL segments and timeline history files from WAL archives and directories into a
//! private directory that [`crate::wal::source::WalDir`] then decodes.
//!
//! A source is a `restore_command` (run by `sh -c` with PostgreSQL's `%f`, `%p`, `%r` and `%%`
//! substitution, so every archiver works as it does for recovery) or a plain directory (an
//! archive, or a copy of a node's `pg_wal`). Several sources combine: a segment is taken from
//! the first that has it, and two copies whose valid pages differ are recorded as a
//! [`Disagreement`]. Every fetched file is checked before use: full segment size, a long page
//! header, the cluster's system identifier. Only files named exactly as PostgreSQL asks for them
//! are fetched: never a `.partial`, which in a shared archive is the *new* primary's copy.

mod fetch;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::lsn::{SystemId, TimelineId};
use crate::wal::page::PageHeader;
use crate::wal::segment::segment_file_name;
pub use fetch::substitute;
use fetch::{last_line, run_with_timeout};

/// The default time limit of one `restore_command` call.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// The exit status with which `cp`, `pgbackrest archive-get` and `wal-g wal-fetch` say "not in
/// the archive"; any other failure is an error.
pub const NOT_FOUND_EXIT: i32 = 1;

/// Where WAL files can be fetched from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalSource {
    /// A `restore_command` template (`%f`, `%p`, `%r`, `%%`), run through `sh -c`.
    RestoreCommand(String),
    /// A directory holding files by their plain names (or `NAME.gz`).
    Directory(PathBuf),
}

/// `command` with the values of `KEY=value` words whose key names a secret (password,
/// secret, token, key) replaced by `***`, for reports and errors.
pub fn redact_command(command: &str) -> String {
    let secret = |k: &str| {
        let k = k.trim_start_matches('-').to_ascii_lowercase();
        ["password", "secret", "token", "key"]
            .iter()
            .any(|w| k.contains(w))
    };
    command
        .split(' ')
        .map(|word| match word.split_once('=') {
            Some((k, _)) if secret(k) => format!("{k}=***"),
            _ => word.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl WalSource {
    /// How the source is named in reports and errors (secrets in a command redacted).
    pub fn label(&self) -> String {
        match self {
            WalSource::RestoreCommand(c) => format!("restore command `{}`", redact_command(c)),
            WalSource::Directory(d) => format!("directory {}", d.display()),
        }
    }
}

/// Why a WAL file could not be fetched or used. Each names the file and the source.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The restore command failed with a status that does not mean "not found".
    #[error("fetching {file} failed: {source_label} {status}{stderr}")]
    Failed {
        /// The file asked for.
        file: String,
        /// The source.
        source_label: String,
        /// `exited with status N`, `was killed by signal N`, ...
        status: String,
        /// `: <last line of its stderr>`, or empty.
        stderr: String,
    },
    /// The restore command did not finish in time; it was killed.
    #[error(
        "fetching {file} timed out: {source_label} did not finish within {secs} s and was killed"
    )]
    TimedOut {
        /// The file asked for.
        file: String,
        /// The source.
        source_label: String,
        /// The limit.
        secs: u64,
    },
    /// The command could not be started, or a file could not be read or written.
    #[error("fetching {file} from {source_label}: {source}")]
    Io {
        /// The file asked for.
        file: String,
        /// The source.
        source_label: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A fetched segment is not full size (PostgreSQL archives complete segments only).
    #[error("{file} from {source_label} has {size} bytes, expected {expected}: a truncated copy")]
    Truncated {
        /// The file.
        file: String,
        /// The source.
        source_label: String,
        /// Its size.
        size: u64,
        /// The segment size.
        expected: u64,
    },
    /// A fetched segment is not WAL of this cluster's format.
    #[error("{file} from {source_label} is not a usable WAL segment: {what}")]
    NotWal {
        /// The file.
        file: String,
        /// The source.
        source_label: String,
        /// What is wrong.
        what: String,
    },
    /// No source holds a segment the reading cannot do without.
    #[error("no source holds {file}, needed from {lsn} on: tried {sources}")]
    NotFound {
        /// The segment.
        file: String,
        /// The position that needs it.
        lsn: crate::lsn::Lsn,
        /// The sources tried.
        sources: String,
    },
    /// A fetched segment belongs to another cluster.
    #[error("{file} from {source_label} belongs to another cluster: system identifier {found}, the new primary's is {expected}")]
    OtherCluster {
        /// The file.
        file: String,
        /// The source.
        source_label: String,
        /// The identifier in its long page header.
        found: SystemId,
        /// The new primary's.
        expected: SystemId,
    },
}

impl ArchiveError {
    /// Whether this only says that no source holds the file.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ArchiveError::NotFound { .. })
    }
}

/// A file fetched into the private directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedFile {
    /// Its name (`000000010000000000000003`, `00000002.history`).
    pub name: String,
    /// Where it is now (inside [`WalStage::path`]).
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The source it came from ([`WalSource::label`]).
    pub source: String,
}

/// Two sources hold the same segment and their bytes differ where both are valid WAL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disagreement {
    /// The segment.
    pub file: String,
    /// The source whose copy was used.
    pub used: String,
    /// The other source.
    pub other: String,
    /// The first differing byte's offset in the segment.
    pub offset: u64,
}

/// The private directory (0700) that fetched files land in, with what each source held.
#[derive(Debug)]
pub struct WalStage {
    dir: tempfile::TempDir,
    sources: Vec<WalSource>,
    timeout: Duration,
    seg_size: u64,
    sysid: Option<SystemId>,
    /// `%r`: the oldest file the reading still needs.
    oldest_needed: String,
    segments: BTreeMap<String, StagedFile>,
    histories: BTreeMap<String, StagedFile>,
    absent: BTreeSet<String>,
    disagreements: Vec<Disagreement>,
}

/// The first offset where two segment copies differ on a page that is valid WAL in both
/// (magic set, page address its own), or `None`.
pub fn first_valid_difference(a: &[u8], b: &[u8], seg_start: u64) -> Option<u64> {
    const PAGE: usize = crate::lsn::XLOG_BLCKSZ;
    let valid = |p: &[u8], at: u64| {
        PageHeader::parse(p).is_some_and(|h| h.magic != 0 && h.pageaddr.0 == at)
    };
    let pages = a.len().min(b.len()) / PAGE;
    for i in 0..pages {
        let (pa, pb) = (&a[i * PAGE..(i + 1) * PAGE], &b[i * PAGE..(i + 1) * PAGE]);
        let at = seg_start + (i * PAGE) as u64;
        if pa != pb && valid(pa, at) && valid(pb, at) {
            let j = pa.iter().zip(pb).position(|(x, y)| x != y).unwrap_or(0);
            return Some((i * PAGE + j) as u64);
        }
    }
    None
}

impl WalStage {
    /// A new private directory for files from `sources` (tried in order), each
    /// `restore_command` call limited to `timeout`. Segments must be `seg_size` bytes and,
    /// when `sysid` is known, carry it.
    pub fn new(
        sources: Vec<WalSource>,
        timeout: Duration,
        seg_size: u64,
        sysid: Option<SystemId>,
    ) -> std::io::Result<WalStage> {
        // tempfile creates directories with mode 0700.
        let dir = tempfile::Builder::new().prefix("fv-wal-").tempdir()?;
        std::fs::create_dir(dir.path().join(".incoming"))?;
        Ok(WalStage {
            dir,
            sources,
            timeout,
            seg_size,
            sysid,
            oldest_needed: String::new(),
            segments: BTreeMap::new(),
            histories: BTreeMap::new(),
            absent: BTreeSet::new(),
            disagreements: Vec::new(),
        })
    }

    /// The private directory holding the fetched files by their plain names.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The segment size.
    pub fn segment_size(&self) -> u64 {
        self.seg_size
    }

    /// The sources, in the order they are tried.
    pub fn sources(&self) -> &[WalSource] {
        &self.sources
    }

    /// The sources as `a; b`, for messages.
    pub fn sources_label(&self) -> String {
        self.sources
            .iter()
            .map(WalSource::label)
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Sets `%r`, the oldest file the reading still needs.
    pub fn set_oldest_needed(&mut self, name: &str) {
        self.oldest_needed = name.to_string();
    }

    /// The segments fetched so far, by name.
    pub fn segments(&self) -> impl Iterator<Item = &StagedFile> {
        self.segments.values()
    }

    /// The history files fetched so far, by name.
    pub fn histories(&self) -> impl Iterator<Item = &StagedFile> {
        self.histories.values()
    }

    /// Segments that two sources hold with different bytes.
    pub fn disagreements(&self) -> &[Disagreement] {
        &self.disagreements
    }

    /// Fetches `name` from `source` to `target`; `Ok(false)` when the source does not have it.
    fn fetch_one(
        &self,
        source: &WalSource,
        name: &str,
        target: &Path,
    ) -> Result<bool, ArchiveError> {
        let io = |e: std::io::Error| ArchiveError::Io {
            file: name.to_string(),
            source_label: source.label(),
            source: e,
        };
        let _ = std::fs::remove_file(target);
        match source {
            WalSource::Directory(dir) => {
                let plain = dir.join(name);
                if plain.is_file() {
                    std::fs::copy(&plain, target).map_err(io)?;
                    return Ok(true);
                }
                let gz = dir.join(format!("{name}.gz"));
                if gz.is_file() {
                    let f = std::fs::File::open(&gz).map_err(io)?;
                    let mut d = flate2::read::GzDecoder::new(f);
                    let mut out = std::fs::File::create(target).map_err(io)?;
                    std::io::copy(&mut d, &mut out).map_err(io)?;
                    return Ok(true);
                }
                Ok(false)
            }
            WalSource::RestoreCommand(template) => {
                // Before the reading starts, the file asked for is the oldest one needed.
                let oldest = if self.oldest_needed.is_empty() {
                    name
                } else {
                    &self.oldest_needed
                };
                let command = substitute(template, name, &target.display().to_string(), oldest);
                let stderr_file = self.dir.path().join(".incoming").join("stderr");
                let status = run_with_timeout(&command, &stderr_file, self.timeout).map_err(io)?;
                let Some(status) = status else {
                    let _ = std::fs::remove_file(target);
                    return Err(ArchiveError::TimedOut {
                        file: name.to_string(),
                        source_label: source.label(),
                        secs: self.timeout.as_secs().max(1),
                    });
                };
                let written = target.is_file();
                if status.success() {
                    if !written {
                        return Err(ArchiveError::Failed {
                            file: name.to_string(),
                            source_label: source.label(),
                            status: "exited with status 0 but wrote no file at %p".into(),
                            stderr: last_line(&stderr_file),
                        });
                    }
                    return Ok(true);
                }
                if status.code() == Some(NOT_FOUND_EXIT) && !written {
                    return Ok(false);
                }
                let _ = std::fs::remove_file(target);
                let status = match (
                    status.code(),
                    std::os::unix::process::ExitStatusExt::signal(&status),
                ) {
                    (Some(c), _) => format!("exited with status {c}"),
                    (None, Some(s)) => format!("was killed by signal {s}"),
                    _ => "failed".into(),
                };
                Err(ArchiveError::Failed {
                    file: name.to_string(),
                    source_label: source.label(),
                    status,
                    stderr: last_line(&stderr_file),
                })
            }
        }
    }

    /// Checks a fetched segment: full size, a long page header of this format, this cluster.
    fn check_segment(
        &self,
        source: &WalSource,
        name: &str,
        path: &Path,
    ) -> Result<u64, ArchiveError> {
        let io = |e: std::io::Error| ArchiveError::Io {
            file: name.to_string(),
            source_label: source.label(),
            source: e,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size != self.seg_size {
            return Err(ArchiveError::Truncated {
                file: name.to_string(),
                source_label: source.label(),
                size,
                expected: self.seg_size,
            });
        }
        let mut head = [0u8; 40];
        std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut head))
            .map_err(io)?;
        if head.iter().all(|b| *b == 0) {
            return Ok(size); // a pre-allocated, never written segment: the decoder sees the end
        }
        let not_wal = |what: String| ArchiveError::NotWal {
            file: name.to_string(),
            source_label: source.label(),
            what,
        };
        let long = PageHeader::parse(&head)
            .and_then(|h| h.long)
            .ok_or_else(|| not_wal("its first page has no long page header".into()))?;
        if u64::from(long.seg_size) != self.seg_size {
            return Err(not_wal(format!(
                "its segment size is {} bytes, the new primary's {}",
                long.seg_size, self.seg_size
            )));
        }
        if let Some(expected) = self.sysid {
            if long.sysid != expected {
                return Err(ArchiveError::OtherCluster {
                    file: name.to_string(),
                    source_label: source.label(),
                    found: long.sysid,
                    expected,
                });
            }
        }
        Ok(size)
    }

    /// Fetches segment `segno` of `tli` from the first source that has it (and compares the
    /// other sources' copies); `Ok(false)` when no source has it.
    pub fn fetch_segment(&mut self, tli: TimelineId, segno: u64) -> Result<bool, ArchiveError> {
        let name = segment_file_name(tli, segno, self.seg_size);
        if self.segments.contains_key(&name) {
            return Ok(true);
        }
        if self.absent.contains(&name) {
            return Ok(false);
        }
        let incoming = self.dir.path().join(".incoming");
        let mut used: Option<(usize, PathBuf, u64)> = None;
        for (i, source) in self.sources.iter().enumerate() {
            let target = incoming.join(format!("{i}-{name}"));
            if !self.fetch_one(source, &name, &target)? {
                continue;
            }
            let checked = self.check_segment(source, &name, &target);
            let size = match checked {
                Ok(s) => s,
                Err(e) => {
                    let _ = std::fs::remove_file(&target);
                    return Err(e);
                }
            };
            match &used {
                None => used = Some((i, target, size)),
                Some((first, first_path, _)) => {
                    let read = |p: &Path| {
                        std::fs::read(p).map_err(|e| ArchiveError::Io {
                            file: name.clone(),
                            source_label: source.label(),
                            source: e,
                        })
                    };
                    let (a, b) = (read(first_path)?, read(&target)?);
                    let seg_start = segno * self.seg_size;
                    if let Some(offset) = first_valid_difference(&a, &b, seg_start) {
                        self.disagreements.push(Disagreement {
                            file: name.clone(),
                            used: self.sources[*first].label(),
                            other: source.label(),
                            offset,
                        });
                    }
                    let _ = std::fs::remove_file(&target);
                }
            }
        }
        let Some((i, path, size)) = used else {
            self.absent.insert(name);
            return Ok(false);
        };
        let dest = self.dir.path().join(&name);
        std::fs::rename(&path, &dest).map_err(|e| ArchiveError::Io {
            file: name.clone(),
            source_label: self.sources[i].label(),
            source: e,
        })?;
        self.segments.insert(
            name.clone(),
            StagedFile {
                name,
                path: dest,
                size,
                source: self.sources[i].label(),
            },
        );
        Ok(true)
    }

    /// Fetches `NNNNNNNN.history` of `tli` from the first source that has it: its content.
    pub fn fetch_history(&mut self, tli: TimelineId) -> Result<Option<String>, ArchiveError> {
        let name = tli.history_file_name();
        if let Some(f) = self.histories.get(&name) {
            return Ok(std::fs::read_to_string(&f.path).ok());
        }
        if self.absent.contains(&name) {
            return Ok(None);
        }
        let dest = self.dir.path().join(&name);
        for source in self.sources.clone() {
            if !self.fetch_one(&source, &name, &dest)? {
                continue;
            }
            let io = |e: std::io::Error| ArchiveError::Io {
                file: name.clone(),
                source_label: source.label(),
                source: e,
            };
            let bytes = std::fs::read(&dest).map_err(io)?;
            let text = String::from_utf8(bytes).map_err(|_| ArchiveError::NotWal {
                file: name.clone(),
                source_label: source.label(),
                what: "a timeline history file must be text".into(),
            })?;
            self.histories.insert(
                name.clone(),
                StagedFile {
                    name: name.clone(),
                    path: dest.clone(),
                    size: text.len() as u64,
                    source: source.label(),
                },
            );
            return Ok(Some(text));
        }
        self.absent.insert(name);
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
