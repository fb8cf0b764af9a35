//! The rewind guard's computation: which pg_rewind calls rewind, whether the target diverged,
//! and the copy of its divergent WAL aside before pg_rewind replaces it (no printing here).
//!
//! `failover-verify rewind-guard` (src/commands/rewind_guard.rs) is installed as Patroni's
//! `postgresql.bin_name.pg_rewind`. For each call it: classifies pg_rewind's arguments
//! ([`classify`]); reads the stopped target's `pg_control` ([`control`]) and history files;
//! compares them with the source's history ([`Divergence::decide`]); copies the divergent
//! segments and history files into `<root>/<key>.capture/` ([`capture`]); then the command
//! runs the real pg_rewind and analyses the copy into the bundle `<root>/<key>/` (alongside
//! pg_rewind, or before it with `--hold-when-lost`).

pub mod control;
pub mod copy;

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::lsn::{Lsn, SystemId, TimelineId};
use crate::timeline::TimelineHistory;

/// Segments before the fork's own that are copied too, so the accounting can step back to a
/// running-xacts or checkpoint record before the switchpoint (transactions that began before
/// it and committed after it are lost).
pub const SEGMENTS_BEFORE_FORK: u64 = 4;

/// What one pg_rewind call is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invocation {
    /// Not a rewind the guard can examine (`--help`, `--version`, `--dry-run`, a local
    /// `--source-pgdata`, unparsable): run pg_rewind unchanged. The reason, for the log.
    PassThrough(String),
    /// A rewind of `target` from a running source.
    Rewind {
        /// `-D` / `--target-pgdata`.
        target: PathBuf,
        /// `--source-server`'s conninfo, as given (no password: Patroni passes it through
        /// PGPASSFILE).
        source_server: String,
    },
}

/// Classifies pg_rewind's arguments the way pg_rewind's getopt would read them.
pub fn classify(args: &[OsString]) -> Invocation {
    let mut target = None;
    let mut source = None;
    let mut i = 0;
    let value = |i: &mut usize, inline: Option<&str>| -> Option<String> {
        match inline {
            Some(v) => Some(v.to_string()),
            None => {
                *i += 1;
                args.get(*i).map(|a| a.to_string_lossy().into_owned())
            }
        }
    };
    while i < args.len() {
        let a = args[i].to_string_lossy();
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v)),
            _ => (a.to_string(), None),
        };
        match name.as_str() {
            "--help" | "-?" | "--version" | "-V" => {
                return Invocation::PassThrough(format!("{name}: not a rewind"))
            }
            "-n" | "--dry-run" => {
                return Invocation::PassThrough("--dry-run changes nothing".into())
            }
            "--source-pgdata" => {
                return Invocation::PassThrough(
                    "--source-pgdata: the source is a stopped data directory, not a server".into(),
                )
            }
            "-D" | "--target-pgdata" => target = value(&mut i, inline).map(PathBuf::from),
            "--source-server" => source = value(&mut i, inline),
            // Options with a separate value that is not ours.
            "-c"
            | "--restore-target-wal"
            | "-R"
            | "--write-recovery-conf"
            | "-N"
            | "--no-sync"
            | "-P"
            | "--progress"
            | "--debug"
            | "--no-ensure-shutdown"
            | "--sync-method"
            | "--config-file" => {
                if name == "--sync-method" && inline.is_none() {
                    i += 1;
                }
                if name == "--config-file" && inline.is_none() {
                    i += 1;
                }
            }
            n if n.starts_with("-D") && n.len() > 2 => target = Some(PathBuf::from(&n[2..])),
            _ => {}
        }
        i += 1;
    }
    match (target, source) {
        (Some(target), Some(source_server)) => Invocation::Rewind {
            target,
            source_server,
        },
        (None, _) => Invocation::PassThrough("no -D/--target-pgdata".into()),
        (_, None) => Invocation::PassThrough("no --source-server".into()),
    }
}

/// Classifies the arguments Patroni gives a custom replica method
/// (`create_replica_methods`): `--scope=S --role=R --datadir=D --connstring=C` (plus the method's
/// own options), as a capture of `D` from the member `C` names.
pub fn classify_replica_method(args: &[OsString]) -> Invocation {
    let mut target = None;
    let mut source = None;
    for a in args {
        let a = a.to_string_lossy();
        if let Some(v) = a.strip_prefix("--datadir=") {
            target = Some(PathBuf::from(v));
        } else if let Some(v) = a.strip_prefix("--connstring=") {
            source = Some(v.to_string());
        }
    }
    match (target, source) {
        (Some(target), Some(source_server)) if !source_server.is_empty() => Invocation::Rewind {
            target,
            source_server,
        },
        (None, _) => Invocation::PassThrough("no --datadir".into()),
        (_, _) => Invocation::PassThrough("no --connstring (no member to clone from)".into()),
    }
}

/// How the target relates to the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Divergence {
    /// The target is on the source's history up to its end of WAL: nothing to capture.
    NotDiverged {
        /// Why, in words.
        why: String,
    },
    /// The target wrote WAL past the point where the source's history leaves it.
    Diverged {
        /// The target's timeline (the former timeline of the report).
        timeline: TimelineId,
        /// The first LSN where the histories part.
        fork: Lsn,
        /// The target's end of WAL as far as pg_control tells (its last checkpoint).
        end: Lsn,
    },
}

impl Divergence {
    /// Decides from the target's control facts and history and the source's history.
    /// `target_history` is the history of `control.timeline` read from the target's pg_wal
    /// (root for timeline 1).
    pub fn decide(
        control: &control::ControlFacts,
        target_history: &TimelineHistory,
        source: &TimelineHistory,
    ) -> Divergence {
        let tli = control.timeline;
        if source.timeline == tli {
            return Divergence::NotDiverged {
                why: format!("the target and the source are both on timeline {tli}"),
            };
        }
        let fork = match source.end_of(tli) {
            Some(sp) => Some(sp),
            None => target_history.fork_point(source),
        };
        let Some(fork) = fork else {
            return Divergence::NotDiverged {
                why: format!(
                    "timeline {tli} and the source's timeline {} do not fork",
                    source.timeline
                ),
            };
        };
        // A clean stop's checkpoint is the last record: before the fork, nothing was written
        // past it. A node not stopped cleanly may have more WAL after its last checkpoint.
        if control.checkpoint < fork && control.cleanly_stopped() {
            return Divergence::NotDiverged {
                why: format!(
                    "the target's last checkpoint {} on timeline {tli} precedes the fork at {fork}",
                    control.checkpoint
                ),
            };
        }
        Divergence::Diverged {
            timeline: tli,
            fork,
            end: control.checkpoint,
        }
    }
}

/// The name of one divergence, the same on every call of one rejoin, so that repeated calls
/// find the capture made by the first: `<sysid>-tl<T>-fork-<LSN>-end-<LSN>`.
pub fn capture_key(sysid: SystemId, timeline: TimelineId, fork: Lsn, end: Lsn) -> String {
    let lsn = |l: Lsn| format!("{:X}-{:08X}", l.0 >> 32, l.0 as u32);
    format!(
        "{}-tl{}-fork-{}-end-{}",
        sysid.0,
        timeline.0,
        lsn(fork),
        lsn(end)
    )
}

/// A WAL segment file name's parts: (timeline, segment number) for `seg_size`.
pub fn parse_segment_name(name: &str, seg_size: u64) -> Option<(TimelineId, u64)> {
    if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let tli = u32::from_str_radix(&name[0..8], 16).ok()?;
    let log = u64::from_str_radix(&name[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
    let per_log = 0x1_0000_0000u64 / seg_size;
    Some((TimelineId(tli), log * per_log + seg))
}

/// What [`capture`] copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Captured {
    /// Segment file names copied, in order.
    pub segments: Vec<String>,
    /// History file names copied.
    pub histories: Vec<String>,
    /// Bytes copied.
    pub bytes: u64,
    /// The segment size found in pg_wal.
    pub seg_size: u64,
    /// Each copied segment's SHA-256 (hex), computed while it was copied, by file name.
    pub digests: std::collections::BTreeMap<String, String>,
    /// Where the copy's time went (hashing, the final fsyncs).
    pub times: copy::CopyTimes,
}

/// Why the capture failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The target's pg_wal holds no segment of the diverged timeline at or after the fork.
    #[error("{0}")]
    Nothing(String),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CaptureError + 'a {
    move |source| CaptureError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Copies, from `data_dir/pg_wal` into `dest/wal/`, every segment of `timeline` from
/// [`SEGMENTS_BEFORE_FORK`] segments before the fork's to the end's (to the last file when the
/// node was not stopped cleanly), and every history file; `dest/pg_control` too. `dest` is
/// created (0700) and must not exist. Files are fsynced, then the directory.
pub fn capture(
    data_dir: &Path,
    dest: &Path,
    timeline: TimelineId,
    fork: Lsn,
    end: Option<Lsn>,
) -> Result<Captured, CaptureError> {
    let pg_wal = data_dir.join("pg_wal");
    let mut names: Vec<String> = std::fs::read_dir(&pg_wal)
        .map_err(io("cannot list", &pg_wal))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    // The segment size: the size of a segment file (all are equal).
    let seg_size = names
        .iter()
        .filter(|n| n.len() == 24)
        .find_map(|n| std::fs::metadata(pg_wal.join(n)).ok().map(|m| m.len()))
        .filter(|s| crate::wal::page::valid_seg_size(*s))
        .ok_or_else(|| {
            CaptureError::Nothing(format!("{} holds no WAL segment", pg_wal.display()))
        })?;
    let first = fork
        .segment_number(seg_size)
        .saturating_sub(SEGMENTS_BEFORE_FORK);
    let last = end.map(|e| e.segment_number(seg_size));
    let segments: Vec<String> = names
        .iter()
        .filter(|n| {
            parse_segment_name(n, seg_size)
                .is_some_and(|(t, s)| t == timeline && s >= first && last.is_none_or(|l| s <= l))
        })
        .cloned()
        .collect();
    if segments.is_empty() {
        return Err(CaptureError::Nothing(format!(
            "{} holds no segment of timeline {timeline} at or after the fork at {fork}",
            pg_wal.display()
        )));
    }
    let histories: Vec<String> = names
        .iter()
        .filter(|n| n.ends_with(".history") && n.len() == 16)
        .cloned()
        .collect();
    let wal = dest.join("wal");
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dest)
            .map_err(io("cannot create", dest))?;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&wal)
            .map_err(io("cannot create", &wal))?;
    }
    // Each file copied and hashed once (its writeback started at once), then one fsync per
    // file at the end, when most of its pages are already written, then the directories.
    let mut buf = vec![0u8; copy::COPY_BUFFER];
    let mut times = copy::CopyTimes::default();
    let mut digests = std::collections::BTreeMap::new();
    let mut bytes = 0;
    let mut written = Vec::new();
    for n in segments.iter().chain(histories.iter()) {
        let (from, to) = (pg_wal.join(n), wal.join(n));
        let c = copy::copy_hashed(&from, &to, &mut buf, &mut times)
            .map_err(io("cannot copy to", &to))?;
        bytes += c.bytes;
        if n.len() == 24 {
            digests.insert(n.clone(), c.sha256);
        }
        written.push(to);
    }
    let control = dest.join("pg_control");
    bytes += copy::copy_hashed(
        &data_dir.join("global").join("pg_control"),
        &control,
        &mut buf,
        &mut times,
    )
    .map_err(io("cannot copy to", &control))?
    .bytes;
    written.push(control);
    let synced = std::time::Instant::now();
    for f in written
        .iter()
        .map(PathBuf::as_path)
        .chain([wal.as_path(), dest])
    {
        copy::sync_file(f).map_err(io("cannot sync", f))?;
    }
    times.sync = synced.elapsed();
    Ok(Captured {
        segments,
        histories,
        bytes,
        seg_size,
        digests,
        times,
    })
}

/// Reads the history of `timeline` from `data_dir/pg_wal` (root for timeline 1).
pub fn target_history(data_dir: &Path, timeline: TimelineId) -> Result<TimelineHistory, String> {
    if timeline.0 <= 1 {
        return Ok(TimelineHistory::root(timeline));
    }
    let name = timeline.history_file_name();
    let path = data_dir.join("pg_wal").join(&name);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    TimelineHistory::parse(&name, timeline, &text).map_err(|e| e.to_string())
}

/// The file whose presence releases a held rewind of the divergence `key`.
pub fn release_marker(root: &Path, key: &str) -> PathBuf {
    root.join(format!("{key}.release"))
}

/// Appends one line to `root/guard.log` (created 0600). Errors are returned, not printed.
pub fn append_log(root: &Path, line: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(root.join("guard.log"))?;
    f.write_all(format!("{line}\n").as_bytes())?;
    f.sync_data()
}

/// Quotes a word for a POSIX shell (single quotes unless it is plainly safe).
pub fn shell_quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@".contains(&b))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The two-line wrapper script to name in Patroni's `postgresql.bin_name.pg_rewind`.
pub fn wrapper_script(tool: &Path, guard_options: &[OsString]) -> String {
    let mut line = format!("exec {} rewind-guard", shell_quote(tool.as_os_str()));
    for o in guard_options {
        line.push(' ');
        line.push_str(&shell_quote(o));
    }
    format!("#!/bin/sh\n{line} -- \"$@\"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::HistoryEntry;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn patroni_calls_are_classified() {
        assert!(matches!(
            classify(&os(&["--help"])),
            Invocation::PassThrough(_)
        ));
        assert!(matches!(
            classify(&os(&["--version"])),
            Invocation::PassThrough(_)
        ));
        assert!(matches!(classify(&os(&["-V"])), Invocation::PassThrough(_)));
        let want = Invocation::Rewind {
            target: PathBuf::from("/d/data"),
            source_server: "dbname=postgres host=127.0.0.1 port=5443".into(),
        };
        assert_eq!(
            classify(&os(&[
                "-D",
                "/d/data",
                "--source-server",
                "dbname=postgres host=127.0.0.1 port=5443"
            ])),
            want
        );
        assert_eq!(
            classify(&os(&[
                "--restore-target-wal",
                "--config-file=/etc/pg.conf",
                "--target-pgdata=/d/data",
                "--source-server=dbname=postgres host=127.0.0.1 port=5443",
                "--progress"
            ])),
            want
        );
        assert_eq!(
            classify(&os(&[
                "-D/d/data",
                "--config-file",
                "/x",
                "--source-server",
                "dbname=postgres host=127.0.0.1 port=5443"
            ])),
            want
        );
        assert!(matches!(
            classify(&os(&["-D", "/d", "--source-pgdata", "/s"])),
            Invocation::PassThrough(_)
        ));
        assert!(matches!(
            classify(&os(&["-n", "-D", "/d", "--source-server", "x"])),
            Invocation::PassThrough(_)
        ));
        assert!(matches!(
            classify(&os(&["-D", "/d"])),
            Invocation::PassThrough(_)
        ));
    }

    fn ctl(tli: u32, ckpt: u64, state: u32) -> control::ControlFacts {
        control::ControlFacts {
            system_identifier: SystemId(1),
            control_version: 1300,
            state,
            checkpoint: Lsn(ckpt),
            redo: Lsn(ckpt),
            timeline: TimelineId(tli),
        }
    }

    fn tl2() -> TimelineHistory {
        TimelineHistory {
            timeline: TimelineId(2),
            entries: vec![HistoryEntry {
                parent: TimelineId(1),
                switchpoint: Lsn(0x3000060),
                reason: "no recovery target specified".into(),
            }],
        }
    }

    #[test]
    fn divergence_is_decided_from_the_checkpoint_and_the_histories() {
        let root = TimelineHistory::root(TimelineId(1));
        assert_eq!(
            Divergence::decide(&ctl(1, 0x3001000, 1), &root, &tl2()),
            Divergence::Diverged {
                timeline: TimelineId(1),
                fork: Lsn(0x3000060),
                end: Lsn(0x3001000)
            }
        );
        // Stopped cleanly before the fork: the source has all of it.
        assert!(matches!(
            Divergence::decide(&ctl(1, 0x3000028, 1), &root, &tl2()),
            Divergence::NotDiverged { .. }
        ));
        // Not stopped cleanly: more WAL may follow the checkpoint.
        assert!(matches!(
            Divergence::decide(&ctl(1, 0x3000028, 6), &root, &tl2()),
            Divergence::Diverged { .. }
        ));
        // Already on the source's timeline.
        assert!(matches!(
            Divergence::decide(&ctl(2, 0x4000000, 1), &tl2(), &tl2()),
            Divergence::NotDiverged { .. }
        ));
        // A sibling timeline 3 forked from 1 earlier than 2 did.
        let tl3 = TimelineHistory {
            timeline: TimelineId(3),
            entries: vec![HistoryEntry {
                parent: TimelineId(1),
                switchpoint: Lsn(0x2000000),
                reason: String::new(),
            }],
        };
        assert_eq!(
            Divergence::decide(&ctl(3, 0x3500000, 1), &tl3, &tl2()),
            Divergence::Diverged {
                timeline: TimelineId(3),
                fork: Lsn(0x2000000),
                end: Lsn(0x3500000)
            }
        );
    }

    #[test]
    fn keys_segment_names_and_the_wrapper() {
        assert_eq!(
            capture_key(
                SystemId(7),
                TimelineId(1),
                Lsn(0x1_0300_0060),
                Lsn(0x3001000)
            ),
            "7-tl1-fork-1-03000060-end-0-03001000"
        );
        assert_eq!(
            parse_segment_name("000000010000000100000003", 16 << 20),
            Some((TimelineId(1), 256 + 3))
        );
        assert_eq!(parse_segment_name("00000002.history", 16 << 20), None);
        let w = wrapper_script(
            Path::new("/usr/bin/failover-verify"),
            &os(&[
                "--pg-rewind",
                "/usr/lib/postgresql/15/bin/pg_rewind",
                "--evidence-root",
                "/var/lib/my evidence",
            ]),
        );
        assert_eq!(
            w,
            "#!/bin/sh\nexec /usr/bin/failover-verify rewind-guard --pg-rewind /usr/lib/postgresql/15/bin/pg_rewind --evidence-root '/var/lib/my evidence' -- \"$@\"\n"
        );
    }

    #[test]
    fn capture_copies_the_diverged_timeline_from_before_the_fork() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        std::fs::create_dir_all(data.join("pg_wal")).unwrap();
        std::fs::create_dir_all(data.join("global")).unwrap();
        std::fs::write(data.join("global/pg_control"), vec![1u8; 8192]).unwrap();
        let seg = vec![0u8; 1 << 20];
        for n in 1..=9u64 {
            std::fs::write(
                data.join("pg_wal")
                    .join(format!("00000001000000000000000{n}")),
                &seg,
            )
            .unwrap();
        }
        std::fs::write(data.join("pg_wal/000000020000000000000008"), &seg).unwrap();
        std::fs::write(data.join("pg_wal/00000002.history"), "1\t0/700000\tx\n").unwrap();
        let dest = d.path().join("cap");
        let c = capture(
            &data,
            &dest,
            TimelineId(1),
            Lsn(0x700000),
            Some(Lsn(0x800100)),
        )
        .unwrap();
        assert_eq!(c.seg_size, 1 << 20);
        assert_eq!(
            c.segments,
            (3..=8)
                .map(|n| format!("00000001000000000000000{n}"))
                .collect::<Vec<_>>()
        );
        assert_eq!(c.histories, vec!["00000002.history".to_string()]);
        // Each segment's digest, computed during the copy, is the copy's SHA-256.
        assert_eq!(c.digests.len(), c.segments.len());
        for n in &c.segments {
            assert_eq!(
                c.digests[n],
                crate::bundle::manifest::sha256_file(&dest.join("wal").join(n)).unwrap()
            );
        }
        assert_eq!(c.bytes, 6 * (1 << 20) + 13 + 8192);
        assert!(dest.join("wal/00000002.history").is_file());
        assert!(dest.join("pg_control").is_file());
        // An existing destination is refused.
        assert!(capture(&data, &dest, TimelineId(1), Lsn(0x700000), None).is_err());
    }
}
