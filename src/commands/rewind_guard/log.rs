//! The guard's log: lines to stderr (through the caller) and to `<root>/guard.log`.

use std::path::PathBuf;
use std::time::Instant;

use crate::guard;

/// A log that writes each line to `<root>/guard.log` as it is made (when writable).
#[derive(Debug)]
pub(super) struct Log {
    pub(super) root: Option<PathBuf>,
    pub(super) lines: Vec<String>,
    pub(super) started: Instant,
}

impl Log {
    pub(super) fn line(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        let line = format!(
            "failover-verify rewind-guard [{} pid {} +{:.1}s]: {msg}",
            crate::report::now_rfc3339(),
            std::process::id(),
            self.started.elapsed().as_secs_f64()
        );
        if let Some(root) = &self.root {
            if let Err(e) = guard::append_log(root, &line) {
                let root = root.display().to_string();
                self.root = None;
                self.lines.push(format!(
                    "failover-verify rewind-guard: cannot append to {root}/guard.log: {e}"
                ));
            }
        }
        self.lines.push(line);
    }
}
