//! The comparison modes and their results: what each mode finds in the rows of each node
//! (applied by `evaluate.rs`, summarised by `summary.rs`).
//!
//! | mode | runs on | a finding is |
//! |---|---|---|
//! | `rows_only_on_former` | both | a key on the former primary that the new one lacks |
//! | `rows_only_on_new` | both | a key on the new primary that the former one lacks |
//! | `rows_on_former` | former | any row the former primary returns |
//! | `rows_on_new` | new | any row the new primary returns |
//! | `values_differ` | both | a key whose `values` differ, or that only one node has |
//! | `side_by_side` | both | like `values_differ`, but every key is shown |
//! | `greater_on_former` | both | a key whose numeric `value` is greater on the former primary (or missing on the new one) |

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which nodes a check queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunsOn {
    /// Only the new primary.
    New,
    /// Only the former primary.
    Former,
    /// Both nodes.
    Both,
}

impl RunsOn {
    /// `new`, `former` or `both`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunsOn::New => "new",
            RunsOn::Former => "former",
            RunsOn::Both => "both",
        }
    }
}

impl fmt::Display for RunsOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One result row: (column, value) in the query's column order.
pub type Row = Vec<(String, Value)>;

/// How a check turns the rows of the two nodes into findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareMode {
    /// Rows (by `key`) the former primary has and the new one lacks.
    RowsOnlyOnFormer,
    /// Rows (by `key`) the new primary has and the former one lacks.
    RowsOnlyOnNew,
    /// Every row of the former primary is a finding.
    RowsOnFormer,
    /// Every row of the new primary is a finding.
    RowsOnNew,
    /// Rows (by `key`) whose `values` columns differ, or that only one node has.
    ValuesDiffer,
    /// Every key with both nodes' `values`; a finding when any differs.
    SideBySide,
    /// Rows (by `key`) whose numeric `value` is greater on the former primary, or that the
    /// new primary lacks; a NULL on the former primary is never a finding.
    GreaterOnFormer,
}

impl CompareMode {
    /// Every mode, in documentation order.
    pub const ALL: [CompareMode; 7] = [
        CompareMode::RowsOnlyOnFormer,
        CompareMode::RowsOnlyOnNew,
        CompareMode::RowsOnFormer,
        CompareMode::RowsOnNew,
        CompareMode::ValuesDiffer,
        CompareMode::SideBySide,
        CompareMode::GreaterOnFormer,
    ];

    /// The name used in TOML (`compare.mode`).
    pub fn as_str(self) -> &'static str {
        match self {
            CompareMode::RowsOnlyOnFormer => "rows_only_on_former",
            CompareMode::RowsOnlyOnNew => "rows_only_on_new",
            CompareMode::RowsOnFormer => "rows_on_former",
            CompareMode::RowsOnNew => "rows_on_new",
            CompareMode::ValuesDiffer => "values_differ",
            CompareMode::SideBySide => "side_by_side",
            CompareMode::GreaterOnFormer => "greater_on_former",
        }
    }

    /// Which nodes the mode needs rows from.
    pub fn runs_on(self) -> RunsOn {
        match self {
            CompareMode::RowsOnFormer => RunsOn::Former,
            CompareMode::RowsOnNew => RunsOn::New,
            _ => RunsOn::Both,
        }
    }

    fn keyed(self) -> bool {
        self.runs_on() == RunsOn::Both
    }
}

impl FromStr for CompareMode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        CompareMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or(())
    }
}

impl fmt::Display for CompareMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode with its columns (the `[compare]` table of a check file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comparison {
    /// The mode.
    pub mode: CompareMode,
    /// The columns that identify a row on both nodes (optional for `rows_on_*`, where they
    /// only name the rows in the summary).
    pub key: Vec<String>,
    /// The numeric column of `greater_on_former`.
    pub value: Option<String>,
    /// `greater_on_former` only: the new primary's column holding the next value it will hand
    /// out (a sequence's). Then a key is a finding when the former primary's `value` is at or
    /// past it, and `advance_by` says how far to move the new side.
    pub next: Option<String>,
    /// The compared columns of `values_differ` and `side_by_side` (default: every non-key
    /// column).
    pub values: Vec<String>,
}

impl Comparison {
    /// Checks that the columns fit the mode; the error names the key (`key`, `value`,
    /// `values`) and what is wrong.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let m = self.mode.as_str();
        if self.mode.keyed() && self.key.is_empty() {
            return Err(("key", format!("compare mode \"{m}\" needs key columns")));
        }
        if let Some(k) = self.key.iter().find(|k| k.trim().is_empty()) {
            return Err(("key", format!("empty column name {k:?}")));
        }
        let mut seen = BTreeSet::new();
        if let Some(k) = self.key.iter().find(|k| !seen.insert(k.as_str())) {
            return Err(("key", format!("column \"{k}\" listed twice")));
        }
        match (self.mode, &self.value) {
            (CompareMode::GreaterOnFormer, None) => {
                return Err((
                    "value",
                    "compare mode \"greater_on_former\" needs the numeric column to compare".into(),
                ))
            }
            (CompareMode::GreaterOnFormer, Some(v)) if self.key.contains(v) => {
                return Err(("value", format!("\"{v}\" is also a key column")))
            }
            (CompareMode::GreaterOnFormer, Some(_)) => {}
            (_, Some(_)) => {
                return Err((
                    "value",
                    format!("not used by compare mode \"{m}\" (only greater_on_former)"),
                ))
            }
            (_, None) => {}
        }
        match (&self.next, self.mode) {
            (Some(_), m) if m != CompareMode::GreaterOnFormer => {
                return Err((
                    "next",
                    format!(
                        "not used by compare mode \"{}\" (only greater_on_former)",
                        m.as_str()
                    ),
                ))
            }
            (Some(n), _) if self.key.contains(n) => {
                return Err(("next", format!("\"{n}\" is also a key column")))
            }
            _ => {}
        }
        let uses_values = matches!(
            self.mode,
            CompareMode::ValuesDiffer | CompareMode::SideBySide
        );
        if !self.values.is_empty() && !uses_values {
            return Err((
                "values",
                format!("not used by compare mode \"{m}\" (only values_differ and side_by_side)"),
            ));
        }
        if let Some(v) = self.values.iter().find(|v| self.key.contains(v)) {
            return Err(("values", format!("\"{v}\" is also a key column")));
        }
        Ok(())
    }
}

/// A comparison that cannot be made with the rows the SQL returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A column named in `[compare]` is not in the result.
    #[error("column \"{column}\" (compare.{field}) is not in the {node} primary's result")]
    MissingColumn {
        /// The column.
        column: String,
        /// `key`, `value` or `values`.
        field: &'static str,
        /// `new` or `former`.
        node: &'static str,
    },
    /// Two rows of one node have the same key.
    #[error(
        "two rows of the {node} primary have the key {key}; the key columns must identify a row"
    )]
    DuplicateKey {
        /// `new` or `former`.
        node: &'static str,
        /// The key, displayed.
        key: String,
    },
    /// The `value` of `greater_on_former` is not a number.
    #[error("\"{column}\" is not numeric on the {node} primary: {value}")]
    NotNumeric {
        /// The column.
        column: String,
        /// `new` or `former`.
        node: &'static str,
        /// The value, as JSON.
        value: String,
    },
}

/// What a comparison produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// Whether there is something to report.
    pub finding: bool,
    /// The output columns, in display order.
    pub columns: Vec<String>,
    /// The output rows: the offending ones (every compared key for `side_by_side`).
    pub rows: Vec<BTreeMap<String, Value>>,
    /// The offending keys, displayed (`schema.name`), in row order.
    pub keys: Vec<String>,
    /// How many rows (or keys) were compared.
    pub total: usize,
}

/// A JSON value as a person reads it: strings bare, NULL as `NULL`.
pub fn display_value(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
