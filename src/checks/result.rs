//! The result of one check on the nodes, as the report shows it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::finding::Severity;

use super::compare::RunsOn;

/// How one check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Something to act on: see `rows` and `remedy`.
    Finding,
    /// The SQL failed (not for lack of privilege): see `summary`.
    Error,
    /// Not run: a node it needs is not connected, or the role lacks a privilege.
    Skipped,
    /// Nothing to report.
    Ok,
}

impl CheckStatus {
    /// `finding`, `error`, `skipped` or `ok`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Finding => "finding",
            CheckStatus::Error => "error",
            CheckStatus::Skipped => "skipped",
            CheckStatus::Ok => "ok",
        }
    }
}

/// What one check found, for the report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's id.
    pub id: String,
    /// The check's title.
    pub title: String,
    /// The check's severity; a check skipped for lack of privilege is at most `warning`.
    pub severity: Severity,
    /// How it ended.
    pub status: CheckStatus,
    /// One line: what was found, or why it did not run.
    pub summary: String,
    /// Which nodes it queries.
    pub runs_on: RunsOn,
    /// The order of the columns in `rows`.
    #[serde(default)]
    pub columns: Vec<String>,
    /// The offending rows (or, for `side_by_side`, every compared row), at most
    /// [`MAX_RESULT_ROWS`].
    #[serde(default)]
    pub rows: Vec<BTreeMap<String, serde_json::Value>>,
    /// How many rows there were before the cap.
    #[serde(default)]
    pub rows_total: usize,
    /// What to do about a finding (or, when skipped for privilege, the grant that enables it).
    pub remedy: String,
    /// `builtin`, or the user file that defined the check.
    pub origin: String,
    /// True when a user file replaced the built-in check with this id.
    #[serde(default)]
    pub overrides_builtin: bool,
}

/// `critical`, `warning` or `info`, as in check files.
pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

/// The most rows one check result carries (the report says how many there were).
pub const MAX_RESULT_ROWS: usize = 1000;
