//! Progress on stderr for long phases: a bar when stderr is a terminal, one line per table
//! with `-v` otherwise, nothing with `-q`. Never part of the report.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::diff::{Progress, ProgressEvent};

/// Shows the row diff's progress on stderr.
pub struct StderrProgress {
    bar: Option<ProgressBar>,
    verbose: bool,
    state: Mutex<(u64, u64)>, // (tables finished, tables discovered)
}

impl std::fmt::Debug for StderrProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StderrProgress")
            .field("verbose", &self.verbose)
            .finish()
    }
}

impl StderrProgress {
    /// A bar when `terminal`, log lines when `verbose`, else silent.
    pub fn new(terminal: bool, verbose: bool) -> StderrProgress {
        let bar = terminal.then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{spinner} rows {pos}/{len} tables  {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        StderrProgress {
            bar,
            verbose,
            state: Mutex::new((0, 0)),
        }
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Progress for StderrProgress {
    fn event(&self, event: ProgressEvent<'_>) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            ProgressEvent::Discovered { database, tables } => {
                st.1 += tables as u64;
                if let Some(b) = &self.bar {
                    b.set_length(st.1);
                    b.set_message(format!("database {database}"));
                } else if self.verbose {
                    eprintln!("rows: {tables} table(s) in database {database}");
                }
            }
            ProgressEvent::TableStarted {
                table,
                estimated_rows,
            } => {
                if let Some(b) = &self.bar {
                    b.set_message(format!("{table} (~{estimated_rows} rows)"));
                }
            }
            ProgressEvent::RowsHashed { .. } => {}
            ProgressEvent::TableFinished { table, differences } => {
                st.0 += 1;
                if let Some(b) = &self.bar {
                    b.set_position(st.0);
                } else if self.verbose {
                    eprintln!("rows: {table}: {differences} differing row(s)");
                }
            }
        }
    }
}
