//! Writes an evidence bundle: a private staging directory beside the target, filled during
//! the run, completed with the manifest, then renamed into place in one step.

mod files;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::evidence::names::RelName;
use crate::lsn::{Lsn, TimelineId};
use crate::report::{Format, Report};
use crate::wal::RelFileLocator;

use super::manifest::{self, MANIFEST};
use super::{
    BundleError, FileEntry, Meta, WalMeta, BUNDLE_FORMAT, INDEX_FILE, META_FILE, NODES_FILE,
    WAL_DIR,
};
use crate::wal::capture::WalCapture;
use files::{
    mkdir_private, rename_noreplace, restrict, sync_dir, write_json, write_private, write_streamed,
};

/// The report files at the bundle's root, one per format.
pub const REPORT_FILES: [(&str, Format, &str); 6] = [
    ("report.json", Format::Json, "the report, JSON"),
    (
        "report.md",
        Format::Markdown,
        "the report, Markdown (for a ticket)",
    ),
    ("report.txt", Format::Text, "the report, text"),
    (
        "report.csv",
        Format::Csv,
        "the report, CSV (`section,field,value`)",
    ),
    ("report.html", Format::Html, "the report, one HTML page"),
    (
        "report.prom",
        Format::Prometheus,
        "the report, Prometheus text format",
    ),
];

/// A bundle being written: a private directory beside the target that disappears unless
/// [`Staging::finish`] renames it into place.
#[derive(Debug)]
pub struct Staging {
    target: PathBuf,
    tmp: tempfile::TempDir,
    capture: WalCapture,
}

/// A timeline history file as one side's server sent it.
#[derive(Clone, Debug)]
pub struct HistoryFile {
    /// `new-primary` or `former-primary`.
    pub side: &'static str,
    /// `00000002.history`.
    pub name: String,
    /// Its text.
    pub content: String,
}

/// The WAL range a live run decoded, and where it read it.
#[derive(Clone, Debug)]
pub struct WalRange {
    /// The former timeline.
    pub timeline: TimelineId,
    /// The segment size in bytes.
    pub segment_size: u64,
    /// The switchpoint.
    pub switchpoint: Lsn,
    /// Where decoding began.
    pub scan_start: Lsn,
    /// The end the run asked for, if it knew one.
    pub requested_end: Option<Lsn>,
    /// The end of the last record decoded.
    pub decoded_end: Option<Lsn>,
    /// The report's description of the source.
    pub source: String,
    /// A directory the segments were read from (copied now); `None` when they streamed into
    /// the capture during the scan.
    pub from_dir: Option<PathBuf>,
}

/// What the finished run hands to the bundle.
#[derive(Debug)]
pub struct BundleContents<'a> {
    /// The report, rendered in every format.
    pub report: &'a Report,
    /// The command line, already redacted.
    pub command: String,
    /// The WAL range decoded, if any.
    pub wal: Option<WalRange>,
    /// Why no WAL was decoded, if none was.
    pub wal_missing: Option<String>,
    /// Both sides' timeline history files, as read.
    pub history: Vec<HistoryFile>,
    /// The names the relfilenodes resolved to.
    pub names: &'a BTreeMap<RelFileLocator, RelName>,
    /// The former primary's databases (`oid → name`).
    pub databases: &'a BTreeMap<u32, String>,
    /// Whether the former end of WAL came from decoding.
    pub end_from_wal: bool,
    /// Lines for the index about what is not in the bundle and why (a history file that
    /// could not be read, a side with no history file).
    pub notes: Vec<String>,
    /// The passwords the run used: a last check refuses the bundle if any of its own files
    /// (reports, index, descriptions; not the WAL or the exported rows, which are data)
    /// contains one.
    pub secrets: Vec<String>,
}

/// Each side's history file as its server sent it, and a note for each side without one.
pub fn histories(
    sides: &[(&'static str, Option<&crate::node::NodeFacts>)],
) -> (Vec<HistoryFile>, Vec<String>) {
    let mut files = Vec::new();
    let mut notes = Vec::new();
    for (side, facts) in sides {
        let Some(f) = facts else {
            notes.push(format!(
                "No history file or node facts for the {side}: it was not connected."
            ));
            continue;
        };
        match &f.history_file {
            Some(content) => files.push(HistoryFile {
                side,
                name: f.timeline.history_file_name(),
                content: content.clone(),
            }),
            None if f.timeline.0 <= 1 => notes.push(format!(
                "No history file for the {side}: it is on timeline 1, which has none."
            )),
            None => notes.push(format!(
                "No history file for the {side}: {}",
                f.history_problem
                    .as_deref()
                    .unwrap_or("it could not be read")
            )),
        }
    }
    (files, notes)
}

impl Staging {
    /// Starts a bundle for `target`, which must not exist; the staging directory is created
    /// owner-only in `target`'s parent, so the final rename stays on one file system.
    pub fn create(target: &Path) -> Result<Staging, BundleError> {
        if std::fs::symlink_metadata(target).is_ok() {
            return Err(BundleError::Exists(target.display().to_string()));
        }
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty() && *n != "..")
            .ok_or_else(|| BundleError::Unexpected {
                path: target.display().to_string(),
                what: "not a usable directory name for a bundle".into(),
            })?;
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.incomplete-"))
            .tempdir_in(&parent)
            .map_err(|e| BundleError::io(&parent, e))?;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(|e| BundleError::io(tmp.path(), e))?;
        let capture = WalCapture::new(&tmp.path().join(WAL_DIR))
            .map_err(|e| BundleError::io(&tmp.path().join(WAL_DIR), e))?;
        Ok(Staging {
            target: target.to_path_buf(),
            tmp,
            capture,
        })
    }

    /// Where the WAL read from a node is kept while it streams.
    pub fn capture(&self) -> &WalCapture {
        &self.capture
    }

    /// The directory the bundle will be renamed to.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Writes the rest of the bundle, the manifest last, and renames it into place. On any
    /// error the staging directory is removed and nothing appears at the target.
    pub fn finish(self, c: BundleContents<'_>) -> Result<PathBuf, BundleError> {
        let root = self.tmp.path().to_path_buf();
        let mut files: Vec<FileEntry> = Vec::new();
        let made_by = &c.command;

        // The reports, in every format, streamed to their files and hashed on the way (a
        // report with many lost rows is large: it is neither held in memory nor read again).
        let t = std::time::Instant::now();
        for (name, format, what) in REPORT_FILES {
            write_streamed(&root.join(name), |w| {
                crate::report::render(c.report, format, w)
            })?;
            files.push(FileEntry {
                path: name.into(),
                what: what.into(),
            });
        }

        crate::timing::record("bundle: reports", t);

        // The lost rows (the row diff's export), when the row diff ran.
        let t = std::time::Instant::now();
        if let Some(tables) = &c.report.tables {
            let dir = root.join("exports");
            mkdir_private(&dir)?;
            let summary = crate::diff::export::write_export(&dir, tables)
                .map_err(|e| BundleError::Export(e.to_string()))?;
            for f in summary.files {
                let what = if f.ends_with(".sql") {
                    "recovery script to review, then run on the new primary (the tool never runs it)"
                } else {
                    "lost row versions of one table (CSV)"
                };
                files.push(FileEntry {
                    path: format!("exports/{f}"),
                    what: what.into(),
                });
            }
        }

        crate::timing::record("bundle: exports", t);

        // The node facts of both sides (conninfo targets redacted as in the report).
        let nodes = serde_json::json!({
            "new_primary": c.report.new_primary,
            "former_primary": c.report.former_primary,
        });
        write_json(&root.join(NODES_FILE), &nodes)?;
        files.push(FileEntry {
            path: NODES_FILE.into(),
            what: "what each server said about itself (identity, timeline, WAL positions, history)"
                .into(),
        });

        // Both sides' timeline histories.
        for h in &c.history {
            let dir = root.join("history").join(h.side);
            mkdir_private(&dir)?;
            write_private(&dir.join(&h.name), h.content.as_bytes())?;
            files.push(FileEntry {
                path: format!("history/{}/{}", h.side, h.name),
                what: format!(
                    "the {} timeline history file, as its server sent it",
                    h.side
                ),
            });
        }

        // The WAL of the lost range.
        let t = std::time::Instant::now();
        let wal = match &c.wal {
            Some(w) => Some(self.wal_files(w, &mut files)?),
            None => {
                // Nothing was read: no (empty) wal/ directory either.
                std::fs::remove_dir_all(self.capture.dir())
                    .map_err(|e| BundleError::io(self.capture.dir(), e))?;
                None
            }
        };

        crate::timing::record("bundle: WAL", t);

        // bundle.json and the index describe every file, themselves included.
        files.push(FileEntry {
            path: META_FILE.into(),
            what: "machine-readable description of this bundle (read by --from-evidence)".into(),
        });
        files.push(FileEntry {
            path: INDEX_FILE.into(),
            what: "this index".into(),
        });
        let meta = Meta {
            bundle_format: BUNDLE_FORMAT,
            tool: crate::report::tool_id(),
            created_at: crate::report::now_rfc3339(),
            command: c.command.clone(),
            divergence: c.report.divergence.clone(),
            end_from_wal: c.end_from_wal,
            wal,
            wal_missing: c.wal_missing.clone(),
            relations: super::relation_list(c.names),
            databases: c.databases.clone(),
            files,
        };
        write_json(&root.join(META_FILE), &meta)?;
        write_private(
            &root.join(INDEX_FILE),
            index(&meta, made_by, &c.notes).as_bytes(),
        )?;

        // A password in a file the tool wrote itself is a bug: refuse rather than leak.
        check_no_secret(&root, &c.secrets)?;

        // Owner-only everywhere, then the manifest over every file.
        let t = std::time::Instant::now();
        restrict(&root)?;
        let listed = manifest::list_files(&root)?;
        let sums = manifest::build(&root, &listed)?;
        write_private(&root.join(MANIFEST), sums.as_bytes())?;
        sync_dir(&root)?;
        crate::timing::record("bundle: manifest", t);

        let staged = self.tmp.keep();
        if let Err(e) = rename_noreplace(&staged, &self.target) {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
                BundleError::Exists(self.target.display().to_string())
            } else {
                BundleError::io(&self.target, e)
            });
        }
        if let Some(parent) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = sync_dir(parent);
        }
        Ok(self.target)
    }

    /// Keeps the segments of `w` in `wal/`: copies them from a directory source, or keeps
    /// those the scan streamed into the capture; returns `bundle.json`'s WAL section.
    fn wal_files(&self, w: &WalRange, files: &mut Vec<FileEntry>) -> Result<WalMeta, BundleError> {
        let seg = w.segment_size.max(1);
        let first = w.scan_start.segment_number(seg);
        let end = [w.requested_end, w.decoded_end]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(w.switchpoint)
            .max(w.switchpoint);
        let last = end.segment_number(seg);
        // Segments this process copied privately (the rewind guard's raw copy) are taken over
        // by hard link; any other file is copied (never linked: it may stay in a live pg_wal).
        let mut adopted = Vec::new();
        if let Some(dir) = &w.from_dir {
            let wal = crate::wal::source::WalDir::with_segment_size(dir, w.timeline, seg)
                .map_err(|e| BundleError::Capture(e.to_string()))?;
            for segno in first..=last {
                if let Some((path, name)) = wal.find_segment(segno) {
                    let to = self.capture.dir().join(&name);
                    if super::adopt::digest(&path).is_some()
                        && std::fs::hard_link(&path, &to).is_ok()
                    {
                        adopted.push(crate::wal::capture::CapturedSegment { name, path: to });
                        continue;
                    }
                    self.capture
                        .copy_file(&path, &name)
                        .map_err(|e| BundleError::Capture(format!("{}: {e}", path.display())))?;
                }
            }
        }
        let mut kept = self
            .capture
            .finish(seg, first, last)
            .map_err(BundleError::Capture)?;
        if !adopted.is_empty() {
            sync_dir(self.capture.dir())?;
            kept.extend(adopted);
            kept.sort_by(|a, b| a.name.cmp(&b.name));
        }
        let how = match &w.from_dir {
            Some(d) => format!("copied from {}", d.display()),
            None => format!(
                "written from the bytes read ({}); full segment size, zeros past what was read",
                w.source
            ),
        };
        let mut segments = Vec::new();
        for k in kept {
            let rel = format!("{WAL_DIR}/{}", k.name);
            files.push(FileEntry {
                path: rel.clone(),
                what: format!(
                    "WAL segment of timeline {} in the lost range, {how}",
                    w.timeline
                ),
            });
            segments.push(rel);
        }
        Ok(WalMeta {
            timeline: w.timeline,
            segment_size: seg,
            switchpoint: w.switchpoint,
            scan_start: w.scan_start,
            requested_end: w.requested_end,
            decoded_end: w.decoded_end,
            source: w.source.clone(),
            segments,
        })
    }
}

/// The index a person reads first: what the bundle is, how to check and re-use it, and what
/// each file is.
fn index(meta: &Meta, command: &str, notes: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# failover-verify evidence bundle\n");
    let _ = writeln!(s, "- Made by: `{command}`");
    let _ = writeln!(s, "- Tool: {}", meta.tool);
    let _ = writeln!(s, "- Completed at: {}", meta.created_at);
    if let Some(d) = &meta.divergence {
        let _ = writeln!(
            s,
            "- Former timeline {} (to {}), new timeline {}, switchpoint {}",
            d.former_timeline,
            d.former_end_lsn,
            d.new_timeline,
            d.switchpoint_lsn
                .map_or_else(|| "unknown".into(), |l| l.to_string())
        );
    }
    match (&meta.wal, &meta.wal_missing) {
        (Some(w), _) => {
            let _ = writeln!(
                s,
                "- WAL: {} segment(s) of timeline {} from the scan start {} to {} (read from {})",
                w.segments.len(),
                w.timeline,
                w.scan_start,
                w.decoded_end
                    .or(w.requested_end)
                    .map_or_else(|| "the end of valid WAL".into(), |l| l.to_string()),
                w.source
            );
        }
        (None, Some(why)) => {
            let _ = writeln!(s, "- WAL: none in this bundle: {why}");
        }
        (None, None) => {}
    }
    for n in notes {
        let _ = writeln!(s, "- {n}");
    }
    let _ = writeln!(
        s,
        "\nThis directory holds raw row data and WAL: keep it owner-only (it was created 0700/0600).\n"
    );
    let _ = writeln!(s, "## Check it\n");
    let _ = writeln!(
        s,
        "    cd <this directory> && sha256sum -c SHA256SUMS\n\nEvery file but SHA256SUMS is listed there; any change to a file shows.\n"
    );
    let _ = writeln!(s, "## Re-analyse it (no server, no archive)\n");
    let _ = writeln!(
        s,
        "    failover-verify compare --from-evidence <this directory>\n\nchecks SHA256SUMS, then decodes `wal/` again and reports the same lost commits and per-table counts. Add `--new-primary CONNINFO` to also check the new primary against the bundle.\n"
    );
    let _ = writeln!(s, "## Files\n");
    let _ = writeln!(s, "| File | What it is |");
    let _ = writeln!(s, "|---|---|");
    let _ = writeln!(
        s,
        "| `{MANIFEST}` | SHA-256 of every other file, in `sha256sum -c` format |"
    );
    for f in &meta.files {
        let _ = writeln!(
            s,
            "| `{}` | {} |",
            f.path,
            crate::quote::markdown_cell(&f.what)
        );
    }
    let _ = writeln!(
        s,
        "\nEvery file was made by the command above; the WAL segments hold the former primary's bytes unchanged."
    );
    s
}

/// Fails naming the first file outside `wal/` and `exports/` that contains one of `secrets`.
fn check_no_secret(root: &Path, secrets: &[String]) -> Result<(), BundleError> {
    let secrets: Vec<&[u8]> = secrets
        .iter()
        // A very short password would match by chance; the redaction upstream is what keeps
        // passwords out, this is the backstop.
        .filter(|s| s.len() >= 6)
        .map(|s| s.as_bytes())
        .collect();
    if secrets.is_empty() {
        return Ok(());
    }
    for rel in manifest::list_files(root)? {
        if rel.starts_with(&format!("{WAL_DIR}/")) || rel.starts_with("exports/") {
            continue;
        }
        let path = root.join(&rel);
        let bytes = std::fs::read(&path).map_err(|e| BundleError::io(&path, e))?;
        if secrets
            .iter()
            .any(|s| bytes.windows(s.len()).any(|w| w == *s))
        {
            return Err(BundleError::Unexpected {
                path: rel,
                what: "would contain a password the run used; the bundle was not written".into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
