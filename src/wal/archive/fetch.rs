//! Running a restore command: its placeholders, its time limit, and the last line it printed.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Replaces `%f`, `%p`, `%r` and `%%` in a `restore_command` as PostgreSQL does (an unknown
/// `%x` and a trailing `%` stay as they are).
pub fn substitute(template: &str, file: &str, path: &str, oldest_needed: &str) -> String {
    let mut out = String::with_capacity(template.len() + path.len());
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some('f') => out.push_str(file),
            Some('p') => out.push_str(path),
            Some('r') => out.push_str(oldest_needed),
            Some('%') => out.push('%'),
            _ => {
                out.push('%');
                continue;
            }
        }
        chars.next();
    }
    out
}

/// Runs `command` through `sh -c` in its own process group; `Ok(Some(status))`, or
/// `Ok(None)` when it was killed at `timeout`. Its stderr goes to `stderr_file`.
pub(super) fn run_with_timeout(
    command: &str,
    stderr_file: &Path,
    timeout: Duration,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let err = std::fs::File::create(stderr_file)?;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(err.try_clone()?)
        .stderr(err)
        .process_group(0)
        .spawn()?;
    let started = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if started.elapsed() >= timeout {
            // The whole group: `sh -c` may have forked the archiver.
            let pgid = child.id() as i32;
            // SAFETY: kill has no memory-safety preconditions; the group is the child's own.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// The last non-empty line of a command's output, shortened, as `: line`.
pub(super) fn last_line(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    match text.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
        Some(l) if l.chars().count() > 240 => {
            format!(": {}…", l.chars().take(240).collect::<String>())
        }
        Some(l) => format!(": {l}"),
        None => String::new(),
    }
}
