//! Wire types of the declarative checks' results.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::finding::Severity;

use super::wire::Wire;

/// How one check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

/// Which nodes a check queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunsOn {
    /// Only the new primary.
    New,
    /// Only the former primary.
    Former,
    /// Both nodes.
    Both,
}

/// What one check found, for the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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

impl Wire for crate::checks::CheckStatus {
    type Out = CheckStatus;
    fn wire(&self) -> CheckStatus {
        match self {
            crate::checks::CheckStatus::Finding => CheckStatus::Finding,
            crate::checks::CheckStatus::Error => CheckStatus::Error,
            crate::checks::CheckStatus::Skipped => CheckStatus::Skipped,
            crate::checks::CheckStatus::Ok => CheckStatus::Ok,
        }
    }
}

impl Wire for crate::checks::RunsOn {
    type Out = RunsOn;
    fn wire(&self) -> RunsOn {
        match self {
            crate::checks::RunsOn::New => RunsOn::New,
            crate::checks::RunsOn::Former => RunsOn::Former,
            crate::checks::RunsOn::Both => RunsOn::Both,
        }
    }
}

impl Wire for crate::checks::CheckResult {
    type Out = CheckResult;
    fn wire(&self) -> CheckResult {
        CheckResult {
            id: self.id.wire(),
            title: self.title.wire(),
            severity: self.severity.wire(),
            status: self.status.wire(),
            summary: self.summary.wire(),
            runs_on: self.runs_on.wire(),
            columns: self.columns.wire(),
            rows: self.rows.wire(),
            rows_total: self.rows_total.wire(),
            remedy: self.remedy.wire(),
            origin: self.origin.wire(),
            overrides_builtin: self.overrides_builtin.wire(),
        }
    }
}
