//! The runner: every check's SQL on the nodes it needs, through read-only [`Session`]s, with
//! a bound on the queries in flight per node; results never abort the run.

use futures_util::future::join_all;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::compare::Row;
use super::evaluate::evaluate;
use super::summary::{default_summaries, fill_summary};
use super::{
    strip_trailing_semicolons, Catalog, Check, CheckResult, CheckStatus, RunsOn, MAX_RESULT_ROWS,
};
use crate::finding::Severity;
use crate::pg::error::ErrorKind;
use crate::pg::session::Session;

/// Queries in flight per node by default (a session runs them one at a time anyway; two
/// keeps the pipeline busy without flooding it).
pub const DEFAULT_IN_FLIGHT_PER_NODE: usize = 2;

/// How to run a catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// The most check queries sent to one node before their results come back (at least 1).
    pub in_flight_per_node: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            in_flight_per_node: DEFAULT_IN_FLIGHT_PER_NODE,
        }
    }
}

/// Runs every check of `catalog` with the default [`RunOptions`]; `None` for a node that is
/// not connected (its checks are skipped). One result per check, in catalog order.
pub async fn run_checks(
    catalog: &Catalog,
    new: Option<&Session>,
    former: Option<&Session>,
) -> Vec<CheckResult> {
    run_checks_with(catalog, new, former, &RunOptions::default()).await
}

/// Runs every check of `catalog` with `opts`.
pub async fn run_checks_with(
    catalog: &Catalog,
    new: Option<&Session>,
    former: Option<&Session>,
    opts: &RunOptions,
) -> Vec<CheckResult> {
    let permits = opts.in_flight_per_node.max(1);
    let (sem_new, sem_former) = (Semaphore::new(permits), Semaphore::new(permits));
    let new = new.map(|s| Node {
        session: s,
        gate: &sem_new,
        label: "new",
    });
    let former = former.map(|s| Node {
        session: s,
        gate: &sem_former,
        label: "former",
    });
    join_all(
        catalog
            .checks()
            .iter()
            .map(|c| run_one(c, catalog.is_override(&c.id), new, former)),
    )
    .await
}

#[derive(Clone, Copy)]
struct Node<'a> {
    session: &'a Session,
    gate: &'a Semaphore,
    label: &'static str,
}

/// Why a node's query produced no rows.
enum Failure {
    /// The node is not connected.
    NotConnected(&'static str),
    /// SQLSTATE 42501: (node, server message, the server's hint).
    Privilege(&'static str, String, String),
    /// Anything else: (node, one line).
    Other(&'static str, String),
}

/// Runs `sql` on `node`, wrapped as `SELECT row_to_json(q)::text FROM (<sql>) q` so that
/// every column type arrives as JSON and only one read-only query can run.
async fn fetch(
    node: Option<Node<'_>>,
    label: &'static str,
    sql: &str,
) -> Result<Vec<Row>, Failure> {
    let Some(node) = node else {
        return Err(Failure::NotConnected(label));
    };
    let wrapped = format!(
        "SELECT row_to_json(q)::text FROM (\n{}\n) AS q",
        strip_trailing_semicolons(sql)
    );
    let rows = {
        // The semaphore is never closed; if it were, run unbounded rather than not at all.
        let _permit = node.gate.acquire().await.ok();
        node.session.query(wrapped.as_str(), &[]).await
    };
    let rows = rows.map_err(|e| match e.kind() {
        ErrorKind::InsufficientPrivilege { message, hint, .. } => {
            Failure::Privilege(node.label, message.clone(), hint.clone())
        }
        _ => Failure::Other(node.label, e.to_string()),
    })?;
    rows.iter()
        .map(|r| {
            let text: Option<String> = r
                .try_get(0)
                .map_err(|e| Failure::Other(node.label, format!("reading a row: {e}")))?;
            let text = text.unwrap_or_else(|| "{}".into());
            serde_json::from_str::<OrderedRow>(&text)
                .map(|o| o.0)
                .map_err(|e| Failure::Other(node.label, format!("reading a row as JSON: {e}")))
        })
        .collect()
}

async fn run_one(
    check: &Check,
    overrides_builtin: bool,
    new: Option<Node<'_>>,
    former: Option<Node<'_>>,
) -> CheckResult {
    let mut result = CheckResult {
        id: check.id.clone(),
        title: check.title.clone(),
        severity: check.severity,
        status: CheckStatus::Ok,
        summary: String::new(),
        runs_on: check.runs_on(),
        columns: Vec::new(),
        rows: Vec::new(),
        rows_total: 0,
        remedy: check.remedy.clone(),
        origin: check.origin.label(),
        overrides_builtin,
    };
    let runs_on = check.runs_on();
    let new_rows = async {
        match (&check.new_sql, runs_on) {
            (Some(sql), RunsOn::New | RunsOn::Both) => Some(fetch(new, "new", sql).await),
            _ => None,
        }
    };
    let former_rows = async {
        match (&check.former_sql, runs_on) {
            (Some(sql), RunsOn::Former | RunsOn::Both) => Some(fetch(former, "former", sql).await),
            _ => None,
        }
    };
    let (new_rows, former_rows) = tokio::join!(new_rows, former_rows);
    let mut failures = Vec::new();
    let mut ok = |r: Option<Result<Vec<Row>, Failure>>| match r {
        None => None,
        Some(Ok(rows)) => Some(rows),
        Some(Err(f)) => {
            failures.push(f);
            None
        }
    };
    let (new_rows, former_rows) = (ok(new_rows), ok(former_rows));
    if !failures.is_empty() {
        apply_failures(check, &mut result, failures);
        return result;
    }
    match evaluate(&check.compare, new_rows.as_deref(), former_rows.as_deref()) {
        Err(e) => {
            result.status = CheckStatus::Error;
            result.summary = e.to_string();
        }
        Ok(ev) => {
            let (finding_t, ok_t) = default_summaries(check.compare.mode);
            let template = if ev.finding {
                check.finding_summary.as_deref().unwrap_or(finding_t)
            } else {
                check.ok_summary.as_deref().unwrap_or(ok_t)
            };
            result.summary = fill_summary(template, &ev);
            result.status = if ev.finding {
                CheckStatus::Finding
            } else {
                CheckStatus::Ok
            };
            result.rows_total = ev.rows.len();
            result.columns = ev.columns;
            result.rows = ev.rows;
            result.rows.truncate(MAX_RESULT_ROWS);
        }
    }
    result
}

/// A failed node makes the whole check `skipped` (not connected, no privilege) or `error`.
fn apply_failures(check: &Check, result: &mut CheckResult, failures: Vec<Failure>) {
    let is_error = failures.iter().any(|f| matches!(f, Failure::Other(..)));
    let mut parts = Vec::new();
    let mut grant = None;
    for f in failures {
        match f {
            Failure::NotConnected(node) => {
                parts.push(format!("the {node} primary is not connected"))
            }
            Failure::Privilege(node, message, hint) => {
                parts.push(format!("{node} primary: {message}"));
                grant.get_or_insert(check.grant.clone().unwrap_or(hint));
            }
            Failure::Other(node, message) => parts.push(format!("{node} primary: {message}")),
        }
    }
    let mut summary = parts.join("; ");
    if is_error {
        result.status = CheckStatus::Error;
    } else {
        result.status = CheckStatus::Skipped;
        summary = format!("skipped: {summary}");
        // A check that could not run is something to fix, not itself a critical finding.
        result.severity = result.severity.max(Severity::Warning);
    }
    if let Some(g) = grant {
        summary.push_str(&format!("; to enable it: {g}"));
        result.remedy = g;
    }
    result.summary = summary.replace(['\n', '\r'], " ");
}

/// A JSON object read with its keys in document order (`row_to_json` keeps column order).
struct OrderedRow(Row);

impl<'de> Deserialize<'de> for OrderedRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedRow;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<OrderedRow, A::Error> {
                let mut row: Row = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Value>()? {
                    match row.iter_mut().find(|(c, _)| *c == k) {
                        Some(slot) => slot.1 = v,
                        None => row.push((k, v)),
                    }
                }
                Ok(OrderedRow(row))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_row_keeps_column_order() {
        let r: OrderedRow = serde_json::from_str(r#"{"z":1,"a":"x","m":null}"#).unwrap();
        let cols: Vec<&str> = r.0.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(cols, ["z", "a", "m"]);
        assert_eq!(r.0[0].1, Value::from(1));
    }
}
