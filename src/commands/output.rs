//! Where a rendered report goes: the `--output` file (atomically) or stdout, where a closed
//! pipe (`| head`) is not an error. The one place the tool writes its results.

use std::io::Write;
use std::path::Path;

use crate::report::write_file_atomically;

/// Writes `bytes` to stdout; a reader that closed the pipe early is not an error.
pub fn to_stdout(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Writes `bytes` to `path` (complete or not at all), or to stdout without a path; the error
/// is one line that names where.
pub fn deliver(path: Option<&Path>, bytes: &[u8]) -> Result<(), String> {
    match path {
        Some(p) => write_file_atomically(p, bytes)
            .map_err(|e| format!("cannot write the report to {}: {e}", p.display())),
        None => to_stdout(bytes).map_err(|e| format!("cannot write the report: {e}")),
    }
}
