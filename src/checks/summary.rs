//! The one-line summaries of a check's result: defaults per mode, and templates filled in.

use super::compare::{CompareMode, Evaluation};

/// The default one-line summaries of a mode: (finding, ok). Placeholders: `{n}` offending
/// rows, `{total}` compared rows, `{keys}` the first offending keys.
pub(crate) fn default_summaries(mode: CompareMode) -> (&'static str, &'static str) {
    match mode {
        CompareMode::RowsOnlyOnFormer => (
            "{n} only on the former primary: {keys}",
            "nothing only on the former primary ({total} compared)",
        ),
        CompareMode::RowsOnlyOnNew => (
            "{n} only on the new primary: {keys}",
            "nothing only on the new primary ({total} compared)",
        ),
        CompareMode::RowsOnFormer => (
            "{n} on the former primary: {keys}",
            "none on the former primary",
        ),
        CompareMode::RowsOnNew => ("{n} on the new primary: {keys}", "none on the new primary"),
        CompareMode::ValuesDiffer => ("{n} differ: {keys}", "{total} compared, none differ"),
        CompareMode::SideBySide => (
            "{n} of {total} differ: {keys}",
            "{total} compared, none differ",
        ),
        CompareMode::GreaterOnFormer => (
            "{n} ahead on the former primary: {keys}",
            "none ahead on the former primary ({total} compared)",
        ),
    }
}

/// How many keys a summary names before `…`.
const SUMMARY_KEYS: usize = 5;

/// Fills a summary template from an evaluation.
pub(crate) fn fill_summary(template: &str, ev: &Evaluation) -> String {
    let n = if ev.keys.is_empty() {
        ev.rows.len()
    } else {
        ev.keys.len()
    };
    let mut keys = ev
        .keys
        .iter()
        .take(SUMMARY_KEYS)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if ev.keys.len() > SUMMARY_KEYS {
        keys.push_str(&format!(", … ({} more)", ev.keys.len() - SUMMARY_KEYS));
    }
    template
        .replace("{n}", &n.to_string())
        .replace("{total}", &ev.total.to_string())
        .replace("{keys}", &keys)
        .replace(['\n', '\r'], " ")
}
